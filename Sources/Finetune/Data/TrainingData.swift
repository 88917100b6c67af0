public import TensorCore
public import Verify
import Formats

/// One record of a training file.
public enum DataRecord: Sendable, Hashable {
    /// `{"text": …}`: plain language modelling on the text.
    case text(String)
    /// `{"instruction": …, "input": …, "output": …}` (Stanford Alpaca; `input` may be absent or empty).
    case alpaca(instruction: String, input: String, output: String)
    /// `{"messages": [{"role": …, "content": …}, …]}`.
    case chat([ChatMessage])
}

/// Why a training file cannot be used.
public enum DataError: ClassifiedError, Hashable {
    /// A line that is not a usable record; `line` is 1-based.
    case badLine(line: Int, reason: String)
    /// The file holds no usable record.
    case empty(reason: String)
    /// Chat records, but the model has no chat template (or one wconv does not render) and no
    /// `--template` was given.
    case needsTemplate(reason: String)

    public var kind: ErrorKind {
        switch self {
        case .badLine, .empty: .malformedInput
        case .needsTemplate: .usage
        }
    }

    public var description: String {
        switch self {
        case .badLine(let line, let reason): "line \(line): \(reason)"
        case .empty(let reason): reason
        case .needsTemplate(let reason): reason
        }
    }
}

/// How records become token sequences.
public struct DataOptions: Sendable, Hashable {
    /// Overrides the template recognised from the tokenizer (`--template`).
    public var template: ChatTemplate?
    /// Take the loss on every token, not only on the responses (`--train-on-prompt`).
    public var trainOnPrompt = false
    /// Keep at most this many tokens of each example (`--max-len`); nil keeps all.
    public var maxLength: Int?

    public init(template: ChatTemplate? = nil, trainOnPrompt: Bool = false, maxLength: Int? = nil) {
        self.template = template
        self.trainOnPrompt = trainOnPrompt
        self.maxLength = maxLength
    }
}

/// A training file tokenized.
public struct TrainingData: Sendable {
    public var examples: [TrainingExample]
    /// Examples cut to `maxLength`.
    public var truncatedCount = 0
    /// Examples dropped because no target token was left (after truncation, or a chat without a reply).
    public var skippedCount = 0
    /// The template used for chat and Alpaca records (nil when only text records were seen).
    public var template: ChatTemplate?
    /// Total target tokens over all examples.
    public var targetCount: Int { examples.reduce(0) { $0 + $1.targetCount } }
    public var tokenCount: Int { examples.reduce(0) { $0 + $1.tokens.count } }
}

/// Reading JSONL training files and turning records into ``TrainingExample``s.
///
/// Rendering and masking rules (the goldens of `make_lora_goldens.py` follow the same rules
/// with transformers' own chat-template rendering and tokenizer):
/// - text: `tokenizer(text)` (BOS as the tokenizer adds it) plus EOS; every token a target.
/// - chat with ChatML / Llama 2 / Llama 3: the template's text, tokenized without adding special
///   tokens (`apply_chat_template(tokenize=True)`); the targets are the tokens of each assistant
///   reply, counted as `len(tok(prefix))` at the reply's start and end, where the prefixes are the
///   renders of the conversation up to the reply (with the generation prompt) and through it.
/// - Alpaca and Vicuna formats (no official Jinja template): the same, but tokenized with the
///   tokenizer's special tokens (BOS), as Stanford Alpaca and FastChat train.
/// - Alpaca records: with the Alpaca format (the model has no chat template, or `--template
///   alpaca`), Stanford's prompt with the `### Input:` section when `input` is non-empty and the
///   output plus EOS as the target; otherwise the record becomes a user message (instruction,
///   a blank line, input) and an assistant message, rendered with the chat template.
/// - `trainOnPrompt`: every token is a target. `maxLength`: the first tokens are kept.
public struct ExampleEncoder: Sendable {
    public let tokenizer: Tokenizer
    /// The model's chat template text (tokenizer_config.json or `tokenizer.chat_template`).
    public let templateText: String?
    public let options: DataOptions
    /// What `bos_token` / `eos_token` are in templates.
    public let bosToken: String
    public let eosToken: String
    let eosID: Int?
    /// The template recognised or chosen (nil: none yet needed or available).
    public let template: ChatTemplate?
    /// Control tokens to split out of rendered text by hand, longest first, when the tokenizer
    /// does not match them itself (the GGUF SentencePiece route, which follows sentencepiece);
    /// nil when it does.
    let manualSpecials: [(text: String, id: Int)]?

