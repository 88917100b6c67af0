/// Which head count a tensor's row permutation uses (see ``RowPermutation``).
public enum HeadPermutation: Sendable, Hashable {
    /// Rows grouped by `num_attention_heads` (q_proj).
    case queryHeads
    /// Rows grouped by `num_key_value_heads` (k_proj).
    case keyValueHeads
}

/// What the converter does to a tensor's data besides renaming it.
public enum TensorTransform: Sendable, Hashable {
    /// Reorder rows per head between HF's and llama.cpp's rotary layouts (``RowPermutation``).
    case permute(HeadPermutation)
    /// A Conv1D weight stored `[in, out]` (GPT-2) becomes a Linear-style `[out, in]`.
    case transpose
    /// Falcon's fused `query_key_value`, grouped per KV head (the group's query heads, one key
    /// head, one value head), is rewritten as all query heads, then all key heads, then all
    /// value heads. Head counts come from ``ArchitectureDescription/headCounts(_:)``.
    case regroupFusedQKV
    /// A fused tensor split by rows into equal parts (Baichuan's `W_pack` → q | k | v), each
    /// with its own GGUF name pattern and optional permutation, emitted in this order.
    case split([SplitPart])
}

/// One piece of a ``TensorTransform/split(_:)``.
public struct SplitPart: Sendable, Hashable {
    public let gguf: String
    public let permutation: HeadPermutation?

    public init(gguf: String, permutation: HeadPermutation? = nil) {
        self.gguf = gguf
        self.permutation = permutation
    }
}

/// One tensor name correspondence between a Hugging Face checkpoint and GGUF.
///
/// `{bid}` in either pattern stands for the block (layer) number. Suffixes (`.weight`, `.bias`)
/// are part of the rule so that each may differ in treatment.
public struct TensorNameRule: Sendable, Hashable {
    public let hf: String
    /// The GGUF name pattern; for a split, the pattern of its first part.
    public let gguf: String
    public let transform: TensorTransform?
    /// GGUF → HF only: this rule applies to a GGUF tensor only when the GGUF also holds this
    /// tensor (a pattern with `{bid}`). It tells apart layouts that share GGUF names, such as
    /// Falcon's `attn_norm`, which is `input_layernorm` in 7B-style checkpoints and `ln_mlp` in
    /// those with `attn_norm_2` (40B style). Rules with a holding condition win over rules without.
    public let onlyWithGGUF: String?

    /// The head permutation of a plain renaming rule.
    public var permutation: HeadPermutation? {
        if case .permute(let p) = transform { p } else { nil }
    }

    /// Whether the data goes through unchanged or with a streamed row permutation only
    /// (the only rules the name lookups below expose to per-tensor users such as verify and merge).
    public var isRowwise: Bool {
        switch transform {
        case nil, .permute: true
        default: false
        }
    }

    public init(hf: String, gguf: String, permutation: HeadPermutation? = nil, onlyWithGGUF: String? = nil) {
        self.hf = hf
        self.gguf = gguf
        self.transform = permutation.map { .permute($0) }
        self.onlyWithGGUF = onlyWithGGUF
    }

    public init(hf: String, transform: TensorTransform, gguf: String = "") {
        self.hf = hf
        if case .split(let parts) = transform { self.gguf = parts.first?.gguf ?? gguf } else { self.gguf = gguf }
        self.transform = transform
        self.onlyWithGGUF = nil
    }
}

/// One GGUF tensor produced from an HF tensor by ``ArchitectureDescription/ggufTensors(forHF:)``.
public struct MappedTensor: Sendable {
    public let name: String
    public let transform: TensorTransform?
    /// For a part of a split: which part, and how many parts there are.
    public let part: (index: Int, count: Int)?
}

/// Where a GGUF tensor goes in the HF checkpoint (``ArchitectureDescription/hfTensor(forGGUF:ggufHas:)``):
/// the HF tensor and the forward transform the converter applied, which the caller undoes.
public struct HFTensorOrigin: Sendable, Hashable {
    /// The HF tensor name.
    public let hfName: String
    /// The converter's transform of the whole HF tensor (for a split: `nil`, see `part`).
    public let transform: TensorTransform?
    /// For one part of a split HF tensor: its index, the number of parts (the HF tensor is the
    /// parts' rows concatenated in index order) and the part's own row permutation.
    public let part: SplitOrigin?

    public struct SplitOrigin: Sendable, Hashable {
        public let index: Int
        public let count: Int
        public let permutation: HeadPermutation?
    }
}

/// Everything wconv needs to know about one model family to move it between formats:
/// which HF classes it covers, what llama.cpp calls it, how its tensors are named and
/// transformed, and how config.json becomes `<arch>.*` metadata.
///
/// Adding a family is adding a description (llama.cpp's `tensor_mapping.py` and per-family
/// `set_gguf_parameters` play this role). The families live in `Families/`, one file each.
public struct ArchitectureDescription: Sendable {
    /// `general.architecture` in GGUF.
    public let ggufName: String
    /// `architectures[0]` values in config.json that this description covers.
    public let hfArchitectures: [String]
    public let tensorRules: [TensorNameRule]
    /// HF tensor name suffixes the converter drops (buffers saved by old checkpoints).
    public let ignoredHFSuffixes: [String]
    /// The `<arch>.*` hyper-parameters (and `general.file_type`) in the converter's order.
    public let hyperParameters: [HyperParameter]
    /// How this family's config names the attention head counts; used by the transforms.
    public let headCountKeys: HeadCountKeys
    /// Where the converter reads the vocabulary from.
    public let vocabulary: VocabularySource

