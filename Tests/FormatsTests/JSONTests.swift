import Testing
import Formats

@Suite struct JSONTests {
    @Test func keepsOrderAndNumberKinds() throws {
        let v = try JSONParser.parse(#"{"b": 1, "a": 1.0, "c": [true, null, "x"], "big": 1e300}"#)
        #expect(v.objectValue?.keys == ["b", "a", "c", "big"])
        #expect(v["b"] == .int(1))
        #expect(v["a"] == .double(1.0))
        #expect(v["c"] == [true, nil, "x"])
    }

    @Test func rejectsDuplicateKeysEvenWhenEscaped() {
        #expect(throws: JSONError.duplicateKey("a")) { try JSONParser.parse(#"{"a": 1, "b": {"a": 2}, "\u0061": 3}"#) }
        // The same key in two different objects is fine.
        #expect((try? JSONParser.parse(#"[{"a": 1}, {"a": 2}]"#)) != nil)
    }

    @Test func rejectsTrailingGarbageTruncationAndDepth() {
        #expect(throws: JSONError.self) { try JSONParser.parse("{\"a\": 1} x") }
        #expect(throws: JSONError.self) { try JSONParser.parse("{\"a\": ") }
        #expect(throws: JSONError.tooDeep) { try JSONParser.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)) }
        #expect(throws: JSONError.notUTF8) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
        // NUL padding is not JSON whitespace (safetensors rejects it too).
        #expect(throws: JSONError.self) { try JSONParser.parse([0x7B, 0x7D, 0x00]) }
    }

    @Test func serializesLikePythonJsonDumps() throws {
        // Expected text is what `json.dumps(v, indent=2, sort_keys=True)` prints for this value.
        let v: JSONValue = .object(JSONObject([("b", 1e-05), ("a", .array([1, 2.5, "é\n"])), ("c", .object(JSONObject())), ("d", 10000.0)]))
        #expect(v.serialized(.python(indent: 2, sortKeys: true)) == """
        {
          "a": [
            1,
            2.5,
            "\\u00e9\\n"
          ],
          "b": 1e-05,
          "c": {},
          "d": 10000.0
        }
        """)
        #expect(v.serialized(.compact) == #"{"b":1e-05,"a":[1,2.5,"é\n"],"c":{},"d":10000.0}"#)
        #expect(v.serialized(.pythonInline(sortKeys: false)) == #"{"b": 1e-05, "a": [1, 2.5, "\u00e9\n"], "c": {}, "d": 10000.0}"#)
    }
}
