public import Formats

/// How RoPE frequencies are rescaled for longer contexts.
public enum RopeScaling: Sendable, Hashable {
    /// Plain RoPE (`rope_type: "default"`).
    case none
    /// Llama 3.1 style (`rope_type: "llama3"`): low frequencies divided by `factor`, a smooth
    /// blend between `lowFrequencyFactor` and `highFrequencyFactor` wavelengths.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContextLength: Int)
    /// Position interpolation (`rope_type: "linear"`): every frequency divided by `factor`.
    case linear(factor: Double)
    /// Per-frequency divisors, `head_dim / 2` of them: GGUF's `rope_freqs.weight`, which
    /// llama.cpp's converter writes for llama3 scaling instead of the parameters.
    case divisors([Float])
}

/// The shape of a decoder, independent of the file it came from: sizes, the block it runs
/// (``block``, LLaMA's unless a family says otherwise) and the family whose tensor layout the
/// weights follow (``family``). The name stays from the days it described LLaMA only.
///
/// Build it from values (the GGUF path maps `<arch>.*` keys), or from an HF `config.json`
/// with ``init(hfConfig:)`` (LLaMA's block) or ``init(hfConfig:family:)`` (any family). Scalars that Python keeps as doubles (eps, theta, rope factors)
/// stay Double here; the kernels round them to float32 where torch does.
public struct LlamaConfig: Sendable, Hashable {
    public var vocabularySize: Int
    /// Model width (`hidden_size`, llama.cpp `embedding_length`).
    public var hiddenSize: Int
    /// MLP width (`intermediate_size`).
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int
    /// The epsilon of every norm of the model (RMSNorm or LayerNorm, as ``block`` says).
    public var rmsNormEpsilon: Double
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling
    /// The output head is the token-embedding matrix (`tie_word_embeddings`).
    public var tiedEmbeddings: Bool
    /// `max_position_embeddings`: the default KV-cache capacity.
    public var maxPositions: Int
    /// Biases on the q, k and v projections (Qwen2's block; `o_proj` has none): ``block``'s `qkvBias`.
    public var attentionBias: Bool {
        get { block.qkvBias }
        set { block.qkvBias = newValue }
    }
    /// The decoder block as data: norm, MLP, positions, residual, biases.
    public var block: BlockDescription
    /// Whose tensor layout the weights follow (names, fused projections, transposes).
    public var family: ModelFamily
    /// Mistral's `sliding_window`: a query at position i sees keys j with i − window < j ≤ i
    /// (transformers' mask); nil for full causal attention.
    public var slidingWindow: Int?

    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
        headCount: Int, kvHeadCount: Int? = nil, headDimension: Int? = nil,
        rmsNormEpsilon: Double = 1e-6, ropeTheta: Double = 10000, ropeScaling: RopeScaling = .none,
        tiedEmbeddings: Bool = false, maxPositions: Int = 2048,
        attentionBias: Bool = false, slidingWindow: Int? = nil,
        block: BlockDescription? = nil, family: ModelFamily = .llama
    ) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount ?? headCount
        self.headDimension = headDimension ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tiedEmbeddings = tiedEmbeddings
        self.maxPositions = maxPositions
        let headDimension = self.headDimension
        self.block = block ?? .llama(headDimension: headDimension, qkvBias: attentionBias)
        self.family = family
        self.slidingWindow = slidingWindow
    }

    /// Whether the model runs LLaMA's block (what the LoRA trainer implements).
    public var runsLlamaBlock: Bool { block.isLlamaBlock(headDimension: headDimension) }

    /// Width of all query heads together (`headCount · headDimension`).
    public var queryDimension: Int { headCount * headDimension }
    /// Width of all key (or value) heads together (`kvHeadCount · headDimension`).
    public var kvDimension: Int { kvHeadCount * headDimension }

    /// Checks that the numbers describe a model the forward pass can run.
    /// - Throws: ``VerifyError/badConfigValue(key:reason:)``.
    public func validate() throws {
        func positive(_ value: Int, _ key: String) throws {
            guard value > 0 else { throw VerifyError.badConfigValue(key: key, reason: "must be positive, is \(value)") }
        }
        try positive(vocabularySize, "vocab_size")
        try positive(hiddenSize, "hidden_size")
        try positive(intermediateSize, "intermediate_size")
        try positive(layerCount, "num_hidden_layers")
        try positive(headCount, "num_attention_heads")
        try positive(kvHeadCount, "num_key_value_heads")
        try positive(headDimension, "head_dim")
        try positive(maxPositions, "max_position_embeddings")
        if let slidingWindow { try positive(slidingWindow, "sliding_window") }
        guard headCount % kvHeadCount == 0 else {
            throw VerifyError.badConfigValue(
                key: "num_key_value_heads", reason: "\(kvHeadCount) does not divide num_attention_heads \(headCount)")
        }
        switch block.positions {
        case .rotary(let dims):
            guard dims > 0, dims % 2 == 0, dims <= headDimension else {
                throw VerifyError.badConfigValue(
                    key: "head_dim", reason: "RoPE needs an even count of rotary dims ≤ the head size \(headDimension), has \(dims)")
            }
        case .learned(let offset):
            guard offset >= 0 else { throw VerifyError.badConfigValue(key: "position offset", reason: "must be ≥ 0") }
        case .alibi(let maxBias):
            guard maxBias.isFinite, maxBias > 0 else {
                throw VerifyError.badConfigValue(key: "alibi_bias_max", reason: "must be finite and positive")
            }
        case .none:
            break
        }
        guard rmsNormEpsilon.isFinite, rmsNormEpsilon >= 0 else {
            throw VerifyError.badConfigValue(key: "rms_norm_eps", reason: "must be finite and ≥ 0")
        }
        guard ropeTheta.isFinite, ropeTheta > 0 else {
            throw VerifyError.badConfigValue(key: "rope_theta", reason: "must be finite and positive")
        }
        switch ropeScaling {
        case .none:
            break
        case .linear(let factor):
            guard factor.isFinite, factor > 0 else {
                throw VerifyError.badConfigValue(key: "rope_scaling.factor", reason: "must be finite and positive")
            }
        case .divisors(let d):
            guard d.count == headDimension / 2, d.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw VerifyError.badConfigValue(
                    key: "rope_freqs", reason: "needs \(headDimension / 2) positive divisors, has \(d.count)")
            }
        case .llama3(let factor, let low, let high, let context):
            guard factor.isFinite, factor > 0 else {
                throw VerifyError.badConfigValue(key: "rope_scaling.factor", reason: "must be finite and positive")
            }
            guard low.isFinite, high.isFinite, low > 0, high > low else {
                throw VerifyError.badConfigValue(
                    key: "rope_scaling", reason: "needs 0 < low_freq_factor < high_freq_factor, has \(low), \(high)")
            }
            try positive(context, "rope_scaling.original_max_position_embeddings")
        }
        // Element counts of the largest matrices must not overflow.
        for (a, b) in [(vocabularySize, hiddenSize), (intermediateSize, hiddenSize), (queryDimension, hiddenSize)] {
            guard !a.multipliedReportingOverflow(by: b).overflow, a * b <= Int(Int32.max) else {
                throw VerifyError.badConfigValue(key: "hidden_size", reason: "matrix of \(a) × \(b) is too large")
            }
        }
    }
}

