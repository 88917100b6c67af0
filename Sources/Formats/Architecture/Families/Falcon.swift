extension ArchitectureDescription {
    /// Falcon 7B-style (one LayerNorm, multi-query) and 40B-style (`new_decoder_architecture`,
    /// `ln_attn` + `ln_mlp`, grouped KV) checkpoints. `query_key_value` stays fused but is
    /// regrouped as q | k | v. The norm names follow gguf-py's table: `ln_mlp` → `attn_norm`,
    /// `ln_attn` → `attn_norm_2` (llama.cpp then feeds them to the right branches).
    public static let falcon = ArchitectureDescription(
        ggufName: "falcon",
        hfArchitectures: ["FalconForCausalLM", "RWForCausalLM"],
        tensorRules: [
            TensorNameRule(hf: "transformer.word_embeddings.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "transformer.ln_f.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "transformer.ln_f.bias", gguf: "output_norm.bias"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.input_layernorm.bias", gguf: "blk.{bid}.attn_norm.bias"),
            // GGUF → HF: attn_norm is ln_mlp exactly when the block has attn_norm_2 (40B style).
            TensorNameRule(hf: "transformer.h.{bid}.ln_mlp.weight", gguf: "blk.{bid}.attn_norm.weight", onlyWithGGUF: "blk.{bid}.attn_norm_2.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_mlp.bias", gguf: "blk.{bid}.attn_norm.bias", onlyWithGGUF: "blk.{bid}.attn_norm_2.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_attn.weight", gguf: "blk.{bid}.attn_norm_2.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_attn.bias", gguf: "blk.{bid}.attn_norm_2.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.self_attention.query_key_value.weight", transform: .regroupFusedQKV,
                           gguf: "blk.{bid}.attn_qkv.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.self_attention.dense.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.dense_h_to_4h.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.dense_4h_to_h.weight", gguf: "blk.{bid}.ffn_down.weight"),
        ],
        hyperParameters: [
            .uint32Constant("context_length", 2048),  // not in config.json; the converter's constant
            .string("tensor_data_layout", "jploski"),
            .uint32("embedding_length", ["hidden_size"], required: true),
            .uint32Times("feed_forward_length", ["hidden_size"], factor: 4),
            .uint32("block_count", ["n_layers", "num_hidden_layers", "n_layer", "num_layers"], required: true),
            .uint32("attention.head_count", ["num_attention_heads", "n_head"], required: true),
            .computed { config, arch in
                let kv = try config.firstInt(["num_kv_heads", "n_head_kv"]) ?? 1
                return [GGUFKeyValue(GGUFKeys.Architecture.headCountKV(arch), .uint32(UInt32(truncatingIfNeeded: kv)))]
            },
            .float32("attention.layer_norm_epsilon", ["layer_norm_epsilon"], required: true),
            .fileType,
        ],
        // The converter reads the KV head count from the config (default 1); see docs/families.md
        // for 7B configs whose num_kv_heads transformers filled in.
        headCountKeys: HeadCountKeys(heads: ["num_attention_heads", "n_head"], kvHeads: ["num_kv_heads", "n_head_kv"], defaultKVHeads: 1)
    )
}
