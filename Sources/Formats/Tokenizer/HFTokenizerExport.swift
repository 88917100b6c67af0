/// One file of a Hugging Face tokenizer, to be written into the output model directory.
public struct HFTokenizerFile: Sendable, Equatable {
    /// The file name inside the model directory (`tokenizer.model`, `tokenizer.json`, ...).
    public var name: String
    public var contents: [UInt8]

    public init(name: String, contents: [UInt8]) {
        self.name = name
        self.contents = contents
    }
}

extension GGUFVocabulary {
    /// Hugging Face tokenizer files that transformers' `AutoTokenizer` loads into the same tokenizer.
    ///
    /// - `"llama"` (SentencePiece): `tokenizer.model` (a BPE-type model with the pieces, scores and types;
    ///   byte fallback when there are byte pieces; identity normalizer with `add_dummy_prefix` =
    ///   `add_space_prefix`, default true), `tokenizer_config.json` (no tokenizer class, add_bos/add_eos with
    ///   llama.cpp's SentencePiece defaults true/false, special tokens, control and user-defined tokens as
    ///   `added_tokens_decoder`, chat templates) and `special_tokens_map.json`.
    /// - `"gpt2"` (byte-level BPE): `tokenizer.json` (the vocabulary without UNUSED padding entries, merges as
    ///   pairs, the pre-tokenizer rebuilt from `pre`, ByteLevel decoder, control and user-defined tokens as
    ///   added tokens, a post-processor adding BOS/EOS when add_bos/add_eos say so),
    ///   `tokenizer_config.json` (`PreTrainedTokenizerFast`) and `special_tokens_map.json`.
    ///
    /// config.json is the caller's; its `vocab_size` should be `tokens.count`.
    ///
    /// - Returns: the files, in the order listed above.
    /// - Throws: ``TokenizerError/unsupported(_:)`` for other models, ``TokenizerError/unsupportedPreTokenizerName(_:)``
    ///   for a `pre` wconv cannot rebuild, ``TokenizerError/invalidMetadata(_:)`` for inconsistent metadata
    ///   (duplicate tokens, a merge without a space, no unknown token for SentencePiece, ...).
    public func huggingFaceFiles() throws(TokenizerError) -> [HFTokenizerFile] {
        try checkConsistency()
        switch model {
        case "llama": return try sentencePieceFiles()
        case "gpt2": return try byteLevelBPEFiles()
        default: throw .unsupported("tokenizer.ggml.model \"\(model)\"; only \"llama\" and \"gpt2\" convert back")
        }
    }

    /// The token ids config.json should carry (`bos_token_id`, `eos_token_id`, `pad_token_id`, those that are
    /// set), for the caller that writes config.json. The HF → GGUF conversion reads special ids from there when
    /// tokenizer files do not resolve them (always the case for SentencePiece models).
    public func huggingFaceConfigTokenIDs() -> [(key: String, value: Int)] {
        var out: [(key: String, value: Int)] = []
        if let id = bosTokenID { out.append(("bos_token_id", Int(id))) }
        if let id = eosTokenID { out.append(("eos_token_id", Int(id))) }
        if let id = paddingTokenID { out.append(("pad_token_id", Int(id))) }
        return out
    }

    private func checkConsistency() throws(TokenizerError) {
        guard tokens.count < Int(Int32.max) else { throw .invalidMetadata("\(tokens.count) tokens is too many") }
        guard tokenTypes.count == tokens.count else {
            throw .invalidMetadata("\(tokenTypes.count) token types for \(tokens.count) tokens")
        }
        if let scores, scores.count != tokens.count {
            throw .invalidMetadata("\(scores.count) scores for \(tokens.count) tokens")
        }
        for (kind, id) in specialTokenIDs where Int(id) >= tokens.count {
            throw .invalidMetadata("\(kind.idKey) = \(id) is past the \(tokens.count) tokens")
        }
    }

    private func token(_ kind: GGUFSpecialToken) -> String? {
        specialTokenIDs[kind].map { tokens[Int($0)] }
    }

