public import TensorCore

/// One tensor of a safetensors file.
public struct SafetensorsTensor: Sendable, Hashable {
    public let name: String
    public let dtype: DType
    /// Row-major dimensions; `[]` is a scalar.
    public let shape: [Int]
    /// Byte range within the data buffer (which starts at ``SafetensorsHeader/dataStart`` in the file).
    public let dataOffsets: Range<Int>
    /// Product of ``shape`` (1 for a scalar).
    public let elementCount: Int

    /// Bytes of tensor data.
    public var byteCount: Int { dataOffsets.count }

    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>, elementCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
        self.elementCount = elementCount
    }
}

/// The parsed and validated header of a safetensors file.
///
/// Layout: bytes 0..<8 hold `N` (u64 little-endian), bytes 8..<8+N a UTF-8 JSON object (right
/// padded with spaces by writers), then the data buffer. Each tensor entry is
/// `{"dtype", "shape", "data_offsets": [begin, end]}` with offsets relative to the data buffer;
/// `__metadata__` optionally maps strings to strings.
public struct SafetensorsHeader: Sendable {
    /// The reference reader's `MAX_HEADER_SIZE`.
    public static let maximumHeaderSize = 100_000_000

    /// Tensors in data-offset order (which need not be the JSON order).
    public let tensors: [SafetensorsTensor]
    /// `__metadata__` in file order, or nil when absent (or `null`, which the reference accepts).
    public let metadata: [(key: String, value: String)]?
    /// Offset of the data buffer in the file: `8 + N`.
    public let dataStart: Int

    private let indexByName: [String: Int]

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> SafetensorsTensor? {
        indexByName[name].map { tensors[$0] }
    }

    /// Parses and validates the header of a whole safetensors file held in `file`.
    ///
    /// Every check of the reference reader is applied before anything is viewed: header length,
    /// UTF-8, JSON, entry fields, dtype names, contiguous offsets from 0 in offset order, byte
    /// counts against dtype × shape (with overflow checks) and full coverage of the file.
    /// Duplicate tensor names are rejected (the reference documents them as forbidden).
    /// - Parameter file: the complete file contents (usually a ``MappedFile``'s bytes).
    /// - Throws: ``SafetensorsError`` naming the first failed check.
    public static func parse(_ file: UnsafeRawBufferPointer) throws(SafetensorsError) -> SafetensorsHeader {
        var cursor = ByteCursor(file)
        guard let n = try? cursor.readInteger(UInt64.self) else { throw .headerTooSmall(fileSize: file.count) }
        guard n <= UInt64(maximumHeaderSize) else { throw .headerTooLarge(headerSize: n) }
        let headerSize = Int(n)
        guard let json = try? cursor.readBytes(headerSize) else {
            throw .invalidHeaderLength(headerSize: n, fileSize: file.count)
        }
        let dataStart = 8 + headerSize

        guard String(validating: json.bindMemory(to: UInt8.self), as: UTF8.self) != nil else { throw .headerNotUTF8 }
        let root: JSONValue
        do {
            root = try JSONParser.parse(json)
        } catch .duplicateKey(let key) {
            // json-c reports the first duplicate at any depth; a duplicate *tensor name* is a
            // top-level one and gets its own error.
            if let name = firstDuplicateTopLevelKey(json) { throw .duplicateName(name) }
            throw .invalidHeaderJSON(.duplicateKey(key))
        } catch {
            throw .invalidHeaderJSON(error)
        }
        guard case .object(let object) = root else { throw .headerNotObject }

        var metadata: [(key: String, value: String)]? = nil
        var tensors: [SafetensorsTensor] = []
        tensors.reserveCapacity(object.count)
        for (name, value) in object {
            if name == "__metadata__" {
                metadata = try parseMetadata(value)
            } else {
                tensors.append(try parseEntry(name: name, value))
            }
        }

        // The reference sorts by (begin, end) and then requires the tensors to tile the buffer.
        // A stable sort keeps JSON order among equal offsets (several empty tensors).
        let order = tensors.indices.sorted { a, b in
            let x = tensors[a].dataOffsets, y = tensors[b].dataOffsets
            if x.lowerBound != y.lowerBound { return x.lowerBound < y.lowerBound }
            if x.upperBound != y.upperBound { return x.upperBound < y.upperBound }
            return a < b
        }
        tensors = order.map { tensors[$0] }

        var end = 0
        var indexByName: [String: Int] = [:]
        indexByName.reserveCapacity(tensors.count)
        for (i, t) in tensors.enumerated() {
            guard t.dataOffsets.lowerBound == end else {
                throw .invalidOffset(name: t.name, begin: t.dataOffsets.lowerBound, end: t.dataOffsets.upperBound, expectedBegin: end)
            }
            end = t.dataOffsets.upperBound
            let (bits, overflow) = t.elementCount.multipliedReportingOverflow(by: t.dtype.bitCount)
            guard !overflow else { throw .sizeOverflow(name: t.name) }
            guard bits % 8 == 0 else { throw .misalignedSlice(name: t.name, dtype: t.dtype, elementCount: t.elementCount) }
            guard bits / 8 == t.byteCount else {
                throw .tensorInvalidInfo(name: t.name, expectedByteCount: bits / 8, actualByteCount: t.byteCount)
            }
            indexByName[t.name] = i
        }
        let (expectedSize, overflow) = dataStart.addingReportingOverflow(end)
        guard !overflow, expectedSize == file.count else {
            throw .incompleteBuffer(expectedFileSize: overflow ? Int.max : expectedSize, fileSize: file.count)
        }
        return SafetensorsHeader(tensors: tensors, metadata: metadata, dataStart: dataStart, indexByName: indexByName)
    }

