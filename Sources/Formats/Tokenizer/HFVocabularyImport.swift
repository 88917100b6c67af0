/// Choices the HF → GGUF vocabulary conversion cannot make from the files alone.
public struct HFVocabularyOptions: Sendable, Equatable {
    /// The llama.cpp pre-tokenizer name to write as `tokenizer.ggml.pre` for a BPE tokenizer, instead of
    /// recognising it from tokenizer.json (the CLI's `--vocab-pre NAME`). Ignored for SentencePiece.
    public var pre: String?

    public init(pre: String? = nil) {
        self.pre = pre
    }
}

extension GGUFVocabulary {
    /// The tokenizer metadata llama.cpp's `convert_hf_to_gguf.py` writes for a LLaMA-family model
    /// (`LlamaModel.set_vocab`), key for key and in the same order.
    ///
    /// - SentencePiece (`tokenizer.model` present): tokens, scores and types from the model, padded to
    ///   config.json's `vocab_size` with `[PAD<i>]` (score -10000, UNUSED); added_tokens.json entries become
    ///   USER_DEFINED and tokenizer_config.json's `added_tokens_decoder` entries CONTROL (special, or looking
    ///   special) or USER_DEFINED (with `▁` turned into a space), all with score -1000. `pre` is `"default"`.
    /// - Byte-level BPE (tokenizer.json only): tokens by id over `vocab_size`, `[PAD<i>]` UNUSED for holes,
    ///   added tokens CONTROL or USER_DEFINED, the rest NORMAL; merges as `"a b"`; `pre` recognised from the
    ///   pre-tokenizer (see ``BPEPreTokenizer``) or taken from `options.pre`.
    /// - Then gguf-py `SpecialVocab`: special token ids, add_bos/add_eos/add_sep, chat templates, normalizer
    ///   flags from tokenizer.json, tokenizer_config.json and config.json.
    /// - LLaMA quirks: tokenizer_config.json's `add_prefix_space` is written first as `add_space_prefix`;
    ///   `vocab_size` 32016 (CodeLlama) adds `eot_token_id` 32010; `vocab_size` 49152 forces
    ///   `add_bos_token` false.
    ///
    /// Differences from the converter, all in inputs it does not meet in practice: added tokens with
    /// `normalized: false` are taken as they are (the converter round-trips them through the HF tokenizer,
    /// which leaves real special tokens unchanged); tokens transformers would invent at load time (a
    /// tokenizer_config.json `pad_token` missing from the vocabulary) are not added; a special token id past
    /// the token list is an error instead of being written.
    ///
    /// - Throws: ``TokenizerError`` — ``TokenizerError/missingFile(_:)`` without tokenizer.model or
    ///   tokenizer.json, ``TokenizerError/unknownPreTokenizer(summary:)`` for a BPE pre-tokenizer that is not
    ///   recognised and no `options.pre`, ``TokenizerError/unsupported(_:)`` for non-BPE tokenizer.json models
    ///   and SentencePiece-style tokenizer.json without tokenizer.model, protobuf errors for a bad
    ///   tokenizer.model, ``TokenizerError/malformedFile(_:_:)`` for JSON of the wrong shape.
    public init(huggingFace source: HFTokenizerSource, options: HFVocabularyOptions = HFVocabularyOptions())
        throws(TokenizerError)
    {
        var metadata = OrderedMetadata()
        if let value = source.tokenizerConfig {
            guard let config = value.objectValue else {
                throw .malformedFile("tokenizer_config.json", "the document must be an object")
            }
            if let prefix = config["add_prefix_space"], prefix != .null {
                guard case .bool(let flag) = prefix else {
                    throw .malformedFile("tokenizer_config.json", "add_prefix_space must be true or false")
                }
                metadata.set(GGUFTokenizerKey.addSpacePrefix, .bool(flag))
            }
            if config["tokenizer_class"]?.stringValue == "HybridDNATokenizer" {
                throw .unsupported("HybridDNATokenizer")
            }
        }
        let vocabSize = try HFImport.configVocabSize(source.config)
        if let model = source.sentencePieceModel {
            try HFImport.sentencePiece(model, source: source, vocabSize: vocabSize, into: &metadata)
        } else if let tokenizer = source.tokenizerJSON {
            try HFImport.checkByteLevelBPE(tokenizer)
            try HFImport.byteLevelBPE(tokenizer, source: source, vocabSize: vocabSize, pre: options.pre,
                                      into: &metadata)
        } else {
            throw .missingFile("tokenizer.model or tokenizer.json")
        }
        // LlamaModel.set_vocab, after the vocabulary.
        if vocabSize == 32016 {
            // CodeLlama: fill-in-the-middle ids; gguf-py has keys only for the end-of-turn one.
            var special = try SpecialVocabulary(source: source, loadMerges: false, nVocab: nil,
                                                types: ["prefix", "suffix", "middle", "eot"])
            try special.setSpecialToken("prefix", .int(32007))
            try special.setSpecialToken("suffix", .int(32008))
            try special.setSpecialToken("middle", .int(32009))
            try special.setSpecialToken("eot", .int(32010))
            try special.add(to: &metadata)
        }
        if vocabSize == 49152 {
            // Granite small models (and SmolLM, which share the vocabulary size) never add BOS.
            metadata.set(GGUFSpecialToken.bos.addKey ?? "", .bool(false))
        }
        try self.init(metadata: metadata.entries)
    }
}

