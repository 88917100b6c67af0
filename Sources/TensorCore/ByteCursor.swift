/// Reading a little-endian binary format out of a byte buffer, with every read bounds-checked.
///
/// Parsers of untrusted files (GGUF headers, safetensors) read only through this type, so a
/// lying length or a truncated file becomes a thrown ``ByteCursor/Truncated`` and never an
/// out-of-bounds load. The cursor does not own its bytes: it must not outlive them.
public struct ByteCursor {
    /// A read ran past the end of the buffer.
    public struct Truncated: Error, Hashable, Sendable {
        /// Offset at which the read started.
        public let offset: Int
        /// Bytes the read needed.
        public let needed: Int
        /// Bytes that were left.
        public let available: Int

        public init(offset: Int, needed: Int, available: Int) {
            self.offset = offset
            self.needed = needed
            self.available = available
        }
    }

    public let bytes: UnsafeRawBufferPointer
    /// Offset of the next read from the start of `bytes`.
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    /// Checks that `count` bytes can be read at the current offset.
    public func require(_ count: Int) throws(Truncated) {
        guard count >= 0, count <= bytes.count - offset else {
            throw Truncated(offset: offset, needed: count, available: bytes.count - offset)
        }
    }

    public mutating func readInteger<T: FixedWidthInteger>(_: T.Type = T.self) throws(Truncated) -> T {
        try require(MemoryLayout<T>.size)
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    public mutating func readFloat() throws(Truncated) -> Float {
        Float(bitPattern: try readInteger(UInt32.self))
    }

    public mutating func readDouble() throws(Truncated) -> Double {
        Double(bitPattern: try readInteger(UInt64.self))
    }

    /// The next `count` bytes, as a view into the buffer.
    public mutating func readBytes(_ count: Int) throws(Truncated) -> UnsafeRawBufferPointer {
        try require(count)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
        offset += count
        return slice
    }

    public mutating func skip(_ count: Int) throws(Truncated) {
        try require(count)
        offset += count
    }

    public mutating func seek(to newOffset: Int) throws(Truncated) {
        guard newOffset >= 0, newOffset <= bytes.count else {
            throw Truncated(offset: newOffset, needed: 0, available: bytes.count - min(newOffset, bytes.count))
        }
        offset = newOffset
    }
}

/// Building a little-endian binary buffer.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public var count: Int { bytes.count }

    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: Float) { write(value.bitPattern) }
    public mutating func write(_ value: Double) { write(value.bitPattern) }

    public mutating func write(bytes other: some Sequence<UInt8>) { bytes.append(contentsOf: other) }

    public mutating func write(utf8 string: String) { bytes.append(contentsOf: string.utf8) }

    /// Appends zero bytes until the length is a multiple of `alignment`.
    public mutating func pad(toMultipleOf alignment: Int, with byte: UInt8 = 0) {
        let rem = bytes.count % alignment
        if rem != 0 { bytes.append(contentsOf: repeatElement(byte, count: alignment - rem)) }
    }
}

/// `offset` rounded up to a multiple of `alignment` (which must be positive).
@inlinable
public func alignUp(_ offset: Int, to alignment: Int) -> Int {
    (offset + alignment - 1) / alignment * alignment
}
