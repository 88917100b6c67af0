public import TensorCore

/// How a tensor's bytes encode its elements: a dense dtype (safetensors) or a ggml type (GGUF).
public enum TensorEncoding: Sendable, Hashable, CustomStringConvertible {
    case dense(DType)
    case ggml(GGMLType)

    /// The dense dtype, also for the GGUF types that are plain floats/ints (F32, F16, BF16, I8, …).
    public var denseType: DType? {
        switch self {
        case .dense(let d): d
        case .ggml(let g): g.denseEquivalent
        }
    }

    /// The GGUF type for these bytes, if GGUF can hold them unchanged.
    public var ggmlType: GGMLType? {
        switch self {
        case .dense(let d): GGMLType(dense: d)
        case .ggml(let g): g
        }
    }

    /// Whether the elements are quantized blocks (not plain numbers).
    public var isQuantized: Bool {
        if case .ggml(let g) = self { return g.isQuantized || !g.isKnown }
        return false
    }

    public var description: String {
        switch self {
        case .dense(let d): d.rawValue
        case .ggml(let g): g.name
        }
    }
}

/// One tensor of a model input, whatever its file format.
public struct TensorEntry: Sendable, Hashable {
    public let name: String
    public let encoding: TensorEncoding
    /// Row-major shape, slowest dimension first (numpy order; GGUF's `ne` reversed).
    public let shape: [Int]
    public let byteCount: Int
    /// Which file of a multi-file input holds it (shard or split part), for messages.
    public let file: String
    /// Byte offset of the data inside `file`.
    public let fileOffset: Int
    /// Opaque position in the source's own table.
    public let index: Int

    public init(name: String, encoding: TensorEncoding, shape: [Int], byteCount: Int, file: String, fileOffset: Int, index: Int) {
        self.name = name
        self.encoding = encoding
        self.shape = shape
        self.byteCount = byteCount
        self.file = file
        self.fileOffset = fileOffset
        self.index = index
    }

    public var elementCount: Int { TensorCore.elementCount(of: shape) ?? 0 }
}

/// A model's tensors, readable one at a time from memory-mapped files.
///
/// Implemented by the safetensors (single, sharded, HF directory) and GGUF (single, split)
/// readers, so pipelines handle every input the same way.
public protocol TensorSource: AnyObject, Sendable {
    /// The tensors, in file order.
    var entries: [TensorEntry] { get }
    /// The bytes of `entry`; valid while the source is alive.
    func bytes(of entry: TensorEntry) throws -> UnsafeRawBufferPointer
    /// Tells the source the caller is done with part of a view it returned, so those mapped
    /// pages can leave the resident set (streaming pipelines call this as they go, which keeps
    /// peak RSS at a few megabytes of input whatever the tensor size). Other memory is ignored.
    func releasePages(of view: UnsafeRawBufferPointer)
    /// Throws ``FileAccessError/changedWhileOpen`` (in a ``PathError``) if a file of the source
    /// was truncated, extended or rewritten since it was opened. Pipelines call it after reading
    /// the tensors and before committing an output, so a changed input never yields a result.
    func checkUnchanged() throws
}

extension TensorSource {
    /// Sources that are not files have nothing to check.
    public func checkUnchanged() throws {}

    /// Releases all of `entry`'s pages (see ``releasePages(of:)-(UnsafeRawBufferPointer)``).
    public func releasePages(of entry: TensorEntry) {
        if let bytes = try? self.bytes(of: entry) { releasePages(of: bytes) }
    }

    /// Asks the kernel to start reading `entry`'s pages ahead of use (MADV_WILLNEED), so a
    /// streaming pass does not stall on one page fault at a time.
    public func prefetch(_ entry: TensorEntry) {
        if let bytes = try? self.bytes(of: entry) { MappedFile.adviseWillNeed(bytes) }
    }
}

extension TensorSource {
    /// The entry named `name`, if any.
    public func entry(named name: String) -> TensorEntry? {
        entries.first { $0.name == name }
    }
}
