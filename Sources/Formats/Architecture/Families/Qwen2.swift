extension ArchitectureDescription {
    /// Qwen1.5, Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): the LLaMA block with q/k/v biases and
    /// NEOX rotary, so no Q/K permutation. Metadata is TextModel's generic list.
    public static let qwen2 = ArchitectureDescription(
        ggufName: "qwen2",
        hfArchitectures: ["Qwen2ForCausalLM"],
        tensorRules: TensorNameRule.llamaLayoutShared + TensorNameRule.separateQKV(permuted: false),
        ignoredHFSuffixes: [".rotary_emb.inv_freq"],
        hyperParameters: [.textModelDefaults]
    )
}
