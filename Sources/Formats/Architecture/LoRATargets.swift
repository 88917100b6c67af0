import TensorCore

/// The LoRA target modules of one model family, under the leaf names PEFT matches against the
/// Hugging Face module paths (`target_modules: ["c_attn"]` adapts `transformer.h.N.attn.c_attn`).
///
/// `peftDefault` is PEFT 0.21.2's `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING` entry for
/// the config's `model_type` (what `LoraConfig()` adapts when it names no targets); `allLinear`
/// is what `target_modules="all-linear"` selects: every `nn.Linear` / `Conv1D` of the decoder
/// blocks, the output head excluded. Fused projections (`c_attn`, `query_key_value`, `Wqkv`,
/// `W_pack`) are one module: the adapter's delta covers the whole fused matrix.
public struct LoRATargetNames: Sendable, Hashable {
    /// config.json's `model_type` values this entry covers.
    public let modelTypes: [String]
    /// PEFT's default targets; nil when PEFT has no mapping for the family (remote-code models,
    /// Persimmon), so the user must name them.
    public let peftDefault: [String]?
    /// The decoder blocks' linear layers, in block order.
    public let allLinear: [String]
    /// Leaf names whose weights are GPT-2 `Conv1D`s, stored `[in, out]`: PEFT sets
    /// `fan_in_fan_out=True` for them, and their delta is `(B·A)ᵀ`.
    public let conv1D: Set<String>
    /// The leaf name of a fused q | k | v projection, if the family has one.
    public let fusedQKV: String?

    public init(modelTypes: [String], peftDefault: [String]?, allLinear: [String], conv1D: Set<String> = [], fusedQKV: String? = nil) {
        self.modelTypes = modelTypes
        self.peftDefault = peftDefault
        self.allLinear = allLinear
        self.conv1D = conv1D
        self.fusedQKV = fusedQKV
    }

    /// What `--targets` accepts besides a list of names: every linear layer, or PEFT's default.
    public static let allLinearKeyword = "all-linear"
    public static let peftDefaultKeyword = "peft-default"

    /// The target names a `--targets` value selects: nil or `all-linear` → ``allLinear``,
    /// `peft-default` → ``peftDefault``, otherwise the comma-separated names as given.
    /// - Throws: ``Failure`` (`.usage`) for `peft-default` on a family PEFT has no mapping for.
    public func resolve(_ spec: String?) throws -> [String] {
        let trimmed = spec.map { $0.split(separator: ",").map { String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()) }.filter { !$0.isEmpty } }
        switch trimmed {
        case nil, [Self.allLinearKeyword]?:
            return allLinear
        case [Self.peftDefaultKeyword]?:
            guard let peftDefault else {
                throw Failure(.usage, "PEFT has no default target modules for model_type \(modelTypes.first ?? "?"); name them (\(allLinear.joined(separator: ",")))")
            }
            return peftDefault
        case let names?:
            return names
        }
    }

    /// Whether the weight of the module named `module` (a full HF module path) is a Conv1D.
    public func isConv1D(module: String) -> Bool {
        let leaf = module.split(separator: ".").last.map(String.init) ?? module
        return conv1D.contains(leaf)
    }
}

extension LoRATargetNames {
    /// LLaMA's block (also Mistral, Qwen2 and the other `model.layers.N.self_attn.*_proj` families).
    static let llamaBlock = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    /// LLaMA, Mistral and Yi.
    public static let llama = LoRATargetNames(modelTypes: ["llama", "mistral", "yi"], peftDefault: ["q_proj", "v_proj"], allLinear: llamaBlock)

    /// Every family wconv knows, transformers' native ones and the remote-code layouts.
    public static let all: [LoRATargetNames] = [
        llama,
        LoRATargetNames(modelTypes: ["qwen2"], peftDefault: ["q_proj", "v_proj"], allLinear: llamaBlock),
        // PEFT's table has no "yi" key (Yi checkpoints say "llama"); a "yi" model_type gets LLaMA's.
        LoRATargetNames(modelTypes: ["gpt2"], peftDefault: ["c_attn"], allLinear: ["c_attn", "c_proj", "c_fc"],
                        conv1D: ["c_attn", "c_proj", "c_fc"], fusedQKV: "c_attn"),
        LoRATargetNames(modelTypes: ["opt"], peftDefault: ["q_proj", "v_proj"],
                        allLinear: ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),
        LoRATargetNames(modelTypes: ["phi"], peftDefault: ["q_proj", "v_proj", "fc1", "fc2"],
                        allLinear: ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]),
        LoRATargetNames(modelTypes: ["falcon", "RefinedWeb", "RefinedWebModel"], peftDefault: ["query_key_value"],
                        allLinear: ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], fusedQKV: "query_key_value"),
        LoRATargetNames(modelTypes: ["mpt"], peftDefault: ["Wqkv"], allLinear: ["Wqkv", "out_proj", "up_proj", "down_proj"],
                        fusedQKV: "Wqkv"),
        LoRATargetNames(modelTypes: ["persimmon"], peftDefault: nil,
                        allLinear: ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], fusedQKV: "query_key_value"),
        // Remote code: PEFT has no mapping. Qwen-7B's `c_proj` names both the attention output
        // and the MLP's down projection.
        LoRATargetNames(modelTypes: ["qwen"], peftDefault: nil, allLinear: ["c_attn", "c_proj", "w1", "w2"], fusedQKV: "c_attn"),
        LoRATargetNames(modelTypes: ["baichuan"], peftDefault: nil, allLinear: ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"],
                        fusedQKV: "W_pack"),
    ]

    /// The entry for a config.json `model_type`.
    public static func forModelType(_ type: String) -> LoRATargetNames? {
        all.first { $0.modelTypes.contains(type) }
    }

    /// The entry for a GGUF `general.architecture`: each family's GGUF name is its `model_type`,
    /// except phi-1.5's, which llama.cpp calls `phi2`.
    public static func forGGUF(architecture name: String) -> LoRATargetNames? {
        forModelType(name == "phi2" ? "phi" : name)
    }

    /// The entry for a config.json object (its `model_type`; LLaMA's when the key is missing or
    /// empty, as in LLaMA checkpoints converted from GGUF).
    public static func forConfig(_ config: JSONObject) -> LoRATargetNames? {
        let type = config["model_type"]?.stringValue ?? ""
        return type.isEmpty ? llama : forModelType(type)
    }
}