    // MARK: SentencePiece

    private func sentencePieceFiles() throws(TokenizerError) -> [HFTokenizerFile] {
        var pieces: [SentencePieceModel.Piece] = []
        pieces.reserveCapacity(tokens.count)
        var seen = Set<[UInt8]>()
        for (id, token) in tokens.enumerated() {
            guard let type = SentencePieceModel.PieceType(rawValue: tokenTypes[id]) else {
                throw .invalidMetadata("token \(id) has type \(tokenTypes[id]), not one of 1...6")
            }
            // User-defined tokens were stored with `▁` turned into spaces; SentencePiece pieces use `▁`.
            let piece = type == .userDefined
                ? String(String.UnicodeScalarView(token.unicodeScalars.map { $0 == " " ? "\u{2581}" : $0 }))
                : token
            // SentencePiece refuses a model with the same piece twice (it compares bytes).
            guard seen.insert(Array(piece.utf8)).inserted else {
                throw .invalidMetadata("token \(id) \"\(piece)\" appears twice; SentencePiece needs unique pieces")
            }
            pieces.append(SentencePieceModel.Piece(piece: piece, score: scores?[id] ?? 0, type: type))
        }
        // SentencePiece needs exactly one unknown piece. The converter can turn `<unk>` into a control token
        // (when tokenizer_config.json lists it as special), so the unknown id decides.
        let unknownID: Int
        if let id = unknownTokenID {
            unknownID = Int(id)
        } else if let id = tokenTypes.firstIndex(of: GGUFTokenType.unknown.rawValue) {
            unknownID = id
        } else {
            throw .invalidMetadata("no unknown token (tokenizer.ggml.unknown_token_id or a token of type 2); "
                + "SentencePiece needs one")
        }
        for i in pieces.indices where pieces[i].type == .unknown && i != unknownID { pieces[i].type = .control }
        pieces[unknownID].type = .unknown

        var trainer = SentencePieceModel.TrainerSpec()
        trainer.modelType = .bpe
        trainer.vocabSize = Int32(clamping: pieces.count)
        trainer.byteFallback = pieces.contains { $0.type == .byte }
        trainer.characterCoverage = 1
        trainer.unkID = Int32(unknownID)
        trainer.unkPiece = pieces[unknownID].piece
        let reserved = Set([unknownID])
        func specialID(_ kind: GGUFSpecialToken, excluding: Set<Int>) -> Int32 {
            guard let id = specialTokenIDs[kind].map(Int.init), !excluding.contains(id) else { return -1 }
            return Int32(id)
        }
        trainer.bosID = specialID(.bos, excluding: reserved)
        trainer.eosID = specialID(.eos, excluding: reserved)
        // SentencePiece wants distinct ids; a pad that doubles as another special token is left out.
        trainer.padID = specialID(.padding, excluding: reserved.union([Int(trainer.bosID), Int(trainer.eosID)]))
        if trainer.bosID >= 0 { trainer.bosPiece = pieces[Int(trainer.bosID)].piece }
        if trainer.eosID >= 0 { trainer.eosPiece = pieces[Int(trainer.eosID)].piece }
        if trainer.padID >= 0 { trainer.padPiece = pieces[Int(trainer.padID)].piece }

        // llama.cpp's SentencePiece tokenizer does no normalization beyond the space handling below.
        var normalizer = SentencePieceModel.NormalizerSpec()
        normalizer.name = "identity"
        normalizer.addDummyPrefix = addSpacePrefix ?? true
        normalizer.removeExtraWhitespaces = false
        normalizer.escapeWhitespaces = true
        let model = SentencePieceModel(pieces: pieces, trainerSpec: trainer, normalizerSpec: normalizer)

        var config = JSONObject()
        // llama.cpp's defaults for SentencePiece vocabularies: add BOS, not EOS.
        config["add_bos_token"] = .bool(addBOS ?? true)
        config["add_eos_token"] = .bool(addEOS ?? false)
        if addSpacePrefix == false { config["add_prefix_space"] = false }
        config["added_tokens_decoder"] = .object(addedTokensDecoder())
        config["bos_token"] = token(.bos).map(JSONValue.string) ?? .null
        config["eos_token"] = token(.eos).map(JSONValue.string) ?? .null
        config["unk_token"] = .string(pieces[unknownID].piece)
        config["pad_token"] = token(.padding).map(JSONValue.string) ?? .null
        if let template = chatTemplateJSON() { config["chat_template"] = template }
        config["clean_up_tokenization_spaces"] = false
        // No tokenizer_class: transformers 5 then builds the tokenizer from tokenizer.model itself (its
        // normalizer, unknown piece, byte fallback, a space prefix on every text fragment), which is how
        // llama.cpp tokenizes. Naming `LlamaTokenizer` would impose Llama 2's fixed layout instead (byte
        // fallback on, unknown characters dropped, no space after special tokens).
        return [
            HFTokenizerFile(name: "tokenizer.model", contents: model.serialized()),
            HFTokenizerFile(name: "tokenizer_config.json", contents: Self.jsonBytes(.object(config))),
            HFTokenizerFile(name: "special_tokens_map.json", contents: Self.jsonBytes(.object(specialTokensMap()))),
        ]
    }

