import TensorCore

/// The authorship and sampling metadata (general.*) that llama.cpp's `convert_hf_to_gguf.py`
/// writes for a Hugging Face model directory, key for key and value for value.
///
/// It ports gguf-py's `Metadata.load` (model card heuristics, `config.json` `_name_or_path`,
/// directory-name heuristics, generation_config.json sampling values, the `--metadata` override
/// file and `--model-name`) as vendored by llama.cpp, and the converter's `prepare_metadata`
/// (directory-name fallback for the name; size label from the parameter count).
///
/// In the converter's output these entries come right after `general.architecture` and
/// `general.type` (`"model"`), and before the architecture keys, `general.file_type` and
/// `general.quantization_version`, which are not part of this type.
public struct ModelMetadata: Sendable, Hashable {
    /// The entries in the order `Metadata.set_gguf_meta_model` writes them: `general.sampling.*`,
    /// `general.name`, author, version, organization, finetune, basename, description,
    /// quantized_by, size_label, license (+ .name, .link), url, doi, uuid, repo_url,
    /// `general.source.*`, `general.base_model.count` and `.N.*`, `general.dataset.count` and
    /// `.N.*`, `general.tags`, `general.languages`. Empty strings and empty arrays are left out,
    /// as gguf-py's writer does.
    public let entries: [MetadataEntry]

    /// The counts the heuristics used.
    public let parameterCount: ParameterCount

    /// name, basename, finetune, version and size label as held before writing, for file naming.
    private let naming: [ModelCardValue?]

    /// Reads the metadata sources of a model directory and applies the converter's rules.
    ///
    /// - Parameters:
    ///   - directory: the model directory as given to the converter; its last path component (as
    ///     Python's `Path.name` sees it, so `"models/x/"` gives `"x"`) drives the name heuristics.
    ///   - config: the parsed config.json; nil reads `config.json` from the directory (absent: empty).
    ///   - parameterCount: counts over the tensors the output file gets (``ParameterCount/init(tensors:)``).
    ///   - modelName: the converter's `--model-name`, which replaces the name.
    ///   - metadataOverride: the object of the converter's `--metadata` JSON file (keys such as
    ///     `general.name`, `general.tags`, `general.base_models`).
    /// - Throws: ``ModelCardError`` (README.md), ``MetadataError`` for values the converter cannot
    ///   write, I/O and JSON errors for config.json; each wrapped in a ``PathError`` where a file is
    ///   concerned. An unreadable or invalid generation_config.json is ignored, as gguf-py does.
    public static func load(directory: String, config: JSONObject? = nil, parameterCount: ParameterCount,
                            modelName: String? = nil, metadataOverride: JSONObject? = nil) throws -> ModelMetadata {
        let card = try ModelCard.load(directory: directory)
        let configObject: JSONObject
        if let config {
            configObject = config
        } else {
            let path = FileSystem.join(directory, "config.json")
            if FileSystem.exists(path) && !FileSystem.isDirectory(path) {
                let value = try withPath(path) { try JSONParser.parse(try FileSystem.readFile(path)) }
                guard case .object(let object) = value else {
                    throw PathError(path: path, Failure(.malformedInput, "config.json is not a JSON object"))
                }
                configObject = object
            } else {
                configObject = JSONObject()
            }
        }
        var generation: JSONValue? = nil
        let generationPath = FileSystem.join(directory, "generation_config.json")
        if FileSystem.exists(generationPath) && !FileSystem.isDirectory(generationPath),
           let bytes = try? FileSystem.readFile(generationPath) {
            generation = try? JSONParser.parse(bytes)
        }
        return try ModelMetadata(card: card, config: configObject, generationConfig: generation,
                                 directoryName: pathName(directory), parameterCount: parameterCount,
                                 modelName: modelName, metadataOverride: metadataOverride)
    }

