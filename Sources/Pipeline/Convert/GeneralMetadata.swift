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
        return metadata.entries.map { GGUFKeyValue($0.key, $0.value.ggufValue) }
    }

}
