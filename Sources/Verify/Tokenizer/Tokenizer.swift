public import Formats
import Foundation  // NFC for Qwen2's normalizer

/// Text ⇄ token ids for LLaMA-family vocabularies, giving the ids of the reference libraries.
///
/// Two kinds of model, chosen by `tokenizer.ggml.model`:
/// - `"gpt2"`: byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2). Added tokens are split out of the text first
///   (leftmost, longest), the rest goes through Qwen2's NFC normalizer where it applies, the pre-tokenizer of
///   the `tokenizer.ggml.pre` name (``PreTokenizerFamily``), GPT-2's byte-to-unicode map and BPE merges by
///   rank. Matches the `tokenizers` library on the model's tokenizer.json.
/// - `"llama"`: SentencePiece BPE (LLaMA 1/2, Mistral, Yi). Matches the `sentencepiece` library: the
///   normalizer (dummy `▁` prefix, spaces as `▁`, and where the model has them the precompiled character map
///   and extra-whitespace removal), user-defined pieces kept whole, control pieces never matched in text,
///   merges by score, byte fallback or the unknown id for what the vocabulary lacks. When the model comes
///   with a tokenizer.json (``init(huggingFace:options:)``), that file's pipeline is followed instead, as
///   transformers does: its added tokens are split out first and its Metaspace / Prepend settings place the
///   `▁` prefix.
///
/// Built from a ``GGUFVocabulary``, so it works from a GGUF file (``init(vocabulary:)``) and from Hugging Face
/// files (``init(huggingFace:options:)``) alike; the Hugging Face route also honours what a GGUF vocabulary
/// cannot record (added tokens' lstrip / rstrip, the SentencePiece normalizer, the post-processor template).
public struct Tokenizer: Sendable {
    /// The vocabulary the tokenizer was built from.
    public let vocabulary: GGUFVocabulary
    /// Tokens matched verbatim in the text before the model runs (byte-level BPE and tokenizer.json
    /// SentencePiece pipelines; empty for the `sentencepiece` pipeline, which keeps user-defined pieces whole
    /// in its normalizer instead).
    public let addedTokens: [AddedToken]
    /// Ids put before / after the text's ids by `encode(_:addSpecialTokens: true)`.
    public let prefixTokens: [Int]
    public let suffixTokens: [Int]

    let engine: Engine
    /// What each id decodes to (byte-level: the bytes; SentencePiece: the piece's UTF-8).
    let tokenBytes: [[UInt8]]
    /// Ids of special (control) tokens, dropped by `decode(_:skipSpecialTokens: true)`.
    let specialIDs: Set<Int>

    enum Engine: Sendable {
        case byteLevel(ByteLevelEngine)
        case sentencePiece(SentencePieceEngine)
    }

    struct ByteLevelEngine: Sendable {
        var family: PreTokenizerFamily
        var nfc: Bool
        var bpe: ByteLevelBPE
        var matcher: AddedTokenMatcher
    }

    struct SentencePieceEngine: Sendable {
        var bpe: SentencePieceBPE
        var frontEnd: FrontEnd
        /// Decoding drops the `▁` (space) that starts the text.
        var stripFirstSpace: Bool
        /// What an unknown id decodes to (sentencepiece: `unk_surface`, " ⁇ "; tokenizers: the piece itself).
        var unknownSurface: [UInt8]?

        enum FrontEnd: Sendable {
            /// The `sentencepiece` library.
            case sentencePiece(SentencePieceNormalizer)
            /// A tokenizer.json pipeline: added tokens split first, then `▁` handling per segment, then the
            /// file's merges by rank (or, without merges, the pieces' scores).
            case huggingFace(AddedTokenMatcher, prepend: Prepend, unknown: SentencePieceBPE.UnknownPolicy,
                             merges: RankedMerges?)
        }

        enum Prepend: Sendable {
            /// Metaspace `always`: every segment not already starting with `▁`.
            case always
            /// Metaspace `first`: the segment at the start of the text, unless it starts with `▁`.
            case first
            case never
            /// The legacy normalizer `Prepend("▁")`: every non-empty segment, unconditionally.
            case everySegment
        }
    }

