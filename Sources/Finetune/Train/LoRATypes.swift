public import Verify
import Formats

/// The projections of a LLaMA decoder layer a LoRA adapter can attach to, named as PEFT's
/// `target_modules` names them.
public enum LoRATarget: String, CaseIterable, Sendable, Hashable, Comparable {
    case query = "q_proj"
    case key = "k_proj"
    case value = "v_proj"
    case output = "o_proj"
    case gate = "gate_proj"
    case up = "up_proj"
    case down = "down_proj"

    /// The module path inside a decoder layer (`self_attn.q_proj`, `mlp.down_proj`), as in the
    /// HF tensor names and PEFT's adapter keys.
    public var modulePath: String {
        switch self {
        case .query, .key, .value, .output: "self_attn." + rawValue
        case .gate, .up, .down: "mlp." + rawValue
        }
    }

    /// `(inFeatures, outFeatures)` of the projection for a model shape.
    public func features(_ c: LlamaConfig) -> (inFeatures: Int, outFeatures: Int) {
        switch self {
        case .query: (c.hiddenSize, c.queryDimension)
        case .key, .value: (c.hiddenSize, c.kvDimension)
        case .output: (c.queryDimension, c.hiddenSize)
        case .gate, .up: (c.hiddenSize, c.intermediateSize)
        case .down: (c.intermediateSize, c.hiddenSize)
        }
    }

    /// The module path inside a decoder layer of `family`, under the family's own names (OPT's
    /// `self_attn.out_proj`, `fc1`, `fc2`; phi's `self_attn.dense`, `mlp.fc1`, `mlp.fc2`), or nil
    /// when training does not adapt that projection there (no gate in a plain MLP, fused q|k|v).
    public func modulePath(in family: ModelFamily) -> String? {
        switch (family, self) {
        case (.llama, _): modulePath
        case (.opt, .query), (.opt, .key), (.opt, .value), (.phi, .query), (.phi, .key), (.phi, .value): modulePath
        // Fused q|k|v: one pair on `.query` covers the whole module (``adapterFeatures(_:)``).
        case (.gpt2, .query): "attn.c_attn"
        case (.gpt2, .output): "attn.c_proj"
        case (.gpt2, .up): "mlp.c_fc"
        case (.gpt2, .down): "mlp.c_proj"
        case (.mpt, .query): "attn.Wqkv"
        case (.mpt, .output): "attn.out_proj"
        case (.mpt, .up): "ffn.up_proj"
        case (.mpt, .down): "ffn.down_proj"
        case (.persimmon, .query): "self_attn.query_key_value"
        case (.persimmon, .output): "self_attn.dense"
        case (.persimmon, .up): "mlp.dense_h_to_4h"
        case (.persimmon, .down): "mlp.dense_4h_to_h"
        case (.falcon, .query): "self_attention.query_key_value"
        case (.falcon, .output): "self_attention.dense"
        case (.falcon, .up): "mlp.dense_h_to_4h"
        case (.falcon, .down): "mlp.dense_4h_to_h"
        case (.opt, .output): "self_attn.out_proj"
        case (.opt, .up): "fc1"
        case (.opt, .down): "fc2"
        case (.phi, .output): "self_attn.dense"
        case (.phi, .up): "mlp.fc1"
        case (.phi, .down): "mlp.fc2"
        // Qwen-7B: c_proj(w1(x) · silu(w2(x))), so w2 is the gate; `c_proj` names two modules.
        case (.qwen, .query): "attn.c_attn"
        case (.qwen, .output): "attn.c_proj"
        case (.qwen, .gate): "mlp.w2"
        case (.qwen, .up): "mlp.w1"
        case (.qwen, .down): "mlp.c_proj"
        case (.baichuan, .query): "self_attn.W_pack"
        case (.baichuan, .output), (.baichuan, .gate), (.baichuan, .up), (.baichuan, .down): modulePath
        default: nil
        }
    }

    /// The PEFT `target_modules` name of this projection in `family` (the module path's leaf).
    public func peftName(in family: ModelFamily) -> String? {
        modulePath(in: family).map { String($0.split(separator: ".").last ?? "") }
    }

    /// The projections `family` calls `name` (a `target_modules` leaf; GPT-2's `c_proj` names
    /// two), in layer order.
    public static func targets(peftName name: String, family: ModelFamily) -> [LoRATarget] {
        allCases.filter { $0.peftName(in: family) == name }
    }

    /// Where `family`'s decoder layers sit in the HF module tree (`model.layers.`, OPT's
    /// `model.decoder.layers.`, GPT-2's `transformer.h.`, MPT's `transformer.blocks.`).
    public static func layerPrefix(in family: ModelFamily) -> String {
        switch family {
        case .opt: "model.decoder.layers."
        case .gpt2: "transformer.h."
        case .mpt: "transformer.blocks."
        case .falcon, .qwen: "transformer.h."
        default: "model.layers."
        }
    }

