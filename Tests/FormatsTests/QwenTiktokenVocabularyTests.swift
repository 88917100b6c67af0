import Testing
@testable import Formats
import TensorCore

/// The pieces of the Qwen-7B vocabulary import; the whole of it is checked byte for byte against
/// llama.cpp's converter in PipelineTests' FamilyConvertTests (`qwen-7b`).
@Suite struct QwenTiktokenVocabularyTests {
    @Test func base64DecodesRFC4648VectorsAndRejectsOthers() {
        let cases: [(String, String)] = [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYg==", "foob"), ("Zm9vYmFy", "foobar")]
        for (encoded, decoded) in cases {
            #expect(QwenTiktokenVocabulary.base64Decode(Array(encoded.utf8)) == Array(decoded.utf8), "\(encoded)")
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            #expect(QwenTiktokenVocabulary.base64Decode(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func bpeStopsBelowTheTokensOwnRank() {
        let ranks: [[UInt8]: Int] = [[97]: 0, [98]: 1, [99]: 2, [97, 98]: 3, [97, 98, 99]: 4]
        #expect(QwenTiktokenVocabulary.bpe([97, 98, 99], ranks: ranks, maxRank: 4) == [[97, 98], [99]])
        #expect(QwenTiktokenVocabulary.bpe([97, 98], ranks: ranks, maxRank: 3) == [[97], [98]])
    }

    @Test func byteLevelCharactersAreGPT2s() {
        #expect(QwenTiktokenVocabulary.byteLevel(Array(" a\n".utf8)) == "Ġa\u{10A}")
        #expect(Set(QwenTiktokenVocabulary.byteCharacters).count == 256)
    }

    @Test func malformedLinesAreRefusedWithTheirNumber() throws {
        let text = Array("IQ== 0\nnot base64 1\n".utf8)
        #expect(throws: Failure.self) { try text.withUnsafeBytes { try QwenTiktokenVocabulary.parseRanks($0) } }
        #expect(QwenTiktokenVocabulary.specialTokens.count == 208)
    }
}
