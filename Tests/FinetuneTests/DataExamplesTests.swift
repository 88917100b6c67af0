import Finetune
import Formats
import Foundation
import TensorCore
import Testing
import TestSupport
import Verify

/// JSONL records → tokens and loss masks, against the goldens of make_lora_goldens.py
/// (transformers tokenizers and apply_chat_template, the masking rule of TrainingData.swift).
@Suite struct DataExamplesTests {
    static func tokenizer(_ model: String) throws -> (Tokenizer, String?) {
        let dir = Fixtures.path(model)
        let config = try JSONParser.parse(try Fixtures.data("\(model)/tokenizer_config.json"))
        return (try Tokenizer.load(directory: dir), config["chat_template"]?.stringValue)
    }

    @Test func tokensAndMasksEqualTheReference() throws {
        let golden = try JSONParser.parse(try Fixtures.data("golden/lora/data/examples.json"))
        let cases = golden["cases"]?.arrayValue ?? []
        #expect(cases.count == 8)
        for c in cases {
            let model = c["model"]?.stringValue ?? ""
            let (tok, templateText) = try Self.tokenizer(model)
            var options = DataOptions()
            options.template = c["template"]?.stringValue.flatMap(ChatTemplate.named)
            options.trainOnPrompt = c["train_on_prompt"]?.boolValue ?? false
            options.maxLength = c["max_len"]?.intValue
            let encoder = ExampleEncoder(tokenizer: tok, templateText: templateText, options: options)
            let data = try TrainingDataReader.load(path: Fixtures.path("golden/lora/data/sample.jsonl"), encoder: encoder)
            let label = "\(model) template=\(c["template"]?.stringValue ?? "model") onPrompt=\(options.trainOnPrompt) max=\(options.maxLength ?? 0)"
            let expected = c["examples"]?.arrayValue ?? []
            #expect(data.examples.count == expected.count, "\(label)")
            #expect(data.skippedCount == c["skipped"]?.intValue, "\(label)")
            #expect(data.truncatedCount == c["truncated"]?.intValue, "\(label)")
            for (i, (got, want)) in zip(data.examples, expected).enumerated() {
                let tokens = (want["tokens"]?.arrayValue ?? []).compactMap(\.intValue)
                let mask = (want["mask"]?.arrayValue ?? []).compactMap(\.boolValue)
                #expect(got.tokens == tokens, "\(label) example \(i) tokens")
                #expect(got.lossMask == mask, "\(label) example \(i) mask")
            }
        }
    }

    @Test func badLinesNameTheLine() throws {
        let cases: [(String, String)] = [
            ("{\"text\": \"ok\"}\n{\"text\": 3}\n", "line 2: \"text\" is not a string"),
            ("{\"text\": \"ok\"}\n\nnot json\n", "line 3: not valid JSON"),
            ("[1, 2]\n", "line 1: not a JSON object"),
            ("{\"prompt\": \"x\"}\n", "line 1: expected {\"text\"}"),
            ("{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n", "line 1: messages[0] has role \"robot\""),
            ("{\"messages\": [{\"role\": \"user\"}]}\n", "line 1: messages[0] has no \"content\" string"),
            ("{\"messages\": []}\n", "line 1: \"messages\" is empty"),
            ("{\"instruction\": \"x\"}\n", "line 1: \"output\" is missing"),
        ]
        for (text, message) in cases {
            do {
                _ = try TrainingDataReader.records(text: text)
                Issue.record("accepted \(text)")
            } catch let error as DataError {
                #expect(error.description.hasPrefix(message), "\(error.description)")
                #expect(error.kind == .malformedInput)
            }
        }
        #expect(try TrainingDataReader.records(text: "{\"text\": \"a\"}\r\n\n  \n{\"text\": \"b\"}").map(\.line) == [1, 4])
    }

    @Test func templateErrorsCarryTheLine() throws {
        let (tok, templateText) = try Self.tokenizer("tiny-llama-spm")
        let encoder = ExampleEncoder(tokenizer: tok, templateText: templateText)
        let records = try TrainingDataReader.records(text: """
            {"text": "fine"}
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
            """)
        #expect(throws: DataError.badLine(line: 2, reason: ChatTemplateError.rolesMustAlternate("the Llama 2 template").description)) {
            try TrainingDataReader.tokenize(records, encoder: encoder)
        }
        // No template at all: chat records need --template (a usage error, not a bad line).
        let plain = ExampleEncoder(tokenizer: tok, templateText: nil)
        let chat = try TrainingDataReader.records(text: "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}")
        do {
            _ = try TrainingDataReader.tokenize(chat, encoder: plain)
            Issue.record("no error")
        } catch let error as DataError {
            #expect(error.kind == .usage)
            #expect(error.description.contains("--template"))
        }
    }

    @Test func invalidUTF8IsABadLine() throws {
        let dir = Fixtures.temporaryDirectory()
        let path = dir + "/bad.jsonl"
        try Data("{\"text\": \"ok\"}\n{\"text\": \"\u{FF}\"}\n".utf8.map { $0 } + [0xFF, 0x0A]).write(to: URL(fileURLWithPath: path))
        let (tok, _) = try Self.tokenizer("tiny-llama-bpe")
        do {
            _ = try TrainingDataReader.load(path: path, encoder: ExampleEncoder(tokenizer: tok, templateText: nil))
            Issue.record("no error")
        } catch let error as PathError {
            #expect(error.description == "\(path): line 3: not valid UTF-8")
        }
    }
}

/// A GGUF SentencePiece tokenizer follows sentencepiece and leaves control tokens in text alone;
/// the encoder splits the template's BOS/EOS out itself so they still become their ids.
@Suite struct DataGGUFTokenizerTests {
    @Test func templateSpecialsBecomeIDs() throws {
        let file = try GGUFFile(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        let tok = try Tokenizer(gguf: file.metadata)
        #expect(tok.encode("<s>", addSpecialTokens: false) != [1])  // the sentencepiece behaviour
        let template = file.metadata[GGUFKeys.Tokenizer.chatTemplate]?.stringValue
        let encoder = ExampleEncoder(tokenizer: tok, templateText: template)
        #expect(encoder.template?.kind == .llama2)
        let record = DataRecord.chat([ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "yo"),
                                      ChatMessage(role: .user, content: "again"), ChatMessage(role: .assistant, content: "ok")])
        let example = try #require(try encoder.encode(record)).example
        #expect(example.tokens.filter { $0 == 1 }.count == 2)
        #expect(example.tokens.filter { $0 == 2 }.count == 2)
        #expect(example.tokens.first == 1 && example.tokens.last == 2)
        // Each EOS closes a reply, so it is a target; the BOS of the second turn is not.
        for (i, t) in example.tokens.enumerated() where t == 2 { #expect(example.lossMask[i]) }
        for (i, t) in example.tokens.enumerated() where t == 1 { #expect(!example.lossMask[i]) }
    }
}
