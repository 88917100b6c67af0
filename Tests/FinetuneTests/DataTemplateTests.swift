import Finetune
import Formats
import Foundation
import Testing
import TestSupport

/// Chat templates against transformers' `apply_chat_template` (jinja2) renders of the families'
/// own templates (`testdata/golden/lora/data/templates.json`, from make_lora_goldens.py).
@Suite struct DataTemplateTests {
    struct Golden {
        var templates: [String: (text: String, bos: String?, eos: String, wconvName: String)] = [:]
        var conversations: [[ChatMessage]] = []
        var renders: [(template: String, conversation: Int, generation: Bool, bos: String?, eos: String, text: String?)] = []
    }

    static func golden() throws -> Golden {
        let json = try JSONParser.parse(try Fixtures.data("golden/lora/data/templates.json"))
        var g = Golden()
        for (name, t) in json["templates"]?.objectValue ?? JSONObject() {
            g.templates[name] = (t["text"]?.stringValue ?? "", t["bos_token"]?.stringValue, t["eos_token"]?.stringValue ?? "",
                                 t["wconv_template"]?.stringValue ?? "")
        }
        for conv in json["conversations"]?.arrayValue ?? [] {
            g.conversations.append((conv.arrayValue ?? []).map {
                ChatMessage(role: ChatMessage.Role(rawValue: $0["role"]?.stringValue ?? "") ?? .user, content: $0["content"]?.stringValue ?? "")
            })
        }
        for r in json["renders"]?.arrayValue ?? [] {
            g.renders.append((r["template"]?.stringValue ?? "", r["conversation"]?.intValue ?? 0,
                              r["add_generation_prompt"]?.boolValue ?? false, r["bos_token"]?.stringValue,
                              r["eos_token"]?.stringValue ?? "", r["text"]?.stringValue))
        }
        return g
    }

    @Test func rendersEqualJinja() throws {
        let g = try Self.golden()
        #expect(g.renders.count == 90)
        var checked = 0
        for r in g.renders {
            guard let t = g.templates[r.template], let template = ChatTemplate.named(t.wconvName) else {
                Issue.record("no wconv template for \(r.template)")
                continue
            }
            let rendered = try? template.render(g.conversations[r.conversation], bosToken: r.bos ?? "", eosToken: r.eos,
                                                addGenerationPrompt: r.generation)
            #expect(rendered == r.text, "\(r.template) conversation \(r.conversation) generation \(r.generation)")
            checked += 1
        }
        #expect(checked == g.renders.count)
    }

    @Test func recognisesTheFamilyTemplates() throws {
        let g = try Self.golden()
        for (name, t) in g.templates {
            let recognised = ChatTemplate.recognize(t.text)
            #expect(recognised == ChatTemplate.named(t.wconvName), "\(name)")
        }
        // SmolLM2's default system prompt comes from the template text (real newlines inside the literal).
        #expect(ChatTemplate.recognize(g.templates["smollm2"]?.text ?? "")?.defaultSystemPrompt
            == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        // Qwen2.5 writes it with an escaped \n.
        #expect(ChatTemplate.recognize(g.templates["qwen2.5"]?.text ?? "")?.defaultSystemPrompt
            == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        #expect(ChatTemplate.recognize(g.templates["chatml"]?.text ?? "")?.defaultSystemPrompt == nil)
        #expect(ChatTemplate.recognize("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}") == nil)
    }

    @Test func segmentsMarkOnlyReplies() throws {
        let t = ChatTemplate(kind: .chatml)
        let s = try t.segments([ChatMessage(role: .user, content: "q"), ChatMessage(role: .assistant, content: "a")],
                               bosToken: "", eosToken: "")
        #expect(s.filter(\.isResponse).map(\.text) == ["a<|im_end|>\n"])
        #expect(s.filter { !$0.isResponse }.map(\.text).joined() == "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func llama2RejectsNonAlternatingRoles() {
        let t = ChatTemplate(kind: .llama2)
        #expect(throws: ChatTemplateError.self) {
            try t.render([ChatMessage(role: .user, content: "a"), ChatMessage(role: .user, content: "b")], bosToken: "<s>", eosToken: "</s>")
        }
        #expect(throws: ChatTemplateError.self) {
            try t.render([ChatMessage(role: .user, content: "a"), ChatMessage(role: .system, content: "b")], bosToken: "<s>", eosToken: "</s>")
        }
    }

    @Test func pythonStripMatchesStrSemantics() {
        #expect(pythonStrip("  a b \t\n") == "a b")
        #expect(pythonStrip("\u{1C}x\u{1F}") == "x")
        #expect(pythonStrip("\u{3000}x\u{85}") == "x")
        #expect(pythonStrip("\u{200B}x") == "\u{200B}x")  // zero-width space is not whitespace in Python
        #expect(pythonStrip(" \n ") == "")
    }
}
