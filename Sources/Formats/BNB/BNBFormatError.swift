public import TensorCore

/// Why the bitsandbytes layout of a checkpoint (REFERENCE §5.4–5.5) could not be read.
///
/// One case per failure; every case names the tensor (or the weight a piece belongs to), and
/// readers wrap it in a ``PathError`` naming the file.
public enum BNBFormatError: ClassifiedError, Hashable {
    /// A quantized weight lacks one of the tensors it needs (`piece` is the full expected name).
    case missingPiece(weight: String, piece: String)
    /// A piece of quantization state (`.absmax`, `.SCB`, …) has no quantized weight to belong to.
    case orphanPiece(tensor: String, expected: String)
    /// A tensor has a dtype the layout does not allow.
    case wrongDType(tensor: String, expected: [DType], actual: String)
    /// A tensor's shape disagrees with the quantization state.
    case wrongShape(tensor: String, expected: [Int], actual: [Int])
    /// The packed `quant_state` JSON is not what bitsandbytes writes.
    case invalidQuantState(tensor: String, reason: String)
    /// A 4-bit type other than nf4/fp4 (in the key suffix or the JSON).
    case unknownQuantType(tensor: String, name: String)
    /// The key says one 4-bit type, the JSON another.
    case quantTypeMismatch(tensor: String, key: String, json: String)
    /// A `dtype`/`nested_dtype`/`nested_blocksize` bitsandbytes can write but wconv cannot use.
    case unsupportedValue(tensor: String, what: String, value: String)
    /// An int8 weight stored in a GPU tile layout (col32, col_turing, col_ampere) instead of rows.
    case unsupportedWeightFormat(tensor: String, value: Int)
    /// `quantization_config` in config.json is malformed.
    case invalidConfig(reason: String)

    public var kind: ErrorKind {
        switch self {
        case .unknownQuantType, .unsupportedValue, .unsupportedWeightFormat: .unsupported
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .missingPiece(let weight, let piece):
            "bitsandbytes weight \(weight) has no \(piece)"
        case .orphanPiece(let tensor, let expected):
            "tensor \(tensor) is bitsandbytes quantization state, but \(expected) is missing"
        case .wrongDType(let tensor, let expected, let actual):
            "tensor \(tensor) has dtype \(actual), expected \(expected.map(\.rawValue).joined(separator: " or "))"
        case .wrongShape(let tensor, let expected, let actual):
            "tensor \(tensor) has shape \(actual), expected \(expected)"
        case .invalidQuantState(let tensor, let reason):
            "tensor \(tensor): invalid bitsandbytes quant_state: \(reason)"
        case .unknownQuantType(let tensor, let name):
            "tensor \(tensor): unknown bitsandbytes 4-bit type '\(name)' (known: nf4, fp4)"
        case .quantTypeMismatch(let tensor, let key, let json):
            "tensor \(tensor): key says \(key) but quant_state says \(json)"
        case .unsupportedValue(let tensor, let what, let value):
            "tensor \(tensor): unsupported \(what) \(value)"
        case .unsupportedWeightFormat(let tensor, let value):
            "tensor \(tensor): int8 weight_format \(value) (a GPU tile layout) is not supported; only 0 (row) is"
        case .invalidConfig(let reason):
            "config.json quantization_config: \(reason)"
        }
    }
}