    private init(tensors: [SafetensorsTensor], metadata: [(key: String, value: String)]?, dataStart: Int, indexByName: [String: Int]) {
        self.tensors = tensors
        self.metadata = metadata
        self.dataStart = dataStart
        self.indexByName = indexByName
    }

    private static func parseMetadata(_ value: JSONValue) throws(SafetensorsError) -> [(key: String, value: String)]? {
        switch value {
        case .null:
            return nil
        case .object(let object):
            var pairs: [(key: String, value: String)] = []
            for (key, v) in object {
                guard case .string(let s) = v else { throw .metadataNotStrings(key: key) }
                pairs.append((key, s))
            }
            return pairs
        default:
            throw .metadataNotStrings(key: nil)
        }
    }

    /// Reads one `{"dtype", "shape", "data_offsets"}` entry; other fields are ignored, as in the
    /// reference.
    private static func parseEntry(name: String, _ value: JSONValue) throws(SafetensorsError) -> SafetensorsTensor {
        guard case .object(let entry) = value else {
            throw .invalidTensorEntry(name: name, reason: "entry is not an object")
        }
        guard let dtypeValue = entry["dtype"] else { throw .invalidTensorEntry(name: name, reason: "missing \"dtype\"") }
        guard case .string(let dtypeName) = dtypeValue else {
            throw .invalidTensorEntry(name: name, reason: "\"dtype\" is not a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else { throw .unknownDType(name: name, dtype: dtypeName) }
        guard let shapeValue = entry["shape"] else { throw .invalidTensorEntry(name: name, reason: "missing \"shape\"") }
        guard let shape = nonNegativeIntegers(shapeValue) else {
            throw .invalidTensorEntry(name: name, reason: "\"shape\" is not an array of non-negative integers")
        }
        guard let offsetsValue = entry["data_offsets"] else {
            throw .invalidTensorEntry(name: name, reason: "missing \"data_offsets\"")
        }
        guard let offsets = nonNegativeIntegers(offsetsValue), offsets.count == 2 else {
            throw .invalidTensorEntry(name: name, reason: "\"data_offsets\" is not a pair of non-negative integers")
        }
        guard let count = elementCount(of: shape) else { throw .sizeOverflow(name: name) }
        // An inverted pair is reported by the offset check, with the name, like the reference;
        // keep the range well formed until then.
        let begin = offsets[0], end = offsets[1]
        if end < begin {
            throw .invalidOffset(name: name, begin: begin, end: end, expectedBegin: begin)
        }
        return SafetensorsTensor(name: name, dtype: dtype, shape: shape, dataOffsets: begin ..< end, elementCount: count)
    }

    /// The integers of a JSON array of non-negative integers (JSON integers only: `1.0` is
    /// refused, as serde refuses it for `usize`).
    private static func nonNegativeIntegers(_ value: JSONValue) -> [Int]? {
        guard case .array(let items) = value else { return nil }
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .int(let i) = item, i >= 0, let v = Int(exactly: i) else { return nil }
            out.append(v)
        }
        return out
    }

    /// The first key that occurs twice in the outermost object of a syntactically valid JSON
    /// text, compared after unescaping.
    static func firstDuplicateTopLevelKey(_ text: UnsafeRawBufferPointer) -> String? {
        var depth = 0
        var expectingKey = false
        var seen: Set<String> = []
        var i = 0
        while i < text.count {
            switch text[i] {
            case UInt8(ascii: "{"):
                depth += 1
                if depth == 1 { expectingKey = true }
                i += 1
            case UInt8(ascii: "["):
                depth += 1
                i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                i += 1
            case UInt8(ascii: ","):
                if depth == 1 { expectingKey = true }
                i += 1
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < text.count && text[i] != UInt8(ascii: "\"") {
                    i += text[i] == UInt8(ascii: "\\") ? 2 : 1
                }
                i = min(i + 1, text.count)
                if depth == 1 && expectingKey {
                    expectingKey = false
                    // Let the JSON parser unescape the key, so "a" and "\u0061" compare equal.
                    let raw = UnsafeRawBufferPointer(rebasing: text[start ..< i])
                    if case .string(let key)? = try? JSONParser.parse(raw), !seen.insert(key).inserted {
                        return key
                    }
                }
            default:
                i += 1
            }
        }
        return nil
    }
}
