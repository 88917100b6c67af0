extension ArchitectureDescription {
    /// Baichuan 1 and 2, 7B (RoPE) and 13B (ALiBi) (`BaichuanForCausalLM`, remote code): the
    /// LLaMA block with a fused `W_pack` that the converter splits into q | k | v by row thirds,
    /// permuting q and k as LLaMA's (for 13B too, where it is harmless). `lm_head` is copied as
    /// stored (Baichuan 2's NormHead normalization is not applied; see docs/families.md).
    public static let baichuan = ArchitectureDescription(
        ggufName: "baichuan",
        hfArchitectures: ["BaichuanForCausalLM", "BaiChuanForCausalLM"],
        tensorRules: [
            TensorNameRule(hf: "model.embed_tokens.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "model.norm.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.W_pack.weight", transform: .split([
                SplitPart(gguf: "blk.{bid}.attn_q.weight", permutation: .queryHeads),
                SplitPart(gguf: "blk.{bid}.attn_k.weight", permutation: .keyValueHeads),
                SplitPart(gguf: "blk.{bid}.attn_v.weight"),
            ])),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.post_attention_layernorm.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.weight", gguf: "blk.{bid}.ffn_gate.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq"],
        hyperParameters: [
            .textModelDefaults,
            .string("tensor_data_layout", "Meta AI original pth"),
            .computed { config, arch in
                let heads = try config.numAttentionHeads
                guard heads > 0 else { throw HyperParameterError(key: "num_attention_heads", expected: "a positive integer") }
                let dim = try config.hiddenSize / heads
                return [GGUFKeyValue(GGUFKeys.Architecture.ropeDimensionCount(arch), .uint32(UInt32(truncatingIfNeeded: dim)))]
            },
        ]
    )
}
