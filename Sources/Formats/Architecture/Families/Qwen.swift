extension ArchitectureDescription {
    /// First-generation Qwen (Qwen-7B/14B, `QWenLMHeadModel`, remote code): fused biased `c_attn`
    /// kept as q | k | v (NEOX rotary: no permutation), `w1` → `ffn_up` and `w2` → `ffn_gate`
    /// (the gated branch), vocabulary from `qwen.tiktoken`. Metadata is TextModel's generic list,
    /// so the norm epsilon goes to `qwen.attention.layer_norm_epsilon` as the converter writes it
    /// (llama.cpp's loader wants the rms key; see docs/families.md).
    public static let qwen = ArchitectureDescription(
        ggufName: "qwen",
        hfArchitectures: ["QWenLMHeadModel"],
        tensorRules: [
            TensorNameRule(hf: "transformer.wte.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "transformer.ln_f.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_1.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_attn.weight", gguf: "blk.{bid}.attn_qkv.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_attn.bias", gguf: "blk.{bid}.attn_qkv.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_2.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.w1.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.w2.weight", gguf: "blk.{bid}.ffn_gate.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.c_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq"],
        hyperParameters: [.textModelDefaults],
        vocabulary: .qwenTiktoken
    )
}