    /// Number of ids.
    public var count: Int { vocabulary.tokens.count }

    // MARK: Building

    /// A tokenizer for GGUF tokenizer metadata.
    ///
    /// Byte-level BPE: CONTROL and USER_DEFINED tokens are the added tokens (no lstrip / rstrip: GGUF does not
    /// record them); Qwen2's NFC normalization is applied (llama.cpp skips it, the Hugging Face tokenizer does
    /// not). SentencePiece: no normalization beyond the dummy prefix (`add_space_prefix`, default true) and
    /// `▁` for spaces (GGUF files do not carry a precompiled character map; real LLaMA / Mistral models have
    /// none); USER_DEFINED tokens are kept whole and CONTROL tokens are not matched in text, as in sentencepiece
    /// (llama.cpp's `parse_special` would match them). `add_bos_token` defaults to true for SentencePiece and
    /// false for BPE, `add_eos_token` to false.
    ///
    /// - Throws: ``TokenizerError/unsupported(_:)`` for another model or pre-tokenizer name,
    ///   ``TokenizerError/invalidMetadata(_:)`` for an inconsistent vocabulary.
    public init(vocabulary: GGUFVocabulary) throws(TokenizerError) {
        let types = vocabulary.tokenTypes
        guard types.count == vocabulary.tokens.count else {
            throw .invalidMetadata("\(vocabulary.tokens.count) tokens but \(types.count) token types")
        }
        func isType(_ id: Int, _ type: GGUFTokenType) -> Bool { types[id] == type.rawValue }
        let special = Set(vocabulary.tokens.indices.filter { isType($0, .control) })
        switch vocabulary.model {
        case "gpt2":
            let added = vocabulary.tokens.indices.filter { isType($0, .control) || isType($0, .userDefined) }
                .map { AddedToken(id: $0, content: vocabulary.tokens[$0], special: isType($0, .control)) }
            let pre = vocabulary.pre ?? "gpt-2"
            guard let family = PreTokenizerFamily(preName: pre) else {
                throw .unsupported("byte-level BPE pre-tokenizer \"\(pre)\" (supported: \(BPEPreTokenizer.reconstructibleNames.joined(separator: ", ")))")
            }
            try self.init(byteLevel: vocabulary, family: family, nfc: family == .qwen2, ignoreMerges: family == .llama3,
                          added: added, unknownID: nil, special: special,
                          prefix: vocabulary.addBOS ?? false ? vocabulary.bosTokenID.map { [Int($0)] } ?? [] : [],
                          suffix: vocabulary.addEOS ?? false ? vocabulary.eosTokenID.map { [Int($0)] } ?? [] : [])
        case "llama":
            let userDefined = vocabulary.tokens.indices.filter { isType($0, .userDefined) }.map { Array(vocabulary.tokens[$0].utf8) }
            let normalizer = SentencePieceNormalizer(charsmap: nil, addDummyPrefix: vocabulary.addSpacePrefix ?? true,
                                                     removeExtraWhitespaces: false, escapeWhitespaces: true,
                                                     userDefined: BytePrefixMatcher(userDefined))
            let bpe = try SentencePieceBPE(tokens: vocabulary.tokens, scores: try Self.scores(vocabulary), types: types,
                                           unknownID: vocabulary.unknownTokenID.map { Int32(clamping: $0) }, byteFallback: nil)
            let engine = SentencePieceEngine(bpe: bpe, frontEnd: .sentencePiece(normalizer),
                                             stripFirstSpace: normalizer.addDummyPrefix, unknownSurface: Array(" \u{2047} ".utf8))
            self.init(vocabulary: vocabulary, engine: .sentencePiece(engine), added: [], special: special,
                      prefix: vocabulary.addBOS ?? true ? vocabulary.bosTokenID.map { [Int($0)] } ?? [] : [],
                      suffix: vocabulary.addEOS ?? false ? vocabulary.eosTokenID.map { [Int($0)] } ?? [] : [])
        default:
            throw .unsupported("tokenizer model \"\(vocabulary.model)\" (supported: gpt2, llama)")
        }
    }

