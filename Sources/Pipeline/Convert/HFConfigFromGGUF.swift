import TensorCore
import Formats

/// The config.json (and generation_config.json) of a GGUF → HF conversion: rebuilt from the GGUF's
/// `<arch>.*` metadata and tensor shapes in the keys transformers 5 saves for the family's class, or
/// the original config given with `--config` (``ConvertOptions/hfConfig``), checked against the GGUF.
///
/// What GGUF does not keep (docs/families.md, "GGUF → HF"): Mistral's class and sliding window
/// (its GGUF is `llama`, so the config is LlamaForCausalLM), Falcon's context length (the converter
/// writes 2048) and rope base, phi's rope base, and everything of the remote-code families (Qwen-7B,
/// Baichuan), which therefore need `--config`.
enum HFConfigFromGGUF {
    struct Input {
        let metadata: GGUFMetadata
        let arch: ArchitectureDescription
        let archName: String
        let path: String
        /// HF tensor name → HF shape, for what the metadata does not hold (widths, vocab size).
        let shapes: [String: [Int]]
        let dtype: DType
        let ropeFactors: [Float]?
        let bos, eos, pad: Int?
        let reference: String?

        func int(_ suffix: String) throws -> Int {
            let key = GGUFKeys.Architecture.key(archName, suffix)
            guard let v = metadata[key]?.intValue else { throw PathError(path: path, ConvertError.missingMetadata(key)) }
            return v
        }

        func float(_ suffix: String) throws -> Double {
            let key = GGUFKeys.Architecture.key(archName, suffix)
            guard let v = metadata[key]?.floatValue else { throw PathError(path: path, ConvertError.missingMetadata(key)) }
            return LlamaHyperParameters.shortestDouble(v)
        }

        func optionalFloat(_ suffix: String) -> Double? {
            metadata[GGUFKeys.Architecture.key(archName, suffix)]?.floatValue.map(LlamaHyperParameters.shortestDouble)
        }

        /// Rows of an HF tensor (the first dimension).
        func rows(_ name: String) throws -> Int {
            guard let r = shapes[name]?.first else { throw PathError(path: path, ConvertError.missingTensor(name)) }
            return r
        }

        var tied: Bool { shapes["lm_head.weight"] == nil }
        var hasBiases: Bool { shapes.keys.contains { $0.hasSuffix(".bias") && !$0.contains("norm") && !$0.contains("ln_") } }

        func opt(_ v: Int?) -> JSONValue { v.map { .int(Int64($0)) } ?? .null }
    }

    /// Serialized config.json and generation_config.json.
    struct Output {
        let config: String
        let generation: String
    }

    /// Families whose checkpoint needs modeling code from its repository: their GGUF → HF needs `--config`.
    static let remoteCode: [String: String] = ["qwen": "Qwen-7B (QWenLMHeadModel)", "baichuan": "Baichuan (BaichuanForCausalLM)"]

    static func make(_ input: Input) throws -> Output {
        let config: JSONValue
        if let reference = input.reference {
            config = try fromReference(reference, input)
        } else if let family = remoteCode[input.archName] {
            throw PathError(path: input.path, ConvertError.needsReferenceConfig(
                family: family,
                why: "it is a remote-code model, whose config.json and modeling code come from its repository, and the GGUF does not say "
                    + (input.archName == "baichuan" ? "whether it is the 7B (RoPE) or the 13B (ALiBi) layout"
                                                     : "its seq_length, logn/NTK settings or tokenizer class")))
        } else {
            switch input.archName {
            case "llama", "qwen2": config = try llamaLayout(input)
            case "gpt2": config = try gpt2(input)
            case "phi2": config = try phi2(input)
            case "falcon": config = try falcon(input)
            case "mpt": config = try mpt(input)
            default:
                throw PathError(path: input.path, Failure(.unsupported, "GGUF → HF has no config.json for \(input.archName) yet"))
            }
        }
        var generation = JSONObject()
        generation["_from_model_config"] = true
        if let bos = input.bos { generation["bos_token_id"] = .int(Int64(bos)) }
        if let eos = input.eos { generation["eos_token_id"] = .int(Int64(eos)) }
        if let pad = input.pad { generation["pad_token_id"] = .int(Int64(pad)) }
        let python = JSONStyle.python(indent: 2, sortKeys: true)
        return Output(config: config.serialized(python) + "\n", generation: JSONValue.object(generation).serialized(python) + "\n")
    }

