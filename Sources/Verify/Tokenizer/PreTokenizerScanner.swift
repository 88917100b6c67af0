/// The pre-tokenizers of byte-level BPE models, as hand-written scanners over Unicode scalars.
///
/// Each family is the `tokenizers` pipeline llama.cpp's `tokenizer.ggml.pre` name stands for (see
/// `BPEPreTokenizer` in Formats). The scanners implement the regexes' leftmost-first alternation with greedy
/// quantifiers and the backtracking the patterns need, without a regex engine: a regex over a 10k-token text
/// allocates a match object per piece and is an order of magnitude slower. `PreTokenizerRegex` in the tests
/// runs the same patterns through Swift `Regex` and checks both agree.
public enum PreTokenizerFamily: String, Sendable, CaseIterable {
    /// GPT-2's ByteLevel regex:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// SmolLM / StarCoder: `Digits(individual_digits)` (every `\p{N}` its own piece), then GPT-2's regex.
    case smollm
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|`
    /// `\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3
    /// Qwen2: Llama 3's regex with single digits (`\p{N}` instead of `\p{N}{1,3}`).
    case qwen2
    /// Falcon: `Punctuation` (contiguous runs of `[\p{P}$+<=>^`|~]` isolated), GPT-2's regex on the rest,
    /// `Digits` (runs of `\p{N}` isolated), then `[0-9][0-9][0-9]` isolated.
    case falcon

    /// The family of a `tokenizer.ggml.pre` name (llama.cpp's aliases included), or nil.
    public init?(preName: String) {
        switch preName {
        case "gpt-2", "phi-2", "mpt": self = .gpt2
        case "falcon": self = .falcon
        case "smollm", "starcoder", "refact": self = .smollm
        case "llama-bpe", "llama3", "llama-v3": self = .llama3
        case "qwen2", "deepseek-r1-qwen": self = .qwen2
        default: return nil
        }
    }

    /// The pieces of `text[range]`, as consecutive scalar ranges covering it.
    public func split(_ text: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        split(text, range) { pieces.append($0) }
        return pieces
    }

    /// Calls `body` with each piece of `text[range]` in order.
    func split(_ text: [Unicode.Scalar], _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        switch self {
        case .gpt2:
            Self.scanGPT2(text, range, body)
        case .smollm:
            // Digits first: each number character alone, the runs between them through the GPT-2 regex.
            var start = range.lowerBound
            for i in range where CharacterClass.isNumber(text[i]) {
                if start < i { Self.scanGPT2(text, start ..< i, body) }
                body(i ..< i + 1)
                start = i + 1
            }
            if start < range.upperBound { Self.scanGPT2(text, start ..< range.upperBound, body) }
        case .llama3:
            Self.scanLlama3(text, range, maxDigits: 3, body)
        case .qwen2:
            Self.scanLlama3(text, range, maxDigits: 1, body)
        case .falcon:
            Self.scanFalcon(text, range, body)
        }
    }

    // MARK: Scanners

    private typealias C = CharacterClass

    /// `[^\s\p{L}\p{N}]`.
    private static func isOther(_ s: Unicode.Scalar) -> Bool {
        !C.isWhitespace(s) && !C.isLetter(s) && !C.isNumber(s)
    }

    /// End of the run of scalars satisfying `test` starting at `i`.
    @inline(__always)
    private static func run(_ t: [Unicode.Scalar], from i: Int, to end: Int, _ test: (Unicode.Scalar) -> Bool) -> Int {
        var j = i
        while j < end && test(t[j]) { j += 1 }
        return j
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, or 0. With `ignoringCase`,
    /// letters match case-insensitively as Oniguruma's `(?i:...)` does (simple case folding: `ſ` is an `s`).
    private static func contraction(_ t: [Unicode.Scalar], _ i: Int, _ end: Int, ignoringCase: Bool) -> Int {
        guard t[i] == "'", i + 1 < end else { return 0 }
        func letter(_ k: Int) -> Unicode.Scalar? {
            guard k < end else { return nil }
            let s = t[k]
            guard ignoringCase else { return s }
            if s.value >= 0x41 && s.value <= 0x5A { return Unicode.Scalar(s.value | 0x20) }
            if s == "\u{17F}" { return "s" }  // LATIN SMALL LETTER LONG S folds to s
            return s
        }
        switch letter(i + 1) {
        case "s", "t", "m", "d": return 2
        case "r", "v": return letter(i + 2) == "e" ? 3 : 0
        case "l": return letter(i + 2) == "l" ? 3 : 0
        default: return 0
        }
    }

    /// End of `\s+(?!\S)|\s+` at `i`, where `t[i]` is whitespace: the whole run when it reaches the end of the
    /// range or is a single scalar, else the run less its last scalar (which then joins the next piece, as
    /// `(?!\S)` backtracks one step).
    private static func whitespace(_ t: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        let j = run(t, from: i, to: end, C.isWhitespace)
        if j == end || j - i == 1 { return j }
        return j - 1
    }

    private static func scanGPT2(_ t: [Unicode.Scalar], _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let s = t[i]
            var j: Int
            let c = contraction(t, i, end, ignoringCase: false)
            if c > 0 {
                j = i + c
            } else {
                // ` ?X+` for X in \p{L}, \p{N}, [^\s\p{L}\p{N}]: a space joins the run that follows it.
                let spaced = s == " " && i + 1 < end
                let first = spaced ? t[i + 1] : s
                let start = spaced ? i + 1 : i
                if C.isLetter(first) {
                    j = run(t, from: start, to: end, C.isLetter)
                } else if C.isNumber(first) {
                    j = run(t, from: start, to: end, C.isNumber)
                } else if isOther(first) {
                    j = run(t, from: start, to: end, isOther)
                } else if C.isLetter(s) {
                    j = run(t, from: i, to: end, C.isLetter)
                } else if C.isNumber(s) {
                    j = run(t, from: i, to: end, C.isNumber)
                } else if isOther(s) {
                    j = run(t, from: i, to: end, isOther)
                } else {
                    j = whitespace(t, i, end)
                }
            }
            body(i ..< j)
            i = j
        }
    }

