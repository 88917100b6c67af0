public import Formats

/// Typed reads of config.json keys with ``VerifyError``s naming the key.
struct ConfigKeys {
    let json: JSONObject
    let family: ModelFamily

    func value(_ key: String) -> JSONValue? {
        var object = json
        let parts = key.split(separator: ".").map(String.init)
        for part in parts.dropLast() {
            guard let next = object[part]?.objectValue else { return nil }
            object = next
        }
        guard let v = object[parts.last ?? key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.intValue else { throw VerifyError.badConfigValue(key: key, reason: "not an integer") }
        return i
    }

    func int(_ keys: [String]) throws -> Int? {
        for k in keys { if let i = try int(k) { return i } }
        return nil
    }

    func required(_ keys: String...) throws -> Int {
        guard let i = try int(keys) else { throw VerifyError.missingConfigKey(keys[0]) }
        return i
    }

    func double(_ keys: String...) throws -> Double? {
        for key in keys {
            guard let v = value(key) else { continue }
            guard let d = v.doubleValue else { throw VerifyError.badConfigValue(key: key, reason: "not a number") }
            return d
        }
        return nil
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.boolValue else { throw VerifyError.badConfigValue(key: key, reason: "not a boolean") }
        return b
    }

    func string(_ key: String) -> String? { value(key)?.stringValue }

    /// Refuses a feature by name: "<family>: <what> is not implemented by the forward pass".
    func refuse(_ what: String) -> VerifyError {
        VerifyError.unsupportedConfig("\(family.displayName): \(what)")
    }

    /// The activation named by `key` (default `fallback`).
    func activation(_ key: String, default fallback: String) throws -> BlockDescription.Activation {
        let name = string(key) ?? fallback
        switch name {
        case "gelu": return .geluExact
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .geluTanh
        case "relu": return .relu
        case "relu2": return .squaredReLU
        default: throw refuse("\(key) \(name)")
        }
    }

    /// `rope_theta` from transformers 5's `rope_parameters` or the 4.x top-level key; only the
    /// default rope type.
    func ropeTheta(default fallback: Double) throws -> Double {
        if let type = string("rope_parameters.rope_type") ?? string("rope_scaling.rope_type") ?? string("rope_scaling.type"),
           type != "default" {
            throw refuse("rope_type \(type)")
        }
        return try double("rope_parameters.rope_theta", "rope_theta") ?? fallback
    }

    /// `partial_rotary_factor` (transformers 5 keeps it in `rope_parameters`).
    func partialRotaryFactor() throws -> Double {
        let factor = try double("rope_parameters.partial_rotary_factor", "partial_rotary_factor") ?? 1
        guard factor.isFinite, factor > 0, factor <= 1 else {
            throw VerifyError.badConfigValue(key: "partial_rotary_factor", reason: "must be in (0, 1], is \(factor)")
        }
        return factor
    }

    /// The rotary dims of a head: `int(factor · head_dim)` as transformers computes them.
    func rotaryDimensions(headDimension: Int) throws -> Int {
        Int((try partialRotaryFactor() * Double(headDimension)).rounded(.towardZero))
    }

    /// `a · b` for a size read from the file, refused when it overflows.
    func product(_ a: Int, _ b: Int, key: String) throws -> Int {
        let (p, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow else { throw VerifyError.badConfigValue(key: key, reason: "\(a) × \(b) overflows") }
        return p
    }
}

extension LlamaConfig {
    /// Reads the HF `config.json` of any ``ModelFamily`` and describes its block.
    ///
    /// ``ModelFamily/llama`` is ``init(hfConfig:)``. The others follow transformers' modeling
    /// code (or, for the remote-code families Baichuan and Qwen-7B, the published
    /// `modeling_*.py`): defaults as their config classes, features the forward pass lacks refused
    /// with a ``VerifyError/unsupportedConfig(_:)`` naming the family and the key.
    /// - Throws: ``VerifyError`` for missing, malformed or unsupported keys.
    public init(hfConfig json: JSONObject, family: ModelFamily) throws {
        let k = ConfigKeys(json: json, family: family)
        switch family {
        case .llama:
            try self.init(hfConfig: json)
            return
        case .gpt2:
            let dim = try k.required("n_embd", "hidden_size"), heads = try k.required("n_head", "num_attention_heads")
            if try k.bool("scale_attn_by_inverse_layer_idx") == true { throw k.refuse("scale_attn_by_inverse_layer_idx") }
            if try k.bool("scale_attn_weights") == false { throw k.refuse("scale_attn_weights false") }
            if try k.bool("add_cross_attention") == true { throw k.refuse("add_cross_attention") }
            let positions = try k.required("n_positions", "max_position_embeddings")
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim,
                intermediateSize: try k.int("n_inner") ?? k.product(4, dim, key: "n_embd"), layerCount: try k.required("n_layer", "num_hidden_layers"),
                headCount: heads, rmsNormEpsilon: try k.double("layer_norm_epsilon") ?? 1e-5,
                tiedEmbeddings: try k.bool("tie_word_embeddings") ?? true, maxPositions: positions,
                block: BlockDescription(norm: .layerNorm(bias: true),
                                        mlp: .plain(try k.activation("activation_function", default: "gelu_new")),
                                        positions: .learned(offset: 0), qkvBias: true, outputBias: true, mlpBias: true),
                family: .gpt2)
        case .opt:
            let dim = try k.required("hidden_size")
            if try k.bool("do_layer_norm_before") == false { throw k.refuse("do_layer_norm_before false (post-LN, OPT-350m)") }
            if let proj = try k.int("word_embed_proj_dim"), proj != dim { throw k.refuse("word_embed_proj_dim \(proj) ≠ hidden_size (project_in/out)") }
            if try k.bool("_remove_final_layer_norm") == true { throw k.refuse("_remove_final_layer_norm") }
            if try k.bool("layer_norm_elementwise_affine") == false { throw k.refuse("layer_norm_elementwise_affine false") }
            let bias = try k.bool("enable_bias") ?? true
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim, intermediateSize: try k.required("ffn_dim"),
                layerCount: try k.required("num_hidden_layers"), headCount: try k.required("num_attention_heads"),
                rmsNormEpsilon: 1e-5, tiedEmbeddings: try k.bool("tie_word_embeddings") ?? true,
                maxPositions: try k.int("max_position_embeddings") ?? 2048,
                block: BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(try k.activation("activation_function", default: "relu")),
                                        positions: .learned(offset: 2), qkvBias: bias, outputBias: bias, mlpBias: bias),
                family: .opt)
        case .phi:
            let dim = try k.required("hidden_size"), heads = try k.required("num_attention_heads")
            if try k.bool("qk_layernorm") == true { throw k.refuse("qk_layernorm") }
            let headDim = dim / max(1, heads)
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim, intermediateSize: try k.required("intermediate_size"),
                layerCount: try k.required("num_hidden_layers"), headCount: heads,
                kvHeadCount: try k.int("num_key_value_heads") ?? heads,
                rmsNormEpsilon: try k.double("layer_norm_eps") ?? 1e-5, ropeTheta: try k.ropeTheta(default: 10000),
                tiedEmbeddings: try k.bool("tie_word_embeddings") ?? false,
                maxPositions: try k.int("max_position_embeddings") ?? 2048,
                block: BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(try k.activation("hidden_act", default: "gelu_new")),
                                        positions: .rotary(dimensions: try k.rotaryDimensions(headDimension: headDim)),
                                        residual: .parallel(separateNorms: false),
                                        qkvBias: true, outputBias: true, mlpBias: true, headBias: true),
                family: .phi)
        case .falcon:
            let dim = try k.required("hidden_size"), heads = try k.required("num_attention_heads", "n_head")
            if try k.bool("alibi") == true { throw k.refuse("alibi (Falcon-RW)") }
            let newArchitecture = try k.bool("new_decoder_architecture") ?? false
            let kvHeads: Int
            let residual: BlockDescription.Residual
            if newArchitecture {
                kvHeads = try k.int(["num_kv_heads", "n_head_kv"]) ?? heads
                residual = .parallel(separateNorms: (try k.int("num_ln_in_parallel_attn") ?? 2) == 2)
            } else {
                kvHeads = try k.bool("multi_query") ?? true ? 1 : heads
                residual = try k.bool("parallel_attn") ?? true ? .parallel(separateNorms: false) : .sequential
            }
            let bias = try k.bool("bias") ?? false
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim,
                intermediateSize: try k.int("ffn_hidden_size") ?? k.product(4, dim, key: "hidden_size"),
                layerCount: try k.required("num_hidden_layers", "n_layer"), headCount: heads, kvHeadCount: kvHeads,
                rmsNormEpsilon: try k.double("layer_norm_epsilon") ?? 1e-5, ropeTheta: try k.ropeTheta(default: 10000),
                tiedEmbeddings: try k.bool("tie_word_embeddings") ?? true,
                maxPositions: try k.int("max_position_embeddings") ?? 2048,
                block: BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(try k.activation("activation", default: "gelu")),
                                        positions: .rotary(dimensions: dim / max(1, heads)), residual: residual,
                                        qkvBias: bias, outputBias: bias, mlpBias: bias),
                family: .falcon)
        case .mpt:
            let dim = try k.required("d_model"), heads = try k.required("n_heads")
            guard try k.bool("attn_config.alibi") ?? false else { throw k.refuse("attn_config.alibi false (learned positions)") }
            if k.value("attn_config.clip_qkv") != nil { throw k.refuse("attn_config.clip_qkv") }
            if try k.bool("attn_config.qk_ln") == true { throw k.refuse("attn_config.qk_ln") }
            if k.value("attn_config.softmax_scale") != nil { throw k.refuse("attn_config.softmax_scale") }
            if let kv = try k.int("attn_config.kv_n_heads"), kv != heads { throw k.refuse("attn_config.kv_n_heads \(kv)") }
            if k.value("logit_scale") != nil { throw k.refuse("logit_scale") }
            let bias = !(try k.bool("no_bias") ?? true)
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim,
                intermediateSize: try k.product(dim, try k.int("expansion_ratio") ?? 4, key: "expansion_ratio"), layerCount: try k.required("n_layers"),
                headCount: heads, rmsNormEpsilon: try k.double("layer_norm_epsilon") ?? 1e-5,
                tiedEmbeddings: true, maxPositions: try k.int("max_seq_len") ?? 2048,
                block: BlockDescription(norm: .layerNorm(bias: bias), mlp: .plain(.geluExact),
                                        positions: .alibi(maxBias: try k.double("attn_config.alibi_bias_max") ?? 8),
                                        qkvBias: bias, outputBias: bias, mlpBias: bias),
                family: .mpt)
        case .baichuan:
            let dim = try k.required("hidden_size"), heads = try k.required("num_attention_heads")
            if let act = k.string("hidden_act"), act != "silu" { throw k.refuse("hidden_act \(act)") }
            // 7B configs name max_position_embeddings (RoPE); 13B configs only model_max_length (ALiBi).
            let rotary = k.value("max_position_embeddings") != nil
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim, intermediateSize: try k.required("intermediate_size"),
                layerCount: try k.required("num_hidden_layers"), headCount: heads,
                rmsNormEpsilon: try k.double("rms_norm_eps") ?? 1e-6, ropeTheta: 10000,
                tiedEmbeddings: try k.bool("tie_word_embeddings") ?? false,
                maxPositions: try k.int(["max_position_embeddings", "model_max_length"]) ?? 4096,
                block: BlockDescription(norm: .rms, mlp: .swiGLU,
                                        positions: rotary ? .rotary(dimensions: dim / max(1, heads)) : .alibi(maxBias: 8)),
                family: .baichuan)
        case .qwen:
            let dim = try k.required("hidden_size"), heads = try k.required("num_attention_heads")
            if let pct = try k.double("rotary_pct"), pct != 1 { throw k.refuse("rotary_pct \(pct)") }
            let headDim = try k.int("kv_channels") ?? dim / max(1, heads)
            // w1/w2 are intermediate_size / 2 wide. use_logn_attn and dynamic NTK act only beyond
            // seq_length, so the context stops there.
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim,
                intermediateSize: try k.required("intermediate_size") / 2, layerCount: try k.required("num_hidden_layers"),
                headCount: heads, headDimension: headDim, rmsNormEpsilon: try k.double("layer_norm_epsilon") ?? 1e-6,
                ropeTheta: try k.double("rotary_emb_base") ?? 10000,
                tiedEmbeddings: try k.bool("tie_word_embeddings") ?? false,
                maxPositions: try k.int(["seq_length", "max_position_embeddings"]) ?? 2048,
                block: BlockDescription(norm: .rms, mlp: .swiGLU, positions: .rotary(dimensions: headDim), qkvBias: true),
                family: .qwen)
        case .persimmon:
            let dim = try k.required("hidden_size"), heads = try k.required("num_attention_heads")
            guard try k.bool("qk_layernorm") ?? true else { throw k.refuse("qk_layernorm false") }
            let headDim = dim / max(1, heads)
            self.init(
                vocabularySize: try k.required("vocab_size"), hiddenSize: dim, intermediateSize: try k.required("intermediate_size"),
                layerCount: try k.required("num_hidden_layers"), headCount: heads,
                rmsNormEpsilon: try k.double("layer_norm_eps") ?? 1e-5, ropeTheta: try k.ropeTheta(default: 25000),
                tiedEmbeddings: try k.bool("tie_word_embeddings") ?? false,
                maxPositions: try k.int("max_position_embeddings") ?? 16384,
                block: BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(try k.activation("hidden_act", default: "relu2")),
                                        positions: .rotary(dimensions: try k.rotaryDimensions(headDimension: headDim)),
                                        qkvBias: true, outputBias: true, mlpBias: true, qkNorm: true),
                family: .persimmon)
        }
        try validate()
    }
}
