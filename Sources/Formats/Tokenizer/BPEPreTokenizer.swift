/// Naming a byte-level BPE pre-tokenizer the way llama.cpp does (`tokenizer.ggml.pre`), and rebuilding the
/// Hugging Face pre-tokenizer for a name.
///
/// llama.cpp's converter names the pre-tokenizer by hashing the token ids of a fixed text, which only works for
/// vocabularies it has seen. wconv instead recognises the pre-tokenizer *definition* in tokenizer.json; each
/// name below is one that llama.cpp (src/llama-vocab.cpp) maps to a split rule equal to the definition:
///
/// | name | tokenizer.json normalizer + pre_tokenizer | llama.cpp split |
/// |---|---|---|
/// | `llama-bpe` | none; Sequence[Split(Regex ``llama3Pattern``, Isolated), ByteLevel(add_prefix_space false, use_regex false)] | LLAMA3 |
/// | `qwen2` | none or NFC; Sequence[Split(Regex ``qwen2Pattern``, Isolated), ByteLevel(false, false)] | QWEN2 |
/// | `smollm` | none; Sequence[Digits(individual_digits true) or Split(Regex `\p{N}`, Isolated), ByteLevel(false, use_regex true)] | SMOLLM (`\p{N}`, then GPT-2's regex) |
/// | `gpt-2` | none; ByteLevel(add_prefix_space false, use_regex true) | GPT2 |
///
/// For GGUF → HF, ``reconstruct(_:)`` also accepts `phi-2` and `mpt` (GPT-2's split in llama.cpp) and `falcon`
/// (Falcon's tokenizer.json: Punctuation(Contiguous), ByteLevel(false, use_regex true), Digits(false),
/// Split(`[0-9][0-9][0-9]`, Isolated), which is llama.cpp's FALCON split: ASCII/Unicode punctuation runs, GPT-2's
/// regex, digit runs cut in threes).
///
/// `smollm` shares its split with `starcoder` and `refact`; for a LLaMA-architecture model SmolLM is the one
/// that occurs, and llama.cpp's `smollm` also turns off its space clean-up on decode. Anything else is an
/// error that tells the user to pass `--vocab-pre`.
public enum BPEPreTokenizer {
    /// The regex of Llama 3's tokenizer.json (`\p{N}{1,3}`: digits in groups of up to three).
    public static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// The regex of Qwen2's tokenizer.json (single digits).
    public static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Names ``recognise(_:)`` can return.
    public static let recognisedNames = ["llama-bpe", "smollm", "gpt-2", "qwen2"]

    /// Names ``reconstruct(_:)`` accepts: the recognised ones plus llama.cpp aliases with the same split.
    public static let reconstructibleNames = [
        "llama-bpe", "llama3", "llama-v3", "smollm", "starcoder", "refact", "gpt-2", "qwen2", "deepseek-r1-qwen",
        "phi-2", "mpt", "falcon",
    ]

    private enum Family {
        case llama3, qwen2, smollm, gpt2, falcon
    }

    private static func family(ofName name: String) -> Family? {
        switch name {
        case "llama-bpe", "llama3", "llama-v3": .llama3
        case "qwen2", "deepseek-r1-qwen": .qwen2
        case "smollm", "starcoder", "refact": .smollm
        case "gpt-2", "phi-2", "mpt": .gpt2
        case "falcon": .falcon
        default: nil
        }
    }

    /// The llama.cpp pre-tokenizer name for tokenizer.json's normalizer and pre-tokenizer, or nil when the
    /// definition is not one of the table's.
    public static func recognise(_ tokenizer: JSONValue) -> String? {
        let normalizer = tokenizer["normalizer"] ?? .null
        let normalizerIsNFC = normalizer["type"]?.stringValue == "NFC"
        guard normalizer == .null || normalizerIsNFC else { return nil }
        let steps = flatten(tokenizer["pre_tokenizer"] ?? .null)
        let result: String?
        switch steps.count {
        case 1:
            result = isByteLevel(steps[0], useRegex: true) ? "gpt-2" : nil
        case 2:
            let (first, second) = (steps[0], steps[1])
            if isIndividualDigits(first) || isSplit(first, pattern: #"\p{N}"#) {
                result = isByteLevel(second, useRegex: true) ? "smollm" : nil
            } else if isSplit(first, pattern: llama3Pattern) && isByteLevel(second, useRegex: false) {
                result = "llama-bpe"
            } else if isSplit(first, pattern: qwen2Pattern) && isByteLevel(second, useRegex: false) {
                result = "qwen2"
            } else {
                result = nil
            }
        default:
            result = nil
        }
        // Only Qwen2 normalizes to NFC; llama.cpp does not normalize at all.
        if normalizerIsNFC && result != "qwen2" { return nil }
        return result
    }

