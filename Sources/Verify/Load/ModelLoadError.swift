public import TensorCore

/// Why a model input cannot be loaded for the forward pass, one case per cause.
public enum ModelLoadError: ClassifiedError, Hashable {
    /// The input is a bare safetensors file: without config.json its shape is unknown.
    case noConfiguration
    /// A GGUF file of an architecture the forward pass does not implement.
    case unsupportedArchitecture(String)
    /// A GGUF metadata key the configuration needs is missing or has the wrong type.
    case missingMetadata(String)
    /// A tensor's shape is not what the configuration implies.
    case tensorShape(name: String, expected: [Int], actual: [Int])
    /// A tensor's element type cannot be decoded to float32.
    case undecodableType(name: String, type: String)
    /// A tensor's row length does not fit its type's blocks, or its bytes are too few.
    case badTensorLayout(name: String, reason: String)
    /// The Q/K row permutation does not fit the tensor.
    case permutationDoesNotFit(name: String, rows: Int, heads: Int)
    /// The checkpoint is quantized by a method other than bitsandbytes (GPTQ, AWQ, …).
    case unsupportedQuantization(String)
    /// The model's tokenizer cannot be built (no tokenizer files, or the vocabulary is unsupported).
    case noTokenizer(String)

    public var kind: ErrorKind {
        switch self {
        case .noConfiguration, .unsupportedArchitecture, .undecodableType, .unsupportedQuantization: .unsupported
        case .missingMetadata, .tensorShape, .badTensorLayout, .permutationDoesNotFit: .malformedInput
        case .noTokenizer: .unsupported
        }
    }

    public var description: String {
        switch self {
        case .noConfiguration:
            "a bare safetensors file has no config.json; pass the model directory instead"
        case .unsupportedArchitecture(let a):
            "architecture '\(a)' is not supported by the forward pass (supported: llama, mistral, qwen2, "
                + "gpt2, opt, phi, falcon, mpt, baichuan, qwen, persimmon)"
        case .missingMetadata(let key):
            "metadata key '\(key)' is missing or not a number"
        case .tensorShape(let name, let expected, let actual):
            "tensor '\(name)' has shape \(actual), the configuration needs \(expected)"
        case .undecodableType(let name, let type):
            "tensor '\(name)': cannot decode elements of type \(type) to float32"
        case .badTensorLayout(let name, let reason):
            "tensor '\(name)': \(reason)"
        case .permutationDoesNotFit(let name, let rows, let heads):
            "tensor '\(name)': \(rows) rows cannot be split into \(heads) heads of even size"
        case .unsupportedQuantization(let method):
            "weights quantized with '\(method)' cannot be read (supported: bitsandbytes NF4/FP4/int8, GGUF types)"
        case .noTokenizer(let why):
            "no usable tokenizer: \(why)"
        }
    }
}
