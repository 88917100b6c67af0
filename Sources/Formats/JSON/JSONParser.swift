internal import CJSONC
public import TensorCore

/// Why a JSON document could not be parsed.
public enum JSONError: ClassifiedError, Hashable {
    /// Not valid JSON; `offset` is the byte where json-c stopped.
    case syntax(String, offset: Int)
    /// The same key appears twice in one object.
    case duplicateKey(String)
    /// Nesting deeper than ``JSONParser/maximumDepth``.
    case tooDeep
    /// The text is not UTF-8.
    case notUTF8

    public var kind: ErrorKind { .malformedInput }

    public var description: String {
        switch self {
        case .syntax(let msg, let offset): "invalid JSON at byte \(offset): \(msg)"
        case .duplicateKey(let key): "duplicate JSON key \"\(key)\""
        case .tooDeep: "JSON nested too deeply"
        case .notUTF8: "JSON text is not valid UTF-8"
        }
    }
}

/// Parses JSON with json-c and converts the result into ``JSONValue``.
///
/// json-c silently keeps the last of two equal keys; the formats wconv reads treat that as an
/// error (safetensors forbids duplicate tensor names), so a second pass over the text rejects
/// duplicates. This is the only file that calls json-c.
public enum JSONParser {
    /// Deepest nesting accepted; real files nest fewer than 10 levels.
    public static let maximumDepth = 64

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        guard String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) != nil else {
            throw .notUTF8
        }
        guard let tok = json_tokener_new_ex(Int32(maximumDepth)) else { throw .syntax("out of memory", offset: 0) }
        defer { json_tokener_free(tok) }
        json_tokener_set_flags(tok, Int32(JSON_TOKENER_STRICT))
        if bytes.count == 0 {
            throw .syntax("empty document", offset: 0)
        }
        guard bytes.count < Int(Int32.max) else { throw .syntax("document larger than 2 GiB", offset: 0) }
        var obj = json_tokener_parse_ex(tok, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
        var err = json_tokener_get_error(tok)
        var consumed = Int(json_tokener_get_parse_end(tok))
        if err == json_tokener_continue {
            // A document that is a bare number or literal ("1", "true", "null") has not ended
            // for json-c until it sees one more byte; a NUL ends the input, as it does for
            // json_tokener_parse. Anything else still open stays an error.
            json_object_put(obj)
            obj = json_tokener_parse_ex(tok, "", 1)
            err = json_tokener_get_error(tok)
            guard err == json_tokener_success else {
                json_object_put(obj)
                throw .syntax("unexpected end of document", offset: bytes.count)
            }
            consumed = bytes.count
        }
        guard err == json_tokener_success else {
            if err == json_tokener_error_depth { throw .tooDeep }
            throw .syntax(String(cString: json_tokener_error_desc(err)), offset: consumed)
        }
        // json-c represents JSON null as no object at all.
        defer { json_object_put(obj) }
        // Only whitespace may follow the document.
        for i in consumed ..< bytes.count where !isJSONWhitespace(bytes[i]) {
            throw .syntax("unexpected data after the document", offset: i)
        }
        if let dup = DuplicateKeyScanner.firstDuplicate(in: bytes) { throw .duplicateKey(dup) }
        return convert(obj)
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { raw in
            do throws(JSONError) { return .success(try parse(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    private static func convert(_ obj: OpaquePointer?) -> JSONValue {
        guard let obj else { return .null }
        switch json_object_get_type(obj) {
        case json_type_null: return .null
        case json_type_boolean: return .bool(json_object_get_boolean(obj) != 0)
        case json_type_int:
            // json-c stores integers above Int64.max as uint64; keep them as doubles.
            if json_object_get_int64(obj) == Int64.max && json_object_get_uint64(obj) > UInt64(Int64.max) {
                return .double(Double(json_object_get_uint64(obj)))
            }
            return .int(json_object_get_int64(obj))
        case json_type_double: return .double(json_object_get_double(obj))
        case json_type_string:
            let len = Int(json_object_get_string_len(obj))
            let ptr = json_object_get_string(obj)!
            let buf = UnsafeRawBufferPointer(start: ptr, count: len)
            return .string(String(decoding: buf, as: UTF8.self))
        case json_type_array:
            let n = json_object_array_length(obj)
            var out: [JSONValue] = []
            out.reserveCapacity(n)
            for i in 0 ..< n { out.append(convert(json_object_array_get_idx(obj, i))) }
            return .array(out)
        case json_type_object:
            var members: [(String, JSONValue)] = []
            var it = json_object_iter_begin(obj)
            var end = json_object_iter_end(obj)
            while json_object_iter_equal(&it, &end) == 0 {
                let name = String(cString: json_object_iter_peek_name(&it))
                members.append((name, convert(json_object_iter_peek_value(&it))))
                json_object_iter_next(&it)
            }
            return .object(JSONObject(members))
        default:
            return .null
        }
    }
}

@inline(__always)
func isJSONWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

/// Finds a key that occurs twice in one object of an already-validated JSON text.
///
/// Keys are compared after unescaping, so `"a"` and `"\u0061"` are the same key.
enum DuplicateKeyScanner {
    private struct Frame {
        var isObject: Bool
        var keys: Set<String> = []
        var expectingKey: Bool
    }

    static func firstDuplicate(in bytes: UnsafeRawBufferPointer) -> String? {
        var stack: [Frame] = []
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "{"):
                stack.append(Frame(isObject: true, expectingKey: true))
                i += 1
            case UInt8(ascii: "["):
                stack.append(Frame(isObject: false, expectingKey: false))
                i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
                i += 1
            case UInt8(ascii: ","):
                if !stack.isEmpty && stack[stack.count - 1].isObject { stack[stack.count - 1].expectingKey = true }
                i += 1
            case UInt8(ascii: "\""):
                let (text, next) = readString(bytes, from: i)
                i = next
                if !stack.isEmpty && stack[stack.count - 1].isObject && stack[stack.count - 1].expectingKey {
                    if !stack[stack.count - 1].keys.insert(text).inserted { return text }
                    stack[stack.count - 1].expectingKey = false
                }
            default:
                i += 1
            }
        }
        return nil
    }

    /// Reads the string starting at the quote at `start`; returns its unescaped text and the
    /// index after the closing quote.
    private static func readString(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (String, Int) {
        var i = start + 1
        var out: [UInt8] = []
        var scalars: [UInt16] = []
        func flushUTF16() {
            if !scalars.isEmpty {
                out.append(contentsOf: String(decoding: scalars, as: UTF16.self).utf8)
                scalars.removeAll()
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; break }
            if b == UInt8(ascii: "\\"), i + 1 < bytes.count {
                let e = bytes[i + 1]
                if e == UInt8(ascii: "u"), i + 5 < bytes.count {
                    let hex = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i + 2 ..< i + 6]), as: UTF8.self)
                    scalars.append(UInt16(hex, radix: 16) ?? 0xFFFD)
                    i += 6
                    continue
                }
                flushUTF16()
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                default: out.append(e)
                }
                i += 2
                continue
            }
            flushUTF16()
            out.append(b)
            i += 1
        }
        flushUTF16()
        return (String(decoding: out, as: UTF8.self), i)
    }
}
