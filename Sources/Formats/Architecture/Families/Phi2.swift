extension ArchitectureDescription {
    /// phi-1, phi-1.5 and phi-2 (`PhiForCausalLM`) as llama.cpp's `phi2`: separate q/k/v with
    /// biases, one LayerNorm per block, partial NEOX rotary, a biased head.
    public static let phi2 = ArchitectureDescription(
        ggufName: "phi2",
        hfArchitectures: ["PhiForCausalLM"],
        tensorRules: TensorNameRule.separateQKV(permuted: false) + [
            TensorNameRule(hf: "model.embed_tokens.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "model.final_layernorm.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "model.final_layernorm.bias", gguf: "output_norm.bias"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "lm_head.bias", gguf: "output.bias"),
            TensorNameRule(hf: "model.layers.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.input_layernorm.bias", gguf: "blk.{bid}.attn_norm.bias"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.dense.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.dense.bias", gguf: "blk.{bid}.attn_output.bias"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.fc1.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.fc1.bias", gguf: "blk.{bid}.ffn_up.bias"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.fc2.weight", gguf: "blk.{bid}.ffn_down.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.fc2.bias", gguf: "blk.{bid}.ffn_down.bias"),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq"],
        hyperParameters: [
            .uint32("context_length", ["n_positions", "max_position_embeddings"], required: true),
            .uint32("embedding_length", ["hidden_size", "n_embd"], required: true),
            .uint32Times("feed_forward_length", ["hidden_size", "n_embd"], factor: 4),
            .uint32("block_count", ["n_layers", "num_hidden_layers", "n_layer", "num_layers"], required: true),
            .uint32("attention.head_count", ["num_attention_heads", "n_head"], required: true),
            .uint32("attention.head_count_kv", ["num_attention_heads", "n_head"], required: true),
            .float32("attention.layer_norm_epsilon", ["layer_norm_epsilon", "layer_norm_eps"], required: true),
            .computed { config, arch in
                // int(partial_rotary_factor × n_embd) // n_head, as the converter computes it.
                guard let factor = try config.firstDouble(["rope_parameters.partial_rotary_factor", "partial_rotary_factor"]),
                      let embd = try config.firstInt(["hidden_size", "n_embd"]),
                      let heads = try config.firstInt(["num_attention_heads", "n_head"]), heads > 0 else {
                    throw HyperParameterError(key: "partial_rotary_factor", expected: "a number")
                }
                let dims = Int((factor * Double(embd)).rounded(.towardZero)) / heads
                return [GGUFKeyValue(GGUFKeys.Architecture.ropeDimensionCount(arch), .uint32(UInt32(truncatingIfNeeded: dims)))]
            },
            .fileType,
            .fixed("tokenizer.ggml.add_bos_token", .bool(false)),
        ]
    )
}
