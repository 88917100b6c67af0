// Fuzz target: a GGUF file (header, metadata, tensor infos, data).
//
// Parses twice: against the input's own size (what opening a file does), and as a header-only
// prefix of a much larger file so inputs cut before their tensor data still reach the tokenizer
// code. Then reads the vocabulary as GGUF → HF conversion does, rebuilds the HF tokenizer files,
// and opens the bytes as a file the way `wconv inspect` does.
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    if let header = try? GGUFHeader.parse(bytes) {
        check(header, fileSize: bytes.count)
    }
    let prefixOf = bytes.count + (1 << 40)
    if let header = try? GGUFHeader.parse(bytes, fileSize: prefixOf) {
        check(header, fileSize: prefixOf)
        vocabulary(header.metadata)
    }
    inspectScratchFile("model.gguf", bytes)
    return 0
}

/// What the reader promises about an accepted header.
private func check(_ header: GGUFHeader, fileSize: Int) {
    require(header.alignment > 0 && header.alignment & (header.alignment - 1) == 0, "alignment \(header.alignment)")
    require(header.dataOffset <= fileSize, "data offset past the end")
    var seen = Set<String>()
    for tensor in header.tensors {
        require(seen.insert(tensor.name).inserted, "duplicate tensor \(tensor.name)")
        require(tensor.offset >= 0 && tensor.byteCount >= 0, "negative range for \(tensor.name)")
        require(tensor.offset % header.alignment == 0, "unaligned \(tensor.name)")
        require(header.dataOffset + tensor.offset <= fileSize - tensor.byteCount, "\(tensor.name) past the end")
        require(tensor.dimensions.count <= GGUFHeader.maximumDimensions, "too many dimensions")
        _ = tensor.elementCount
        _ = tensor.shape
    }
    for kv in header.metadata.entries {
        _ = kv.value.jsonValue(arrayLimit: 16)
        _ = kv.value.summary()
    }
}

/// GGUF → HF: the tokenizer keys as Pipeline's VocabularyMetadata reads them, then the HF files.
private func vocabulary(_ metadata: GGUFMetadata) {
    guard let vocabulary = try? GGUFVocabulary(gguf: metadata) else { return }
    _ = vocabulary.metadata()
    _ = vocabulary.huggingFaceConfigTokenIDs()
    if let files = try? vocabulary.huggingFaceFiles() {
        for file in files where file.name.hasSuffix(".json") {
            // What we write must read back.
            do { _ = try JSONParser.parse(file.contents) } catch {
                require(false, "\(file.name) written from a GGUF vocabulary is not valid JSON: \(error)")
            }
        }
    }
}
