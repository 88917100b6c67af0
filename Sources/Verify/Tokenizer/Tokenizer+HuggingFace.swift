public import Formats
import TensorCore

extension Tokenizer {
    /// Reads the tokenizer files of a Hugging Face model directory (see ``init(huggingFace:options:)``).
    ///
    /// - Throws: ``PathError`` for an unreadable or malformed file, ``TokenizerError`` as the initializer does.
    /// A directory with neither tokenizer.json nor tokenizer.model but Qwen-7B's `qwen.tiktoken` gets
    /// ``init(qwenTiktokenDirectory:)``.
    public static func load(directory: String, options: HFVocabularyOptions = HFVocabularyOptions()) throws -> Tokenizer {
        if !FileSystem.exists(FileSystem.join(directory, "tokenizer.json")),
           !FileSystem.exists(FileSystem.join(directory, "tokenizer.model")),
           FileSystem.exists(FileSystem.join(directory, QwenTiktokenVocabulary.fileName)) {
            return try Tokenizer(qwenTiktokenDirectory: directory)
        }
        let source = try HFTokenizerSource.load(directory: directory)
        return try withPath(directory) { try Tokenizer(huggingFace: source, options: options) }
    }

    /// Qwen-7B's tokenizer (remote-code `QWenTokenizer` over `qwen.tiktoken`): tiktoken's ranks as byte-level
    /// BPE (a merge's priority is the rank of the merged bytes), after the regex split of tokenization_qwen.py,
    /// which is Qwen2's; `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` and `<|extra_N|>` are matched in the
    /// text (its `allowed_special="all"`); no BOS or EOS. The vocabulary is the one llama.cpp's converter
    /// writes (``QwenTiktokenVocabulary``), so the directory and its GGUF tokenize alike.
    ///
    /// - Throws: ``PathError`` for an unreadable or malformed config.json, tokenizer_config.json or
    ///   qwen.tiktoken; ``TokenizerError`` as ``init(vocabulary:)`` does.
    public init(qwenTiktokenDirectory directory: String) throws {
        let configPath = FileSystem.join(directory, "config.json")
        let config = try HFConfig(path: configPath)
        let vocabSize = try withPath(configPath) { try config.vocabSize }
        let tokenizerConfigPath = FileSystem.join(directory, "tokenizer_config.json")
        let tokenizerConfig = FileSystem.exists(tokenizerConfigPath) ? try HFConfig(path: tokenizerConfigPath).object : nil
        let vocabulary = try QwenTiktokenVocabulary.load(directory: directory, vocabSize: vocabSize, pre: "qwen2",
                                                         config: config.object, tokenizerConfig: tokenizerConfig)
        self = try withPath(directory) { try Tokenizer(vocabulary: vocabulary) }
    }

