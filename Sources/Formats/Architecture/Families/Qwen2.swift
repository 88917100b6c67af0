extension ArchitectureDescription {
    /// Qwen1.5, Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): the LLaMA block with q/k/v biases and
    /// NEOX rotary, so no Q/K permutation. Metadata is TextModel's generic list.
    public static let qwen2 = ArchitectureDescription(
        ggufName: "qwen2",
        hfArchitectures: ["Qwen2ForCausalLM"],
        tensorRules: [
            TensorNameRule(hf: "model.embed_tokens.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "model.norm.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.weight", gguf: "blk.{bid}.attn_q.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.bias", gguf: "blk.{bid}.attn_q.bias"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.weight", gguf: "blk.{bid}.attn_k.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.bias", gguf: "blk.{bid}.attn_k.bias"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.weight", gguf: "blk.{bid}.attn_v.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.bias", gguf: "blk.{bid}.attn_v.bias"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.post_attention_layernorm.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.weight", gguf: "blk.{bid}.ffn_gate.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq"],
        hyperParameters: [.textModelDefaults]
    )
}
