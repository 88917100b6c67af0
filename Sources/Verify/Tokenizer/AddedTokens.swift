/// A token matched verbatim in the text before the model runs: a special or added token of a Hugging Face
/// tokenizer (`tokenizer.json`'s `added_tokens`), or a CONTROL / USER_DEFINED token of a GGUF vocabulary.
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    /// Whitespace before the token is swallowed by it.
    public var lstrip: Bool
    /// Whitespace after the token is swallowed by it.
    public var rstrip: Bool
    /// Only matched when not inside a word.
    public var singleWord: Bool
    /// A special token (control token); only decides ``Tokenizer/decode(_:skipSpecialTokens:)``.
    public var special: Bool

    public init(id: Int, content: String, lstrip: Bool = false, rstrip: Bool = false, singleWord: Bool = false,
                special: Bool = true) {
        self.id = id
        self.content = content
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.singleWord = singleWord
        self.special = special
    }
}

/// Splits text around added tokens as the `tokenizers` library's `AddedVocabulary` does: leftmost match, the
/// longest token at that position, then lstrip / rstrip / single_word as each token asks.
struct AddedTokenMatcher: Sendable {
    enum Segment: Equatable {
        case text(Range<Int>)
        case token(Int)
    }

    private let tokens: [(scalars: [Unicode.Scalar], token: AddedToken)]
    /// Indices into `tokens` by first scalar, longest first.
    private let byFirst: [Unicode.Scalar: [Int]]

    init(_ added: [AddedToken]) {
        var tokens: [(scalars: [Unicode.Scalar], token: AddedToken)] = []
        var seen = Set<[UInt8]>()  // by bytes: String equality is canonical equivalence
        for token in added where !token.content.isEmpty && seen.insert(Array(token.content.utf8)).inserted {
            tokens.append((Array(token.content.unicodeScalars), token))
        }
        var byFirst: [Unicode.Scalar: [Int]] = [:]
        for (i, t) in tokens.enumerated() { byFirst[t.scalars[0], default: []].append(i) }
        for key in byFirst.keys { byFirst[key]?.sort { tokens[$0].scalars.count > tokens[$1].scalars.count } }
        self.tokens = tokens
        self.byFirst = byFirst
    }

    var isEmpty: Bool { tokens.isEmpty }

    func segments(_ text: [Unicode.Scalar]) -> [Segment] {
        guard !tokens.isEmpty else { return text.isEmpty ? [] : [.text(0 ..< text.count)] }
        var out: [Segment] = []
        var textStart = 0  // start of the text not yet emitted
        var i = 0
        let n = text.count
        while i < n {
            guard let candidates = byFirst[text[i]],
                  let k = candidates.first(where: { matches(tokens[$0].scalars, text, at: i) })
            else {
                i += 1
                continue
            }
            let (scalars, token) = tokens[k]
            var start = i, stop = i + scalars.count
            if token.singleWord {
                let before = start == 0 || !CharacterClass.isWordCharacter(text[start - 1])
                let after = stop == n || !CharacterClass.isWordCharacter(text[stop])
                if !(before && after) {
                    i = stop
                    continue
                }
            }
            if token.lstrip {
                while start > textStart && CharacterClass.isWhitespace(text[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while stop < n && CharacterClass.isWhitespace(text[stop]) { stop += 1 }
            }
            if textStart < start { out.append(.text(textStart ..< start)) }
            out.append(.token(token.id))
            textStart = stop
            i = stop
        }
        if textStart < n { out.append(.text(textStart ..< n)) }
        return out
    }

    private func matches(_ token: [Unicode.Scalar], _ text: [Unicode.Scalar], at i: Int) -> Bool {
        guard i + token.count <= text.count else { return false }
        for k in 1 ..< token.count where text[i + k] != token[k] { return false }
        return true
    }
}
