import Formats

/// How to get one float32 weight of the block from a stored tensor: decode it (un-permuting rows
/// if asked), transpose a Conv1D `[in, out]` weight to `[out, in]`, then keep a list of row ranges
/// (a slice of a fused q|k|v, or the rows of one kind gathered from a per-group layout).
struct TensorRecipe: Sendable, Hashable {
    /// The tensor's stored name (HF, or GGUF for a GGUF input).
    var name: String
    var transposed = false
    /// Rows to keep, in order (a 1-D tensor has one element per row); nil keeps all.
    var rows: [Range<Int>]? = nil
    var permutation: RowPermutation? = nil

    /// Whether the stored rows are the weight as is (the streaming path decodes straight into the layer buffer).
    var isPlain: Bool { !transposed && rows == nil }
}

/// Where a family keeps each weight of its block, in an HF checkpoint or in its GGUF: the data
/// half of "a family is a description" (the other half is ``BlockDescription``). Fused
/// projections are split here, Conv1D weights transposed, GGUF q/k un-permuted where llama.cpp
/// permuted them, so the forward pass always sees `[out, in]` matrices with HF rotary order.
struct FamilyTensorLayout: Sendable {
    var embedding: String
    var positions: String? = nil
    var finalNorm: String
    var finalNormBias: String? = nil
    /// nil when tied to ``embedding``.
    var head: String?
    var headBias: String? = nil
    /// Baichuan 2's NormHead: each head row divided by its L2 norm at load (HF checkpoints only:
    /// llama.cpp's converter copies the head as stored and llama.cpp does not normalize it).
    var normalizeHead = false
    /// The recipe of each layer field, keyed by the field.
    var layer: @Sendable (Int) -> [WritableKeyPath<LlamaLayerWeights, [Float]>: TensorRecipe]

    /// How a fused q/k/v tensor orders its rows.
    enum FusedQKV {
        /// All query heads, then all key heads, then all value heads.
        case contiguous
        /// Per KV head: its query heads, one key head, one value head (Falcon; with one query head
        /// per group, Persimmon's and old Falcon's per-head `[q, k, v]`).
        case grouped
    }

    /// The q, k and v recipes of a fused tensor `name` (weight or bias: the rows are the same).
    static func split(_ name: String, _ c: LlamaConfig, _ layout: FusedQKV, transposed: Bool = false)
        -> [WritableKeyPath<LlamaLayerWeights, [Float]>: TensorRecipe]
    {
        let hd = c.headDimension, q = c.queryDimension, kv = c.kvDimension
        let isBias = name.hasSuffix(".bias")
        var ranges: [[Range<Int>]]
        switch layout {
        case .contiguous:
            ranges = [[0 ..< q], [q ..< q + kv], [q + kv ..< q + 2 * kv]]
        case .grouped:
            let group = c.headCount / c.kvHeadCount, width = (group + 2) * hd
            ranges = [[], [], []]
            for g in 0 ..< c.kvHeadCount {
                let base = g * width
                ranges[0].append(base ..< base + group * hd)
                ranges[1].append(base + group * hd ..< base + (group + 1) * hd)
                ranges[2].append(base + (group + 1) * hd ..< base + width)
            }
        }
        let fields: [WritableKeyPath<LlamaLayerWeights, [Float]>] =
            isBias ? [\.queryBias, \.keyBias, \.valueBias] : [\.query, \.key, \.value]
        var out: [WritableKeyPath<LlamaLayerWeights, [Float]>: TensorRecipe] = [:]
        for (field, rows) in zip(fields, ranges) {
            out[field] = TensorRecipe(name: name, transposed: transposed && !isBias, rows: rows)
        }
        return out
    }

    /// Recipes from `(field, name)` pairs, skipping fields the block does not have.
    static func plain(_ pairs: [(WritableKeyPath<LlamaLayerWeights, [Float]>, String)], transposed: Bool = false)
        -> [WritableKeyPath<LlamaLayerWeights, [Float]>: TensorRecipe]
    {
        var out: [WritableKeyPath<LlamaLayerWeights, [Float]>: TensorRecipe] = [:]
        for (field, name) in pairs {
            out[field] = TensorRecipe(name: name, transposed: transposed && name.hasSuffix(".weight"))
        }
        return out
    }

