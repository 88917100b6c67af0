import TensorCore

/// `adapter_config.json` of a PEFT LoRA adapter (REFERENCE §6.1), as PEFT 0.21.2 reads and
/// writes it.
///
/// Reading keeps the whole JSON object (``json``), so fields wconv does not interpret survive a
/// read-modify-write. Writing produces every field PEFT 0.21.2's `LoraConfig` has, with keys
/// sorted and two-space indentation (`json.dumps(indent=2, sort_keys=True)`, no trailing
/// newline), exactly as `save_pretrained` writes the file.
public struct PEFTLoRAConfig: Sendable, Hashable {
    /// Which modules carry adapters.
    public enum TargetModules: Sendable, Hashable {
        /// Module names or name suffixes (`"q_proj"` matches `model.layers.0.self_attn.q_proj`).
        case names([String])
        /// A regular expression matched against the whole module name (`re.fullmatch`).
        case pattern(String)
    }

    /// `r`: the default rank.
    public var rank: Int
    /// `lora_alpha`: the default alpha.
    public var alpha: Double
    /// `lora_dropout`.
    public var dropout: Double
    /// `target_modules`.
    public var targetModules: TargetModules
    /// `rank_pattern`: per-module ranks; keys are regexes matched as PEFT's `get_pattern_key` does.
    public var rankPattern: [(pattern: String, rank: Int)]
    /// `alpha_pattern`: per-module alphas.
    public var alphaPattern: [(pattern: String, alpha: Double)]
    /// `use_rslora`: scale by alpha/√r instead of alpha/r.
    public var useRSLoRA: Bool
    /// `base_model_name_or_path`.
    public var baseModelNameOrPath: String?
    /// The JSON object as read (or as it will be written).
    public internal(set) var json: JSONObject

