import TensorCore

/// Assembles GGUF bytes piece by piece for tests, including pieces no valid writer would
/// produce (lying counts and lengths, bad type ids, misplaced offsets).
///
/// Every field is written exactly as given; nothing is validated. `build()` lays out
/// magic, version, tensor count, KV count, the KV entries, the tensor infos, zero padding to
/// ``alignment`` (if ``padAfterInfos``) and then ``data``.
public struct GGUFBuilder {
    public var magic: [UInt8] = Array("GGUF".utf8)
    public var version: UInt32 = 3
    /// Written instead of the real number of tensor infos, when set.
    public var tensorCountOverride: UInt64?
    /// Written instead of the real number of KV entries, when set.
    public var kvCountOverride: UInt64?
    /// Alignment used for the padding after the tensor infos.
    public var alignment = 32
    public var padAfterInfos = true
    /// Bytes after the padding: the tensor data section.
    public var data: [UInt8] = []

    public private(set) var entries: [[UInt8]] = []
    public private(set) var tensorInfos: [[UInt8]] = []

    public init() {}

    // MARK: Encoding helpers

    public static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        var w = ByteWriter()
        w.write(value)
        return w.bytes
    }

    /// A GGUF string: u64 length, then the bytes.
    public static func string(_ s: String) -> [UInt8] { string(bytes: Array(s.utf8)) }

    public static func string(bytes: [UInt8], claimedLength: UInt64? = nil) -> [UInt8] {
        le(claimedLength ?? UInt64(bytes.count)) + bytes
    }

    // MARK: Metadata

    /// A KV entry with a raw key, a raw type id and a raw payload.
    public mutating func addEntry(keyBytes: [UInt8], type: UInt32, payload: [UInt8]) {
        entries.append(Self.string(bytes: keyBytes) + Self.le(type) + payload)
    }

    public mutating func addEntry(_ key: String, type: UInt32, payload: [UInt8]) {
        addEntry(keyBytes: Array(key.utf8), type: type, payload: payload)
    }

    /// Raw bytes appended to the metadata section as they are.
    public mutating func addRawEntry(_ bytes: [UInt8]) { entries.append(bytes) }

    public mutating func addUInt8(_ key: String, _ v: UInt8) { addEntry(key, type: 0, payload: Self.le(v)) }
    public mutating func addUInt32(_ key: String, _ v: UInt32) { addEntry(key, type: 4, payload: Self.le(v)) }
    public mutating func addInt32(_ key: String, _ v: Int32) { addEntry(key, type: 5, payload: Self.le(v)) }
    public mutating func addUInt16(_ key: String, _ v: UInt16) { addEntry(key, type: 2, payload: Self.le(v)) }
    public mutating func addUInt64(_ key: String, _ v: UInt64) { addEntry(key, type: 10, payload: Self.le(v)) }
    public mutating func addFloat32(_ key: String, _ v: Float) { addEntry(key, type: 6, payload: Self.le(v.bitPattern)) }
    public mutating func addBoolByte(_ key: String, _ byte: UInt8) { addEntry(key, type: 7, payload: [byte]) }
    public mutating func addString(_ key: String, _ v: String) { addEntry(key, type: 8, payload: Self.string(v)) }

    /// An array entry: element type id, claimed count, then `elements` as given.
    public mutating func addArray(_ key: String, elementType: UInt32, count: UInt64, elements: [UInt8]) {
        addEntry(key, type: 9, payload: Self.le(elementType) + Self.le(count) + elements)
    }

    public mutating func addStringArray(_ key: String, _ values: [String]) {
        addArray(key, elementType: 8, count: UInt64(values.count), elements: values.flatMap { Self.string($0) })
    }

    // MARK: Tensor infos

    /// A tensor info: name, n_dims, each ne (as u64 bit patterns), type id, offset.
    public mutating func addTensorInfo(nameBytes: [UInt8], dimensions: [UInt64], type: UInt32, offset: UInt64,
                                       claimedDimensionCount: UInt32? = nil) {
        var bytes = Self.string(bytes: nameBytes)
        bytes += Self.le(claimedDimensionCount ?? UInt32(dimensions.count))
        for d in dimensions { bytes += Self.le(d) }
        bytes += Self.le(type) + Self.le(offset)
        tensorInfos.append(bytes)
    }

    public mutating func addTensorInfo(_ name: String, dimensions: [UInt64], type: UInt32, offset: UInt64) {
        addTensorInfo(nameBytes: Array(name.utf8), dimensions: dimensions, type: type, offset: offset)
    }

    /// Raw bytes appended to the tensor-info section as they are.
    public mutating func addRawTensorInfo(_ bytes: [UInt8]) { tensorInfos.append(bytes) }

    // MARK: Output

    /// The bytes before padding: header, KV entries, tensor infos.
    public func headerBytes() -> [UInt8] {
        var out = magic
        out += Self.le(version)
        out += Self.le(tensorCountOverride ?? UInt64(tensorInfos.count))
        out += Self.le(kvCountOverride ?? UInt64(entries.count))
        for e in entries { out += e }
        for t in tensorInfos { out += t }
        return out
    }

    /// The whole file.
    public func build() -> [UInt8] {
        var out = headerBytes()
        if padAfterInfos {
            let rem = out.count % alignment
            if rem != 0 { out += [UInt8](repeating: 0, count: alignment - rem) }
        }
        return out + data
    }
}
