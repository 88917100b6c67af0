// Small building blocks shared by the tokenizers: a binary heap and the Unicode character classes the
// pre-tokenizer regexes use.

/// A binary min-heap ordered by `isBefore` (the element that comes first is popped first).
struct BinaryHeap<Element> {
    private var storage: [Element] = []
    private let isBefore: (Element, Element) -> Bool

    init(isBefore: @escaping (Element, Element) -> Bool) {
        self.isBefore = isBefore
    }

    var isEmpty: Bool { storage.isEmpty }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard isBefore(storage[child], storage[parent]) else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let last = storage.popLast() else { return nil }
        guard !storage.isEmpty else { return last }
        let top = storage[0]
        storage[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var first = parent
            if left < storage.count && isBefore(storage[left], storage[first]) { first = left }
            if right < storage.count && isBefore(storage[right], storage[first]) { first = right }
            if first == parent { break }
            storage.swapAt(parent, first)
            parent = first
        }
        return top
    }
}

/// The character classes of the pre-tokenizer regexes, as the `tokenizers` library's regex engine (Oniguruma,
/// Unicode mode) and Rust's `char` methods define them.
enum CharacterClass {
    /// `\p{L}`: general category Lu, Ll, Lt, Lm or Lo.
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return (s.value | 0x20) >= 0x61 && (s.value | 0x20) <= 0x7A }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}` (and Rust's `char::is_numeric`): general category Nd, Nl or No.
    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return s.value >= 0x30 && s.value <= 0x39 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s` (and Rust's `char::is_whitespace`): the Unicode White_Space property.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s.value < 0x80 { return s.value == 0x20 || (s.value >= 0x09 && s.value <= 0x0D) }
        return s.properties.isWhitespace
    }

    /// Rust's `char::is_alphanumeric` or `_`: what the added-token `single_word` check calls a word character.
    static func isWordCharacter(_ s: Unicode.Scalar) -> Bool {
        s == "_" || isNumber(s) || s.properties.isAlphabetic
    }
}