    /// tokenizers' `Punctuation` test: ASCII punctuation (which includes the symbols `$+<=>^`|~`) or a
    /// Unicode punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    private static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 {
            return (0x21 ... 0x2F).contains(s.value) || (0x3A ... 0x40).contains(s.value)
                || (0x5B ... 0x60).contains(s.value) || (0x7B ... 0x7E).contains(s.value)
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    private static func isASCIIDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 0x30 && s.value <= 0x39 }

    /// Falcon's four-step pipeline. A punctuation run holds no whitespace, letter or number, so the later steps
    /// leave it whole; the rest goes through GPT-2's regex, and each of its pieces is cut at number runs and
    /// then at every leftmost group of three ASCII digits.
    private static func scanFalcon(_ t: [Unicode.Scalar], _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        func triples(_ r: Range<Int>) {
            var start = r.lowerBound
            var i = r.lowerBound
            while i + 3 <= r.upperBound {
                if isASCIIDigit(t[i]) && isASCIIDigit(t[i + 1]) && isASCIIDigit(t[i + 2]) {
                    if start < i { body(start ..< i) }
                    body(i ..< i + 3)
                    i += 3
                    start = i
                } else {
                    i += 1
                }
            }
            if start < r.upperBound { body(start ..< r.upperBound) }
        }
        func digits(_ r: Range<Int>) {
            var i = r.lowerBound
            while i < r.upperBound {
                let number = C.isNumber(t[i])
                let j = run(t, from: i, to: r.upperBound) { C.isNumber($0) == number }
                if number { triples(i ..< j) } else { body(i ..< j) }
                i = j
            }
        }
        var i = range.lowerBound
        while i < range.upperBound {
            let punctuation = isPunctuation(t[i])
            let j = run(t, from: i, to: range.upperBound) { isPunctuation($0) == punctuation }
            if punctuation { body(i ..< j) } else { scanGPT2(t, i ..< j, digits) }
            i = j
        }
    }

    private static func scanLlama3(_ t: [Unicode.Scalar], _ range: Range<Int>, maxDigits: Int,
                                   _ body: (Range<Int>) -> Void) {
        var i = range.lowerBound
        let end = range.upperBound
        func isLineBreak(_ s: Unicode.Scalar) -> Bool { s == "\n" || s == "\r" }
        while i < end {
            let s = t[i]
            var j: Int
            let c = contraction(t, i, end, ignoringCase: true)
            if c > 0 {
                j = i + c
            } else if C.isLetter(s) {
                // [^\r\n\p{L}\p{N}]?\p{L}+ with an empty prefix.
                j = run(t, from: i, to: end, C.isLetter)
            } else if !isLineBreak(s) && !C.isNumber(s) && i + 1 < end && C.isLetter(t[i + 1]) {
                // [^\r\n\p{L}\p{N}]?\p{L}+ with one prefix scalar (space, punctuation, ...).
                j = run(t, from: i + 1, to: end, C.isLetter)
            } else if C.isNumber(s) {
                j = min(run(t, from: i, to: end, C.isNumber), i + maxDigits)
            } else if isOther(s) || (s == " " && i + 1 < end && isOther(t[i + 1])) {
                //  ?[^\s\p{L}\p{N}]+[\r\n]*
                j = run(t, from: s == " " ? i + 1 : i, to: end, isOther)
                j = run(t, from: j, to: end, isLineBreak)
            } else {
                // s is whitespace. \s*[\r\n]+ : up to and including the last line break of the run.
                let runEnd = run(t, from: i, to: end, C.isWhitespace)
                var lastBreak = -1
                var k = runEnd - 1
                while k >= i {
                    if isLineBreak(t[k]) { lastBreak = k; break }
                    k -= 1
                }
                if lastBreak >= 0 {
                    j = lastBreak + 1
                } else {
                    j = whitespace(t, i, end)
                }
            }
            body(i ..< j)
            i = j
        }
    }
}