    /// A tokenizer for Hugging Face tokenizer files, following the library transformers would load them with.
    ///
    /// The vocabulary is the one llama.cpp's converter would write (``GGUFVocabulary/init(huggingFace:options:)``);
    /// on top of it:
    /// - with tokenizer.json: its `added_tokens` (with lstrip / rstrip / single_word), the special tokens of
    ///   its post-processor template (else the add_bos / add_eos flags), Qwen2's NFC normalizer, `ignore_merges`
    ///   and `unk_token`; for a SentencePiece model also the Metaspace `prepend_scheme` (or the legacy
    ///   `Prepend("▁")` normalizer), `byte_fallback`, `fuse_unk` and the decoder's leading-space strip;
    /// - with tokenizer.model alone: the `sentencepiece` library's pipeline, with the model's normalizer spec
    ///   (precompiled character map, `add_dummy_prefix`, `remove_extra_whitespaces`) and user-defined pieces.
    ///
    /// - Throws: ``TokenizerError``: what the vocabulary conversion throws, ``TokenizerError/unsupported(_:)``
    ///   for a tokenizer.json normalizer / pre-tokenizer / post-processor this pipeline does not implement or a
    ///   SentencePiece model that is not BPE, ``TokenizerError/malformedFile(_:_:)`` for ill-typed members.
    public init(huggingFace source: HFTokenizerSource, options: HFVocabularyOptions = HFVocabularyOptions())
        throws(TokenizerError)
    {
        let vocabulary = try GGUFVocabulary(huggingFace: source, options: options)
        let tokens = vocabulary.tokens
        let types = vocabulary.tokenTypes
        let control = Set(tokens.indices.filter { types[$0] == GGUFTokenType.control.rawValue })
        // By code points: Swift's String equality would also match a canonically equivalent token.
        func id(of token: String) -> Int? { tokens.firstIndex { $0.unicodeScalars.elementsEqual(token.unicodeScalars) } }

        guard let json = source.tokenizerJSON else {
            try self.init(sentencePieceSource: source, vocabulary: vocabulary, special: control)
            return
        }
        let file = "tokenizer.json"
        var added: [AddedToken] = []
        if let list = json["added_tokens"], list != .null {
            guard let array = list.arrayValue else { throw .malformedFile(file, "added_tokens must be an array") }
            for (i, entry) in array.enumerated() {
                guard let tokenID = entry["id"]?.intValue, let content = entry["content"]?.stringValue else {
                    throw .malformedFile(file, "added_tokens[\(i)] needs an id and a content string")
                }
                guard tokens.indices.contains(tokenID) else { continue }
                added.append(AddedToken(id: tokenID, content: content, lstrip: entry["lstrip"]?.boolValue ?? false,
                                        rstrip: entry["rstrip"]?.boolValue ?? false,
                                        singleWord: entry["single_word"]?.boolValue ?? false,
                                        special: entry["special"]?.boolValue ?? false))
            }
        }
        let template = try Self.template(json["post_processor"] ?? .null, id: id)
        let prefix = template?.prefix ?? (vocabulary.addBOS ?? false ? vocabulary.bosTokenID.map { [Int($0)] } ?? [] : [])
        let suffix = template?.suffix ?? (vocabulary.addEOS ?? false ? vocabulary.eosTokenID.map { [Int($0)] } ?? [] : [])
        let model = json["model"] ?? .null
        let unknownID = model["unk_token"]?.stringValue.flatMap(id(of:))

        if vocabulary.model == "gpt2" {
            guard let family = PreTokenizerFamily(preName: vocabulary.pre ?? "") else {
                throw .unsupported("byte-level BPE pre-tokenizer \"\(vocabulary.pre ?? "")\"")
            }
            let nfc = json["normalizer"]?["type"]?.stringValue == "NFC"
            try self.init(byteLevel: vocabulary, family: family, nfc: nfc,
                          ignoreMerges: model["ignore_merges"]?.boolValue ?? false,
                          added: added, unknownID: unknownID.map { Int32($0) }, special: control,
                          prefix: prefix, suffix: suffix)
            return
        }

        // A SentencePiece model with tokenizer.json: tokenizers' pipeline over the SentencePiece vocabulary.
        let prepend = try Self.prepend(normalizer: json["normalizer"] ?? .null, preTokenizer: json["pre_tokenizer"] ?? .null)
        let unknown: SentencePieceBPE.UnknownPolicy =
            unknownID == nil ? .dropped : (model["fuse_unk"]?.boolValue ?? false ? .fused : .each)
        let bpe = try SentencePieceBPE(tokens: tokens, scores: try Self.scores(vocabulary), types: types,
                                       unknownID: unknownID.map { Int32($0) } ?? vocabulary.unknownTokenID.map { Int32(clamping: $0) },
                                       byteFallback: model["byte_fallback"]?.boolValue ?? false)
        let merges = try Self.merges(model["merges"] ?? .null).map { pairs in
            RankedMerges(pairs) { token in
                let key = Array(token.utf8)
                return bpe.pieceIDs[key] ?? bpe.reservedIDs[key]
            }
        }
        let frontEnd = SentencePieceEngine.FrontEnd.huggingFace(AddedTokenMatcher(added), prepend: prepend,
                                                                unknown: unknown, merges: merges)
        let engine = SentencePieceEngine(bpe: bpe, frontEnd: frontEnd,
                                         stripFirstSpace: Self.decoderStripsFirstSpace(json["decoder"] ?? .null),
                                         unknownSurface: nil)
        self.init(vocabulary: vocabulary, engine: .sentencePiece(engine), added: added, special: control,
                  prefix: prefix, suffix: suffix)
    }

