public import TensorCore

/// Why a tar stream was refused.
public enum ArchiveError: ClassifiedError, Hashable {
    case badHeaderChecksum(offset: Int)
    case notUstar(offset: Int)
    case badNumber(field: String, offset: Int)
    case badPaxRecord(offset: Int)
    case unsafePath(String)
    case tooLong(String)
    case unsupportedType(path: String, type: String)
    case sparse(String)
    case duplicate(String)
    case conflictingPath(String)
    case tooLarge(path: String, size: Int, limit: Int)
    case tooManyMembers(limit: Int)
    case truncated(String)
    case trailingData(offset: Int)
    case notInManifest(String)
    case sizeDiffersFromManifest(path: String, size: Int, manifest: Int)
    case digestMismatch(path: String, actual: String, manifest: String)
    case missingFromArchive([String])
    case badManifest(String)
    case notEnoughSpace(path: String, needed: Int, available: Int)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedType, .sparse: .unsupported
        case .digestMismatch, .missingFromArchive, .sizeDiffersFromManifest, .notInManifest: .checkFailed
        case .notEnoughSpace: .cannotWrite
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .badHeaderChecksum(let o): "tar header at byte \(o) has a wrong checksum (damaged archive)"
        case .notUstar(let o): "tar header at byte \(o) is not a POSIX ustar/pax header"
        case .badNumber(let f, let o): "tar header at byte \(o): field \(f) is not a valid number"
        case .badPaxRecord(let o): "pax extended header at byte \(o) is malformed"
        case .unsafePath(let p): "member \"\(p)\": unsafe path (absolute, empty, or with a '..' component)"
        case .tooLong(let p): "member \"\(p.prefix(80))…\": name or header too long"
        case .unsupportedType(let p, let t): "member \"\(p)\": \(t) are not extracted (only regular files and directories)"
        case .sparse(let p): "member \"\(p)\": sparse files are not supported"
        case .duplicate(let p): "member \"\(p)\" appears twice"
        case .conflictingPath(let p): "member \"\(p)\": a file and a directory of the same name"
        case .tooLarge(let p, let s, let l): "member \"\(p)\": \(s) bytes exceeds the limit of \(l) bytes (--max-size)"
        case .tooManyMembers(let l): "more than \(l) members"
        case .truncated(let what): "truncated: \(what)"
        case .trailingData(let o): "data after the end-of-archive marker at byte \(o)"
        case .notInManifest(let p): "member \"\(p)\" is not listed in the archive's wconv-manifest.json"
        case .sizeDiffersFromManifest(let p, let s, let m): "member \"\(p)\": \(s) bytes, the manifest says \(m)"
        case .digestMismatch(let p, let a, let m): "member \"\(p)\": SHA-256 mismatch: \(a), the manifest says \(m)"
        case .missingFromArchive(let p):
            "listed in wconv-manifest.json but not in the archive: " + p.prefix(5).joined(separator: ", ") + (p.count > 5 ? ", … \(p.count) in all" : "")
        case .badManifest(let why): "the archive's wconv-manifest.json: \(why)"
        case .notEnoughSpace(let p, let n, let a): "member \"\(p)\": needs \(n) bytes, \(a) free on the output's file system"
        }
    }
}

/// The entry types wconv writes and reads; every other tar type is refused on extraction.
public enum TarEntryType: UInt8, Sendable {
    case regular = 0x30          // '0'
    case directory = 0x35        // '5'
    case paxExtended = 0x78      // 'x'
}

/// A POSIX ustar header block (512 bytes), written the way GNU tar's `--format=pax` writes
/// them, with the fields that would identify the machine (owner, times) fixed.
public enum TarHeader {
    public static let blockSize = 512
    /// The largest size the 11 octal digits of a ustar size field hold (8 GiB − 1).
    public static let maxOctalSize = 0o77777777777
    /// Longest name the ustar `name` field holds (PAX `path` records carry longer ones).
    public static let maxNameLength = 100

    /// Field layout: (offset, length).
    static let name = (0, 100), mode = (100, 8), uid = (108, 8), gid = (116, 8), size = (124, 12),
               mtime = (136, 12), checksum = (148, 8), typeflag = 156, linkname = (157, 100),
               magic = (257, 6), version = (263, 2), uname = (265, 32), gname = (297, 32),
               devmajor = (329, 8), devminor = (337, 8), prefix = (345, 155)

