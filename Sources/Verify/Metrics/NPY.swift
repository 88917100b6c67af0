public import TensorCore
import Formats

/// Errors reading a NumPy `.npy` file.
public enum NPYError: ClassifiedError, Hashable {
    case badMagic
    case unsupportedVersion(major: UInt8, minor: UInt8)
    case badHeader(String)
    case unsupportedDType(String)
    case fortranOrder
    /// The data after the header is not `elementCount × itemSize` bytes.
    case sizeMismatch(expected: Int, actual: Int)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedVersion, .unsupportedDType, .fortranOrder: .unsupported
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .badMagic: "not a .npy file (bad magic)"
        case .unsupportedVersion(let major, let minor): ".npy format version \(major).\(minor) is not supported"
        case .badHeader(let what): "bad .npy header: \(what)"
        case .unsupportedDType(let descr): ".npy dtype '\(descr)' is not supported"
        case .fortranOrder: "Fortran-ordered .npy arrays are not supported"
        case .sizeMismatch(let expected, let actual): ".npy data should be \(expected) bytes, is \(actual)"
        }
    }
}

/// Element types wconv reads and writes in `.npy` files (little-endian only).
public enum NPYElementType: String, Sendable, Hashable, CaseIterable {
    case float16 = "<f2", float32 = "<f4", float64 = "<f8"
    case int8 = "|i1", int16 = "<i2", int32 = "<i4", int64 = "<i8"
    case uint8 = "|u1", uint16 = "<u2", uint32 = "<u4", uint64 = "<u8"
    case bool = "|b1"

    public var itemSize: Int {
        switch self {
        case .int8, .uint8, .bool: 1
        case .float16, .int16, .uint16: 2
        case .float32, .int32, .uint32: 4
        case .float64, .int64, .uint64: 8
        }
    }

    /// Accepts numpy's spellings: `<f4`, `|u1`, and `<u1`/`|f4`-style variants where the byte
    /// order is irrelevant or explicit little-endian.
    init?(descr: String) {
        guard let first = descr.first, "<|".contains(first) || (first == ">" && descr.hasSuffix("1")) else { return nil }
        let code = descr.dropFirst()
        guard let t = NPYElementType.allCases.first(where: { $0.rawValue.dropFirst() == code }) else { return nil }
        self = t
    }
}

/// A NumPy array as stored in a `.npy` file: C-order little-endian data plus shape.
///
/// Reading checks the magic, the header dictionary and that the data is exactly
/// `product(shape) × itemSize` bytes. Writing produces the same bytes as `numpy.save`
/// (format 1.0, header padded to a multiple of 64 with room to grow the first axis).
public struct NPYArray: Sendable, Hashable {
    public var shape: [Int]
    public var elementType: NPYElementType
    /// The raw element bytes, little-endian, C order.
    public var data: [UInt8]

    public var elementCount: Int { shape.reduce(1, *) }

    /// An array of any type from its raw bytes.
    /// - Precondition: `data.count == product(shape) × itemSize`.
    public init(shape: [Int], elementType: NPYElementType, data: [UInt8]) {
        precondition(shape.allSatisfy { $0 >= 0 } && data.count == shape.reduce(1, *) * elementType.itemSize,
                     "NPYArray: data does not match the shape")
        self.shape = shape
        self.elementType = elementType
        self.data = data
    }

    /// A float32 array.
    public init(floats: [Float], shape: [Int]) {
        var w = ByteWriter(capacity: floats.count * 4)
        for f in floats { w.write(f) }
        self.init(shape: shape, elementType: .float32, data: w.bytes)
    }

    /// An int64 array (numpy's default integer type).
    public init(integers: [Int], shape: [Int]) {
        var w = ByteWriter(capacity: integers.count * 8)
        for i in integers { w.write(Int64(i)) }
        self.init(shape: shape, elementType: .int64, data: w.bytes)
    }

