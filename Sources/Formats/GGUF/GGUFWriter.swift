public import TensorCore

/// A tensor to be written: what goes into its tensor info, plus the size of its data.
public struct GGUFTensorDescriptor: Sendable, Hashable {
    public var name: String
    /// ggml `ne` (fastest-varying first), written as is (not trimmed of trailing 1s).
    public var dimensions: [Int]
    public var type: GGMLType
    /// Bytes of data. Must match type and dimensions when the type is known.
    public var byteCount: Int

    public init(name: String, dimensions: [Int], type: GGMLType, byteCount: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.byteCount = byteCount
    }

    /// A descriptor whose byte count is computed from a known type; nil if the type is
    /// unknown, a row is not a whole number of blocks, or the size overflows.
    public init?(name: String, dimensions: [Int], type: GGMLType) {
        guard let bytes = Self.byteCount(dimensions: dimensions, type: type) else { return nil }
        self.init(name: name, dimensions: dimensions, type: type, byteCount: bytes)
    }

    /// The descriptor of a tensor read from a file (same name, dims, type and byte count).
    public init(_ info: GGUFTensorInfo) {
        self.init(name: info.name, dimensions: info.dimensions, type: info.type, byteCount: info.byteCount)
    }

    /// Bytes of a tensor of `type` with ggml dims `dimensions`; nil if unknown or invalid.
    public static func byteCount(dimensions: [Int], type: GGMLType) -> Int? {
        guard let elements = elementCount(of: dimensions), let block = type.blockSize,
              let typeSize = type.typeSize, (dimensions.first ?? 1) % block == 0 else { return nil }
        let (bytes, overflow) = (elements / block).multipliedReportingOverflow(by: typeSize)
        return overflow ? nil : bytes
    }
}

/// Where a tensor's data goes while a ``GGUFWriter`` writes it; counts the bytes so the
/// writer can check the caller delivered exactly the tensor's byte count.
public final class GGUFTensorSink {
    private let output: OutputFile
    /// The tensor being written.
    public let descriptor: GGUFTensorDescriptor
    /// Bytes received so far.
    public private(set) var written = 0

    init(output: OutputFile, descriptor: GGUFTensorDescriptor) {
        self.output = output
        self.descriptor = descriptor
    }

    /// Bytes still expected.
    public var remaining: Int { descriptor.byteCount - written }

    /// Appends bytes of the tensor's data.
    /// - Throws: ``GGUFError/wrongDataSize(name:written:expected:)`` if they go past the byte count.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count <= remaining else {
            throw GGUFError.wrongDataSize(name: descriptor.name, written: written + bytes.count, expected: descriptor.byteCount)
        }
        try output.write(bytes)
        written += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Lets `body` fill up to `capacity` bytes in place; `body` returns how many it filled.
    public func withWritableBuffer(capacity: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        guard capacity <= remaining else {
            throw GGUFError.wrongDataSize(name: descriptor.name, written: written + capacity, expected: descriptor.byteCount)
        }
        var filled = 0
        try output.withWritableBuffer(capacity: capacity) { buffer in
            filled = min(max(try body(buffer), 0), capacity)
            return filled
        }
        written += filled
    }
}

/// Plans and writes a GGUF v3 file: header, metadata in the given order, tensor infos, padding
/// to the alignment, then each tensor's data in info order, each padded with zeros to the
/// alignment (also the last). This is byte for byte what gguf-py's `GGUFWriter` writes for the
/// same metadata order and tensors, and the layout ggml's reader requires (offsets cumulative).
public struct GGUFWriter: Sendable {
    /// The metadata as written (with `general.alignment` appended when a non-default alignment
    /// is requested and the metadata lacks it).
    public let metadata: GGUFMetadata
    public let tensors: [GGUFTensorDescriptor]
    public let alignment: Int
    /// Offset of each tensor's data from the start of the data section.
    public let offsets: [Int]
    /// File offset of the data section.
    public let dataOffset: Int
    /// Size of the file to be written.
    public let fileSize: Int
    private let header: [UInt8]

