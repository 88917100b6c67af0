/// What a ``TarReader`` found, in archive order.
public enum TarEvent {
    /// A directory member (path normalised: no `./` prefix, no trailing `/`).
    case directory(path: String)
    /// A regular file begins; its bytes follow as ``fileData(_:)`` events, then ``fileEnd``.
    case fileStart(path: String, size: Int)
    /// Part of the current file's bytes (valid only during the call).
    case fileData(UnsafeRawBufferPointer)
    case fileEnd
}

/// Limits that keep a hostile archive from exhausting memory or disk.
public struct TarLimits: Sendable, Hashable {
    /// Largest total of file sizes (and so of any one file).
    public var maxTotalBytes: Int
    public var maxMembers: Int
    /// Largest PAX extended header or GNU long-name block held in memory.
    public var maxHeaderBytes: Int
    /// Longest member path, in bytes.
    public var maxPathBytes: Int

    public init(maxTotalBytes: Int = 4 << 40, maxMembers: Int = 1_000_000, maxHeaderBytes: Int = 1 << 20,
                maxPathBytes: Int = 4096) {
        self.maxTotalBytes = maxTotalBytes
        self.maxMembers = maxMembers
        self.maxHeaderBytes = maxHeaderBytes
        self.maxPathBytes = maxPathBytes
    }
}

/// A push parser for POSIX ustar/pax tar streams (GNU long names read too), for data that
/// arrives in pieces out of a decompressor. It accepts only what is safe to extract:
///
/// - every header's checksum and magic are checked, numbers must be well formed;
/// - paths are relative, with no `..`, empty or `.` components (a leading `./` is dropped);
/// - only regular files and directories: links, devices, FIFOs and sparse files are refused;
/// - sizes are bounded by ``TarLimits``;
/// - the stream must end with the two zero blocks of the end-of-archive marker, and only
///   zero padding may follow.
public final class TarReader {
    public let limits: TarLimits
    private let handler: (TarEvent) throws -> Void

    private enum Payload {
        case file(path: String)
        case collect(kind: UInt8, path: String)   // pax 'x' / 'g' or GNU 'L': kept in `collected`
        case skip
    }

    private enum State {
        case header
        case data(Payload, remaining: Int, padding: Int)
        case padding(Int)
        case secondZeroBlock
        case ended
    }

    private var state = State.header
    private var block = [UInt8](repeating: 0, count: TarHeader.blockSize)
    private var blockFill = 0
    private var collected: [UInt8] = []
    private var pendingPath: String?
    private var pendingSize: Int?
    /// Offset in the tar stream of the next byte consumed.
    public private(set) var position = 0
    private var headerOffset = 0
    private var memberCount = 0
    private var totalBytes = 0
    /// The member being read, for a truncation message.
    private var current: (path: String, size: Int, remaining: Int)?

    public init(limits: TarLimits = TarLimits(), handler: @escaping (TarEvent) throws -> Void) {
        self.limits = limits
        self.handler = handler
    }

