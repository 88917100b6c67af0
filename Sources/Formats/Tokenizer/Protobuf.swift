import TensorCore

// A minimal protobuf wire-format reader and writer: just what SentencePiece's `ModelProto` needs.
//
// Wire format (protobuf encoding guide): a message is a sequence of fields; each starts with a varint tag
// `field_number << 3 | wire_type`. Wire types: 0 varint, 1 fixed 8 bytes, 2 varint length + that many bytes
// (strings, bytes, nested messages), 5 fixed 4 bytes (float). 3 and 4 (groups) are deprecated; SentencePiece
// never uses them, so they are rejected rather than skipped. int32 values are varints of the value sign-extended
// to 64 bits (so -1 takes 10 bytes); readers keep the low 32 bits.

/// How a protobuf field's value is laid out.
enum ProtobufWireType: UInt8 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// Reads protobuf fields from a buffer, checking every length against the bytes that remain.
///
/// Offsets in errors are relative to the start of the outermost message, so nested readers carry the
/// position of their first byte in `base`.
struct ProtobufReader {
    private var cursor: ByteCursor
    private let base: Int

    init(_ bytes: UnsafeRawBufferPointer, base: Int = 0) {
        cursor = ByteCursor(bytes)
        self.base = base
    }

    var isAtEnd: Bool { cursor.remaining == 0 }

    /// Position of the next read in the outermost message.
    var position: Int { base + cursor.offset }

    /// The next field's number and wire type.
    mutating func readTag() throws(TokenizerError) -> (field: UInt32, wireType: ProtobufWireType) {
        let start = position
        let key = try readVarint()
        guard let wireType = ProtobufWireType(rawValue: UInt8(key & 7)) else {
            throw .malformedProtobuf("unknown wire type \(key & 7)", offset: start)
        }
        let field = key >> 3
        guard field > 0, field <= 0x1FFF_FFFF else {
            throw .malformedProtobuf("field number \(field) out of range", offset: start)
        }
        if wireType == .startGroup || wireType == .endGroup {
            throw .malformedProtobuf("group fields (wire type \(wireType.rawValue)) are not supported", offset: start)
        }
        return (UInt32(field), wireType)
    }

    mutating func readVarint() throws(TokenizerError) -> UInt64 {
        let start = position
        var value: UInt64 = 0
        for index in 0 ..< 10 {
            let byte: UInt8
            do { byte = try cursor.readInteger(UInt8.self) } catch { throw .truncatedProtobuf(offset: start) }
            // The tenth byte holds only the top bit of a 64-bit value.
            if index == 9 && byte > 1 {
                throw .malformedProtobuf("varint overflows 64 bits", offset: start)
            }
            value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
            if byte & 0x80 == 0 { return value }
        }
        throw .malformedProtobuf("varint longer than 10 bytes", offset: start)
    }

    mutating func readFixed32() throws(TokenizerError) -> UInt32 {
        let start = position
        do { return try cursor.readInteger(UInt32.self) } catch { throw .truncatedProtobuf(offset: start) }
    }

    mutating func readFixed64() throws(TokenizerError) -> UInt64 {
        let start = position
        do { return try cursor.readInteger(UInt64.self) } catch { throw .truncatedProtobuf(offset: start) }
    }

    /// The payload of a length-delimited field and the position of its first byte.
    mutating func readLengthDelimited() throws(TokenizerError) -> (bytes: UnsafeRawBufferPointer, position: Int) {
        let start = position
        let length = try readVarint()
        guard length <= UInt64(cursor.remaining) else {
            throw .malformedProtobuf("length \(length) exceeds the \(cursor.remaining) bytes left", offset: start)
        }
        let payloadStart = position
        do { return (try cursor.readBytes(Int(length)), payloadStart) } catch { throw .truncatedProtobuf(offset: start) }
    }

    /// A length-delimited field as UTF-8 text; `name` says which field, for the error.
    mutating func readString(_ name: String) throws(TokenizerError) -> String {
        let (bytes, start) = try readLengthDelimited()
        guard let text = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw .malformedProtobuf("\(name) is not valid UTF-8", offset: start)
        }
        return text
    }

    /// A nested message, as a reader over its bytes.
    mutating func readMessage() throws(TokenizerError) -> ProtobufReader {
        let (bytes, start) = try readLengthDelimited()
        return ProtobufReader(bytes, base: start)
    }

    mutating func readInt32() throws(TokenizerError) -> Int32 {
        Int32(truncatingIfNeeded: try readVarint())
    }

    mutating func readBool() throws(TokenizerError) -> Bool {
        try readVarint() != 0
    }

    mutating func readFloat() throws(TokenizerError) -> Float {
        Float(bitPattern: try readFixed32())
    }

    /// Skips the value of a field this reader does not model.
    mutating func skip(_ wireType: ProtobufWireType) throws(TokenizerError) {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .fixed32: _ = try readFixed32()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .startGroup, .endGroup:
            throw .malformedProtobuf("group fields are not supported", offset: position)
        }
    }

    /// Throws unless a known field arrived with the wire type its declaration implies.
    func expect(_ wireType: ProtobufWireType, is expected: ProtobufWireType, field: String,
                at tagPosition: Int) throws(TokenizerError) {
        guard wireType == expected else {
            throw .malformedProtobuf("\(field) has wire type \(wireType.rawValue), expected \(expected.rawValue)",
                                     offset: tagPosition)
        }
    }
}

/// Builds protobuf bytes field by field, in the order the caller writes them.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func writeTag(_ field: UInt32, _ wireType: ProtobufWireType) {
        writeVarint(UInt64(field) << 3 | UInt64(wireType.rawValue))
    }

    mutating func writeString(_ field: UInt32, _ value: String) {
        writeBytes(field, Array(value.utf8))
    }

    mutating func writeBytes(_ field: UInt32, _ value: [UInt8]) {
        writeTag(field, .lengthDelimited)
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func writeFloat(_ field: UInt32, _ value: Float) {
        writeTag(field, .fixed32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// An int32 or enum field: negative values are sign-extended to 64 bits, as protobuf requires.
    mutating func writeInt32(_ field: UInt32, _ value: Int32) {
        writeTag(field, .varint)
        writeVarint(UInt64(bitPattern: Int64(value)))
    }

    mutating func writeBool(_ field: UInt32, _ value: Bool) {
        writeTag(field, .varint)
        writeVarint(value ? 1 : 0)
    }

    /// A nested message whose fields `body` writes.
    mutating func writeMessage(_ field: UInt32, _ body: (inout ProtobufWriter) -> Void) {
        var nested = ProtobufWriter()
        body(&nested)
        writeBytes(field, nested.bytes)
    }
}