    // MARK: Byte-level BPE

    private func byteLevelBPEFiles() throws(TokenizerError) -> [HFTokenizerFile] {
        let rebuilt = try BPEPreTokenizer.reconstruct(pre ?? "")
        // The vocabulary: every token but the UNUSED padding the converter invents for missing ids.
        var vocab = JSONObject()
        var seen = Set<[UInt8]>()
        for (id, token) in tokens.enumerated() where tokenTypes[id] != GGUFTokenType.unused.rawValue {
            guard seen.insert(Array(token.utf8)).inserted else {
                throw .invalidMetadata("token \(id) \"\(token)\" appears twice")
            }
            vocab[token] = .int(Int64(id))
        }
        // JSONObject keys are Swift strings, which compare canonically equivalent spellings as equal; two such
        // tokens (never in a byte-level alphabet, possible among added tokens) cannot both be keys.
        guard vocab.count == seen.count else {
            throw .invalidMetadata("two tokens differ only in Unicode normalization; they cannot both be written")
        }
        var mergePairs: [JSONValue] = []
        mergePairs.reserveCapacity(merges?.count ?? 0)
        for (i, merge) in (merges ?? []).enumerated() {
            // llama.cpp splits at the first space after the first character.
            let scalars = Array(merge.unicodeScalars)
            guard let space = scalars.dropFirst().firstIndex(of: " ") else {
                throw .invalidMetadata("merge \(i) \"\(merge)\" has no space between its two parts")
            }
            let left = String(String.UnicodeScalarView(scalars[..<space]))
            let right = String(String.UnicodeScalarView(scalars[(space + 1)...]))
            mergePairs.append([.string(left), .string(right)])
        }
        var addedTokens: [JSONValue] = []
        for (id, token) in tokens.enumerated() {
            let type = tokenTypes[id]
            guard type == GGUFTokenType.control.rawValue || type == GGUFTokenType.userDefined.rawValue else { continue }
            addedTokens.append(.object(Self.addedToken(id: id, content: token,
                                                       special: type == GGUFTokenType.control.rawValue,
                                                       includeID: true)))
        }
        var normalizers: [JSONValue] = rebuilt.normalizer == .null ? [] : [rebuilt.normalizer]
        if normalizerLowercase == true { normalizers.append(.object(JSONObject([("type", "Lowercase")]))) }
        if normalizerStripAccents == true { normalizers.append(.object(JSONObject([("type", "StripAccents")]))) }
        let normalizer: JSONValue = switch normalizers.count {
        case 0: .null
        case 1: normalizers[0]
        default: .object(JSONObject([("type", "Sequence"), ("normalizers", .array(normalizers))]))
        }

        // EOS: with add_eos and a separate end-of-turn token, tokenizer_config.json names the end-of-turn token
        // as eos_token while the template appends the real EOS; that is how such checkpoints look, and it is
        // what lets SpecialVocab find both ids again.
        var configEOS = token(.eos)
        if addEOS == true, let eot = eotTokenID, eot != eosTokenID { configEOS = tokens[Int(eot)] }

        var tokenizer = JSONObject()
        tokenizer["version"] = "1.0"
        tokenizer["truncation"] = .null
        tokenizer["padding"] = .null
        tokenizer["added_tokens"] = .array(addedTokens)
        tokenizer["normalizer"] = normalizer
        tokenizer["pre_tokenizer"] = rebuilt.preTokenizer
        tokenizer["post_processor"] = try postProcessor()
        tokenizer["decoder"] = .object(JSONObject([("type", "ByteLevel"), ("add_prefix_space", true),
                                                   ("trim_offsets", true), ("use_regex", true)]))
        tokenizer["model"] = .object(JSONObject([
            ("type", "BPE"), ("dropout", .null), ("unk_token", .null), ("continuing_subword_prefix", .null),
            ("end_of_word_suffix", .null), ("fuse_unk", false), ("byte_fallback", false),
            ("ignore_merges", .bool(rebuilt.ignoreMerges)), ("vocab", .object(vocab)), ("merges", .array(mergePairs)),
        ]))

        var config = JSONObject()
        if let addBOS { config["add_bos_token"] = .bool(addBOS) }
        if let addEOS { config["add_eos_token"] = .bool(addEOS) }
        if addSpacePrefix == false { config["add_prefix_space"] = false }
        config["added_tokens_decoder"] = .object(addedTokensDecoder())
        if let bos = token(.bos) { config["bos_token"] = .string(bos) }
        if let configEOS { config["eos_token"] = .string(configEOS) }
        if let unk = token(.unknown) { config["unk_token"] = .string(unk) }
        if let pad = token(.padding) { config["pad_token"] = .string(pad) }
        if let template = chatTemplateJSON() { config["chat_template"] = template }
        config["clean_up_tokenization_spaces"] = false
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        var map = specialTokensMap()
        if let configEOS { map["eos_token"] = .string(configEOS) }
        return [
            HFTokenizerFile(name: "tokenizer.json", contents: Self.jsonBytes(.object(tokenizer))),
            HFTokenizerFile(name: "tokenizer_config.json", contents: Self.jsonBytes(.object(config))),
            HFTokenizerFile(name: "special_tokens_map.json", contents: Self.jsonBytes(.object(map))),
        ]
    }

