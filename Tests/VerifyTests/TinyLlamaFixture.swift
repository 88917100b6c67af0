import Formats
import TensorCore
import TestSupport
import Verify

/// The transformers-made tiny LLaMA of `testdata/vectors/tiny-llama` (REFERENCE §7.4): bf16
/// weights, with float32 reference logits and hidden states computed by transformers 5.24.
enum TinyLlama {
    static let directory = "vectors/tiny-llama"
    static let tokens = [1, 5, 17, 42, 99, 3, 64, 127]
    static let argmax = [33, 98, 120, 98, 39, 98, 98, 98]

    static func config() throws -> LlamaConfig {
        let json = try JSONParser.parse(try Fixtures.data("\(directory)/config.json"))
        guard let object = json.objectValue else { throw Failure(.malformedInput, "config.json is not an object") }
        return try LlamaConfig(hfConfig: object)
    }

    /// All tensors of model.safetensors upcast to float32 (exact for bf16).
    ///
    /// A minimal reader for this one fixture (header JSON + bf16 payloads) until the Formats
    /// safetensors reader lands; it trusts nothing it does not check.
    static func tensors() throws -> [String: [Float]] {
        let bytes = try Fixtures.data("\(directory)/model.safetensors")
        guard bytes.count >= 8 else { throw Failure(.malformedInput, "short file") }
        let headerLength = bytes[0 ..< 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard headerLength <= bytes.count - 8 else { throw Failure(.malformedInput, "header too long") }
        let header = try JSONParser.parse(Array(bytes[8 ..< 8 + headerLength]))
        guard let object = header.objectValue else { throw Failure(.malformedInput, "header is not an object") }
        let dataStart = 8 + headerLength
        var result: [String: [Float]] = [:]
        for (name, info) in object where name != "__metadata__" {
            guard info["dtype"]?.stringValue == "BF16",
                  let offsets = info["data_offsets"]?.arrayValue?.compactMap(\.intValue), offsets.count == 2,
                  offsets[0] <= offsets[1], dataStart + offsets[1] <= bytes.count, (offsets[1] - offsets[0]) % 2 == 0
            else { throw Failure(.malformedInput, "bad entry \(name)") }
            let payload = bytes[dataStart + offsets[0] ..< dataStart + offsets[1]]
            result[name] = stride(from: payload.startIndex, to: payload.endIndex, by: 2).map { i in
                HalfFloat.float(bf16Bits: UInt16(payload[i]) | UInt16(payload[i + 1]) << 8)
            }
        }
        return result
    }

    /// A weight source reading those tensors by HF name.
    static func weights() throws -> (LlamaConfig, DenseTensorProvider) {
        let config = try config()
        let all = try tensors()
        let provider = DenseTensorProvider(config: config) { name in
            guard let t = all[name] else { throw VerifyError.missingTensor(name) }
            return t
        }
        return (config, provider)
    }

    static func referenceLogits() throws -> NPYArray {
        try NPYArray(contentsOf: Fixtures.path("\(directory)/ref_logits_f32.npy"))
    }

    static func referenceHiddenStates() throws -> NPYArray {
        try NPYArray(contentsOf: Fixtures.path("\(directory)/ref_hidden_states_f32.npy"))
    }
}

/// Largest |a − b| over two equal-length arrays.
func maxAbsDifference(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// max − min of an array.
func valueRange(_ a: [Float]) -> Float { (a.max() ?? 0) - (a.min() ?? 0) }
