import Formats

/// SentencePiece's `precompiled_charsmap`: a darts-clone double-array trie over UTF-8 byte strings whose values
/// are offsets of NUL-terminated replacement strings (how `nmt_nfkc` and friends ship NFKC tables).
///
/// Layout: a little-endian u32 byte size of the trie, the trie's 32-bit units, then the replacement strings.
/// Every index read is checked, so a damaged map fails to match instead of trapping.
struct PrecompiledCharsmap: Sendable {
    private let units: [UInt32]
    private let replacements: [UInt8]

    /// - Throws: ``TokenizerError/invalidSentencePieceModel(_:)`` when the sizes do not fit the blob.
    init(_ blob: [UInt8]) throws(TokenizerError) {
        guard blob.count >= 4 else { throw .invalidSentencePieceModel("precompiled_charsmap shorter than 4 bytes") }
        let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieSize % 4 == 0, trieSize <= blob.count - 4 else {
            throw .invalidSentencePieceModel("precompiled_charsmap trie size \(trieSize) does not fit \(blob.count) bytes")
        }
        var units: [UInt32] = []
        units.reserveCapacity(trieSize / 4)
        var p = 4
        while p < 4 + trieSize {
            units.append(UInt32(blob[p]) | UInt32(blob[p + 1]) << 8 | UInt32(blob[p + 2]) << 16 | UInt32(blob[p + 3]) << 24)
            p += 4
        }
        self.units = units
        self.replacements = Array(blob[(4 + trieSize)...])
    }

    /// The longest key that prefixes `input[start...]`: its length and replacement, or nil.
    func longestMatch(_ input: [UInt8], at start: Int) -> (length: Int, replacement: ArraySlice<UInt8>)? {
        guard !units.isEmpty else { return nil }
        // darts-clone unit fields: offset = (u >> 10) << ((u & 0x200) >> 6); label = u & 0x800000FF;
        // has_leaf = (u >> 8) & 1; value = u & 0x7FFFFFFF.
        func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & 0x200) >> 6)) }
        var node = offset(units[0])
        var best: (length: Int, value: Int)?
        var i = start
        while i < input.count {
            let c = Int(input[i])
            node ^= c
            guard node >= 0, node < units.count else { break }
            let unit = units[node]
            guard Int(unit & 0x8000_00FF) == c else { break }
            node ^= offset(unit)
            guard node >= 0, node < units.count else { break }
            if (unit >> 8) & 1 == 1 {
                best = (i - start + 1, Int(units[node] & 0x7FFF_FFFF))
            }
            i += 1
        }
        guard let best, best.value < replacements.count else { return nil }
        var end = best.value
        while end < replacements.count && replacements[end] != 0 { end += 1 }
        return (best.length, replacements[best.value ..< end])
    }
}

/// Longest-prefix matching of byte strings (SentencePiece's `PrefixMatcher` over user-defined symbols).
struct BytePrefixMatcher: Sendable {
    private let byFirst: [UInt8: [[UInt8]]]

    init(_ strings: [[UInt8]]) {
        var byFirst: [UInt8: [[UInt8]]] = [:]
        for s in Set(strings) where !s.isEmpty { byFirst[s[0], default: []].append(s) }
        for key in byFirst.keys { byFirst[key]?.sort { $0.count > $1.count } }
        self.byFirst = byFirst
    }

    /// Length of the longest string that prefixes `input[start...]`, or nil.
    func match(_ input: [UInt8], at start: Int) -> Int? {
        guard start < input.count, let candidates = byFirst[input[start]] else { return nil }
        for s in candidates where start + s.count <= input.count {
            var k = 1
            while k < s.count && input[start + k] == s[k] { k += 1 }
            if k == s.count { return s.count }
        }
        return nil
    }
}

/// Length of the UTF-8 sequence at `i` if it is well formed, else nil (a stray or truncated byte).
func utf8SequenceLength(_ b: [UInt8], at i: Int) -> Int? {
    let lead = b[i]
    let n: Int
    var low: UInt8 = 0x80, high: UInt8 = 0xBF  // allowed range of the second byte
    switch lead {
    case 0x00 ... 0x7F: return 1
    case 0xC2 ... 0xDF: n = 2
    case 0xE0: n = 3; low = 0xA0
    case 0xE1 ... 0xEC, 0xEE ... 0xEF: n = 3
    case 0xED: n = 3; high = 0x9F
    case 0xF0: n = 4; low = 0x90
    case 0xF1 ... 0xF3: n = 4
    case 0xF4: n = 4; high = 0x8F
    default: return nil
    }
    guard i + n <= b.count, b[i + 1] >= low, b[i + 1] <= high else { return nil }
    for k in 2 ..< n where b[i + k] < 0x80 || b[i + k] > 0xBF { return nil }
    return n
}

/// SentencePiece's `Normalizer::Normalize`: the precompiled map (longest match, user-defined symbols
/// untouched), leading/trailing/repeated space removal, the dummy-prefix `▁`, and spaces escaped as `▁`.
struct SentencePieceNormalizer: Sendable {
    var charsmap: PrecompiledCharsmap?
    var addDummyPrefix: Bool
    var removeExtraWhitespaces: Bool
    var escapeWhitespaces: Bool
    var userDefined: BytePrefixMatcher

    static let space: [UInt8] = Array("\u{2581}".utf8)

    /// The normalized form of `input` (one normalizer step: the replacement of the longest rule at the
    /// current position, a user-defined symbol as it is, or one UTF-8 character).
    func normalize(_ input: [UInt8]) -> [UInt8] {
        func prefix(_ i: Int) -> (piece: ArraySlice<UInt8>, consumed: Int) {
            if let n = userDefined.match(input, at: i) { return (input[i ..< i + n], n) }
            if let charsmap, let m = charsmap.longestMatch(input, at: i) { return (m.replacement, m.length) }
            if let n = utf8SequenceLength(input, at: i) { return (input[i ..< i + n], n) }
            return (ArraySlice([0xEF, 0xBF, 0xBD]), 1)  // U+FFFD for a malformed byte
        }
        var i = 0
        if removeExtraWhitespaces {
            while i < input.count {
                let p = prefix(i)
                guard p.piece.elementsEqual([0x20]) else { break }
                i += p.consumed
            }
        }
        guard i < input.count else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(input.count + 8)
        func appendSpace() {
            if escapeWhitespaces { out.append(contentsOf: Self.space) } else { out.append(0x20) }
        }
        if addDummyPrefix { appendSpace() }
        var previousIsSpace = removeExtraWhitespaces
        while i < input.count {
            let p = prefix(i)
            var piece = p.piece
            if previousIsSpace { while piece.first == 0x20 { piece = piece.dropFirst() } }
            if !piece.isEmpty {
                for b in piece {
                    if escapeWhitespaces && b == 0x20 { out.append(contentsOf: Self.space) } else { out.append(b) }
                }
                previousIsSpace = piece.last == 0x20
            }
            i += p.consumed
            if !removeExtraWhitespaces { previousIsSpace = false }
        }
        if removeExtraWhitespaces {
            let space = escapeWhitespaces ? Self.space : [0x20]
            while out.count >= space.count && out[(out.count - space.count)...].elementsEqual(space) {
                out.removeLast(space.count)
            }
        }
        return out
    }
}
