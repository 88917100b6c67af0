extension ArchitectureDescription {
    /// LLaMA and the families llama.cpp converts as `llama`: LLaMA 1/2/3, Mistral, Yi, SmolLM,
    /// TinyLlama and their fine-tunes (Alpaca, Vicuna, Guanaco, …).
    public static let llama = ArchitectureDescription(
        ggufName: "llama",
        hfArchitectures: ["LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM"],
        tensorRules: [
            TensorNameRule(hf: "model.embed_tokens.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "model.norm.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.weight", gguf: "blk.{bid}.attn_q.weight", permutation: .queryHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.bias", gguf: "blk.{bid}.attn_q.bias", permutation: .queryHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.weight", gguf: "blk.{bid}.attn_k.weight", permutation: .keyValueHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.bias", gguf: "blk.{bid}.attn_k.bias", permutation: .keyValueHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.weight", gguf: "blk.{bid}.attn_v.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.bias", gguf: "blk.{bid}.attn_v.bias"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.bias", gguf: "blk.{bid}.attn_output.bias"),
            TensorNameRule(hf: "model.layers.{bid}.post_attention_layernorm.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.weight", gguf: "blk.{bid}.ffn_gate.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.bias", gguf: "blk.{bid}.ffn_gate.bias"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.bias", gguf: "blk.{bid}.ffn_up.bias"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.bias", gguf: "blk.{bid}.ffn_down.bias"),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias"],
        // TextModel's list, then LlamaModel's additions.
        hyperParameters: [
            .textModelDefaults,
            .uint32("vocab_size", ["vocab_size"], required: true),
            .computed { config, arch in
                let heads = try config.numAttentionHeads
                guard heads > 0 else { throw HyperParameterError(key: "num_attention_heads", expected: "a positive integer") }
                let dim = try config.headDim ?? (config.hiddenSize / heads)
                return [GGUFKeyValue(GGUFKeys.Architecture.ropeDimensionCount(arch), .uint32(UInt32(truncatingIfNeeded: dim)))]
            },
        ]
    )
}
