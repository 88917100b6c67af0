/// GPT-2's reversible map between bytes and printable Unicode scalars (`bytes_to_unicode`): the printable
/// Latin-1 bytes `!`…`~`, `¡`…`¬`, `®`…`ÿ` stand for themselves, the other 68 bytes for U+0100 onwards in
/// byte order.
enum ByteLevelMap {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0 ..< 256 {
            let printable = (0x21 ... 0x7E).contains(b) || (0xA1 ... 0xAC).contains(b) || (0xAE ... 0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next) ?? "\0"
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The bytes a byte-level token string stands for, or nil when a scalar is outside the map (added tokens
    /// and other text stored verbatim).
    static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}

/// BPE merges by rank, as the `tokenizers` library's BPE model applies them: the pair with the lowest rank
/// first, the leftmost of equal ranks first.
struct RankedMerges: Sendable {
    struct Merge: Sendable {
        var rank: Int32
        var id: Int32
    }

    /// (left id << 32 | right id) → rank and merged id.
    let merges: [UInt64: Merge]

    /// - Parameters:
    ///   - pairs: (left, right) token strings in rank order; pairs naming a string `id` does not know, or
    ///     whose concatenation it does not know, are skipped, and so are repeats.
    init(_ pairs: [(String, String)], id: (String) -> Int32?) {
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(pairs.count)
        for (rank, (left, right)) in pairs.enumerated() {
            guard let a = id(left), let b = id(right), let ab = id(left + right) else { continue }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), id: ab) }
        }
        self.merges = merges
    }

    /// `"left right"` merge strings split at their first space (token strings of byte-level and SentencePiece
    /// vocabularies never contain a space: it is `Ġ` or `▁`).
    static func pairs(_ strings: [String]) -> [(String, String)] {
        strings.compactMap { merge in
            guard let space = merge.unicodeScalars.firstIndex(of: " ") else { return nil }
            return (String(merge.unicodeScalars[..<space]),
                    String(merge.unicodeScalars[merge.unicodeScalars.index(after: space)...]))
        }
    }

    /// Merges symbols by rank until no adjacent pair has a merge. Symbols live in a doubly linked list over
    /// the array; a heap keyed by (rank, position) finds the next merge, and stale entries (a side already
    /// merged away) are skipped when popped, so a word of n symbols costs O(n log n).
    func mergeAll(_ initial: [Int32]) -> [Int32] {
        let n = initial.count
        guard n > 1 else { return initial }
        var id = initial
        var prev = (0 ..< n).map { Int32($0) - 1 }
        var next = (0 ..< n).map { $0 + 1 < n ? Int32($0 + 1) : -1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = BinaryHeap<UInt64>(isBefore: <)  // rank << 32 | position: lowest rank, then leftmost
        func pair(_ left: Int) -> Merge? {
            let right = next[left]
            guard right >= 0 else { return nil }
            return merges[UInt64(UInt32(id[left])) << 32 | UInt64(UInt32(id[Int(right)]))]
        }
        func push(_ left: Int) {
            if let m = pair(left) { heap.push(UInt64(UInt32(m.rank)) << 32 | UInt64(left)) }
        }
        for i in 0 ..< n - 1 { push(i) }
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF)
            let rank = Int32(top >> 32)
            guard alive[pos], let m = pair(pos), m.rank == rank else { continue }
            let right = Int(next[pos])
            id[pos] = m.id
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[Int(next[right])] = Int32(pos) }
            if prev[pos] >= 0 { push(Int(prev[pos])) }
            push(pos)
        }
        var out: [Int32] = []
        var i: Int32 = 0
        while i >= 0 {
            out.append(id[Int(i)])
            i = next[Int(i)]
        }
        return out
    }
}

/// Byte-pair encoding over byte-level symbols: each UTF-8 byte of a piece starts as its byte-level token,
/// then ``RankedMerges`` merges them.
struct ByteLevelBPE: Sendable {
    /// Model tokens by the bytes they stand for (for `ignore_merges` whole-word hits).
    let tokenByBytes: [[UInt8]: Int32]
    /// Id of the one-byte token for each byte, or -1.
    let byteTokens: [Int32]
    let merges: RankedMerges
    /// Llama 3: a pre-tokenized piece that is a whole vocabulary token is taken as it is, without merging.
    let ignoreMerges: Bool
    /// Id for a byte without a token (never for a full byte-level vocabulary); such bytes are dropped when nil.
    let unknownID: Int32?

    /// - Parameters:
    ///   - tokens: the token strings by id.
    ///   - isModelToken: whether a token belongs to the BPE model (added tokens do not).
    ///   - merges: `"left right"` strings in rank order.
    init(tokens: [String], isModelToken: (Int) -> Bool, merges mergeList: [String], ignoreMerges: Bool,
         unknownID: Int32?) {
        // Keyed by String: byte-level token strings use precomposed scalars only (no combining marks are in the
        // byte map), so String's canonical-equivalence equality cannot merge two distinct tokens.
        var idOfString: [String: Int32] = [:]
        var byBytes: [[UInt8]: Int32] = [:]
        var byteTokens = [Int32](repeating: -1, count: 256)
        for (id, token) in tokens.enumerated() where isModelToken(id) {
            if idOfString[token] == nil { idOfString[token] = Int32(id) }
            guard let bytes = ByteLevelMap.bytes(of: token), byBytes[bytes] == nil else { continue }
            byBytes[bytes] = Int32(id)
            if bytes.count == 1 { byteTokens[Int(bytes[0])] = Int32(id) }
        }
        self.tokenByBytes = byBytes
        self.byteTokens = byteTokens
        self.merges = RankedMerges(RankedMerges.pairs(mergeList)) { idOfString[$0] }
        self.ignoreMerges = ignoreMerges
        self.unknownID = unknownID
    }

    /// Appends the ids of one pre-tokenized piece, given as its UTF-8 bytes.
    func encode(_ bytes: [UInt8], into out: inout [Int]) {
        guard !bytes.isEmpty else { return }
        if ignoreMerges, let id = tokenByBytes[bytes] {
            out.append(Int(id))
            return
        }
        var ids: [Int32] = []
        ids.reserveCapacity(bytes.count)
        for b in bytes {
            let id = byteTokens[Int(b)]
            if id >= 0 {
                ids.append(id)
            } else if let unknownID {
                ids.append(unknownID)
            }
        }
        for id in merges.mergeAll(ids) { out.append(Int(id)) }
    }
}