    /// Applies the converter's rules to sources already read (no file access).
    ///
    /// - Parameters:
    ///   - card: the model card front matter (``ModelCard/parse(readme:keys:)``).
    ///   - config: config.json (only `_name_or_path` is read).
    ///   - generationConfig: generation_config.json, nil when absent or invalid.
    ///   - directoryName: the directory's name (`Path.name`), e.g. "Mistral-7B-Instruct-v0.2".
    ///   - parameterCount, modelName, metadataOverride: as for ``load(directory:config:parameterCount:modelName:metadataOverride:)``.
    /// - Throws: ``MetadataError`` for values the converter would fail on.
    public init(card: ModelCard, config: JSONObject, generationConfig: JSONValue?, directoryName: String,
                parameterCount: ParameterCount, modelName: String? = nil, metadataOverride: JSONObject? = nil) throws {
        var draft = Draft()
        let total = parameterCount.total
        draft.applyCard(card, totalParameters: total)

        // config.json `_name_or_path`, when it looks like a Hugging Face id rather than a path
        switch config["_name_or_path"] {
        case nil, .null?:
            break
        case .string(let id)?:
            if id.filter({ $0 == "/" }).count <= 1 {
                draft.fillFromID(ModelNameComponents(modelID: id, totalParameters: total))
            }
        case let other?:
            throw MetadataError(key: "_name_or_path", "expected a string in config.json, found \(ModelCardValue(other).summary)")
        }
        draft.fillFromID(ModelNameComponents(modelID: directoryName, totalParameters: total))

        if let generationConfig, ModelCardValue(generationConfig).isTruthy {
            guard case .object(let generation) = generationConfig else {
                throw MetadataError(key: "generation_config.json", "expected a JSON object")
            }
            draft.applyGenerationConfig(generation)
        }
        if let metadataOverride { draft.applyOverride(metadataOverride) }
        if let modelName { draft[.name] = .string(modelName) }

        // prepare_metadata: the directory name when nothing gave a name; a computed size label
        if draft[.name] == nil { draft[.name] = .string(directoryName) }
        if draft[.sizeLabel] == nil && total > 0 { draft[.sizeLabel] = .string(parameterCount.sizeLabel) }

        self.entries = try draft.entries()
        self.parameterCount = parameterCount
        self.naming = [draft[.name], draft[.basename], draft[.finetune], draft[.version], draft[.sizeLabel]]
    }

    /// The output file name the converter picks when its output is a directory (the default):
    /// `gguf.naming_convention(...) + ".gguf"`, e.g. `Mistral-7B-Instruct-v0.2-F16.gguf`.
    ///
    /// - Parameter outputType: the file type's name after its first underscore, as the converter
    ///   takes it from `LlamaFileType`: `F32`, `F16`, `BF16`, `Q8_0`, `TQ1_0`, `TQ2_0`.
    /// - Throws: ``MetadataError`` when a name part is not a string (the converter fails too).
    public func defaultFileName(outputType: String) throws -> String {
        func text(_ value: ModelCardValue?, _ what: String) throws -> String? {
            switch value {
            case nil: return nil
            case .string(let s)?: return s
            case let other?: throw MetadataError(key: what, "cannot name the output file from \(other.summary)")
            }
        }
        let sizeLabel: String?
        switch naming[4] {
        case .int(let i)?: sizeLabel = String(i)  // an f-string formats any value
        case .bool(let b)?: sizeLabel = b ? "True" : "False"
        default: sizeLabel = try text(naming[4], "size_label")
        }
        let stem = Self.fileNameStem(name: try text(naming[0], "name"), basename: try text(naming[1], "basename"),
                                     finetune: try text(naming[2], "finetune"), version: try text(naming[3], "version"),
                                     sizeLabel: sizeLabel, outputType: outputType,
                                     modelType: parameterCount.total < 0 ? "LoRA" : nil)
        return stem + ".gguf"
    }

    /// gguf-py's `naming_convention`: `<basename or name>-<size>-<finetune>-<version>-<TYPE>-<kind>`,
    /// each part present only when known; spaces become "-", and "/" too in the name.
    public static func fileNameStem(name: String?, basename: String?, finetune: String?, version: String?,
                                    sizeLabel: String?, outputType: String?, modelType: String? = nil) -> String {
        func dashed(_ s: String) -> String { PythonText.strip(s).replacing(" ", with: "-") }
        var stem: String
        if let base = basename ?? name {
            stem = dashed(base).replacing("/", with: "-")
        } else {
            stem = "ggml-model"
        }
        if let sizeLabel { stem += "-" + sizeLabel }
        if let finetune { stem += "-" + dashed(finetune) }
        if let version { stem += "-" + dashed(version) }
        if let outputType { stem += "-" + PythonText.upper(dashed(outputType)) }
        if let modelType { stem += "-" + dashed(modelType) }
        return stem
    }

