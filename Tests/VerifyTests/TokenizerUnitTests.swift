import Foundation
import Formats
import TestSupport
import Testing
import Verify

/// The pre-tokenizer patterns run through Swift `Regex` (Unicode-scalar semantics), the slow reference the
/// hand-written scanners are checked against.
enum PreTokenizerRegex {
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    static func pattern(_ family: PreTokenizerFamily) -> String {
        switch family {
        case .gpt2, .smollm, .falcon: gpt2
        case .llama3: BPEPreTokenizer.llama3Pattern
        case .qwen2: BPEPreTokenizer.qwen2Pattern
        }
    }

    /// Pieces as scalar ranges: each match, and any text between matches, in order.
    static func split(_ family: PreTokenizerFamily, _ scalars: [Unicode.Scalar]) throws -> [Range<Int>] {
        let regex = try Regex(pattern(family)).matchingSemantics(.unicodeScalar)
        func run(_ range: Range<Int>) -> [Range<Int>] {
            let text = String(String.UnicodeScalarView(scalars[range]))
            var pieces: [Range<Int>] = []
            var last = 0
            for match in text.matches(of: regex) {
                let lower = text.unicodeScalars.distance(from: text.startIndex, to: match.range.lowerBound)
                let upper = text.unicodeScalars.distance(from: text.startIndex, to: match.range.upperBound)
                if last < lower { pieces.append(range.lowerBound + last ..< range.lowerBound + lower) }
                if lower < upper { pieces.append(range.lowerBound + lower ..< range.lowerBound + upper) }
                last = upper
            }
            if last < range.count { pieces.append(range.lowerBound + last ..< range.upperBound) }
            return pieces
        }
        if family == .falcon { return try falcon(scalars, gpt2: run) }
        guard family == .smollm else { return run(0 ..< scalars.count) }
        // Digits(individual_digits) first.
        var pieces: [Range<Int>] = []
        var start = 0
        for (i, s) in scalars.enumerated() where s.properties.numericType != nil && isNumber(s) {
            if start < i { pieces += run(start ..< i) }
            pieces.append(i ..< i + 1)
            start = i + 1
        }
        if start < scalars.count { pieces += run(start ..< scalars.count) }
        return pieces
    }

    /// Falcon's pipeline as llama.cpp writes it: isolate `[\p{P}$+<=>^~|`]+`, GPT-2's regex on the rest, then
    /// isolate `\p{N}+` and `[0-9][0-9][0-9]` within each piece.
    static func falcon(_ scalars: [Unicode.Scalar], gpt2: (Range<Int>) -> [Range<Int>]) throws -> [Range<Int>] {
        func isolate(_ pattern: String, _ pieces: [Range<Int>]) throws -> [Range<Int>] {
            let regex = try Regex(pattern).matchingSemantics(.unicodeScalar)
            return pieces.flatMap { range -> [Range<Int>] in
                let text = String(String.UnicodeScalarView(scalars[range]))
                var out: [Range<Int>] = []
                var last = 0
                for match in text.matches(of: regex) {
                    let lower = text.unicodeScalars.distance(from: text.startIndex, to: match.range.lowerBound)
                    let upper = text.unicodeScalars.distance(from: text.startIndex, to: match.range.upperBound)
                    if last < lower { out.append(range.lowerBound + last ..< range.lowerBound + lower) }
                    if lower < upper { out.append(range.lowerBound + lower ..< range.lowerBound + upper) }
                    last = upper
                }
                if last < range.count { out.append(range.lowerBound + last ..< range.upperBound) }
                return out
            }
        }
        let punctuation = try isolate(#"[\p{P}$+<=>^~|`]+"#, [0 ..< scalars.count])
        let regexPieces = punctuation.flatMap { range -> [Range<Int>] in
            return isPunctuationRun(scalars[range]) ? [range] : gpt2(range)
        }
        return try isolate(#"[0-9][0-9][0-9]"#, try isolate(#"\p{N}+"#, regexPieces))
    }

    private static func isPunctuationRun(_ s: ArraySlice<Unicode.Scalar>) -> Bool {
        s.allSatisfy { c in
            "$+<=>^~|`".unicodeScalars.contains(c) || [.connectorPunctuation, .dashPunctuation, .openPunctuation,
                .closePunctuation, .initialPunctuation, .finalPunctuation, .otherPunctuation].contains(c.properties.generalCategory)
        }
    }

    private static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }
}

@Suite struct TokenizerUnitTests {
    static func corpus() throws -> [String] {
        let json = try JSONParser.parse(try Fixtures.data("golden/tokenize/corpus.json"))
        return try #require(json["texts"]?.arrayValue).compactMap(\.stringValue)
    }

