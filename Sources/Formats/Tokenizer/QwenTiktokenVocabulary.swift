import TensorCore

/// The GGUF vocabulary of a first-generation Qwen checkpoint (`qwen.tiktoken`, remote-code
/// `QWenTokenizer`), as llama.cpp's converter builds it (`_set_vocab_qwen`): the tiktoken ranks
/// become byte-level BPE tokens, the merges are recovered from the ranks, Qwen's special tokens
/// follow the ranks, and ids that are neither become `[PAD<id>]`.
public enum QwenTiktokenVocabulary {
    /// The file the remote-code tokenizer reads.
    public static let fileName = "qwen.tiktoken"

    /// Qwen's special tokens in id order, starting right after the ranks: `<|endoftext|>`,
    /// `<|im_start|>`, `<|im_end|>`, then `<|extra_0|>` … `<|extra_204|>` (tokenization_qwen.py).
    public static let specialTokens: [String] =
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + (0 ..< 205).map { "<|extra_\($0)|>" }

    /// Builds the vocabulary of the model directory `directory`.
    /// - Parameters:
    ///   - vocabSize: config.json `vocab_size` (the token list has exactly this many entries).
    ///   - config: config.json, for special token ids it states.
    ///   - tokenizerConfig: tokenizer_config.json if present, for `add_bos_token` / `add_eos_token` / `chat_template`.
    public static func load(
        directory: String, vocabSize: Int, pre: String?, config: JSONObject, tokenizerConfig: JSONObject?
    ) throws -> GGUFVocabulary {
        let path = FileSystem.join(directory, fileName)
        let file = try MappedFile(path: path)
        let ranks = try withPath(path) { try parseRanks(file.bytes) }
        return try withPath(path) {
            try vocabulary(ranks: ranks, vocabSize: vocabSize, pre: pre, config: config, tokenizerConfig: tokenizerConfig)
        }
    }

    /// `base64 rank` lines → (token bytes, rank), in file order.
    static func parseRanks(_ bytes: UnsafeRawBufferPointer) throws -> [([UInt8], Int)] {
        var out: [([UInt8], Int)] = []
        for (n, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).enumerated() {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count == 2, let token = base64Decode(Array(fields[0])),
                  let rank = Int(String(decoding: fields[1], as: UTF8.self)), rank >= 0 else {
                throw Failure(.malformedInput, "line \(n + 1) is not `<base64> <rank>`")
            }
            out.append((token, rank))
        }
        return out
    }

    static func vocabulary(
        ranks: [([UInt8], Int)], vocabSize: Int, pre: String?, config: JSONObject, tokenizerConfig: JSONObject?
    ) throws -> GGUFVocabulary {
        var rankOf: [[UInt8]: Int] = [:]
        for (token, rank) in ranks {
            guard rankOf.updateValue(rank, forKey: token) == nil else { throw Failure(.malformedInput, "a token is listed twice") }
        }
        var byID: [Int: (String, Int32)] = [:]
        var merges: [String] = []
        for (token, rank) in ranks {
            byID[rank] = (byteLevel(token), 1)  // NORMAL
            if token.count == 1 { continue }
            let parts = bpe(token, ranks: rankOf, maxRank: rank)
            guard parts.count == 2 else {
                throw Failure(.malformedInput, "rank \(rank): lower ranks do not merge the token into exactly two parts")
            }
            merges.append(byteLevel(parts[0]) + " " + byteLevel(parts[1]))
        }
        let firstSpecial = ranks.count
        for (i, special) in specialTokens.enumerated() { byID[firstSpecial + i] = (special, 3) }  // CONTROL
        guard vocabSize > 0, (ranks.map(\.1).max() ?? -1) < vocabSize else {
            throw Failure(.malformedInput, "vocab_size \(vocabSize) is smaller than the tiktoken ranks")
        }
        var tokens: [String] = [], types: [Int32] = []
        for id in 0 ..< vocabSize {
            if let (text, type) = byID[id] { tokens.append(text); types.append(type) } else { tokens.append("[PAD\(id)]"); types.append(5) }  // UNUSED
        }

        // gguf-py's SpecialVocab: ids config.json states; without any, bos and eos are
        // <|endoftext|>; unk is always <|endoftext|>.
        var special: [GGUFSpecialToken: UInt32] = [:]
        for (kind, key) in [(GGUFSpecialToken.bos, "bos_token_id"), (.eos, "eos_token_id"), (.unknown, "unk_token_id"),
                            (.separator, "sep_token_id"), (.padding, "pad_token_id")] {
            if let id = config[key]?.intValue, id >= 0, id < vocabSize { special[kind] = UInt32(id) }
        }
        let endOfText = UInt32(firstSpecial)
        if special.isEmpty {
            special[.bos] = endOfText
            special[.eos] = endOfText
        }
        special[.unknown] = endOfText
        var add: [GGUFSpecialToken: Bool] = [:]
        if let b = tokenizerConfig?["add_bos_token"]?.boolValue { add[.bos] = b }
        if let b = tokenizerConfig?["add_eos_token"]?.boolValue { add[.eos] = b }
        return GGUFVocabulary(model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types, merges: merges,
                              specialTokenIDs: special, addSpecialTokens: add,
                              chatTemplate: tokenizerConfig?["chat_template"]?.stringValue)
    }

