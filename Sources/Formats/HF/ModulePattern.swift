/// Screens the regular expressions an adapter config gives for module names (PEFT's
/// `target_modules`, `rank_pattern`, `alpha_pattern`) before they are compiled.
///
/// Swift's `Regex` (like Python's `re`, which PEFT uses) matches by backtracking, so a pattern
/// with nested repetition such as `(.*)*` takes time exponential in the subject's length: a
/// config file of a few bytes could hang a merge (the peft-adapter-config fuzz target found
/// this). Real module patterns are names, alternations of names and a `.*` or two; what this
/// refuses is the shape that backtracks without bound:
///
/// - a group repeated without bound (`*`, `+`, `{n,}`) that itself contains an unbounded
///   repetition or an alternation (`(a*)*`, `(.*\.)+`, `(a|ab)*`);
/// - more than ``maximumRepetitions`` unbounded repetitions in one pattern (`.*.*.*.*x` is
///   polynomial of that degree);
/// - patterns longer than ``maximumLength``.
public enum ModulePattern {
    public static let maximumRepetitions = 4
    public static let maximumLength = 1024

    /// Why `pattern` could take too long to match, or nil when it cannot.
    public static func backtrackingRisk(_ pattern: String) -> String? {
        let chars = Array(pattern.unicodeScalars)
        if chars.count > maximumLength { return "longer than \(maximumLength) characters" }
        struct Frame { var repeats = false, alternates = false }
        var stack = [Frame()]
        var repetitions = 0
        // What the last atom was: nil (nothing to repeat), a plain atom, or a group with its contents.
        var lastGroup: Frame?
        var i = 0

        /// Reads a quantifier at `i`; returns whether it is unbounded and advances past it.
        func quantifier() -> Bool? {
            guard i < chars.count else { return nil }
            switch chars[i] {
            case "*", "+":
                i += 1
                return true
            case "?":
                i += 1
                return false
            case "{":
                var j = i + 1
                var text = ""
                while j < chars.count, chars[j] != "}" {
                    text.unicodeScalars.append(chars[j])
                    j += 1
                }
                guard j < chars.count else { return nil }
                let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                guard (1 ... 2).contains(parts.count), parts.allSatisfy({ $0.allSatisfy(\.isNumber) }), !parts[0].isEmpty else { return nil }
                i = j + 1
                return parts.count == 2 && parts[1].isEmpty
            default:
                return nil
            }
        }

        while i < chars.count {
            let c = chars[i]
            var atom = true
            lastGroup = nil
            switch c {
            case "\\":
                i += 2
            case "[":
                // A character class: one atom; `]` right after `[` or `[^` is literal.
                var j = i + 1
                if j < chars.count, chars[j] == "^" { j += 1 }
                if j < chars.count, chars[j] == "]" { j += 1 }
                while j < chars.count, chars[j] != "]" { j += chars[j] == "\\" ? 2 : 1 }
                i = j + 1
            case "(":
                stack.append(Frame())
                i += 1
                // (?:, (?=, (?!, (?<name> … : the `?` is syntax, not a quantifier.
                if i < chars.count, chars[i] == "?" {
                    i += 1
                    while i < chars.count, !":=!>)".unicodeScalars.contains(chars[i]) { i += 1 }
                    if i < chars.count, chars[i] != ")" { i += 1 }
                }
                atom = false
            case ")":
                if stack.count > 1 {
                    lastGroup = stack.removeLast()
                }
                i += 1
            case "|":
                stack[stack.count - 1].alternates = true
                i += 1
                atom = false
            default:
                i += 1
            }
            guard atom else { continue }
            let group = lastGroup
            if let unbounded = quantifier() {
                // A lazy or possessive suffix changes nothing here.
                if i < chars.count, chars[i] == "?" || chars[i] == "+" { i += 1 }
                if unbounded {
                    repetitions += 1
                    if let group, group.repeats || group.alternates {
                        return "a repeated group holds a repetition or alternation (matching could take exponential time)"
                    }
                    stack[stack.count - 1].repeats = true
                }
            }
            if let group, group.repeats { stack[stack.count - 1].repeats = true }
        }
        if repetitions > maximumRepetitions {
            return "more than \(maximumRepetitions) unbounded repetitions (matching could take too long)"
        }
        return nil
    }
}