    /// Whether the model adapts q, k and v as one fused module (GPT-2's and Qwen-7B's `c_attn`, MPT's
    /// `Wqkv`, Falcon's `query_key_value`, Baichuan's `W_pack`): PEFT puts one pair on it, here the pair of `.query`.
    public static func fusesQKV(_ c: LlamaConfig) -> Bool {
        c.family == .gpt2 || c.family == .mpt || c.family == .falcon || c.family == .persimmon || c.family == .qwen
            || c.family == .baichuan
    }

    /// For a fused module whose rows are not q | k | v in that order (Falcon's new decoder: per KV
    /// group its query heads, one key head, one value head; Persimmon: per head q, k, v), the fused row of each row of the
    /// q | k | v order; nil when the rows are already in that order. Training keeps the fused
    /// pair's B in q | k | v order and reorders it at the adapter's boundaries.
    static func fusedRowOrder(_ c: LlamaConfig) -> [Int]? {
        guard (c.family == .falcon && c.kvHeadCount > 1) || c.family == .persimmon else { return nil }
        let hd = c.headDimension, group = c.headCount / c.kvHeadCount, width = (group + 2) * hd
        var q: [Int] = [], k: [Int] = [], v: [Int] = []
        for g in 0 ..< c.kvHeadCount {
            q += (0 ..< group * hd).map { g * width + $0 }
            k += (0 ..< hd).map { g * width + group * hd + $0 }
            v += (0 ..< hd).map { g * width + (group + 1) * hd + $0 }
        }
        return q + k + v
    }

    /// `(inFeatures, outFeatures)` of this target's adapter pair: ``features(_:)``, except the
    /// fused q|k|v pair (`.query` of a ``fusesQKV(_:)`` model), whose B covers q, k and v.
    public func adapterFeatures(_ c: LlamaConfig) -> (inFeatures: Int, outFeatures: Int) {
        guard self == .query, Self.fusesQKV(c) else { return features(c) }
        return (c.hiddenSize, c.queryDimension + 2 * c.kvDimension)
    }

    /// For a fused family, the row of the q|k|v pair's B where `self`'s (q, k or v) rows start.
    func fusedRowOffset(_ c: LlamaConfig) -> Int? {
        guard Self.fusesQKV(c) else { return nil }
        switch self {
        case .query: return 0
        case .key: return c.queryDimension
        case .value: return c.queryDimension + c.kvDimension
        default: return nil
        }
    }

    /// Position in the layer's computation order (q, k, v, o, gate, up, down): the order of
    /// parameters everywhere (optimizer state, checkpoints, gradient norms).
    var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    public static func < (a: LoRATarget, b: LoRATarget) -> Bool { a.order < b.order }
}

/// The hyper-parameters of a LoRA adapter (PEFT `LoraConfig`: `r`, `lora_alpha`,
/// `lora_dropout`, `use_rslora`, `target_modules`).
public struct LoRAConfig: Sendable, Hashable {
    /// `r`: rank of the update `B·A`.
    public var rank: Int
    /// `lora_alpha`.
    public var alpha: Double
    /// `lora_dropout`: probability of zeroing an input element of `A` during training
    /// (inverted dropout: kept elements are scaled by `1 / (1 − p)`, as `nn.Dropout`).
    public var dropout: Double
    /// `use_rslora`: scale by `alpha / √r` instead of `alpha / r`.
    public var useRSLoRA: Bool
    /// Projection names (``LoRATarget`` raw values: `q_proj` … `down_proj`); every layer gets
    /// an adapter on each of them.
    public var targets: [String]

    /// The factor the update is multiplied by: `alpha / r`, or `alpha / √r` with rsLoRA.
    public var scaling: Double { loraScaling(alpha: alpha, rank: rank, rsLoRA: useRSLoRA) }

    /// All seven projections, in layer order: QLoRA's recommendation (adapt every linear layer).
    public static let allTargets = LoRATarget.allCases.map(\.rawValue)