    /// A short description of tokenizer.json's normalizer and pre-tokenizer, for error messages.
    public static func summary(of tokenizer: JSONValue) -> String {
        func describe(_ step: JSONValue) -> String {
            let type = step["type"]?.stringValue ?? "?"
            switch type {
            case "ByteLevel":
                let aps = step["add_prefix_space"]?.boolValue ?? true
                let regex = step["use_regex"]?.boolValue ?? true
                return "ByteLevel(add_prefix_space: \(aps), use_regex: \(regex))"
            case "Split":
                var pattern = step["pattern"]?["Regex"]?.stringValue ?? step["pattern"]?["String"]?.stringValue ?? "?"
                if pattern.count > 60 { pattern = String(pattern.prefix(60)) + "…" }
                return "Split(\(pattern), \(step["behavior"]?.stringValue ?? "?"))"
            case "Digits":
                return "Digits(individual_digits: \(step["individual_digits"]?.boolValue ?? false))"
            default:
                return type
            }
        }
        let steps = flatten(tokenizer["pre_tokenizer"] ?? .null)
        let pre = steps.isEmpty ? "none" : steps.map(describe).joined(separator: ", ")
        let normalizer = tokenizer["normalizer"]?["type"]?.stringValue ?? "none"
        return "normalizer \(normalizer), pre_tokenizer [\(pre)]"
    }

    /// tokenizer.json's `normalizer` and `pre_tokenizer` for a llama.cpp pre-tokenizer name, and whether the
    /// BPE model ignores merges for whole-word vocabulary hits (Llama 3 does; llama.cpp sets the same).
    ///
    /// - Throws: ``TokenizerError/unsupportedPreTokenizerName(_:)`` for other names.
    public static func reconstruct(_ name: String) throws(TokenizerError)
        -> (normalizer: JSONValue, preTokenizer: JSONValue, ignoreMerges: Bool)
    {
        guard let family = family(ofName: name) else { throw .unsupportedPreTokenizerName(name) }
        func byteLevel(useRegex: Bool, trimOffsets: Bool = true) -> JSONValue {
            .object(JSONObject([("type", "ByteLevel"), ("add_prefix_space", false),
                                ("trim_offsets", .bool(trimOffsets)), ("use_regex", .bool(useRegex))]))
        }
        func split(_ pattern: String) -> JSONValue {
            .object(JSONObject([("type", "Split"), ("pattern", .object(JSONObject([("Regex", .string(pattern))]))),
                                ("behavior", "Isolated"), ("invert", false)]))
        }
        func sequence(_ steps: [JSONValue]) -> JSONValue {
            .object(JSONObject([("type", "Sequence"), ("pretokenizers", .array(steps))]))
        }
        switch family {
        case .llama3:
            return (.null, sequence([split(llama3Pattern), byteLevel(useRegex: false)]), true)
        case .qwen2:
            return (.object(JSONObject([("type", "NFC")])),
                    sequence([split(qwen2Pattern), byteLevel(useRegex: false, trimOffsets: false)]), false)
        case .smollm:
            let digits = JSONValue.object(JSONObject([("type", "Digits"), ("individual_digits", true)]))
            return (.null, sequence([digits, byteLevel(useRegex: true)]), false)
        case .gpt2:
            return (.null, byteLevel(useRegex: true), false)
        case .falcon:
            let punctuation = JSONValue.object(JSONObject([("type", "Punctuation"), ("behavior", "Contiguous")]))
            let digits = JSONValue.object(JSONObject([("type", "Digits"), ("individual_digits", false)]))
            return (.null, sequence([punctuation, byteLevel(useRegex: true), digits, split("[0-9][0-9][0-9]")]), false)
        }
    }

    // MARK: Matching

    private static func flatten(_ value: JSONValue) -> [JSONValue] {
        guard value != .null else { return [] }
        if value["type"]?.stringValue == "Sequence" {
            return (value["pretokenizers"]?.arrayValue ?? []).flatMap(flatten)
        }
        return [value]
    }

    /// ByteLevel without a prefix space, with or without its built-in GPT-2 regex. Missing members take the
    /// tokenizers library's defaults (add_prefix_space true, use_regex true).
    private static func isByteLevel(_ step: JSONValue, useRegex: Bool) -> Bool {
        step["type"]?.stringValue == "ByteLevel"
            && (step["add_prefix_space"]?.boolValue ?? true) == false
            && (step["use_regex"]?.boolValue ?? true) == useRegex
    }

    private static func isIndividualDigits(_ step: JSONValue) -> Bool {
        step["type"]?.stringValue == "Digits" && step["individual_digits"]?.boolValue == true
    }

    /// A regex Split that keeps each match as its own piece. The pattern is compared by code points.
    private static func isSplit(_ step: JSONValue, pattern: String) -> Bool {
        guard step["type"]?.stringValue == "Split",
              let actual = step["pattern"]?["Regex"]?.stringValue,
              step["behavior"]?.stringValue == "Isolated",
              (step["invert"]?.boolValue ?? false) == false
        else { return false }
        return actual.unicodeScalars.elementsEqual(pattern.unicodeScalars)
    }
}
