import TensorCore

/// A Hugging Face model directory as transformers' `save_pretrained` leaves it: `config.json`,
/// safetensors weights (one file or index + shards) and tokenizer files.
public final class HFModelDirectory: @unchecked Sendable {
    // @unchecked: everything is immutable after init.

    /// The model directory.
    public let path: String
    /// The parsed `config.json`.
    public let config: HFConfig
    /// The weights, as one tensor list across shards.
    public let weights: SafetensorsCheckpoint
    /// Names of the tokenizer and generation files present, in ``tokenizerFileNames`` order.
    public let tokenizerFiles: [String]

    /// Files other than weights and config that converters copy or read.
    public static let tokenizerFileNames = [
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
        "special_tokens_map.json", "generation_config.json", "added_tokens.json",
    ]

    /// Opens a model directory, or the weights file (`.safetensors` or index `.json`) inside one;
    /// `config.json` is read from the same directory.
    /// - Throws: ``PathError`` naming the offending file, wrapping ``HFModelError/missingConfig``,
    ///   ``HFModelError/noWeights(otherWeights:)``, a JSON error, or the weights' errors (see
    ///   ``SafetensorsCheckpoint/init(path:)``).
    public init(path: String) throws {
        let directory: String
        if FileSystem.isDirectory(path) {
            directory = path
        } else if FileSystem.exists(path) {
            directory = FileSystem.directoryName(path)
        } else {
            throw PathError(path: path, FileAccessError.notFound)
        }
        self.path = directory
        let configPath = FileSystem.join(directory, "config.json")
        guard FileSystem.exists(configPath) else { throw PathError(path: directory, HFModelError.missingConfig) }
        config = try HFConfig(path: configPath)
        weights = try SafetensorsCheckpoint(path: path)
        tokenizerFiles = HFModelDirectory.tokenizerFileNames.filter { FileSystem.exists(FileSystem.join(directory, $0)) }
    }

    /// Path of `name` inside the directory.
    public func path(of name: String) -> String { FileSystem.join(path, name) }

    /// Every tensor, shard by shard.
    public var tensors: [CheckpointTensor] { weights.tensors }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> CheckpointTensor? { weights.tensor(named: name) }

    /// The data of `tensor`, valid while this object lives.
    public func bytes(of tensor: CheckpointTensor) -> UnsafeRawBufferPointer { weights.bytes(of: tensor) }

    /// The path of the shard file holding `tensor`.
    public func shardPath(of tensor: CheckpointTensor) -> String { weights.file(of: tensor).path }
}