    public init(rank: Int = 8, alpha: Double = 16, dropout: Double = 0, useRSLoRA: Bool = false,
                targets: [String] = LoRAConfig.allTargets) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.useRSLoRA = useRSLoRA
        self.targets = targets
    }

    /// The targets as ``LoRATarget`` values, deduplicated, in layer order.
    /// - Throws: ``TrainingError/unknownTarget(_:)`` for a name that is not one of the seven.
    public func resolvedTargets() throws(TrainingError) -> [LoRATarget] {
        var result = Set<LoRATarget>()
        for name in targets {
            guard let t = LoRATarget(rawValue: name) else { throw .unknownTarget(name) }
            result.insert(t)
        }
        return result.sorted()
    }

    /// Checks the values are usable.
    /// - Throws: ``TrainingError/badHyperparameter(name:reason:)`` or ``TrainingError/unknownTarget(_:)``.
    public func validate() throws(TrainingError) {
        guard rank > 0 else { throw .badHyperparameter(name: "rank", reason: "must be positive, is \(rank)") }
        guard alpha.isFinite else { throw .badHyperparameter(name: "alpha", reason: "must be finite") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else {
            throw .badHyperparameter(name: "dropout", reason: "must be in [0, 1), is \(dropout)")
        }
        guard !targets.isEmpty else { throw .badHyperparameter(name: "targets", reason: "no target modules") }
        _ = try resolvedTargets()
    }
}

/// Identifies one adapted projection: decoder layer and target.
public struct LoRAKey: Sendable, Hashable, Comparable {
    public var layer: Int
    public var target: LoRATarget

    public init(layer: Int, target: LoRATarget) {
        self.layer = layer
        self.target = target
    }

    /// PEFT's module prefix without the adapter suffix:
    /// `base_model.model.model.layers.3.self_attn.q_proj` (append `.lora_A.weight` / `.lora_B.weight`).
    public var peftModuleName: String { "base_model.model.model.layers.\(layer).\(target.modulePath)" }

    public static func < (a: LoRAKey, b: LoRAKey) -> Bool {
        (a.layer, a.target.order) < (b.layer, b.target.order)
    }
}

/// The two matrices of one adapted projection, in PEFT's layout: `A` is `lora_A.weight`
/// `[rank, inFeatures]` and `B` is `lora_B.weight` `[outFeatures, rank]`, both row-major float32.
/// The projection computes `y = W·x + scaling · B·(A·dropout(x))`.
public struct LoRAPair: Sendable, Hashable {
    public var rank: Int
    public var inFeatures: Int
    public var outFeatures: Int
    /// `[rank, inFeatures]`.
    public var a: [Float]
    /// `[outFeatures, rank]`.
    public var b: [Float]

    /// - Throws: ``TrainingError/shapeMismatch(what:expected:actual:)`` if an array has the wrong size.
    public init(rank: Int, inFeatures: Int, outFeatures: Int, a: [Float], b: [Float]) throws(TrainingError) {
        guard rank > 0, inFeatures > 0, outFeatures > 0 else {
            throw .badHyperparameter(name: "rank", reason: "adapter dimensions must be positive")
        }
        guard a.count == rank * inFeatures else { throw .shapeMismatch(what: "lora_A", expected: rank * inFeatures, actual: a.count) }
        guard b.count == outFeatures * rank else { throw .shapeMismatch(what: "lora_B", expected: outFeatures * rank, actual: b.count) }
        self.rank = rank
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.a = a
        self.b = b
    }

    /// Number of trainable values (`A` and `B`).
    public var parameterCount: Int { a.count + b.count }
}

/// The adapter matrices of a whole model: one ``LoRAPair`` per (layer, target).
///
/// Iteration order (``keys``) is layer-major, then q, k, v, o, gate, up, down: the order of
/// the optimizer state and of every reduction over parameters, so results do not depend on
/// hashing.
public struct LoRAWeights: Sendable, Hashable {
    /// Shape of the model the adapter belongs to.
    public let modelConfig: LlamaConfig
    /// The adapter's hyper-parameters.
    public let loraConfig: LoRAConfig
    /// Adapted projections, sorted.
    public let keys: [LoRAKey]
    private var pairs: [LoRAKey: LoRAPair]

    /// PEFT's default initialisation (`init_lora_weights=True`): every `A` drawn from
    /// `kaiming_uniform_(a=√5)`, which is U(−1/√in, 1/√in), and every `B` zero, so the adapted
    /// model starts equal to the base. The draws come from a seeded generator (not torch's),
    /// in ``keys`` order, row-major.
    /// - Throws: ``TrainingError`` for invalid hyper-parameters or model shape.
    public init(zeroBFor model: LlamaConfig, lora: LoRAConfig, seed: UInt64) throws {
        try lora.validate()
        try model.validate()
        var rng = TrainingRandom(seed: seed)
        var pairs: [LoRAKey: LoRAPair] = [:]
        let targets = try lora.resolvedTargets()
        var keys: [LoRAKey] = []
        for layer in 0 ..< model.layerCount {
            for target in targets {
                let (n, m) = target.adapterFeatures(model)
                let bound = 1 / Float(Double(n).squareRoot())
                let a = (0 ..< lora.rank * n).map { _ in rng.nextUniform(-bound, bound) }
                let key = LoRAKey(layer: layer, target: target)
                keys.append(key)
                pairs[key] = try LoRAPair(rank: lora.rank, inFeatures: n, outFeatures: m, a: a,
                                          b: [Float](repeating: 0, count: m * lora.rank))
            }
        }
        self.modelConfig = model
        self.loraConfig = lora
        self.keys = keys
        self.pairs = pairs
    }