    /// A config for a new adapter, with PEFT 0.21.2's defaults for everything else.
    public init(rank: Int, alpha: Double, dropout: Double = 0, targetModules: [String],
                useRSLoRA: Bool = false, baseModelNameOrPath: String? = nil) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targetModules = .names(targetModules)
        self.rankPattern = []
        self.alphaPattern = []
        self.useRSLoRA = useRSLoRA
        self.baseModelNameOrPath = baseModelNameOrPath
        self.json = Self.defaults
        syncJSON()
    }

    /// Parses a config object.
    /// - Throws: ``AdapterError`` for a non-LoRA adapter, a LoRA variant whose merge is not
    ///   `W + s·B·A` (DoRA, LoRA bias), or a missing/ill-typed field.
    public init(json object: JSONObject) throws {
        func field(_ key: String) -> JSONValue? {
            guard let v = object[key], !v.isNull else { return nil }
            return v
        }
        func bool(_ key: String) throws -> Bool {
            guard let v = field(key) else { return false }
            guard let b = v.boolValue else { throw AdapterError.badConfigField(key: key, reason: "is not true or false") }
            return b
        }
        if let type = field("peft_type") {
            guard let t = type.stringValue else { throw AdapterError.badConfigField(key: "peft_type", reason: "is not a string") }
            guard t.uppercased() == "LORA" else { throw AdapterError.notLoRA(peftType: t) }
        }
        guard let r = field("r") else { throw AdapterError.badConfigField(key: "r", reason: "is missing") }
        guard let rank = r.intValue, rank > 0 else { throw AdapterError.badConfigField(key: "r", reason: "is not a positive integer") }
        // PEFT's default lora_alpha is 8.
        let alphaValue = field("lora_alpha") ?? .int(8)
        guard let alpha = alphaValue.doubleValue, alpha.isFinite else {
            throw AdapterError.badConfigField(key: "lora_alpha", reason: "is not a finite number")
        }
        let dropoutValue = field("lora_dropout") ?? .int(0)
        guard let dropout = dropoutValue.doubleValue, dropout >= 0, dropout < 1 else {
            throw AdapterError.badConfigField(key: "lora_dropout", reason: "is not a number in [0, 1)")
        }
        if try bool("use_dora") { throw AdapterError.unsupportedVariant("DoRA (use_dora: true): its merge rescales each column") }
        // fan_in_fan_out needs no refusal, only a type check: PEFT applies it per layer type
        // (Conv1D layers always transpose, nn.Linear layers never), so the merge decides from
        // the base's family.
        _ = try bool("fan_in_fan_out")
        if try bool("lora_bias") { throw AdapterError.unsupportedVariant("LoRA bias (lora_bias: true)") }
        if let bias = field("bias"), bias.stringValue != "none" {
            throw AdapterError.unsupportedVariant("bias training (\"bias\": \(bias.serialized()))")
        }

        let targets: TargetModules
        switch field("target_modules") {
        case nil:
            targets = .names([])
        case .string(let s)?:
            targets = .pattern(s)
        case .array(let items)?:
            var names: [String] = []
            for item in items {
                guard let s = item.stringValue else {
                    throw AdapterError.badConfigField(key: "target_modules", reason: "is not a list of strings or a string")
                }
                names.append(s)
            }
            targets = .names(names)
        default:
            throw AdapterError.badConfigField(key: "target_modules", reason: "is not a list of strings or a string")
        }

        var ranks: [(String, Int)] = []
        if let pattern = field("rank_pattern") {
            guard let o = pattern.objectValue else { throw AdapterError.badConfigField(key: "rank_pattern", reason: "is not an object") }
            for (k, v) in o {
                guard let n = v.intValue, n > 0 else {
                    throw AdapterError.badConfigField(key: "rank_pattern", reason: "value for \(k) is not a positive integer")
                }
                ranks.append((k, n))
            }
        }
        var alphas: [(String, Double)] = []
        if let pattern = field("alpha_pattern") {
            guard let o = pattern.objectValue else { throw AdapterError.badConfigField(key: "alpha_pattern", reason: "is not an object") }
            for (k, v) in o {
                guard let a = v.doubleValue, a.isFinite else {
                    throw AdapterError.badConfigField(key: "alpha_pattern", reason: "value for \(k) is not a number")
                }
                alphas.append((k, a))
            }
        }
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targetModules = targets
        self.rankPattern = ranks
        self.alphaPattern = alphas
        self.useRSLoRA = try bool("use_rslora")
        self.baseModelNameOrPath = field("base_model_name_or_path")?.stringValue
        self.json = object
        // Compile the patterns now so a bad one fails at load, not half way through a merge.
        _ = try PatternMatcher.compile(key: "rank_pattern", ranks.map(\.0))
        _ = try PatternMatcher.compile(key: "alpha_pattern", alphas.map(\.0))
        if case .pattern(let p) = targets { _ = try PatternMatcher.compile(key: "target_modules", [p]) }
    }

    /// Parses the text of an `adapter_config.json`.
    public init(text bytes: [UInt8]) throws {
        guard case .object(let object) = try JSONParser.parse(bytes) else {
            throw AdapterError.badConfigField(key: "(root)", reason: "is not a JSON object")
        }
        try self.init(json: object)
    }

    // MARK: - Per-module values

    /// The rank PEFT gives `module` (a module name such as `model.layers.3.mlp.up_proj`):
    /// the first `rank_pattern` key that matches, else `r`.
    public func rank(forModule module: String) -> Int {
        if let key = PatternMatcher.firstMatch(rankPattern.map(\.pattern), module: module) {
            return rankPattern.first { $0.pattern == key }?.rank ?? rank
        }
        return rank
    }

    /// The alpha PEFT gives `module`: the first matching `alpha_pattern` key, else `lora_alpha`.
    public func alpha(forModule module: String) -> Double {
        if let key = PatternMatcher.firstMatch(alphaPattern.map(\.pattern), module: module) {
            return alphaPattern.first { $0.pattern == key }?.alpha ?? alpha
        }
        return alpha
    }

    /// The factor of `module`'s B·A: alpha/r, or alpha/√r with rsLoRA (``loraScaling(alpha:rank:rsLoRA:)``).
    /// - Parameter rank: the rank found in the weights (the config's rank for the module if nil).
    public func scaling(forModule module: String, rank actual: Int? = nil) -> Double {
        loraScaling(alpha: alpha(forModule: module), rank: actual ?? rank(forModule: module), rsLoRA: useRSLoRA)
    }

    /// Whether `target_modules` selects `module` (PEFT's `check_target_module_exists` for the
    /// two common forms: a name list matched exactly or as a `.`-separated suffix; a regex string
    /// matched against the whole name).
    public func targets(module: String) -> Bool {
        switch targetModules {
        case .names(let names):
            return names.contains { module == $0 || module.hasSuffix("." + $0) }
        case .pattern(let p):
            return PatternMatcher.fullMatch(p, module)
        }
    }

    /// Whether PEFT would have put an adapter on `module`: `target_modules` (when the config
    /// has one) selects it, and `layers_to_transform` (when given) holds its layer.
    public func selects(module: String) -> Bool {
        if let t = json["target_modules"], !t.isNull, !targets(module: module) { return false }
        let layers: [Int]
        switch json["layers_to_transform"] {
        case .int(let i)?: layers = [Int(i)]
        case .array(let list)?: layers = list.compactMap(\.intValue)
        default: return true
        }
        guard let layer = PEFTAdapter.layerIndex(ofModule: module) else { return true }
        return layers.contains(layer)
    }

    // MARK: - Writing

    /// The text of `adapter_config.json` as PEFT 0.21.2's `save_pretrained` writes it.
    public func serialized() -> String {
        JSONValue.object(json).serialized(.python(indent: 2, sortKeys: true))
    }

    /// Sets a field of ``json`` that has no typed property (the typed ones are overwritten by
    /// ``syncJSON()``).
    public mutating func setRaw(_ key: String, _ value: JSONValue) {
        json[key] = value
    }

    /// Copies the typed fields into ``json``; call after changing them.
    public mutating func syncJSON() {
        json["r"] = .int(Int64(rank))
        json["lora_alpha"] = Self.number(alpha)
        json["lora_dropout"] = Self.number(dropout)
        switch targetModules {
        case .names(let names): json["target_modules"] = .array(names.map { .string($0) })
        case .pattern(let p): json["target_modules"] = .string(p)
        }
        json["rank_pattern"] = .object(JSONObject(rankPattern.map { ($0.pattern, JSONValue.int(Int64($0.rank))) }))
        json["alpha_pattern"] = .object(JSONObject(alphaPattern.map { ($0.pattern, Self.number($0.alpha)) }))
        json["use_rslora"] = .bool(useRSLoRA)
        json["base_model_name_or_path"] = baseModelNameOrPath.map { .string($0) } ?? .null
    }

    /// Python keeps `16` and `16.0` apart; an integral value is written as an int, as a user
    /// passing `lora_alpha=16` to PEFT gets.
    static func number(_ d: Double) -> JSONValue {
        if d.rounded() == d, abs(d) < 1e15 { return .int(Int64(d)) }
        return .double(d)
    }

    /// Every field of PEFT 0.21.2's `LoraConfig` with its default, for a saved causal-LM adapter
    /// (`inference_mode` true, as `save_pretrained` stores it).
    static let defaults = JSONObject([
        ("alora_invocation_tokens", .null),
        ("alpha_pattern", .object(JSONObject())),
        ("arrow_config", .null),
        ("auto_mapping", .null),
        ("base_model_name_or_path", .null),
        ("bias", "none"),
        ("corda_config", .null),
        ("ensure_weight_tying", false),
        ("eva_config", .null),
        ("exclude_modules", .null),
        ("fan_in_fan_out", false),
        ("inference_mode", true),
        ("init_lora_weights", true),
        ("kasa_config", .null),
        ("layer_replication", .null),
        ("layers_pattern", .null),
        ("layers_to_transform", .null),
        ("loftq_config", .object(JSONObject())),
        ("lora_alpha", 8),
        ("lora_bias", false),
        ("lora_dropout", 0),
        ("lora_ga_config", .null),
        ("megatron_config", .null),
        ("megatron_core", "megatron.core"),
        ("modules_to_save", .null),
        ("monteclora_config", .null),
        ("peft_type", "LORA"),
        ("peft_version", "0.21.2"),
        ("qalora_group_size", 16),
        ("r", 8),
        ("rank_pattern", .object(JSONObject())),
        ("revision", .null),
        ("target_modules", .null),
        ("target_parameters", .null),
        ("task_type", "CAUSAL_LM"),
        ("trainable_token_indices", .null),
        ("use_bdlora", .null),
        ("use_dora", false),
        ("use_qalora", false),
        ("use_rslora", false),
        ("velora_config", .null),
    ])

    public static func == (a: PEFTLoRAConfig, b: PEFTLoRAConfig) -> Bool { a.json == b.json }
    public func hash(into hasher: inout Hasher) { hasher.combine(json) }
}

/// PEFT's module-name patterns, with Swift Regex standing in for Python's `re`.
enum PatternMatcher {
    static func compile(key: String, _ patterns: [String]) throws -> [Regex<AnyRegexOutput>] {
        try patterns.map { p in
            // Screened first: a backtracking blow-up would hang the merge, not fail it.
            if let reason = ModulePattern.backtrackingRisk(p) { throw AdapterError.riskyPattern(key: key, pattern: p, reason: reason) }
            do { return try Regex("(?:.*\\.)?(?:\(p))") } catch { throw AdapterError.badPattern(key: key, pattern: p) }
        }
    }

    /// `get_pattern_key`: the first key `k` for which `re.match(rf"(.*\.)?({k})$", module)` matches.
    static func firstMatch(_ keys: [String], module: String) -> String? {
        for key in keys {
            guard let regex = try? Regex("(?:.*\\.)?(?:\(key))") else { continue }
            if (try? regex.wholeMatch(in: module)) != nil { return key }
        }
        return nil
    }

    /// `re.fullmatch(pattern, name)`.
    static func fullMatch(_ pattern: String, _ name: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: name)) != nil
    }
}
