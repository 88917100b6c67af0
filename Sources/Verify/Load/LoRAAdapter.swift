public import TensorCore
public import Formats
internal import COpenBLAS

/// Why a PEFT adapter cannot be applied, one case per cause.
public enum LoRAAdapterError: ClassifiedError, Hashable {
    /// adapter_config.json lacks a key or holds a value of the wrong type.
    case badConfig(String)
    /// The adapter uses a PEFT feature wconv does not apply (DoRA, fan_in_fan_out, modules_to_save, …).
    case unsupported(String)
    /// A tensor key is not `base_model.model.<module>.lora_{A,B}.weight`.
    case unexpectedTensor(String)
    /// A module has only one of its two matrices.
    case incompleteModule(String)
    /// A module's matrices do not fit each other, the configuration or the base model.
    case shapeMismatch(module: String, reason: String)
    /// A tensor targets a module that adapter_config.json's target_modules does not select.
    case notTargeted(String)

    public var kind: ErrorKind {
        switch self {
        case .unsupported: .unsupported
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .badConfig(let what): "adapter_config.json: \(what)"
        case .unsupported(let what): "unsupported LoRA adapter: \(what)"
        case .unexpectedTensor(let key): "tensor '\(key)' is not a LoRA matrix (base_model.model.<module>.lora_A/lora_B.weight)"
        case .incompleteModule(let module): "module '\(module)' has lora_A or lora_B but not both"
        case .shapeMismatch(let module, let reason): "module '\(module)': \(reason)"
        case .notTargeted(let module): "module '\(module)' has LoRA weights but target_modules does not select it"
        }
    }
}

/// A PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) applied on the fly:
/// each targeted `nn.Linear` weight becomes `W + s·B·A` as it is loaded, with `s = alpha / r`
/// (`alpha / √r` for rsLoRA) and per-module overrides from `rank_pattern` / `alpha_pattern`
/// (REFERENCE §6). The base files are never changed.
///
/// Tensor keys are PEFT's: `base_model.model.<module>.lora_A.weight` `[r, in]` and
/// `….lora_B.weight` `[out, r]`, where `<module>` is the HF module path
/// (`model.layers.0.self_attn.q_proj`). The matrices are held in float32 (a few MB).
public struct LoRAAdapter: Sendable {
    /// The update of one Linear.
    public struct Delta: Sendable, Hashable {
        /// HF module path (`model.layers.3.mlp.up_proj`).
        public var module: String
        public var rank: Int
        public var inFeatures: Int
        public var outFeatures: Int
        /// `lora_alpha / r` (or `/ √r`).
        public var scale: Float
        /// `lora_A.weight` — `[r, in]`.
        public var a: [Float]
        /// `lora_B.weight` — `[out, r]`.
        public var b: [Float]

        public init(module: String, rank: Int, inFeatures: Int, outFeatures: Int, scale: Float, a: [Float], b: [Float]) {
            self.module = module
            self.rank = rank
            self.inFeatures = inFeatures
            self.outFeatures = outFeatures
            self.scale = scale
            self.a = a
            self.b = b
        }
    }

    /// The adapter directory.
    public let path: String
    /// Updates keyed by the HF weight name they apply to (`<module>.weight`).
    public let deltas: [String: Delta]

    /// Reads and checks an adapter directory.
    /// - Throws: ``PathError`` wrapping ``LoRAAdapterError``, a JSON error or a safetensors error.
    public init(directory: String) throws {
        path = directory
        let configPath = FileSystem.join(directory, "adapter_config.json")
        let json = try withPath(configPath) {
            guard let object = try JSONParser.parse(try FileSystem.readFile(configPath)).objectValue else {
                throw LoRAAdapterError.badConfig("not a JSON object")
            }
            return object
        }
        let settings = try withPath(configPath) { try Settings(json) }
        let weightsPath = FileSystem.join(directory, "adapter_model.safetensors")
        if !FileSystem.exists(weightsPath), FileSystem.exists(FileSystem.join(directory, "adapter_model.bin")) {
            throw PathError(path: directory, LoRAAdapterError.unsupported("adapter_model.bin (pickle); save it with safe_serialization=True"))
        }
        let file = try SafetensorsFile(path: weightsPath)
        deltas = try withPath(weightsPath) { try Self.readDeltas(file, settings: settings) }
    }

    /// Builds an adapter from matrices in memory (for tests and for training code).
    public init(path: String = "", deltas: [String: Delta]) {
        self.path = path
        self.deltas = deltas
    }

    /// Checks every update against a model shape: the base weight must exist and be `[out, in]`.
    /// - Throws: ``PathError`` wrapping ``LoRAAdapterError/shapeMismatch(module:reason:)``.
    public func check(against config: LlamaConfig) throws {
        for (name, d) in deltas.sorted(by: { $0.key < $1.key }) {
            guard let shape = LlamaCheckpoint.expectedShape(of: name, config: config), shape.count == 2,
                  name.hasPrefix("model.layers.") else {
                throw PathError(path: path, LoRAAdapterError.unsupported("an update of '\(name)' (only the decoder layers' Linear weights)"))
            }
            guard shape == [d.outFeatures, d.inFeatures] else {
                throw PathError(path: path, LoRAAdapterError.shapeMismatch(
                    module: d.module, reason: "B·A is [\(d.outFeatures), \(d.inFeatures)], the base weight is \(shape)"))
            }
        }
    }