    /// The original config.json with its dtype set to the output's, after checking that it
    /// describes this GGUF (class of the same family, layer count, width).
    static func fromReference(_ path: String, _ input: Input) throws -> JSONValue {
        let config = try HFConfig(path: path)
        var object = config.object
        let arch = try withPath(path) { try config.architecture }
        guard let arch, input.arch.hfArchitectures.contains(arch) else {
            throw PathError(path: path, ConvertError.referenceConfigMismatch(
                "architectures[0] is \(arch ?? "missing"), not one of \(input.arch.hfArchitectures.joined(separator: ", ")) (GGUF \(input.archName))"))
        }
        let checks: [(keys: [String], gguf: String)] = [
            (["num_hidden_layers", "n_layer", "n_layers", "num_layers"], "block_count"),
            (["hidden_size", "n_embd", "d_model"], "embedding_length"),
            (["num_attention_heads", "n_head", "n_heads"], "attention.head_count"),
        ]
        for check in checks {
            guard let key = check.keys.first(where: { object[$0] != nil }), let value = object[key]?.intValue else { continue }
            let gguf = try input.int(check.gguf)
            guard value == gguf else {
                throw PathError(path: path, ConvertError.referenceConfigMismatch("\(key) is \(value), the GGUF's \(input.archName).\(check.gguf) is \(gguf)"))
            }
        }
        let dtypeName = JSONValue.string(input.dtype.torchName ?? "float32")
        // transformers 5 saves `dtype`; remote-code configs keep the old `torch_dtype`.
        if object["torch_dtype"] != nil { object["torch_dtype"] = dtypeName }
        if object["dtype"] != nil || object["torch_dtype"] == nil { object["dtype"] = dtypeName }
        return .object(object)
    }

    /// LLaMA (and Mistral's GGUF, which is `llama`) and Qwen2.
    static func llamaLayout(_ input: Input) throws -> JSONValue {
        let hyper = try LlamaHyperParameters(metadata: input.metadata, arch: input.archName, path: input.path)
        var rope: JSONObject
        if let factors = input.ropeFactors {
            rope = try Llama3RopeRecovery.parameters(factors: factors, theta: hyper.ropeTheta, headDim: hyper.ropeDimension)
        } else {
            rope = JSONObject([("rope_theta", .double(hyper.ropeTheta)), ("rope_type", "default")])
        }
        if let scalingType = input.metadata[GGUFKeys.Architecture.ropeScalingType(input.archName)]?.stringValue, scalingType == "linear",
           let factor = input.metadata[GGUFKeys.Architecture.ropeScalingFactor(input.archName)]?.doubleValue {
            rope = JSONObject([("factor", .double(factor)), ("rope_theta", .double(hyper.ropeTheta)), ("rope_type", "linear")])
        }
        return hyper.hfConfig(family: input.archName, dtype: input.dtype, tied: input.tied, rope: rope,
                              bos: input.bos, eos: input.eos, pad: input.pad)
    }

    /// The keys every rebuilt config has (sorted on output): special token ids, dtype, head tying,
    /// cache, and the vocabulary size (rows of the token embedding `embeddings`).
    static func common(_ input: Input, embeddings: String) throws -> JSONObject {
        var c = JSONObject()
        c["bos_token_id"] = input.opt(input.bos)
        c["dtype"] = .string(input.dtype.torchName ?? "float32")
        c["eos_token_id"] = input.opt(input.eos)
        c["pad_token_id"] = input.opt(input.pad)
        c["tie_word_embeddings"] = .bool(input.tied)
        c["use_cache"] = true
        c["vocab_size"] = .int(Int64(try input.rows(embeddings)))
        return c
    }

