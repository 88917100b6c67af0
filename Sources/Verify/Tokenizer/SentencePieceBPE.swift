import Formats

/// A SentencePiece BPE vocabulary and its merge loop (`bpe_model.cc` of sentencepiece): repeatedly merge the
/// adjacent pair whose concatenation is the vocabulary piece with the highest score (leftmost on ties), map
/// the final symbols to ids, and decompose unknown ones into `<0xXX>` byte pieces when the vocabulary has them.
struct SentencePieceBPE: Sendable {
    /// NORMAL, USER_DEFINED and UNUSED pieces: the ones merges can produce.
    let pieceIDs: [[UInt8]: Int32]
    /// CONTROL, UNKNOWN and BYTE pieces: found by exact lookup only.
    let reservedIDs: [[UInt8]: Int32]
    let scores: [Float]
    let types: [Int32]
    let unknownID: Int32
    /// The id of `<0xXX>` for each byte, or -1.
    let byteIDs: [Int32]
    /// Unknown pieces become byte pieces (sentencepiece's `byte_fallback`).
    let byteFallback: Bool

    typealias T = GGUFTokenType

    init(tokens: [String], scores: [Float], types: [Int32], unknownID: Int32?, byteFallback: Bool?) throws(TokenizerError) {
        guard scores.count == tokens.count, types.count == tokens.count else {
            throw .invalidMetadata("SentencePiece vocabulary: \(tokens.count) tokens, \(scores.count) scores, \(types.count) types")
        }
        var pieces: [[UInt8]: Int32] = [:]
        var reserved: [[UInt8]: Int32] = [:]
        var byteIDs = [Int32](repeating: -1, count: 256)
        var unknown = unknownID
        for (id, token) in tokens.enumerated() {
            let bytes = Array(token.utf8)
            switch types[id] {
            case T.normal.rawValue, T.userDefined.rawValue, T.unused.rawValue:
                if pieces[bytes] == nil { pieces[bytes] = Int32(id) }
            default:
                if reserved[bytes] == nil { reserved[bytes] = Int32(id) }
                if types[id] == T.unknown.rawValue && unknown == nil { unknown = Int32(id) }
                if types[id] == T.byte.rawValue, let b = Self.byteValue(token) { byteIDs[Int(b)] = Int32(id) }
            }
        }
        guard let unknown, unknown >= 0, Int(unknown) < tokens.count else {
            throw .invalidMetadata("SentencePiece vocabulary has no unknown token")
        }
        self.pieceIDs = pieces
        self.reservedIDs = reserved
        self.scores = scores
        self.types = types
        self.unknownID = unknown
        self.byteIDs = byteIDs
        self.byteFallback = byteFallback ?? byteIDs.contains { $0 >= 0 }
    }

    /// The byte of a `<0xXX>` piece.
    static func byteValue(_ piece: String) -> UInt8? {
        let s = Array(piece.utf8)
        guard s.count == 6, s[0] == 0x3C, s[1] == 0x30, s[2] == 0x78, s[5] == 0x3E else { return nil }
        return UInt8(String(decoding: s[3 ... 4], as: UTF8.self), radix: 16)
    }

    /// A symbol: a byte range of the normalized text. `frozen` symbols (user-defined pieces) never merge.
    struct Symbol {
        var start: Int
        var end: Int
        var prev: Int
        var next: Int
        var frozen: Bool
    }

    /// The final pieces of `text` after merging; `initial` gives the symbols to start from. `reverse` records,
    /// for every UNUSED piece a merge produced, the length of its left half (the last such merge wins, as in
    /// sentencepiece's `reverse_merge`).
    func merge(_ text: [UInt8], _ initial: [(start: Int, end: Int, frozen: Bool)],
               reverse: inout [[UInt8]: Int]) -> [Range<Int>] {
        var symbols: [Symbol] = initial.enumerated().map { i, s in
            Symbol(start: s.start, end: s.end, prev: i - 1, next: i + 1 < initial.count ? i + 1 : -1, frozen: s.frozen)
        }
        guard symbols.count > 1 else { return symbols.map { $0.start ..< $0.end } }
        struct Candidate {
            var score: Float
            var left: Int
            var right: Int
            var size: Int
        }
        // Highest score first, then the leftmost.
        var agenda = BinaryHeap<Candidate> { a, b in a.score > b.score || (a.score == b.score && a.left < b.left) }
        func consider(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0, !symbols[left].frozen, !symbols[right].frozen else { return }
            let range = symbols[left].start ..< symbols[right].end
            let piece = Array(text[range])
            guard let id = pieceIDs[piece] else { return }
            agenda.push(Candidate(score: scores[Int(id)], left: left, right: right, size: range.count))
            if types[Int(id)] == T.unused.rawValue { reverse[piece] = symbols[left].end - symbols[left].start }
        }
        for i in 1 ..< symbols.count { consider(i - 1, i) }
        while let top = agenda.pop() {
            let l = symbols[top.left], r = symbols[top.right]
            // Stale: one side was merged into something else since the candidate was pushed.
            guard l.start < l.end, r.start < r.end, l.next == top.right, (l.end - l.start) + (r.end - r.start) == top.size
            else { continue }
            symbols[top.left].end = r.end
            symbols[top.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = top.left }
            symbols[top.right].end = symbols[top.right].start  // empty: removed
            consider(symbols[top.left].prev, top.left)
            consider(top.left, symbols[top.left].next)
        }
        var out: [Range<Int>] = []
        var i = 0
        while i >= 0 {
            out.append(symbols[i].start ..< symbols[i].end)
            i = symbols[i].next
        }
        return out
    }

