// Fuzz target: tokenizer.json → GGUF vocabulary (the HF → GGUF tokenizer import).
//
// One input stands for several files of a model directory, separated by a line "@@@@":
// tokenizer.json, tokenizer_config.json, config.json, merges.txt, chat_template.json. An empty or
// missing document is an absent file; one that is not valid JSON ends the run (HFTokenizerSource.load rejects it before the import).
// The imported vocabulary is written back as GGUF keys, read again, and turned into HF files,
// which must parse.
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let documents = splitDocuments(inputBuffer(data, size), limit: 5)
    func json(_ i: Int) -> JSONValue?? {
        guard let bytes = documents[i], !bytes.isEmpty else { return .some(nil) }
        guard let value = try? JSONParser.parse(bytes) else { return nil }
        return .some(value)
    }
    guard let tokenizer = json(0), let tokenizerConfig = json(1), let config = json(2), let chatTemplate = json(4) else {
        return 0
    }
    var source = HFTokenizerSource(config: config, tokenizerJSON: tokenizer, tokenizerConfig: tokenizerConfig,
                                   chatTemplateJSON: chatTemplate)
    if let merges = documents[3], !merges.isEmpty { source.mergesTXT = String(validating: merges, as: UTF8.self) }
    for pre in [nil, "default"] as [String?] {
        guard let vocabulary = try? GGUFVocabulary(huggingFace: source, options: HFVocabularyOptions(pre: pre)) else { continue }
        let metadata = vocabulary.metadata()
        let again: GGUFVocabulary
        do { again = try GGUFVocabulary(metadata: metadata) } catch {
            require(false, "the imported vocabulary's own GGUF keys do not read back: \(error)")
            return 0
        }
        require(again.tokens == vocabulary.tokens, "tokens changed through GGUF keys")
        if let files = try? again.huggingFaceFiles() {
            for file in files where file.name.hasSuffix(".json") {
                do { _ = try JSONParser.parse(file.contents) } catch {
                    require(false, "\(file.name) written back is not valid JSON: \(error)")
                }
            }
        }
    }
    return 0
}
