extension ArchitectureDescription {
    /// GPT-2 and GPT-2-style checkpoints such as ruGPT-3.5 (`GPT2LMHeadModel`). The Conv1D
    /// weights are stored `[in, out]` and transposed; `c_attn` stays fused (q | k | v).
    public static let gpt2 = ArchitectureDescription(
        ggufName: "gpt2",
        hfArchitectures: ["GPT2LMHeadModel"],
        tensorRules: [
            TensorNameRule(hf: "transformer.wte.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "transformer.wpe.weight", gguf: "position_embd.weight"),
            TensorNameRule(hf: "transformer.ln_f.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "transformer.ln_f.bias", gguf: "output_norm.bias"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_1.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_1.bias", gguf: "blk.{bid}.attn_norm.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_attn.weight", transform: .transpose, gguf: "blk.{bid}.attn_qkv.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_attn.bias", gguf: "blk.{bid}.attn_qkv.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_proj.weight", transform: .transpose, gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.attn.c_proj.bias", gguf: "blk.{bid}.attn_output.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_2.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.ln_2.bias", gguf: "blk.{bid}.ffn_norm.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.c_fc.weight", transform: .transpose, gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.c_fc.bias", gguf: "blk.{bid}.ffn_up.bias"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.c_proj.weight", transform: .transpose, gguf: "blk.{bid}.ffn_down.weight"),
            TensorNameRule(hf: "transformer.h.{bid}.mlp.c_proj.bias", gguf: "blk.{bid}.ffn_down.bias"),
        ],
        // Causal-mask buffers of old checkpoints.
        ignoredHFSuffixes: [".attn.bias", ".attn.masked_bias"],
        hyperParameters: [
            .uint32("block_count", ["n_layer", "num_hidden_layers"], required: true),
            .uint32("context_length", ["n_ctx"], required: true),
            .uint32("embedding_length", ["n_embd"], required: true),
            .uint32Times("feed_forward_length", ["n_embd"], factor: 4),
            .uint32("attention.head_count", ["n_head"], required: true),
            .float32("attention.layer_norm_epsilon", ["layer_norm_epsilon"], required: true),
            .fileType,
        ],
        headCountKeys: HeadCountKeys(heads: ["n_head"], kvHeads: [])
    )
}
