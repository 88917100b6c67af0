@testable import Finetune
import Testing
import TestSupport
import Verify

/// Backward kernels of the non-LLaMA blocks against finite differences: each Double reference
/// gradient against central differences of its Double forward, and each float32 kernel against
/// the Double gradient (as ``GradientCheckTests`` does for LLaMA's layers).
@Suite struct BlockBackwardTests {
    typealias G = GradientCheckTests

    /// LayerNorm with weight and bias, weight only, and neither (the bias never enters `∂x`).
    @Test(arguments: [(true, true), (true, false), (false, false)])
    func layerNorm(affine: (weight: Bool, bias: Bool)) {
        let dim = 21, rows = 3, eps = 1e-5
        let x = G.random(rows * dim, seed: 21, scale: 2).map { $0 + 0.7 }
        let w = affine.weight ? G.random(dim, seed: 22).map { 1 + 0.3 * $0 } : nil
        let b = affine.bias ? G.random(dim, seed: 23) : nil
        let dy = G.random(rows * dim, seed: 24)
        for r in 0 ..< rows {
            let xr = Array(x[r * dim ..< (r + 1) * dim]), gr = Array(dy[r * dim ..< (r + 1) * dim])
            let analytic = LayerNormBackward.reference(xr, weight: w, dy: gr, epsilon: eps)
            let numeric = G.numericGradient(xr) { G.dot(LayerNormBackward.referenceForward($0, weight: w, bias: b, epsilon: eps), gr) }
            #expect(G.maxAbsDiff(analytic, numeric) <= 1e-8 * G.maxAbsValue(analytic))
            // The Double forward is Verify's LayerNorm.
            let verify = LayerNorm.reference(G.floats(xr), weight: w.map(G.floats), bias: b.map(G.floats), epsilon: Float(eps))
            G.expectClose(verify, LayerNormBackward.referenceForward(xr, weight: w, bias: b, epsilon: eps), 1e-6, "LayerNorm forward")
        }
        let (xf, gf) = (G.floats(x), G.floats(dy))
        let wf = w.map(G.floats) ?? []
        for accumulate in [false, true] {
            var dx = [Float](repeating: accumulate ? 0.5 : 0, count: rows * dim)
            dx.withUnsafeMutableBufferPointer { out in
                LayerNormBackward.apply(x: xf, weight: wf, dy: gf, into: out.baseAddress!, rows: rows, dim: dim,
                                        epsilon: Float(eps), accumulate: accumulate, threads: 2)
            }
            var reference: [Double] = []
            for r in 0 ..< rows {
                let xr = G.doubles(Array(xf[r * dim ..< (r + 1) * dim])), gr = G.doubles(Array(gf[r * dim ..< (r + 1) * dim]))
                reference += LayerNormBackward.reference(xr, weight: w.map { _ in G.doubles(wf) }, dy: gr, epsilon: eps)
                    .map { $0 + (accumulate ? 0.5 : 0) }
            }
            G.expectClose(dx, reference, 1e-5, "LayerNorm backward")
        }
    }

    @Test(arguments: [BlockDescription.Activation.geluExact, .geluTanh, .relu, .squaredReLU])
    func activation(_ f: BlockDescription.Activation) {
        // Away from 0 for the ReLUs (their kink), where a central difference straddles it.
        let x = G.random(41, seed: 25, scale: 6).map { abs($0) < 1e-3 ? $0 + 0.01 : $0 }
        let dy = G.random(41, seed: 26)
        let analytic = x.indices.map { f.referenceDerivative(x[$0]) * dy[$0] }
        let numeric = x.indices.map { i in
            (f.referenceForward(x[i] + 1e-6) - f.referenceForward(x[i] - 1e-6)) / 2e-6 * dy[i]
        }
        #expect(G.maxAbsDiff(analytic, numeric) <= 1e-7 * max(1, G.maxAbsValue(analytic)))
        // The Double forward is Verify's activation.
        G.expectClose(f.reference(G.floats(x)), x.map(f.referenceForward), 1e-6, "\(f) forward")
        let (xf, gf) = (G.floats(x), G.floats(dy))
        let reference = x.indices.map { f.referenceDerivative(Double(xf[$0])) * Double(gf[$0]) }
        for accumulate in [false, true] {
            var dx = [Float](repeating: accumulate ? 0.25 : 0, count: x.count)
            dx.withUnsafeMutableBufferPointer { f.backward(x: xf, dy: gf, into: $0.baseAddress!, count: x.count, accumulate: accumulate) }
            G.expectClose(dx, reference.map { $0 + (accumulate ? 0.25 : 0) }, 1e-5, "\(f) backward")
        }
    }

