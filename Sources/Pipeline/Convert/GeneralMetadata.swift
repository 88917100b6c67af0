public import TensorCore
public import Formats

/// The `general.*` entries of a conversion (name, size label, model-card fields, sampling),
/// from the gguf-py metadata heuristics ported in Formats' ``ModelMetadata``.
enum GeneralMetadata {
    /// - Parameter tensors: the output tensors (GGUF names, numpy-order shapes), which the
    ///   converter counts for the size label.
    static func entries(directory: HFModelDirectory, tensors: [(name: String, shape: [Int])]) throws -> [GGUFKeyValue] {
        let metadata = try ModelMetadata.load(
            directory: directory.path, config: directory.config.object, parameterCount: ParameterCount(tensors: tensors))
        return metadata.entries.map { GGUFKeyValue($0.key, ggufValue($0.value)) }
    }

    static func ggufValue(_ v: MetadataValue) -> GGUFValue {
        switch v {
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
