public import TensorCore

// The per-tensor type choice of llama.cpp's `llama-quantize`, ported from `src/llama-quant.cpp`
// (llama-cpp-python 0.3.36's vendored tree): `tensor_allows_quantization`, `tensor_get_category`,
// `llama_tensor_get_type`, `llama_tensor_get_type_impl` and `tensor_type_fallback`, for the file
// types in ``GGMLFileType`` without an importance matrix. The IQ/TQ/MXFP4 mixes and the
// GLM5-next/BailingMoE3 special cases are left out (wconv cannot write those types).

/// The broad role of a tensor, from its name (`tensor_category`).
enum GGUFTensorCategory: Sendable, Hashable {
    case tokenEmbedding, attentionQ, attentionV, attentionK, attentionQKV, attentionKVB, attentionOutput
    case ffnUp, ffnGate, ffnDown, output, other

    /// `tensor_get_category`: exact names first, then substrings in llama.cpp's order.
    init(name: String) {
        if name == "output.weight" { self = .output; return }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { self = .tokenEmbedding; return }
        let checks: [(String, GGUFTensorCategory)] = [
            ("attn_qkv.weight", .attentionQKV), ("attn_kv_b.weight", .attentionKVB), ("attn_v.weight", .attentionV),
            ("attn_k.weight", .attentionK), ("attn_q.weight", .attentionQ), ("attn_output.weight", .attentionOutput),
            ("ffn_up", .ffnUp), ("ffn_gate", .ffnGate), ("ffn_down", .ffnDown),
        ]
        self = checks.first { name.contains($0.0) }?.1 ?? .other
    }

    /// Attention-V-like tensors (more sensitive to quantization), `category_is_attn_v`.
    var isAttentionVLike: Bool { self == .attentionV || self == .attentionQKV || self == .attentionKVB }
}

/// The model facts the rules look at (`llama_hparams`, `llm_type`).
struct GGUFQuantModelFacts: Sendable {
    var architecture: String
    /// `n_layer`: the per-layer counters of ffn_down/gate/up count against it.
    var layerCount: Int
    var headCount: Int
    var headCountKV: Int
    var expertCount: Int

    /// `n_gqa()`: query heads per KV head (0 without KV heads).
    var gqa: Int { headCountKV == 0 ? 0 : headCount / headCountKV }

    /// `LLM_TYPE_70B`, which llama.cpp infers for LLaMA from 80 layers with grouped KV heads
    /// (its attn_v gets Q5_K instead of Q3_K/Q4_K). Only the LLaMA rule is ported.
    var is70B: Bool { architecture == "llama" && layerCount == 80 && headCount != headCountKV }

    var isFalcon: Bool { architecture == "falcon" }
}

/// Why a tensor's type cannot be chosen.
public enum GGUFQuantizeRuleError: ClassifiedError, Hashable {
    /// A `--tensor-type` pattern is not a regular expression.
    case badPattern(String, reason: String)
    /// The mix asks for a type wconv cannot write (or a per-tensor override names one).
    case cannotQuantize(tensor: String, type: GGMLType)
    /// An explicit `--output-tensor-type`/`--token-embedding-type` does not fit the rows.
    case typeDoesNotFitRows(tensor: String, type: GGMLType, rowLength: Int)
    /// MoE layer lookup: a tensor of an expert model whose name carries no valid block number.
    case badLayer(tensor: String, layerCount: Int)
    /// ggml has no fallback for a block type when the rows do not fit it.
    case noFallback(tensor: String, type: GGMLType)

    public var kind: ErrorKind {
        switch self {
        case .badPattern: .usage
        case .cannotQuantize, .typeDoesNotFitRows, .noFallback: .unsupported
        case .badLayer: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .badPattern(let p, let reason): "--tensor-type pattern '\(p)' is not a valid regular expression (\(reason))"
        case .cannotQuantize(let t, let type): "tensor \(t): wconv cannot write type \(type.name)"
        case .typeDoesNotFitRows(let t, let type, let n):
            "tensor \(t): rows of \(n) elements cannot be stored as \(type.name) (block size \(type.blockSize ?? 0))"
        case .badLayer(let t, let n): "tensor \(t): no block number in [0, \(n)) in its name"
        case .noFallback(let t, let type): "tensor \(t): no fallback type is defined for \(type.name)"
        }
    }
}

