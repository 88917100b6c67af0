public import TensorCore

/// A value from a model card's YAML front matter, typed the way PyYAML's `SafeLoader` types it
/// (YAML 1.1 implicit resolution: `yes`/`no`/`on`/`off` are booleans, `0x1F` and `1:30` are integers,
/// `1e3` without a dot is a string, and so on).
///
/// The distinction matters because llama.cpp's converter writes whatever type the card holds:
/// `tags: [2024, 7]` becomes an INT32 array and `version: 1.0` (a float) makes the converter fail.
public enum ModelCardValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    /// A date or date-time (PyYAML builds a `datetime`); kept as its source text.
    case timestamp(String)
    case sequence([ModelCardValue])
    /// Keys in first-seen order; a repeated key keeps its first position and takes the last value,
    /// as a Python dict does.
    case mapping([ModelCardEntry])

    /// Python truthiness: `None`, `False`, `0`, `0.0`, `""`, `[]` and `{}` are false.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .float(let d): d != 0
        case .string(let s): !s.isEmpty
        case .timestamp: true
        case .sequence(let items): !items.isEmpty
        case .mapping(let entries): !entries.isEmpty
        }
    }

    /// Member lookup for a string key in a mapping (nil for other values and absent keys).
    public subscript(key: String) -> ModelCardValue? {
        guard case .mapping(let entries) = self else { return nil }
        return entries.last(where: { $0.key == .string(key) })?.value
    }

    /// A short description for error messages, e.g. `float 1.0`.
    var summary: String {
        switch self {
        case .null: "null"
        case .bool(let b): "bool \(b)"
        case .int(let i): "int \(i)"
        case .float(let d): "float \(d)"
        case .string(let s): "string \"\(s)\""
        case .timestamp(let t): "timestamp \(t)"
        case .sequence: "list"
        case .mapping: "mapping"
        }
    }
}

/// One key/value pair of a ``ModelCardValue/mapping(_:)``.
public struct ModelCardEntry: Sendable, Hashable {
    public var key: ModelCardValue
    public var value: ModelCardValue
    public init(key: ModelCardValue, value: ModelCardValue) {
        self.key = key
        self.value = value
    }
}

/// Why a model card's front matter could not be read.
public enum ModelCardError: ClassifiedError, Hashable {
    /// README.md is not valid UTF-8 (Python's text-mode read fails the same way).
    case invalidUTF8
    /// The front matter is not valid YAML (PyYAML would raise too). Lines count from 1 after the opening `---`.
    case malformed(line: Int, String)
    /// Valid YAML that this reader does not implement (anchors, aliases, tags, complex keys).
    case unsupported(line: Int, String)

    public var kind: ErrorKind {
        switch self {
        case .invalidUTF8, .malformed: .malformedInput
        case .unsupported: .unsupported
        }
    }

    public var description: String {
        switch self {
        case .invalidUTF8: "model card is not valid UTF-8"
        case .malformed(let line, let what): "model card front matter, line \(line): \(what)"
        case .unsupported(let line, let what): "model card front matter, line \(line): \(what) is not supported"
        }
    }
}

/// The YAML front matter of a Hugging Face model card (README.md), as gguf-py's
/// `Metadata.load_model_card` reads it.
///
/// gguf-py takes the lines after a first line that is exactly `---` up to the next `---` line,
/// rewrites `- no` list items to `- "no"` (the "Norway problem") and tabs to two spaces, then
/// runs `yaml.safe_load`; anything that is not a mapping counts as an empty card. This type does
/// the same with a small YAML reader for the subset model cards use: block mappings and sequences,
/// flow `[a, b]` and `{k: v}`, plain/single/double-quoted scalars (folded over lines), block
/// scalars `|` and `>`, and comments.
public struct ModelCard: Sendable, Hashable {
    /// The top-level keys and values, in file order.
    public private(set) var entries: [ModelCardEntry]

    public init(entries: [ModelCardEntry] = []) {
        self.entries = entries
    }

    /// The top-level keys gguf-py's heuristics look at. Reading only these keeps a card usable when
    /// some other key (a `widget`, a `model-index`) holds YAML this reader does not implement.
    public static let metadataKeys: Set<String> = [
        "name", "author", "version", "organization", "description", "finetune", "basename", "size_label",
        "url", "doi", "uuid", "repo_url",
        "model_name", "model_author", "model_version", "model_organization", "model_description",
        "model_finetune", "model_basename", "model_size_label", "model_url", "model_doi", "model_uuid",
        "model_repo_url", "model_creator", "model_type",
        "base_model", "base_models", "base_model_sources", "datasets", "dataset", "dataset_sources",
        "license", "license_name", "license_link", "tags", "pipeline_tag", "languages", "language",
    ]

    /// The value for a top-level string key: nil when absent, `.null` when present but empty.
    public subscript(key: String) -> ModelCardValue? {
        entries.last(where: { $0.key == .string(key) })?.value
    }

    /// Reads the front matter of README.md text.
    ///
    /// - Parameters:
    ///   - readme: the raw bytes of README.md.
    ///   - keys: top-level keys to parse; others are skipped without being interpreted. nil parses all.
    /// - Returns: the card; empty when there is no front matter or it is not a mapping.
    /// - Throws: ``ModelCardError`` for invalid UTF-8, malformed or unsupported YAML in a parsed key.
    public static func parse(readme: [UInt8], keys: Set<String>? = ModelCard.metadataKeys) throws(ModelCardError) -> ModelCard {
        guard let text = String(validating: readme, as: UTF8.self) else { throw .invalidUTF8 }
        let lines = pythonTextLines(text)
        guard let first = lines.first, first == "---" else { return ModelCard() }
        var yamlLines: [String] = []
        for line in lines.dropFirst() {
            if line == "---" { break }
            yamlLines.append(line)
        }
        var yaml = yamlLines.joined(separator: "\n") + "\n"
        // gguf-py's two textual fixes, applied to the whole text exactly as it does.
        yaml = yaml.replacing("- no\n", with: "- \"no\"\n").replacing("\t", with: "  ")
        var reader = FrontMatterReader(yaml)
        return ModelCard(entries: try reader.readDocument(keys: keys) ?? [])
    }

    /// Reads `README.md` of a model directory; an absent file gives an empty card.
    /// - Throws: ``ModelCardError`` or an I/O error, wrapped in a ``PathError`` naming the file.
    public static func load(directory: String, keys: Set<String>? = ModelCard.metadataKeys) throws -> ModelCard {
        let path = FileSystem.join(directory, "README.md")
        guard FileSystem.exists(path), !FileSystem.isDirectory(path) else { return ModelCard() }
        return try withPath(path) { try parse(readme: try FileSystem.readFile(path), keys: keys) }
    }
}

/// Python's text-mode read (universal newlines) followed by `str.splitlines()`.
func pythonTextLines(_ text: String) -> [String] {
    var lines: [String] = []
    var current = String.UnicodeScalarView()
    var sawCR = false
    for scalar in text.unicodeScalars {
        if sawCR {
            sawCR = false
            if scalar == "\n" { continue }
        }
        switch scalar.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
            lines.append(String(current))
            current = String.UnicodeScalarView()
            sawCR = scalar == "\r"
        default:
            current.append(scalar)
        }
    }
    if !current.isEmpty { lines.append(String(current)) }
    return lines
}
