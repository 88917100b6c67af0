import Foundation
import Formats
import TestSupport
import Testing
import Verify

/// A speed sanity check, not a timed test: run with `WCONV_TOKENIZER_BENCH=1 swift test -c release --filter
/// TokenizerSpeedCheck` to print encode / decode rates on a text of about 10k tokens (the corpus repeated) for
/// a byte-level and a SentencePiece tokenizer, and for the real SmolLM2 vocabulary when its GGUF is present.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["WCONV_TOKENIZER_BENCH"] != nil))
struct TokenizerSpeedCheck {
    static func measure(_ label: String, _ tokenizer: Tokenizer, _ text: String) {
        let clock = ContinuousClock()
        var ids: [Int] = []
        let encodeTime = clock.measure { ids = tokenizer.encode(text, addSpecialTokens: false) }
        var decoded = ""
        let decodeTime = clock.measure { decoded = tokenizer.decode(ids) }
        func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
        print("\(label): \(text.unicodeScalars.count) scalars -> \(ids.count) tokens; encode \(ms(encodeTime)) ms"
            + " (\(Int(Double(ids.count) / ms(encodeTime) * 1e3)) tokens/s), decode \(ms(decodeTime)) ms, \(decoded.count) characters")
    }

    static func text(minimumScalars: Int) throws -> String {
        let json = try JSONParser.parse(try Fixtures.data("golden/tokenize/corpus.json"))
        let lines = try #require(json["texts"]?.arrayValue).compactMap(\.stringValue)
        var text = ""
        while text.unicodeScalars.count < minimumScalars { text += lines.joined(separator: "\n") }
        return text
    }

    @Test func encodeAndDecodeRates() throws {
        for name in ["bpe-llama3", "tiny-llama-bpe", "spm-bytefallback", "tiny-llama-spm"] {
            let tokenizer = try Tokenizer(huggingFace: try TokenizeGolden(name).source())
            Self.measure(name, tokenizer, try Self.text(minimumScalars: 20_000))
        }
        if let path = TokenizeGolden.smolLM2GGUF {
            let metadata = try GGUFFile(path: path).metadata
            var built: Tokenizer?
            let buildTime = try ContinuousClock().measure { built = try Tokenizer(gguf: metadata) }
            print("smollm2-135m: tokenizer built from GGUF metadata in \(buildTime)")
            let tokenizer = try #require(built)
            Self.measure("smollm2-135m", tokenizer, try Self.text(minimumScalars: 40_000))
            // A long word: one pre-tokenized piece of 20k letters merges in O(n log n).
            Self.measure("smollm2-135m long word", tokenizer, String(repeating: "supercalifragilistic", count: 1000))
        }
    }
}
