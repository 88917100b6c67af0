// Special tokens, add_* flags, merges and chat templates, decided as gguf-py's `SpecialVocab` decides them
// (gguf-py/gguf/vocab.py in the llama.cpp tree vendored by llama-cpp-python 0.3.36). The rules are odd in
// places (a dict-valued `bos_token` never equals a template's token; `cls`, `unk` add-flags have no GGUF key),
// and they are kept as they are because the output must match the converter's key for key.

/// Key/value pairs with Python dict semantics: setting an existing key keeps its position.
struct OrderedMetadata {
    private(set) var keys: [String] = []
    private var values: [String: TokenizerMetadataValue] = [:]

    mutating func set(_ key: String, _ value: TokenizerMetadataValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    mutating func remove(_ key: String) {
        if values.removeValue(forKey: key) != nil { keys.removeAll { $0 == key } }
    }

    func contains(_ key: String) -> Bool { values[key] != nil }

    var entries: [(key: String, value: TokenizerMetadataValue)] {
        keys.compactMap { key in values[key].map { (key, $0) } }
    }
}

/// A list of (key, value) pairs with dict semantics, for the ordered dicts inside SpecialVocab.
struct OrderedPairs<Value> {
    private(set) var pairs: [(key: String, value: Value)] = []

    subscript(key: String) -> Value? {
        get { pairs.first { $0.key == key }?.value }
        set {
            if let i = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue { pairs[i].value = newValue } else { pairs.remove(at: i) }
            } else if let newValue {
                pairs.append((key, newValue))
            }
        }
    }

    /// Python's `dict.setdefault`.
    mutating func setDefault(_ key: String, _ value: Value) {
        if self[key] == nil { self[key] = value }
    }
}

extension JSONValue {
    /// Python truthiness of the value `json.load` would give.
    var pythonTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s): !s.isEmpty
        case .array(let a): !a.isEmpty
        case .object(let o): o.count > 0
        }
    }

    /// The value if Python's `isinstance(v, int)` holds (bools count, as they do in Python).
    var pythonInt: Int? {
        switch self {
        case .int(let i): Int(exactly: i)
        case .bool(let b): b ? 1 : 0
        default: nil
        }
    }
}

/// Python `a == b` where `a` is a token string and `b` any JSON value or None.
private func pyEquals(_ a: String?, _ b: JSONValue?) -> Bool {
    guard let a else { return b == nil || b == .null }
    return b?.stringValue == a
}

/// A chat template as SpecialVocab keeps it: one string, or a list of `{name, template}` objects.
enum ChatTemplateSource {
    case single(String)
    case list([JSONValue])
}

/// gguf-py's `SpecialVocab`, reading from already-parsed files.
struct SpecialVocabulary {
    var merges: [String] = []
    var addSpecialToken = OrderedPairs<Bool>()
    var specialTokenIDs = OrderedPairs<Int>()
    var chatTemplate: ChatTemplateSource?
    var normalizerLowercase: Bool?
    var normalizerStripAccents: Bool?
    var specialTokenTypes: [String]
    let nVocab: Int?
    let loadMerges: Bool

