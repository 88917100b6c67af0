import Foundation
import Formats
import TestSupport
import Testing
import Verify

/// One golden file of `testdata/golden/tokenize/` (made by `testdata/scripts/make_tokenize_goldens.py` with
/// sentencepiece 0.2.3 / tokenizers 0.23.3 through transformers 5.24; the settings are in each file).
struct TokenizeGolden {
    struct Row {
        var text: String
        var ids: [Int]
        /// With the special tokens the reference adds (absent from the GGUF-route goldens).
        var idsSpecial: [Int]?
        var decoded: String
    }

    let name: String
    let json: JSONValue
    let rows: [Row]

    init(_ name: String) throws {
        self.name = name
        json = try JSONParser.parse(try Fixtures.data("golden/tokenize/\(name).json"))
        rows = try (json["texts"]?.arrayValue ?? []).map { row in
            func ints(_ value: JSONValue?) throws -> [Int] { try #require(value?.arrayValue).map { try #require($0.intValue) } }
            return Row(text: try #require(row["text"]?.stringValue), ids: try ints(row["ids"]),
                       idsSpecial: try row["ids_special"].map { try ints($0) },
                       decoded: try #require(row["decoded"]?.stringValue))
        }
    }

    /// The case's HF files, with the SentencePiece model from where the golden says it lives.
    func source() throws -> HFTokenizerSource {
        var source = try HFTokenizerSource.load(directory: Fixtures.path(try #require(json["input"]?.stringValue)))
        if let model = json["tokenizer_model"]?.stringValue { source.sentencePieceModel = try Fixtures.data(model) }
        return source
    }

    /// The real SmolLM2-135M-Instruct GGUF when the benchmark preparation has fetched it: `WCONV_SMOLLM2_GGUF`,
    /// else `${WCONV_CACHE:-$HOME/.cache/wconv}/bench/SmolLM2-135M-Instruct.Q4_1.gguf`; nil when absent.
    static var smolLM2GGUF: String? {
        let env = ProcessInfo.processInfo.environment
        let cache = env["WCONV_CACHE"] ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/wconv").path
        let path = env["WCONV_SMOLLM2_GGUF"]
            ?? URL(fileURLWithPath: cache).appendingPathComponent("bench/SmolLM2-135M-Instruct.Q4_1.gguf").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// Checks `tokenizer` against every row; returns how many rows were identical (ids, ids with special
    /// tokens, decode), skipping the texts in `except`.
    @discardableResult
    func check(_ tokenizer: Tokenizer, except: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        var identical = 0
        for row in rows where !except.contains(row.text) {
            let ids = tokenizer.encode(row.text, addSpecialTokens: false)
            #expect(ids == row.ids, "\(name): ids of \(row.text.debugDescription)", sourceLocation: sourceLocation)
            var same = ids == row.ids
            if let special = row.idsSpecial {
                let withSpecial = tokenizer.encode(row.text, addSpecialTokens: true)
                #expect(withSpecial == special, "\(name): ids with special tokens of \(row.text.debugDescription)",
                        sourceLocation: sourceLocation)
                same = same && withSpecial == special
            }
            let decoded = tokenizer.decode(row.ids)
            #expect(decoded == row.decoded, "\(name): decode of the ids of \(row.text.debugDescription)",
                    sourceLocation: sourceLocation)
            if same && decoded == row.decoded { identical += 1 }
        }
        return identical
    }
}

/// Hugging Face directory cases.
let huggingFaceCases = ["spm-tiny-llama", "spm-bytefallback", "spm-extras", "tiny-llama-spm", "tiny-llama-bpe",
                        "bpe-smollm", "bpe-llama3", "bpe-gpt2", "bpe-qwen2", "bpe-smollm-strip"]
let byteLevelCases = ["tiny-llama-bpe", "bpe-smollm", "bpe-llama3", "bpe-gpt2", "bpe-qwen2"]

@Suite struct TokenizerGoldenTests {
    /// The whole corpus, identical to the library transformers would use on the files: ids, ids with special
    /// tokens (BOS / EOS / template), and the decode of the reference ids. bpe-smollm-strip checks added tokens'
    /// lstrip / rstrip / single_word.
    @Test(arguments: huggingFaceCases)
    func huggingFaceFilesMatchTheReference(_ name: String) throws {
        let golden = try TokenizeGolden(name)
        #expect(golden.rows.count >= 60)  // the corpus (plus lstrip / rstrip texts for bpe-smollm-strip)
        let tokenizer = try Tokenizer(huggingFace: try golden.source())
        #expect(golden.check(tokenizer) == golden.rows.count)
    }

    /// decode(encode(x)) == x wherever the reference library round-trips x itself.
    @Test(arguments: huggingFaceCases)
    func decodeInvertsEncode(_ name: String) throws {
        let golden = try TokenizeGolden(name)
        let tokenizer = try Tokenizer(huggingFace: try golden.source())
        var roundTrips = 0
        for row in golden.rows where row.decoded == row.text {
            #expect(tokenizer.decode(tokenizer.encode(row.text, addSpecialTokens: false)) == row.text,
                    "\(name): \(row.text.debugDescription)")
            roundTrips += 1
        }
        // Byte-level BPE and byte fallback lose nothing; the tiny SentencePiece vocabulary without byte pieces
        // maps what it lacks to <unk>.
        #expect(roundTrips > 0)
    }

    /// Byte-level BPE from the GGUF vocabulary alone (what llama.cpp's converter writes) gives the same ids.
    /// One known difference: the converter stores a non-special added token with `▁` in it (`<tool▁call>`)
    /// with a space instead, so the text `<tool▁call>` no longer matches it.
    @Test(arguments: byteLevelCases)
    func ggufVocabularyMatchesTheReference(_ name: String) throws {
        let golden = try TokenizeGolden(name)
        let vocabulary = try GGUFVocabulary(huggingFace: try golden.source())
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        let except: Set<String> = name == "bpe-qwen2" ? ["<tool>call()</tool> <tool▁call> <|extra_0|>"] : []
        #expect(golden.check(tokenizer, except: except) == golden.rows.count - except.count)
    }

    /// SentencePiece from the GGUF vocabulary: identical to sentencepiece run on the vocabulary as the GGUF
    /// stores it (no normalizer beyond the dummy prefix). One known difference: the converter types
    /// spm-bytefallback's user-defined pieces `<tool>` / `</tool>` NORMAL, so a GGUF cannot tell them apart
    /// and they are merged like text; the golden's sentencepiece model is rebuilt from the same types, so it
    /// agrees.
    @Test(arguments: ["spm-tiny-llama", "spm-bytefallback", "spm-extras"])
    func ggufSentencePieceMatchesTheReference(_ name: String) throws {
        let golden = try TokenizeGolden("gguf-\(name)")
        let vocabulary = try GGUFVocabulary(huggingFace: try TokenizeGolden(name).source())
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        #expect(golden.check(tokenizer) == golden.rows.count)
    }

    /// The real SmolLM2-135M-Instruct vocabulary (49152 tokens, 48900 merges), read from its GGUF file.
    @Test(.enabled(if: TokenizeGolden.smolLM2GGUF != nil, "needs SmolLM2-135M-Instruct.Q4_1.gguf (bench/prepare_smollm2.py)"))
    func smolLM2MatchesTheReference() throws {
        let golden = try TokenizeGolden("smollm2-135m")
        let file = try GGUFFile(path: try #require(TokenizeGolden.smolLM2GGUF))
        let tokenizer = try Tokenizer(gguf: file.metadata)
        #expect(tokenizer.count == 49152)
        #expect(golden.check(tokenizer) == golden.rows.count)
    }
}
