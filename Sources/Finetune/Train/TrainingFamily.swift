import TensorCore
public import Formats

/// Which model families the training pass runs, decided from config.json before any weight is read.
///
/// Training runs the block description (``LoRAModel``): LLaMA, Mistral (with its sliding window),
/// Yi and the other `LlamaForCausalLM` descendants, Qwen2 (q/k/v biases), OPT, phi, GPT-2, MPT, Falcon,
/// Persimmon, Qwen-7B (fused biased c_attn) and Baichuan 2 (fused W_pack; RoPE for 7B, ALiBi for 13B;
/// NormHead as a frozen head of normalised rows), each checked against PEFT one step. A family the
/// block description does not know is refused when its config is read, so nothing is trained with the
/// wrong computation.
public enum TrainingFamily {
    /// What the blocks of the families training does not run need, by HF `architectures[0]`
    /// (empty: every HF family the forward pass runs also trains).
    static let missing: [String: (family: String, needs: String)] = [:]

    /// Throws ``TrainingError/familyNotTrainable(family:missing:)`` when config.json names a
    /// family the training pass does not run.
    public static func check(config: JSONObject) throws(TrainingError) {
        guard let name = config["architectures"]?.arrayValue?.first?.stringValue, let m = missing[name] else { return }
        throw .familyNotTrainable(family: "\(m.family) (\(name))", missing: m.needs)
    }

    /// GGUF architectures training reads (through Verify's family layout for the non-LLaMA ones),
    /// each checked: an f32 GGUF trains exactly as the HF checkpoint it was converted from.
    static let ggufTrainable: Set<String> = ["llama", "qwen2", "gpt2", "falcon", "mpt", "phi2", "qwen"]

    /// What the GGUF bases training refuses would need, by GGUF architecture.
    static let ggufMissing: [String: String] = [
        // llama.cpp's converter copies the NormHead as stored (llama.cpp does not normalise it), and the
        // file does not say RoPE or ALiBi (llama.cpp picks by layer count: neither for the fixtures'
        // two layers), so the GGUF is not the model PEFT trains against.
        "baichuan": "Baichuan 2's NormHead and position scheme (the GGUF keeps the head rows unnormalised and does not record RoPE vs ALiBi; train from the Hugging Face directory)",
    ]

    /// The same for a GGUF `general.architecture`: training runs ``ggufTrainable``.
    public static func check(ggufArchitecture name: String) throws(TrainingError) {
        guard !ggufTrainable.contains(name) else { return }
        let hf = ArchitectureDescription.forGGUF(architecture: name)?.hfArchitectures.first ?? ""
        let m = missing[hf] ?? (name, ggufMissing[name] ?? "a training path checked against PEFT for its GGUF layout")
        throw .familyNotTrainable(family: "\(m.family) (GGUF \(name))", missing: m.needs)
    }
}