/// The steps of the HF → GGUF vocabulary conversion.
enum HFImport {
    /// `vocab_size` as the converter sees it: config.json's (or its text_config's), else LlamaConfig's default
    /// of 32000 (the converter reads the config through transformers' AutoConfig); nil without config.json.
    static func configVocabSize(_ config: JSONValue?) throws(TokenizerError) -> Int? {
        guard let config else { return nil }
        guard config.objectValue != nil else { throw .malformedFile("config.json", "the document must be an object") }
        for value in [config["vocab_size"], config["text_config"]?["vocab_size"]] {
            guard let value, value != .null else { continue }
            guard let n = value.intValue, n >= 0 else {
                throw .malformedFile("config.json", "vocab_size must be a non-negative integer")
            }
            // The token list is allocated at this size; real vocabularies stay below a million.
            guard n <= maximumVocabularySize else {
                throw .malformedFile("config.json", "vocab_size \(n) is larger than \(maximumVocabularySize)")
            }
            return n
        }
        return 32000
    }

    /// Largest `vocab_size` accepted (2^24).
    static let maximumVocabularySize = 1 << 24

    // MARK: SentencePiece

    static let addedTokenScore: Float = -1000
    static let paddingScore: Float = -10000

    /// `_create_vocab_sentencepiece` + `_set_vocab_sentencepiece`.
    static func sentencePiece(_ bytes: [UInt8], source: HFTokenizerSource, vocabSize configSize: Int?,
                              into metadata: inout OrderedMetadata) throws(TokenizerError) {
        let model = try SentencePieceModel(parsing: bytes)
        // `find_hparam(...) or tokenizer.vocab_size()`: a zero vocab_size falls back too.
        let vocabSize = (configSize ?? 0) > 0 ? configSize ?? 0 : model.pieces.count
        var tokens = (0 ..< vocabSize).map { "[PAD\($0)]" }
        var scores = [Float](repeating: paddingScore, count: vocabSize)
        var types = [Int32](repeating: GGUFTokenType.unused.rawValue, count: vocabSize)
        for (id, piece) in model.pieces.enumerated() where id < vocabSize {
            let type: GGUFTokenType
            switch piece.type {
            case .unknown: type = .unknown
            case .control: type = .control
            case .unused: type = .unused
            case .byte: type = .byte
            // SentencePiece's processor has no "is user defined" query; the converter calls them normal.
            case .normal, .userDefined: type = .normal
            }
            tokens[id] = piece.piece
            scores[id] = piece.score
            types[id] = type.rawValue
        }
        if let added = source.addedTokens {
            guard let object = added.objectValue else {
                throw .malformedFile("added_tokens.json", "the document must be an object of token → id")
            }
            for (content, value) in object {
                guard let id = value.pythonInt, id >= 0 else {
                    throw .malformedFile("added_tokens.json", "the id of \"\(content)\" is not a token id")
                }
                guard id < vocabSize else { continue }  // "ignore token: id is out of range"
                tokens[id] = content
                scores[id] = addedTokenScore
                types[id] = GGUFTokenType.userDefined.rawValue
            }
        }
        if let decoder = source.tokenizerConfig?["added_tokens_decoder"], decoder != .null {
            guard let object = decoder.objectValue else {
                throw .malformedFile("tokenizer_config.json", "added_tokens_decoder must be an object")
            }
            for (key, entry) in object {
                guard let id = Int(key.trimmingWhitespaceString()), id >= 0 else {
                    throw .malformedFile("tokenizer_config.json", "added_tokens_decoder key \"\(key)\" is not a token id")
                }
                guard case .string(var content)? = entry["content"] else {
                    throw .malformedFile("tokenizer_config.json", "added_tokens_decoder[\"\(key)\"] has no content string")
                }
                guard id < vocabSize else { continue }
                if entry["special"]?.pythonTruthy ?? false || looksSpecial(content) {
                    types[id] = GGUFTokenType.control.rawValue
                } else {
                    content = content.replacingSentencePieceSpaces()
                    types[id] = GGUFTokenType.userDefined.rawValue
                }
                scores[id] = addedTokenScore
                tokens[id] = content
            }
        }
        metadata.set(GGUFTokenizerKey.model, .string("llama"))
        metadata.set(GGUFTokenizerKey.pre, .string("default"))
        if !tokens.isEmpty {
            metadata.set(GGUFTokenizerKey.tokens, .stringArray(tokens))
            metadata.set(GGUFTokenizerKey.scores, .float32Array(scores))
            metadata.set(GGUFTokenizerKey.tokenType, .int32Array(types))
        }
        let special = try SpecialVocabulary(source: source, loadMerges: false, nVocab: tokens.count)
        try special.add(to: &metadata)
    }

