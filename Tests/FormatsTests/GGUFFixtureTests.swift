import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

/// Real files checked against what gguf-py's GGUFReader found in them
/// (`testdata/golden/gguf/*.json`, written by `testdata/scripts/dump_gguf.py`).
@Suite("GGUF files match gguf-py's reader")
struct GGUFFixtureTests {
    @Test(arguments: [
        ("vectors/fixtures/tiny-f16.gguf", "tiny-f16"),
        ("vectors/fixtures/tiny-q8_0.gguf", "tiny-q8_0"),
        ("golden/gguf/pywriter-all-types.gguf", "pywriter-all-types"),
        ("golden/gguf/pywriter-align64.gguf", "pywriter-align64"),
    ])
    func matchesGGUFPyDump(file: String, golden: String) throws {
        let parsed = try GGUFFile(path: Fixtures.path(file))
        try GGUFTestHelpers.expect(parsed, matches: try GGUFTestHelpers.golden(golden))
    }

    /// The keys llama.cpp's converter writes for a LLaMA (REFERENCE §3.1), read through the accessors.
    @Test func readsLlamaMetadata() throws {
        let file = try GGUFFile(path: Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"))
        let m = file.metadata
        #expect(m[GGUFKeys.General.architecture]?.stringValue == "llama")
        #expect(m[GGUFKeys.Llama.blockCount]?.intValue == 2)
        #expect(m[GGUFKeys.Llama.embeddingLength]?.intValue == 128)
        #expect(m[GGUFKeys.Llama.headCount]?.intValue == 4)
        #expect(m[GGUFKeys.Llama.headCountKV]?.intValue == 2)
        #expect(m[GGUFKeys.Llama.ropeFreqBase]?.floatValue == 10000)
        #expect(m[GGUFKeys.Llama.layerNormRMSEpsilon]?.floatValue == Float(1e-5))
        #expect(m[GGUFKeys.General.fileType]?.intValue == 7)
        #expect(m[GGUFKeys.Tokenizer.model]?.stringValue == "llama")
        #expect(m[GGUFKeys.Tokenizer.tokens]?.stringArray?.count == 128)
        #expect(m[GGUFKeys.Tokenizer.scores]?.floatArray?.count == 128)
        #expect(m[GGUFKeys.Tokenizer.tokenType]?.intArray?.prefix(3) == [2, 3, 3])
        #expect(m[GGUFKeys.Tokenizer.bosTokenID]?.intValue == 1)
        let q = try #require(file.tensor(named: "blk.0.attn_q.weight"))
        #expect(q.type == .q8_0)
        #expect(q.dimensions == [128, 128])
        #expect(q.byteCount == 128 * 128 / 32 * 34)
        #expect(file.tensor(named: "nope") == nil)
    }
}
