import TensorCore
public import Formats

/// Which model families the training pass runs, decided from config.json before any weight is read.
///
/// Training runs the block description (``LoRAModel``): LLaMA, Mistral (with its sliding window),
/// Yi and the other `LlamaForCausalLM` descendants, Qwen2 (q/k/v biases), OPT, phi, GPT-2, MPT, Falcon and Persimmon (checked
/// against PEFT one step each). Every other family wconv knows is refused by name with what its
/// block needs, so nothing is trained with the wrong computation.
public enum TrainingFamily {
    /// What the blocks of the families training does not run need, by HF `architectures[0]`.
    static let missing: [String: (family: String, needs: String)] = [
        "QWenLMHeadModel": ("Qwen-7B (first generation)", "the fused, biased c_attn and its w1 · silu(w2) MLP"),
        "BaichuanForCausalLM": ("Baichuan", "the fused W_pack projection (and ALiBi for 13B)"),
        "BaiChuanForCausalLM": ("Baichuan", "the fused W_pack projection (and ALiBi for 13B)"),
    ]

    /// Throws ``TrainingError/familyNotTrainable(family:missing:)`` when config.json names a
    /// family the training pass does not run.
    public static func check(config: JSONObject) throws(TrainingError) {
        guard let name = config["architectures"]?.arrayValue?.first?.stringValue, let m = missing[name] else { return }
        throw .familyNotTrainable(family: "\(m.family) (\(name))", missing: m.needs)
    }

    /// The same for a GGUF `general.architecture`: training runs `llama` and `qwen2` (phi2 GGUFs
    /// stay refused: their training path is not checked against a reference).
    public static func check(ggufArchitecture name: String) throws(TrainingError) {
        guard name != "llama", name != "qwen2" else { return }
        let hf = ArchitectureDescription.forGGUF(architecture: name)?.hfArchitectures.first ?? ""
        let m = missing[hf] ?? (name, "a training path checked against PEFT for its GGUF layout")
        throw .familyNotTrainable(family: "\(m.family) (GGUF \(name))", missing: m.needs)
    }
}
