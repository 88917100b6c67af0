extension GGUFValue {
    /// The value as JSON (for `inspect --json`): integers as numbers, FLOAT32 widened exactly to
    /// double, strings as strings; arrays as JSON arrays of at most `arrayLimit` elements.
    public func jsonValue(arrayLimit: Int = .max) -> JSONValue {
        switch self {
        case .uint8(let v): .int(Int64(v))
        case .int8(let v): .int(Int64(v))
        case .uint16(let v): .int(Int64(v))
        case .int16(let v): .int(Int64(v))
        case .uint32(let v): .int(Int64(v))
        case .int32(let v): .int(Int64(v))
        case .uint64(let v): Int64(exactly: v).map { .int($0) } ?? .double(Double(v))
        case .int64(let v): .int(v)
        case .float32(let v): .double(Double(v))
        case .float64(let v): .double(v)
        case .bool(let v): .bool(v)
        case .string(let v): .string(v)
        case .array(let a): .array(a.jsonValues(limit: arrayLimit))
        }
    }

    /// A short human rendering: scalars as they are, strings quoted and cut, arrays as
    /// `[n × TYPE] first, second, …`.
    public func summary(maxLength: Int = 80) -> String {
        switch self {
        case .string(let s):
            let escaped = JSONValue.string(s).serialized(.compact)
            return escaped.count > maxLength ? String(escaped.prefix(maxLength - 1)) + "…\"" : escaped
        case .array(let a):
            var text = "[\(a.count) × \(a.elementType)]"
            let items = a.jsonValues(limit: 8).map { $0.serialized(.compact) }
            if !items.isEmpty { text += " " + items.joined(separator: ", ") + (a.count > items.count ? ", …" : "") }
            return text.count > maxLength ? String(text.prefix(maxLength - 1)) + "…" : text
        case .float32(let v): return "\(v)"
        default: return jsonValue().serialized(.compact)
        }
    }
}

extension GGUFArray {
    func jsonValues(limit: Int) -> [JSONValue] {
        let n = Swift.min(count, limit)
        switch self {
        case .uint8(let a): return a.prefix(n).map { .int(Int64($0)) }
        case .int8(let a): return a.prefix(n).map { .int(Int64($0)) }
        case .uint16(let a): return a.prefix(n).map { .int(Int64($0)) }
        case .int16(let a): return a.prefix(n).map { .int(Int64($0)) }
        case .uint32(let a): return a.prefix(n).map { .int(Int64($0)) }
        case .int32(let a): return a.prefix(n).map { .int(Int64($0)) }
        case .uint64(let a): return a.prefix(n).map { Int64(exactly: $0).map { JSONValue.int($0) } ?? .double(Double($0)) }
        case .int64(let a): return a.prefix(n).map { .int($0) }
        case .float32(let a): return a.prefix(n).map { .double(Double($0)) }
        case .float64(let a): return a.prefix(n).map { .double($0) }
        case .bool(let a): return a.prefix(n).map { .bool($0) }
        case .string(let a): return (0 ..< n).map { .string(a[$0]) }
        }
    }
}