    /// A header block for `path` (already at most 100 bytes, or the caller adds a PAX record).
    /// Owner 0:0, no user names, mtime 0, mode 0644 for files and 0755 for directories.
    public static func encode(path: String, type: TarEntryType, size: Int) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: blockSize)
        let name = Array(path.utf8.prefix(maxNameLength))
        block.replaceSubrange(0 ..< name.count, with: name)
        putOctal(&block, mode, type == .directory ? 0o755 : 0o644)
        putOctal(&block, uid, 0)
        putOctal(&block, gid, 0)
        putOctal(&block, Self.size, size <= maxOctalSize ? size : 0)
        putOctal(&block, mtime, 0)
        block[typeflag] = type.rawValue
        block.replaceSubrange(magic.0 ..< magic.0 + 6, with: Array("ustar\0".utf8))
        block.replaceSubrange(version.0 ..< version.0 + 2, with: Array("00".utf8))
        putOctal(&block, devmajor, 0)
        putOctal(&block, devminor, 0)
        // The checksum is computed with its own field read as eight spaces.
        for i in checksum.0 ..< checksum.0 + checksum.1 { block[i] = 0x20 }
        let sum = block.reduce(0) { $0 + Int($1) }
        let digits = Array(octal(sum, width: 6).utf8)
        block.replaceSubrange(checksum.0 ..< checksum.0 + 6, with: digits)
        block[checksum.0 + 6] = 0
        block[checksum.0 + 7] = 0x20
        return block
    }

    /// The header blocks for one member: a PAX extended header first when the path is longer
    /// than the ustar field or the size exceeds 8 GiB, then the ustar header.
    public static func blocks(path: String, type: TarEntryType, size: Int) -> [UInt8] {
        var records: [(String, String)] = []
        if path.utf8.count > maxNameLength { records.append(("path", path)) }
        if size > maxOctalSize { records.append(("size", String(size))) }
        var out: [UInt8] = []
        if !records.isEmpty {
            let body = records.flatMap { paxRecord(key: $0.0, value: $0.1) }
            // A fixed, machine-independent name for the extended header itself.
            let paxName = "PaxHeaders/" + String(decoding: Array(FileSystem.baseName(path).utf8.prefix(80)), as: UTF8.self)
            out += encode(path: paxName, type: .paxExtended, size: body.count)
            out += body
            out += [UInt8](repeating: 0, count: paddingAfter(body.count))
        }
        out += encode(path: path, type: type, size: size)
        return out
    }

    /// Number of bytes (header blocks) ``blocks(path:type:size:)`` produces.
    public static func headerByteCount(path: String, size: Int) -> Int {
        var records = 0
        if path.utf8.count > maxNameLength { records += paxRecord(key: "path", value: path).count }
        if size > maxOctalSize { records += paxRecord(key: "size", value: String(size)).count }
        return records == 0 ? blockSize : 2 * blockSize + records + paddingAfter(records)
    }

    /// Zero bytes that pad `count` bytes of data to a whole block.
    public static func paddingAfter(_ count: Int) -> Int { (blockSize - count % blockSize) % blockSize }

    /// A PAX record `"<length> <key>=<value>\n"`, where length counts the whole record.
    static func paxRecord(key: String, value: String) -> [UInt8] {
        let rest = " \(key)=\(value)\n".utf8.count
        var length = rest + 1
        while String(length).utf8.count + rest != length { length = String(length).utf8.count + rest }
        return Array("\(length) \(key)=\(value)\n".utf8)
    }

    static func octal(_ value: Int, width: Int) -> String {
        let digits = String(value, radix: 8)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Writes `value` as zero-padded octal filling the field but its last byte (a NUL).
    static func putOctal(_ block: inout [UInt8], _ field: (Int, Int), _ value: Int) {
        let digits = Array(octal(value, width: field.1 - 1).utf8)
        block.replaceSubrange(field.0 ..< field.0 + field.1 - 1, with: digits)
        block[field.0 + field.1 - 1] = 0
    }
}

/// A parsed header block.
public struct ParsedTarHeader: Sendable, Hashable {
    public var name: String
    public var typeflag: UInt8
    public var size: Int
    public var linkName: String
    /// Whether the magic was POSIX (`ustar\0` `00`) rather than old GNU (`ustar  \0`).
    public var isPOSIX: Bool

