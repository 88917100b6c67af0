import Formats
import TestSupport
import Testing
import Verify

/// `wconv tokenize` over every family fixture: the HF directory against transformers' `AutoTokenizer`, the
/// family GGUF against llama.cpp (sentencepiece where llama.cpp aborts), both from
/// `testdata/golden/families/tokenize.json` (testdata/scripts/make_family_tokenize_goldens.py).
@Suite struct FamilyTokenizerTests {
    static let families = ["baichuan2-13b", "baichuan2-7b", "falcon-40b", "falcon-7b", "gpt2", "mistral", "mpt", "opt",
                           "persimmon", "phi-1_5", "qwen-7b", "qwen2"]
    /// Families llama.cpp has no architecture for, so no GGUF fixture.
    static let withoutGGUF: Set = ["opt", "persimmon"]

    static func golden() throws -> JSONValue {
        try JSONParser.parse(try Fixtures.data("golden/families/tokenize.json"))
    }

    static func ids(_ value: JSONValue?) throws -> [Int] {
        try #require(value?.arrayValue).map { try #require($0.intValue) }
    }

    @Test(arguments: families)
    func huggingFaceDirectory(_ family: String) throws {
        let golden = try Self.golden()
        let text = try #require(golden["text"]?.stringValue)
        let tokenizer = try LlamaCheckpoint.tokenizer(of: try ModelInput.open(path: Fixtures.path("families/\(family)")))
        #expect(tokenizer.encode(text) == (try Self.ids(golden["hf"]?[family])))
    }

    @Test(arguments: families)
    func gguf(_ family: String) throws {
        let golden = try Self.golden()
        let text = try #require(golden["text"]?.stringValue)
        guard !Self.withoutGGUF.contains(family) else {
            #expect(golden["gguf"]?[family] == nil)
            return
        }
        let path = Fixtures.path("golden/families/\(family).f32.gguf")
        let tokenizer = try LlamaCheckpoint.tokenizer(of: try ModelInput.open(path: path))
        #expect(tokenizer.encode(text) == (try Self.ids(golden["gguf"]?[family])))
    }

    /// The pre-tokenizer names the converter writes for these families are the ones Verify runs.
    @Test func everyReconstructibleNameTokenizes() {
        for name in BPEPreTokenizer.reconstructibleNames {
            #expect(PreTokenizerFamily(preName: name) != nil, "\(name)")
        }
    }
}