/// The type chosen for one tensor, and whether the row length forced a fallback.
struct GGUFTypeDecision: Sendable, Hashable {
    var type: GGMLType
    /// The type the rules wanted when ne[0] did not fit it.
    var fallbackFrom: GGMLType?
}

/// `quantize_state_impl` and the type choice, tensor by tensor in llama-quantize's order.
///
/// Stateful like the original: the attn_v and ffn_* counters advance as tensors are visited, so
/// ``decide(name:dimensions:currentType:)`` must be called once per tensor, in output order.
struct GGUFTensorTypeRules {
    let fileType: GGMLFileType
    let defaultType: GGMLType
    let facts: GGUFQuantModelFacts
    let pure: Bool
    let leaveOutputTensor: Bool
    let outputTensorType: GGMLType?
    let tokenEmbeddingType: GGMLType?
    let overrides: [(regex: Regex<AnyRegexOutput>, type: GGMLType)]
    /// True until a tensor called output.weight is seen among all names.
    let hasTiedEmbeddings: Bool
    let attentionVCount: Int

    private(set) var attentionVIndex = 0
    private(set) var ffnDownIndex = 0
    private(set) var ffnGateIndex = 0
    private(set) var ffnUpIndex = 0
    private(set) var fallbackCount = 0

    /// - Parameter names: every tensor name of the output, in order (for the tied-embedding
    ///   test and the attn_v count, which llama.cpp takes before choosing any type).
    init(fileType: GGMLFileType, options: QuantizeOptions, facts: GGUFQuantModelFacts, names: [String]) throws {
        self.fileType = fileType.canonical
        defaultType = fileType.defaultTensorType
        self.facts = facts
        pure = options.pure
        leaveOutputTensor = options.leaveOutputTensor
        outputTensorType = options.outputTensorType
        tokenEmbeddingType = options.tokenEmbeddingType
        var compiled: [(Regex<AnyRegexOutput>, GGMLType)] = []
        for (pattern, type) in options.tensorTypeOverrides {
            let lowered = QuantizeOptions.asciiLowercased(pattern)
            do {
                compiled.append((try Regex(lowered), type))
            } catch {
                throw GGUFQuantizeRuleError.badPattern(pattern, reason: "\(error)")
            }
        }
        overrides = compiled
        let categories = names.map(GGUFTensorCategory.init(name:))
        hasTiedEmbeddings = !categories.contains(.output)
        attentionVCount = categories.filter(\.isAttentionVLike).count
    }

    /// `ggml_n_dims`: dimensions up to the last one above 1 (at least one).
    static func dimensionCount(_ ne: [Int]) -> Int {
        var n = ne.count
        while n > 1 && ne[n - 1] == 1 { n -= 1 }
        return max(1, n)
    }

    /// `tensor_allows_quantization`: matrices whose name ends in `weight`, minus norms and the
    /// small or positional tensors llama.cpp keeps as they are.
    static func allowsQuantization(name: String, dimensions: [Int], leaveOutputTensor: Bool) -> Bool {
        if dimensionCount(dimensions) < 2 { return false }
        guard name.hasSuffix("weight") else { return false }
        if name.contains("_norm.weight") { return false }
        if leaveOutputTensor && name == "output.weight" { return false }
        if name == "position_embd.weight" || name == "token_types.weight" { return false }
        let excluded = [
            "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
            "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
            "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
            "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
            "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
            "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
            "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
            ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
        ]
        return !excluded.contains { name.contains($0) }
    }

