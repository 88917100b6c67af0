// Fuzz target: a SentencePiece tokenizer.model (protobuf ModelProto).
//
// Parses the model, checks that serializing and parsing again gives the same model, then runs the
// HF → GGUF import of a SentencePiece directory (tokenizer.model alone) and the GGUF → HF export.
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    guard let model = try? SentencePieceModel(parsing: bytes) else { return 0 }
    do {
        let again = try SentencePieceModel(parsing: model.serialized())
        require(again == model, "model changed through serialize + parse")
    } catch {
        require(false, "serialized model does not parse: \(error)")
    }
    let source = HFTokenizerSource(sentencePieceModel: Array(bytes))
    guard let vocabulary = try? GGUFVocabulary(huggingFace: source) else { return 0 }
    if let files = try? vocabulary.huggingFaceFiles() {
        for file in files {
            if file.name == "tokenizer.model" {
                do { _ = try SentencePieceModel(parsing: file.contents) } catch {
                    require(false, "tokenizer.model written back does not parse: \(error)")
                }
            } else if file.name.hasSuffix(".json") {
                do { _ = try JSONParser.parse(file.contents) } catch {
                    require(false, "\(file.name) written back is not valid JSON: \(error)")
                }
            }
        }
    }
    return 0
}