    /// Random strings over an alphabet chosen to hit every branch of the patterns.
    static func randomTexts(count: Int) -> [String] {
        let alphabet: [Unicode.Scalar] = [
            "a", "B", "z", "'", "s", "t", "r", "e", "v", "m", "l", "d", "S", "T", "R", "E", "L", "D", "\u{17F}",
            " ", " ", " ", "\t", "\n", "\r", "\u{A0}", "\u{3000}", "\u{85}", "0", "7", "\u{663}", "\u{BD}", "\u{2167}",
            ".", ",", "!", "-", "_", "(", "$", "+", "`", "1", "2", "\u{1F999}", "\u{4E2D}", "\u{E9}", "\u{301}", "\u{5D0}", "\u{200B}",
        ]
        var rng = SplitMix64(seed: 0x5EED)
        return (0 ..< count).map { _ in
            let n = Int(rng.next() % 24)
            return String(String.UnicodeScalarView((0 ..< n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }))
        }
    }

    @Test(arguments: PreTokenizerFamily.allCases)
    func scannerMatchesTheRegex(_ family: PreTokenizerFamily) throws {
        for text in try Self.corpus() + Self.randomTexts(count: 400) {
            let scalars = Array(text.unicodeScalars)
            let expected = try PreTokenizerRegex.split(family, scalars)
            #expect(family.split(scalars, 0 ..< scalars.count) == expected, "\(family) \(text.debugDescription)")
        }
    }

    @Test func preTokenizerNames() {
        #expect(PreTokenizerFamily(preName: "llama-bpe") == .llama3)
        #expect(PreTokenizerFamily(preName: "smollm") == .smollm)
        #expect(PreTokenizerFamily(preName: "gpt-2") == .gpt2)
        #expect(PreTokenizerFamily(preName: "qwen2") == .qwen2)
        #expect(PreTokenizerFamily(preName: "phi-2") == .gpt2)
        #expect(PreTokenizerFamily(preName: "mpt") == .gpt2)
        #expect(PreTokenizerFamily(preName: "falcon") == .falcon)
        #expect(PreTokenizerFamily(preName: "default") == nil)
    }

    /// Checked split points: contractions (case-insensitive only for Llama 3), digit groups, and the
    /// whitespace run whose last space joins the next word.
    @Test func knownSplits() {
        func pieces(_ family: PreTokenizerFamily, _ text: String) -> [String] {
            let s = Array(text.unicodeScalars)
            return family.split(s, 0 ..< s.count).map { String(String.UnicodeScalarView(s[$0])) }
        }
        #expect(pieces(.gpt2, "I'M here  now") == ["I", "'", "M", " here", " ", " now"])
        #expect(pieces(.llama3, "I'M here  now") == ["I", "'M", " here", " ", " now"])
        #expect(pieces(.llama3, "12345") == ["123", "45"])
        #expect(pieces(.qwen2, "123") == ["1", "2", "3"])
        #expect(pieces(.smollm, "a 12") == ["a", " ", "1", "2"])
        #expect(pieces(.llama3, "x \n\n y") == ["x", " \n\n", " y"])
        // tokenizers' Falcon pipeline (Punctuation, ByteLevel, Digits, Split [0-9]{3}) pre_tokenize_str.
        #expect(pieces(.falcon, "Price: $12345.5 don't!? x\u{663}")
            == ["Price", ":", " ", "$", "123", "45", ".", "5", " don", "'", "t", "!?", " x", "\u{663}"])
    }

