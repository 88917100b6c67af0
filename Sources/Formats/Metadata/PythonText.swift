/// The few Python `str` operations gguf-py's naming heuristics rely on, per code point and with
/// Python's Unicode rules, so names such as "ŝmall-modèl-7b" come out as the converter writes them.
enum PythonText {
    /// `str.isspace()` for one code point.
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            true
        default:
            false
        }
    }

    /// `str.isdecimal()` for one code point (general category Nd).
    static func isDecimal(_ s: Unicode.Scalar) -> Bool {
        s.properties.numericType == .decimal
    }

    /// `str.isalpha()` for one code point (general categories Lu, Ll, Lt, Lm, Lo).
    static func isAlpha(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    /// `str.islower()`: at least one cased character and no upper- or titlecase ones.
    static func isLower(_ text: String) -> Bool {
        var cased = false
        for s in text.unicodeScalars {
            if s.properties.isUppercase || s.properties.generalCategory == .titlecaseLetter { return false }
            if s.properties.isLowercase { cased = true }
        }
        return cased
    }

    /// `str.title()`: titlecase after an uncased character, lowercase after a cased one.
    static func title(_ text: String) -> String {
        var out = ""
        var previousIsCased = false
        for s in text.unicodeScalars {
            out += previousIsCased ? s.properties.lowercaseMapping : s.properties.titlecaseMapping
            previousIsCased = s.properties.isCased
        }
        return out
    }

    /// `str.strip()`.
    static func strip(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let start = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[start...last])
    }

    /// `str.split()` with no separator: runs of whitespace separate, empty pieces are dropped.
    static func splitWhitespace(_ text: String) -> [String] {
        text.unicodeScalars.split(whereSeparator: isSpace).map { String(String.UnicodeScalarView($0)) }
    }

    /// `str.upper()` / `str.lower()` use full case mappings, as Swift's do.
    static func upper(_ text: String) -> String { text.uppercased() }
}

extension String {
    /// The string as code points, the unit Python indexes by.
    var scalarArray: [Unicode.Scalar] { Array(unicodeScalars) }

    init(scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }
}