    /// Wraps given matrices (an adapter read from disk, a golden), checking every key and shape
    /// against the two configurations: exactly one pair per layer and configured target.
    /// - Throws: ``TrainingError`` naming the first missing, extra or mis-sized pair.
    public init(modelConfig: LlamaConfig, loraConfig: LoRAConfig, pairs: [LoRAKey: LoRAPair]) throws {
        try loraConfig.validate()
        let targets = try loraConfig.resolvedTargets()
        var keys: [LoRAKey] = []
        for layer in 0 ..< modelConfig.layerCount {
            for target in targets {
                let key = LoRAKey(layer: layer, target: target)
                guard let p = pairs[key] else { throw TrainingError.missingAdapter(key.peftModuleName) }
                let (n, m) = target.adapterFeatures(modelConfig)
                guard p.rank == loraConfig.rank, p.inFeatures == n, p.outFeatures == m else {
                    throw TrainingError.shapeMismatch(what: key.peftModuleName + ".lora_A/B",
                                                      expected: loraConfig.rank * (n + m), actual: p.rank * (p.inFeatures + p.outFeatures))
                }
                keys.append(key)
            }
        }
        if let extra = pairs.keys.sorted().first(where: { !keys.contains($0) }) {
            throw TrainingError.unexpectedAdapter(extra.peftModuleName)
        }
        self.modelConfig = modelConfig
        self.loraConfig = loraConfig
        self.keys = keys
        self.pairs = pairs
    }

    /// The pair of `layer`/`target`, nil if that projection is not adapted.
    public subscript(layer: Int, target: LoRATarget) -> LoRAPair? {
        pairs[LoRAKey(layer: layer, target: target)]
    }

    /// The pair for `key`, nil if that projection is not adapted.
    public subscript(key: LoRAKey) -> LoRAPair? {
        pairs[key]
    }

    /// Replaces `A` and `B` of an adapted projection (sizes must stay the same).
    /// - Throws: ``TrainingError`` if `key` is not adapted or the sizes differ.
    public mutating func set(_ key: LoRAKey, a: [Float], b: [Float]) throws(TrainingError) {
        guard var p = pairs[key] else { throw .missingAdapter(key.peftModuleName) }
        guard a.count == p.a.count else { throw .shapeMismatch(what: key.peftModuleName + ".lora_A", expected: p.a.count, actual: a.count) }
        guard b.count == p.b.count else { throw .shapeMismatch(what: key.peftModuleName + ".lora_B", expected: p.b.count, actual: b.count) }
        p.a = a
        p.b = b
        pairs[key] = p
    }

    /// `scaling` of the configuration, as float32 (the factor applied in the forward pass).
    public var scaling: Float { Float(loraConfig.scaling) }

    /// Total number of trainable values.
    public var parameterCount: Int { keys.reduce(0) { $0 + (pairs[$1]?.parameterCount ?? 0) } }
}

/// One training sequence.
///
/// `lossMask[t]` is true where token `t` is a target, i.e. the model is trained to predict
/// it from tokens `0 ..< t` (HF `labels[t] = tokens[t]`, `-100` elsewhere). `lossMask[0]` has no
/// effect: nothing predicts the first token. The loss is the mean cross-entropy over all
/// target tokens, as transformers' `ForCausalLMLoss` computes it.
public struct TrainingExample: Sendable, Hashable {
    public var tokens: [Int]
    public var lossMask: [Bool]

    /// - Throws: ``TrainingError/shapeMismatch(what:expected:actual:)`` if the lengths differ.
    public init(tokens: [Int], lossMask: [Bool]) throws(TrainingError) {
        guard tokens.count == lossMask.count else {
            throw .shapeMismatch(what: "loss mask", expected: tokens.count, actual: lossMask.count)
        }
        self.tokens = tokens
        self.lossMask = lossMask
    }

    /// Every token after the first is a target (plain language modelling on `tokens`).
    public init(tokens: [Int]) {
        self.tokens = tokens
        self.lossMask = tokens.indices.map { $0 > 0 }
    }

    /// Number of tokens that contribute to the loss (targets after position 0).
    public var targetCount: Int {
        lossMask.indices.dropFirst().reduce(0) { $0 + (lossMask[$1] ? 1 : 0) }
    }
}