    /// `llama_tensor_get_type`: the type `name` gets in the output.
    mutating func decide(name: String, dimensions: [Int], currentType: GGMLType) throws -> GGUFTypeDecision {
        guard Self.allowsQuantization(name: name, dimensions: dimensions, leaveOutputTensor: leaveOutputTensor) else {
            return GGUFTypeDecision(type: currentType)
        }
        let category = GGUFTensorCategory(name: name)
        let rowLength = dimensions.first ?? 1
        if let t = tokenEmbeddingType, category == .tokenEmbedding {
            // per_layer_token_embd follows --token-embedding-type unless a --tensor-type names it.
            let named = name == "per_layer_token_embd.weight" && overrides.contains { (try? $0.regex.firstMatch(in: name)) != nil }
            if !named { return try explicit(t, name: name, rowLength: rowLength) }
        }
        if let t = outputTensorType, category == .output {
            return try explicit(t, name: name, rowLength: rowLength)
        }
        var type = defaultType
        guard type.isQuantized else { return GGUFTypeDecision(type: type) }
        var manual = false
        for (regex, t) in overrides where (try? regex.firstMatch(in: name)) != nil {
            type = t
            manual = true
            break
        }
        if !manual && !pure {
            type = try mixType(type, name: name, rowLength: rowLength, category: category)
        }
        return try fallback(type, name: name, rowLength: rowLength)
    }

    /// An explicitly requested type is used as is; llama-quantize would abort on rows it does
    /// not fit, wconv says so.
    private func explicit(_ type: GGMLType, name: String, rowLength: Int) throws -> GGUFTypeDecision {
        guard let block = type.blockSize, rowLength % block == 0 else {
            throw GGUFQuantizeRuleError.typeDoesNotFitRows(tensor: name, type: type, rowLength: rowLength)
        }
        return GGUFTypeDecision(type: type)
    }

    /// `tensor_type_fallback`: a type whose block does not divide ne[0] is replaced.
    private mutating func fallback(_ type: GGMLType, name: String, rowLength: Int) throws -> GGUFTypeDecision {
        guard let block = type.blockSize else { throw GGUFQuantizeRuleError.cannotQuantize(tensor: name, type: type) }
        guard rowLength % block != 0 else { return GGUFTypeDecision(type: type) }
        fallbackCount += 1
        var result: GGMLType
        switch type {
        case .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq4_xs: result = .iq4_nl
        case .q2_0, .q2_K, .q3_K, .tq1_0, .tq2_0: result = .q4_0
        case .q4_K: result = .q5_0
        case .q5_K: result = .q5_1
        case .q6_K: result = .q8_0
        default:
            // A 32-element type has nothing smaller to fall back to: F16 below.
            guard block <= 32 else { throw GGUFQuantizeRuleError.noFallback(tensor: name, type: type) }
            result = type
        }
        if rowLength % (result.blockSize ?? 1) != 0 { result = .f16 }
        return GGUFTypeDecision(type: result, fallbackFrom: type)
    }

    /// `use_more_bits`: the first and last eighth of the layers, and every third in between.
    static func useMoreBits(_ layer: Int, _ layers: Int) -> Bool {
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
    }

    /// `layer_info`: the counter for dense models; the block number in the name for MoE ones
    /// (whose expert tensors are not in layer order).
    private func layerInfo(_ index: Int, _ count: Int, name: String) throws -> (Int, Int) {
        guard facts.expertCount > 1 else { return (index, count) }
        guard let layer = Self.blockNumber(name), layer >= 0, layer < count else {
            throw GGUFQuantizeRuleError.badLayer(tensor: name, layerCount: count)
        }
        return (layer, count)
    }

