/// The model families the forward pass loads. Each one is a ``BlockDescription`` (derived from
/// its config by ``LlamaConfig/init(hfConfig:family:)`` or from GGUF metadata) plus a tensor
/// layout: where each weight of the block sits in the family's HF checkpoint and in its GGUF.
public enum ModelFamily: String, Sendable, Hashable, CaseIterable {
    /// LLaMA, Mistral, Qwen2 and the other checkpoints in LLaMA's layout.
    case llama
    case gpt2
    case opt
    /// phi-1, phi-1.5, phi-2 (`PhiForCausalLM`, GGUF `phi2`).
    case phi
    case falcon
    case mpt
    /// Baichuan 1 and 2, 7B (RoPE) and 13B (ALiBi).
    case baichuan
    /// First-generation Qwen (`QWenLMHeadModel`, GGUF `qwen`).
    case qwen
    case persimmon

    /// The family of an HF `architectures[0]` class, or nil.
    public init?(hfArchitecture name: String) {
        switch name {
        case "LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM": self = .llama
        case "GPT2LMHeadModel": self = .gpt2
        case "OPTForCausalLM": self = .opt
        case "PhiForCausalLM": self = .phi
        case "FalconForCausalLM", "RWForCausalLM": self = .falcon
        case "MPTForCausalLM", "MptForCausalLM": self = .mpt
        case "BaichuanForCausalLM", "BaiChuanForCausalLM": self = .baichuan
        case "QWenLMHeadModel": self = .qwen
        case "PersimmonForCausalLM": self = .persimmon
        default: return nil
        }
    }

    /// The family of a GGUF `general.architecture`, or nil (llama.cpp has no OPT or Persimmon).
    public init?(ggufArchitecture name: String) {
        switch name {
        case "llama", "qwen2": self = .llama
        case "gpt2": self = .gpt2
        case "phi2": self = .phi
        case "falcon": self = .falcon
        case "mpt": self = .mpt
        case "baichuan": self = .baichuan
        case "qwen": self = .qwen
        default: return nil
        }
    }

    /// The family's name in messages.
    public var displayName: String {
        switch self {
        case .llama: "LLaMA"
        case .gpt2: "GPT-2"
        case .opt: "OPT"
        case .phi: "phi"
        case .falcon: "Falcon"
        case .mpt: "MPT"
        case .baichuan: "Baichuan"
        case .qwen: "Qwen-7B"
        case .persimmon: "Persimmon"
        }
    }
}