    /// gguf-py's `fill_templated_filename`: `str.format` of an output path with `{}`/`{0}`,
    /// `{ftype}`/`{outtype}` (lower case) and `{FTYPE}`/`{OUTTYPE}` (upper case); `{{` and `}}` are
    /// literal braces.
    /// - Throws: ``MetadataError`` for other fields, format specs or unbalanced braces, which make
    ///   Python's `str.format` fail.
    public static func fillTemplatedFileName(_ template: String, outputType: String?) throws -> String {
        let lower = outputType?.lowercased() ?? ""
        let upper = outputType.map(PythonText.upper) ?? ""
        let chars = Array(template.unicodeScalars)
        func fail(_ why: String) -> MetadataError { MetadataError(key: "output file name", "\(why) in \"\(template)\"") }
        var out = String.UnicodeScalarView()
        var usedAutomatic = false, usedManual = false
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "}" {
                guard i + 1 < chars.count, chars[i + 1] == "}" else { throw fail("single '}'") }
                out.append("}")
                i += 2
            } else if c == "{" && i + 1 < chars.count && chars[i + 1] == "{" {
                out.append("{")
                i += 2
            } else if c == "{" {
                guard let close = chars[(i + 1)...].firstIndex(of: "}") else { throw fail("single '{'") }
                let field = String(scalars: chars[(i + 1)..<close])
                let replacement: String
                switch field {
                case "":
                    // only one positional argument: a second "{}" is out of range
                    guard !usedAutomatic, !usedManual else { throw fail("a second positional field") }
                    usedAutomatic = true
                    replacement = lower
                case "0":
                    guard !usedAutomatic else { throw fail("mixed automatic and manual field numbering") }
                    usedManual = true
                    replacement = lower
                case "ftype", "outtype": replacement = lower
                case "FTYPE", "OUTTYPE": replacement = upper
                default: throw fail("unsupported field {\(field)}")
                }
                out.append(contentsOf: replacement.unicodeScalars)
                i = close + 1
            } else {
                out.append(c)
                i += 1
            }
        }
        return String(out)
    }

    /// Python's `Path(path).name`: the last component after dropping empty and "." components.
    public static func pathName(_ path: String) -> String {
        path.split(separator: "/").last(where: { $0 != "." }).map(String.init) ?? ""
    }
}

// MARK: - The working state of gguf-py's Metadata object

/// gguf-py's `Metadata` fields that hold one value, in the order `set_gguf_meta_model` writes them.
private enum Field: Int, CaseIterable {
    case samplingSequence, samplingTopK, samplingTopP, samplingMinP, samplingXTCProbability,
         samplingXTCThreshold, samplingTemp, samplingPenaltyLastN, samplingPenaltyRepeat,
         samplingMirostat, samplingMirostatTau, samplingMirostatEta
    case name, author, version, organization, finetune, basename, description, quantizedBy, sizeLabel,
         license, licenseName, licenseLink, url, doi, uuid, repoURL,
         sourceURL, sourceDOI, sourceUUID, sourceRepoURL

    var key: String {
        switch self {
        case .samplingSequence: "general.sampling.sequence"
        case .samplingTopK: "general.sampling.top_k"
        case .samplingTopP: "general.sampling.top_p"
        case .samplingMinP: "general.sampling.min_p"
        case .samplingXTCProbability: "general.sampling.xtc_probability"
        case .samplingXTCThreshold: "general.sampling.xtc_threshold"
        case .samplingTemp: "general.sampling.temp"
        case .samplingPenaltyLastN: "general.sampling.penalty_last_n"
        case .samplingPenaltyRepeat: "general.sampling.penalty_repeat"
        case .samplingMirostat: "general.sampling.mirostat"
        case .samplingMirostatTau: "general.sampling.mirostat_tau"
        case .samplingMirostatEta: "general.sampling.mirostat_eta"
        case .name: "general.name"
        case .author: "general.author"
        case .version: "general.version"
        case .organization: "general.organization"
        case .finetune: "general.finetune"
        case .basename: "general.basename"
        case .description: "general.description"
        case .quantizedBy: "general.quantized_by"
        case .sizeLabel: "general.size_label"
        case .license: "general.license"
        case .licenseName: "general.license.name"
        case .licenseLink: "general.license.link"
        case .url: "general.url"
        case .doi: "general.doi"
        case .uuid: "general.uuid"
        case .repoURL: "general.repo_url"
        case .sourceURL: "general.source.url"
        case .sourceDOI: "general.source.doi"
        case .sourceUUID: "general.source.uuid"
        case .sourceRepoURL: "general.source.repo_url"
        }
    }

