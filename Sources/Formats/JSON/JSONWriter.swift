/// Serializing ``JSONValue`` in the exact styles of the writers wconv must match byte for byte.
public enum JSONStyle: Sendable {
    /// serde_json compact (the safetensors header): no spaces, non-ASCII written as UTF-8.
    case compact
    /// Python `json.dumps(indent: n, sort_keys:)` with `ensure_ascii=True`: how transformers
    /// writes config.json, generation_config.json and the shard index.
    case python(indent: Int, sortKeys: Bool)
    /// Python `json.dumps(sort_keys:)` on one line (`", "` and `": "` separators, ensure_ascii),
    /// as bitsandbytes' quant-state JSON is written.
    case pythonInline(sortKeys: Bool)
}

extension JSONValue {
    /// The JSON text of this value in `style` (no trailing newline).
    public func serialized(_ style: JSONStyle = .compact) -> String {
        var out = ""
        write(into: &out, style: style, level: 0)
        return out
    }

    private func write(into out: inout String, style: JSONStyle, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += JSONValue.pythonRepr(d)
        case .string(let s): JSONValue.writeString(s, into: &out, asciiOnly: style.asciiOnly)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += style.itemSeparator }
                style.newline(into: &out, level: level + 1)
                item.write(into: &out, style: style, level: level + 1)
            }
            style.newline(into: &out, level: level)
            out += "]"
        case .object(let obj):
            if obj.count == 0 { out += "{}"; return }
            out += "{"
            let members = style.sortsKeys ? obj.members.sorted { $0.key.utf16.lexicographicallyPrecedes($1.key.utf16) } : obj.members
            for (n, m) in members.enumerated() {
                if n > 0 { out += style.itemSeparator }
                style.newline(into: &out, level: level + 1)
                JSONValue.writeString(m.key, into: &out, asciiOnly: style.asciiOnly)
                out += style.keySeparator
                m.value.write(into: &out, style: style, level: level + 1)
            }
            style.newline(into: &out, level: level)
            out += "}"
        }
    }

    /// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values,
    /// exponent form outside [1e-4, 1e16), `NaN`/`Infinity` as `json.dumps` writes them.
    static func pythonRepr(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
        // Swift's description is also shortest round-trip and uses the same thresholds and
        // exponent spelling (`1e-05`, `1e+16`) as Python.
        return d.description
    }

    static func writeString(_ s: String, into out: inout String, asciiOnly: Bool) {
        out += "\""
        for unit in s.unicodeScalars {
            switch unit {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if unit.value < 0x20 || (asciiOnly && unit.value > 0x7E) {
                    if unit.value > 0xFFFF {
                        for u16 in String(unit).utf16 { out += hex4(u16) }
                    } else {
                        out += hex4(UInt16(unit.value))
                    }
                } else {
                    out.unicodeScalars.append(unit)
                }
            }
        }
        out += "\""
    }

    private static func hex4(_ v: UInt16) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }
}

extension JSONStyle {
    var asciiOnly: Bool {
        if case .compact = self { return false }
        return true
    }

    var sortsKeys: Bool {
        switch self {
        case .compact: false
        case .python(_, let s), .pythonInline(let s): s
        }
    }

    var itemSeparator: String {
        switch self {
        case .compact, .python: ","
        case .pythonInline: ", "
        }
    }

    var keySeparator: String {
        switch self {
        case .compact: ":"
        case .python, .pythonInline: ": "
        }
    }

    func newline(into out: inout String, level: Int) {
        if case .python(let indent, _) = self {
            out += "\n" + String(repeating: " ", count: indent * level)
        }
    }
}
