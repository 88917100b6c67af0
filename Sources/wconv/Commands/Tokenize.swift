import ArgumentParser
import Formats
import TensorCore
import Verify

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn text into a model's token ids, or ids back into text.",
        discussion: """
        MODEL is a Hugging Face directory (tokenizer.json or tokenizer.model) or a GGUF file \
        (its tokenizer.* metadata); only the tokenizer is read. The ids are those of the \
        Hugging Face tokenizers / sentencepiece libraries, with BOS/EOS added as the model's \
        configuration says unless --no-special is given.

        With --decode the input is token ids (space- or comma-separated, or a JSON array or \
        {"tokens": […]} object) and the output is the text.

        Examples:
          wconv tokenize ./SmolLM2-135M "Hello, world"
          wconv tokenize model.gguf --text prompt.txt --json > prompt.json
          wconv tokenize model.gguf --decode "1 15043 29892 3186"
        """)

    @Argument(help: "Model: a Hugging Face directory or a GGUF file.")
    var model: String

    @Argument(help: "The text to tokenize (or the ids to decode with --decode).")
    var input: String?

    @Option(help: "Read the input from this file instead.")
    var text: String?

    @Flag(help: "Decode token ids to text.")
    var decode = false

    // tokenize writes nothing on stderr but errors; --quiet is here so every command takes it.
    @OptionGroup var reporting: OutputOptions<TokenizeJSON>

    @Flag(help: "Do not add BOS/EOS when tokenizing.")
    var noSpecial = false

    @Flag(help: "Leave special tokens out when decoding.")
    var skipSpecial = false

    func validate() throws {
        if (input == nil) == (text == nil) { throw ValidationError("Give the input either as an argument or with --text FILE.") }
    }

    func run() throws {
        try runCommand {
            let tokenizer = try LlamaCheckpoint.tokenizer(of: try ModelInput.open(path: model))
            let body: String
            if let path = text {
                body = String(decoding: try withPath(path) { try FileSystem.readFile(path) }, as: UTF8.self)
            } else {
                body = input ?? ""
            }
            if decode {
                let ids = try Self.parseIDs(body)
                if let bad = ids.first(where: { $0 >= tokenizer.count }) {
                    throw Failure(.usage, "token id \(bad) is outside the vocabulary (0..<\(tokenizer.count))")
                }
                let decoded = tokenizer.decode(ids, skipSpecialTokens: skipSpecial)
                print(reporting.json ? JSONValue.object(JSONObject([("text", .string(decoded))])).serialized(.pythonInline(sortKeys: false))
                           : decoded)
            } else {
                let ids = tokenizer.encode(body, addSpecialTokens: !noSpecial)
                if reporting.json {
                    let object = JSONObject([("tokens", .array(ids.map { .int(Int64($0)) })), ("count", .int(Int64(ids.count)))])
                    print(JSONValue.object(object).serialized(.pythonInline(sortKeys: false)))
                } else {
                    print(ids.map(String.init).joined(separator: " "))
                }
            }
        }
    }

    /// Ids as JSON (array or `{"tokens": …}`) or separated by spaces / commas.
    static func parseIDs(_ text: String) throws -> [Int] {
        let trimmed = String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
        if trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
            return try TokenList.parse(try JSONParser.parse(Array(trimmed.utf8)))
        }
        let parts = trimmed.split { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        return try parts.map { part in
            guard let id = Int(part), id >= 0 else { throw Failure(.usage, "'\(part)' is not a token id") }
            return id
        }
    }
}

/// `tokenize --json`.
enum TokenizeJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "Print JSON: {\"tokens\": [...], \"count\": N} (with --decode: {\"text\": ...})." }
}
