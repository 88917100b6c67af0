import Formats
import Testing
import TensorCore
import TestSupport
import Verify

/// The kernels of the non-LLaMA blocks against their scalar references, and the family
/// configurations' refusals.
@Suite struct BlockKernelTests {
    @Test(arguments: [(1, 64), (5, 16), (3, 17), (9, 256)])
    func layerNormMatchesReference(shape: (rows: Int, dim: Int)) {
        let x = KernelTests.random(shape.rows * shape.dim, seed: 31, scale: 3).map { $0 + 0.5 }
        let w = KernelTests.random(shape.dim, seed: 32), b = KernelTests.random(shape.dim, seed: 33)
        for (weight, bias) in [(w, b), (w, []), ([], [])] {
            var y = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    LayerNorm.apply(xp.baseAddress!, weight: weight, bias: bias, into: yp.baseAddress!, rows: shape.rows,
                                    dim: shape.dim, epsilon: 1e-5, threads: 2)
                }
            }
            for r in 0 ..< shape.rows {
                let expected = LayerNorm.reference(Array(x[r * shape.dim ..< (r + 1) * shape.dim]),
                                                   weight: weight.isEmpty ? nil : weight, bias: bias.isEmpty ? nil : bias,
                                                   epsilon: 1e-5)
                #expect(maxAbsDifference(Array(y[r * shape.dim ..< (r + 1) * shape.dim]), expected) <= 2e-6)
            }
        }
    }

    @Test(arguments: [BlockDescription.Activation.geluExact, .geluTanh, .geluGGML, .relu, .squaredReLU])
    func activationMatchesReference(activation: BlockDescription.Activation) {
        var x = KernelTests.random(4096, seed: 41, scale: 8) + [-12, -10, 0, 10, 12, 1e-3, -1e-3]
        let expected = activation.reference(x)
        x.withUnsafeMutableBufferPointer { activation.apply($0.baseAddress!, count: $0.count) }
        for (got, want) in zip(x, expected) {
            // The float32 kernels differ from the Double formula by a few ulps; the table (float32
            // tanhf, rounded to float16) by at most one float16 step where the two round apart.
            let tolerance: Float = activation == .geluGGML ? max(1.2e-7, abs(want) / 1024) : 4e-7 * max(1, abs(want))
            #expect(abs(got - want) <= tolerance, "\(activation) at \(got)")
        }
    }

    /// Slopes as transformers' `build_mpt_alibi_tensor(n, 2, 8)` returns them (float32), for
    /// power-of-two and other head counts; Baichuan's recursive formula gives the same.
    @Test func alibiSlopesMatchTransformers() {
        let golden: [Int: [Float]] = [
            4: [0.25, 0.0625, 0.015625, 0.00390625],
            12: [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625,
                 0.7071067690849304, 0.3535533845424652, 0.1767766922712326, 0.0883883461356163],
            40: [0.8408964276313782, 0.7071067690849304, 0.5946035385131836, 0.5, 0.4204482138156891, 0.3535533845424652,
                 0.2973017692565918, 0.25, 0.21022410690784454, 0.1767766922712326, 0.1486508846282959, 0.125,
                 0.10511205345392227, 0.0883883461356163, 0.07432544231414795, 0.0625, 0.052556026726961136,
                 0.04419417306780815, 0.037162721157073975, 0.03125, 0.026278013363480568, 0.022097086533904076,
                 0.018581360578536987, 0.015625, 0.013139006681740284, 0.011048543266952038, 0.009290680289268494,
                 0.0078125, 0.006569503340870142, 0.005524271633476019, 0.004645340144634247, 0.00390625,
                 0.9170040488243103, 0.7711054086685181, 0.6484197974205017, 0.5452538728713989, 0.45850202441215515,
                 0.38555270433425903, 0.32420989871025085, 0.27262693643569946],
        ]
        for (heads, expected) in golden {
            #expect(ALiBi.slopes(heads: heads, maxBias: 8) == expected, "\(heads) heads")
            let reference = ALiBi.reference(heads: heads, maxBias: 8)
            #expect(maxAbsDifference(reference, expected) <= 1e-7, "\(heads) heads (reference)")
        }
    }

    /// ALiBi attention, batched (BLAS) and token-by-token, against the scalar reference.
    @Test(arguments: [(12, 0), (3, 5), (20, 4)])
    func alibiAttentionMatchesReference(shape: (queries: Int, start: Int)) {
        let heads = 6, kvHeads = 3, hd = 8, context = shape.start + shape.queries
        let q = KernelTests.random(shape.queries * heads * hd, seed: 51)
        let k = KernelTests.random(context * kvHeads * hd, seed: 52), v = KernelTests.random(context * kvHeads * hd, seed: 53)
        let slopes = ALiBi.slopes(heads: heads, maxBias: 8)
        let expected = Attention.reference(queries: q, keys: k, values: v, startPosition: shape.start, heads: heads,
                                           kvHeads: kvHeads, headDimension: hd, alibiSlopes: slopes)
        var out = [Float](repeating: 0, count: q.count)
        let rows = Attention.scratchRows(queryCount: shape.queries, heads: heads, threads: 2)
        var scores = [Float](repeating: 0, count: rows * context)
        q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    out.withUnsafeMutableBufferPointer { op in
                        scores.withUnsafeMutableBufferPointer { sp in
                            Attention.causal(queries: qp.baseAddress!, queryCount: shape.queries, startPosition: shape.start,
                                             keys: kp.baseAddress!, values: vp.baseAddress!, heads: heads, kvHeads: kvHeads,
                                             headDimension: hd, scores: sp.baseAddress!, scoreStride: context,
                                             output: op.baseAddress!, threads: 2, alibiSlopes: slopes)
                        }
                    }
                }
            }
        }
        #expect(maxAbsDifference(out, expected) <= 1e-5)
    }

    /// Partial rotary rotates the first `r` dims of each head (pairs i, i + r/2) and leaves the rest.
    @Test func partialRotaryMatchesReference() {
        let heads = 2, hd = 16, rotary = 8, rows = 3
        let inv = RoPE.inverseFrequencies(headDimension: rotary, theta: 10000, scaling: .none)
        var x = KernelTests.random(rows * heads * hd, seed: 61)
        let original = x
        var cos = [Float](repeating: 0, count: rows * rotary / 2), sin = cos
        cos.withUnsafeMutableBufferPointer { c in
            sin.withUnsafeMutableBufferPointer { s in
                RoPE.fillTables(inverseFrequencies: inv, positions: 4 ..< 4 + rows, cos: c.baseAddress!, sin: s.baseAddress!)
                x.withUnsafeMutableBufferPointer {
                    RoPE.apply($0.baseAddress!, rows: rows, rowStride: heads * hd, heads: heads, headDimension: hd,
                               cos: c.baseAddress!, sin: s.baseAddress!, rotaryDimensions: rotary)
                }
            }
        }
        for r in 0 ..< rows {
            for h in 0 ..< heads {
                let base = (r * heads + h) * hd
                let head = Array(original[base ..< base + hd])
                let expected = RoPE.reference(Array(head.prefix(rotary)), position: 4 + r, inverseFrequencies: inv) + head.dropFirst(rotary)
                #expect(maxAbsDifference(Array(x[base ..< base + hd]), expected) <= 1e-6)
            }
        }
    }

    static func config(_ family: String) throws -> JSONObject {
        try #require(try JSONParser.parse(try Fixtures.data("families/\(family)/config.json")).objectValue)
    }

    /// Features a family's forward pass lacks are refused with the family and the key named.
    @Test(arguments: [
        ("gpt2", ModelFamily.gpt2, "scale_attn_by_inverse_layer_idx", JSONValue.bool(true), "GPT-2: scale_attn_by_inverse_layer_idx"),
        ("opt", .opt, "do_layer_norm_before", .bool(false), "OPT: do_layer_norm_before false"),
        ("opt", .opt, "word_embed_proj_dim", .int(32), "OPT: word_embed_proj_dim 32"),
        ("phi-1_5", .phi, "qk_layernorm", .bool(true), "phi: qk_layernorm"),
        ("falcon-7b", .falcon, "alibi", .bool(true), "Falcon: alibi"),
        ("persimmon", .persimmon, "hidden_act", .string("swish"), "Persimmon: hidden_act swish"),
        ("qwen-7b", .qwen, "rotary_pct", .double(0.5), "Qwen-7B: rotary_pct 0.5"),
    ])
    func unsupportedFeaturesAreRefused(fixture: String, family: ModelFamily, key: String, value: JSONValue, message: String) throws {
        var object = try Self.config(fixture)
        _ = try LlamaConfig(hfConfig: object, family: family)
        object[key] = value
        do {
            _ = try LlamaConfig(hfConfig: object, family: family)
            Issue.record("\(fixture): \(key) accepted")
        } catch let error as VerifyError {
            #expect(error.kind == .unsupported)
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    /// The blocks the configurations describe, one per family variant.
    @Test func familiesDescribeTheirBlocks() throws {
        let gpt2 = try LlamaConfig(hfConfig: Self.config("gpt2"), family: .gpt2)
        #expect(gpt2.block.positions == .learned(offset: 0) && gpt2.block.mlp == .plain(.geluTanh) && gpt2.tiedEmbeddings)
        #expect(try LlamaConfig(hfConfig: Self.config("opt"), family: .opt).block.positions == .learned(offset: 2))
        let phi = try LlamaConfig(hfConfig: Self.config("phi-1_5"), family: .phi)
        #expect(phi.block.positions == .rotary(dimensions: 8) && phi.block.residual == .parallel(separateNorms: false) && phi.block.headBias)
        let falcon7 = try LlamaConfig(hfConfig: Self.config("falcon-7b"), family: .falcon)
        #expect(falcon7.kvHeadCount == 1 && falcon7.block.residual == .parallel(separateNorms: false))
        let falcon40 = try LlamaConfig(hfConfig: Self.config("falcon-40b"), family: .falcon)
        #expect(falcon40.kvHeadCount == 2 && falcon40.block.residual == .parallel(separateNorms: true))
        let mpt = try LlamaConfig(hfConfig: Self.config("mpt"), family: .mpt)
        #expect(mpt.block.positions == .alibi(maxBias: 8) && mpt.block.norm == .layerNorm(bias: false))
        #expect(try LlamaConfig(hfConfig: Self.config("baichuan2-7b"), family: .baichuan).block.positions == .rotary(dimensions: 16))
        #expect(try LlamaConfig(hfConfig: Self.config("baichuan2-13b"), family: .baichuan).block.positions == .alibi(maxBias: 8))
        let qwen = try LlamaConfig(hfConfig: Self.config("qwen-7b"), family: .qwen)
        #expect(qwen.intermediateSize == 128 && qwen.block.qkvBias && qwen.block.mlp == .swiGLU)
        let persimmon = try LlamaConfig(hfConfig: Self.config("persimmon"), family: .persimmon)
        #expect(persimmon.block.qkNorm && persimmon.block.mlp == .plain(.squaredReLU) && persimmon.block.positions == .rotary(dimensions: 8))
        #expect(!persimmon.runsLlamaBlock && !gpt2.runsLlamaBlock)
        // LLaMA's block is what it was.
        let llama = try LlamaConfig(hfConfig: Self.config("qwen2"), family: .llama)
        #expect(llama.runsLlamaBlock && llama.family == .llama && llama.block == .llama(headDimension: 16, qkvBias: true))
    }
}