    /// llama.cpp's `QwenModel.bpe`: merge the lowest-ranked adjacent pair until no pair ranked
    /// below `maxRank` remains.
    static func bpe(_ token: [UInt8], ranks: [[UInt8]: Int], maxRank: Int) -> [[UInt8]] {
        var parts = token.map { [$0] }
        while parts.count > 1 {
            var best: (index: Int, rank: Int)?
            for i in 0 ..< parts.count - 1 {
                if let r = ranks[parts[i] + parts[i + 1]], r < (best?.rank ?? Int.max) { best = (i, r) }
            }
            guard let best, best.rank < maxRank else { break }
            parts[best.index] += parts[best.index + 1]
            parts.remove(at: best.index + 1)
        }
        return parts
    }

    /// GPT-2's byte → character table (`bytes_to_unicode`): printable Latin-1 bytes stand for
    /// themselves, the others map to U+0100 upwards in byte order.
    static let byteCharacters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0 ..< 256 {
            let printable = (0x21 ... 0x7E).contains(b) || (0xA1 ... 0xAC).contains(b) || (0xAE ... 0xFF).contains(b)
            let scalar = printable ? UInt32(b) : { defer { next += 1 }; return next }()
            table[b] = Unicode.Scalar(scalar).map(Character.init) ?? " "
        }
        return table
    }()

    static func byteLevel(_ bytes: [UInt8]) -> String { String(bytes.map { byteCharacters[Int($0)] }) }

    /// Standard base64 (RFC 4648, with padding); nil for anything else.
    static func base64Decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt32? {
            switch c {
            case UInt8(ascii: "A") ... UInt8(ascii: "Z"): UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a") ... UInt8(ascii: "z"): UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): 62
            case UInt8(ascii: "/"): 63
            default: nil
            }
        }
        var out: [UInt8] = []
        var i = 0
        while i < text.count {
            let quad = text[i ..< i + 4]
            let padding = quad.reversed().prefix { $0 == UInt8(ascii: "=") }.count
            guard padding <= 2, i + 4 == text.count || padding == 0 else { return nil }
            var bits: UInt32 = 0
            for (j, c) in quad.enumerated() {
                if j >= 4 - padding { bits <<= 6; continue }
                guard let v = value(c) else { return nil }
                bits = bits << 6 | v
            }
            out.append(UInt8(bits >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(bits >> 8 & 0xFF)) }
            if padding < 1 { out.append(UInt8(bits & 0xFF)) }
            i += 4
        }
        return out
    }
}