    /// GPT2LMHeadModel, with GPT2Config's keys. `n_positions` is the position table's length,
    /// `n_ctx` the GGUF's context length (the converter's source for it).
    static func gpt2(_ input: Input) throws -> JSONValue {
        let embd = try input.int("embedding_length")
        // Conv1D's c_fc is [n_embd, n_inner].
        let inner = try input.shapes["transformer.h.0.mlp.c_fc.weight"]?.last ?? input.int("feed_forward_length")
        var c = try common(input, embeddings: "transformer.wte.weight")
        c["activation_function"] = "gelu_new"
        c["architectures"] = ["GPT2LMHeadModel"]
        c["attn_pdrop"] = 0.1
        c["embd_pdrop"] = 0.1
        c["initializer_range"] = 0.02
        c["layer_norm_epsilon"] = .double(try input.float("attention.layer_norm_epsilon"))
        c["model_type"] = "gpt2"
        c["n_ctx"] = .int(Int64(try input.int("context_length")))
        c["n_embd"] = .int(Int64(embd))
        c["n_head"] = .int(Int64(try input.int("attention.head_count")))
        c["n_inner"] = inner == 4 * embd ? .null : .int(Int64(inner))
        c["n_layer"] = .int(Int64(try input.int("block_count")))
        c["n_positions"] = .int(Int64(try input.rows("transformer.wpe.weight")))
        c["reorder_and_upcast_attn"] = false
        c["resid_pdrop"] = 0.1
        c["scale_attn_by_inverse_layer_idx"] = false
        c["scale_attn_weights"] = true
        return .object(c)
    }

    /// PhiForCausalLM. The rotary fraction comes back from `rope.dimension_count`; the GGUF has no
    /// rope base (llama.cpp uses 10000, as phi-1.5 and phi-2 do).
    static func phi2(_ input: Input) throws -> JSONValue {
        let embd = try input.int("embedding_length"), heads = try input.int("attention.head_count")
        let ropeDims = try input.int("rope.dimension_count")
        var c = try common(input, embeddings: "model.embed_tokens.weight")
        c["architectures"] = ["PhiForCausalLM"]
        c["attention_dropout"] = 0.0
        c["embd_pdrop"] = 0.0
        c["hidden_act"] = "gelu_new"
        c["hidden_size"] = .int(Int64(embd))
        c["initializer_range"] = 0.02
        c["intermediate_size"] = .int(Int64(try input.rows("model.layers.0.mlp.fc1.weight")))
        c["layer_norm_eps"] = .double(try input.float("attention.layer_norm_epsilon"))
        c["max_position_embeddings"] = .int(Int64(try input.int("context_length")))
        c["model_type"] = "phi"
        c["num_attention_heads"] = .int(Int64(heads))
        c["num_hidden_layers"] = .int(Int64(try input.int("block_count")))
        c["num_key_value_heads"] = .int(Int64(input.metadata[GGUFKeys.Architecture.headCountKV("phi2")]?.intValue ?? heads))
        c["qk_layernorm"] = false
        c["resid_pdrop"] = 0.0
        c["rope_parameters"] = .object(JSONObject([
            ("partial_rotary_factor", .double(Double(ropeDims * heads) / Double(max(1, embd)))),
            ("rope_theta", .double(input.optionalFloat("rope.freq_base") ?? 10000)), ("rope_type", "default"),
        ]))
        return .object(c)
    }