    // MARK: Errors and edge cases

    static func tinyVocabulary(model: String, pre: String? = nil) -> GGUFVocabulary {
        GGUFVocabulary(model: model, pre: pre, tokens: ["<unk>", "a", "b", "ab"], scores: [0, -1, -2, -0.5],
                       tokenTypes: [2, 1, 1, 1], merges: ["a b"])
    }

    @Test func unsupportedModelsThrow() {
        #expect(throws: TokenizerError.unsupported("tokenizer model \"bert\" (supported: gpt2, llama)")) {
            try Tokenizer(vocabulary: Self.tinyVocabulary(model: "bert"))
        }
        #expect(throws: TokenizerError.self) { try Tokenizer(vocabulary: Self.tinyVocabulary(model: "gpt2", pre: "deepseek-llm")) }
        var noScores = Self.tinyVocabulary(model: "llama")
        noScores.scores = nil
        #expect(throws: TokenizerError.invalidMetadata("SentencePiece vocabulary without scores")) {
            try Tokenizer(vocabulary: noScores)
        }
        var badTypes = Self.tinyVocabulary(model: "llama")
        badTypes.tokenTypes = [2, 1]
        #expect(throws: TokenizerError.self) { try Tokenizer(vocabulary: badTypes) }
        var noUnknown = Self.tinyVocabulary(model: "llama")
        noUnknown.tokenTypes = [1, 1, 1, 1]
        #expect(throws: TokenizerError.invalidMetadata("SentencePiece vocabulary has no unknown token")) {
            try Tokenizer(vocabulary: noUnknown)
        }
    }

    @Test func tinySentencePieceVocabulary() throws {
        var vocabulary = Self.tinyVocabulary(model: "llama")
        vocabulary.addSpacePrefix = false
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        #expect(tokenizer.encode("ab", addSpecialTokens: false) == [3])
        #expect(tokenizer.encode("abc", addSpecialTokens: false) == [3, 0])  // c is unknown
        #expect(tokenizer.encode("", addSpecialTokens: true) == [])  // no BOS id in this vocabulary
        #expect(tokenizer.decode([3, 99, -1, 1]) == "aba")  // ids outside the vocabulary are skipped
    }

    @Test func decodeSkipsSpecialTokensOnRequest() throws {
        let golden = try TokenizeGolden("bpe-smollm")
        let tokenizer = try Tokenizer(huggingFace: try golden.source())
        let ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>", addSpecialTokens: false)
        #expect(ids.first == 1)
        #expect(tokenizer.decode(ids) == "<|im_start|>user\nhi<|im_end|>")
        #expect(tokenizer.decode(ids, skipSpecialTokens: true) == "user\nhi")
    }

    @Test func addedTokenStripping() throws {
        var vocabulary = Self.tinyVocabulary(model: "gpt2", pre: "gpt-2")
        vocabulary.tokens += ["<x>", "Ġ"]
        vocabulary.tokenTypes += [3, 1]
        vocabulary.scores = nil
        let tokenizer = try Tokenizer(vocabulary: vocabulary)
        // Without lstrip / rstrip (a GGUF records neither) the spaces stay text.
        #expect(tokenizer.encode("a <x> b", addSpecialTokens: false) == [1, 5, 4, 5, 2])
    }

    @Test func damagedPrecompiledCharsmapIsRejected() throws {
        var model = try SentencePieceModel(parsing: try Fixtures.data("vectors/tiny-llama/tokenizer.model"))
        var spec = try #require(model.normalizerSpec)
        spec.precompiledCharsmap = [0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]
        model.normalizerSpec = spec
        var source = HFTokenizerSource()
        source.sentencePieceModel = model.serialized()
        #expect(throws: TokenizerError.self) { try Tokenizer(huggingFace: source) }
    }
}
