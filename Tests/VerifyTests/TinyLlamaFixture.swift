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
    static func tensors() throws -> [String: [Float]] {
        let file = try SafetensorsFile(path: Fixtures.path("\(directory)/model.safetensors"))
        var result: [String: [Float]] = [:]
        for tensor in file.tensors {
            guard tensor.dtype == .bf16 else { throw Failure(.malformedInput, "\(tensor.name) is not bf16") }
            let bytes = file.bytes(of: tensor)
            result[tensor.name] = (0 ..< tensor.elementCount).map { i in
                HalfFloat.float(bf16Bits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
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