    static let defaultTypes = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]

    init(source: HFTokenizerSource, loadMerges: Bool, nVocab: Int?, types: [String] = defaultTypes)
        throws(TokenizerError)
    {
        self.loadMerges = loadMerges
        self.nVocab = nVocab
        self.specialTokenTypes = types
        try loadFromTokenizerJSON(source)
        try loadFromConfigJSON(source)
        if loadMerges && merges.isEmpty, let text = source.mergesTXT {
            merges = Self.parseMergesTXT(text)
        }
    }

    /// `_set_special_token`: the first id found for a type wins; ids past `nVocab` are skipped.
    mutating func setSpecialToken(_ type: String, _ value: JSONValue?) throws(TokenizerError) {
        guard let id = value?.pythonInt else { return }
        guard id >= 0 else { throw .malformedFile("tokenizer files", "invalid value for special token type \(type): \(id)") }
        if let nVocab, id >= nVocab { return }
        if specialTokenIDs[type] == nil { specialTokenIDs[type] = id }
    }

    private mutating func loadFromTokenizerJSON(_ source: HFTokenizerSource) throws(TokenizerError) {
        let file = "tokenizer.json"
        var addedTokens: [JSONValue] = []
        let tokenizer = source.tokenizerJSON
        if let tokenizer {
            if loadMerges, let list = tokenizer["model"]?["merges"] {
                merges = try Self.mergesFromTokenizerJSON(list)
            }
            if let normalizer = tokenizer["normalizer"], normalizer.pythonTruthy {
                parseNormalizer(normalizer)
            }
            if let list = tokenizer["added_tokens"] {
                guard let array = list.arrayValue else { throw .malformedFile(file, "added_tokens must be an array") }
                addedTokens = array
            }
        }
        // tokenizer_config.json, as a mutable copy: the post-processor rules below rewrite some of its entries.
        var config: JSONObject?
        if let value = source.tokenizerConfig {
            guard let object = value.objectValue else {
                throw .malformedFile("tokenizer_config.json", "the document must be an object")
            }
            config = object
        }
        // `tokenizer_config` is only "truthy" in the Python when it is a non-empty dict.
        let hasConfig = (config?.count ?? 0) > 0
        if let tokenizer {
            var specialBOS = config?["bos_token"]
            var specialCLS = config?["cls_token"]
            var specialEOS = config?["eos_token"]
            let specialSEP = config?["sep_token"]
            if !(specialBOS?.pythonTruthy ?? false), specialCLS?.pythonTruthy ?? false, hasConfig {
                config?["bos_token"] = specialCLS
                specialBOS = specialCLS
            }
            if !(specialEOS?.pythonTruthy ?? false), specialSEP?.pythonTruthy ?? false, hasConfig {
                config?["eos_token"] = specialSEP
                specialEOS = specialSEP
            }
            if let postProcessor = tokenizer["post_processor"], postProcessor.pythonTruthy {
                let processors = postProcessor["processors"]?.arrayValue ?? [postProcessor]
                var specialSEPMutable = specialSEP
                for processor in processors {
                    try applyPostProcessor(processor, config: &config, hasConfig: hasConfig,
                                           bos: &specialBOS, cls: &specialCLS, eos: &specialEOS,
                                           sep: &specialSEPMutable)
                }
            }
        }
        guard hasConfig, let config else { return }
        // Chat template: tokenizer_config.json's, else chat_template.jinja (with additional named templates),
        // else chat_template.json.
        var alternative: ChatTemplateSource?
        if let jinja = source.chatTemplateJinja {
            if source.additionalChatTemplates.isEmpty {
                alternative = .single(jinja)
            } else {
                var list: [JSONValue] = [.object(JSONObject([("name", "default"), ("template", .string(jinja))]))]
                for extra in source.additionalChatTemplates {
                    list.append(.object(JSONObject([("name", .string(extra.name)), ("template", .string(extra.template))])))
                }
                alternative = .list(list)
            }
        } else if let json = source.chatTemplateJSON {
            switch json["chat_template"] {
            case .string(let s)?: alternative = .single(s)
            case .array(let a)?: alternative = .list(a)
            default: alternative = nil
            }
        }
        if let value = config["chat_template"] {
            switch value {
            case .string(let s): chatTemplate = .single(s)
            case .array(let a): chatTemplate = .list(a)
            default: chatTemplate = nil  // None, or a bad type the converter ignores with a warning
            }
        } else {
            chatTemplate = alternative
        }
        for type in specialTokenTypes {
            if case .bool(let add)? = config["add_\(type)_token"] {
                // A value the post-processor already decided wins over tokenizer_config.json.
                addSpecialToken.setDefault(type, add)
            }
            let content: String
            switch config["\(type)_token"] {
            case .string(let s)?: content = s
            case .object(let o)?:
                guard case .string(let s)? = o["content"] else { continue }
                content = s
            default: continue
            }
            let match = addedTokens.first { $0["content"]?.stringValue == content }
            try setSpecialToken(type, match?["id"])
        }
    }

    private mutating func applyPostProcessor(
        _ processor: JSONValue, config: inout JSONObject?, hasConfig: Bool,
        bos specialBOS: inout JSONValue?, cls specialCLS: inout JSONValue?,
        eos specialEOS: inout JSONValue?, sep specialSEP: inout JSONValue?
    ) throws(TokenizerError) {
        switch processor["type"]?.stringValue {
        case "ByteLevel":
            addSpecialToken.setDefault("bos", false)
            addSpecialToken.setDefault("eos", false)
        case "RobertaProcessing":
            addSpecialToken["bos"] = true
            addSpecialToken["eos"] = true
            addSpecialToken["sep"] = true
            if !(specialCLS?.pythonTruthy ?? false), hasConfig {
                let cls = processor["cls"]?.arrayValue?.first ?? specialBOS ?? .null
                specialCLS = cls
                config?["cls_token"] = cls
            }
            if !(specialSEP?.pythonTruthy ?? false), hasConfig {
                let sep = processor["sep"]?.arrayValue?.first ?? specialEOS ?? .null
                specialSEP = sep
                config?["sep_token"] = sep
            }
        case "TemplateProcessing":
            // Crude, as in gguf-py: only the first and last item of the single-sequence template count.
            let single = processor["single"]?.arrayValue ?? []
            let pair = processor["pair"]?.arrayValue ?? []
            var specialFirst: String?
            var specialLast: String?
            if single.count > 1 {
                if let first = single[0]["SpecialToken"]?["id"]?.stringValue, !first.isEmpty {
                    specialFirst = first
                    if !hasConfig {
                        specialBOS = .string(first)
                    } else if !pyEquals(first, specialBOS) && !pyEquals(first, specialCLS) {
                        if !(specialBOS?.pythonTruthy ?? false) {
                            config?["bos_token"] = .string(first)
                            specialBOS = .string(first)
                        }
                        if !(specialCLS?.pythonTruthy ?? false) {
                            config?["cls_token"] = .string(first)
                            specialCLS = .string(first)
                        }
                    }
                    addSpecialToken["bos"] = pyEquals(first, specialBOS) || pyEquals(first, specialCLS)
                }
                if let last = single[single.count - 1]["SpecialToken"]?["id"]?.stringValue, !last.isEmpty {
                    specialLast = last
                    if !hasConfig {
                        specialEOS = .string(last)
                    } else if !pyEquals(last, specialEOS) {
                        // The old EOS becomes the end-of-turn (or end-of-message) token.
                        if !specialTokenTypes.contains("eot") {
                            specialTokenTypes.append("eot")
                            config?["eot_token"] = specialEOS ?? .null
                        } else if !specialTokenTypes.contains("eom") {
                            specialTokenTypes.append("eom")
                            config?["eom_token"] = specialEOS ?? .null
                        }
                        config?["eos_token"] = .string(last)
                        specialEOS = .string(last)
                    }
                    addSpecialToken["eos"] = pyEquals(last, specialEOS)
                }
            }
            guard !pair.isEmpty else { return }
            let start = specialFirst != nil && pair[0]["SpecialToken"]?["id"]?.stringValue == specialFirst ? 1 : 0
            let dropLast = specialLast != nil && pair[pair.count - 1]["SpecialToken"]?["id"]?.stringValue == specialLast
            let end = dropLast ? pair.count - 1 : pair.count
            guard start < end else { return }
            let middle = Array(pair[start ..< end])
            let first = middle[0]["Sequence"]?["id"]?.stringValue
            let last = middle[middle.count - 1]["Sequence"]?["id"]?.stringValue
            // "A [sep] [eos] B": decide add_sep from the tokens between the two sequences.
            guard first == "A", last == "B", middle.count > 2 else { return }
            let between = Array(middle[1 ..< middle.count - 1])
            var addSEP = false
            if let entry = between[0]["SpecialToken"]?["id"]?.stringValue, !entry.isEmpty {
                if (pyEquals(entry, specialSEP) || pyEquals(entry, specialEOS)) && specialLast == nil {
                    addSEP = true
                }
            }
            if between.count == 2, let entry = between[1]["SpecialToken"]?["id"]?.stringValue, !entry.isEmpty {
                if pyEquals(entry, specialSEP) || pyEquals(entry, specialEOS) { addSEP = true }
            }
            addSpecialToken["sep"] = addSEP
            if addSEP, !(specialSEP?.pythonTruthy ?? false), hasConfig {
                config?["sep_token"] = specialEOS ?? .null
            }
        default:
            break
        }
    }

    private mutating func loadFromConfigJSON(_ source: HFTokenizerSource) throws(TokenizerError) {
        guard let config = source.config else { return }
        for type in specialTokenTypes {
            var value = config["\(type)_token_id"]
            if value == nil || value == .null, let text = config["text_config"] {
                value = text["\(type)_token_id"]
            }
            try setSpecialToken(type, value)
        }
    }

    /// `normalizer` of tokenizer.json: only lowercasing and accent stripping are recorded.
    private mutating func parseNormalizer(_ normalizer: JSONValue) {
        switch normalizer["type"]?.stringValue {
        case "Lowercase": normalizerLowercase = true
        case "StripAccents": normalizerStripAccents = true
        case "BertNormalizer":
            if let value = normalizer["lowercase"]?.boolValue { normalizerLowercase = value }
            if let value = normalizer["strip_accents"]?.boolValue { normalizerStripAccents = value }
        case "Sequence":
            for inner in normalizer["normalizers"]?.arrayValue ?? [] { parseNormalizer(inner) }
        default: break
        }
    }

    /// Merges from tokenizer.json: `"a b"` strings as they are, or `[a, b]` pairs (tokenizers ≥ 0.20) joined
    /// with a space after encoding any space inside a part as U+0120, as the converter does.
    static func mergesFromTokenizerJSON(_ value: JSONValue) throws(TokenizerError) -> [String] {
        let file = "tokenizer.json"
        // Like the converter, anything but a non-empty list means "no merges here".
        guard let list = value.arrayValue, let first = list.first else { return [] }
        if first.stringValue != nil {
            var out: [String] = []
            out.reserveCapacity(list.count)
            for (i, item) in list.enumerated() {
                guard let s = item.stringValue else { throw .malformedFile(file, "model.merges[\(i)] is not a string") }
                out.append(s)
            }
            return out
        }
        guard let pair = first.arrayValue, pair.count == 2, pair[0].stringValue != nil else {
            throw .malformedFile(file, "unknown tokenizer merges format")
        }
        var out: [String] = []
        out.reserveCapacity(list.count)
        for (i, item) in list.enumerated() {
            guard let parts = item.arrayValue, parts.count == 2, let left = parts[0].stringValue,
                  let right = parts[1].stringValue
            else { throw .malformedFile(file, "model.merges[\(i)] is not a pair of strings") }
            out.append(encodeSpaces(left) + " " + encodeSpaces(right))
        }
        return out
    }

    private static func encodeSpaces(_ part: String) -> String {
        guard part.contains(" ") else { return part }
        return String(String.UnicodeScalarView(part.unicodeScalars.map { $0 == " " ? "\u{0120}" : $0 }))
    }

    /// merges.txt: an optional `#` header line, then `left right` per line; malformed lines are skipped.
    static func parseMergesTXT(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if let first = lines.first, first.trimmingWhitespace().hasPrefix("#") { lines.removeFirst() }
        var out: [String] = []
        for line in lines {
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(whereSeparator: { $0.isWhitespace })
            guard parts.count == 2 else { continue }
            out.append("\(parts[0]) \(parts[1])")
        }
        return out
    }

    /// `SpecialVocab.add_to_gguf`: merges, special ids, add flags, chat templates, normalizer flags.
    func add(to metadata: inout OrderedMetadata) throws(TokenizerError) {
        if !merges.isEmpty { metadata.set(GGUFTokenizerKey.merges, .stringArray(merges)) }
        for (type, id) in specialTokenIDs.pairs {
            // Only kinds with a gguf-py writer method get a key (not `cls`, `prefix`, `suffix`, `middle`).
            guard let kind = GGUFSpecialToken(huggingFaceType: type) else { continue }
            guard let id32 = UInt32(exactly: id) else {
                throw .malformedFile("tokenizer files", "special token id \(id) for \(type) does not fit in 32 bits")
            }
            metadata.set(kind.idKey, .uint32(id32))
        }
        for (type, value) in addSpecialToken.pairs {
            guard let kind = GGUFSpecialToken(huggingFaceType: type), let key = kind.addKey else { continue }
            metadata.set(key, .bool(value))
        }
        if let chatTemplate { try Self.addChatTemplate(chatTemplate, to: &metadata) }
        if let normalizerLowercase { metadata.set(GGUFTokenizerKey.normalizerLowercase, .bool(normalizerLowercase)) }
        if let normalizerStripAccents {
            metadata.set(GGUFTokenizerKey.normalizerStripAccents, .bool(normalizerStripAccents))
        }
    }

    /// gguf-py `add_chat_template`: a list writes each named template under its own key (names reduced to
    /// ASCII letters, digits and `_`), then the list of names, then the `default` one as the main template.
    static func addChatTemplate(_ source: ChatTemplateSource, to metadata: inout OrderedMetadata)
        throws(TokenizerError)
    {
        switch source {
        case .single(let template):
            metadata.set(GGUFTokenizerKey.chatTemplate, .string(template))
        case .list(let choices):
            var defaultTemplate: String?
            var names: [String] = []
            for choice in choices {
                guard let object = choice.objectValue else {
                    throw .malformedFile("tokenizer_config.json", "chat_template list entries must be objects")
                }
                let rawName = object["name"]?.stringValue ?? ""
                // Per code point, as Python iterates a str.
                var name = ""
                for scalar in rawName.unicodeScalars {
                    let v = scalar.value
                    let keep = (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A)
                    name.unicodeScalars.append(keep ? scalar : "_")
                }
                guard !name.isEmpty, let templateValue = object["template"], templateValue != .null else { continue }
                guard let template = templateValue.stringValue else {
                    throw .malformedFile("tokenizer_config.json", "chat template \"\(rawName)\" is not a string")
                }
                if name == "default" {
                    defaultTemplate = template
                } else {
                    if !names.contains(name) { names.append(name) }
                    metadata.set(GGUFTokenizerKey.chatTemplate(named: name), .string(template))
                }
            }
            // gguf-py collects the names in a Python set, whose order is not defined; list order is used here.
            if !names.isEmpty { metadata.set(GGUFTokenizerKey.chatTemplates, .stringArray(names)) }
            if let defaultTemplate { metadata.set(GGUFTokenizerKey.chatTemplate, .string(defaultTemplate)) }
        }
    }
}

extension Substring {
    /// The text without leading and trailing whitespace (Python's `str.strip()` for the cases that matter).
    func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return s
    }
}