    /// Partial rotary: the first `rotary` values of each head turn back, the rest pass through.
    @Test func partialRotary() {
        let hd = 8, rotary = 4, heads = 2, rows = 4
        let inv = RoPE.inverseFrequencies(headDimension: rotary, theta: 10000, scaling: .none)
        let dy = G.random(rows * heads * hd, seed: 27)
        var cos = [Float](repeating: 0, count: rows * rotary / 2), sin = cos
        cos.withUnsafeMutableBufferPointer { c in
            sin.withUnsafeMutableBufferPointer { s in
                RoPE.fillTables(inverseFrequencies: inv, positions: 0 ..< rows, cos: c.baseAddress!, sin: s.baseAddress!)
            }
        }
        var d = G.floats(dy)
        d.withUnsafeMutableBufferPointer { p in
            RoPEBackward.apply(p.baseAddress!, rows: rows, rowStride: heads * hd, heads: heads, headDimension: hd, cos: cos,
                               sin: sin, rotaryDimensions: rotary)
        }
        // The gradient is the transpose of the forward map: ⟨forward(x), dy⟩ = ⟨x, backward(dy)⟩.
        var x = G.floats(G.random(rows * heads * hd, seed: 28))
        let x0 = x
        x.withUnsafeMutableBufferPointer { p in
            RoPE.apply(p.baseAddress!, rows: rows, rowStride: heads * hd, heads: heads, headDimension: hd, cos: cos, sin: sin,
                       rotaryDimensions: rotary)
        }
        let lhs = G.dot(G.doubles(x), G.doubles(G.floats(dy))), rhs = G.dot(G.doubles(x0), G.doubles(d))
        #expect(abs(lhs - rhs) <= 1e-5 * max(1, abs(lhs)))
        for r in 0 ..< rows {
            for h in 0 ..< heads {
                let o = (r * heads + h) * hd
                // Pass-through dims keep their gradient exactly.
                #expect(Array(d[o + rotary ..< o + hd]) == G.floats(Array(dy[o + rotary ..< o + hd])))
                let angles = inv.map { Double(Float(r) * $0) }
                G.expectClose(Array(d[o ..< o + rotary]), RoPEBackward.reference(G.doubles(G.floats(Array(dy[o ..< o + rotary]))),
                                                                                   angles: angles), 1e-6, "partial rotary")
            }
        }
    }

    /// ALiBi adds `slope_h · (j − i)` to the scores; forward and backward take the same bias.
    @Test(arguments: [(7, 4, 4), (AttentionBackward.blockRows + 9, 3, 3), (6, 4, 1)])
    func alibiAttention(shape: (length: Int, heads: Int, kvHeads: Int)) {
        let (n, heads, kvHeads, hd) = (shape.length, shape.heads, shape.kvHeads, 4)
        let slopes = ALiBi.slopes(heads: heads, maxBias: 8)
        let alibi = G.doubles(slopes)
        let q = G.random(n * heads * hd, seed: 29, scale: 1.5), k = G.random(n * kvHeads * hd, seed: 30, scale: 1.5)
        let v = G.random(n * kvHeads * hd, seed: 31), dO = G.random(n * heads * hd, seed: 32)
        let analytic = AttentionBackward.reference(q: q, k: k, v: v, dO: dO, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                                   alibi: alibi)
        if n <= 16 {
            func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
                G.dot(AttentionBackward.referenceForward(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                                         alibi: alibi), dO)
            }
            #expect(G.maxAbsDiff(analytic.dQ, G.numericGradient(q) { loss($0, k, v) }) <= 1e-8 * G.maxAbsValue(analytic.dQ))
            #expect(G.maxAbsDiff(analytic.dK, G.numericGradient(k) { loss(q, $0, v) }) <= 1e-8 * G.maxAbsValue(analytic.dK))
            #expect(G.maxAbsDiff(analytic.dV, G.numericGradient(v) { loss(q, k, $0) }) <= 1e-8 * G.maxAbsValue(analytic.dV))
        }
        let (qf, kf, vf, df) = (G.floats(q), G.floats(k), G.floats(v), G.floats(dO))
        var out = [Float](repeating: 0, count: q.count)
        var scratch = [Float](repeating: 0, count: AttentionBackward.scratchCount(length: n, heads: heads, headDimension: hd))
        var dQ = out, dK = [Float](repeating: 0, count: k.count), dV = dK
        slopes.withUnsafeBufferPointer { a in
            scratch.withUnsafeMutableBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    AttentionBackward.forward(q: qf, k: kf, v: vf, length: n, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                              alibi: a.baseAddress, output: o.baseAddress!, scratch: s.baseAddress!, threads: 2)
                }
                dQ.withUnsafeMutableBufferPointer { gq in
                    dK.withUnsafeMutableBufferPointer { gk in
                        dV.withUnsafeMutableBufferPointer { gv in
                            AttentionBackward.backward(q: qf, k: kf, v: vf, dO: df, length: n, heads: heads, kvHeads: kvHeads,
                                                       headDimension: hd, alibi: a.baseAddress, dQ: gq.baseAddress!,
                                                       dK: gk.baseAddress!, dV: gv.baseAddress!, scratch: s.baseAddress!, threads: 2)
                        }
                    }
                }
            }
        }
        let (qd, kd, vd, dd) = (G.doubles(qf), G.doubles(kf), G.doubles(vf), G.doubles(df))
        G.expectClose(out, AttentionBackward.referenceForward(q: qd, k: kd, v: vd, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                                              alibi: alibi), 1e-6, "ALiBi attention forward")
        let r = AttentionBackward.reference(q: qd, k: kd, v: vd, dO: dd, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                            alibi: alibi)
        G.expectClose(dQ, r.dQ, 1e-5, "dQ")
        G.expectClose(dK, r.dK, 1e-5, "dK")
        G.expectClose(dV, r.dV, 1e-5, "dV")
    }
}
