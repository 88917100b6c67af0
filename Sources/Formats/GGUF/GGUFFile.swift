import TensorCore

/// A GGUF file opened for reading: the parsed header over a read-only memory mapping.
///
/// Tensor data is never copied; ``bytes(of:)`` hands out views into the mapping.
public final class GGUFFile: Sendable {
    public let path: String
    public let header: GGUFHeader
    private let file: MappedFile

    /// Maps and parses the file at `path`.
    /// - Throws: ``PathError`` naming `path`, wrapping a ``GGUFError`` or a ``FileAccessError``.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.path = path
        self.file = file
        do {
            header = try GGUFHeader.parse(file.bytes, fileSize: file.count)
        } catch {
            throw PathError(path: path, error)
        }
    }

    public var version: UInt32 { header.version }
    /// Metadata in file order.
    public var metadata: GGUFMetadata { header.metadata }
    /// Tensor infos in file order.
    public var tensors: [GGUFTensorInfo] { header.tensors }
    public var alignment: Int { header.alignment }
    /// File offset of the data section.
    public var dataOffset: Int { header.dataOffset }
    /// Size of the file in bytes.
    public var fileSize: Int { file.count }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> GGUFTensorInfo? { header.tensor(named: name) }

    /// The data of `tensor`, as a view into the mapping.
    ///
    /// The view is valid only while this `GGUFFile` is alive: do not let it escape a scope
    /// that keeps the file.
    /// - Throws: ``GGUFError/tensorOutOfBounds(name:fileOffset:byteCount:fileSize:)`` if the
    ///   range is not inside the file (a tensor info from another file).
    public func bytes(of tensor: GGUFTensorInfo) throws -> UnsafeRawBufferPointer {
        // The info may come from elsewhere (another file, a caller): check with overflow in mind.
        let (start, overflow) = header.dataOffset.addingReportingOverflow(tensor.offset)
        guard !overflow, tensor.offset >= 0, tensor.byteCount >= 0, tensor.byteCount <= file.count,
              start <= file.count - tensor.byteCount, let slice = file.slice(start ..< start + tensor.byteCount)
        else {
            throw PathError(path: path, GGUFError.tensorOutOfBounds(
                name: tensor.name, fileOffset: UInt64(clamping: tensor.offset) &+ UInt64(header.dataOffset),
                byteCount: UInt64(clamping: tensor.byteCount), fileSize: file.count))
        }
        return slice
    }

    /// Advises the kernel the file will be read once from front to back.
    public func adviseSequential() { file.adviseSequential() }

    /// Lets the kernel drop a viewed range's pages from the resident set (see ``MappedFile/releasePages(of:)``).
    public func releasePages(of range: UnsafeRawBufferPointer) { file.releasePages(of: range) }

    /// Throws if the file was truncated or rewritten since it was mapped (see ``MappedFile/checkUnchanged()``).
    public func checkUnchanged() throws { try file.checkUnchanged() }
}

/// A tensor of a (possibly split) GGUF model: its info and the part holding its data.
public struct GGUFModelTensor: Sendable, Hashable {
    public let info: GGUFTensorInfo
    /// Index into ``GGUFModel/parts``.
    public let part: Int

    public var name: String { info.name }
}

/// A GGUF model in one file or split over several by llama.cpp's `gguf-split`
/// (`<prefix>-00001-of-0000N.gguf`, …).
///
/// The first part carries all metadata; every part carries `split.no` (UINT16),
/// `split.count` (UINT16) and `split.tensors.count` (INT32). Tensors of all parts are
/// presented as one list, in part order.
public final class GGUFModel: Sendable {
    /// The opened parts, in order (one for a single file).
    public let parts: [GGUFFile]
    /// All tensors, in part order then file order.
    public let tensors: [GGUFModelTensor]
    private let tensorIndex: [String: Int]

    /// Metadata of the first part (including its `split.*` keys, if any).
    public var metadata: GGUFMetadata { parts[0].metadata }
    /// Path of the first part.
    public var path: String { parts[0].path }

    /// Opens a model. A path named like `<prefix>-00002-of-00005.gguf` opens all five parts
    /// (whichever part is named); any other path is a one-part model.
    /// - Throws: ``PathError`` naming the offending part, wrapping a ``GGUFError`` or a ``FileAccessError``.
    public static func open(path: String) throws -> GGUFModel {
        guard let split = GGUFSplitName(path: path), split.count > 1 else {
            let file = try GGUFFile(path: path)
            if let declared = file.metadata[GGUFKeys.Split.count]?.intValue, declared > 1 {
                throw PathError(path: path, GGUFError.splitMismatch(
                    "file is part of a \(declared)-part split model but is not named '<prefix>-00001-of-\(GGUFSplitName.number(declared)).gguf'"))
            }
            return try GGUFModel(parts: [file])
        }
        var parts: [GGUFFile] = []
        for i in 0 ..< split.count {
            parts.append(try GGUFFile(path: split.path(part: i)))
        }
        return try GGUFModel(parts: parts)
    }