extension LlamaConfig {
    /// Reads an HF `config.json` of a `LlamaForCausalLM`, `MistralForCausalLM` or
    /// `Qwen2ForCausalLM` (transformers 4.x or 5.x).
    ///
    /// Mistral's `sliding_window` becomes ``slidingWindow``; Qwen2 always has q/k/v biases
    /// (``attentionBias``), and its own sliding window (`use_sliding_window`, per-layer) is refused.
    ///
    /// RoPE settings come from `rope_parameters` (transformers 5: `rope_theta`, `rope_type`,
    /// factors) or from the 4.x keys `rope_theta` and `rope_scaling` (`type` or `rope_type`).
    /// Defaults are `LlamaConfig`'s in transformers: head_dim = hidden/heads, kv heads = heads,
    /// rms_norm_eps 1e-6, rope_theta 10000, untied, 2048 positions.
    /// - Throws: ``VerifyError`` for missing or malformed keys and for features the forward
    ///   pass lacks (biases, activations other than SiLU, other RoPE types).
    public init(hfConfig json: JSONObject) throws {
        func value(_ key: String) -> JSONValue? {
            guard let v = json[key], !v.isNull else { return nil }
            return v
        }
        func int(_ key: String) throws -> Int? {
            guard let v = value(key) else { return nil }
            guard let i = v.intValue else { throw VerifyError.badConfigValue(key: key, reason: "not an integer") }
            return i
        }
        func requiredInt(_ key: String) throws -> Int {
            guard let i = try int(key) else { throw VerifyError.missingConfigKey(key) }
            return i
        }
        func number(_ v: JSONValue?, _ key: String) throws -> Double? {
            guard let v, !v.isNull else { return nil }
            guard let d = v.doubleValue else { throw VerifyError.badConfigValue(key: key, reason: "not a number") }
            return d
        }
        func double(_ key: String) throws -> Double? { try number(json[key], key) }
        func bool(_ key: String) throws -> Bool? {
            guard let v = value(key) else { return nil }
            guard let b = v.boolValue else { throw VerifyError.badConfigValue(key: key, reason: "not a boolean") }
            return b
        }

        if let activation = value("hidden_act") {
            guard activation.stringValue == "silu" else {
                throw VerifyError.unsupportedConfig("hidden_act \(activation), only silu")
            }
        }
        if try bool("attention_bias") == true { throw VerifyError.unsupportedConfig("attention_bias") }
        let architecture = value("architectures")?.arrayValue?.first?.stringValue
        let modelType = value("model_type")?.stringValue
        let isQwen2 = architecture == "Qwen2ForCausalLM" || (architecture == nil && modelType == "qwen2")
        let isMistral = architecture == "MistralForCausalLM" || (architecture == nil && modelType == "mistral")
        var window: Int? = nil
        if isQwen2 {
            // Qwen2 windows only layers ≥ max_window_layers, and only with use_sliding_window.
            let layerTypes = value("layer_types")?.arrayValue ?? []
            if try bool("use_sliding_window") == true || layerTypes.contains(where: { $0.stringValue == "sliding_attention" }) {
                throw VerifyError.unsupportedConfig("Qwen2 use_sliding_window")
            }
        } else if isMistral {
            window = try int("sliding_window")
        } else if value("sliding_window") != nil {
            throw VerifyError.unsupportedConfig("sliding_window outside Mistral")
        }
        if try bool("mlp_bias") == true { throw VerifyError.unsupportedConfig("mlp_bias") }

        // transformers 5 keeps everything in rope_parameters; 4.x has rope_theta + rope_scaling.
        var rope = JSONObject()
        if let parameters = value("rope_parameters") {
            guard let object = parameters.objectValue else {
                throw VerifyError.badConfigValue(key: "rope_parameters", reason: "not an object")
            }
            rope = object
        } else if let scaling = value("rope_scaling") {
            guard let object = scaling.objectValue else {
                throw VerifyError.badConfigValue(key: "rope_scaling", reason: "not an object")
            }
            rope = object
        }
        let theta = try number(rope["rope_theta"], "rope_theta") ?? double("rope_theta") ?? 10000
        if let partial = try number(rope["partial_rotary_factor"], "partial_rotary_factor") ?? double("partial_rotary_factor"), partial != 1 {
            throw VerifyError.unsupportedConfig("partial_rotary_factor \(partial)")
        }
        let ropeType = rope["rope_type"]?.stringValue ?? rope["type"]?.stringValue ?? "default"
        func ropeNumber(_ key: String) throws -> Double {
            guard let d = try number(rope[key], key) else { throw VerifyError.missingConfigKey("rope_parameters.\(key)") }
            return d
        }
        let scaling: RopeScaling
        switch ropeType {
        case "default":
            scaling = .none
        case "linear":
            scaling = .linear(factor: try ropeNumber("factor"))
        case "llama3":
            let context = try ropeNumber("original_max_position_embeddings")
            guard let contextLength = Int(exactly: context) else {
                throw VerifyError.badConfigValue(key: "original_max_position_embeddings", reason: "not an integer")
            }
            scaling = .llama3(
                factor: try ropeNumber("factor"), lowFrequencyFactor: try ropeNumber("low_freq_factor"),
                highFrequencyFactor: try ropeNumber("high_freq_factor"), originalContextLength: contextLength)
        default:
            throw VerifyError.unsupportedConfig("rope_type \(ropeType)")
        }

        let heads = try requiredInt("num_attention_heads")
        let hidden = try requiredInt("hidden_size")
        guard heads > 0 else { throw VerifyError.badConfigValue(key: "num_attention_heads", reason: "must be positive") }
        self.init(
            vocabularySize: try requiredInt("vocab_size"),
            hiddenSize: hidden,
            intermediateSize: try requiredInt("intermediate_size"),
            layerCount: try requiredInt("num_hidden_layers"),
            headCount: heads,
            kvHeadCount: try int("num_key_value_heads") ?? heads,
            headDimension: try int("head_dim") ?? hidden / heads,
            rmsNormEpsilon: try double("rms_norm_eps") ?? 1e-6,
            ropeTheta: theta,
            ropeScaling: scaling,
            tiedEmbeddings: try bool("tie_word_embeddings") ?? false,
            maxPositions: try int("max_position_embeddings") ?? 2048,
            attentionBias: isQwen2,
            slidingWindow: window)
        try validate()
    }
}
