/// The type id of a GGUF metadata value (`enum gguf_type` in ggml, `GGUFValueType` in gguf-py).
///
/// Ids 0…12; `array` (9) never appears as the element type of another array.
public enum GGUFValueType: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case uint8 = 0
    case int8 = 1
    case uint16 = 2
    case int16 = 3
    case uint32 = 4
    case int32 = 5
    case float32 = 6
    case bool = 7
    case string = 8
    case array = 9
    case uint64 = 10
    case int64 = 11
    case float64 = 12

    /// Bytes of one value of a fixed-size type; nil for `string` and `array`.
    public var fixedByteCount: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }

    /// The fewest bytes one value of this type can occupy in a file (a string is at least its
    /// u64 length; an array at least its element type and count). Used to reject counts that
    /// the rest of the file could not possibly hold before anything is allocated.
    public var minimumByteCount: Int {
        switch self {
        case .string: 8
        case .array: 12
        default: fixedByteCount ?? 1
        }
    }

    /// The spec spelling (`UINT32`, `STRING`, …), as gguf-py prints it.
    public var description: String {
        switch self {
        case .uint8: "UINT8"
        case .int8: "INT8"
        case .uint16: "UINT16"
        case .int16: "INT16"
        case .uint32: "UINT32"
        case .int32: "INT32"
        case .float32: "FLOAT32"
        case .bool: "BOOL"
        case .string: "STRING"
        case .array: "ARRAY"
        case .uint64: "UINT64"
        case .int64: "INT64"
        case .float64: "FLOAT64"
        }
    }
}

/// A list of strings stored as one UTF-8 byte buffer plus end offsets.
///
/// Tokenizer vocabularies reach 150k entries; one buffer keeps them compact, and keeping the
/// bytes (rather than decoded `String`s) means a token that is not valid UTF-8 — ggml does not
/// require it to be — is copied byte for byte instead of being repaired.
public struct GGUFStringList: Sendable, Hashable, RandomAccessCollection {
    /// The concatenated bytes of every string.
    public private(set) var storage: [UInt8]
    /// `ends[i]` is the offset in ``storage`` one past the last byte of string `i`.
    public private(set) var ends: [Int]

    public init() {
        storage = []
        ends = []
    }

    public init(_ strings: some Sequence<String>) {
        self.init()
        for s in strings { append(s) }
    }

    /// Reserves room for `count` strings of `byteCount` bytes in total.
    public mutating func reserveCapacity(count: Int, byteCount: Int) {
        ends.reserveCapacity(count)
        storage.reserveCapacity(byteCount)
    }

    public mutating func append(_ string: String) {
        storage.append(contentsOf: string.utf8)
        ends.append(storage.count)
    }

    /// Appends a string given as raw bytes (not checked for UTF-8).
    public mutating func append(utf8 bytes: some Sequence<UInt8>) {
        storage.append(contentsOf: bytes)
        ends.append(storage.count)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { ends.count }

    /// The bytes of string `index`.
    public func utf8(at index: Int) -> ArraySlice<UInt8> {
        storage[(index == 0 ? 0 : ends[index - 1]) ..< ends[index]]
    }

    /// String `index`, decoded as UTF-8 (invalid sequences become U+FFFD; use ``utf8(at:)`` for the exact bytes).
    public subscript(index: Int) -> String {
        String(decoding: utf8(at: index), as: UTF8.self)
    }
}

extension GGUFStringList: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: String...) { self.init(elements) }
}

/// A metadata array: one element type and typed, contiguous storage.
///
/// Nested arrays are not representable: neither ggml nor gguf-py reads them.
public enum GGUFArray: Sendable {
    case uint8([UInt8])
    case int8([Int8])
    case uint16([UInt16])
    case int16([Int16])
    case uint32([UInt32])
    case int32([Int32])
    case float32([Float])
    case bool([Bool])
    case string(GGUFStringList)
    case uint64([UInt64])
    case int64([Int64])
    case float64([Double])

    /// The type of every element.
    public var elementType: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// Number of elements.
    public var count: Int {
        switch self {
        case .uint8(let a): a.count
        case .int8(let a): a.count
        case .uint16(let a): a.count
        case .int16(let a): a.count
        case .uint32(let a): a.count
        case .int32(let a): a.count
        case .float32(let a): a.count
        case .bool(let a): a.count
        case .string(let a): a.count
        case .uint64(let a): a.count
        case .int64(let a): a.count
        case .float64(let a): a.count
        }
    }

    /// The elements as `Int`, for any integer element type; nil for other types or if a
    /// `UINT64` element exceeds `Int.max`.
    public var integers: [Int]? {
        switch self {
        case .uint8(let a): a.map(Int.init)
        case .int8(let a): a.map(Int.init)
        case .uint16(let a): a.map(Int.init)
        case .int16(let a): a.map(Int.init)
        case .uint32(let a): a.map(Int.init)
        case .int32(let a): a.map(Int.init)
        case .int64(let a): a.map(Int.init)
        case .uint64(let a):
            a.allSatisfy({ $0 <= UInt64(Int.max) }) ? a.map { Int($0) } : nil
        default: nil
        }
    }

    /// The elements as `Float`, for `FLOAT32` (exact) or `FLOAT64` (rounded) arrays.
    public var floats: [Float]? {
        switch self {
        case .float32(let a): a
        case .float64(let a): a.map(Float.init)
        default: nil
        }
    }

    /// The elements of a `STRING` array, decoded.
    public var strings: [String]? {
        if case .string(let list) = self { Array(list) } else { nil }
    }
}

