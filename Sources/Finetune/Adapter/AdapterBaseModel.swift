public import Formats
import TensorCore
import Pipeline

/// What converting an adapter needs to know about its base model: the family (for the tensor
/// names), the head counts (for the Q/K row permutation of `lora_B`) and whether the output
/// head is tied to the embeddings.
public struct AdapterBaseModel: Sendable {
    public let architecture: ArchitectureDescription
    public let headCount: Int
    public let kvHeadCount: Int
    /// No separate `lm_head.weight` / `output.weight`.
    public let tiedEmbeddings: Bool
    /// Where the description came from.
    public let path: String

    public init(architecture: ArchitectureDescription, headCount: Int, kvHeadCount: Int, tiedEmbeddings: Bool, path: String) {
        self.architecture = architecture
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.tiedEmbeddings = tiedEmbeddings
        self.path = path
    }

    /// Reads a base model description from an HF model directory (only `config.json` is read;
    /// weights need not be present), a `config.json` file, or a GGUF model.
    /// - Throws: ``PathError`` for a missing or malformed config, or an architecture without a
    ///   GGUF description.
    public static func load(path: String) throws -> AdapterBaseModel {
        guard FileSystem.exists(path) else { throw PathError(path: path, FileAccessError.notFound) }
        let configPath = FileSystem.isDirectory(path) ? FileSystem.join(path, "config.json") : path
        if FileSystem.isDirectory(path) || path.hasSuffix(".json") {
            guard FileSystem.exists(configPath) else { throw PathError(path: path, HFModelError.missingConfig) }
            let config = try HFConfig(path: configPath)
            return try withPath(configPath) {
                guard let name = try config.architecture else { throw ConvertError.missingArchitecture }
                guard let arch = ArchitectureDescription.forHF(architecture: name) else {
                    if let family = ArchitectureDescription.withoutGGUF[name] {
                        throw ConvertError.noGGUFArchitecture(family: family, hfArchitecture: name)
                    }
                    throw ConvertError.unsupportedArchitecture(name)
                }
                // The family's own head-count keys (n_head, num_kv_heads, attn_config.kv_n_heads, …).
                let (heads, kvHeads) = try arch.headCounts(config)
                return AdapterBaseModel(architecture: arch, headCount: heads, kvHeadCount: kvHeads,
                                        tiedEmbeddings: try config.tieWordEmbeddings, path: path)
            }
        }
        let model = try GGUFModel.open(path: path)
        return try withPath(path) {
            let meta = model.metadata
            guard let name = meta[GGUFKeys.General.architecture]?.stringValue else {
                throw ConvertError.missingMetadata(GGUFKeys.General.architecture)
            }
            guard let arch = ArchitectureDescription.forGGUF(architecture: name) else { throw ConvertError.unsupportedArchitecture(name) }
            guard let heads = meta[GGUFKeys.Architecture.headCount(name)]?.intValue else {
                throw ConvertError.missingMetadata(GGUFKeys.Architecture.headCount(name))
            }
            let kv = meta[GGUFKeys.Architecture.headCountKV(name)]?.intValue ?? heads
            return AdapterBaseModel(architecture: arch, headCount: heads, kvHeadCount: kv,
                                    tiedEmbeddings: model.tensor(named: "output.weight") == nil, path: path)
        }
    }

    /// The row permutation HF → GGUF of a `lora_B` for `permutation` (nil: rows unchanged).
    public func toGGUF(_ permutation: HeadPermutation?) -> RowPermutation? {
        permutation.map { .toGGUF(heads: $0 == .queryHeads ? headCount : kvHeadCount) }
    }

    /// The row permutation GGUF → HF.
    public func toHF(_ permutation: HeadPermutation?) -> RowPermutation? {
        permutation.map { .toHF(heads: $0 == .queryHeads ? headCount : kvHeadCount) }
    }
}
