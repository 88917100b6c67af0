/// Python's `repr(float)` (and so `json.dumps` of a float), needed for the exact text of
/// bitsandbytes' `quant_state` JSON without pulling a JSON module into Quantize.
enum PythonFloat {
    /// `repr(value)` as CPython prints it: the shortest round-tripping digits (Swift's
    /// `description` produces the same digits), positional when the decimal exponent is in
    /// -4 ..< 16, otherwise `d.ddde±XX` with at least two exponent digits; `json.dumps` spells the
    /// non-finite values `NaN`, `Infinity`, `-Infinity`.
    static func repr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        let (negative, digits, exponent) = shortestDigits(value)
        let sign = negative ? "-" : ""
        // `exponent` is the power of ten of the first digit: value = d.ddd × 10^exponent.
        if exponent >= -4 && exponent < 16 {
            if exponent < 0 {
                return sign + "0." + String(repeating: "0", count: -exponent - 1) + digits
            }
            let integerCount = exponent + 1
            if digits.count <= integerCount {
                return sign + digits + String(repeating: "0", count: integerCount - digits.count) + ".0"
            }
            return sign + digits.prefix(integerCount) + "." + digits.dropFirst(integerCount)
        }
        let mantissa = digits.count == 1 ? digits : digits.prefix(1) + "." + digits.dropFirst()
        let magnitude = abs(exponent)
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") + String(magnitude)
    }

    /// Sign, significant digits without leading/trailing zeros, and the decimal exponent of the first digit,
    /// parsed from Swift's shortest round-trip `description` (either `123.45` or `1.2345e+20` form).
    private static func shortestDigits(_ value: Double) -> (negative: Bool, digits: String, exponent: Int) {
        var text = Substring(value.description)
        let negative = text.hasPrefix("-")
        if negative { text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = text[..<e]
        }
        let point = text.firstIndex(of: ".") ?? text.endIndex
        let integerPart = text[..<point]
        let fractionPart = point == text.endIndex ? "" : text[text.index(after: point)...]
        var digits = String(integerPart) + String(fractionPart)
        // Exponent of the first digit of `digits` before stripping leading zeros.
        var firstExponent = exponent + integerPart.count - 1
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            firstExponent -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        if digits == "0" { firstExponent = 0 }
        return (negative, digits, firstExponent)
    }
}