    // MARK: Byte-level BPE

    /// The converter tries `LlamaHfVocab` before the GPT-2 path; that class takes SentencePiece-style BPE
    /// tokenizer.json files (byte fallback, a Sequence decoder), which wconv does not convert.
    static func checkByteLevelBPE(_ tokenizer: JSONValue) throws(TokenizerError) {
        guard let model = tokenizer["model"]?.objectValue else {
            throw .malformedFile("tokenizer.json", "model must be an object")
        }
        let type = model["type"]?.stringValue
        guard type == "BPE" else {
            throw .unsupported("tokenizer.json model type \(type.map { "\"\($0)\"" } ?? "missing"); only BPE converts")
        }
        let ignoreMerges = model["ignore_merges"]?.pythonTruthy ?? false
        let byteFallback = model["byte_fallback"]?.pythonTruthy
        let isLlama3 = ignoreMerges && !(byteFallback ?? true)
        let decoderType = tokenizer["decoder"]?["type"]?.stringValue
        if !isLlama3 && byteFallback == true && decoderType == "Sequence" {
            throw .unsupported("tokenizer.json is a SentencePiece-style BPE with byte fallback and there is no "
                + "tokenizer.model; add the model's tokenizer.model to convert it")
        }
    }

    /// `get_vocab_base` + `_set_vocab_gpt2`.
    static func byteLevelBPE(_ tokenizer: JSONValue, source: HFTokenizerSource, vocabSize configSize: Int?,
                             pre preOverride: String?, into metadata: inout OrderedMetadata) throws(TokenizerError) {
        let file = "tokenizer.json"
        guard let vocabObject = tokenizer["model"]?["vocab"]?.objectValue else {
            throw .malformedFile(file, "model.vocab must be an object of token → id")
        }
        // The token → id map transformers' `tokenizer.vocab` gives: the model vocabulary plus added tokens.
        var vocab: [String: Int] = [:]
        var idToToken: [Int: String] = [:]
        for (token, value) in vocabObject {
            guard let id = value.intValue, id >= 0 else { throw .malformedFile(file, "model.vocab[\"\(token)\"] is not a token id") }
            vocab[token] = id
            idToToken[id] = token
        }
        // Added tokens: id → (content, special). tokenizer.json first, then tokenizer_config.json's decoder.
        var added: [Int: (content: String, special: Bool)] = [:]
        if let list = tokenizer["added_tokens"], list != .null {
            guard let array = list.arrayValue else { throw .malformedFile(file, "added_tokens must be an array") }
            for (i, entry) in array.enumerated() {
                guard let id = entry["id"]?.intValue, id >= 0, let content = entry["content"]?.stringValue else {
                    throw .malformedFile(file, "added_tokens[\(i)] needs an id and a content string")
                }
                added[id] = (content, entry["special"]?.pythonTruthy ?? false)
            }
        }
        if let decoder = source.tokenizerConfig?["added_tokens_decoder"]?.objectValue {
            for (key, entry) in decoder {
                guard let id = Int(key.trimmingWhitespaceString()), id >= 0,
                      let content = entry["content"]?.stringValue
                else {
                    throw .malformedFile("tokenizer_config.json", "added_tokens_decoder[\"\(key)\"] needs a numeric key and a content string")
                }
                if added[id] == nil { added[id] = (content, entry["special"]?.pythonTruthy ?? false) }
            }
        }
        var addedContents = Set<String>()
        for (id, token) in added.sorted(by: { $0.key < $1.key }) {
            vocab[token.content] = id
            idToToken[id] = token.content
            addedContents.insert(token.content)
        }
        let vocabSize = configSize ?? vocab.count
        if let maxID = vocab.values.max(), maxID >= vocabSize {
            throw .malformedFile(file, "token id \(maxID) is not below config.json's vocab_size \(vocabSize)")
        }
        let pre: String
        if let preOverride {
            pre = preOverride
        } else if let recognised = BPEPreTokenizer.recognise(tokenizer) {
            pre = recognised
        } else {
            throw .unknownPreTokenizer(summary: BPEPreTokenizer.summary(of: tokenizer))
        }
        var tokens: [String] = []
        var types: [Int32] = []
        tokens.reserveCapacity(vocabSize)
        types.reserveCapacity(vocabSize)
        for id in 0 ..< vocabSize {
            guard var token = idToToken[id] else {
                tokens.append("[PAD\(id)]")
                types.append(GGUFTokenType.unused.rawValue)
                continue
            }
            if addedContents.contains(token) {
                // The converter looks the flags up by id; a content that is added under another id has none.
                guard let entry = added[id] else {
                    throw .malformedFile(file, "token \"\(token)\" is an added token under another id than \(id)")
                }
                if entry.special || looksSpecial(token) {
                    types.append(GGUFTokenType.control.rawValue)
                } else {
                    token = token.replacingSentencePieceSpaces()
                    types.append(GGUFTokenType.userDefined.rawValue)
                }
            } else {
                types.append(GGUFTokenType.normal.rawValue)
            }
            tokens.append(token)
        }
        metadata.set(GGUFTokenizerKey.model, .string("gpt2"))
        metadata.set(GGUFTokenizerKey.pre, .string(pre))
        if !tokens.isEmpty {
            metadata.set(GGUFTokenizerKey.tokens, .stringArray(tokens))
            metadata.set(GGUFTokenizerKey.tokenType, .int32Array(types))
        }
        let special = try SpecialVocabulary(source: source, loadMerges: true, nVocab: nil)
        try special.add(to: &metadata)
    }

    /// `does_token_look_special`: added tokens that ought to be control tokens although not marked special.
    /// Compares code points, as Python does (Swift's `String` comparisons are grapheme- and
    /// normalization-aware).
    static func looksSpecial(_ token: String) -> Bool {
        let scalars = Array(token.unicodeScalars)
        func starts(_ prefix: String) -> Bool { scalars.starts(with: prefix.unicodeScalars) }
        func ends(_ suffix: String) -> Bool { scalars.reversed().starts(with: suffix.unicodeScalars.reversed()) }
        if ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(where: { scalars.elementsEqual($0.unicodeScalars) }) {
            return true
        }
        if starts("<|") && ends("|>") { return true }
        if starts("<\u{FF5C}") && ends("\u{FF5C}>") { return true }  // deepseek-coder's fullwidth ｜
        if starts("<unused") && ends(">") { return true }
        return false
    }
}

extension String {
    /// SentencePiece's word-boundary mark `▁` (U+2581) replaced by a space: user-defined tokens are stored
    /// pre-normalized.
    func replacingSentencePieceSpaces() -> String {
        guard unicodeScalars.contains("\u{2581}") else { return self }
        return String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\u{2581}" ? " " : $0 }))
    }

    func trimmingWhitespaceString() -> String { String(Substring(self).trimmingWhitespace()) }
}
