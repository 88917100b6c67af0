public import TensorCore
public import Formats

/// The `general.*` entries of a conversion (name, size label, model-card fields, sampling).
enum GeneralMetadata {
    static func entries(directory: HFModelDirectory, parameterCount: Int) throws -> [GGUFKeyValue] {
        // Filled in by the ModelMetadata port (gguf-py's metadata heuristics).
        []
    }
}
