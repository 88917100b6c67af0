extension ArchitectureDescription {
    /// Baichuan 1 and 2, 7B (RoPE) and 13B (ALiBi) (`BaichuanForCausalLM`, remote code): the
    /// LLaMA block with a fused `W_pack` that the converter splits into q | k | v by row thirds,
    /// permuting q and k as LLaMA's (for 13B too, where it is harmless). `lm_head` is copied as
    /// stored (Baichuan 2's NormHead normalization is not applied; see docs/families.md).
    public static let baichuan = ArchitectureDescription(
        ggufName: "baichuan",
        hfArchitectures: ["BaichuanForCausalLM", "BaiChuanForCausalLM"],
        tensorRules: TensorNameRule.llamaLayoutShared + [
            TensorNameRule(hf: "model.layers.{bid}.self_attn.W_pack.weight", transform: .split([
                SplitPart(gguf: "blk.{bid}.attn_q.weight", permutation: .queryHeads),
                SplitPart(gguf: "blk.{bid}.attn_k.weight", permutation: .keyValueHeads),
                SplitPart(gguf: "blk.{bid}.attn_v.weight"),
            ])),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq"],
        hyperParameters: [
            .textModelDefaults,
            .string("tensor_data_layout", "Meta AI original pth"),
            .ropeDimensionCount(preferringHeadDim: false),
        ]
    )
}
