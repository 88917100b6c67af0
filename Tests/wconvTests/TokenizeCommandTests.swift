import Foundation
import Testing
import TestSupport

/// `wconv tokenize`: ids equal to the reference tokenizers' (testdata/golden/*.tokens.json).
@Suite struct TokenizeCommandTests {
    static func golden(_ model: String) throws -> (text: String, tokens: [Int]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("golden/\(model).tokens.json")))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (try #require(json["text"] as? String), try #require(json["tokens"] as? [Int]))
    }

    @Test(arguments: ["tiny-llama-spm", "tiny-llama-bpe"])
    func idsMatchTheReferenceFromEitherFormat(model: String) throws {
        let (text, tokens) = try Self.golden(model)
        for path in [Fixtures.path(model), Fixtures.path("golden/\(model).f16.gguf")] {
            let plain = try CLI.run(["tokenize", path, text])
            #expect(plain.status == 0, "\(plain.stderr)")
            #expect(plain.stdout == tokens.map(String.init).joined(separator: " ") + "\n", "\(path)")
            let json = try CLI.run(["tokenize", path, text, "--json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(object["tokens"] as? [Int] == tokens)
            #expect(object["count"] as? Int == tokens.count)
        }
    }

    @Test func textFileNoSpecialAndDecode() throws {
        let dir = Fixtures.temporaryDirectory()
        try Data("the quick brown fox".utf8).write(to: URL(fileURLWithPath: dir + "/in.txt"))
        let model = Fixtures.path("tiny-llama-spm")
        let withBOS = try CLI.run(["tokenize", model, "--text", dir + "/in.txt"])
        #expect(withBOS.stdout == "1 25 27 67 42\n")
        let bare = try CLI.run(["tokenize", model, "--text", dir + "/in.txt", "--no-special"])
        #expect(bare.stdout == "25 27 67 42\n")
        // Decoding: ids as words, commas or JSON; special tokens kept unless skipped.
        #expect(try CLI.run(["tokenize", model, "--decode", "25 27 67 42"]).stdout == "the quick brown fox\n")
        #expect(try CLI.run(["tokenize", model, "--decode", "[1, 25, 27]", "--skip-special"]).stdout == "the quick\n")
        #expect(try CLI.run(["tokenize", model, "--decode", "25,27", "--json"]).stdout == "{\"text\": \"the quick\"}\n")
    }

    @Test func errors() throws {
        let model = Fixtures.path("tiny-llama-spm")
        #expect(try CLI.run(["tokenize", model]).status == 64)
        #expect(try CLI.run(["tokenize", model, "a", "--text", "f.txt"]).status == 64)
        let outside = try CLI.run(["tokenize", model, "--decode", "1 999"])
        #expect(outside.status == 64)
        #expect(outside.stderr.contains("token id 999 is outside the vocabulary (0..<128)"))
        #expect(try CLI.run(["tokenize", model, "--decode", "1 x"]).status == 64)
        // A model directory without tokenizer files.
        let dir = Fixtures.temporaryDirectory()
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama-spm/config.json"), toPath: dir + "/config.json")
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama-spm/model.safetensors"), toPath: dir + "/model.safetensors")
        let none = try CLI.run(["tokenize", dir, "hello"])
        #expect(none.status == 69)
        #expect(none.stderr.contains("no usable tokenizer"))
    }
}