    enum Kind { case string, int32, float32 }

    var kind: Kind {
        switch self {
        case .samplingTopK, .samplingPenaltyLastN, .samplingMirostat: .int32
        case .samplingTopP, .samplingMinP, .samplingXTCProbability, .samplingXTCThreshold, .samplingTemp,
             .samplingPenaltyRepeat, .samplingMirostatTau, .samplingMirostatEta: .float32
        default: .string
        }
    }
}

private struct Draft {
    private var values: [Field: ModelCardValue] = [:]
    var baseModels: ModelCardValue?
    var datasets: ModelCardValue?
    var tags: ModelCardValue?
    var languages: ModelCardValue?

    /// Python `None` is nil; a YAML/JSON null is stored as nil too.
    subscript(field: Field) -> ModelCardValue? {
        get { values[field] }
        set { values[field] = newValue == .null ? nil : newValue }
    }

    /// `apply_metadata_heuristic`, model card part.
    mutating func applyCard(_ card: ModelCard, totalParameters: Int) {
        // Only fills fields still unset, so the first listed card key wins.
        let scalarKeys: [(Field, String)] = [
            (.name, "name"), (.author, "author"), (.version, "version"), (.organization, "organization"),
            (.description, "description"), (.finetune, "finetune"), (.basename, "basename"),
            (.sizeLabel, "size_label"), (.sourceURL, "url"), (.sourceDOI, "doi"), (.sourceUUID, "uuid"),
            (.sourceRepoURL, "repo_url"),
            (.name, "model_name"), (.author, "model_author"), (.version, "model_version"),
            (.organization, "model_organization"), (.description, "model_description"),
            (.finetune, "model_finetune"), (.basename, "model_basename"), (.sizeLabel, "model_size_label"),
            (.sourceURL, "model_url"), (.sourceDOI, "model_doi"), (.sourceUUID, "model_uuid"),
            (.sourceRepoURL, "model_repo_url"),
            (.name, "model_name"), (.author, "model_creator"), (.basename, "model_type"),
        ]
        for (field, key) in scalarKeys { useCardValue(card, key, for: field) }

        if let value = card["base_model"] ?? card["base_models"] ?? card["base_model_sources"] {
            baseModels = .sequence(Self.listItems(value).map { Self.sourceEntry($0, totalParameters: totalParameters) })
        }
        if let value = card["datasets"] ?? card["dataset"] ?? card["dataset_sources"] {
            datasets = .sequence(Self.listItems(value).map { Self.sourceEntry($0, totalParameters: totalParameters) })
        }

        useCardValue(card, "license", for: .license)
        useCardValue(card, "license_name", for: .licenseName)
        useCardValue(card, "license_link", for: .licenseLink)
        Self.appendCardList(card["tags"], to: &tags)
        Self.appendCardList(card["pipeline_tag"], to: &tags)
        Self.appendCardList(card["languages"], to: &languages)
        Self.appendCardList(card["language"], to: &languages)
    }

    private mutating func useCardValue(_ card: ModelCard, _ key: String, for field: Field) {
        if let value = card[key], self[field] == nil { self[field] = value }
    }

    /// A string counts as one item, a list as its items, anything else as none.
    private static func listItems(_ value: ModelCardValue) -> [ModelCardValue] {
        switch value {
        case .string: [value]
        case .sequence(let items): items
        default: []
        }
    }

    /// `use_array_model_card_metadata`: appends to what is there; a present key always leaves a list.
    private static func appendCardList(_ value: ModelCardValue?, to list: inout ModelCardValue?) {
        guard let value, value != .null else { return }
        var items: [ModelCardValue] = []
        if case .sequence(let existing)? = list { items = existing }
        items += listItems(value)
        list = .sequence(items)
    }