    /// The `sentencepiece` pipeline for a directory with tokenizer.model and no tokenizer.json.
    private init(sentencePieceSource source: HFTokenizerSource, vocabulary: GGUFVocabulary, special: Set<Int>)
        throws(TokenizerError)
    {
        guard let bytes = source.sentencePieceModel else { throw .missingFile("tokenizer.model") }
        let model = try SentencePieceModel(parsing: bytes)
        if let type = model.trainerSpec?.modelType, type != .bpe {
            throw .unsupported("SentencePiece model type \(type) (only BPE is implemented)")
        }
        let spec = model.normalizerSpec ?? SentencePieceModel.NormalizerSpec()
        let charsmap = spec.precompiledCharsmap.isEmpty ? nil : try PrecompiledCharsmap(spec.precompiledCharsmap)
        let userDefined = model.pieces.filter { $0.type == .userDefined }.map { Array($0.piece.utf8) }
        let normalizer = SentencePieceNormalizer(charsmap: charsmap, addDummyPrefix: spec.addDummyPrefix,
                                                 removeExtraWhitespaces: spec.removeExtraWhitespaces,
                                                 escapeWhitespaces: spec.escapeWhitespaces,
                                                 userDefined: BytePrefixMatcher(userDefined))
        // The vocabulary calls user-defined pieces NORMAL (as the converter does); both kinds can be merged into.
        let unknownID = model.pieces.firstIndex { $0.type == .unknown }.map { Int32($0) }
        let bpe = try SentencePieceBPE(tokens: vocabulary.tokens, scores: try Self.scores(vocabulary),
                                       types: vocabulary.tokenTypes, unknownID: unknownID,
                                       byteFallback: model.trainerSpec?.byteFallback)
        let surface = model.trainerSpec?.unkSurface ?? " \u{2047} "
        let engine = SentencePieceEngine(bpe: bpe, frontEnd: .sentencePiece(normalizer),
                                         stripFirstSpace: spec.addDummyPrefix || spec.removeExtraWhitespaces,
                                         unknownSurface: Array(surface.utf8))
        self.init(vocabulary: vocabulary, engine: .sentencePiece(engine), added: [], special: special,
                  prefix: vocabulary.addBOS ?? true ? vocabulary.bosTokenID.map { [Int($0)] } ?? [] : [],
                  suffix: vocabulary.addEOS ?? false ? vocabulary.eosTokenID.map { [Int($0)] } ?? [] : [])
    }

    /// The special-token ids a `TemplateProcessing` post-processor (alone or in a `Sequence`) puts before and
    /// after a single sequence; nil when there is no template.
    static func template(_ processor: JSONValue, id: (String) -> Int?) throws(TokenizerError) -> (prefix: [Int], suffix: [Int])? {
        let file = "tokenizer.json"
        let steps: [JSONValue]
        switch processor["type"]?.stringValue {
        case "TemplateProcessing": steps = [processor]
        case "Sequence": steps = (processor["processors"]?.arrayValue ?? []).filter { $0["type"]?.stringValue == "TemplateProcessing" }
        default: steps = []
        }
        guard let template = steps.last else { return nil }
        guard let single = template["single"]?.arrayValue else {
            throw .malformedFile(file, "post_processor template without a \"single\" list")
        }
        var prefix: [Int] = [], suffix: [Int] = []
        var seenSequence = false
        for piece in single {
            if piece["Sequence"] != nil {
                seenSequence = true
                continue
            }
            guard let name = piece["SpecialToken"]?["id"]?.stringValue else {
                throw .unsupported("post_processor template piece \(piece.serialized(.compact))")
            }
            // The template's special_tokens map names the ids; fall back to the vocabulary.
            let ids = template["special_tokens"]?[name]?["ids"]?.arrayValue?.compactMap(\.intValue) ?? id(name).map { [$0] }
            guard let ids else { throw .malformedFile(file, "post_processor special token \"\(name)\" is not in the vocabulary") }
            if seenSequence { suffix += ids } else { prefix += ids }
        }
        return (prefix, suffix)
    }