    /// Feeds the next piece of the tar stream.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws {
        var i = 0
        while i < bytes.count {
            switch state {
            case .header, .secondZeroBlock:
                let n = min(TarHeader.blockSize - blockFill, bytes.count - i)
                // Headers are a few blocks per member: a plain bounds-checked copy is enough.
                for k in 0 ..< n { block[blockFill + k] = bytes[i + k] }
                blockFill += n
                i += n
                position += n
                if blockFill == TarHeader.blockSize {
                    blockFill = 0
                    try completeBlock()
                }
            case .data(let payload, let remaining, let padding):
                let n = min(remaining, bytes.count - i)
                let piece = UnsafeRawBufferPointer(rebasing: bytes[i ..< i + n])
                switch payload {
                case .file: if n > 0 { try handler(.fileData(piece)) }
                case .collect: collected.append(contentsOf: piece)
                case .skip: break
                }
                i += n
                position += n
                current?.remaining -= n
                if remaining - n == 0 {
                    try finishPayload(payload)
                    state = padding > 0 ? .padding(padding) : .header
                } else {
                    state = .data(payload, remaining: remaining - n, padding: padding)
                }
            case .padding(let remaining):
                let n = min(remaining, bytes.count - i)
                i += n
                position += n
                state = remaining - n == 0 ? .header : .padding(remaining - n)
            case .ended:
                // Only zeros may follow the end-of-archive marker (writers pad to a record).
                for k in i ..< bytes.count where bytes[k] != 0 { throw ArchiveError.trailingData(offset: position + k - i) }
                position += bytes.count - i
                i = bytes.count
            }
        }
    }

    /// Declares the end of the stream; throws if it stopped before the end-of-archive marker.
    public func finish() throws {
        switch state {
        case .ended:
            return
        case .data, .padding:
            if let c = current {
                throw ArchiveError.truncated("the archive ends inside member \"\(c.path)\" (\(c.size - c.remaining) of \(c.size) bytes)")
            }
            throw ArchiveError.truncated("the archive ends inside a header's data")
        case .header, .secondZeroBlock:
            throw ArchiveError.truncated(blockFill > 0 ? "the archive ends inside a header block"
                                                       : "no end-of-archive marker (two zero blocks)")
        }
    }

    private func completeBlock() throws {
        let offset = position - TarHeader.blockSize
        let isZero = !block.contains { $0 != 0 }
        if case .secondZeroBlock = state {
            guard isZero else { throw ArchiveError.trailingData(offset: offset) }
            state = .ended
            return
        }
        if isZero {
            guard pendingPath == nil, pendingSize == nil else { throw ArchiveError.truncated("an extended header is followed by the end marker") }
            state = .secondZeroBlock
            return
        }
        headerOffset = offset
        let header = try block.withUnsafeBytes { raw throws(ArchiveError) in try ParsedTarHeader(block: raw, offset: offset) }
        try handleHeader(header)
    }

    private func handleHeader(_ header: ParsedTarHeader) throws {
        let type = header.typeflag
        switch type {
        case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"):
            // Metadata blocks for the next member (or, for 'g', the whole archive).
            let rawPath = header.name
            guard header.size <= limits.maxHeaderBytes else { throw ArchiveError.tooLong(rawPath) }
            collected.removeAll(keepingCapacity: true)
            current = nil
            try begin(.collect(kind: type, path: rawPath), size: header.size, padding: TarHeader.paddingAfter(header.size))
            return
        default:
            break
        }
        let size = pendingSize ?? header.size
        let rawPath = pendingPath ?? header.name
        pendingSize = nil
        pendingPath = nil
        let padding = TarHeader.paddingAfter(size)

        memberCount += 1
        guard memberCount <= limits.maxMembers else { throw ArchiveError.tooManyMembers(limit: limits.maxMembers) }
        guard rawPath.utf8.count <= limits.maxPathBytes else { throw ArchiveError.tooLong(rawPath) }

        switch type {
        case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
            // Old tars mark directories by a trailing slash on a regular entry.
            if rawPath.hasSuffix("/") && size == 0 {
                try directory(rawPath)
                return
            }
            let path = try TarReader.normalize(rawPath, directory: false)
            guard size <= limits.maxTotalBytes - totalBytes else {
                throw ArchiveError.tooLarge(path: path, size: size, limit: limits.maxTotalBytes)
            }
            totalBytes += size
            current = (path, size, size)
            try handler(.fileStart(path: path, size: size))
            try begin(.file(path: path), size: size, padding: padding)
        case UInt8(ascii: "5"):
            try directory(rawPath)
            // A directory's size is meaningless; skip whatever data a writer attached.
            guard size <= limits.maxHeaderBytes else { throw ArchiveError.tooLong(rawPath) }
            if size > 0 { try begin(.skip, size: size, padding: padding) }
        case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "K"):
            throw ArchiveError.unsupportedType(path: rawPath, type: "links")
        case UInt8(ascii: "3"), UInt8(ascii: "4"):
            throw ArchiveError.unsupportedType(path: rawPath, type: "device files")
        case UInt8(ascii: "6"):
            throw ArchiveError.unsupportedType(path: rawPath, type: "FIFOs")
        case UInt8(ascii: "S"):
            throw ArchiveError.sparse(rawPath)
        default:
            let shown = (32 ..< 127).contains(type) ? "'\(Character(Unicode.Scalar(type)))'" : "\(type)"
            throw ArchiveError.unsupportedType(path: rawPath, type: "entries of type \(shown)")
        }
    }

    private func directory(_ rawPath: String) throws {
        var p = Substring(rawPath)
        while p.hasPrefix("./") { p = p.dropFirst(2) }
        // `tar -c -C dir .` stores the directory itself as "./"; nothing to create.
        if p.isEmpty || p == "." { return }
        current = nil
        try handler(.directory(path: try TarReader.normalize(rawPath, directory: true)))
    }

    private func begin(_ payload: Payload, size: Int, padding: Int) throws {
        if size == 0 {
            try finishPayload(payload)
            state = .header
        } else {
            state = .data(payload, remaining: size, padding: padding)
        }
    }

    private func finishPayload(_ payload: Payload) throws {
        switch payload {
        case .file:
            current = nil
            try handler(.fileEnd)
        case .collect(let kind, _):
            if kind == UInt8(ascii: "L") {
                // GNU long name: the name, NUL-terminated.
                let end = collected.firstIndex(of: 0) ?? collected.endIndex
                pendingPath = String(decoding: collected[..<end], as: UTF8.self)
                return
            }
            let records = try ParsedTarHeader.paxRecords(collected, offset: headerOffset)
            for (key, value) in records {
                if key.hasPrefix("GNU.sparse.") { throw ArchiveError.sparse(pendingPath ?? "(next member)") }
                guard kind == UInt8(ascii: "x") else { continue }
                switch key {
                case "path":
                    pendingPath = value
                case "size":
                    guard let n = Int(value), n >= 0, value.utf8.allSatisfy({ (0x30 ... 0x39).contains($0) }) else {
                        throw ArchiveError.badPaxRecord(offset: headerOffset)
                    }
                    pendingSize = n
                default:
                    // mtime, atime, uid, uname, SCHILY.*, … carry nothing wconv restores.
                    break
                }
            }
        case .skip:
            break
        }
    }

    /// The member path made relative and checked: leading `./` removed, a directory's trailing
    /// `/` removed; refused if absolute, empty, or with `..`, `.` or empty components.
    public static func normalize(_ raw: String, directory: Bool) throws(ArchiveError) -> String {
        var p = Substring(raw)
        while p.hasPrefix("./") { p = p.dropFirst(2) }
        if directory { while p.hasSuffix("/") { p = p.dropLast() } }
        let path = String(p)
        guard FileTree.isSafeRelativePath(path) else { throw .unsafePath(raw) }
        guard path.split(separator: "/").allSatisfy({ $0.utf8.count <= 255 }) else { throw .tooLong(raw) }
        return path
    }
}