extension GGUFArray: Hashable {
    // Floats compare by bit pattern so a round trip through a file (NaN payloads included) is
    // `==` to the original.
    public static func == (a: GGUFArray, b: GGUFArray) -> Bool {
        switch (a, b) {
        case (.uint8(let x), .uint8(let y)): x == y
        case (.int8(let x), .int8(let y)): x == y
        case (.uint16(let x), .uint16(let y)): x == y
        case (.int16(let x), .int16(let y)): x == y
        case (.uint32(let x), .uint32(let y)): x == y
        case (.int32(let x), .int32(let y)): x == y
        case (.float32(let x), .float32(let y)): x.elementsEqual(y) { $0.bitPattern == $1.bitPattern }
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.uint64(let x), .uint64(let y)): x == y
        case (.int64(let x), .int64(let y)): x == y
        case (.float64(let x), .float64(let y)): x.elementsEqual(y) { $0.bitPattern == $1.bitPattern }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(elementType)
        hasher.combine(count)
    }
}

/// One metadata value.
public enum GGUFValue: Sendable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value's type id (`array` for arrays; see ``GGUFArray/elementType`` for the elements).
    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// The value as `Int`, for any integer type (llama.cpp writes counts as UINT32, the spec
    /// suggests UINT64; readers must take both). Nil for other types or a UINT64 above `Int.max`.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// The value as `Float`, for `FLOAT32` (exact) or `FLOAT64` (rounded).
    public var floatValue: Float? {
        switch self {
        case .float32(let v): v
        case .float64(let v): Float(v)
        default: nil
        }
    }

    /// The value as `Double`, for `FLOAT32` or `FLOAT64` (both exact).
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: nil
        }
    }

    public var boolValue: Bool? { if case .bool(let v) = self { v } else { nil } }
    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    public var arrayValue: GGUFArray? { if case .array(let v) = self { v } else { nil } }

    /// The elements of a string array.
    public var stringArray: [String]? { arrayValue?.strings }
    /// The elements of a `FLOAT32`/`FLOAT64` array as `Float`.
    public var floatArray: [Float]? { arrayValue?.floats }
    /// The elements of an integer array as `Int`.
    public var intArray: [Int]? { arrayValue?.integers }
}

extension GGUFValue: Hashable {
    public static func == (a: GGUFValue, b: GGUFValue) -> Bool {
        switch (a, b) {
        case (.uint8(let x), .uint8(let y)): x == y
        case (.int8(let x), .int8(let y)): x == y
        case (.uint16(let x), .uint16(let y)): x == y
        case (.int16(let x), .int16(let y)): x == y
        case (.uint32(let x), .uint32(let y)): x == y
        case (.int32(let x), .int32(let y)): x == y
        case (.float32(let x), .float32(let y)): x.bitPattern == y.bitPattern
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.uint64(let x), .uint64(let y)): x == y
        case (.int64(let x), .int64(let y)): x == y
        case (.float64(let x), .float64(let y)): x.bitPattern == y.bitPattern
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        switch self {
        case .float32(let v): hasher.combine(v.bitPattern)
        case .float64(let v): hasher.combine(v.bitPattern)
        case .string(let v): hasher.combine(v)
        case .array(let v): hasher.combine(v)
        default: hasher.combine(intValue)
        }
    }
}

/// One metadata entry.
public struct GGUFKeyValue: Sendable, Hashable {
    public var key: String
    public var value: GGUFValue

    public init(_ key: String, _ value: GGUFValue) {
        self.key = key
        self.value = value
    }
}

/// The metadata of a GGUF file: entries in file order, with lookup by key.
///
/// Keys are unique (the reader rejects duplicates, as ggml does); ``set(_:_:)`` replaces an
/// existing entry in place so the order of the others is kept.
public struct GGUFMetadata: Sendable, Hashable, RandomAccessCollection {
    public private(set) var entries: [GGUFKeyValue]
    private var index: [String: Int]

    public init() {
        entries = []
        index = [:]
    }

    /// Metadata from entries in order; a later duplicate replaces the earlier value in its place.
    public init(_ entries: [GGUFKeyValue]) {
        self.init()
        for e in entries { set(e.key, e.value) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }
    public subscript(position: Int) -> GGUFKeyValue { entries[position] }

    /// The keys in file order.
    public var keys: [String] { entries.map(\.key) }

    /// The value of `key`, if present.
    public subscript(key: String) -> GGUFValue? {
        index[key].map { entries[$0].value }
    }

    public func contains(_ key: String) -> Bool { index[key] != nil }

    /// Sets `key`: replaces its value where it stands, or appends it.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = index[key] {
            entries[i].value = value
        } else {
            index[key] = entries.count
            entries.append(GGUFKeyValue(key, value))
        }
    }

    /// Removes `key` if present (later entries keep their relative order).
    public mutating func remove(_ key: String) {
        guard let i = index[key] else { return }
        entries.remove(at: i)
        index = [:]
        for (j, e) in entries.enumerated() { index[e.key] = j }
    }

    /// Appends without checking for an existing key; the parser uses it after its own check.
    mutating func appendUnique(_ key: String, _ value: GGUFValue) {
        index[key] = entries.count
        entries.append(GGUFKeyValue(key, value))
    }

    public static func == (a: GGUFMetadata, b: GGUFMetadata) -> Bool { a.entries == b.entries }
    public func hash(into hasher: inout Hasher) { hasher.combine(entries) }
}

extension GGUFMetadata: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, GGUFValue)...) {
        self.init(elements.map { GGUFKeyValue($0.0, $0.1) })
    }
}