    /// Builds a model from opened parts, checking their `split.*` keys when there are several.
    public init(parts: [GGUFFile]) throws {
        precondition(!parts.isEmpty, "GGUFModel needs at least one part")
        var all: [GGUFModelTensor] = []
        var index: [String: Int] = [:]
        for (p, part) in parts.enumerated() {
            for info in part.tensors {
                if index[info.name] != nil {
                    throw PathError(path: part.path, GGUFError.duplicateTensor(info.name))
                }
                index[info.name] = all.count
                all.append(GGUFModelTensor(info: info, part: p))
            }
        }
        if parts.count > 1 {
            for (p, part) in parts.enumerated() {
                try withPath(part.path) {
                    func value(_ key: String) throws -> Int {
                        guard let v = part.metadata[key]?.intValue else { throw GGUFError.splitKeyMissing(key: key, part: p) }
                        return v
                    }
                    let number = try value(GGUFKeys.Split.number)
                    let count = try value(GGUFKeys.Split.count)
                    let tensorsCount = try value(GGUFKeys.Split.tensorsCount)
                    guard number == p else {
                        throw GGUFError.splitMismatch("file is split part \(number + 1) (split.no = \(number)) but was opened as part \(p + 1)")
                    }
                    guard count == parts.count else {
                        throw GGUFError.splitMismatch("split.count is \(count) but the model has \(parts.count) parts")
                    }
                    guard tensorsCount == all.count else {
                        throw GGUFError.splitMismatch("split.tensors.count is \(tensorsCount) but the parts hold \(all.count) tensors")
                    }
                }
            }
        }
        self.parts = parts
        tensors = all
        tensorIndex = index
    }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> GGUFModelTensor? { tensorIndex[name].map { tensors[$0] } }

    /// The data of `tensor`, a view into its part's mapping (valid while this model is alive).
    public func bytes(of tensor: GGUFModelTensor) throws -> UnsafeRawBufferPointer {
        guard parts.indices.contains(tensor.part) else {
            throw GGUFError.splitMismatch("tensor '\(tensor.name)' names part \(tensor.part + 1) of a \(parts.count)-part model")
        }
        return try parts[tensor.part].bytes(of: tensor.info)
    }
}

/// The `<prefix>-%05d-of-%05d.gguf` naming of llama.cpp's `gguf-split` (`llama_split_path`).
public struct GGUFSplitName: Sendable, Hashable {
    /// Everything before `-NNNNN-of-NNNNN.gguf` (directory included).
    public let prefix: String
    /// 0-based index of the part the path named.
    public let part: Int
    /// Number of parts.
    public let count: Int

    public init(prefix: String, part: Int, count: Int) {
        self.prefix = prefix
        self.part = part
        self.count = count
    }

    /// Recognizes a split part's path; nil if it is not named like one.
    public init?(path: String) {
        // Parse from the end: ".gguf", digits, "-of-", digits, "-".
        let suffix = ".gguf"
        guard path.hasSuffix(suffix) else { return nil }
        var rest = Substring(path.dropLast(suffix.count))
        func trailingNumber(_ s: inout Substring) -> Int? {
            let digits = s.reversed().prefix { $0.isASCII && $0.isNumber }
            // %05d gives at least five digits; more only past 99999 parts.
            guard digits.count >= 5, digits.count <= 9 else { return nil }
            s = s.dropLast(digits.count)
            return Int(String(digits.reversed()))
        }
        guard let count = trailingNumber(&rest), rest.hasSuffix("-of-") else { return nil }
        rest = rest.dropLast(4)
        guard let number = trailingNumber(&rest), rest.hasSuffix("-") else { return nil }
        rest = rest.dropLast()
        guard !rest.isEmpty, !rest.hasSuffix("/"), number >= 1, count >= 1, number <= count else { return nil }
        self.init(prefix: String(rest), part: number - 1, count: count)
    }

    /// Path of part `part` (0-based): `<prefix>-<part+1>-of-<count>.gguf`.
    public func path(part: Int) -> String {
        "\(prefix)-\(Self.number(part + 1))-of-\(Self.number(count)).gguf"
    }

    /// A number zero-padded to five digits, as `%05d`.
    static func number(_ n: Int) -> String {
        let s = String(n)
        return s.count >= 5 ? s : String(repeating: "0", count: 5 - s.count) + s
    }
}
