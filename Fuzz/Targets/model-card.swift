// Fuzz target: README.md front matter (the YAML model card gguf-py reads for general.* metadata).
//
// Parses the card with every key and with the converter's keys, then applies the metadata
// heuristics (names, size labels, base models, tags) and builds the default output file name.
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let readme = Array(inputBuffer(data, size))
    _ = try? ModelCard.parse(readme: readme, keys: nil)
    guard let card = try? ModelCard.parse(readme: readme) else { return 0 }
    let counts = ParameterCount(tensors: [("token_embd.weight", [49152, 576]), ("blk.0.attn_q.weight", [576, 576])])
    guard let metadata = try? ModelMetadata(card: card, config: JSONObject(), generationConfig: nil,
                                            directoryName: "SmolLM2-135M-Instruct", parameterCount: counts) else { return 0 }
    _ = metadata.entries
    _ = try? metadata.defaultFileName(outputType: "F16")
    return 0
}
