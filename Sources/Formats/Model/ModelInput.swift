public import TensorCore

/// Which container an input path is.
public enum ModelFormat: String, Sendable, Hashable {
    /// A Hugging Face model directory (config.json + safetensors weights).
    case hfDirectory = "hf"
    /// A bare safetensors file or a shard index.
    case safetensors
    /// A GGUF file (or the first of a split set).
    case gguf
}

/// Why an input path could not be recognised.
public enum ModelInputError: ClassifiedError, Hashable {
    case unknownFormat

    public var kind: ErrorKind { .malformedInput }
    public var description: String {
        switch self {
        case .unknownFormat: "not a GGUF file, safetensors file or model directory (unrecognised first bytes)"
        }
    }
}

/// Any model input wconv reads, opened and validated, with a uniform tensor list.
public enum ModelInput: Sendable {
    case hf(HFModelDirectory)
    case safetensors(SafetensorsCheckpoint)
    case gguf(GGUFModel)

    /// Opens `path`, deciding the format from what it is: a directory is an HF model, a file
    /// starting with `GGUF` is GGUF, anything else is tried as safetensors (or a shard index).
    public static func open(path: String) throws -> ModelInput {
        guard FileSystem.exists(path) else { throw PathError(path: path, FileAccessError.notFound) }
        if FileSystem.isDirectory(path) { return .hf(try HFModelDirectory(path: path)) }
        let file = try MappedFile(path: path)
        if file.count >= 4, file.bytes[0] == 0x47, file.bytes[1] == 0x47, file.bytes[2] == 0x55, file.bytes[3] == 0x46 {
            return .gguf(try GGUFModel.open(path: path))
        }
        if path.hasSuffix(".json") || path.hasSuffix(".safetensors") || looksLikeSafetensors(file.bytes) {
            return .safetensors(try SafetensorsCheckpoint(path: path))
        }
        throw PathError(path: path, ModelInputError.unknownFormat)
    }

    /// A safetensors file starts with a header length that fits the file, then `{` (or spaces).
    static func looksLikeSafetensors(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 10 else { return false }
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        return n <= UInt64(bytes.count - 8) && (bytes[8] == UInt8(ascii: "{") || bytes[8] == UInt8(ascii: " "))
    }

    public var format: ModelFormat {
        switch self {
        case .hf: .hfDirectory
        case .safetensors: .safetensors
        case .gguf: .gguf
        }
    }

    public var path: String {
        switch self {
        case .hf(let d): d.path
        case .safetensors(let c): c.path
        case .gguf(let g): g.path
        }
    }

    /// The tensors as a format-independent source.
    public var tensorSource: any TensorSource {
        switch self {
        case .hf(let d): CheckpointTensorSource(d.weights)
        case .safetensors(let c): CheckpointTensorSource(c)
        case .gguf(let g): GGUFTensorSource(g)
        }
    }
}

/// A safetensors checkpoint (one file or shards) as a ``TensorSource``.
public final class CheckpointTensorSource: TensorSource {
    public let checkpoint: SafetensorsCheckpoint
    public let entries: [TensorEntry]

    public init(_ checkpoint: SafetensorsCheckpoint) {
        self.checkpoint = checkpoint
        entries = checkpoint.tensors.enumerated().map { i, t in
            let file = checkpoint.file(of: t)
            return TensorEntry(
                name: t.name, encoding: .dense(t.dtype), shape: t.shape, byteCount: t.byteCount,
                file: file.path, fileOffset: file.header.dataStart + t.tensor.dataOffsets.lowerBound, index: i)
        }
    }

    public func bytes(of entry: TensorEntry) throws -> UnsafeRawBufferPointer {
        checkpoint.bytes(of: checkpoint.tensors[entry.index])
    }

    public func releasePages(of view: UnsafeRawBufferPointer) {
        for file in checkpoint.files { file.releasePages(ofView: view) }
    }

    public func checkUnchanged() throws {
        for file in checkpoint.files { try file.checkUnchanged() }
    }
}

/// A GGUF model (one file or a split set) as a ``TensorSource``.
public final class GGUFTensorSource: TensorSource {
    public let model: GGUFModel
    public let entries: [TensorEntry]

    public init(_ model: GGUFModel) {
        self.model = model
        entries = model.tensors.enumerated().map { i, t in
            let part = model.parts[t.part]
            return TensorEntry(
                name: t.name, encoding: .ggml(t.info.type), shape: t.info.shape, byteCount: t.info.byteCount,
                file: part.path, fileOffset: part.dataOffset + t.info.offset, index: i)
        }
    }

    public func bytes(of entry: TensorEntry) throws -> UnsafeRawBufferPointer {
        try model.bytes(of: model.tensors[entry.index])
    }

    public func releasePages(of view: UnsafeRawBufferPointer) {
        for part in model.parts { part.releasePages(of: view) }
    }

    public func checkUnchanged() throws {
        for part in model.parts { try part.checkUnchanged() }
    }
}
