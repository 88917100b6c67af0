import Foundation
import Formats
import TensorCore
import TestSupport
import Testing

/// A converter golden (`golden/tokenizer/<case>.json`): the `tokenizer.*` keys llama.cpp's
/// convert_hf_to_gguf.py wrote for `tokenizer/<case>/`, and the ids the original HF tokenizer gives.
struct ConverterGolden {
    let name: String
    let json: JSONValue

    static let cases = ["spm-tiny-llama", "spm-extras", "spm-bytefallback", "bpe-smollm", "bpe-llama3", "bpe-gpt2",
                        "bpe-qwen2"]

    init(_ name: String) throws {
        self.name = name
        json = try JSONParser.parse(try Fixtures.data("golden/tokenizer/\(name).json"))
    }

    /// The case's HF files, with the SentencePiece model from where the golden says it lives.
    func source() throws -> HFTokenizerSource {
        var source = try HFTokenizerSource.load(directory: Fixtures.path(json["input"]?.stringValue ?? ""))
        if let model = json["tokenizer_model"]?.stringValue {
            source.sentencePieceModel = try Fixtures.data(model)
        }
        return source
    }

    /// The converter's keys as neutral metadata values, in file order.
    func entries() throws -> [(key: String, value: TokenizerMetadataValue)] {
        try (json["gguf"]?.arrayValue ?? []).map { kv in
            let key = kv["key"]?.stringValue ?? ""
            let value = try #require(kv["value"])
            switch kv["type"]?.stringValue {
            case "STRING": return (key, .string(try #require(value.stringValue)))
            case "BOOL":
                guard case .bool(let flag) = value else { throw Failure(.internalError, "golden BOOL \(key)") }
                return (key, .bool(flag))
            case "UINT32": return (key, .uint32(UInt32(try #require(value.intValue))))
            case "ARRAY[STRING]": return (key, .stringArray(try #require(value.arrayValue).map { try #require($0.stringValue) }))
            case "ARRAY[INT32]": return (key, .int32Array(try #require(value.arrayValue).map { Int32(try #require($0.intValue)) }))
            case "ARRAY[FLOAT32]":
                return (key, .float32Array(try #require(value.arrayValue).map { Float(bitPattern: UInt32(try #require($0.intValue))) }))
            case let other: throw Failure(.internalError, "golden type \(other ?? "nil")")
            }
        }
    }
}

/// Compares two key/value lists, reporting the first difference readably.
func expectSameMetadata(_ actual: [(key: String, value: TokenizerMetadataValue)],
                        _ expected: [(key: String, value: TokenizerMetadataValue)],
                        sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.map(\.key) == expected.map(\.key), sourceLocation: sourceLocation)
    for (a, e) in zip(actual, expected) where a.key == e.key && a.value != e.value {
        Issue.record("\(a.key) differs: \(String(describing: a.value).prefix(300)) vs \(String(describing: e.value).prefix(300))",
                     sourceLocation: sourceLocation)
    }
}

@Suite struct TokenizerVocabularyTests {
    @Test(arguments: ConverterGolden.cases)
    func convertsLikeLlamaCppConverter(name: String) throws {
        let golden = try ConverterGolden(name)
        // No `pre` override: the BPE cases must be recognised from tokenizer.json alone.
        let vocabulary = try GGUFVocabulary(huggingFace: try golden.source())
        expectSameMetadata(vocabulary.metadata(), try golden.entries())
    }

    @Test(arguments: ConverterGolden.cases)
    func readsConverterMetadataBack(name: String) throws {
        let entries = try ConverterGolden(name).entries()
        let vocabulary = try GGUFVocabulary(metadata: entries)
        expectSameMetadata(vocabulary.metadata(), entries)
    }

    @Test func tinyLlamaMatchesTheConverterFixtureFields() throws {
        let vocabulary = try GGUFVocabulary(huggingFace: try ConverterGolden("spm-tiny-llama").source())
        #expect(vocabulary.model == "llama" && vocabulary.pre == "default")
        #expect(vocabulary.tokens.count == 128 && vocabulary.tokens.prefix(3) == ["<unk>", "<s>", "</s>"])
        #expect(vocabulary.tokenTypes.prefix(3) == [2, 3, 3])
        #expect(vocabulary.scores?[3].bitPattern == 0x8000_0000)  // -0.0 kept
        #expect(vocabulary.bosTokenID == 1 && vocabulary.eosTokenID == 2)
        #expect(vocabulary.addBOS == nil && vocabulary.chatTemplate == nil)
    }

    @Test func extraSentencePieceFilesFollowTheConverterRules() throws {
        let v = try GGUFVocabulary(huggingFace: try ConverterGolden("spm-extras").source())
        // Padded to config.json's vocab_size 132; 128 and 129 from added_tokens_decoder, 131 from added_tokens.json.
        #expect(v.tokens.suffix(4) == ["<|im_start|>", "<tool call>", "[PAD130]", "<extra>"])
        #expect(v.tokenTypes.suffix(4) == [3, 4, 5, 4])
        #expect(v.scores?.suffix(4) == [-1000, -1000, -10000, -1000])
        // add_prefix_space from tokenizer_config.json comes first.
        #expect(v.metadataKeys().first == "tokenizer.ggml.add_space_prefix" && v.addSpacePrefix == false)
        #expect(v.addBOS == true && v.addEOS == false && v.addSpecialTokens[.separator] == false)
    }

    @Test func bpeNamedTemplatesAndEndOfTurn() throws {
        let llama3 = try GGUFVocabulary(huggingFace: try ConverterGolden("bpe-llama3").source())
        #expect(llama3.pre == "llama-bpe")
        #expect(llama3.namedChatTemplates.map(\.name) == ["tool_use"])
        #expect(llama3.chatTemplate?.hasPrefix("{{ bos_token }}") == true)
        let qwen = try GGUFVocabulary(huggingFace: try ConverterGolden("bpe-qwen2").source())
        #expect(qwen.pre == "qwen2")
        // The template appends <|endoftext|>, tokenizer_config.json says <|im_end|>: the latter becomes EOT.
        #expect(qwen.eosTokenID.map { qwen.tokens[Int($0)] } == "<|endoftext|>")
        #expect(qwen.eotTokenID.map { qwen.tokens[Int($0)] } == "<|im_end|>")
        #expect(qwen.addEOS == true && qwen.addBOS == nil)
    }

    // MARK: Pre-tokenizer recognition

    static func byteLevel(prefix: Bool = false, regex: Bool = true) -> JSONValue {
        .object(JSONObject([("type", "ByteLevel"), ("add_prefix_space", .bool(prefix)), ("trim_offsets", true),
                            ("use_regex", .bool(regex))]))
    }

    static func tokenizer(pre: JSONValue, normalizer: JSONValue = .null) -> JSONValue {
        .object(JSONObject([("normalizer", normalizer), ("pre_tokenizer", pre)]))
    }

    static func sequence(_ steps: JSONValue...) -> JSONValue {
        .object(JSONObject([("type", "Sequence"), ("pretokenizers", .array(steps))]))
    }

    static func split(_ pattern: String) -> JSONValue {
        .object(JSONObject([("type", "Split"), ("pattern", .object(JSONObject([("Regex", .string(pattern))]))),
                            ("behavior", "Isolated"), ("invert", false)]))
    }

    @Test func recognisesPreTokenizerDefinitions() {
        typealias P = BPEPreTokenizer
        #expect(P.recognise(Self.tokenizer(pre: Self.byteLevel())) == "gpt-2")
        #expect(P.recognise(Self.tokenizer(pre: Self.sequence(Self.split(#"\p{N}"#), Self.byteLevel()))) == "smollm")
        #expect(P.recognise(Self.tokenizer(pre: Self.sequence(Self.split(P.llama3Pattern), Self.byteLevel(regex: false)))) == "llama-bpe")
        #expect(P.recognise(Self.tokenizer(pre: Self.sequence(Self.split(P.qwen2Pattern), Self.byteLevel(regex: false)),
                                           normalizer: .object(JSONObject([("type", "NFC")])))) == "qwen2")
        // Near misses: a prefix space, the GPT-2 regex on top of Llama 3's, a normalizer llama.cpp lacks,
        // a one-character change in the regex, no pre-tokenizer at all.
        #expect(P.recognise(Self.tokenizer(pre: Self.byteLevel(prefix: true))) == nil)
        #expect(P.recognise(Self.tokenizer(pre: Self.sequence(Self.split(P.llama3Pattern), Self.byteLevel(regex: true)))) == nil)
        #expect(P.recognise(Self.tokenizer(pre: Self.byteLevel(), normalizer: .object(JSONObject([("type", "NFC")])))) == nil)
        #expect(P.recognise(Self.tokenizer(pre: Self.sequence(Self.split(P.llama3Pattern + " "), Self.byteLevel(regex: false)))) == nil)
        #expect(P.recognise(Self.tokenizer(pre: .null)) == nil)
        // Members the tokenizers library fills in: ByteLevel defaults to add_prefix_space true.
        #expect(P.recognise(Self.tokenizer(pre: .object(JSONObject([("type", "ByteLevel")])))) == nil)
    }

    @Test func unknownPreTokenizerNamesTheWayOut() throws {
        var source = try ConverterGolden("bpe-gpt2").source()
        guard case .object(var tokenizer)? = source.tokenizerJSON else { Issue.record("no tokenizer.json"); return }
        tokenizer["pre_tokenizer"] = Self.byteLevel(prefix: true)
        source.tokenizerJSON = .object(tokenizer)
        let error = #expect(throws: TokenizerError.self) { try GGUFVocabulary(huggingFace: source) }
        #expect(error?.kind == .unsupported)
        #expect(error?.description.contains("--vocab-pre NAME") == true)
        #expect(error?.description.contains("ByteLevel(add_prefix_space: true, use_regex: true)") == true)
        // The override is taken as given.
        let forced = try GGUFVocabulary(huggingFace: source, options: HFVocabularyOptions(pre: "gpt-2"))
        #expect(forced.pre == "gpt-2")
    }

    // MARK: LLaMA quirks

    @Test func vocabularyOf49152NeverAddsBOS() throws {
        var source = try ConverterGolden("bpe-smollm").source()
        source.config = .object(JSONObject([("vocab_size", 49152), ("bos_token_id", 1)]))
        let v = try GGUFVocabulary(huggingFace: source)
        #expect(v.tokens.count == 49152 && v.tokens.last == "[PAD49151]")
        // Already decided by the ByteLevel post-processor: overwritten in place.
        #expect(v.addBOS == false)
        #expect(v.metadataKeys().firstIndex(of: "tokenizer.ggml.add_bos_token")
            ?? 99 < v.metadataKeys().firstIndex(of: "tokenizer.chat_template") ?? 0)

        // Without a post-processor the key is appended after everything else.
        guard case .object(var tokenizer)? = source.tokenizerJSON else { return }
        tokenizer.remove("post_processor")
        source.tokenizerJSON = .object(tokenizer)
        let appended = try GGUFVocabulary(huggingFace: source)
        #expect(appended.metadataKeys().last == "tokenizer.ggml.add_bos_token" && appended.addBOS == false)
    }

    @Test func codeLlamaVocabularyGetsEndOfTurn() throws {
        var source = try ConverterGolden("spm-tiny-llama").source()
        source.config = .object(JSONObject([("vocab_size", 32016), ("bos_token_id", 1), ("eos_token_id", 2)]))
        let v = try GGUFVocabulary(huggingFace: source)
        #expect(v.tokens.count == 32016)
        #expect(v.eotTokenID == 32010)
        #expect(v.metadataKeys().last == "tokenizer.ggml.eot_token_id")
    }

    // MARK: Malformed and unsupported inputs

    @Test func rejectsMissingAndMalformedFiles() throws {
        #expect(throws: TokenizerError.missingFile("tokenizer.model or tokenizer.json")) {
            try GGUFVocabulary(huggingFace: HFTokenizerSource(config: .object(JSONObject([("vocab_size", 10)]))))
        }
        let base = try ConverterGolden("bpe-gpt2").source()
        func with(_ edit: (inout JSONObject) -> Void) -> HFTokenizerSource {
            var source = base
            if case .object(var object)? = source.tokenizerJSON { edit(&object); source.tokenizerJSON = .object(object) }
            return source
        }
        #expect(throws: TokenizerError.malformedFile("tokenizer.json", "model.vocab must be an object of token → id")) {
            try GGUFVocabulary(huggingFace: with { t in
                t["model"] = .object(JSONObject([("type", "BPE"), ("vocab", [1, 2])]))
            })
        }
        #expect(throws: TokenizerError.malformedFile("tokenizer.json", "unknown tokenizer merges format")) {
            try GGUFVocabulary(huggingFace: with { t in
                guard case .object(var model)? = t["model"] else { return }
                model["merges"] = [[1, 2]]
                t["model"] = .object(model)
            })
        }
        #expect(throws: TokenizerError.malformedFile("tokenizer.json", "model.merges[1] is not a pair of strings")) {
            try GGUFVocabulary(huggingFace: with { t in
                guard case .object(var model)? = t["model"] else { return }
                model["merges"] = [["a", "b"], ["c"]]
                t["model"] = .object(model)
            })
        }
        #expect(throws: TokenizerError.self) {
            try GGUFVocabulary(huggingFace: with { t in
                t["model"] = .object(JSONObject([("type", "WordPiece"), ("vocab", .object(JSONObject()))]))
            })
        }
        // SentencePiece-style BPE (byte fallback, Sequence decoder) without tokenizer.model.
        let llamaHF = with { t in
            guard case .object(var model)? = t["model"] else { return }
            model["byte_fallback"] = true
            t["model"] = .object(model)
            t["decoder"] = .object(JSONObject([("type", "Sequence"), ("decoders", [])]))
        }
        let error = #expect(throws: TokenizerError.self) { try GGUFVocabulary(huggingFace: llamaHF) }
        #expect(error?.kind == .unsupported)
        // A config.json vocab_size below the largest id.
        var small = base
        small.config = .object(JSONObject([("vocab_size", 10)]))
        #expect(throws: TokenizerError.self) { try GGUFVocabulary(huggingFace: small) }
        // A bad tokenizer.model.
        var spm = try ConverterGolden("spm-tiny-llama").source()
        spm.sentencePieceModel = [0x0A, 0xFF]
        #expect(throws: TokenizerError.self) { try GGUFVocabulary(huggingFace: spm) }
        // add_prefix_space of the wrong type.
        spm = try ConverterGolden("spm-tiny-llama").source()
        spm.tokenizerConfig = .object(JSONObject([("add_prefix_space", "no")]))
        #expect(throws: TokenizerError.malformedFile("tokenizer_config.json", "add_prefix_space must be true or false")) {
            try GGUFVocabulary(huggingFace: spm)
        }
    }

