extension TensorNameRule {
    /// The tensors of the LLaMA checkpoint layout (`model.layers.N.…`) that LLaMA, Qwen2 and
    /// Baichuan share: embeddings, final norm, head, the two block norms, `o_proj` and the gated
    /// MLP, biases included where a checkpoint has them (gguf-py's table maps them for every family).
    static let llamaLayoutShared: [TensorNameRule] = [
        TensorNameRule(hf: "model.embed_tokens.weight", gguf: "token_embd.weight"),
        TensorNameRule(hf: "model.norm.weight", gguf: "output_norm.weight"),
        TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
        TensorNameRule(hf: "model.layers.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
        TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
        TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.bias", gguf: "blk.{bid}.attn_output.bias"),
        TensorNameRule(hf: "model.layers.{bid}.post_attention_layernorm.weight", gguf: "blk.{bid}.ffn_norm.weight"),
        TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.weight", gguf: "blk.{bid}.ffn_gate.weight"),
        TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.weight", gguf: "blk.{bid}.ffn_up.weight"),
        TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
        TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.bias", gguf: "blk.{bid}.ffn_gate.bias"),
        TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.bias", gguf: "blk.{bid}.ffn_up.bias"),
        TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.bias", gguf: "blk.{bid}.ffn_down.bias"),
    ]

    /// Separate `q_proj`/`k_proj`/`v_proj` (weights and biases) under `model.layers.N.self_attn`;
    /// `permuted` gives q and k LLaMA's rotary row permutation (for llama.cpp graphs with
    /// interleaved rope; NEOX-rope families such as Qwen2 and phi need none).
    static func separateQKV(permuted: Bool) -> [TensorNameRule] {
        let q: HeadPermutation? = permuted ? .queryHeads : nil
        let k: HeadPermutation? = permuted ? .keyValueHeads : nil
        return [
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.weight", gguf: "blk.{bid}.attn_q.weight", permutation: q),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.bias", gguf: "blk.{bid}.attn_q.bias", permutation: q),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.weight", gguf: "blk.{bid}.attn_k.weight", permutation: k),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.bias", gguf: "blk.{bid}.attn_k.bias", permutation: k),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.weight", gguf: "blk.{bid}.attn_v.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.bias", gguf: "blk.{bid}.attn_v.bias"),
        ]
    }
}
