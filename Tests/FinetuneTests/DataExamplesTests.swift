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