    public init(tokenizer: Tokenizer, templateText: String?, options: DataOptions = DataOptions()) {
        self.tokenizer = tokenizer
        self.templateText = templateText
        self.options = options
        let v = tokenizer.vocabulary
        bosToken = v.bosTokenID.flatMap { v.tokens.indices.contains(Int($0)) ? v.tokens[Int($0)] : nil } ?? ""
        eosToken = v.eosTokenID.flatMap { v.tokens.indices.contains(Int($0)) ? v.tokens[Int($0)] : nil } ?? ""
        eosID = v.eosTokenID.map { Int($0) }
        template = options.template ?? templateText.flatMap(ChatTemplate.recognize)
        // Templates write BOS/EOS as text; a tokenizer that does not turn them back into their
        // ids gets them split out here (each text piece then encoded on its own, as transformers'
        // legacy slow Llama tokenizer does).
        let tokens = v.tokens
        let control = tokens.indices.filter { v.tokenTypes.indices.contains($0) && v.tokenTypes[$0] == GGUFTokenType.control.rawValue }
        let needsSplit = [v.bosTokenID, v.eosTokenID].compactMap { $0 }.contains { id in
            tokens.indices.contains(Int(id)) && tokenizer.encode(tokens[Int(id)], addSpecialTokens: false) != [Int(id)]
        }
        manualSpecials = needsSplit
            ? control.map { (tokens[$0], $0) }.filter { $0.0.count > 1 }.sorted { $0.0.utf8.count > $1.0.utf8.count }
            : nil
    }

    /// The template for chat records.
    /// - Throws: ``DataError/needsTemplate(reason:)``.
    func chatTemplate() throws -> ChatTemplate {
        if let template { return template }
        let names = ChatTemplate.names.joined(separator: ", ")
        if templateText == nil {
            throw DataError.needsTemplate(reason: "chat records need a chat template and the model has none; pass --template (\(names))")
        }
        throw DataError.needsTemplate(reason: "the model's chat template is not one wconv renders; pass --template (\(names))")
    }

    /// Tokenizes one record; nil when nothing is left to learn from (no target token).
    /// - Throws: ``DataError`` (without a line number; ``TrainingDataReader`` adds it) or
    ///   ``ChatTemplateError`` for a conversation the template rejects.
    public func encode(_ record: DataRecord) throws -> (example: TrainingExample, truncated: Bool)? {
        var tokens: [Int]
        var targets: [Range<Int>] = []
        switch record {
        case .text(let text):
            tokens = tokenizer.encode(text, addSpecialTokens: true)
            if let eosID, tokens.last != eosID { tokens.append(eosID) }
            targets = [0 ..< tokens.count]
        case .alpaca(let instruction, let input, let output):
            if template == nil && templateText == nil || template?.kind == .alpaca {
                let prompt = Self.alpacaPrompt(instruction: instruction, input: input)
                let full = prompt + output + eosToken
                tokens = tokenizer.encode(full, addSpecialTokens: true)
                targets = [count(prompt, special: true) ..< tokens.count]
            } else {
                let user = input.isEmpty ? instruction : instruction + "\n\n" + input
                return try encode(.chat([ChatMessage(role: .user, content: user), ChatMessage(role: .assistant, content: output)]))
            }
        case .chat(let messages):
            let t = try chatTemplate()
            let special = t.kind == .alpaca || t.kind == .vicuna
            let segments = try t.segments(messages, bosToken: bosToken, eosToken: eosToken)
            tokens = encodeText(segments.map(\.text).joined(), special: special)
            // Each reply: from the render through the generation prompt to the render through it.
            var prefix = ""
            for s in segments {
                if s.isResponse {
                    let start = count(prefix, special: special)
                    prefix += s.text
                    targets.append(start ..< min(tokens.count, count(prefix, special: special)))
                } else {
                    prefix += s.text
                }
            }
        }
        var mask = [Bool](repeating: options.trainOnPrompt, count: tokens.count)
        if !options.trainOnPrompt {
            for r in targets where r.lowerBound < r.upperBound { for i in r { mask[i] = true } }
        }
        var truncated = false
        if let limit = options.maxLength, tokens.count > limit {
            tokens.removeLast(tokens.count - limit)
            mask.removeLast(mask.count - limit)
            truncated = true
        }
        let example = try TrainingExample(tokens: tokens, lossMask: mask)
        return example.targetCount > 0 ? (example, truncated) : nil
    }

    /// Stanford Alpaca's `PROMPT_DICT`.
    public static func alpacaPrompt(instruction: String, input: String) -> String {
        if input.isEmpty {
            return ChatTemplate.alpacaPreamble + "\n\n### Instruction:\n" + instruction + "\n\n### Response:\n"
        }
        return ChatTemplate.alpacaPreambleWithInput + "\n\n### Instruction:\n" + instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n"
    }

    /// Number of tokens `text` encodes to (special suffix tokens not counted).
    func count(_ text: String, special: Bool) -> Int {
        let ids = encodeText(text, special: special)
        return special ? ids.count - tokenizer.suffixTokens.count : ids.count
    }

    func encodeText(_ text: String, special: Bool) -> [Int] {
        guard let specials = manualSpecials, !specials.isEmpty else { return tokenizer.encode(text, addSpecialTokens: special) }
        var ids = special ? tokenizer.prefixTokens : []
        var pieceStart = text.startIndex, i = text.startIndex
        while i < text.endIndex {
            if let s = specials.first(where: { text[i...].hasPrefix($0.text) }) {
                if pieceStart < i { ids += tokenizer.encode(String(text[pieceStart ..< i]), addSpecialTokens: false) }
                ids.append(s.id)
                i = text.index(i, offsetBy: s.text.count)
                pieceStart = i
            } else {
                i = text.index(after: i)
            }
        }
        if pieceStart < text.endIndex { ids += tokenizer.encode(String(text[pieceStart...]), addSpecialTokens: false) }
        return special ? ids + tokenizer.suffixTokens : ids
    }
}