    /// tokenizer.json's `model.merges`: `"a b"` strings or `["a", "b"]` pairs; nil when absent or empty.
    static func merges(_ value: JSONValue) throws(TokenizerError) -> [(String, String)]? {
        guard value != .null else { return nil }
        guard let list = value.arrayValue else { throw .malformedFile("tokenizer.json", "model.merges must be an array") }
        guard !list.isEmpty else { return nil }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(list.count)
        for (i, entry) in list.enumerated() {
            if let s = entry.stringValue, let pair = RankedMerges.pairs([s]).first {
                pairs.append(pair)
            } else if let a = entry.arrayValue, a.count == 2, let l = a[0].stringValue, let r = a[1].stringValue {
                pairs.append((l, r))
            } else {
                throw .malformedFile("tokenizer.json", "model.merges[\(i)] is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        return pairs
    }

    /// Where a tokenizer.json SentencePiece pipeline puts the `▁` prefix.
    static func prepend(normalizer: JSONValue, preTokenizer: JSONValue) throws(TokenizerError) -> SentencePieceEngine.Prepend {
        func describe(_ v: JSONValue) -> String { String(v.serialized(.compact).prefix(200)) }
        // Legacy LLaMA: normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer.
        if normalizer != .null {
            let steps = normalizer["type"]?.stringValue == "Sequence" ? normalizer["normalizers"]?.arrayValue ?? [] : [normalizer]
            let isLegacy = steps.count == 2
                && steps[0]["type"]?.stringValue == "Prepend" && steps[0]["prepend"]?.stringValue == "\u{2581}"
                && steps[1]["type"]?.stringValue == "Replace" && steps[1]["pattern"]?["String"]?.stringValue == " "
                && steps[1]["content"]?.stringValue == "\u{2581}"
            guard isLegacy, preTokenizer == .null else {
                throw .unsupported("tokenizer.json SentencePiece normalizer \(describe(normalizer))")
            }
            return .everySegment
        }
        guard preTokenizer["type"]?.stringValue == "Metaspace",
              preTokenizer["replacement"]?.stringValue ?? "\u{2581}" == "\u{2581}",
              preTokenizer["split"]?.boolValue == false  // split: true would cut merges at every ▁
        else {
            throw .unsupported("tokenizer.json SentencePiece pre-tokenizer \(describe(preTokenizer))")
        }
        switch preTokenizer["prepend_scheme"]?.stringValue ?? "always" {
        case "always": return .always
        case "first": return .first
        case "never": return .never
        case let other: throw .unsupported("Metaspace prepend_scheme \"\(other)\"")
        }
    }

    /// Whether tokenizer.json's decoder drops the leading space: a `Strip` with `start` ≥ 1, or a `Metaspace`
    /// decoder whose prepend scheme adds one.
    static func decoderStripsFirstSpace(_ decoder: JSONValue) -> Bool {
        let steps = decoder["type"]?.stringValue == "Sequence" ? decoder["decoders"]?.arrayValue ?? [] : [decoder]
        return steps.contains { step in
            switch step["type"]?.stringValue {
            case "Strip": (step["start"]?.intValue ?? 0) >= 1 && step["content"]?.stringValue == " "
            case "Metaspace": (step["prepend_scheme"]?.stringValue ?? "always") != "never"
            default: false
            }
        }
    }
}
