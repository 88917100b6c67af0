/// Conversions between GGUF values and the typed metadata values the tokenizer and `general.*`
/// code produce. They sit here, beside both types, so every writer and reader (convert, adapters,
/// the fuzz targets) maps them one way.

extension TokenizerMetadataValue {
    /// The GGUF value the converter writes for this `tokenizer.*` entry.
    public var ggufValue: GGUFValue {
        switch self {
        case .string(let s): .string(s)
        case .bool(let b): .bool(b)
        case .uint32(let u): .uint32(u)
        case .integer(let i): .int64(i)
        case .stringArray(let a): .array(.string(GGUFStringList(a)))
        case .float32Array(let a): .array(.float32(a))
        case .int32Array(let a): .array(.int32(a))
        }
    }

    /// A `tokenizer.*` value read from a GGUF; nil for value types no tokenizer key uses.
    public init?(gguf v: GGUFValue) {
        switch v {
        case .string(let s): self = .string(s)
        case .bool(let b): self = .bool(b)
        case .uint32(let u): self = .uint32(u)
        case .array(let a):
            switch a {
            case .string(let list): self = .stringArray(Array(list))
            case .float32(let f): self = .float32Array(f)
            case .int32(let i): self = .int32Array(i)
            default:
                guard let integers = a.integers else { return nil }
                self = .int32Array(integers.map { Int32(truncatingIfNeeded: $0) })
            }
        default:
            guard let i = v.intValue else { return nil }
            self = .integer(Int64(i))
        }
    }
}

extension GGUFVocabulary {
    /// The vocabulary held in a GGUF's `tokenizer.*` keys.
    public init(gguf metadata: GGUFMetadata) throws {
        let pairs = metadata.entries.compactMap { kv -> (key: String, value: TokenizerMetadataValue)? in
            guard kv.key.hasPrefix("tokenizer.") else { return nil }
            return TokenizerMetadataValue(gguf: kv.value).map { (kv.key, $0) }
        }
        try self.init(metadata: pairs)
    }
}

extension MetadataValue {
    /// The GGUF value of a `general.*` entry.
    public var ggufValue: GGUFValue {
        switch self {
        case .string(let s): .string(s)
        case .uint32(let u): .uint32(u)
        case .int32(let i): .int32(i)
        case .float32(let f): .float32(f)
        case .bool(let b): .bool(b)
        case .stringArray(let a): .array(.string(GGUFStringList(a)))
        case .int32Array(let a): .array(.int32(a))
        case .float32Array(let a): .array(.float32(a))
        case .boolArray(let a): .array(.bool(a))
        }
    }
}
