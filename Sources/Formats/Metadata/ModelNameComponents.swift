/// The parts gguf-py reads out of a model id such as `mistralai/Mistral-7B-Instruct-v0.2`
/// (`Metadata.get_model_id_components`): organization "mistralai", full name
/// "Mistral-7B-Instruct-v0.2", basename "Mistral", size label "7B", finetune "Instruct",
/// version "v0.2".
///
/// The id is split on "-" and each part annotated: versions (`v0.2`, `3.1`, `iter2`), quantization
/// types (`Q4_K_M`, `bf16`, upper-cased), size labels (`7B`, `8x7B`, `bloom-7b1` → `7.1B`, `small`),
/// and the easy finetune words (chat, instruct, vision, lora). A size that is far from the real
/// parameter count is taken for a context length and becomes part of the finetune, lower-cased
/// (`Llama-3.1-8B-Instruct-128k`). Leading words and versions form the basename; unannotated parts
/// after it join the finetune. When no size, finetune or version is found the basename is dropped.
public struct ModelNameComponents: Sendable, Hashable {
    /// The name after the organization, unchanged (nil only for a nil id).
    public var fullName: String?
    public var organization: String?
    public var basename: String?
    public var finetune: String?
    public var version: String?
    public var sizeLabel: String?

    public init(fullName: String? = nil, organization: String? = nil, basename: String? = nil,
                finetune: String? = nil, version: String? = nil, sizeLabel: String? = nil) {
        self.fullName = fullName
        self.organization = organization
        self.basename = basename
        self.finetune = finetune
        self.version = version
        self.sizeLabel = sizeLabel
    }

    /// Parses a model id.
    ///
    /// - Parameters:
    ///   - modelID: `org/name`, a bare name (a directory name), or nil.
    ///   - totalParameters: the model's parameter count (negative for a LoRA adapter, 0 if unknown),
    ///     used to tell a size label from a context length.
    public init(modelID: String?, totalParameters: Int) {
        guard let modelID else { return }
        if modelID.unicodeScalars.contains(" ") {
            // a sentence rather than an id: only a name
            fullName = modelID
            return
        }
        var name = modelID
        if let slash = modelID.firstIndex(of: "/") {
            let org = String(modelID[..<slash])
            name = String(modelID[modelID.index(after: slash)...])
            // "./model" or "../model" is a path, not an organization
            organization = org.first == "." ? nil : org
        }
        fullName = name

        var parts = name.split(separator: "-").map { Array($0.unicodeScalars) }
        var roles = [Roles](repeating: [], count: parts.count)

        for i in parts.indices {
            let part = String(scalars: parts[i])
            if part.wholeMatch(of: NamePatterns.version) != nil {
                roles[i].insert(.version)
            } else if part.wholeMatch(of: NamePatterns.quantType) != nil {
                roles[i].insert(.type)
                parts[i] = PythonText.upper(part).scalarArray
            } else if i > 0, part.wholeMatch(of: NamePatterns.size) != nil {
                var size = parts[i].map { $0 == "_" ? "." : $0 }
                // bloom-7b1 notation: 7b1 → 7.1b
                if let last = size.last, PythonText.isDecimal(last), size.count >= 2 {
                    let beforeLast = size[size.count - 2]
                    size = Array(size.dropLast(2)) + [".", last, beforeLast]
                }
                if size.count > 1, PythonText.isDecimal(size[size.count - 2]), let last = size.last,
                   "kmbt".unicodeScalars.contains(last) {
                    size[size.count - 1] = Unicode.Scalar(UInt8(last.value) - 32)
                }
                if totalParameters != 0, let labelCount = Self.labelCount(size) {
                    // Far from the real count: likely a context length (LoRA adapters may hold only
                    // some layers, so for them only a much smaller label is rejected).
                    // (7 * total) // 8 without overflowing: 7 * (t / 8) + 7 * (t % 8) / 8
                    let t = totalParameters.magnitude
                    let isContextLength = totalParameters < 0
                        ? labelCount < Double(t / 8)
                        : abs(labelCount - Double(totalParameters)) > Double(7 * (t / 8) + 7 * (t % 8) / 8)
                    if isContextLength {
                        roles[i].insert(.finetune)
                        if let last = size.last {
                            size = size.dropLast() + String(last).lowercased().scalarArray
                        }
                    }
                }
                if roles[i].isEmpty { roles[i].insert(.sizeLabel) }
                parts[i] = size
            } else if i > 0, part.wholeMatch(of: NamePatterns.finetuneWord) != nil {
                if totalParameters < 0 && part.lowercased() == "lora" {
                    roles[i].insert(.type)  // redundant for an adapter
                } else {
                    roles[i].insert(.finetune)
                }
            }
        }

        // Word sizes ("small") give way when a numeric size is present.
        let hasNumericSize = parts.indices.contains { roles[$0].contains(.sizeLabel) && parts[$0].contains(where: PythonText.isDecimal) }
        if hasNumericSize {
            for i in parts.indices where roles[i].contains(.sizeLabel) && parts[i].allSatisfy(PythonText.isAlpha) {
                roles[i].remove(.sizeLabel)
            }
        }

        var atStart = true
        for i in parts.indices {
            let startsAlpha = parts[i].first.map(PythonText.isAlpha) ?? false
            if atStart && ((roles[i].isEmpty && startsAlpha) || roles[i].contains(.version)) {
                roles[i].insert(.basename)
            } else {
                atStart = false
                if roles[i].isEmpty { roles[i].insert(.finetune) }
            }
        }
        // A trailing version is not part of the basename.
        for i in parts.indices.reversed() {
            guard roles[i].contains(.basename) && roles[i] != .basename else { break }
            roles[i].remove(.basename)
        }

        func joined(_ include: (Roles) -> Bool, unique: Bool = false) -> String? {
            var seen: [String] = []
            for i in parts.indices where include(roles[i]) {
                let text = String(scalars: parts[i])
                if !unique || !seen.contains(text) { seen.append(text) }
            }
            return seen.isEmpty ? nil : seen.joined(separator: "-")
        }
        basename = joined { $0.contains(.basename) }
        sizeLabel = joined({ $0.contains(.sizeLabel) }, unique: true)
        finetune = joined { $0.contains(.finetune) }
        version = joined { $0.contains(.version) && !$0.contains(.basename) }
        if sizeLabel == nil && finetune == nil && version == nil { basename = nil }  // too ambiguous
    }

