/// One message of a chat record.
public struct ChatMessage: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// Why a conversation cannot be rendered with a template.
public enum ChatTemplateError: Error, Hashable, CustomStringConvertible {
    /// The template requires alternating user/assistant turns (after an optional system message).
    case rolesMustAlternate(String)
    /// A system message somewhere the template has no place for.
    case misplacedSystemMessage(String)

    public var description: String {
        switch self {
        case .rolesMustAlternate(let t): "\(t) needs user and assistant messages to alternate, starting with user (after an optional system message)"
        case .misplacedSystemMessage(let t): "\(t) accepts a system message only as the first message"
        }
    }
}

/// The chat formats of the model families wconv fine-tunes, rendered natively so that the text
/// equals what transformers' `apply_chat_template` produces with each family's Jinja template
/// (checked against jinja2 renders in the goldens).
///
/// - ``Kind/chatml``: `<|im_start|>{role}\n{content}<|im_end|>\n` per message (SmolLM, Qwen);
///   optionally a default system message inserted when the conversation has none
///   (SmolLM2-Instruct, Qwen2.5).
/// - ``Kind/llama2``: Meta's Llama-2-chat template: `{bos}[INST] {user} [/INST] {assistant} {eos}`,
///   the system prompt folded into the first user turn as `<<SYS>>\n…\n<</SYS>>\n\n`, contents
///   stripped.
/// - ``Kind/llama3``: `<|start_header_id|>{role}<|end_header_id|>\n\n{content stripped}<|eot_id|>`,
///   BOS first; Llama 3.1+ templates also open with a system header carrying the knowledge and
///   current dates (``llama3DateString``).
/// - ``Kind/alpaca``: Stanford Alpaca's prompt (`### Instruction:` / `### Response:`), the
///   assistant text followed by EOS; a system message replaces the preamble.
/// - ``Kind/vicuna``: FastChat's Vicuna v1.1 (`{system} USER: {user} ASSISTANT: {assistant}{eos}`).
public struct ChatTemplate: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case chatml, llama2, llama3, alpaca, vicuna
    }

    public var kind: Kind
    /// ChatML: the system message a template inserts when the conversation has none.
    public var defaultSystemPrompt: String?
    /// Llama 3.1+: the `Today Date:` value of the system header (nil: Llama 3.0, no header).
    public var llama3DateString: String?

    public init(kind: Kind, defaultSystemPrompt: String? = nil, llama3DateString: String? = nil) {
        self.kind = kind
        self.defaultSystemPrompt = defaultSystemPrompt
        self.llama3DateString = llama3DateString
    }

    /// Alpaca's preamble when the record has no input field (and for chats without a system message).
    public static let alpacaPreamble = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    /// Alpaca's preamble when the record has an input field.
    public static let alpacaPreambleWithInput = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request."
    /// Vicuna v1.1's default system prompt.
    public static let vicunaSystemPrompt = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."

    // MARK: - Recognition

    /// The template a tokenizer's `chat_template` text is, judged by the markers each family's
    /// template contains; nil when it is none of them (then `--template` must name one).
    ///
    /// ChatML's default system prompt and Llama 3.1's `date_string` are read from the template
    /// text, so SmolLM2-Instruct and Qwen2.5 render with their own defaults.
    public static func recognize(_ text: String) -> ChatTemplate? {
        if text.contains("<|im_start|>") {
            return ChatTemplate(kind: .chatml, defaultSystemPrompt: defaultChatMLSystem(in: text))
        }
        if text.contains("<|start_header_id|>") && text.contains("<|end_header_id|>") {
            var date: String? = nil
            if text.contains("Cutting Knowledge Date") {
                date = literal(after: "date_string = ", in: text) ?? "26 Jul 2024"
            }
            return ChatTemplate(kind: .llama3, llama3DateString: date)
        }
        if text.contains("[INST]") && text.contains("<<SYS>>") { return ChatTemplate(kind: .llama2) }
        if text.contains("### Instruction") && text.contains("### Response") { return ChatTemplate(kind: .alpaca) }
        if text.contains("USER:") && text.contains("ASSISTANT:") { return ChatTemplate(kind: .vicuna) }
        return nil
    }

    /// A template by name (`--template`): the five kinds, plus `smollm2` (ChatML with SmolLM2's
    /// default system prompt), `qwen2.5` (Qwen's) and `llama3.1` (with the date header).
    public static func named(_ name: String) -> ChatTemplate? {
        switch name.lowercased() {
        case "chatml": ChatTemplate(kind: .chatml)
        case "smollm2", "smollm": ChatTemplate(kind: .chatml, defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        case "qwen2.5", "qwen2", "qwen": ChatTemplate(kind: .chatml, defaultSystemPrompt: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        case "llama2", "llama-2": ChatTemplate(kind: .llama2)
        case "llama3", "llama-3": ChatTemplate(kind: .llama3)
        case "llama3.1", "llama-3.1": ChatTemplate(kind: .llama3, llama3DateString: "26 Jul 2024")
        case "alpaca": ChatTemplate(kind: .alpaca)
        case "vicuna": ChatTemplate(kind: .vicuna)
        default: nil
        }
    }

    /// The names ``named(_:)`` accepts.
    public static let names = ["chatml", "smollm2", "qwen2.5", "llama2", "llama3", "llama3.1", "alpaca", "vicuna"]

    /// The text of the first string literal opening `<|im_start|>system` in a template, with
    /// Jinja's escapes undone (`\n`, `\'`, `\"`, `\\`).
    static func defaultChatMLSystem(in text: String) -> String? {
        let marker = "<|im_start|>system"
        var searchStart = text.startIndex
        while let r = text[searchStart...].firstRange(of: marker) {
            searchStart = r.upperBound
            var rest = text[r.upperBound...]
            // The literal continues with a newline: escaped (\n) or a real one.
            if rest.hasPrefix("\\n") { rest = rest.dropFirst(2) } else if rest.hasPrefix("\n") { rest = rest.dropFirst() } else { continue }
            guard let end = rest.firstRange(of: "<|im_end|>") else { continue }
            let body = rest[..<end.lowerBound]
            // A literal default holds no quote (which would end the string) and no Jinja tag.
            if body.isEmpty || body.contains("'") || body.contains("\"") || body.contains("{") { continue }
            return unescapeJinja(String(body))
        }
        return nil
    }

    /// The string literal right after `prefix` (`date_string = "26 Jul 2024"` → `26 Jul 2024`).
    static func literal(after prefix: String, in text: String) -> String? {
        guard let r = text.firstRange(of: prefix) else { return nil }
        let rest = text[r.upperBound...]
        guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
        let body = rest.dropFirst()
        guard let end = body.firstIndex(of: quote) else { return nil }
        return String(body[..<end])
    }

    static func unescapeJinja(_ s: String) -> String {
        var out = ""
        var escaping = false
        for c in s {
            if escaping {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: out.append(c)
                }
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                out.append(c)
            }
        }
        return out
    }

    // MARK: - Rendering

    /// One stretch of rendered text and whether it belongs to an assistant turn (content and
    /// the end-of-turn marks the template puts after it), which is what the loss is taken on.
    public struct Segment: Sendable, Hashable {
        public var text: String
        public var isResponse: Bool
        public init(_ text: String, isResponse: Bool) {
            self.text = text
            self.isResponse = isResponse
        }
    }

    /// The conversation as `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=…)` renders it with this template.
    /// - Parameters:
    ///   - bosToken, eosToken: the tokenizer's `bos_token` / `eos_token` strings.
    /// - Throws: ``ChatTemplateError`` where the family's template raises (Llama 2's alternation rule).
    public func render(_ messages: [ChatMessage], bosToken: String, eosToken: String,
                       addGenerationPrompt: Bool = false) throws -> String {
        try segments(messages, bosToken: bosToken, eosToken: eosToken, addGenerationPrompt: addGenerationPrompt)
            .map(\.text).joined()
    }

    /// ``render(_:bosToken:eosToken:addGenerationPrompt:)`` split into prompt and response stretches.
    public func segments(_ messages: [ChatMessage], bosToken: String, eosToken: String,
                         addGenerationPrompt: Bool = false) throws -> [Segment] {
        var out: [Segment] = []
        func prompt(_ s: String) { if !s.isEmpty { out.append(Segment(s, isResponse: false)) } }
        func response(_ s: String) { if !s.isEmpty { out.append(Segment(s, isResponse: true)) } }

        switch kind {
        case .chatml:
            for (i, m) in messages.enumerated() {
                if i == 0, m.role != .system, let system = defaultSystemPrompt {
                    prompt("<|im_start|>system\n" + system + "<|im_end|>\n")
                }
                prompt("<|im_start|>" + m.role.rawValue + "\n")
                if m.role == .assistant { response(m.content + "<|im_end|>\n") } else { prompt(m.content + "<|im_end|>\n") }
            }
            if addGenerationPrompt { prompt("<|im_start|>assistant\n") }

        case .llama2:
            var loop = messages[...]
            var system: String? = nil
            if let first = messages.first, first.role == .system {
                system = first.content
                loop = messages.dropFirst()
            }
            for (i, m) in loop.enumerated() {
                guard m.role != .system else { throw ChatTemplateError.misplacedSystemMessage("the Llama 2 template") }
                guard (m.role == .user) == (i % 2 == 0) else { throw ChatTemplateError.rolesMustAlternate("the Llama 2 template") }
                var content = m.content
                if i == 0, let system { content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + m.content }
                if m.role == .user {
                    prompt(bosToken + "[INST] " + pythonStrip(content) + " [/INST]")
                } else {
                    // A reply starts right after "[/INST]", so its leading space is part of the
                    // response (SentencePiece folds it into the first word's token).
                    response(" " + pythonStrip(content) + " " + eosToken)
                }
            }

        case .llama3:
            var loop = messages[...]
            if let date = llama3DateString {
                var system = ""
                if let first = messages.first, first.role == .system {
                    system = pythonStrip(first.content)
                    loop = messages.dropFirst()
                }
                prompt(bosToken + "<|start_header_id|>system<|end_header_id|>\n\n"
                       + "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n" + system + "<|eot_id|>")
            }
            for (i, m) in loop.enumerated() {
                let head = (i == 0 && llama3DateString == nil ? bosToken : "")
                    + "<|start_header_id|>" + m.role.rawValue + "<|end_header_id|>\n\n"
                prompt(head)
                let body = pythonStrip(m.content) + "<|eot_id|>"
                if m.role == .assistant { response(body) } else { prompt(body) }
            }
            if addGenerationPrompt { prompt("<|start_header_id|>assistant<|end_header_id|>\n\n") }

        case .alpaca:
            var loop = messages[...]
            if let first = messages.first, first.role == .system {
                prompt(first.content + "\n\n")
                loop = messages.dropFirst()
            } else {
                prompt(Self.alpacaPreamble + "\n\n")
            }
            var afterAnswer = false
            for m in loop {
                switch m.role {
                case .system: throw ChatTemplateError.misplacedSystemMessage("the Alpaca format")
                case .user:
                    prompt((afterAnswer ? "\n\n" : "") + "### Instruction:\n" + m.content + "\n\n### Response:\n")
                    afterAnswer = false
                case .assistant:
                    response(m.content + eosToken)
                    afterAnswer = true
                }
            }

        case .vicuna:
            var loop = messages[...]
            var system = Self.vicunaSystemPrompt
            if let first = messages.first, first.role == .system {
                system = first.content
                loop = messages.dropFirst()
            }
            prompt(system + " ")
            for m in loop {
                switch m.role {
                case .system: throw ChatTemplateError.misplacedSystemMessage("the Vicuna format")
                case .user: prompt("USER: " + m.content + " ")
                case .assistant:
                    // FastChat's generation prompt is "ASSISTANT:"; the reply brings its space.
                    prompt("ASSISTANT:")
                    response(" " + m.content + eosToken)
                }
            }
            if addGenerationPrompt { prompt("ASSISTANT:") }
        }
        return out
    }
}

/// Python's `str.strip()`: removes leading and trailing characters for which `str.isspace()` is
/// true (Unicode White_Space plus the separators U+001C–U+001F), as Jinja's `trim` and the
/// templates' `.strip()` do.
public func pythonStrip(_ s: String) -> String {
    func isSpace(_ u: Unicode.Scalar) -> Bool {
        u.properties.isWhitespace || (u.value >= 0x1C && u.value <= 0x1F)
    }
    let scalars = s.unicodeScalars
    guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !isSpace($0) }) ?? first
    return String(scalars[first ... last])
}