    /// The layout of `config.family` in an HF checkpoint (`gguf` false) or its GGUF; nil for
    /// LLaMA's layout, which the tensor table already presents under the forward pass's names.
    /// - Parameters:
    ///   - hfArchitecture: config.json's `architectures[0]` (Baichuan 2's NormHead).
    ///   - has: whether the input has a tensor of that stored name (optional tensors, older layouts).
    static func of(_ c: LlamaConfig, gguf: Bool, hfArchitecture: String?, has: (String) -> Bool) -> FamilyTensorLayout? {
        let b = c.block
        let head: String? = c.tiedEmbeddings ? nil : (gguf ? "output.weight" : "lm_head.weight")
        if gguf {
            let hasFusedPhi = has("blk.0.attn_qkv.weight")
            var layout = FamilyTensorLayout(
                embedding: "token_embd.weight", positions: b.positions == .learned(offset: 0) ? "position_embd.weight" : nil,
                finalNorm: "output_norm.weight", finalNormBias: b.normBias ? "output_norm.bias" : nil,
                head: head, headBias: b.headBias ? "output.bias" : nil, layer: { _ in [:] })
            let twoNorms = b.residual == .parallel(separateNorms: true)
            switch c.family {
            case .llama, .opt, .persimmon:
                return nil
            case .gpt2, .mpt, .falcon, .qwen, .phi, .baichuan:
                layout.layer = { l in
                    let p = "blk.\(l)."
                    var r = plain([
                        (\.attentionNorm, p + (twoNorms ? "attn_norm_2.weight" : "attn_norm.weight")),
                        (\.output, p + "attn_output.weight"), (\.up, p + "ffn_up.weight"), (\.down, p + "ffn_down.weight"),
                    ])
                    if b.normBias { r[\.attentionNormBias] = TensorRecipe(name: p + (twoNorms ? "attn_norm_2.bias" : "attn_norm.bias")) }
                    if b.hasSecondNorm {
                        let n = twoNorms ? "attn_norm" : "ffn_norm"
                        r[\.feedForwardNorm] = TensorRecipe(name: p + n + ".weight")
                        if b.normBias { r[\.feedForwardNormBias] = TensorRecipe(name: p + n + ".bias") }
                    }
                    if b.gated { r[\.gate] = TensorRecipe(name: p + "ffn_gate.weight") }
                    if b.outputBias { r[\.outputBias] = TensorRecipe(name: p + "attn_output.bias") }
                    if b.mlpBias {
                        r[\.upBias] = TensorRecipe(name: p + "ffn_up.bias")
                        r[\.downBias] = TensorRecipe(name: p + "ffn_down.bias")
                    }
                    if c.family == .baichuan || (c.family == .phi && !hasFusedPhi) {
                        // Baichuan's W_pack was split into attn_q/k/v and q/k permuted for llama.cpp's
                        // interleaved rotary: undo that (NEOX pairing here). phi's are stored as is.
                        let permute = c.family == .baichuan
                        r[\.query] = TensorRecipe(name: p + "attn_q.weight", permutation: permute ? .toHF(heads: c.headCount) : nil)
                        r[\.key] = TensorRecipe(name: p + "attn_k.weight", permutation: permute ? .toHF(heads: c.kvHeadCount) : nil)
                        r[\.value] = TensorRecipe(name: p + "attn_v.weight")
                        if b.qkvBias {
                            r[\.queryBias] = TensorRecipe(name: p + "attn_q.bias")
                            r[\.keyBias] = TensorRecipe(name: p + "attn_k.bias")
                            r[\.valueBias] = TensorRecipe(name: p + "attn_v.bias")
                        }
                    } else {
                        r.merge(split(p + "attn_qkv.weight", c, .contiguous)) { $1 }
                        if b.qkvBias { r.merge(split(p + "attn_qkv.bias", c, .contiguous)) { $1 } }
                    }
                    return r
                }
            }
            return layout
        }

        switch c.family {
        case .llama:
            return nil
        case .gpt2:
            return FamilyTensorLayout(
                embedding: "transformer.wte.weight", positions: "transformer.wpe.weight",
                finalNorm: "transformer.ln_f.weight", finalNormBias: "transformer.ln_f.bias", head: head,
                layer: { l in
                    let p = "transformer.h.\(l)."
                    // Conv1D stores [in, out]: every weight is transposed.
                    var r = plain([
                        (\.attentionNorm, p + "ln_1.weight"), (\.attentionNormBias, p + "ln_1.bias"),
                        (\.output, p + "attn.c_proj.weight"), (\.outputBias, p + "attn.c_proj.bias"),
                        (\.feedForwardNorm, p + "ln_2.weight"), (\.feedForwardNormBias, p + "ln_2.bias"),
                        (\.up, p + "mlp.c_fc.weight"), (\.upBias, p + "mlp.c_fc.bias"),
                        (\.down, p + "mlp.c_proj.weight"), (\.downBias, p + "mlp.c_proj.bias"),
                    ], transposed: true)
                    r.merge(split(p + "attn.c_attn.weight", c, .contiguous, transposed: true)) { $1 }
                    r.merge(split(p + "attn.c_attn.bias", c, .contiguous)) { $1 }
                    return r
                })
        case .opt:
            return FamilyTensorLayout(
                embedding: "model.decoder.embed_tokens.weight", positions: "model.decoder.embed_positions.weight",
                finalNorm: "model.decoder.final_layer_norm.weight", finalNormBias: "model.decoder.final_layer_norm.bias",
                head: head,
                layer: { l in
                    let p = "model.decoder.layers.\(l)."
                    var pairs: [(WritableKeyPath<LlamaLayerWeights, [Float]>, String)] = [
                        (\.attentionNorm, p + "self_attn_layer_norm.weight"), (\.attentionNormBias, p + "self_attn_layer_norm.bias"),
                        (\.query, p + "self_attn.q_proj.weight"), (\.key, p + "self_attn.k_proj.weight"),
                        (\.value, p + "self_attn.v_proj.weight"), (\.output, p + "self_attn.out_proj.weight"),
                        (\.feedForwardNorm, p + "final_layer_norm.weight"), (\.feedForwardNormBias, p + "final_layer_norm.bias"),
                        (\.up, p + "fc1.weight"), (\.down, p + "fc2.weight"),
                    ]
                    if b.qkvBias {
                        pairs += [(\.queryBias, p + "self_attn.q_proj.bias"), (\.keyBias, p + "self_attn.k_proj.bias"),
                                  (\.valueBias, p + "self_attn.v_proj.bias")]
                    }
                    if b.outputBias { pairs.append((\.outputBias, p + "self_attn.out_proj.bias")) }
                    if b.mlpBias { pairs += [(\.upBias, p + "fc1.bias"), (\.downBias, p + "fc2.bias")] }
                    return plain(pairs)
                })
        case .phi:
            return FamilyTensorLayout(
                embedding: "model.embed_tokens.weight", finalNorm: "model.final_layernorm.weight",
                finalNormBias: "model.final_layernorm.bias", head: head, headBias: b.headBias ? "lm_head.bias" : nil,
                layer: { l in
                    let p = "model.layers.\(l)."
                    return plain([
                        (\.attentionNorm, p + "input_layernorm.weight"), (\.attentionNormBias, p + "input_layernorm.bias"),
                        (\.query, p + "self_attn.q_proj.weight"), (\.queryBias, p + "self_attn.q_proj.bias"),
                        (\.key, p + "self_attn.k_proj.weight"), (\.keyBias, p + "self_attn.k_proj.bias"),
                        (\.value, p + "self_attn.v_proj.weight"), (\.valueBias, p + "self_attn.v_proj.bias"),
                        (\.output, p + "self_attn.dense.weight"), (\.outputBias, p + "self_attn.dense.bias"),
                        (\.up, p + "mlp.fc1.weight"), (\.upBias, p + "mlp.fc1.bias"),
                        (\.down, p + "mlp.fc2.weight"), (\.downBias, p + "mlp.fc2.bias"),
                    ])
                })
        case .falcon:
            let bias = b.qkvBias
            return FamilyTensorLayout(
                embedding: "transformer.word_embeddings.weight", finalNorm: "transformer.ln_f.weight",
                finalNormBias: "transformer.ln_f.bias", head: head,
                layer: { l in
                    let p = "transformer.h.\(l)."
                    var pairs: [(WritableKeyPath<LlamaLayerWeights, [Float]>, String)] = [
                        (\.output, p + "self_attention.dense.weight"),
                        (\.up, p + "mlp.dense_h_to_4h.weight"), (\.down, p + "mlp.dense_4h_to_h.weight"),
                    ]
                    switch b.residual {
                    case .parallel(separateNorms: true):
                        pairs += [(\.attentionNorm, p + "ln_attn.weight"), (\.attentionNormBias, p + "ln_attn.bias"),
                                  (\.feedForwardNorm, p + "ln_mlp.weight"), (\.feedForwardNormBias, p + "ln_mlp.bias")]
                    case .parallel(separateNorms: false):
                        pairs += [(\.attentionNorm, p + "input_layernorm.weight"), (\.attentionNormBias, p + "input_layernorm.bias")]
                    case .sequential:
                        pairs += [(\.attentionNorm, p + "input_layernorm.weight"), (\.attentionNormBias, p + "input_layernorm.bias"),
                                  (\.feedForwardNorm, p + "post_attention_layernorm.weight"),
                                  (\.feedForwardNormBias, p + "post_attention_layernorm.bias")]
                    }
                    if bias {
                        pairs += [(\.outputBias, p + "self_attention.dense.bias"), (\.upBias, p + "mlp.dense_h_to_4h.bias"),
                                  (\.downBias, p + "mlp.dense_4h_to_h.bias")]
                    }
                    var r = plain(pairs)
                    r.merge(split(p + "self_attention.query_key_value.weight", c, .grouped)) { $1 }
                    if bias { r.merge(split(p + "self_attention.query_key_value.bias", c, .grouped)) { $1 } }
                    return r
                })
        case .mpt:
            return FamilyTensorLayout(
                embedding: "transformer.wte.weight", finalNorm: "transformer.norm_f.weight",
                finalNormBias: b.normBias ? "transformer.norm_f.bias" : nil, head: head,
                layer: { l in
                    let p = "transformer.blocks.\(l)."
                    var pairs: [(WritableKeyPath<LlamaLayerWeights, [Float]>, String)] = [
                        (\.attentionNorm, p + "norm_1.weight"), (\.output, p + "attn.out_proj.weight"),
                        (\.feedForwardNorm, p + "norm_2.weight"), (\.up, p + "ffn.up_proj.weight"),
                        (\.down, p + "ffn.down_proj.weight"),
                    ]
                    if b.normBias { pairs += [(\.attentionNormBias, p + "norm_1.bias"), (\.feedForwardNormBias, p + "norm_2.bias")] }
                    if b.outputBias { pairs.append((\.outputBias, p + "attn.out_proj.bias")) }
                    if b.mlpBias { pairs += [(\.upBias, p + "ffn.up_proj.bias"), (\.downBias, p + "ffn.down_proj.bias")] }
                    var r = plain(pairs)
                    r.merge(split(p + "attn.Wqkv.weight", c, .contiguous)) { $1 }
                    if b.qkvBias { r.merge(split(p + "attn.Wqkv.bias", c, .contiguous)) { $1 } }
                    return r
                })
        case .baichuan:
            return FamilyTensorLayout(
                embedding: "model.embed_tokens.weight", finalNorm: "model.norm.weight", head: head,
                // Baichuan 2 normalizes its head rows (NormHead); Baichuan 1 does not. Both 13B
                // generations are `BaichuanForCausalLM`, so Baichuan 1 is told by its 64000-token vocabulary
                // (Baichuan 2's has 125696) and 7B v1 by its class name `BaiChuanForCausalLM`.
                normalizeHead: hfArchitecture != "BaiChuanForCausalLM" && c.vocabularySize != 64000,
                layer: { l in
                    let p = "model.layers.\(l)."
                    var r = plain([
                        (\.attentionNorm, p + "input_layernorm.weight"), (\.output, p + "self_attn.o_proj.weight"),
                        (\.feedForwardNorm, p + "post_attention_layernorm.weight"), (\.gate, p + "mlp.gate_proj.weight"),
                        (\.up, p + "mlp.up_proj.weight"), (\.down, p + "mlp.down_proj.weight"),
                    ])
                    r.merge(split(p + "self_attn.W_pack.weight", c, .contiguous)) { $1 }
                    return r
                })
        case .qwen:
            return FamilyTensorLayout(
                embedding: "transformer.wte.weight", finalNorm: "transformer.ln_f.weight", head: head,
                layer: { l in
                    let p = "transformer.h.\(l)."
                    var r = plain([
                        (\.attentionNorm, p + "ln_1.weight"), (\.output, p + "attn.c_proj.weight"),
                        (\.feedForwardNorm, p + "ln_2.weight"),
                        // c_proj(w1(x) · silu(w2(x))): w2 is the gated branch.
                        (\.gate, p + "mlp.w2.weight"), (\.up, p + "mlp.w1.weight"), (\.down, p + "mlp.c_proj.weight"),
                    ])
                    r.merge(split(p + "attn.c_attn.weight", c, .contiguous)) { $1 }
                    r.merge(split(p + "attn.c_attn.bias", c, .contiguous)) { $1 }
                    return r
                })
        case .persimmon:
            return FamilyTensorLayout(
                embedding: "model.embed_tokens.weight", finalNorm: "model.final_layernorm.weight",
                finalNormBias: "model.final_layernorm.bias", head: head,
                layer: { l in
                    let p = "model.layers.\(l)."
                    var r = plain([
                        (\.attentionNorm, p + "input_layernorm.weight"), (\.attentionNormBias, p + "input_layernorm.bias"),
                        (\.queryNorm, p + "self_attn.q_layernorm.weight"), (\.queryNormBias, p + "self_attn.q_layernorm.bias"),
                        (\.keyNorm, p + "self_attn.k_layernorm.weight"), (\.keyNormBias, p + "self_attn.k_layernorm.bias"),
                        (\.output, p + "self_attn.dense.weight"), (\.outputBias, p + "self_attn.dense.bias"),
                        (\.feedForwardNorm, p + "post_attention_layernorm.weight"),
                        (\.feedForwardNormBias, p + "post_attention_layernorm.bias"),
                        (\.up, p + "mlp.dense_h_to_4h.weight"), (\.upBias, p + "mlp.dense_h_to_4h.bias"),
                        (\.down, p + "mlp.dense_4h_to_h.weight"), (\.downBias, p + "mlp.dense_4h_to_h.bias"),
                    ])
                    // query_key_value viewed as [heads, 3, hd]: per head q, k, v.
                    r.merge(split(p + "self_attn.query_key_value.weight", c, .grouped)) { $1 }
                    r.merge(split(p + "self_attn.query_key_value.bias", c, .grouped)) { $1 }
                    return r
                })
        }
    }

    /// Decodes `recipe`'s tensor (with its permutation) and transposes it if asked: the whole
    /// float32 tensor in `[out, in]` layout; ``TensorRecipe/rows`` are cut by the caller.
    static func decode(_ recipe: TensorRecipe, tensor t: ModelTensor, source: any TensorSource, threads: Int) throws -> [Float] {
        let values = try t.decodeAll(from: source, threads: threads)
        // Conv1D's 1-D parameters (norms, biases) are stored as they are.
        guard recipe.transposed, t.shape.count == 2 else { return values }
        return transpose(values, rows: t.shape[0], columns: t.shape[1])
    }

    static func transpose(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        for r in 0 ..< rows {
            for c in 0 ..< columns { out[c * rows + r] = values[r * columns + c] }
        }
        return out
    }
}