    /// A tokenizer for the `tokenizer.*` keys of a GGUF file.
    public init(gguf metadata: GGUFMetadata) throws(TokenizerError) {
        var pairs: [(key: String, value: TokenizerMetadataValue)] = []
        for entry in metadata.entries where entry.key.hasPrefix("tokenizer.") {
            let value: TokenizerMetadataValue?
            switch entry.value {
            case .string(let s): value = .string(s)
            case .bool(let b): value = .bool(b)
            case .uint32(let u): value = .uint32(u)
            case .array(let a):
                switch a {
                case .string(let list): value = .stringArray(Array(list))
                case .float32(let f): value = .float32Array(f)
                case .int32(let i): value = .int32Array(i)
                default: value = a.integers.map { .int32Array($0.map { Int32(truncatingIfNeeded: $0) }) }
                }
            default: value = entry.value.intValue.map { .integer(Int64($0)) }
            }
            if let value { pairs.append((entry.key, value)) }
        }
        try self.init(vocabulary: try GGUFVocabulary(metadata: pairs))
    }

    static func scores(_ vocabulary: GGUFVocabulary) throws(TokenizerError) -> [Float] {
        guard let scores = vocabulary.scores else { throw .invalidMetadata("SentencePiece vocabulary without scores") }
        return scores
    }

    init(byteLevel vocabulary: GGUFVocabulary, family: PreTokenizerFamily, nfc: Bool, ignoreMerges: Bool,
         added: [AddedToken], unknownID: Int32?, special: Set<Int>, prefix: [Int], suffix: [Int]) throws(TokenizerError) {
        let addedIDs = Set(added.map(\.id))
        let bpe = ByteLevelBPE(tokens: vocabulary.tokens, isModelToken: { !addedIDs.contains($0) },
                               merges: vocabulary.merges ?? [], ignoreMerges: ignoreMerges, unknownID: unknownID)
        let engine = ByteLevelEngine(family: family, nfc: nfc, bpe: bpe, matcher: AddedTokenMatcher(added))
        self.init(vocabulary: vocabulary, engine: .byteLevel(engine), added: added, special: special,
                  prefix: prefix, suffix: suffix)
    }

    init(vocabulary: GGUFVocabulary, engine: Engine, added: [AddedToken], special: Set<Int>, prefix: [Int], suffix: [Int]) {
        self.vocabulary = vocabulary
        self.engine = engine
        self.addedTokens = added
        self.prefixTokens = prefix.filter { vocabulary.tokens.indices.contains($0) }
        self.suffixTokens = suffix.filter { vocabulary.tokens.indices.contains($0) }
        var contents: [Int: String] = [:]
        for token in added { contents[token.id] = token.content }
        var special = special
        for token in added where token.special { special.insert(token.id) }
        self.specialIDs = special
        switch engine {
        case .byteLevel:
            // tokenizers' ByteLevel decoder: a token whose scalars are all in the byte map stands for those bytes;
            // any other token (an added token with a space, say) for its own UTF-8.
            tokenBytes = vocabulary.tokens.enumerated().map { id, token in
                let text = contents[id] ?? token
                return ByteLevelMap.bytes(of: text) ?? Array(text.utf8)
            }
        case .sentencePiece:
            tokenBytes = vocabulary.tokens.enumerated().map { id, token in Array((contents[id] ?? token).utf8) }
        }
    }

    // MARK: Encoding

