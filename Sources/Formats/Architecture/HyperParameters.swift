public import TensorCore

/// How a family's config.json names its attention head counts.
public struct HeadCountKeys: Sendable, Hashable {
    /// Keys for the query head count, first found wins.
    public let heads: [String]
    /// Keys for the key/value head count, first found wins.
    public let kvHeads: [String]
    /// The KV head count when no key is present: nil means "same as heads".
    public let defaultKVHeads: Int?

    public init(heads: [String], kvHeads: [String], defaultKVHeads: Int? = nil) {
        self.heads = heads
        self.kvHeads = kvHeads
        self.defaultKVHeads = defaultKVHeads
    }

    public static let standard = HeadCountKeys(
        heads: ["num_attention_heads", "n_head", "n_heads"], kvHeads: ["num_key_value_heads", "n_kv_heads"])
}

/// One step of a family's config → GGUF metadata mapping, in the converter's order.
///
/// Keys are written as `<arch>.<key>` (e.g. `block_count`, `attention.head_count`); config
/// lookups take the first key present, and a dotted key reads a nested object
/// (`attn_config.kv_n_heads`). Integers are written as UINT32 and floats as FLOAT32, as gguf-py does.
public enum HyperParameter: Sendable {
    /// `<arch>.<key>` = the first of the config keys present, as UINT32; skipped when none is,
    /// an error when `required`.
    case uint32(String, [String], required: Bool = false)
    /// The same as FLOAT32.
    case float32(String, [String], required: Bool = false)
    /// `<arch>.<key>` = `factor` × the first config key present (required), as UINT32
    /// (Falcon/GPT-2/phi/MPT write `feed_forward_length` = 4 × the embedding width).
    case uint32Times(String, [String], factor: Int)
    case uint32Constant(String, UInt32)
    case float32Constant(String, Float)
    case string(String, String)
    /// `general.file_type`.
    case fileType
    /// A fully qualified key with a fixed value, written here (phi's
    /// `tokenizer.ggml.add_bos_token` = false, which the tokenizer section then only updates).
    case fixed(String, GGUFValue)
    /// `TextModel.set_gguf_parameters`, the list most families start from (see docs/families.md).
    case textModelDefaults
    /// Anything that is not a plain lookup.
    case computed(@Sendable (HFConfig, _ arch: String) throws -> [GGUFKeyValue])
}

extension HyperParameter {
    /// `<arch>.rope.dimension_count` = hidden_size / num_attention_heads, or config `head_dim`
    /// when `preferringHeadDim` and present (LLaMA; Baichuan always divides).
    public static func ropeDimensionCount(preferringHeadDim: Bool) -> HyperParameter {
        .computed { config, arch in
            let heads = try config.numAttentionHeads
            guard heads > 0 else { throw HyperParameterError(key: "num_attention_heads", expected: "a positive integer") }
            let headDim = preferringHeadDim ? try config.headDim : nil
            let dim = try headDim ?? (config.hiddenSize / heads)
            return [GGUFKeyValue(GGUFKeys.Architecture.ropeDimensionCount(arch), .uint32(UInt32(truncatingIfNeeded: dim)))]
        }
    }
}

/// A missing or mistyped config value the metadata mapping needs.
public struct HyperParameterError: ClassifiedError {
    public let key: String
    public let expected: String
    public var kind: ErrorKind { .malformedInput }
    public var description: String { "config.json: \(key) is missing or not \(expected)" }
}

extension HFConfig {
    /// The value at a possibly dotted key (`attn_config.alibi_bias_max`); nil when absent or null.
    public func value(atPath path: String) -> JSONValue? {
        var parts = path.split(separator: ".").map(String.init)
        guard !parts.isEmpty else { return nil }
        var current = object[parts.removeFirst()]
        for part in parts { current = current?.objectValue?[part] }
        if let current, current.isNull { return nil }
        return current
    }

    /// The first of `keys` present (llama.cpp's `find_hparam`).
    public func first(_ keys: [String]) -> JSONValue? {
        for key in keys { if let v = value(atPath: key) { return v } }
        return nil
    }

    func firstInt(_ keys: [String]) throws -> Int? {
        guard let v = first(keys) else { return nil }
        guard let i = v.intValue else { throw HyperParameterError(key: keys[0], expected: "an integer") }
        return i
    }

    func firstDouble(_ keys: [String]) throws -> Double? {
        guard let v = first(keys) else { return nil }
        guard let d = v.doubleValue else { throw HyperParameterError(key: keys[0], expected: "a number") }
        return d
    }
}

extension ArchitectureDescription {
    /// The query and key/value head counts of a config, as this family names them.
    public func headCounts(_ config: HFConfig) throws -> (heads: Int, kvHeads: Int) {
        guard let heads = try config.firstInt(headCountKeys.heads), heads > 0 else {
            throw HyperParameterError(key: headCountKeys.heads[0], expected: "a positive integer")
        }
        let kv = try config.firstInt(headCountKeys.kvHeads) ?? headCountKeys.defaultKVHeads ?? heads
        guard kv > 0, heads % kv == 0 else { throw HyperParameterError(key: headCountKeys.kvHeads[0], expected: "a divisor of the head count") }
        return (heads, kv)
    }

