import TensorCore

/// The tokenizer files of a Hugging Face model directory, parsed, as the HF → GGUF conversion reads them.
///
/// Every member is optional; which ones the conversion needs depends on the tokenizer: `tokenizer.model` for
/// SentencePiece, `tokenizer.json` for byte-level BPE, and the rest for special tokens and chat templates.
public struct HFTokenizerSource: Sendable {
    /// `config.json` (vocab_size, `*_token_id`).
    public var config: JSONValue?
    /// `tokenizer.json`.
    public var tokenizerJSON: JSONValue?
    /// `tokenizer_config.json`.
    public var tokenizerConfig: JSONValue?
    /// `added_tokens.json` (SentencePiece models: extra tokens by id).
    public var addedTokens: JSONValue?
    /// The bytes of `tokenizer.model` (SentencePiece).
    public var sentencePieceModel: [UInt8]?
    /// `chat_template.jinja`.
    public var chatTemplateJinja: String?
    /// `additional_chat_templates/*.jinja`, by file stem, sorted by name.
    public var additionalChatTemplates: [(name: String, template: String)]
    /// `chat_template.json`.
    public var chatTemplateJSON: JSONValue?
    /// `merges.txt` (only read when tokenizer.json has no merges).
    public var mergesTXT: String?

    public init(config: JSONValue? = nil, tokenizerJSON: JSONValue? = nil, tokenizerConfig: JSONValue? = nil,
                addedTokens: JSONValue? = nil, sentencePieceModel: [UInt8]? = nil, chatTemplateJinja: String? = nil,
                additionalChatTemplates: [(name: String, template: String)] = [], chatTemplateJSON: JSONValue? = nil,
                mergesTXT: String? = nil) {
        self.config = config
        self.tokenizerJSON = tokenizerJSON
        self.tokenizerConfig = tokenizerConfig
        self.addedTokens = addedTokens
        self.sentencePieceModel = sentencePieceModel
        self.chatTemplateJinja = chatTemplateJinja
        self.additionalChatTemplates = additionalChatTemplates
        self.chatTemplateJSON = chatTemplateJSON
        self.mergesTXT = mergesTXT
    }

    /// Reads whichever of the tokenizer files exist in `directory`.
    ///
    /// - Throws: ``PathError`` naming the file, wrapping a ``JSONError`` for a file that is not valid JSON, a
    ///   ``TokenizerError`` for a text file that is not UTF-8, or the file-access error of an unreadable file.
    public static func load(directory: String) throws -> HFTokenizerSource {
        func path(_ name: String) -> String { FileSystem.join(directory, name) }
        func json(_ name: String) throws -> JSONValue? {
            let file = path(name)
            guard FileSystem.exists(file) else { return nil }
            let bytes = try FileSystem.readFile(file)
            return try withPath(file) { try JSONParser.parse(bytes) }
        }
        func text(_ file: String) throws -> String? {
            guard FileSystem.exists(file) else { return nil }
            let bytes = try FileSystem.readFile(file)
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw PathError(path: file, TokenizerError.malformedFile(FileSystem.baseName(file), "not valid UTF-8"))
            }
            return string
        }
        var source = HFTokenizerSource()
        source.config = try json("config.json")
        source.tokenizerJSON = try json("tokenizer.json")
        source.tokenizerConfig = try json("tokenizer_config.json")
        source.addedTokens = try json("added_tokens.json")
        source.chatTemplateJSON = try json("chat_template.json")
        if FileSystem.exists(path("tokenizer.model")) {
            source.sentencePieceModel = try FileSystem.readFile(path("tokenizer.model"))
        }
        source.chatTemplateJinja = try text(path("chat_template.jinja"))
        source.mergesTXT = try text(path("merges.txt"))
        let extras = path("additional_chat_templates")
        if FileSystem.isDirectory(extras) {
            for name in FileSystem.contents(ofDirectory: extras) ?? [] where name.hasSuffix(".jinja") {
                if let template = try text(FileSystem.join(extras, name)) {
                    source.additionalChatTemplates.append((String(name.dropLast(".jinja".count)), template))
                }
            }
        }
        return source
    }
}