    /// One base model or dataset reference: a Hugging Face id, a URL, or a mapping used as is.
    private static func sourceEntry(_ id: ModelCardValue, totalParameters: Int) -> ModelCardValue {
        guard case .string(let text) = id else {
            if case .mapping = id { return id }
            return .mapping([])  // gguf-py logs "not in a known format" and keeps an empty entry
        }
        var entry: [ModelCardEntry] = []
        func set(_ key: String, _ value: String) { entry.append(ModelCardEntry(key: .string(key), value: .string(value))) }
        let components: ModelNameComponents
        let isURL = text.hasPrefix("http://") || text.hasPrefix("https://") || text.hasPrefix("ssh://")
        if isURL {
            set("repo_url", text)
            guard text.contains("huggingface.co"), let match = text.wholeMatch(of: huggingFaceURL) else {
                return .mapping(entry)
            }
            components = ModelNameComponents(modelID: String(match.1), totalParameters: totalParameters)
        } else {
            components = ModelNameComponents(modelID: text, totalParameters: totalParameters)
        }
        if let name = components.fullName { set("name", ModelNameComponents.title(name)) }
        if let org = components.organization { set("organization", ModelNameComponents.title(org)) }
        if let version = components.version { set("version", version) }
        if !isURL, let org = components.organization, let name = components.fullName {
            set("repo_url", "https://huggingface.co/\(org)/\(name)")
        }
        return .mapping(entry)
    }

    /// Fills unset name parts from a model id (config `_name_or_path`, then the directory name).
    mutating func fillFromID(_ c: ModelNameComponents) {
        func fill(_ field: Field, _ value: String?) {
            if self[field] == nil, let value { self[field] = .string(value) }
        }
        fill(.name, c.fullName.map(ModelNameComponents.title))
        fill(.organization, c.organization.map(ModelNameComponents.title))
        fill(.basename, c.basename)
        fill(.finetune, c.finetune)
        fill(.version, c.version)
        fill(.sizeLabel, c.sizeLabel)
    }

    mutating func applyGenerationConfig(_ config: JSONObject) {
        let keys: [(Field, String)] = [
            (.samplingSequence, "sequence"), (.samplingTopK, "top_k"), (.samplingTopP, "top_p"),
            (.samplingMinP, "min_p"), (.samplingXTCProbability, "xtc_probability"),
            (.samplingXTCThreshold, "xtc_threshold"), (.samplingTemp, "temperature"),
            (.samplingPenaltyLastN, "penalty_last_n"), (.samplingMirostat, "mirostat"),
            (.samplingMirostatTau, "mirostat_tau"), (.samplingMirostatEta, "mirostat_eta"),
        ]
        for (field, key) in keys {
            if let value = config[key] { self[field] = ModelCardValue(value) }
        }
        // llama.cpp's gguf-py falls back to transformers' name for the repeat penalty
        if let value = config["penalty_repeat"] ?? config["repetition_penalty"] {
            self[.samplingPenaltyRepeat] = ModelCardValue(value)
        }
    }

    /// The `--metadata` file: any key present replaces the value (null clears it).
    mutating func applyOverride(_ override: JSONObject) {
        for field in Field.allCases where field != .license {  // gguf-py reads no general.license override
            if let value = override[field.key] { self[field] = ModelCardValue(value) }
        }
        func replace(_ list: inout ModelCardValue?, _ key: String) {
            if let value = override[key] { list = value == .null ? nil : ModelCardValue(value) }
        }
        replace(&baseModels, "general.base_models")
        replace(&datasets, "general.datasets")
        replace(&tags, "general.tags")
        replace(&languages, "general.languages")
    }

    // MARK: Writing (set_gguf_meta_model and the writer's packing rules)

    func entries() throws -> [MetadataEntry] {
        var out: [MetadataEntry] = []
        for field in Field.allCases {
            guard let value = self[field] else { continue }
            let key = field.key
            switch field.kind {
            case .int32:
                out.append(MetadataEntry(key, .int32(try Self.int32(value, key))))
            case .float32:
                out.append(MetadataEntry(key, .float32(try Self.float32(value, key))))
            case .string:
                var text = value
                if field == .license, case .sequence(let items) = value {
                    // a list of licenses is written comma-joined
                    text = .string(try items.map { item in
                        guard case .string(let s) = item else {
                            throw MetadataError(key: key, "license list holds \(item.summary)")
                        }
                        return s
                    }.joined(separator: ","))
                }
                if let s = try Self.string(text, key) { out.append(MetadataEntry(key, .string(s))) }
            }
        }
        try Self.appendSources(baseModels, prefix: "general.base_model", to: &out)
        try Self.appendSources(datasets, prefix: "general.dataset", to: &out)
        if let tags, let array = try Self.array(tags, "general.tags") { out.append(MetadataEntry("general.tags", array)) }
        if let languages, let array = try Self.array(languages, "general.languages") {
            out.append(MetadataEntry("general.languages", array))
        }
        return out
    }