    /// The id of a piece as sentencepiece's `PieceToId` finds it: reserved pieces, then the others, else unknown.
    func id(of piece: ArraySlice<UInt8>) -> Int32 {
        let key = Array(piece)
        return reservedIDs[key] ?? pieceIDs[key] ?? unknownID
    }

    /// How ``emit(_:_:reverse:into:unknown:)`` writes a piece that is not in the vocabulary.
    enum UnknownPolicy {
        /// sentencepiece: the unknown id, one for a run of unknown pieces.
        case fused
        /// The unknown id for each piece.
        case each
        /// Nothing (a `tokenizers` BPE without `unk_token`).
        case dropped
    }

    /// Appends the ids of one merged piece: an UNUSED piece is split back into the halves it was merged
    /// from (sentencepiece's `resegment`); a piece not in the vocabulary becomes `<0xXX>` byte pieces with byte
    /// fallback, else follows `unknown`.
    func emit(_ text: [UInt8], _ range: Range<Int>, reverse: [[UInt8]: Int], into out: inout [Int],
              unknown: UnknownPolicy) {
        let id = id(of: text[range])
        if types[Int(id)] == T.unused.rawValue, let left = reverse[Array(text[range])], left > 0, left < range.count {
            let mid = range.lowerBound + left
            emit(text, range.lowerBound ..< mid, reverse: reverse, into: &out, unknown: unknown)
            emit(text, mid ..< range.upperBound, reverse: reverse, into: &out, unknown: unknown)
            return
        }
        if id == unknownID {
            if byteFallback {
                for b in text[range] {
                    let byteID = byteIDs[Int(b)]
                    if byteID >= 0 {
                        out.append(Int(byteID))
                    } else if unknown != .dropped {
                        out.append(Int(unknownID))
                    }
                }
                return
            }
            switch unknown {
            case .dropped: return
            case .fused: if out.last == Int(unknownID) { return }
            case .each: break
            }
        }
        out.append(Int(id))
    }
}

extension SentencePieceBPE {
    /// Appends the ids of one segment the way the `tokenizers` library's BPE model encodes a SentencePiece
    /// vocabulary converted to tokenizer.json: each character its piece; a character the vocabulary lacks
    /// becomes its `<0xXX>` pieces (when every byte has one and byte fallback is on), else the unknown id
    /// (`unknown`: one per character, one per run, or none); then ``RankedMerges`` by merge rank.
    func encodeRanked(_ bytes: [UInt8], merges: RankedMerges, unknown: UnknownPolicy, into out: inout [Int]) {
        var word: [Int32] = []
        var pendingUnknown = false
        var i = 0
        while i < bytes.count {
            let n = min(utf8SequenceLength(bytes, at: i) ?? 1, bytes.count - i)
            let character = Array(bytes[i ..< i + n])
            i += n
            if let id = pieceIDs[character] ?? reservedIDs[character] {
                if pendingUnknown {
                    word.append(unknownID)
                    pendingUnknown = false
                }
                word.append(id)
                continue
            }
            // tokenizers adds the byte pieces without first flushing a pending unknown; so does this.
            if byteFallback, character.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                for b in character { word.append(byteIDs[Int(b)]) }
                continue
            }
            switch unknown {
            case .dropped:
                break
            case .fused:
                pendingUnknown = true
            case .each:
                if pendingUnknown { word.append(unknownID) }
                pendingUnknown = true
            }
        }
        if pendingUnknown { word.append(unknownID) }
        for id in merges.mergeAll(word) { out.append(Int(id)) }
    }
}