    /// Parses and validates one 512-byte header block at archive offset `offset`: magic,
    /// checksum (unsigned, or signed as some old writers computed it) and numeric fields.
    public init(block: UnsafeRawBufferPointer, offset: Int) throws(ArchiveError) {
        guard block.count == TarHeader.blockSize else { throw .truncated("header at byte \(offset)") }
        let magic = Array(block[257 ..< 265])
        if magic == Array("ustar\u{0}00".utf8) {
            isPOSIX = true
        } else if magic == Array("ustar  \u{0}".utf8) {
            isPOSIX = false
        } else {
            throw .notUstar(offset: offset)
        }
        guard let stored = ParsedTarHeader.number(block, TarHeader.checksum) else {
            throw .badNumber(field: "chksum", offset: offset)
        }
        var unsigned = 0, signed = 0
        for i in 0 ..< TarHeader.blockSize {
            let byte = (TarHeader.checksum.0 ..< TarHeader.checksum.0 + 8).contains(i) ? 0x20 : block[i]
            unsigned += Int(byte)
            signed += Int(Int8(bitPattern: byte))
        }
        guard stored == unsigned || stored == signed else { throw .badHeaderChecksum(offset: offset) }
        guard let size = ParsedTarHeader.number(block, TarHeader.size) else { throw .badNumber(field: "size", offset: offset) }
        self.size = size
        typeflag = block[TarHeader.typeflag]
        var name = ParsedTarHeader.string(block, TarHeader.name)
        if isPOSIX {
            let prefix = ParsedTarHeader.string(block, TarHeader.prefix)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        self.name = name
        linkName = ParsedTarHeader.string(block, TarHeader.linkname)
    }

    /// A NUL-terminated field as text (invalid UTF-8 is kept as replacement characters, which
    /// the path check then sees as ordinary characters).
    static func string(_ block: UnsafeRawBufferPointer, _ field: (Int, Int)) -> String {
        let bytes = block[field.0 ..< field.0 + field.1]
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return String(decoding: bytes[bytes.startIndex ..< end], as: UTF8.self)
    }

    /// An octal field (leading spaces, then digits, ended by NUL or space), or GNU's base-256
    /// form (top bit of the first byte set; negative values refused). Nil if invalid.
    static func number(_ block: UnsafeRawBufferPointer, _ field: (Int, Int)) -> Int? {
        let bytes = Array(block[field.0 ..< field.0 + field.1])
        if let first = bytes.first, first & 0x80 != 0 {
            guard first & 0x40 == 0 else { return nil }
            var value = Int(first & 0x3F)
            for b in bytes.dropFirst() {
                guard value <= (Int.max >> 8) else { return nil }
                value = value << 8 | Int(b)
            }
            return value
        }
        var i = 0
        while i < bytes.count, bytes[i] == 0x20 { i += 1 }
        var value = 0, digits = 0
        while i < bytes.count, (0x30 ... 0x37).contains(bytes[i]) {
            guard value <= (Int.max >> 3) else { return nil }
            value = value << 3 | Int(bytes[i] - 0x30)
            digits += 1
            i += 1
        }
        // The rest must be terminators only.
        while i < bytes.count {
            guard bytes[i] == 0 || bytes[i] == 0x20 else { return nil }
            i += 1
        }
        return digits == 0 ? nil : value
    }

    /// Parses the records of a PAX extended header (`"<len> key=value\n"` repeated).
    static func paxRecords(_ data: [UInt8], offset: Int) throws(ArchiveError) -> [(String, String)] {
        var records: [(String, String)] = []
        var i = 0
        while i < data.count {
            // A run of NULs pads some writers' headers.
            if data[i] == 0 { break }
            var length = 0, j = i
            while j < data.count, (0x30 ... 0x39).contains(data[j]) {
                length = length * 10 + Int(data[j] - 0x30)
                guard length <= data.count else { throw .badPaxRecord(offset: offset) }
                j += 1
            }
            guard j > i, j < data.count, data[j] == 0x20, length > j - i + 1, i + length <= data.count,
                  data[i + length - 1] == 0x0A else { throw .badPaxRecord(offset: offset) }
            let body = data[(j + 1) ..< (i + length - 1)]
            guard let eq = body.firstIndex(of: 0x3D) else { throw .badPaxRecord(offset: offset) }
            let key = String(decoding: body[body.startIndex ..< eq], as: UTF8.self)
            let value = String(decoding: body[(eq + 1)...], as: UTF8.self)
            records.append((key, value))
            i += length
        }
        return records
    }
}
