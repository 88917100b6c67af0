/// Which head count a tensor's row permutation uses (see ``RowPermutation``).
public enum HeadPermutation: Sendable, Hashable {
    /// Rows grouped by `num_attention_heads` (q_proj).
    case queryHeads
    /// Rows grouped by `num_key_value_heads` (k_proj).
    case keyValueHeads
}

/// One tensor name correspondence between a Hugging Face checkpoint and GGUF.
///
/// `{bid}` in either pattern stands for the block (layer) number. Suffixes (`.weight`, `.bias`)
/// are part of the rule so that each may differ in treatment.
public struct TensorNameRule: Sendable, Hashable {
    public let hf: String
    public let gguf: String
    public let permutation: HeadPermutation?

    public init(hf: String, gguf: String, permutation: HeadPermutation? = nil) {
        self.hf = hf
        self.gguf = gguf
        self.permutation = permutation
    }
}

/// Everything wconv needs to know about one model family to move it between formats:
/// which HF classes it covers, what llama.cpp calls it, and how its tensors are named.
///
/// Adding a family is adding a description (llama.cpp's `tensor_mapping.py` plays this role).
public struct ArchitectureDescription: Sendable {
    /// `general.architecture` in GGUF.
    public let ggufName: String
    /// `architectures[0]` values in config.json that this description covers.
    public let hfArchitectures: [String]
    public let tensorRules: [TensorNameRule]
    /// HF tensor name suffixes the converter drops (buffers saved by old checkpoints).
    public let ignoredHFSuffixes: [String]

    /// The GGUF name and permutation for an HF tensor name; nil if no rule matches.
    public func ggufName(forHF name: String) -> (name: String, permutation: HeadPermutation?)? {
        for rule in tensorRules {
            if let block = Self.match(name, pattern: rule.hf) {
                return (Self.fill(rule.gguf, block: block), rule.permutation)
            }
        }
        return nil
    }

    /// The HF name and permutation for a GGUF tensor name; nil if no rule matches.
    public func hfName(forGGUF name: String) -> (name: String, permutation: HeadPermutation?)? {
        for rule in tensorRules {
            if let block = Self.match(name, pattern: rule.gguf) {
                return (Self.fill(rule.hf, block: block), rule.permutation)
            }
        }
        return nil
    }

    /// Whether the converter silently drops this HF tensor.
    public func isIgnored(hfName name: String) -> Bool {
        ignoredHFSuffixes.contains { name.hasSuffix($0) }
    }

    /// Matches `name` against `pattern`; returns the block number (-1 when the pattern has none).
    static func match(_ name: String, pattern: String) -> Int? {
        let parts = pattern.split(separator: "{bid}", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return name == pattern ? -1 : nil }
        let prefix = parts[0], suffix = parts[1]
        guard name.utf8.count > prefix.utf8.count + suffix.utf8.count,
              name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let middle = name.utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count)
        guard middle.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let block = Int(String(decoding: middle, as: UTF8.self)),
              String(block).utf8.count == middle.count else { return nil }
        return block
    }

    static func fill(_ pattern: String, block: Int) -> String {
        let parts = pattern.split(separator: "{bid}", omittingEmptySubsequences: false)
        return parts.count == 2 ? parts[0] + String(block) + parts[1] : pattern
    }
}

extension ArchitectureDescription {
    /// LLaMA and the families llama.cpp converts as `llama`: LLaMA 1/2/3, Mistral, Yi, SmolLM,
    /// TinyLlama and their fine-tunes (Alpaca, Vicuna, Guanaco, …).
    public static let llama = ArchitectureDescription(
        ggufName: "llama",
        hfArchitectures: ["LlamaForCausalLM", "LLaMAForCausalLM", "MistralForCausalLM"],
        tensorRules: [
            TensorNameRule(hf: "model.embed_tokens.weight", gguf: "token_embd.weight"),
            TensorNameRule(hf: "model.norm.weight", gguf: "output_norm.weight"),
            TensorNameRule(hf: "lm_head.weight", gguf: "output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.input_layernorm.weight", gguf: "blk.{bid}.attn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.weight", gguf: "blk.{bid}.attn_q.weight", permutation: .queryHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.q_proj.bias", gguf: "blk.{bid}.attn_q.bias", permutation: .queryHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.weight", gguf: "blk.{bid}.attn_k.weight", permutation: .keyValueHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.k_proj.bias", gguf: "blk.{bid}.attn_k.bias", permutation: .keyValueHeads),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.weight", gguf: "blk.{bid}.attn_v.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.v_proj.bias", gguf: "blk.{bid}.attn_v.bias"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.weight", gguf: "blk.{bid}.attn_output.weight"),
            TensorNameRule(hf: "model.layers.{bid}.self_attn.o_proj.bias", gguf: "blk.{bid}.attn_output.bias"),
            TensorNameRule(hf: "model.layers.{bid}.post_attention_layernorm.weight", gguf: "blk.{bid}.ffn_norm.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.weight", gguf: "blk.{bid}.ffn_gate.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.weight", gguf: "blk.{bid}.ffn_up.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.weight", gguf: "blk.{bid}.ffn_down.weight"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.gate_proj.bias", gguf: "blk.{bid}.ffn_gate.bias"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.up_proj.bias", gguf: "blk.{bid}.ffn_up.bias"),
            TensorNameRule(hf: "model.layers.{bid}.mlp.down_proj.bias", gguf: "blk.{bid}.ffn_down.bias"),
        ],
        ignoredHFSuffixes: [".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias"]
    )

    /// Every family wconv can move between HF and GGUF.
    public static let all: [ArchitectureDescription] = [.llama]

    /// The description covering an HF `architectures[0]` class name.
    public static func forHF(architecture: String) -> ArchitectureDescription? {
        all.first { $0.hfArchitectures.contains(architecture) }
    }

    /// The description of a GGUF `general.architecture`.
    public static func forGGUF(architecture: String) -> ArchitectureDescription? {
        all.first { $0.ggufName == architecture }
    }
}
