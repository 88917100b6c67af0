public import TensorCore

/// Why a bitsandbytes-format quantization or dequantization was refused.
///
/// One case per failure so tests can match them; ``kind`` maps each to the CLI's exit-code class.
public enum BNBError: ClassifiedError, Equatable {
    /// The 4-bit block size is not one bitsandbytes accepts (32, 64, …, 4096).
    case invalidBlockSize(Int)
    /// The 8-bit blockwise block size is not positive.
    case invalidNestedBlockSize(Int)
    /// A buffer has the wrong number of elements or bytes for the tensor it describes.
    case sizeMismatch(what: String, expected: Int, actual: Int)
    /// A shape has a negative dimension or its element count overflows.
    case invalidShape([Int])
    /// A quant type or dtype name bitsandbytes does not use for 4-bit weights.
    case unsupportedName(what: String, name: String)
    /// A code table for 8-bit blockwise quantization is not 256 ascending values.
    case invalidCodebook(String)

    public var kind: ErrorKind {
        switch self {
        case .invalidBlockSize, .invalidNestedBlockSize, .unsupportedName: .unsupported
        case .sizeMismatch, .invalidShape, .invalidCodebook: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .invalidBlockSize(let size):
            "bitsandbytes 4-bit block size must be one of 32, 64, 128, 256, 512, 1024, 2048, 4096 (got \(size))"
        case .invalidNestedBlockSize(let size):
            "blockwise 8-bit block size must be positive (got \(size))"
        case .sizeMismatch(let what, let expected, let actual):
            "\(what) has \(actual) elements, expected \(expected)"
        case .invalidShape(let shape):
            "invalid tensor shape \(shape)"
        case .unsupportedName(let what, let name):
            "unsupported \(what) '\(name)'"
        case .invalidCodebook(let why):
            "invalid 8-bit code table: \(why)"
        }
    }
}

/// Raw pointers handed to `parallelChunks` workers. Each worker writes only the outputs of its own
/// blocks, so sharing the base pointers is race-free.
struct SendablePointers<Input, Output>: @unchecked Sendable {
    let input: UnsafePointer<Input>
    let output: UnsafeMutablePointer<Output>
}
