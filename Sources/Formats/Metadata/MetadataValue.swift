public import TensorCore

/// A GGUF metadata value as the general.* keys use them, independent of the GGUF writer's own
/// value type (the caller maps one onto the other).
public enum MetadataValue: Sendable, Hashable {
    case string(String)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case stringArray([String])
    case int32Array([Int32])
    case float32Array([Float])
    case boolArray([Bool])

    /// The GGUF type name (`STRING`, `UINT32`, `ARRAY`, …) as gguf-py spells it.
    public var typeName: String {
        switch self {
        case .string: "STRING"
        case .uint32: "UINT32"
        case .int32: "INT32"
        case .float32: "FLOAT32"
        case .bool: "BOOL"
        case .stringArray, .int32Array, .float32Array, .boolArray: "ARRAY"
        }
    }

    /// For arrays, the element type name; nil for scalars.
    public var elementTypeName: String? {
        switch self {
        case .stringArray: "STRING"
        case .int32Array: "INT32"
        case .float32Array: "FLOAT32"
        case .boolArray: "BOOL"
        default: nil
        }
    }
}

/// One key/value pair of GGUF metadata.
public struct MetadataEntry: Sendable, Hashable {
    public var key: String
    public var value: MetadataValue
    public init(_ key: String, _ value: MetadataValue) {
        self.key = key
        self.value = value
    }
}

/// A metadata value the converter could not write: llama.cpp's converter fails on these too.
public struct MetadataError: ClassifiedError, Hashable {
    /// The GGUF key (or source field) concerned.
    public let key: String
    public let reason: String

    public init(key: String, _ reason: String) {
        self.key = key
        self.reason = reason
    }

    public var kind: ErrorKind { .malformedInput }
    public var description: String { "\(key): \(reason)" }
}
