import Testing
import Formats
import TensorCore
import TestSupport

/// The model card reader against PyYAML (`Metadata.load_model_card`), from front_matter.json.
@Suite struct ModelMetadataCardTests {
    /// Golden cases wconv deliberately does not read: valid YAML using anchors and aliases.
    static let unsupported: Set<String> = ["anchor-alias"]

    /// PyYAML's value as written by the golden script (`{"str": …}`, `{"int": …}`, …).
    static func value(_ typed: JSONValue) throws -> ModelCardValue {
        let object = try #require(typed.objectValue)
        let (kind, v) = try #require(object.members.first)
        switch kind {
        case "null": return .null
        case "bool": return .bool(try #require(v.boolValue as Bool?))
        case "int": return .int(try #require(v.intValue))
        case "float":
            let text = try #require(v.stringValue)
            return .float(try #require(Double(text)))
        case "str": return .string(try #require(v.stringValue))
        case "timestamp": return .timestamp(try #require(v.stringValue))
        case "seq": return .sequence(try #require(v.arrayValue).map(value))
        case "map":
            return .mapping(try #require(v.arrayValue).map { pair in
                let kv = try #require(pair.arrayValue)
                return ModelCardEntry(key: try value(kv[0]), value: try value(kv[1]))
            })
        default: throw Failure(.badValue, "unknown golden kind \(kind)")
        }
    }

    /// Equality that treats NaN as equal to NaN and compares only the kind of timestamps (PyYAML
    /// prints a `datetime`, wconv keeps the source text).
    static func same(_ a: ModelCardValue, _ b: ModelCardValue) -> Bool {
        switch (a, b) {
        case (.float(let x), .float(let y)): return x == y || (x.isNaN && y.isNaN)
        case (.timestamp, .timestamp): return true
        case (.sequence(let x), .sequence(let y)): return x.count == y.count && zip(x, y).allSatisfy(same)
        case (.mapping(let x), .mapping(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0.key, $1.key) && same($0.value, $1.value) }
        default: return a == b
        }
    }

    static var cases: [String] {
        ((try? MetadataGolden.load("front_matter.json").arrayValue) ?? []).compactMap { $0["id"]?.stringValue }
    }

    @Test(arguments: cases)
    func readsLikePyYAML(_ id: String) throws {
        let all = try #require(try MetadataGolden.load("front_matter.json").arrayValue)
        let golden = try #require(all.first { $0["id"]?.stringValue == id })
        let readme = Array(try #require(golden["readme"]?.stringValue).utf8)
        if Self.unsupported.contains(id) {
            #expect {
                try ModelCard.parse(readme: readme, keys: nil)
            } throws: { error in
                guard case .unsupported? = error as? ModelCardError else { return false }
                return true
            }
            return
        }
        guard let typed = golden["card"] else {
            #expect(throws: ModelCardError.self, "PyYAML: \(golden["error"]?.stringValue ?? "")") {
                try ModelCard.parse(readme: readme, keys: nil)
            }
            return
        }
        let expected = try Self.value(typed)
        let card = try ModelCard.parse(readme: readme, keys: nil)
        #expect(Self.same(.mapping(card.entries), expected), "\(card.entries)")

        // Reading only the keys gguf-py looks at gives the same values for those keys.
        let filtered = try ModelCard.parse(readme: readme)
        guard case .mapping(let entries) = expected else { return }
        let wanted = entries.filter { if case .string(let k) = $0.key { ModelCard.metadataKeys.contains(k) } else { false } }
        #expect(Self.same(.mapping(filtered.entries), .mapping(wanted)))
    }

    @Test func skipsKeysItDoesNotNeed() throws {
        // An anchor in a widget does not stop the keys that matter from being read.
        let readme = """
        ---
        widget:
          - text: &greeting "hello"
          - text: *greeting
        model-index:
        - name: x
          results: [{task: {type: t}}]
        license: mit
        tags:
        - a
        ---
        """
        let card = try ModelCard.parse(readme: Array(readme.utf8))
        #expect(card.entries == [ModelCardEntry(key: .string("license"), value: .string("mit")),
                                 ModelCardEntry(key: .string("tags"), value: .sequence([.string("a")]))])
        #expect(card["license"] == .string("mit"))
        #expect(card["widget"] == nil)
        #expect(throws: ModelCardError.self) { try ModelCard.parse(readme: Array(readme.utf8), keys: nil) }
    }

    @Test func rejectsHostileInput() {
        #expect(throws: ModelCardError.invalidUTF8) { try ModelCard.parse(readme: [0x2D, 0x2D, 0x2D, 0x0A, 0xC3, 0x28]) }
        let deepBlock = "---\ntags:\n" + (0..<200).map { String(repeating: "  ", count: $0) + "-\n" }.joined() + "---\n"
        #expect(throws: ModelCardError.self) { try ModelCard.parse(readme: Array(deepBlock.utf8)) }
        let deepFlow = "---\ntags: " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "\n---\n"
        #expect(throws: ModelCardError.self) { try ModelCard.parse(readme: Array(deepFlow.utf8)) }
        let unterminated = "---\nlicense: 'abc\n---\n"
        #expect(throws: ModelCardError.self) { try ModelCard.parse(readme: Array(unterminated.utf8)) }
        #expect(throws: ModelCardError.self) { try ModelCard.parse(readme: Array("---\ntags: [a, \"\\q\"]\n---\n".utf8)) }
        #expect(throws: ModelCardError.self) { try ModelCard.parse(readme: Array("---\nlicense: 99999999999999999999\n---\n".utf8)) }
    }

    /// Differential test on 800 seeded random edits of the cards above, each read by PyYAML.
    /// Where both read a card the values must agree exactly. wconv may refuse valid YAML it does
    /// not implement (anchors, tags, `?` keys) and may accept a few flow-context oddities PyYAML
    /// rejects; both stay rare.
    @Test func agreesWithPyYAMLOnMutatedCards() throws {
        let cases = try #require(try MetadataGolden.load("front_matter_mutations.json").arrayValue)
        #expect(cases.count == 800)
        var agreed = 0, refusedUnsupported = 0, acceptedInvalid = 0
        for c in cases {
            let text = try #require(c["readme"]?.stringValue)
            let result = Result { try ModelCard.parse(readme: Array(text.utf8), keys: nil) }
            switch (result, c["card"]) {
            case (.success(let card), let typed?):
                let expected = try Self.value(typed)
                #expect(Self.same(.mapping(card.entries), expected), "\(text)")
                agreed += 1
            case (.failure(let error), _?):
                guard case .unsupported? = error as? ModelCardError else {
                    Issue.record("PyYAML reads this, wconv fails with \(error):\n\(text)")
                    continue
                }
                refusedUnsupported += 1
            case (.success, nil):
                acceptedInvalid += 1
            case (.failure, nil):
                agreed += 1
            }
        }
        #expect(agreed >= 780)
        #expect(refusedUnsupported <= 10)
        #expect(acceptedInvalid <= 5)
    }

    /// Mutated model cards either parse or throw; none may trap.
    @Test func survivesMutatedCards() throws {
        let all = try #require(try MetadataGolden.load("front_matter.json").arrayValue)
        let seeds = all.compactMap { $0["readme"]?.stringValue }.map { Array($0.utf8) }.filter { $0.count > 8 }
        var rng = SplitMix64(seed: 0x5EED)
        let alphabet = Array("-:#'\"[]{},|>&*!? \n\\ab0.".utf8)
        var parsed = 0
        for _ in 0..<3000 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                default: if bytes.count > 8 { bytes.remove(at: at) }
                }
            }
            if (try? ModelCard.parse(readme: bytes, keys: nil)) != nil { parsed += 1 }
            _ = try? ModelCard.parse(readme: bytes)
        }
        #expect(parsed > 0)
    }

    @Test func truthinessFollowsPython() {
        #expect(!ModelCardValue.null.isTruthy)
        #expect(!ModelCardValue.int(0).isTruthy && ModelCardValue.int(-1).isTruthy)
        #expect(!ModelCardValue.float(0).isTruthy && ModelCardValue.float(.nan).isTruthy)
        #expect(!ModelCardValue.string("").isTruthy && !ModelCardValue.sequence([]).isTruthy)
        #expect(ModelCardValue.timestamp("2024-01-01").isTruthy)
    }
}