    /// `float(part[:-1]) * 1000 ** " KMBT".find(part[-1])`, nil where Python's float() fails.
    private static func labelCount(_ size: [Unicode.Scalar]) -> Double? {
        guard let unit = size.last else { return nil }
        var digits = ""
        for s in size.dropLast() {
            if s == "." {
                digits += "."
            } else if PythonText.isDecimal(s), let v = s.properties.numericValue {
                digits += String(Int(v))  // Python's float() reads any decimal digit
            } else {
                return nil
            }
        }
        guard digits.contains(where: \.isNumber), let number = pythonFloat(Substring(digits)) else { return nil }
        let exponent: Int
        switch unit {
        case " ": exponent = 0
        case "K": exponent = 1
        case "M": exponent = 2
        case "B": exponent = 3
        case "T": exponent = 4
        default: return number * 0.001  // str.find gives -1
        }
        var scale = 1.0
        for _ in 0..<exponent { scale *= 1000 }
        return number * scale
    }

    /// gguf-py's `Metadata.id_to_title`: "-" becomes a space and all-lowercase words are
    /// title-cased, except versions (`v1.2`) and words starting with a digit.
    public static func title(_ text: String) -> String {
        let words = PythonText.splitWhitespace(PythonText.strip(text).replacing("-", with: " "))
        return words.map { word in
            let first = word.unicodeScalars.first
            let keep = word.wholeMatch(of: NamePatterns.titleVersion) != nil || (first.map(PythonText.isDecimal) ?? false)
            return PythonText.isLower(word) && !keep ? PythonText.title(word) : word
        }.joined(separator: " ")
    }

    private struct Roles: OptionSet, Hashable {
        let rawValue: UInt8
        static let basename = Roles(rawValue: 1)
        static let sizeLabel = Roles(rawValue: 2)
        static let finetune = Roles(rawValue: 4)
        static let version = Roles(rawValue: 8)
        static let type = Roles(rawValue: 16)
    }
}

/// gguf-py's name patterns (full matches, case-insensitive, per code point as Python's `re`).
enum NamePatterns {
    nonisolated(unsafe) static let version =
        /(?:v|iter)?\d+(?:[.]\d+)*/.ignoresCase().matchingSemantics(.unicodeScalar)
    nonisolated(unsafe) static let quantType =
        /i?q\d(?:_\w)*|b?fp?(?:16|32)/.ignoresCase().matchingSemantics(.unicodeScalar)
    nonisolated(unsafe) static let size =
        /(?:(?:[A]|\d+[x])?\d+(?:[._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)/.ignoresCase().matchingSemantics(.unicodeScalar)
    nonisolated(unsafe) static let finetuneWord =
        /chat|instruct|vision|lora/.ignoresCase().matchingSemantics(.unicodeScalar)
    /// Case-sensitive, as in `id_to_title`.
    nonisolated(unsafe) static let titleVersion = /v\d+(?:\.\d+)*/.matchingSemantics(.unicodeScalar)
}
