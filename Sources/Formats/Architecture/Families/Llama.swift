extension ArchitectureDescription {
    /// LLaMA and the families llama.cpp converts as `llama`: LLaMA 1/2/3, Mistral, Yi, SmolLM,
    /// TinyLlama and their fine-tunes (Alpaca, Vicuna, Guanaco, …).
    public static let llama = ArchitectureDescription(
        ggufName: "llama",
        hfArchitectures: ["LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM"],
        tensorRules: TensorNameRule.llamaLayoutShared + TensorNameRule.separateQKV(permuted: true),
        ignoredHFSuffixes: [".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias"],
        // TextModel's list, then LlamaModel's additions.
        hyperParameters: [
            .textModelDefaults,
            .uint32("vocab_size", ["vocab_size"], required: true),
            .ropeDimensionCount(preferringHeadDim: true),
        ]
    )
}