    /// The post-processor, chosen so that the converter's SpecialVocab decides the same add_* keys again:
    /// a ByteLevel step (which makes it record add_bos and add_eos as false unless a template says otherwise)
    /// when the vocabulary has both keys, as Llama 3 and SmolLM ship it; a template alone when only one is
    /// set and true, as Qwen2 ships it; nothing when no BOS/EOS is added and the keys are not both present.
    private func postProcessor() throws(TokenizerError) -> JSONValue {
        let byteLevel = JSONValue.object(JSONObject([("type", "ByteLevel"), ("add_prefix_space", true),
                                                     ("trim_offsets", false), ("use_regex", true)]))
        let bos: String? = addBOS == true ? token(.bos) : nil
        let eos: String? = addEOS == true ? token(.eos) : nil
        if addBOS == true && bos == nil {
            throw .invalidMetadata("add_bos_token is true but there is no bos_token_id")
        }
        if addEOS == true && eos == nil {
            throw .invalidMetadata("add_eos_token is true but there is no eos_token_id")
        }
        let bothKeys = addBOS != nil && addEOS != nil
        guard bos != nil || eos != nil else { return bothKeys ? byteLevel : .null }
        func special(_ content: String, _ typeID: Int64) -> JSONValue {
            .object(JSONObject([("SpecialToken", .object(JSONObject([("id", .string(content)), ("type_id", .int(typeID))])))]))
        }
        func sequence(_ name: String, _ typeID: Int64) -> JSONValue {
            .object(JSONObject([("Sequence", .object(JSONObject([("id", .string(name)), ("type_id", .int(typeID))])))]))
        }
        var single: [JSONValue] = []
        var pair: [JSONValue] = []
        if let bos { single.append(special(bos, 0)); pair.append(special(bos, 0)) }
        single.append(sequence("A", 0)); pair.append(sequence("A", 0))
        if let eos { single.append(special(eos, 0)); pair.append(special(eos, 0)) }
        if let bos { pair.append(special(bos, 1)) }
        pair.append(sequence("B", 1))
        if let eos { pair.append(special(eos, 1)) }
        var specials = JSONObject()
        for (content, kind) in [(bos, GGUFSpecialToken.bos), (eos, .eos)] {
            guard let content, let id = specialTokenIDs[kind] else { continue }
            specials[content] = .object(JSONObject([("id", .string(content)), ("ids", [.int(Int64(id))]),
                                                    ("tokens", [.string(content)])]))
        }
        let template = JSONValue.object(JSONObject([("type", "TemplateProcessing"), ("single", .array(single)),
                                                    ("pair", .array(pair)), ("special_tokens", .object(specials))]))
        return bothKeys ? .object(JSONObject([("type", "Sequence"), ("processors", [byteLevel, template])])) : template
    }

