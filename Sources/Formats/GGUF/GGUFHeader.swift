public import TensorCore

/// One tensor of a GGUF file, as described by its tensor info.
public struct GGUFTensorInfo: Sendable, Hashable {
    /// The tensor name (fewer than 64 UTF-8 bytes).
    public let name: String
    /// ggml `ne`, as stored in the file: fastest-varying dimension first.
    public let dimensions: [Int]
    /// The ggml type id (possibly one wconv does not know; see ``isKnownType``).
    public let type: GGMLType
    /// Offset of the data from the start of the file's data section.
    public let offset: Int
    /// Bytes of data. For a type wconv does not know, this is the span up to the next tensor
    /// (or to the end of the file for the last one), padding included, so it can be copied as is.
    public let byteCount: Int
    /// Whether ``type`` has a known block layout (so ``byteCount`` was computed from the shape).
    public let isKnownType: Bool

    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int, byteCount: Int, isKnownType: Bool) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
        self.byteCount = byteCount
        self.isKnownType = isKnownType
    }

    /// The shape in numpy / safetensors order (outermost first): ``dimensions`` reversed.
    public var shape: [Int] { dimensions.reversed() }

    /// Number of elements (1 for a tensor with no dimensions). The reader has checked it fits.
    public var elementCount: Int { TensorCore.elementCount(of: dimensions) ?? 0 }
}

/// The parsed metadata and tensor infos of a GGUF file (v2 or v3, little-endian).
///
/// Parsing applies the rules of ggml's `gguf_init_from_reader` (magic, version, unique
/// non-empty keys, value types 0…12, no nested arrays, string and array caps, names under 64
/// bytes, at most 4 dimensions, rows a whole number of blocks, offsets laid out back to back in
/// info order) and in addition checks every tensor's data lies inside the file.
public struct GGUFHeader: Sendable, Hashable {
    /// `GGUF` as a little-endian u32.
    public static let magic: UInt32 = 0x4655_4747
    /// The version this library writes.
    public static let currentVersion: UInt32 = 3
    /// Alignment of tensor data when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// Longest string accepted (ggml `GGUF_MAX_STRING_LENGTH`, 1 GiB).
    public static let maximumStringLength: UInt64 = 1 << 30
    /// Most array elements accepted (ggml `GGUF_MAX_ARRAY_ELEMENTS`, 2^30).
    public static let maximumArrayCount: UInt64 = 1 << 30
    /// Longest tensor name, in UTF-8 bytes (`GGML_MAX_NAME` - 1).
    public static let maximumNameLength = 63
    /// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
    public static let maximumDimensions = 4

    public let version: UInt32
    /// Metadata in file order.
    public let metadata: GGUFMetadata
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor in it.
    public let alignment: Int
    /// File offset of the data section.
    public let dataOffset: Int
    /// Size of the whole file the header was validated against.
    public let fileSize: Int
    private let tensorIndex: [String: Int]

    public init(version: UInt32, metadata: GGUFMetadata, tensors: [GGUFTensorInfo], alignment: Int, dataOffset: Int, fileSize: Int) {
        self.version = version
        self.metadata = metadata
        self.tensors = tensors
        self.alignment = alignment
        self.dataOffset = dataOffset
        self.fileSize = fileSize
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        tensorIndex = index
    }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// File offset of a tensor's first byte.
    public func fileOffset(of tensor: GGUFTensorInfo) -> Int { dataOffset + tensor.offset }

    /// Parses a GGUF header.
    ///
    /// - Parameters:
    ///   - bytes: the file, or a prefix of it holding at least the header and tensor infos.
    ///   - fileSize: the size of the whole file, against which tensor data ranges are checked;
    ///     defaults to `bytes.count`.
    /// - Returns: the header, with every tensor's data range checked to lie inside the file.
    /// - Throws: ``GGUFError`` naming the first rule the bytes break.
    public static func parse(_ bytes: UnsafeRawBufferPointer, fileSize: Int? = nil) throws(GGUFError) -> GGUFHeader {
        var parser = Parser(ByteCursor(bytes))
        return try parser.parse(fileSize: max(fileSize ?? bytes.count, bytes.count))
    }

    /// Parses a GGUF header from an array of bytes (see ``parse(_:fileSize:)``).
    public static func parse(_ bytes: [UInt8], fileSize: Int? = nil) throws(GGUFError) -> GGUFHeader {
        do {
            return try bytes.withUnsafeBytes { raw in try parse(raw, fileSize: fileSize) }
        } catch let error as GGUFError {
            throw error
        } catch {
            // withUnsafeBytes rethrows untyped; only GGUFError can come out of the body.
            throw .truncated(what: "header", offset: 0)
        }
    }
}