/// Reads JSONL training files.
public enum TrainingDataReader {
    /// Parses one line; nil for a blank line.
    /// - Throws: ``DataError/badLine(line:reason:)``.
    public static func record(line text: String, number: Int) throws -> DataRecord? {
        if text.allSatisfy({ $0.isWhitespace }) { return nil }
        let value: JSONValue
        do { value = try JSONParser.parse(text) } catch { throw DataError.badLine(line: number, reason: "not valid JSON (\(error))") }
        guard case .object(let o) = value else { throw DataError.badLine(line: number, reason: "not a JSON object") }
        func string(_ key: String, required: Bool) throws -> String? {
            guard let v = o[key], !v.isNull else {
                if required { throw DataError.badLine(line: number, reason: "\"\(key)\" is missing") }
                return nil
            }
            guard let s = v.stringValue else { throw DataError.badLine(line: number, reason: "\"\(key)\" is not a string") }
            return s
        }
        if let messages = o["messages"] {
            guard let list = messages.arrayValue else { throw DataError.badLine(line: number, reason: "\"messages\" is not an array") }
            guard !list.isEmpty else { throw DataError.badLine(line: number, reason: "\"messages\" is empty") }
            var out: [ChatMessage] = []
            for (i, m) in list.enumerated() {
                guard case .object(let mo) = m else { throw DataError.badLine(line: number, reason: "messages[\(i)] is not an object") }
                guard let roleName = mo["role"]?.stringValue else {
                    throw DataError.badLine(line: number, reason: "messages[\(i)] has no \"role\" string")
                }
                guard let role = ChatMessage.Role(rawValue: roleName) else {
                    throw DataError.badLine(line: number, reason: "messages[\(i)] has role \"\(roleName)\" (expected system, user or assistant)")
                }
                guard let content = mo["content"]?.stringValue else {
                    throw DataError.badLine(line: number, reason: "messages[\(i)] has no \"content\" string")
                }
                out.append(ChatMessage(role: role, content: content))
            }
            return .chat(out)
        }
        if o["instruction"] != nil || o["output"] != nil {
            let instruction = try string("instruction", required: true) ?? ""
            let output = try string("output", required: true) ?? ""
            return .alpaca(instruction: instruction, input: try string("input", required: false) ?? "", output: output)
        }
        if let text = try string("text", required: false) { return .text(text) }
        throw DataError.badLine(line: number, reason: "expected {\"text\"}, {\"instruction\", \"input\", \"output\"} or {\"messages\"}")
    }

    /// Every record of a JSONL text, with its 1-based line number.
    /// - Throws: ``DataError/badLine(line:reason:)`` for the first bad line.
    public static func records(text: String) throws -> [(line: Int, record: DataRecord)] {
        var out: [(Int, DataRecord)] = []
        var number = 0
        // Split on the byte: "\r\n" is one Character, so String.split would not see its "\n".
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let bytes = line.last == UInt8(ascii: "\r") ? line.dropLast() : line[...]
            if let r = try record(line: String(decoding: bytes, as: UTF8.self), number: number) { out.append((number, r)) }
        }
        return out
    }

    /// Reads and tokenizes a JSONL file.
    /// - Throws: ``PathError`` naming the file, wrapping ``DataError`` (with the line number) or a
    ///   read error.
    public static func load(path: String, encoder: ExampleEncoder) throws -> TrainingData {
        let bytes = try FileSystem.readFile(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PathError(path: path, DataError.badLine(line: firstInvalidUTF8Line(bytes), reason: "not valid UTF-8"))
        }
        return try withPath(path) { try tokenize(try records(text: text), encoder: encoder) }
    }

    /// Tokenizes parsed records.
    public static func tokenize(_ records: [(line: Int, record: DataRecord)], encoder: ExampleEncoder) throws -> TrainingData {
        var data = TrainingData(examples: [])
        for (line, record) in records {
            do {
                if let (example, truncated) = try encoder.encode(record) {
                    data.examples.append(example)
                    if truncated { data.truncatedCount += 1 }
                } else {
                    data.skippedCount += 1
                }
            } catch let error as ChatTemplateError {
                throw DataError.badLine(line: line, reason: error.description)
            }
        }
        if records.contains(where: { if case .text = $0.record { false } else { true } }) { data.template = encoder.template }
        guard !data.examples.isEmpty else {
            throw DataError.empty(reason: records.isEmpty ? "no records (the file is empty)"
                : "no record has a token to learn from (\(data.skippedCount) without a reply or cut off by --max-len)")
        }
        return data
    }

    static func firstInvalidUTF8Line(_ bytes: [UInt8]) -> Int {
        var line = 1, start = 0
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
            if String(validating: bytes[start ..< i], as: UTF8.self) == nil { return line }
            line += 1
            start = i + 1
        }
        return line
    }
}
