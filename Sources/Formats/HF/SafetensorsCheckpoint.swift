public import TensorCore

/// Why a Hugging Face model directory could not be opened.
public enum HFModelError: ClassifiedError, Hashable {
    /// The directory has no `config.json`.
    case missingConfig
    /// The directory has neither `model.safetensors` nor `model.safetensors.index.json`;
    /// `otherWeights` lists weight files of other kinds that are there (`pytorch_model.bin`, …).
    case noWeights(otherWeights: [String])

    public var kind: ErrorKind { .missingInput }

    public var description: String {
        switch self {
        case .missingConfig:
            "no config.json in the model directory"
        case .noWeights(let others) where others.isEmpty:
            "no model.safetensors or model.safetensors.index.json in the model directory"
        case .noWeights(let others):
            "no model.safetensors or model.safetensors.index.json in the model directory (other weight files there: \(others.joined(separator: ", ")))"
        }
    }
}

/// A tensor of a possibly sharded checkpoint: which shard holds it, and where.
public struct CheckpointTensor: Sendable, Hashable {
    /// Index of the shard in ``SafetensorsCheckpoint/files``.
    public let shard: Int
    /// The tensor within that shard.
    public let tensor: SafetensorsTensor

    public var name: String { tensor.name }
    public var dtype: DType { tensor.dtype }
    public var shape: [Int] { tensor.shape }
    public var byteCount: Int { tensor.byteCount }
    public var elementCount: Int { tensor.elementCount }
}

/// The safetensors weights of a model: one file, or the shards named by an index, as one
/// tensor list.
///
/// For a sharded checkpoint every shard is opened and checked against the index both ways:
/// each tensor the index assigns to a shard must be in it, and each tensor of a shard must be
/// assigned to that shard (so no tensor is in two shards). Errors name the shard file.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    // @unchecked: everything is immutable after init.

    /// The single file or the index file that was opened.
    public let path: String
    /// The directory holding the files.
    public let directory: String
    /// The index, for a sharded checkpoint.
    public let index: SafetensorsIndex?
    /// The safetensors files (one, or the shards in sorted order).
    public let files: [SafetensorsFile]
    /// Every tensor: shard by shard, in data order within a shard.
    public let tensors: [CheckpointTensor]

    private let positionByName: [String: Int]

    /// The conventional names transformers uses.
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// Opens weights from `path`: a model directory (holding `model.safetensors` or
    /// `model.safetensors.index.json`), a `.safetensors` file, or an index `.json` file.
    /// - Throws: ``PathError`` naming the offending file, wrapping ``HFModelError``,
    ///   ``SafetensorsError``, ``SafetensorsIndexError`` or ``FileAccessError``.
    public init(path: String) throws {
        var file = path
        if FileSystem.isDirectory(path) {
            guard let found = SafetensorsCheckpoint.weightsFile(inDirectory: path) else {
                throw PathError(path: path, HFModelError.noWeights(otherWeights: SafetensorsCheckpoint.otherWeightFiles(inDirectory: path)))
            }
            file = found
        }
        self.path = file
        directory = FileSystem.directoryName(file)

        if file.hasSuffix(".json") {
            let index = try SafetensorsIndex(path: file)
            var files: [SafetensorsFile] = []
            var tensors: [CheckpointTensor] = []
            var expected: [String: [String]] = [:]
            for (tensor, shard) in index.weightMap { expected[shard, default: []].append(tensor) }
            for shardName in index.shardFiles {
                let shardPath = FileSystem.join(directory, shardName)
                let shard = try SafetensorsFile(path: shardPath)
                for name in expected[shardName] ?? [] where shard.tensor(named: name) == nil {
                    throw PathError(path: shardPath, SafetensorsIndexError.missingTensor(name: name))
                }
                for t in shard.tensors {
                    switch index.shard(of: t.name) {
                    case shardName?: break
                    case let other?: throw PathError(path: shardPath, SafetensorsIndexError.tensorInOtherShard(name: t.name, indexedShard: other))
                    case nil: throw PathError(path: shardPath, SafetensorsIndexError.unlistedTensor(name: t.name))
                    }
                    tensors.append(CheckpointTensor(shard: files.count, tensor: t))
                }
                files.append(shard)
            }
            self.index = index
            self.files = files
            self.tensors = tensors
        } else {
            let single = try SafetensorsFile(path: file)
            index = nil
            files = [single]
            tensors = single.tensors.map { CheckpointTensor(shard: 0, tensor: $0) }
        }
        var positions: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { positions[t.name] = i }
        positionByName = positions
    }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> CheckpointTensor? {
        positionByName[name].map { tensors[$0] }
    }

    /// The shard file holding `tensor`.
    public func file(of tensor: CheckpointTensor) -> SafetensorsFile { files[tensor.shard] }

    /// The data of `tensor`, valid while this checkpoint lives.
    public func bytes(of tensor: CheckpointTensor) -> UnsafeRawBufferPointer {
        files[tensor.shard].bytes(of: tensor.tensor)
    }

    /// The data of the tensor called `name`.
    /// - Throws: ``PathError`` wrapping ``SafetensorsError/tensorNotFound(_:)``.
    public func bytes(named name: String) throws -> UnsafeRawBufferPointer {
        guard let t = tensor(named: name) else { throw PathError(path: path, SafetensorsError.tensorNotFound(name)) }
        return bytes(of: t)
    }

    /// `__metadata__` of the first file (transformers writes the same in every shard).
    public var metadata: [(key: String, value: String)]? { files.first?.metadata }

    /// Total bytes of tensor data.
    public var totalByteCount: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    /// The weights file transformers would load from `directory`: `model.safetensors` first,
    /// then the index (the order of transformers' `_get_resolved_checkpoint_files`).
    public static func weightsFile(inDirectory directory: String) -> String? {
        for name in [singleFileName, indexFileName] {
            let candidate = FileSystem.join(directory, name)
            if FileSystem.exists(candidate) && !FileSystem.isDirectory(candidate) { return candidate }
        }
        return nil
    }

    /// Weight files wconv does not read, to explain a missing safetensors file.
    static func otherWeightFiles(inDirectory directory: String) -> [String] {
        (FileSystem.contents(ofDirectory: directory) ?? []).filter { name in
            name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") || name.hasSuffix(".gguf")
                || name.hasSuffix(".safetensors") || name.hasSuffix(".ckpt") || name.hasSuffix(".h5") || name.hasSuffix(".msgpack")
        }
    }
}