    // MARK: Shared

    /// tokenizer_config.json's `added_tokens_decoder`: control tokens as special, user-defined ones as plain
    /// added tokens, keyed by id. User-defined tokens keep the GGUF text (spaces, not `▁`), which is the text
    /// llama.cpp matches them against.
    ///
    /// For SentencePiece only tokens that came from Hugging Face added tokens are listed: the converter gives
    /// those (and only those) the score -1000, and a SentencePiece control piece such as `<s>` listed here
    /// would come back from the converter with that score instead of its own.
    private func addedTokensDecoder() -> JSONObject {
        var decoder = JSONObject()
        for (id, type) in tokenTypes.enumerated() {
            let special = type == GGUFTokenType.control.rawValue
            guard special || type == GGUFTokenType.userDefined.rawValue else { continue }
            if model == "llama" && scores?[id].bitPattern != HFImport.addedTokenScore.bitPattern { continue }
            decoder[String(id)] = .object(Self.addedToken(id: id, content: tokens[id], special: special, includeID: false))
        }
        return decoder
    }

    private static func addedToken(id: Int, content: String, special: Bool, includeID: Bool) -> JSONObject {
        var token = JSONObject()
        if includeID { token["id"] = .int(Int64(id)) }
        token["content"] = .string(content)
        token["single_word"] = false
        token["lstrip"] = false
        token["rstrip"] = false
        token["normalized"] = false
        token["special"] = .bool(special)
        return token
    }

    private func specialTokensMap() -> JSONObject {
        var map = JSONObject()
        if let bos = token(.bos) { map["bos_token"] = .string(bos) }
        if let eos = token(.eos) { map["eos_token"] = .string(eos) }
        if let unk = token(.unknown) { map["unk_token"] = .string(unk) }
        if let pad = token(.padding) { map["pad_token"] = .string(pad) }
        return map
    }

    /// The chat template(s) as tokenizer_config.json holds them: a string, or a list of named templates with
    /// the main one named `default`.
    private func chatTemplateJSON() -> JSONValue? {
        guard !namedChatTemplates.isEmpty else { return chatTemplate.map(JSONValue.string) }
        var list: [JSONValue] = []
        if let chatTemplate {
            list.append(.object(JSONObject([("name", "default"), ("template", .string(chatTemplate))])))
        }
        for named in namedChatTemplates {
            list.append(.object(JSONObject([("name", .string(named.name)), ("template", .string(named.template))])))
        }
        return .array(list)
    }

    private static func jsonBytes(_ value: JSONValue) -> [UInt8] {
        Array((value.serialized(.python(indent: 2, sortKeys: false)) + "\n").utf8)
    }
}