/// The fewest bytes a metadata entry can take: u64 key length, a 1-byte key, u32 type, 1-byte value.
private let minimumKeyValueByteCount = 8 + 1 + 4 + 1
/// The fewest bytes a tensor info can take: u64 name length, u32 n_dims (0), u32 type, u64 offset.
private let minimumTensorInfoByteCount = 8 + 4 + 4 + 8

/// A tensor info as read, before offsets are checked and byte counts settled.
private struct RawTensorInfo {
    var name: String
    var dimensions: [Int]
    var type: GGMLType
    var offset: UInt64
    /// Bytes implied by type and shape; nil for unknown types.
    var byteCount: Int?
}

private struct Parser {
    var cursor: ByteCursor

    init(_ cursor: ByteCursor) { self.cursor = cursor }

    // MARK: Primitive reads, with the truncation turned into a GGUFError naming the field.

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
        do { return try cursor.readInteger(T.self) } catch { throw .truncated(what: what(), offset: error.offset) }
    }

    mutating func raw(_ count: Int, _ what: @autoclosure () -> String) throws(GGUFError) -> UnsafeRawBufferPointer {
        do { return try cursor.readBytes(count) } catch { throw .truncated(what: what(), offset: error.offset) }
    }

    /// Reads a string's length and checks it against the cap and the bytes left, before any
    /// allocation, then returns a view of its bytes.
    mutating func stringBytes(_ what: @autoclosure () -> String) throws(GGUFError) -> UnsafeRawBufferPointer {
        let length = try integer(UInt64.self, what())
        let maximum = min(GGUFHeader.maximumStringLength, UInt64(cursor.remaining))
        guard length <= maximum else { throw .stringTooLong(what: what(), length: length, maximum: maximum) }
        return try raw(Int(length), what())
    }

    /// A string that must be valid UTF-8 (keys, tensor names, string values).
    mutating func string(_ what: @autoclosure () -> String) throws(GGUFError) -> String {
        let bytes = try stringBytes(what())
        guard let s = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8(what: what()) }
        return s
    }

    mutating func valueType(key: String) throws(GGUFError) -> GGUFValueType {
        let id = try integer(UInt32.self, "type of '\(key)'")
        guard let type = GGUFValueType(rawValue: id) else { throw .unknownValueType(id: id, key: key) }
        return type
    }

    // MARK: Values

    mutating func value(of type: GGUFValueType, key: String) throws(GGUFError) -> GGUFValue {
        let what = "value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try integer(UInt8.self, what))
        case .int8: return .int8(try integer(Int8.self, what))
        case .uint16: return .uint16(try integer(UInt16.self, what))
        case .int16: return .int16(try integer(Int16.self, what))
        case .uint32: return .uint32(try integer(UInt32.self, what))
        case .int32: return .int32(try integer(Int32.self, what))
        case .float32: return .float32(Float(bitPattern: try integer(UInt32.self, what)))
        // ggml reads a BOOL as int8 and treats any non-zero byte as true.
        case .bool: return .bool(try integer(UInt8.self, what) != 0)
        case .string: return .string(try string(what))
        case .uint64: return .uint64(try integer(UInt64.self, what))
        case .int64: return .int64(try integer(Int64.self, what))
        case .float64: return .float64(Double(bitPattern: try integer(UInt64.self, what)))
        case .array: return .array(try array(key: key))
        }
    }

    mutating func array(key: String) throws(GGUFError) -> GGUFArray {
        let elementType = try valueType(key: key)
        if elementType == .array { throw .nestedArray(key: key) }
        let rawCount = try integer(UInt64.self, "element count of '\(key)'")
        // Never trust the count: it must fit ggml's cap and the bytes actually left.
        let maximum = min(GGUFHeader.maximumArrayCount, UInt64(cursor.remaining / elementType.minimumByteCount))
        guard rawCount <= maximum else { throw .arrayTooLong(key: key, count: rawCount, maximum: maximum) }
        let count = Int(rawCount)
        let what = "array '\(key)'"
        switch elementType {
        case .uint8: return .uint8(try integers(count, what))
        case .int8: return .int8(try integers(count, what))
        case .uint16: return .uint16(try integers(count, what))
        case .int16: return .int16(try integers(count, what))
        case .uint32: return .uint32(try integers(count, what))
        case .int32: return .int32(try integers(count, what))
        case .float32: return .float32((try integers(count, what) as [UInt32]).map(Float.init(bitPattern:)))
        case .bool: return .bool((try integers(count, what) as [UInt8]).map { $0 != 0 })
        case .uint64: return .uint64(try integers(count, what))
        case .int64: return .int64(try integers(count, what))
        case .float64: return .float64((try integers(count, what) as [UInt64]).map(Double.init(bitPattern:)))
        case .string:
            var list = GGUFStringList()
            list.reserveCapacity(count: count, byteCount: 0)
            for i in 0 ..< count {
                // Array strings keep their exact bytes (tokens need not be valid UTF-8).
                list.append(utf8: try stringBytes("element \(i) of '\(key)'"))
            }
            return .string(list)
        case .array:
            throw .nestedArray(key: key)
        }
    }

    mutating func integers<T: FixedWidthInteger>(_ count: Int, _ what: String) throws(GGUFError) -> [T] {
        let size = MemoryLayout<T>.size
        let bytes = try raw(count * size, what)
        return (0 ..< count).map { T(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) }
    }

    // MARK: The file

    mutating func parse(fileSize: Int) throws(GGUFError) -> GGUFHeader {
        // Magic and version.
        guard cursor.remaining >= 4 else { throw .badMagic(found: Array(cursor.bytes)) }
        let magic = try integer(UInt32.self, "magic")
        guard magic == GGUFHeader.magic else {
            throw .badMagic(found: Array(cursor.bytes[0 ..< 4]))
        }
        let version = try integer(UInt32.self, "header")
        if version == 0 { throw .unsupportedVersion(0) }
        // A big-endian file's version 3 reads as 0x03000000 here.
        if version & 0xFFFF == 0 { throw .byteSwapped(version: version) }
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }

        // Counts, checked against what the remaining bytes could possibly describe.
        let tensorCount = try integer(UInt64.self, "header")
        let kvCount = try integer(UInt64.self, "header")
        let left = cursor.remaining
        guard kvCount <= UInt64(left / minimumKeyValueByteCount) else {
            throw .keyValueCountTooLarge(count: kvCount, bytesLeft: left)
        }
        let leftForTensors = left - Int(kvCount) * minimumKeyValueByteCount
        guard tensorCount <= UInt64(leftForTensors / minimumTensorInfoByteCount) else {
            throw .tensorCountTooLarge(count: tensorCount, bytesLeft: left)
        }

        // Metadata.
        var metadata = GGUFMetadata()
        for i in 0 ..< Int(kvCount) {
            let key = try string("metadata key \(i)")
            if key.isEmpty { throw .emptyKey(index: i) }
            if metadata.contains(key) { throw .duplicateKey(key) }
            let type = try valueType(key: key)
            metadata.appendUnique(key, try value(of: type, key: key))
        }

        var alignment = GGUFHeader.defaultAlignment
        if let value = metadata[GGUFKeys.General.alignment] {
            guard case .uint32(let a) = value else { throw .alignmentWrongType(value.type) }
            guard a != 0, a & (a - 1) == 0 else { throw .alignmentNotPowerOfTwo(Int(a)) }
            alignment = Int(a)
        }

        // Tensor infos.
        var infos: [RawTensorInfo] = []
        infos.reserveCapacity(Int(tensorCount))
        var seen = Set<String>()
        for i in 0 ..< Int(tensorCount) {
            infos.append(try tensorInfo(index: i, seen: &seen))
        }

        // The data section starts at the next multiple of the alignment (ggml pads only when
        // there are tensors).
        let endOfInfos = cursor.offset
        let dataOffset = tensorCount > 0 ? alignUp(endOfInfos, to: alignment) : endOfInfos
        if tensorCount > 0 && dataOffset > fileSize {
            throw .truncated(what: "padding before the tensor data", offset: endOfInfos)
        }

        let tensors = try settleOffsets(infos, alignment: alignment, dataOffset: dataOffset, fileSize: fileSize)
        return GGUFHeader(version: version, metadata: metadata, tensors: tensors, alignment: alignment,
                          dataOffset: dataOffset, fileSize: fileSize)
    }

    mutating func tensorInfo(index i: Int, seen: inout Set<String>) throws(GGUFError) -> RawTensorInfo {
        let name = try string("tensor name \(i)")
        if name.utf8.count > GGUFHeader.maximumNameLength { throw .nameTooLong(name) }
        if !seen.insert(name).inserted { throw .duplicateTensor(name) }
        let what = "tensor info '\(name)'"

        let nDims = try integer(UInt32.self, what)
        guard nDims <= UInt32(GGUFHeader.maximumDimensions) else {
            throw .tooManyDimensions(name: name, count: Int(nDims))
        }
        var dims: [Int] = []
        for j in 0 ..< Int(nDims) {
            let ne = Int64(bitPattern: try integer(UInt64.self, what))
            guard ne >= 0 else { throw .negativeDimension(name: name, index: j, value: ne) }
            dims.append(Int(ne))
        }
        guard let elements = elementCount(of: dims) else { throw .tensorTooLarge(name: name, dimensions: dims) }

        let type = GGMLType(rawValue: try integer(UInt32.self, what))
        var byteCount: Int?
        if let block = type.blockSize, let typeSize = type.typeSize {
            let rowLength = dims.first ?? 1
            guard rowLength % block == 0 else {
                throw .rowNotMultipleOfBlock(name: name, rowLength: rowLength, type: type, blockSize: block)
            }
            let (bytes, overflow) = (elements / block).multipliedReportingOverflow(by: typeSize)
            guard !overflow else { throw .tensorTooLarge(name: name, dimensions: dims) }
            byteCount = bytes
        }
        let offset = try integer(UInt64.self, what)
        return RawTensorInfo(name: name, dimensions: dims, type: type, offset: offset, byteCount: byteCount)
    }

    /// Checks that offsets are aligned and cumulative (ggml: tensor i starts at the sum of the
    /// padded sizes of tensors 0..<i), settles the byte counts of unknown types from the next
    /// offset, and checks every range against the file size.
    func settleOffsets(_ infos: [RawTensorInfo], alignment: Int, dataOffset: Int, fileSize: Int) throws(GGUFError) -> [GGUFTensorInfo] {
        let align = UInt64(alignment)
        let dataSize = UInt64(fileSize - dataOffset)
        var expected: UInt64 = 0
        var result: [GGUFTensorInfo] = []
        result.reserveCapacity(infos.count)
        for (i, info) in infos.enumerated() {
            guard info.offset % align == 0 else {
                throw .offsetNotAligned(name: info.name, offset: info.offset, alignment: alignment)
            }
            guard info.offset == expected else {
                throw .offsetsNotCumulative(name: info.name, offset: info.offset, expected: expected)
            }
            let byteCount: UInt64
            if let known = info.byteCount {
                byteCount = UInt64(known)
                let padded = byteCount.addingReportingOverflow((align - byteCount % align) % align)
                let next = expected.addingReportingOverflow(padded.partialValue)
                guard !padded.overflow, !next.overflow else {
                    throw .tensorOutOfBounds(name: info.name, fileOffset: UInt64(dataOffset) &+ info.offset,
                                             byteCount: byteCount, fileSize: fileSize)
                }
                expected = next.partialValue
            } else if i + 1 < infos.count {
                // Unknown layout: the tensor spans up to where the next one starts.
                let next = infos[i + 1]
                guard next.offset >= info.offset else {
                    throw .offsetsNotCumulative(name: next.name, offset: next.offset, expected: info.offset)
                }
                byteCount = next.offset - info.offset
                expected = next.offset
            } else {
                // Unknown layout, last tensor: it runs to the end of the file.
                guard info.offset <= dataSize else {
                    throw .tensorOutOfBounds(name: info.name, fileOffset: UInt64(dataOffset) &+ info.offset,
                                             byteCount: 0, fileSize: fileSize)
                }
                byteCount = dataSize - info.offset
            }
            guard info.offset <= dataSize, byteCount <= dataSize - info.offset else {
                throw .tensorOutOfBounds(name: info.name, fileOffset: UInt64(dataOffset) &+ info.offset,
                                         byteCount: byteCount, fileSize: fileSize)
            }
            if info.byteCount == nil {
                // The dimensions of an unknown type are bounded by nothing else; without this an
                // element count near Int.max reaches every sum over tensors (parameter totals).
                let elements = elementCount(of: info.dimensions) ?? Int.max
                let (bits, overflow) = byteCount.multipliedReportingOverflow(by: 8)
                guard overflow || UInt64(elements) <= bits else {
                    throw .tooManyElementsForBytes(name: info.name, type: info.type, elementCount: elements, byteCount: byteCount)
                }
            }
            result.append(GGUFTensorInfo(name: info.name, dimensions: info.dimensions, type: info.type,
                                         offset: Int(info.offset), byteCount: Int(byteCount),
                                         isKnownType: info.byteCount != nil))
        }
        return result
    }
}