    private static func appendSources(_ list: ModelCardValue?, prefix: String, to out: inout [MetadataEntry]) throws {
        guard let list else { return }
        guard case .sequence(let items) = list else {
            throw MetadataError(key: prefix, "expected a list of entries, found \(list.summary)")
        }
        out.append(MetadataEntry("\(prefix).count", .uint32(UInt32(clamping: items.count))))
        for (index, item) in items.enumerated() {
            guard case .mapping = item else {
                throw MetadataError(key: "\(prefix).\(index)", "expected a mapping, found \(item.summary)")
            }
            for part in ["name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url"] {
                let key = "\(prefix).\(index).\(part)"
                if let value = item[part], let s = try string(value, key) { out.append(MetadataEntry(key, .string(s))) }
            }
        }
    }

    /// `add_string`: falsy values are skipped; other non-strings cannot be packed.
    private static func string(_ value: ModelCardValue, _ key: String) throws -> String? {
        if case .string(let s) = value { return s.isEmpty ? nil : s }
        guard value.isTruthy else { return nil }
        throw MetadataError(key: key, "expected a string, found \(value.summary)")
    }

    /// `struct.pack("<i", value)`: integers in range and booleans.
    private static func int32(_ value: ModelCardValue, _ key: String) throws -> Int32 {
        switch value {
        case .int(let i):
            guard let v = Int32(exactly: i) else { throw MetadataError(key: key, "\(i) does not fit in INT32") }
            return v
        case .bool(let b): return b ? 1 : 0
        default: throw MetadataError(key: key, "expected an integer, found \(value.summary)")
        }
    }

    /// `struct.pack("<f", value)`: numbers and booleans, failing when the value overflows float32.
    private static func float32(_ value: ModelCardValue, _ key: String) throws -> Float {
        let double: Double
        switch value {
        case .int(let i): double = Double(i)
        case .float(let d): double = d
        case .bool(let b): double = b ? 1 : 0
        default: throw MetadataError(key: key, "expected a number, found \(value.summary)")
        }
        let single = Float(double)
        if single.isInfinite && !double.isInfinite { throw MetadataError(key: key, "\(double) is too large for FLOAT32") }
        return single
    }

    /// `add_array`: an empty list is skipped; items must share one GGUF type.
    private static func array(_ value: ModelCardValue, _ key: String) throws -> MetadataValue? {
        let items: [ModelCardValue]
        switch value {
        case .sequence(let list): items = list
        case .string(let s):
            // a string is a sequence of one-character strings to the writer
            items = s.unicodeScalars.map { .string(String($0)) }
        default: throw MetadataError(key: key, "expected a list, found \(value.summary)")
        }
        guard let first = items.first else { return nil }
        func sameType(_ item: ModelCardValue) -> Bool {
            switch (first, item) {
            case (.string, .string), (.int, .int), (.float, .float), (.bool, .bool): true
            default: false
            }
        }
        guard items.allSatisfy(sameType) else {
            throw MetadataError(key: key, "all items of a GGUF array must have the same type")
        }
        switch first {
        case .string: return .stringArray(items.map { if case .string(let s) = $0 { s } else { "" } })
        case .int: return .int32Array(try items.map { try int32($0, key) })
        case .float: return .float32Array(try items.map { try float32($0, key) })
        case .bool: return .boolArray(items.map { $0 == .bool(true) })
        default: throw MetadataError(key: key, "cannot store \(first.summary) in a GGUF array")
        }
    }
}

/// `https?://huggingface.co/([^/]+/[^/]+)$` as gguf-py matches it (the "." is any character).
nonisolated(unsafe) private let huggingFaceURL = /https?:\/\/huggingface.co\/([^\/]+\/[^\/]+)/.matchingSemantics(.unicodeScalar)

extension ModelCardValue {
    /// A JSON value as the same Python object `json.load` gives.
    init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(Int(i))
        case .double(let d): self = .float(d)
        case .string(let s): self = .string(s)
        case .array(let items): self = .sequence(items.map(ModelCardValue.init))
        case .object(let object):
            self = .mapping(object.members.map { ModelCardEntry(key: .string($0.key), value: ModelCardValue($0.value)) })
        }
    }
}