    @Test func loadNamesTheFileWithBadJSON() throws {
        let dir = Fixtures.temporaryDirectory("wconv-tokenizer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("{\"model\": ".utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        let error = #expect(throws: PathError.self) { try HFTokenizerSource.load(directory: dir) }
        #expect(error?.path.hasSuffix("tokenizer.json") == true)
        #expect(error?.underlying is JSONError)
        #expect(error?.kind == .malformedInput)
    }

    @Test func rejectsInconsistentMetadata() {
        let tokens: TokenizerMetadataValue = .stringArray(["a", "b"])
        #expect(throws: TokenizerError.invalidMetadata("tokenizer.ggml.model is missing")) {
            try GGUFVocabulary(metadata: [("tokenizer.ggml.tokens", tokens)])
        }
        #expect(throws: TokenizerError.invalidMetadata("tokenizer.ggml.token_type has 1 entries for 2 tokens")) {
            try GGUFVocabulary(metadata: [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.tokens", tokens),
                                          ("tokenizer.ggml.token_type", .int32Array([1]))])
        }
        #expect(throws: TokenizerError.invalidMetadata("tokenizer.ggml.bos_token_id = 2 is past the 2 tokens")) {
            try GGUFVocabulary(metadata: [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.tokens", tokens),
                                          ("tokenizer.ggml.bos_token_id", .uint32(2))])
        }
        #expect(throws: TokenizerError.invalidMetadata("tokenizer.ggml.model must be a string")) {
            try GGUFVocabulary(metadata: [("tokenizer.ggml.model", .uint32(1)), ("tokenizer.ggml.tokens", tokens)])
        }
        // Other integer types are accepted for ids; keys outside tokenizer.* are ignored.
        let v = try? GGUFVocabulary(metadata: [("general.name", .string("x")), ("tokenizer.ggml.model", .string("gpt2")),
                                               ("tokenizer.ggml.tokens", tokens), ("tokenizer.ggml.eos_token_id", .integer(1))])
        #expect(v?.eosTokenID == 1 && v?.tokenTypes == [1, 1])
    }
}