    /// The `<arch>.*` entries and `general.file_type` for a config, in the converter's order.
    /// - Parameter fileType: llama.cpp's `LlamaFileType` id of the output.
    public func hyperParameterEntries(_ config: HFConfig, fileType: UInt32) throws -> [GGUFKeyValue] {
        let arch = ggufName
        var kv: [GGUFKeyValue] = []
        func key(_ k: String) -> String { "\(arch).\(k)" }
        for step in hyperParameters {
            switch step {
            case .uint32(let k, let keys, let required):
                if let v = try config.firstInt(keys) {
                    kv.append(GGUFKeyValue(key(k), .uint32(UInt32(truncatingIfNeeded: v))))
                } else if required {
                    throw HyperParameterError(key: keys[0], expected: "an integer")
                }
            case .float32(let k, let keys, let required):
                if let v = try config.firstDouble(keys) {
                    kv.append(GGUFKeyValue(key(k), .float32(Float(v))))
                } else if required {
                    throw HyperParameterError(key: keys[0], expected: "a number")
                }
            case .uint32Times(let k, let keys, let factor):
                guard let v = try config.firstInt(keys) else { throw HyperParameterError(key: keys[0], expected: "an integer") }
                kv.append(GGUFKeyValue(key(k), .uint32(UInt32(truncatingIfNeeded: factor * v))))
            case .uint32Constant(let k, let v):
                kv.append(GGUFKeyValue(key(k), .uint32(v)))
            case .float32Constant(let k, let v):
                kv.append(GGUFKeyValue(key(k), .float32(v)))
            case .string(let k, let v):
                kv.append(GGUFKeyValue(key(k), .string(v)))
            case .fileType:
                kv.append(GGUFKeyValue(GGUFKeys.General.fileType, .uint32(fileType)))
            case .fixed(let k, let v):
                kv.append(GGUFKeyValue(k, v))
            case .textModelDefaults:
                kv += try Self.textModelDefaults(config, arch: arch, fileType: fileType)
            case .computed(let f):
                kv += try f(config, arch)
            }
        }
        return kv
    }

    /// `TextModel.set_gguf_parameters`: the generic keys, ending with `general.file_type`.
    static func textModelDefaults(_ config: HFConfig, arch: String, fileType: UInt32) throws -> [GGUFKeyValue] {
        typealias K = GGUFKeys.Architecture
        var kv: [GGUFKeyValue] = []
        func u32(_ key: String, _ value: Int) { kv.append(GGUFKeyValue(key, .uint32(UInt32(truncatingIfNeeded: value)))) }
        func f32(_ key: String, _ value: Double) { kv.append(GGUFKeyValue(key, .float32(Float(value)))) }

        guard let blocks = try config.firstInt(["n_layers", "num_hidden_layers", "n_layer", "num_layers"]) else {
            throw HyperParameterError(key: "num_hidden_layers", expected: "an integer")
        }
        u32(K.blockCount(arch), blocks)
        if let n = try config.firstInt(["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"]) {
            u32(K.contextLength(arch), n)
        }
        if let n = try config.firstInt(["hidden_size", "n_embd", "dim"]) { u32(K.embeddingLength(arch), n) }
        if let n = try config.firstInt(["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"]) {
            u32(K.feedForwardLength(arch), n)
        }
        if let n = try config.firstInt(["num_attention_heads", "n_head", "n_heads"]) { u32(K.headCount(arch), n) }
        if let n = try config.firstInt(["num_key_value_heads", "n_kv_heads"]) { u32(K.headCountKV(arch), n) }
        if let scaling = try config.ropeScaling, let factor = scaling.factor {
            switch scaling.type {
            case "linear":
                kv.append(GGUFKeyValue(K.ropeScalingType(arch), .string("linear")))
                f32(K.ropeScalingFactor(arch), factor)
            case "yarn":
                kv.append(GGUFKeyValue(K.ropeScalingType(arch), .string("yarn")))
                f32(K.ropeScalingFactor(arch), factor)
                if let ctx = scaling.originalMaxPositionEmbeddings { u32(K.ropeScalingOriginalContextLength(arch), ctx) }
            default:
                break  // llama3 becomes the rope_freqs tensor; others are not written.
            }
        }
        if let theta = try config.ropeTheta ?? config.firstDouble(["global_rope_theta", "rope_global_theta", "rope_theta_global", "rotary_emb_base"]) {
            f32(K.ropeFreqBase(arch), theta)
        }
        if let eps = try config.firstDouble(["rms_norm_eps", "norm_eps"]) { f32(K.layerNormRMSEpsilon(arch), eps) }
        if let eps = try config.firstDouble(["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"]) {
            f32(K.key(arch, "attention.layer_norm_epsilon"), eps)
        }
        if let headDim = try config.headDim {
            u32(K.keyLength(arch), headDim)
            u32(K.valueLength(arch), headDim)
        }
        u32(GGUFKeys.General.fileType, Int(fileType))
        return kv
    }
}