    /// The number `sscanf(name, "blk.%d.", &n)` reads, if any.
    static func blockNumber(_ name: String) -> Int? {
        let bytes = Array(name.utf8)
        guard bytes.starts(with: Array("blk.".utf8)) else { return nil }
        var i = 4
        // %d skips white space and takes an optional sign.
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D].contains(bytes[i]) { i += 1 }
        var negative = false
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
            negative = bytes[i] == UInt8(ascii: "-")
            i += 1
        }
        var value = 0, digits = 0
        while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
            value = min(value * 10 + Int(bytes[i] - 0x30), Int(Int32.max))
            digits += 1
            i += 1
        }
        return digits == 0 ? nil : (negative ? -value : value)
    }

    /// `llama_tensor_get_type_impl` for the non-IQ file types.
    private mutating func mixType(_ start: GGMLType, name: String, rowLength: Int, category: GGUFTensorCategory) throws -> GGMLType {
        var type = start
        let ft = fileType
        let falcon = facts.isFalcon
        if category == .output || (hasTiedEmbeddings && category == .tokenEmbedding) {
            if let t = outputTensorType {
                type = t
            } else if falcon || rowLength % (type.blockSize ?? 1) != 0 {
                type = .q8_0
            } else if type != .q8_0 {
                type = .q6_K
            }
        } else if category == .tokenEmbedding {
            if let t = tokenEmbeddingType { type = t }
        } else if category.isAttentionVLike {
            if ft == .Q2_K {
                type = facts.gqa >= 4 ? .q4_K : .q3_K
            } else if ft == .Q3_K_M {
                type = attentionVIndex < 2 ? .q5_K : .q4_K
            } else if ft == .Q3_K_L {
                type = .q5_K
            } else if (ft == .Q4_K_M || ft == .Q5_K_M) && Self.useMoreBits(attentionVIndex, attentionVCount) {
                type = .q6_K
            } else if ft == .Q4_K_S && attentionVIndex < 4 {
                type = .q5_K
            }
            // 70B: eight heads share attn_v, so more bits cost little.
            if facts.is70B && (type == .q3_K || type == .q4_K) { type = .q5_K }
            if facts.expertCount == 8 { type = .q8_0 }
            attentionVIndex += 1
        } else if category == .attentionK {
            if facts.expertCount == 8 { type = .q8_0 }
        } else if category == .ffnDown {
            let (layer, layers) = try layerInfo(ffnDownIndex, facts.layerCount, name: name)
            switch ft {
            case .Q2_K:
                type = .q3_K
            case .Q3_K_M:
                type = layer < layers / 16 ? .q5_K : (!falcon || Self.useMoreBits(layer, layers)) ? .q4_K : .q3_K
            case .Q3_K_L:
                type = falcon ? .q4_K : .q5_K
            case .Q4_K_M:
                if falcon {
                    type = layer < layers / 16 ? .q6_K : Self.useMoreBits(layer, layers) ? .q5_K : .q4_K
                } else if Self.useMoreBits(layer, layers) {
                    type = .q6_K
                }
            case .Q5_K_M:
                if Self.useMoreBits(layer, layers) { type = .q6_K }
            case .Q4_K_S:
                if !falcon && layer < layers / 8 { type = .q5_K }
            default:
                break
            }
            ffnDownIndex += 1
        } else if category == .attentionOutput {
            if !falcon {
                if facts.expertCount == 8 {
                    if [.Q2_K, .Q3_K_S, .Q3_K_M, .Q4_K_S, .Q4_K_M].contains(ft) { type = .q5_K }
                } else if ft == .Q2_K {
                    type = .q3_K
                } else if ft == .Q3_K_M {
                    type = .q4_K
                } else if ft == .Q3_K_L {
                    type = .q5_K
                }
            } else if ft == .Q3_K_L {
                type = .q4_K
            }
        } else if category == .ffnGate {
            // Only IQ3_XS changes ffn_gate; the counter (and MoE layer check) still run.
            _ = try layerInfo(ffnGateIndex, facts.layerCount, name: name)
            ffnGateIndex += 1
        } else if category == .ffnUp {
            _ = try layerInfo(ffnUpIndex, facts.layerCount, name: name)
            ffnUpIndex += 1
        }
        return type
    }

    /// llama-quantize's output order (`weight_name_comparer`): tensors outside the blocks first,
    /// then block by block; by name (byte order) within each group.
    static func outputOrder(_ a: String, _ b: String) -> Bool {
        let la = blockNumber(a) ?? -1, lb = blockNumber(b) ?? -1
        if la != lb { return la < lb }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}