    /// FalconForCausalLM. The layout follows the tensors: `attn_norm_2` means the new decoder
    /// architecture (two norms, grouped KV); otherwise one norm, multi-query when one KV head.
    /// The converter writes context length 2048 whatever the config said, and no rope base.
    static func falcon(_ input: Input) throws -> JSONValue {
        let heads = try input.int("attention.head_count")
        let kv = input.metadata[GGUFKeys.Architecture.headCountKV("falcon")]?.intValue ?? 1
        let newArchitecture = input.shapes["transformer.h.0.ln_attn.weight"] != nil
        if !newArchitecture && kv != 1 && kv != heads {
            throw PathError(path: input.path, ConvertError.badLayout(
                tensor: "blk.0.attn_qkv.weight", "\(kv) KV heads for \(heads) heads needs the new decoder architecture (attn_norm_2), which this file lacks"))
        }
        var c = try common(input, embeddings: "transformer.word_embeddings.weight")
        c["activation"] = "gelu"
        c["alibi"] = false
        c["architectures"] = ["FalconForCausalLM"]
        c["attention_dropout"] = 0.0
        c["bias"] = .bool(input.hasBiases)
        c["ffn_hidden_size"] = .int(Int64(try input.rows("transformer.h.0.mlp.dense_h_to_4h.weight")))
        c["hidden_dropout"] = 0.0
        c["hidden_size"] = .int(Int64(try input.int("embedding_length")))
        c["initializer_range"] = 0.02
        c["layer_norm_epsilon"] = .double(try input.float("attention.layer_norm_epsilon"))
        c["max_position_embeddings"] = .int(Int64(try input.int("context_length")))
        c["model_type"] = "falcon"
        c["multi_query"] = .bool(newArchitecture || kv == 1)
        c["new_decoder_architecture"] = .bool(newArchitecture)
        c["num_attention_heads"] = .int(Int64(heads))
        c["num_hidden_layers"] = .int(Int64(try input.int("block_count")))
        c["num_kv_heads"] = .int(Int64(kv))
        c["num_ln_in_parallel_attn"] = newArchitecture ? 2 : .null
        c["parallel_attn"] = true
        c["rope_parameters"] = .object(JSONObject([("rope_theta", .double(input.optionalFloat("rope.freq_base") ?? 10000)), ("rope_type", "default")]))
        return .object(c)
    }

    /// transformers' MptForCausalLM (the converter's input class MPTForCausalLM needs remote code).
    /// ALiBi from `max_alibi_bias`, `clip_qkv` from `clamp_kqv`, the MLP ratio from `ffn_up`.
    static func mpt(_ input: Input) throws -> JSONValue {
        let heads = try input.int("attention.head_count")
        if let kv = input.metadata[GGUFKeys.Architecture.headCountKV("mpt")]?.intValue, kv != heads {
            throw PathError(path: input.path, Failure(.unsupported, "MPT with \(kv) KV heads for \(heads) heads: transformers' MptForCausalLM has no grouped attention"))
        }
        let dModel = try input.int("embedding_length")
        let up = try input.rows("transformer.blocks.0.ffn.up_proj.weight")
        let maxBias = input.optionalFloat("attention.max_alibi_bias") ?? 0
        var attn = JSONObject()
        attn["alibi"] = .bool(maxBias > 0)
        attn["alibi_bias_max"] = maxBias == maxBias.rounded() ? .int(Int64(maxBias)) : .double(maxBias)
        attn["attn_impl"] = "torch"
        attn["attn_pdrop"] = 0
        attn["attn_type"] = "multihead_attention"
        attn["attn_uses_sequence_id"] = false
        attn["clip_qkv"] = input.optionalFloat("attention.clamp_kqv").map { .double($0) } ?? .null
        attn["prefix_lm"] = false
        attn["qk_ln"] = false
        attn["softmax_scale"] = .null
        var c = try common(input, embeddings: "transformer.wte.weight")
        c["architectures"] = ["MptForCausalLM"]
        c["attn_config"] = .object(attn)
        c["d_model"] = .int(Int64(dModel))
        c["emb_pdrop"] = 0.0
        c["embedding_fraction"] = 1.0
        c["expansion_ratio"] = up % max(1, dModel) == 0 ? .int(Int64(up / max(1, dModel))) : .double(Double(up) / Double(max(1, dModel)))
        c["init_device"] = "cpu"
        c["initializer_range"] = 0.02
        c["layer_norm_epsilon"] = .double(try input.float("attention.layer_norm_epsilon"))
        c["learned_pos_emb"] = true
        c["logit_scale"] = .null
        c["max_seq_len"] = .int(Int64(try input.int("context_length")))
        c["model_type"] = "mpt"
        c["n_heads"] = .int(Int64(heads))
        c["n_layers"] = .int(Int64(try input.int("block_count")))
        c["no_bias"] = .bool(!input.hasBiases)
        c["norm_type"] = "low_precision_layernorm"
        c["resid_pdrop"] = 0.0
        return .object(c)
    }
}
