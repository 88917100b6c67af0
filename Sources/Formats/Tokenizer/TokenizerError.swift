public import TensorCore

/// Why a tokenizer file or tokenizer metadata could not be read, converted or written.
public enum TokenizerError: ClassifiedError, Equatable {
    /// A protobuf (SentencePiece `tokenizer.model`) ended inside a value that starts at `offset`.
    case truncatedProtobuf(offset: Int)
    /// A protobuf is not well formed at `offset` (bad wire type, overlong varint, a length past the end, ...).
    case malformedProtobuf(String, offset: Int)
    /// A SentencePiece model is well formed but unusable (no pieces, an unknown piece type, ...).
    case invalidSentencePieceModel(String)
    /// A tokenizer input file the conversion needs is absent.
    case missingFile(String)
    /// A JSON file parsed but a member has the wrong shape: `file`, then what is wrong.
    case malformedFile(String, String)
    /// The input is valid but uses a tokenizer kind wconv does not convert.
    case unsupported(String)
    /// tokenizer.json's pre-tokenizer is none of the ones wconv recognises; `summary` describes it.
    case unknownPreTokenizer(summary: String)
    /// A `tokenizer.ggml.pre` name wconv cannot rebuild a Hugging Face pre-tokenizer for.
    case unsupportedPreTokenizerName(String)
    /// GGUF tokenizer metadata is missing a key, has a key of the wrong type, or is inconsistent.
    case invalidMetadata(String)

    public var kind: ErrorKind {
        switch self {
        case .truncatedProtobuf, .malformedProtobuf, .invalidSentencePieceModel, .malformedFile, .invalidMetadata:
            .malformedInput
        case .missingFile:
            .missingInput
        case .unsupported, .unknownPreTokenizer, .unsupportedPreTokenizerName:
            .unsupported
        }
    }

    public var description: String {
        switch self {
        case .truncatedProtobuf(let offset):
            "SentencePiece model truncated: a value starting at byte \(offset) runs past the end"
        case .malformedProtobuf(let what, let offset):
            "SentencePiece model is not a valid protobuf at byte \(offset): \(what)"
        case .invalidSentencePieceModel(let what):
            "invalid SentencePiece model: \(what)"
        case .missingFile(let what):
            "missing tokenizer file: \(what)"
        case .malformedFile(let file, let what):
            "\(file): \(what)"
        case .unsupported(let what):
            "unsupported tokenizer: \(what)"
        case .unknownPreTokenizer(let summary):
            "tokenizer.json pre-tokenizer not recognised (\(summary)); "
                + "name the llama.cpp pre-tokenizer with --vocab-pre NAME (known: "
                + BPEPreTokenizer.recognisedNames.joined(separator: ", ") + ")"
        case .unsupportedPreTokenizerName(let name):
            "cannot rebuild a Hugging Face pre-tokenizer for tokenizer.ggml.pre \"\(name)\" (supported: "
                + BPEPreTokenizer.reconstructibleNames.joined(separator: ", ") + ")"
        case .invalidMetadata(let what):
            "invalid GGUF tokenizer metadata: \(what)"
        }
    }
}