    /// Plans a file, validating everything ggml's reader would check.
    ///
    /// - Parameters:
    ///   - metadata: entries in the order to write them. A `general.alignment` entry must be
    ///     UINT32 and equal `alignment`; if absent, it is appended only when `alignment` is not 32
    ///     (as gguf-py writes it only for a custom alignment).
    ///   - tensors: tensor descriptors in the order their infos and data are written.
    ///   - alignment: data alignment, a power of two (default 32).
    /// - Throws: ``GGUFError`` for an empty key, a string or array over the caps, a bad
    ///   alignment, a name of 64 bytes or more, a duplicate tensor, more than 4 dimensions,
    ///   `ne[0]` not a multiple of the block size, or a byte count that disagrees with the shape.
    public init(metadata: GGUFMetadata, tensors: [GGUFTensorDescriptor], alignment: Int = GGUFHeader.defaultAlignment) throws(GGUFError) {
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= Int(UInt32.max) else {
            throw .alignmentNotPowerOfTwo(alignment)
        }
        var metadata = metadata
        if let value = metadata[GGUFKeys.General.alignment] {
            guard case .uint32(let a) = value else { throw .alignmentWrongType(value.type) }
            guard Int(a) == alignment else { throw .alignmentMismatch(metadata: Int(a), requested: alignment) }
        } else if alignment != GGUFHeader.defaultAlignment {
            metadata.set(GGUFKeys.General.alignment, .uint32(UInt32(alignment)))
        }
        for (i, entry) in metadata.enumerated() {
            if entry.key.isEmpty { throw .emptyKey(index: i) }
            try Self.checkLimits(entry)
        }

        var seen = Set<String>()
        var offsets: [Int] = []
        var offset = 0
        for t in tensors {
            try Self.check(t, seen: &seen)
            offsets.append(offset)
            let (next, overflow) = offset.addingReportingOverflow(alignUp(t.byteCount, to: alignment))
            guard !overflow else { throw .tensorTooLarge(name: t.name, dimensions: t.dimensions) }
            offset = next
        }

        var w = ByteWriter()
        w.write(GGUFHeader.magic)
        w.write(GGUFHeader.currentVersion)
        w.write(UInt64(tensors.count))
        w.write(UInt64(metadata.count))
        for entry in metadata {
            Self.writeString(entry.key, to: &w)
            Self.writeValue(entry.value, to: &w)
        }
        for (t, offset) in zip(tensors, offsets) {
            Self.writeString(t.name, to: &w)
            w.write(UInt32(t.dimensions.count))
            for ne in t.dimensions { w.write(UInt64(ne)) }
            w.write(t.type.rawValue)
            w.write(UInt64(offset))
        }
        // gguf-py and ggml both pad after the infos, even when there are no tensors.
        w.pad(toMultipleOf: alignment)

        self.metadata = metadata
        self.tensors = tensors
        self.alignment = alignment
        self.offsets = offsets
        header = w.bytes
        dataOffset = w.count
        fileSize = dataOffset + offset
    }

    /// Plans a file with metadata given as a list; a repeated key is an error.
    public init(metadata entries: [GGUFKeyValue], tensors: [GGUFTensorDescriptor], alignment: Int = GGUFHeader.defaultAlignment) throws(GGUFError) {
        var metadata = GGUFMetadata()
        for e in entries {
            if metadata.contains(e.key) { throw .duplicateKey(e.key) }
            metadata.set(e.key, e.value)
        }
        try self.init(metadata: metadata, tensors: tensors, alignment: alignment)
    }

    /// Plans a file with the same metadata, tensors and alignment as a parsed one, so that
    /// writing it with the same data reproduces a conforming file byte for byte.
    public init(rewriting header: GGUFHeader) throws(GGUFError) {
        try self.init(metadata: header.metadata, tensors: header.tensors.map(GGUFTensorDescriptor.init), alignment: header.alignment)
    }

    /// The bytes before the data section: header, metadata, tensor infos and padding.
    public var headerBytes: [UInt8] { header }

    /// Writes the whole file to `output`, which must be empty.
    ///
    /// - Parameter tensorData: called once per tensor, in order, with the tensor's index in
    ///   ``tensors`` and a sink that must receive exactly its byte count.
    /// - Throws: ``GGUFError/wrongDataSize(name:written:expected:)`` if a tensor's data has
    ///   the wrong size; whatever `tensorData` or the output throws.
    public func write(to output: OutputFile, tensorData: (Int, GGUFTensorSink) throws -> Void) throws {
        try output.write(header)
        for (i, t) in tensors.enumerated() {
            let sink = GGUFTensorSink(output: output, descriptor: t)
            try tensorData(i, sink)
            guard sink.written == t.byteCount else {
                throw GGUFError.wrongDataSize(name: t.name, written: sink.written, expected: t.byteCount)
            }
            try output.writeZeros(alignUp(t.byteCount, to: alignment) - t.byteCount)
        }
    }

    /// Writes the file to `path` atomically (under a temporary name, moved into place when complete).
    /// - Parameter force: replace an existing file.
    public func write(toPath path: String, force: Bool, tensorData: (Int, GGUFTensorSink) throws -> Void) throws {
        let atomic = try AtomicOutput.file(at: path, force: force)
        let output = try OutputFile(path: atomic.temporaryPath)
        do {
            try write(to: output, tensorData: tensorData)
            try output.close()
        } catch let error as PathError {
            throw error
        } catch {
            throw PathError(path: path, error)
        }
        try atomic.commit()
    }

