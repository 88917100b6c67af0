public import TensorCore
public import Formats

/// What a conversion will write, decided before any byte is: every stored tensor with its
/// source and target type, shape and size, the weight files with their exact sizes, and an
/// estimate of the peak memory. `--dry-run` prints it (schema in docs/dry-run.md); a real run
/// with the same inputs and options writes exactly these tensors and file sizes.
public struct OutputPlan: Sendable {
    /// One tensor as stored in the output.
    public struct Tensor: Sendable, Hashable {
        public var name: String
        /// How its values are stored in the input (`F32`, `BF16`, `Q8_0`, …; for the pieces of a
        /// bitsandbytes weight, the dtype of the weight they come from).
        public var sourceType: String
        /// How it is stored in the output (`F16`, `Q4_K`, `U8`, …).
        public var type: String
        /// Row-major (numpy order).
        public var shape: [Int]
        public var byteCount: Int

        public init(name: String, sourceType: String, type: String, shape: [Int], byteCount: Int) {
            self.name = name
            self.sourceType = sourceType
            self.type = type
            self.shape = shape
            self.byteCount = byteCount
        }
    }

    /// One weights file and its exact size (companion files such as config.json are not listed).
    public struct File: Sendable, Hashable {
        /// Relative to the output directory, or the file's own name for a file output.
        public var path: String
        public var byteCount: Int

        public init(path: String, byteCount: Int) {
            self.path = path
            self.byteCount = byteCount
        }
    }

    /// `gguf` or `safetensors`.
    public var format: String
    public var tensors: [Tensor]
    public var files: [File]
    /// Estimated peak working memory of the run, in bytes: the output header and the largest
    /// tensor's buffers (see docs/dry-run.md). Not counted: mapped input pages (the kernel drops
    /// them as the run moves on), parsed metadata such as the vocabulary, and the process itself.
    public var peakMemoryBytes: Int
    /// The largest input span one tensor maps (its stored bytes; all pieces of a bitsandbytes
    /// weight): an upper bound on the input pages resident at once, which are file-backed and
    /// released as the run moves on.
    public var peakInputBytes: Int
    public var warnings: [String]

    public init(format: String, tensors: [Tensor], files: [File], peakMemoryBytes: Int, peakInputBytes: Int = 0,
                warnings: [String] = []) {
        self.format = format
        self.tensors = tensors
        self.files = files
        self.peakMemoryBytes = peakMemoryBytes
        self.peakInputBytes = peakInputBytes
        self.warnings = warnings
    }

    /// Total bytes of ``files``.
    public var outputBytes: Int { files.reduce(0) { $0 + $1.byteCount } }
    /// Total bytes of tensor data.
    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    /// The plan as JSON (docs/dry-run.md).
    public var json: JSONValue {
        var o = JSONObject()
        o["format"] = .string(format)
        o["tensors"] = .array(tensors.map { t in
            .object(JSONObject([("name", .string(t.name)), ("source_type", .string(t.sourceType)), ("type", .string(t.type)),
                                ("shape", .array(t.shape.map { .int(Int64($0)) })), ("bytes", .int(Int64(t.byteCount)))]))
        })
        o["files"] = .array(files.map { .object(JSONObject([("path", .string($0.path)), ("bytes", .int(Int64($0.byteCount)))])) })
        o["tensor_bytes"] = .int(Int64(tensorBytes))
        o["output_bytes"] = .int(Int64(outputBytes))
        o["peak_memory_bytes"] = .int(Int64(peakMemoryBytes))
        o["peak_input_bytes"] = .int(Int64(peakInputBytes))
        o["warnings"] = .array(warnings.map { .string($0) })
        return .object(o)
    }

    /// The working memory of streaming one tensor row by row (``RowTranscoder``,
    /// `GGUFRowQuantizer`): the 4 MiB output buffer (a row larger than that gets its own), and
    /// per worker a float32 scratch batch of at least 16384 values or one row.
    public static func streamingBytes(rowLength: Int, rowBytes: Int, threads: Int) -> Int {
        let buffer = 1 << 22
        return buffer + (rowBytes > buffer ? rowBytes : 0) + max(1, threads) * max(16384, rowLength) * 4
    }

    /// The plan of a GGUF output written by ``GGUFWriter`` (one file) or ``GGUFSplitWriter``.
    public static func gguf(metadata: GGUFMetadata, tensors: [Tensor], descriptors: [GGUFTensorDescriptor], alignment: Int,
                            output: String, splitMaxBytes: Int?, peak: Int, peakInput: Int, warnings: [String]) throws -> OutputPlan {
        var files: [File] = []
        var headerBytes = 0
        if let limit = splitMaxBytes {
            let splitter = try GGUFSplitWriter(metadata: metadata, tensors: descriptors, alignment: alignment, limit: .maxBytes(limit))
            let prefix = output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output
            for (path, part) in zip(splitter.paths(prefix: prefix), splitter.parts) {
                files.append(File(path: FileSystem.baseName(path), byteCount: part.fileSize))
                headerBytes = max(headerBytes, part.dataOffset)
            }
        } else {
            let writer = try GGUFWriter(metadata: metadata, tensors: descriptors, alignment: alignment)
            files.append(File(path: FileSystem.baseName(output), byteCount: writer.fileSize))
            headerBytes = writer.dataOffset
        }
        return OutputPlan(format: "gguf", tensors: tensors, files: files, peakMemoryBytes: peak + headerBytes, peakInputBytes: peakInput,
                          warnings: warnings)
    }

    /// The plan of a safetensors output (one file or shards and index) of `shards`.
    public static func safetensors(_ shards: SafetensorsShardPlan, tensors: [Tensor], peak: Int, peakInput: Int,
                                   warnings: [String] = []) -> OutputPlan {
        var files = shards.shards.map { File(path: $0.fileName, byteCount: $0.layout.fileByteCount) }
        if shards.isSharded { files.append(File(path: shards.indexFileName, byteCount: shards.indexJSON().utf8.count)) }
        let headers = shards.shards.map(\.layout.header.count).max() ?? 0
        return OutputPlan(format: "safetensors", tensors: tensors, files: files, peakMemoryBytes: peak + headers,
                          peakInputBytes: peakInput, warnings: warnings)
    }
}