    /// Where a family's tokenizer comes from.
    public enum VocabularySource: Sendable, Hashable {
        /// tokenizer.json / tokenizer.model, as for most families.
        case huggingFace
        /// Qwen-7B's `qwen.tiktoken` (``QwenTiktokenVocabulary``).
        case qwenTiktoken
    }

    public init(
        ggufName: String, hfArchitectures: [String], tensorRules: [TensorNameRule], ignoredHFSuffixes: [String] = [],
        hyperParameters: [HyperParameter], headCountKeys: HeadCountKeys = .standard, vocabulary: VocabularySource = .huggingFace
    ) {
        self.vocabulary = vocabulary
        self.ggufName = ggufName
        self.hfArchitectures = hfArchitectures
        self.tensorRules = tensorRules
        self.ignoredHFSuffixes = ignoredHFSuffixes
        self.hyperParameters = hyperParameters
        self.headCountKeys = headCountKeys
    }

    /// The GGUF name and permutation for an HF tensor name; nil if no rule matches or the
    /// rule needs more than a row permutation (see ``ggufTensors(forHF:)``).
    public func ggufName(forHF name: String) -> (name: String, permutation: HeadPermutation?)? {
        for rule in tensorRules {
            if let block = Self.match(name, pattern: rule.hf) {
                guard rule.isRowwise else { return nil }
                return (Self.fill(rule.gguf, block: block), rule.permutation)
            }
        }
        return nil
    }

    /// The GGUF tensors an HF tensor becomes (several for a split), with their transforms;
    /// nil if no rule matches.
    public func ggufTensors(forHF name: String) -> [MappedTensor]? {
        for rule in tensorRules {
            guard let block = Self.match(name, pattern: rule.hf) else { continue }
            if case .split(let parts) = rule.transform {
                return parts.enumerated().map { i, part in
                    MappedTensor(name: Self.fill(part.gguf, block: block), transform: part.permutation.map { .permute($0) },
                                 part: (i, parts.count))
                }
            }
            return [MappedTensor(name: Self.fill(rule.gguf, block: block), transform: rule.transform, part: nil)]
        }
        return nil
    }

    /// The HF name and permutation for a GGUF tensor name; nil if no rule matches or the
    /// rule needs more than a row permutation.
    public func hfName(forGGUF name: String) -> (name: String, permutation: HeadPermutation?)? {
        for rule in tensorRules where rule.isRowwise && rule.onlyWithGGUF == nil {
            if let block = Self.match(name, pattern: rule.gguf) {
                return (Self.fill(rule.hf, block: block), rule.permutation)
            }
        }
        return nil
    }

    /// Where the GGUF tensor `name` comes from in the HF checkpoint, with the transform to undo
    /// (GGUF → HF); nil if no rule matches. `ggufHas` says whether the GGUF holds a tensor, for
    /// rules with ``TensorNameRule/onlyWithGGUF``.
    public func hfTensor(forGGUF name: String, ggufHas: (String) -> Bool) -> HFTensorOrigin? {
        func origin(_ rule: TensorNameRule) -> HFTensorOrigin? {
            if case .split(let parts) = rule.transform {
                for (i, part) in parts.enumerated() {
                    if let block = Self.match(name, pattern: part.gguf) {
                        return HFTensorOrigin(hfName: Self.fill(rule.hf, block: block), transform: nil,
                                              part: .init(index: i, count: parts.count, permutation: part.permutation))
                    }
                }
                return nil
            }
            guard let block = Self.match(name, pattern: rule.gguf) else { return nil }
            if let condition = rule.onlyWithGGUF, !ggufHas(Self.fill(condition, block: block)) { return nil }
            return HFTensorOrigin(hfName: Self.fill(rule.hf, block: block), transform: rule.transform, part: nil)
        }
        // Conditional rules first: they name the layout-specific tensor.
        for rule in tensorRules where rule.onlyWithGGUF != nil { if let o = origin(rule) { return o } }
        for rule in tensorRules where rule.onlyWithGGUF == nil { if let o = origin(rule) { return o } }
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
    /// Every family wconv can move between HF and GGUF.
    public static let all: [ArchitectureDescription] = [.llama, .qwen2, .gpt2, .phi2, .falcon, .mpt, .qwen, .baichuan]

    /// Families wconv knows by name for which llama.cpp has no GGUF architecture (no converter
    /// class, no graph): HF `architectures[0]` → family name. They get every safetensors path
    /// (dtype conversion, bitsandbytes quantization, dequantization) but no GGUF output.
    public static let withoutGGUF: [String: String] = [
        "PersimmonForCausalLM": "Persimmon",
        "OPTForCausalLM": "OPT",
    ]

    /// The description covering an HF `architectures[0]` class name.
    public static func forHF(architecture: String) -> ArchitectureDescription? {
        all.first { $0.hfArchitectures.contains(architecture) }
    }

    /// The description of a GGUF `general.architecture`.
    public static func forGGUF(architecture: String) -> ArchitectureDescription? {
        all.first { $0.ggufName == architecture }
    }
}
