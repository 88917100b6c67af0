extension ArchitectureDescription {
    /// MPT (`MPTForCausalLM`, the remote-code name the converter registers, and transformers'
    /// `MptForCausalLM`, which has the same config keys and tensor names). `Wqkv` stays fused
    /// (q | k | v); the head is tied. The converter writes no `general.file_type` for MPT.
    public static let mpt = ArchitectureDescription(
        ggufName: "mpt",
        hfArchitectures: ["MPTForCausalLM", "MptForCausalLM"],
        tensorRules: [
            TensorNameRule(hf: "transformer.wte.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "transformer.norm_f.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "transformer.norm_f.bias", gguf: "output_norm.bias"),
            TensorNameRule(hf: "transformer.blocks.{bid}.norm_1.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "transformer.blocks.{bid}.norm_1.bias", gguf: "blk.{bid}.attn_norm.bias"),
            TensorNameRule(hf: "transformer.blocks.{bid}.attn.Wqkv.weight", gguf: "blk.{bid}.attn_qkv.weight"),
            TensorNameRule(hf: "transformer.blocks.{bid}.attn.Wqkv.bias", gguf: "blk.{bid}.attn_qkv.bias"),
            TensorNameRule(hf: "transformer.blocks.{bid}.attn.out_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "transformer.blocks.{bid}.attn.out_proj.bias", gguf: "blk.{bid}.attn_output.bias"),
            TensorNameRule(hf: "transformer.blocks.{bid}.norm_2.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "transformer.blocks.{bid}.norm_2.bias", gguf: "blk.{bid}.ffn_norm.bias"),
            TensorNameRule(hf: "transformer.blocks.{bid}.ffn.up_proj.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "transformer.blocks.{bid}.ffn.up_proj.bias", gguf: "blk.{bid}.ffn_up.bias"),
            TensorNameRule(hf: "transformer.blocks.{bid}.ffn.down_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
            TensorNameRule(hf: "transformer.blocks.{bid}.ffn.down_proj.bias", gguf: "blk.{bid}.ffn_down.bias"),
        ],
        hyperParameters: [
            .uint32("context_length", ["max_seq_len"], required: true),
            .uint32("embedding_length", ["d_model"], required: true),
            .uint32("block_count", ["n_layers", "num_hidden_layers", "n_layer", "num_layers"], required: true),
            .uint32Times("feed_forward_length", ["d_model"], factor: 4),
            .uint32("attention.head_count", ["n_heads"], required: true),
            .computed { config, arch in
                var kv: [GGUFKeyValue] = []
                // Written only when set and non-zero (a Python truthiness test).
                if let n = try config.firstInt(["attn_config.kv_n_heads"]), n != 0 {
                    kv.append(GGUFKeyValue(GGUFKeys.Architecture.headCountKV(arch), .uint32(UInt32(truncatingIfNeeded: n))))
                }
                kv.append(GGUFKeyValue(GGUFKeys.Architecture.key(arch, "attention.layer_norm_epsilon"), .float32(1e-5)))
                if let clip = try config.firstDouble(["attn_config.clip_qkv"]) {
                    kv.append(GGUFKeyValue(GGUFKeys.Architecture.key(arch, "attention.clamp_kqv"), .float32(Float(clip))))
                }
                var maxBias: Float = 0
                if config.value(atPath: "attn_config.alibi")?.boolValue == true {
                    guard let b = try config.firstDouble(["attn_config.alibi_bias_max"]) else {
                        throw HyperParameterError(key: "attn_config.alibi_bias_max", expected: "a number")
                    }
                    maxBias = Float(b)
                }
                kv.append(GGUFKeyValue(GGUFKeys.Architecture.key(arch, "attention.max_alibi_bias"), .float32(maxBias)))
                return kv
            },
        ],
        headCountKeys: HeadCountKeys(heads: ["n_heads"], kvHeads: ["attn_config.kv_n_heads"])
    )
}