@Suite struct TokenizerHostileInputTests {
    /// JSON of the wrong shape in every place SpecialVocab looks must give an error or be ignored, never trap.
    @Test func oddShapesInSpecialTokenFilesDoNotTrap() throws {
        let base = try ConverterGolden("bpe-llama3").source()
        let oddValues: [JSONValue] = [.null, 1, "x", [], [1, "a", nil], .object(JSONObject([("type", 3)])),
                                      .object(JSONObject([("type", "TemplateProcessing"), ("single", [1, 2]), ("pair", [[], "B"])])),
                                      .object(JSONObject([("type", "Sequence"), ("processors", [nil, "x", 4])]))]
        for value in oddValues {
            var source = base
            if case .object(var tokenizer)? = source.tokenizerJSON {
                tokenizer["post_processor"] = value
                tokenizer["normalizer"] = value
                source.tokenizerJSON = .object(tokenizer)
            }
            source.tokenizerConfig = .object(JSONObject([("bos_token", value), ("eos_token", value),
                                                         ("chat_template", value), ("add_bos_token", value)]))
            source.config = .object(JSONObject([("vocab_size", 304), ("bos_token_id", value), ("text_config", value)]))
            _ = try? GGUFVocabulary(huggingFace: source)
        }
        var huge = base
        huge.config = .object(JSONObject([("vocab_size", 304), ("pad_token_id", .int(1 << 40))]))
        #expect(throws: TokenizerError.self) { try GGUFVocabulary(huggingFace: huge) }
        huge.config = .object(JSONObject([("vocab_size", .int(1 << 40))]))
        #expect(throws: TokenizerError.malformedFile("config.json", "vocab_size 1099511627776 is larger than 16777216")) {
            try GGUFVocabulary(huggingFace: huge)
        }
        huge.config = .object(JSONObject([("vocab_size", 304), ("pad_token_id", -1)]))
        #expect(throws: TokenizerError.self) { try GGUFVocabulary(huggingFace: huge) }
    }
}