    /// The ids of `text`; with `addSpecialTokens`, framed by ``prefixTokens`` and ``suffixTokens`` (BOS / EOS as
    /// the vocabulary or the post-processor template says).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var out: [Int] = addSpecialTokens ? prefixTokens : []
        switch engine {
        case .byteLevel(let e): encodeByteLevel(text, e, into: &out)
        case .sentencePiece(let e): encodeSentencePiece(text, e, into: &out)
        }
        if addSpecialTokens { out += suffixTokens }
        return out
    }

    private func encodeByteLevel(_ text: String, _ e: ByteLevelEngine, into out: inout [Int]) {
        let scalars = Array(text.unicodeScalars)
        var bytes: [UInt8] = []
        func encodePieces(_ t: [Unicode.Scalar], _ range: Range<Int>) {
            e.family.split(t, range) { piece in
                bytes.removeAll(keepingCapacity: true)
                for s in t[piece] { Self.appendUTF8(s, to: &bytes) }
                e.bpe.encode(bytes, into: &out)
            }
        }
        for segment in e.matcher.segments(scalars) {
            switch segment {
            case .token(let id):
                out.append(id)
            case .text(let range):
                if e.nfc {
                    let view = String.UnicodeScalarView(scalars[range])
                    let normalized = Array(String(view).precomposedStringWithCanonicalMapping.unicodeScalars)
                    encodePieces(normalized, 0 ..< normalized.count)
                } else {
                    encodePieces(scalars, range)
                }
            }
        }
    }

    private func encodeSentencePiece(_ text: String, _ e: SentencePieceEngine, into out: inout [Int]) {
        switch e.frontEnd {
        case .sentencePiece(let normalizer):
            let normalized = normalizer.normalize(Array(text.utf8))
            var initial: [(start: Int, end: Int, frozen: Bool)] = []
            var i = 0
            while i < normalized.count {
                if let n = normalizer.userDefined.match(normalized, at: i) {
                    initial.append((i, i + n, true))
                    i += n
                } else {
                    let n = min(utf8SequenceLength(normalized, at: i) ?? 1, normalized.count - i)
                    initial.append((i, i + n, false))
                    i += n
                }
            }
            var reverse: [[UInt8]: Int] = [:]
            for piece in e.bpe.merge(normalized, initial, reverse: &reverse) {
                e.bpe.emit(normalized, piece, reverse: reverse, into: &out, unknown: .fused)
            }
        case .huggingFace(let matcher, let prepend, let unknown, let merges):
            let scalars = Array(text.unicodeScalars)
            let mark = SentencePieceNormalizer.space
            for segment in matcher.segments(scalars) {
                switch segment {
                case .token(let id):
                    out.append(id)
                case .text(let range):
                    var bytes: [UInt8] = []
                    for s in scalars[range] {
                        if s == " " { bytes += mark } else { Self.appendUTF8(s, to: &bytes) }
                    }
                    let startsWithMark = bytes.starts(with: mark)
                    let addMark: Bool
                    switch prepend {
                    case .always: addMark = !startsWithMark
                    case .first: addMark = !startsWithMark && range.lowerBound == 0
                    case .never: addMark = false
                    case .everySegment: addMark = true
                    }
                    if addMark { bytes = mark + bytes }
                    if let merges {
                        e.bpe.encodeRanked(bytes, merges: merges, unknown: unknown, into: &out)
                        continue
                    }
                    var initial: [(start: Int, end: Int, frozen: Bool)] = []
                    var i = 0
                    while i < bytes.count {
                        let n = utf8SequenceLength(bytes, at: i) ?? 1
                        initial.append((i, i + n, false))
                        i += n
                    }
                    var reverse: [[UInt8]: Int] = [:]
                    for piece in e.bpe.merge(bytes, initial, reverse: &reverse) {
                        e.bpe.emit(bytes, piece, reverse: reverse, into: &out, unknown: unknown)
                    }
                }
            }
        }
    }

    @inline(__always)
    static func appendUTF8(_ s: Unicode.Scalar, to bytes: inout [UInt8]) {
        let v = s.value
        switch v {
        case 0 ..< 0x80:
            bytes.append(UInt8(v))
        case 0x80 ..< 0x800:
            bytes.append(UInt8(0xC0 | v >> 6))
            bytes.append(UInt8(0x80 | v & 0x3F))
        case 0x800 ..< 0x10000:
            bytes.append(UInt8(0xE0 | v >> 12))
            bytes.append(UInt8(0x80 | v >> 6 & 0x3F))
            bytes.append(UInt8(0x80 | v & 0x3F))
        default:
            bytes.append(UInt8(0xF0 | v >> 18))
            bytes.append(UInt8(0x80 | v >> 12 & 0x3F))
            bytes.append(UInt8(0x80 | v >> 6 & 0x3F))
            bytes.append(UInt8(0x80 | v & 0x3F))
        }
    }

    // MARK: Decoding

    /// The text of `ids`. Ids outside the vocabulary are skipped.
    ///
    /// Byte-level BPE: the bytes each token stands for, joined, then read as UTF-8 (a malformed sequence becomes
    /// U+FFFD), as tokenizers' ByteLevel decoder does. SentencePiece (`sentencepiece` pipeline): `▁` becomes a
    /// space, the space that starts the text is dropped when the normalizer adds a dummy prefix, runs of
    /// `<0xXX>` pieces are reassembled into UTF-8 (each malformed byte a U+FFFD), control tokens decode to
    /// nothing and the unknown token to " ⁇ ". tokenizer.json SentencePiece pipelines keep control tokens
    /// and the unknown token's own text, as tokenizers does.
    ///
    /// - Parameter skipSpecialTokens: drop control / special added tokens.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let valid = ids.filter { $0 >= 0 && $0 < tokenBytes.count && !(skipSpecialTokens && specialIDs.contains($0)) }
        switch engine {
        case .byteLevel:
            var bytes: [UInt8] = []
            for id in valid { bytes += tokenBytes[id] }
            return String(decoding: bytes, as: UTF8.self)
        case .sentencePiece(let e):
            return decodeSentencePiece(valid, e)
        }
    }

    private func decodeSentencePiece(_ ids: [Int], _ e: SentencePieceEngine) -> String {
        let types = vocabulary.tokenTypes
        let isSentencePiece: Bool
        if case .sentencePiece = e.frontEnd { isSentencePiece = true } else { isSentencePiece = false }
        var out: [UInt8] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if isSentencePiece {
                // sentencepiece: each malformed byte of a byte-piece run becomes one U+FFFD.
                var i = 0
                while i < pending.count {
                    if let n = utf8SequenceLength(pending, at: i) {
                        out += pending[i ..< i + n]
                        i += n
                    } else {
                        out += [0xEF, 0xBF, 0xBD]
                        i += 1
                    }
                }
            } else if String(validating: pending, as: UTF8.self) != nil {
                out += pending
            } else {
                // tokenizers' ByteFallback: a run that is not UTF-8 becomes one U+FFFD per byte token.
                for _ in pending { out += [0xEF, 0xBF, 0xBD] }
            }
            pending.removeAll()
        }
        let mark = SentencePieceNormalizer.space
        var atStart = true  // sentencepiece: only the first piece that is not a control piece loses its ▁
        for id in ids {
            let type = types[id]
            if type == GGUFTokenType.byte.rawValue, let b = SentencePieceBPE.byteValue(vocabulary.tokens[id]) {
                pending.append(b)
                continue
            }
            flush()
            if isSentencePiece {
                // The unknown id first: a converted vocabulary may type it CONTROL (a special added token).
                if id == Int(e.bpe.unknownID) || type == GGUFTokenType.unknown.rawValue, let surface = e.unknownSurface {
                    out += surface
                    continue
                }
                if type == GGUFTokenType.control.rawValue { continue }
            }
            var piece = tokenBytes[id][...]
            if isSentencePiece && atStart && e.stripFirstSpace && piece.starts(with: mark) {
                piece = piece.dropFirst(mark.count)
            }
            atStart = false
            var k = piece.startIndex
            while k < piece.endIndex {
                if piece[k...].starts(with: mark) {
                    out.append(0x20)
                    k += mark.count
                } else {
                    out.append(piece[k])
                    k += 1
                }
            }
        }
        flush()
        // tokenizers: the decoder's Strip (or Metaspace) drops one space at the start of the joined text.
        if !isSentencePiece && e.stripFirstSpace && out.first == 0x20 { out.removeFirst() }
        return String(decoding: out, as: UTF8.self)
    }
}