    /// The elements converted to Double (exact for every type but the 64-bit integers).
    public func doubles() -> [Double] {
        data.withUnsafeBytes { raw in
            (0 ..< elementCount).map { i in
                let o = i * elementType.itemSize
                switch elementType {
                case .float16: return Double(HalfFloat.float(f16Bits: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
                case .float32: return Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self))))
                case .float64: return Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
                case .int8: return Double(raw.load(fromByteOffset: o, as: Int8.self))
                case .int16: return Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self)))
                case .int32: return Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self)))
                case .int64: return Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int64.self)))
                case .uint8, .bool: return Double(raw[o])
                case .uint16: return Double(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                case .uint32: return Double(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
                case .uint64: return Double(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
                }
            }
        }
    }

    /// The elements as Float (float32 data is returned bit for bit).
    public func floats() -> [Float] {
        if elementType == .float32 {
            return data.withUnsafeBytes { raw in
                (0 ..< elementCount).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
        }
        return doubles().map { Float($0) }
    }

    // MARK: - Reading

    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Parses `.npy` bytes.
    /// - Throws: ``NPYError``.
    public init(npy bytes: UnsafeRawBufferPointer) throws {
        var c = ByteCursor(bytes)
        do {
            guard Array(try c.readBytes(6)) == Self.magic else { throw NPYError.badMagic }
            let major = try c.readInteger(UInt8.self), minor = try c.readInteger(UInt8.self)
            let headerLength: Int
            switch major {
            case 1: headerLength = Int(try c.readInteger(UInt16.self))
            case 2, 3: headerLength = Int(try c.readInteger(UInt32.self))
            default: throw NPYError.unsupportedVersion(major: major, minor: minor)
            }
            guard minor == 0 else { throw NPYError.unsupportedVersion(major: major, minor: minor) }
            guard headerLength <= 1 << 20 else { throw NPYError.badHeader("header of \(headerLength) bytes") }
            let header = String(decoding: try c.readBytes(headerLength), as: UTF8.self)
            let (descr, fortran, shape) = try Self.parseHeader(header)
            guard let type = NPYElementType(descr: descr) else { throw NPYError.unsupportedDType(descr) }
            if fortran && shape.filter({ $0 > 1 }).count > 1 { throw NPYError.fortranOrder }
            var count = 1
            for d in shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw NPYError.badHeader("shape \(shape) is too large") }
                count = p
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: type.itemSize)
            guard !overflow, byteCount == c.remaining else {
                throw NPYError.sizeMismatch(expected: overflow ? Int.max : byteCount, actual: c.remaining)
            }
            self.init(shape: shape, elementType: type, data: Array(try c.readBytes(byteCount)))
        } catch let e as ByteCursor.Truncated {
            throw NPYError.badHeader("file ends at byte \(e.offset + e.available)")
        }
    }

    /// Reads a `.npy` file.
    /// - Throws: `PathError` wrapping ``NPYError`` or a file-access error.
    public init(contentsOf path: String) throws {
        let file = try MappedFile(path: path)
        self = try withPath(path) { try NPYArray(npy: file.bytes) }
    }

    /// Parses numpy's header, a Python dict literal such as
    /// `{'descr': '<f4', 'fortran_order': False, 'shape': (8, 128), }`.
    static func parseHeader(_ text: String) throws -> (descr: String, fortran: Bool, shape: [Int]) {
        var s = Substring(text)
        func skipSpace() { s = s.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" }) }
        func expect(_ ch: Character) throws {
            skipSpace()
            guard s.first == ch else { throw NPYError.badHeader("expected '\(ch)' in \(text)") }
            s.removeFirst()
        }
        func string() throws -> String {
            skipSpace()
            guard let q = s.first, q == "'" || q == "\"" else { throw NPYError.badHeader("expected a string in \(text)") }
            s.removeFirst()
            guard let end = s.firstIndex(of: q) else { throw NPYError.badHeader("unterminated string") }
            let value = String(s[..<end])
            s = s[s.index(after: end)...]
            return value
        }
        var descr: String?, fortran: Bool?, shape: [Int]?
        try expect("{")
        while true {
            skipSpace()
            if s.first == "}" { s.removeFirst(); break }
            let key = try string()
            try expect(":")
            skipSpace()
            switch key {
            case "descr":
                descr = try string()
            case "fortran_order":
                if s.hasPrefix("True") { fortran = true; s = s.dropFirst(4) }
                else if s.hasPrefix("False") { fortran = false; s = s.dropFirst(5) }
                else { throw NPYError.badHeader("fortran_order is not True or False") }
            case "shape":
                try expect("(")
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if s.first == ")" { s.removeFirst(); break }
                    let digits = s.prefix(while: \.isASCII).prefix(while: \.isNumber)
                    guard !digits.isEmpty, digits.count <= 18, let d = Int(digits) else {
                        throw NPYError.badHeader("bad shape in \(text)")
                    }
                    dims.append(d)
                    s = s.dropFirst(digits.count)
                    skipSpace()
                    if s.first == "," { s.removeFirst() }
                }
                shape = dims
            default:
                throw NPYError.badHeader("unexpected key '\(key)'")
            }
            skipSpace()
            if s.first == "," { s.removeFirst() }
        }
        guard let descr, let fortran, let shape else { throw NPYError.badHeader("missing descr, fortran_order or shape") }
        return (descr, fortran, shape)
    }

    // MARK: - Writing

    /// The file bytes exactly as `numpy.save` writes them (format 1.0 while the header fits).
    public func serialized() -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var header = "{'descr': '\(elementType.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
        // numpy leaves room for the first axis to grow to 21 digits (GROWTH_AXIS_MAX_DIGITS).
        if let first = shape.first { header += String(repeating: " ", count: max(0, 21 - String(first).utf8.count)) }
        var headerBytes = Array(header.utf8)
        let lengthSize = headerBytes.count + 1 + 10 > 65535 ? 4 : 2
        // Pad with spaces so magic + version + length + header + "\n" is a multiple of 64
        // (numpy always adds 1…64 spaces).
        let unpadded = 6 + 2 + lengthSize + headerBytes.count + 1
        headerBytes += [UInt8](repeating: 0x20, count: 64 - unpadded % 64)
        headerBytes.append(0x0A)
        var w = ByteWriter(capacity: 12 + headerBytes.count + data.count)
        w.write(bytes: Self.magic)
        if lengthSize == 2 {
            w.write(bytes: [1, 0])
            w.write(UInt16(headerBytes.count))
        } else {
            w.write(bytes: [2, 0])
            w.write(UInt32(headerBytes.count))
        }
        w.write(bytes: headerBytes)
        w.write(bytes: data)
        return w.bytes
    }

    /// Writes the array atomically to `path`.
    public func write(to path: String, force: Bool = false) throws {
        let output = try AtomicOutput.file(at: path, force: force)
        let file = try OutputFile(path: output.temporaryPath)
        try file.write(serialized())
        try file.close()
        try output.commit()
    }
}