    // MARK: Validation

    private static func checkLimits(_ entry: GGUFKeyValue) throws(GGUFError) {
        let cap = GGUFHeader.maximumStringLength
        if UInt64(entry.key.utf8.count) > cap {
            throw .stringTooLong(what: "metadata key", length: UInt64(entry.key.utf8.count), maximum: cap)
        }
        switch entry.value {
        case .string(let s) where UInt64(s.utf8.count) > cap:
            throw .stringTooLong(what: "value of '\(entry.key)'", length: UInt64(s.utf8.count), maximum: cap)
        case .array(let a):
            if UInt64(a.count) > GGUFHeader.maximumArrayCount {
                throw .arrayTooLong(key: entry.key, count: UInt64(a.count), maximum: GGUFHeader.maximumArrayCount)
            }
            if case .string(let list) = a {
                for i in list.indices where UInt64(list.utf8(at: i).count) > cap {
                    throw .stringTooLong(what: "element \(i) of '\(entry.key)'", length: UInt64(list.utf8(at: i).count), maximum: cap)
                }
            }
        default:
            break
        }
    }

    private static func check(_ t: GGUFTensorDescriptor, seen: inout Set<String>) throws(GGUFError) {
        if t.name.utf8.count > GGUFHeader.maximumNameLength { throw .nameTooLong(t.name) }
        if !seen.insert(t.name).inserted { throw .duplicateTensor(t.name) }
        if t.dimensions.count > GGUFHeader.maximumDimensions {
            throw .tooManyDimensions(name: t.name, count: t.dimensions.count)
        }
        for (j, ne) in t.dimensions.enumerated() where ne < 0 {
            throw .negativeDimension(name: t.name, index: j, value: Int64(ne))
        }
        guard elementCount(of: t.dimensions) != nil, t.byteCount >= 0 else {
            throw .tensorTooLarge(name: t.name, dimensions: t.dimensions)
        }
        if let block = t.type.blockSize {
            let rowLength = t.dimensions.first ?? 1
            guard rowLength % block == 0 else {
                throw .rowNotMultipleOfBlock(name: t.name, rowLength: rowLength, type: t.type, blockSize: block)
            }
            guard let expected = GGUFTensorDescriptor.byteCount(dimensions: t.dimensions, type: t.type) else {
                throw .tensorTooLarge(name: t.name, dimensions: t.dimensions)
            }
            guard expected == t.byteCount else {
                throw .byteCountDisagreesWithShape(name: t.name, byteCount: t.byteCount, expected: expected)
            }
        }
    }

    // MARK: Encoding

    private static func writeString(_ s: String, to w: inout ByteWriter) {
        w.write(UInt64(s.utf8.count))
        w.write(utf8: s)
    }

    private static func writeValue(_ value: GGUFValue, to w: inout ByteWriter) {
        w.write(value.type.rawValue)
        switch value {
        case .uint8(let v): w.write(v)
        case .int8(let v): w.write(v)
        case .uint16(let v): w.write(v)
        case .int16(let v): w.write(v)
        case .uint32(let v): w.write(v)
        case .int32(let v): w.write(v)
        case .float32(let v): w.write(v.bitPattern)
        case .bool(let v): w.write(UInt8(v ? 1 : 0))
        case .string(let v): writeString(v, to: &w)
        case .uint64(let v): w.write(v)
        case .int64(let v): w.write(v)
        case .float64(let v): w.write(v.bitPattern)
        case .array(let a):
            w.write(a.elementType.rawValue)
            w.write(UInt64(a.count))
            switch a {
            case .uint8(let x): w.write(bytes: x)
            case .int8(let x): for v in x { w.write(v) }
            case .uint16(let x): for v in x { w.write(v) }
            case .int16(let x): for v in x { w.write(v) }
            case .uint32(let x): for v in x { w.write(v) }
            case .int32(let x): for v in x { w.write(v) }
            case .float32(let x): for v in x { w.write(v.bitPattern) }
            case .bool(let x): for v in x { w.write(UInt8(v ? 1 : 0)) }
            case .uint64(let x): for v in x { w.write(v) }
            case .int64(let x): for v in x { w.write(v) }
            case .float64(let x): for v in x { w.write(v.bitPattern) }
            case .string(let list):
                for i in list.indices {
                    let bytes = list.utf8(at: i)
                    w.write(UInt64(bytes.count))
                    w.write(bytes: bytes)
                }
            }
        }
    }
}