    /// Adds `s·B·A` to `weight` (`[out, in]` row-major) if the adapter updates `weightName`.
    /// - Throws: ``LoRAAdapterError/shapeMismatch(module:reason:)`` if the sizes disagree.
    public func apply(to weight: UnsafeMutableBufferPointer<Float>, weightName: String) throws {
        guard let d = deltas[weightName] else { return }
        guard weight.count == d.outFeatures * d.inFeatures, let w = weight.baseAddress else {
            throw LoRAAdapterError.shapeMismatch(
                module: d.module, reason: "the base weight has \(weight.count) elements, B·A \(d.outFeatures * d.inFeatures)")
        }
        d.b.withUnsafeBufferPointer { b in
            d.a.withUnsafeBufferPointer { a in
                // W[out, in] += s · B[out, r] · A[r, in]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                            Int32(d.outFeatures), Int32(d.inFeatures), Int32(d.rank),
                            d.scale, b.baseAddress, Int32(d.rank), a.baseAddress, Int32(d.inFeatures),
                            1, w, Int32(d.inFeatures))
            }
        }
    }

    /// Scalar reference of ``apply(to:weightName:)`` for tests: PEFT's merge order,
    /// `W + (B @ A) · s`, each dot product summed in Double.
    public static func applyReference(_ d: Delta, to weight: inout [Float]) {
        for o in 0 ..< d.outFeatures {
            for i in 0 ..< d.inFeatures {
                var acc = 0.0
                for k in 0 ..< d.rank { acc += Double(d.b[o * d.rank + k]) * Double(d.a[k * d.inFeatures + i]) }
                weight[o * d.inFeatures + i] += Float(acc) * d.scale
            }
        }
    }

    // MARK: - Reading

    /// The adapter_config.json values that decide how the matrices apply.
    struct Settings {
        var rank: Int
        var alpha: Double
        var rsLoRA: Bool
        var targets: Targets
        var layers: Set<Int>?
        var rankPattern: [(String, Int)]
        var alphaPattern: [(String, Double)]

        enum Targets {
            case names([String])
            case regex(String)
            case any
        }

        init(_ json: JSONObject) throws {
            func present(_ key: String) -> JSONValue? {
                guard let v = json[key], !v.isNull else { return nil }
                return v
            }
            if let type = present("peft_type"), type.stringValue != "LORA" {
                throw LoRAAdapterError.unsupported("peft_type \(type) (only LORA)")
            }
            guard let r = present("r")?.intValue, r > 0 else { throw LoRAAdapterError.badConfig("'r' must be a positive integer") }
            rank = r
            guard let alpha = (present("lora_alpha") ?? .int(Int64(r))).doubleValue, alpha.isFinite else {
                throw LoRAAdapterError.badConfig("'lora_alpha' must be a number")
            }
            self.alpha = alpha
            rsLoRA = present("use_rslora")?.boolValue ?? false
            for flag in ["use_dora", "fan_in_fan_out", "use_qalora"] where present(flag)?.boolValue == true {
                throw LoRAAdapterError.unsupported("\(flag) = true")
            }
            if let modules = present("modules_to_save"), modules.arrayValue?.isEmpty != true {
                throw LoRAAdapterError.unsupported("modules_to_save (whole replaced modules)")
            }
            if let bias = present("bias")?.stringValue, bias != "none" {
                throw LoRAAdapterError.unsupported("bias = \(bias)")
            }
            switch present("target_modules") {
            case nil: targets = .any
            case .string(let pattern)?: targets = .regex(pattern)
            case .array(let list)?:
                let names = list.compactMap(\.stringValue)
                guard names.count == list.count else { throw LoRAAdapterError.badConfig("target_modules must hold strings") }
                targets = .names(names)
            default: throw LoRAAdapterError.badConfig("target_modules must be a list or a regex string")
            }
            switch present("layers_to_transform") {
            case nil: layers = nil
            case .int(let i)?: layers = [Int(i)]
            case .array(let list)?:
                let ints = list.compactMap(\.intValue)
                guard ints.count == list.count else { throw LoRAAdapterError.badConfig("layers_to_transform must hold integers") }
                layers = Set(ints)
            default: throw LoRAAdapterError.badConfig("layers_to_transform must be an integer or a list")
            }
            func pattern<T>(_ key: String, _ convert: (JSONValue) -> T?) throws -> [(String, T)] {
                guard let v = present(key) else { return [] }
                guard let object = v.objectValue else { throw LoRAAdapterError.badConfig("\(key) must be an object") }
                return try object.map { member in
                    guard let value = convert(member.value) else { throw LoRAAdapterError.badConfig("\(key).\(member.key) has the wrong type") }
                    return (member.key, value)
                }
            }
            rankPattern = try pattern("rank_pattern") { $0.intValue }
            alphaPattern = try pattern("alpha_pattern") { $0.doubleValue }
            // A pattern that backtracks without bound would hang the forward pass, not fail it.
            var regexes = rankPattern.map(\.0) + alphaPattern.map(\.0)
            if case .regex(let p) = targets { regexes.append(p) }
            for p in regexes {
                if let reason = ModulePattern.backtrackingRisk(p) { throw LoRAAdapterError.badConfig("pattern \(p) is refused: \(reason)") }
            }
        }

        /// PEFT's `check_target_module_exists`: a regex must match the whole module path; a list
        /// entry must equal it or be its last dotted components.
        func isTargeted(_ module: String) throws -> Bool {
            switch targets {
            case .any: return true
            case .names(let names): return names.contains { module == $0 || module.hasSuffix("." + $0) }
            case .regex(let pattern):
                guard let regex = try? Regex(pattern) else { throw LoRAAdapterError.badConfig("target_modules is not a valid regex") }
                return (try? regex.wholeMatch(in: module)) != nil
            }
        }

        /// PEFT's `get_pattern_key`: the first pattern key `k` with `(.*\.)?(k)$` matching the module.
        func override<T>(_ patterns: [(String, T)], for module: String) throws -> T? {
            for (key, value) in patterns {
                guard let regex = try? Regex("(.*\\.)?(\(key))") else {
                    throw LoRAAdapterError.badConfig("pattern key '\(key)' is not a valid regex")
                }
                if (try? regex.wholeMatch(in: module)) != nil { return value }
            }
            return nil
        }
    }

    static func readDeltas(_ file: SafetensorsFile, settings: Settings) throws -> [String: Delta] {
        let prefix = "base_model.model."
        var a: [String: SafetensorsTensor] = [:], b: [String: SafetensorsTensor] = [:]
        for t in file.tensors {
            guard t.name.hasPrefix(prefix) else { throw LoRAAdapterError.unexpectedTensor(t.name) }
            let key = t.name.dropFirst(prefix.count)
            if key.hasSuffix(".lora_A.weight") {
                a[String(key.dropLast(".lora_A.weight".count))] = t
            } else if key.hasSuffix(".lora_B.weight") {
                b[String(key.dropLast(".lora_B.weight".count))] = t
            } else if key.hasSuffix(".lora_embedding_A") || key.hasSuffix(".lora_embedding_B") {
                throw LoRAAdapterError.unsupported("embedding LoRA ('\(t.name)')")
            } else {
                throw LoRAAdapterError.unexpectedTensor(t.name)
            }
        }
        var deltas: [String: Delta] = [:]
        for module in Set(a.keys).union(b.keys).sorted() {
            guard let ta = a[module], let tb = b[module] else { throw LoRAAdapterError.incompleteModule(module) }
            guard try settings.isTargeted(module) else { throw LoRAAdapterError.notTargeted(module) }
            if let layers = settings.layers, let layer = layerIndex(module), !layers.contains(layer) {
                throw LoRAAdapterError.notTargeted(module)
            }
            guard ta.shape.count == 2, tb.shape.count == 2, ta.shape[0] == tb.shape[1], ta.shape[0] > 0 else {
                throw LoRAAdapterError.shapeMismatch(module: module, reason: "lora_A \(ta.shape) and lora_B \(tb.shape) do not chain")
            }
            let rank = try settings.override(settings.rankPattern, for: module) ?? settings.rank
            guard rank == ta.shape[0] else {
                throw LoRAAdapterError.shapeMismatch(module: module, reason: "rank \(ta.shape[0]) in the file, \(rank) in adapter_config.json")
            }
            let alpha = try settings.override(settings.alphaPattern, for: module) ?? settings.alpha
            let scale = settings.rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
            deltas[module + ".weight"] = Delta(
                module: module, rank: rank, inFeatures: ta.shape[1], outFeatures: tb.shape[0], scale: Float(scale),
                a: try floats(file, ta), b: try floats(file, tb))
        }
        return deltas
    }

    /// `model.layers.<n>.…` → n.
    static func layerIndex(_ module: String) -> Int? {
        guard module.hasPrefix("model.layers.") else { return nil }
        return Int(module.dropFirst("model.layers.".count).prefix { $0 != "." })
    }

    static func floats(_ file: SafetensorsFile, _ t: SafetensorsTensor) throws -> [Float] {
        guard t.dtype.isConvertibleFloat else {
            throw LoRAAdapterError.shapeMismatch(module: t.name, reason: "dtype \(t.dtype.rawValue) is not a float type")
        }
        var values = [Float](repeating: 0, count: t.elementCount)
        values.withUnsafeMutableBufferPointer { DenseFloat.decode(file.bytes(of: t), dtype: t.dtype, into: $0) }
        return values
    }
}
