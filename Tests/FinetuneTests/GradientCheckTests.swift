@testable import Finetune
import Foundation
import Testing
import TestSupport
import Verify

/// Gradients against finite differences.
///
/// Each layer type has a scalar Double reference (forward and backward) beside its float32
/// kernel. The Double backward is checked against central differences of the Double forward
/// (tight: ~1e-8), and the float32 kernel against the Double backward (float32 tolerance).
/// The whole model's float32 gradients are checked against central differences of a Double
/// model assembled from the reference forwards.
@Suite struct GradientCheckTests {
    static func random(_ count: Int, seed: UInt64, scale: Double = 1) -> [Double] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in Double(rng.nextFloat()) * scale }
    }

    /// Central difference of `f` along every coordinate of `x` (h relative to 1).
    static func numericGradient(_ x: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
        x.indices.map { i in
            var plus = x, minus = x
            plus[i] += h
            minus[i] -= h
            return (f(plus) - f(minus)) / (2 * h)
        }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    static func maxAbsDiff(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } }

    static func maxAbsValue(_ a: [Double]) -> Double { a.reduce(0) { max($0, abs($1)) } }

    static func floats(_ a: [Double]) -> [Float] { a.map { Float($0) } }

    static func doubles(_ a: [Float]) -> [Double] { a.map { Double($0) } }

    /// Relative agreement of a float32 result with a Double reference.
    static func expectClose(_ fast: [Float], _ reference: [Double], _ tolerance: Double, _ what: String) {
        let d = maxAbsDiff(doubles(fast), reference), scale = maxAbsValue(reference)
        #expect(d <= tolerance * scale, "\(what): max |Δ| \(d) vs max |ref| \(scale)")
    }

    // MARK: - Layers

    @Test func rmsNorm() {
        let dim = 19, rows = 3, eps = 1e-5
        let x = Self.random(rows * dim, seed: 1, scale: 2), w = Self.random(dim, seed: 2).map { 1 + 0.3 * $0 }
        let dy = Self.random(rows * dim, seed: 3)
        for r in 0 ..< rows {
            let xr = Array(x[r * dim ..< (r + 1) * dim]), gr = Array(dy[r * dim ..< (r + 1) * dim])
            let analytic = RMSNormBackward.reference(xr, weight: w, dy: gr, epsilon: eps)
            let numeric = Self.numericGradient(xr) { Self.dot(RMSNormBackward.referenceForward($0, weight: w, epsilon: eps), gr) }
            #expect(Self.maxAbsDiff(analytic, numeric) <= 1e-8 * Self.maxAbsValue(analytic))
        }
        let (xf, wf, gf) = (Self.floats(x), Self.floats(w), Self.floats(dy))
        for accumulate in [false, true] {
            var dx = [Float](repeating: accumulate ? 0.5 : 0, count: rows * dim)
            dx.withUnsafeMutableBufferPointer { out in
                RMSNormBackward.apply(x: xf, weight: wf, dy: gf, into: out.baseAddress!, rows: rows, dim: dim,
                                      epsilon: Float(eps), accumulate: accumulate)
            }
            var reference: [Double] = []
            for r in 0 ..< rows {
                let xr = Self.doubles(Array(xf[r * dim ..< (r + 1) * dim]))
                let gr = Self.doubles(Array(gf[r * dim ..< (r + 1) * dim]))
                let offset: Double = accumulate ? 0.5 : 0
                reference += RMSNormBackward.reference(xr, weight: Self.doubles(wf), dy: gr, epsilon: eps).map { $0 + offset }
            }
            Self.expectClose(dx, reference, 1e-6, "RMSNorm backward")
        }
    }

    @Test func rope() {
        let hd = 8, heads = 3, rows = 5
        let inv = RoPE.inverseFrequencies(headDimension: hd, theta: 10000, scaling: .none)
        let x = Self.random(rows * heads * hd, seed: 4), dy = Self.random(rows * heads * hd, seed: 5)
        func angles(_ p: Int) -> [Double] { inv.map { Double(Float(p) * $0) } }
        for r in 0 ..< rows {
            for h in 0 ..< heads {
                let range = (r * heads + h) * hd ..< (r * heads + h + 1) * hd
                let g = Array(dy[range])
                let analytic = RoPEBackward.reference(g, angles: angles(r))
                let numeric = Self.numericGradient(Array(x[range])) { Self.dot(RoPEBackward.referenceForward($0, angles: angles(r)), g) }
                #expect(Self.maxAbsDiff(analytic, numeric) <= 1e-8)
            }
        }
        var cos = [Float](repeating: 0, count: rows * hd / 2), sin = cos
        cos.withUnsafeMutableBufferPointer { c in
            sin.withUnsafeMutableBufferPointer { s in
                RoPE.fillTables(inverseFrequencies: inv, positions: 0 ..< rows, cos: c.baseAddress!, sin: s.baseAddress!)
            }
        }
        var d = Self.floats(dy)
        d.withUnsafeMutableBufferPointer { p in
            RoPEBackward.apply(p.baseAddress!, rows: rows, rowStride: heads * hd, heads: heads, headDimension: hd, cos: cos, sin: sin)
        }
        let reference = (0 ..< rows * heads).flatMap { i in
            RoPEBackward.reference(Array(dy[i * hd ..< (i + 1) * hd]), angles: angles(i / heads))
        }
        Self.expectClose(d, reference, 1e-6, "RoPE backward")
    }

    /// Shapes, and Mistral's sliding window (nil: full causal attention), also across row blocks.
    @Test(arguments: [(3, 3, 1, nil), (5, 6, 2, nil), (13, 4, 4, nil), (AttentionBackward.blockRows + 37, 2, 1, nil),
                      (13, 4, 2, 4), (9, 2, 1, 1), (AttentionBackward.blockRows + 37, 2, 1, 50)] as [(Int, Int, Int, Int?)])
    func attention(shape: (length: Int, heads: Int, kvHeads: Int, window: Int?)) {
        let (n, heads, kvHeads, hd, window) = (shape.length, shape.heads, shape.kvHeads, 4, shape.window)
        let q = Self.random(n * heads * hd, seed: 6, scale: 1.5), k = Self.random(n * kvHeads * hd, seed: 7, scale: 1.5)
        let v = Self.random(n * kvHeads * hd, seed: 8), dO = Self.random(n * heads * hd, seed: 9)
        let analytic = AttentionBackward.reference(q: q, k: k, v: v, dO: dO, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                                   window: window)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
            Self.dot(AttentionBackward.referenceForward(q: q, k: k, v: v, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                                        window: window), dO)
        }
        // Finite differences on the short sequences; the long one (several row blocks of the fast
        // kernel) is checked against the Double backward only.
        if n <= 16 {
            let numericQ = Self.numericGradient(q) { loss($0, k, v) }
            let numericK = Self.numericGradient(k) { loss(q, $0, v) }
            let numericV = Self.numericGradient(v) { loss(q, k, $0) }
            #expect(Self.maxAbsDiff(analytic.dQ, numericQ) <= 1e-8 * Self.maxAbsValue(numericQ))
            #expect(Self.maxAbsDiff(analytic.dK, numericK) <= 1e-8 * Self.maxAbsValue(numericK))
            #expect(Self.maxAbsDiff(analytic.dV, numericV) <= 1e-8 * Self.maxAbsValue(numericV))
        }

        // The float32 kernels against the references.
        let (qf, kf, vf, df) = (Self.floats(q), Self.floats(k), Self.floats(v), Self.floats(dO))
        var out = [Float](repeating: 0, count: q.count)
        var scratch = [Float](repeating: 0, count: AttentionBackward.scratchCount(length: n, heads: heads, headDimension: hd))
        var dQ = out, dK = [Float](repeating: 0, count: k.count), dV = dK
        scratch.withUnsafeMutableBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                AttentionBackward.forward(q: qf, k: kf, v: vf, length: n, heads: heads, kvHeads: kvHeads, headDimension: hd,
                                          window: window, output: o.baseAddress!, scratch: s.baseAddress!, threads: 2)
            }
            dQ.withUnsafeMutableBufferPointer { gq in
                dK.withUnsafeMutableBufferPointer { gk in
                    dV.withUnsafeMutableBufferPointer { gv in
                        AttentionBackward.backward(q: qf, k: kf, v: vf, dO: df, length: n, heads: heads, kvHeads: kvHeads,
                                                   headDimension: hd, window: window, dQ: gq.baseAddress!, dK: gk.baseAddress!,
                                                   dV: gv.baseAddress!, scratch: s.baseAddress!, threads: 2)
                    }
                }
            }
        }
        let reference = AttentionBackward.referenceForward(q: Self.doubles(qf), k: Self.doubles(kf), v: Self.doubles(vf),
                                                           heads: heads, kvHeads: kvHeads, headDimension: hd, window: window)
        Self.expectClose(out, reference, 1e-6, "attention forward")
        // The fast forward equals Verify's inference kernel.
        let verify = Attention.reference(queries: qf, keys: kf, values: vf, startPosition: 0, heads: heads, kvHeads: kvHeads,
                                         headDimension: hd, window: window)
        Self.expectClose(out, Self.doubles(verify), 1e-6, "attention forward vs Verify")
        let r = AttentionBackward.reference(q: Self.doubles(qf), k: Self.doubles(kf), v: Self.doubles(vf), dO: Self.doubles(df),
                                            heads: heads, kvHeads: kvHeads, headDimension: hd, window: window)
        Self.expectClose(dQ, r.dQ, 1e-5, "dQ")
        Self.expectClose(dK, r.dK, 1e-5, "dK")
        Self.expectClose(dV, r.dV, 1e-5, "dV")
    }

    @Test func swiGLU() {
        let count = 37
        let g = Self.random(count, seed: 10, scale: 4), u = Self.random(count, seed: 11), da = Self.random(count, seed: 12)
        let analytic = SwiGLUBackward.reference(gate: g, up: u, da: da)
        let numericG = Self.numericGradient(g) { Self.dot(SwiGLUBackward.referenceForward(gate: $0, up: u), da) }
        let numericU = Self.numericGradient(u) { Self.dot(SwiGLUBackward.referenceForward(gate: g, up: $0), da) }
        #expect(Self.maxAbsDiff(analytic.dGate, numericG) <= 1e-8)
        #expect(Self.maxAbsDiff(analytic.dUp, numericU) <= 1e-8)
        let (gf, uf, df) = (Self.floats(g), Self.floats(u), Self.floats(da))
        var dGate = [Float](repeating: 0, count: count), dUp = dGate, a = dGate
        dGate.withUnsafeMutableBufferPointer { pg in
            dUp.withUnsafeMutableBufferPointer { pu in
                SwiGLUBackward.apply(gate: gf, up: uf, da: df, dGate: pg.baseAddress!, dUp: pu.baseAddress!, count: count)
            }
        }
        a.withUnsafeMutableBufferPointer { SwiGLUBackward.forward(gate: gf, up: uf, into: $0.baseAddress!, count: count) }
        let r = SwiGLUBackward.reference(gate: Self.doubles(gf), up: Self.doubles(uf), da: Self.doubles(df))
        Self.expectClose(dGate, r.dGate, 1e-6, "dGate")
        Self.expectClose(dUp, r.dUp, 1e-6, "dUp")
        #expect(a == SwiGLU.reference(gate: gf, up: uf) || Self.maxAbsDiff(Self.doubles(a), Self.doubles(SwiGLU.reference(gate: gf, up: uf))) <= 1e-6)
        // Keeping the forward pass's denominators (in dUp, as the training pass does) changes no bit.
        var kept = [Float](repeating: 0, count: count), keptGate = kept, keptUp = kept
        kept.withUnsafeMutableBufferPointer { pa in
            keptGate.withUnsafeMutableBufferPointer { pg in
                keptUp.withUnsafeMutableBufferPointer { pu in
                    SwiGLUBackward.forward(gate: gf, up: uf, into: pa.baseAddress!, denominators: pu.baseAddress!, count: count)
                    SwiGLUBackward.apply(gate: gf, up: uf, da: df, dGate: pg.baseAddress!, dUp: pu.baseAddress!,
                                         denominators: pu.baseAddress!, count: count)
                }
            }
        }
        #expect(kept == a && keptGate == dGate && keptUp == dUp)
    }

    @Test(arguments: [false, true])
    func loraLinear(dropout: Bool) {
        let (rows, n, m, r, s) = (5, 11, 7, 3, 2.5)
        let x = Self.random(rows * n, seed: 13), w = Self.random(m * n, seed: 14, scale: 0.5)
        let a = Self.random(r * n, seed: 15, scale: 0.4), b = Self.random(m * r, seed: 16, scale: 0.3)
        let dY = Self.random(rows * m, seed: 17)
        let dropMask = DropoutMask(probability: 0.3, seed: 99)
        let mask: [Double]? = dropout ? Self.doubles(dropMask.values(rows: rows, columns: n)) : nil
        if let mask { #expect(mask.contains(0) && mask.contains { $0 > 1 }) }
        func forward(_ x: [Double], _ a: [Double], _ b: [Double]) -> Double {
            Self.dot(LoRALinear.referenceForward(x: x, rows: rows, weight: w, outFeatures: m, a: a, b: b, rank: r, scaling: s, mask: mask), dY)
        }
        let analytic = LoRALinear.reference(x: x, dY: dY, rows: rows, weight: w, outFeatures: m, a: a, b: b, rank: r, scaling: s, mask: mask)
        #expect(Self.maxAbsDiff(analytic.dx, Self.numericGradient(x) { forward($0, a, b) }) <= 1e-8)
        #expect(Self.maxAbsDiff(analytic.dA, Self.numericGradient(a) { forward(x, $0, b) }) <= 1e-8)
        #expect(Self.maxAbsDiff(analytic.dB, Self.numericGradient(b) { forward(x, a, $0) }) <= 1e-8)

        let (xf, wf, af, bf, gf) = (Self.floats(x), Self.floats(w), Self.floats(a), Self.floats(b), Self.floats(dY))
        var y = [Float](repeating: 0, count: rows * m), z = [Float](repeating: 0, count: rows * r)
        var scratch = [Float](repeating: 0, count: rows * n), dz = z
        var gradA = [Float](repeating: 0, count: r * n), gradB = [Float](repeating: 0, count: m * r)
        var dx = [Float](repeating: 0, count: rows * n)
        var bits = [UInt64](repeating: 0, count: rows * DropoutMask.words(columns: n))
        bits.withUnsafeMutableBufferPointer { dropMask.generate(into: $0.baseAddress!, rows: rows, columns: n) }
        bits.withUnsafeBufferPointer { bitp in
        af.withUnsafeBufferPointer { ap in
            bf.withUnsafeBufferPointer { bp in
                let op = LoRAOperands(a: ap.baseAddress!, b: bp.baseAddress!, rank: r, scaling: Float(s),
                                      dropout: dropout ? DropoutBits(bits: bitp.baseAddress!, scale: dropMask.keepScale) : nil)
                scratch.withUnsafeMutableBufferPointer { sp in
                    z.withUnsafeMutableBufferPointer { zp in
                        y.withUnsafeMutableBufferPointer { yp in
                            LoRALinear.forward(x: xf, rows: rows, inFeatures: n, outFeatures: m, weight: wf, lora: op, z: zp.baseAddress!,
                                               scratch: sp.baseAddress!, y: yp.baseAddress!, accumulate: false)
                        }
                        gradA.withUnsafeMutableBufferPointer { ga in
                            gradB.withUnsafeMutableBufferPointer { gb in
                                dz.withUnsafeMutableBufferPointer { dzp in
                                    dx.withUnsafeMutableBufferPointer { dxp in
                                        LoRALinear.backward(x: xf, dY: gf, rows: rows, inFeatures: n, outFeatures: m, weight: wf,
                                                            lora: op, z: zp.baseAddress!, gradA: ga.baseAddress!, gradB: gb.baseAddress!,
                                                            dz: dzp.baseAddress!, scratch: sp.baseAddress!, dx: dxp.baseAddress!,
                                                            accumulate: false)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        }
        let ref = LoRALinear.reference(x: Self.doubles(xf), dY: Self.doubles(gf), rows: rows, weight: Self.doubles(wf), outFeatures: m,
                                       a: Self.doubles(af), b: Self.doubles(bf), rank: r, scaling: s, mask: mask)
        let yRef = LoRALinear.referenceForward(x: Self.doubles(xf), rows: rows, weight: Self.doubles(wf), outFeatures: m,
                                               a: Self.doubles(af), b: Self.doubles(bf), rank: r, scaling: s, mask: mask)
        Self.expectClose(y, yRef, 1e-6, "LoRA forward")
        Self.expectClose(dx, ref.dx, 1e-6, "LoRA dx")
        Self.expectClose(gradA, ref.dA, 1e-6, "LoRA dA")
        Self.expectClose(gradB, ref.dB, 1e-6, "LoRA dB")
    }

    @Test func dropoutMaskIsAPureFunctionOfItsSeed() {
        let mask = DropoutMask(probability: 0.25, seed: 7)
        let a = mask.values(rows: 50, columns: 40), b = mask.values(rows: 50, columns: 40)
        #expect(a == b)
        let dropped = Double(a.filter { $0 == 0 }.count) / Double(a.count)
        #expect(abs(dropped - 0.25) < 0.03)
        #expect(Set(a) == [0, Float(1 / 0.75)])
        #expect(DropoutMask(probability: 0.25, seed: 8).values(rows: 50, columns: 40) != a)
        // Row r depends on r only: a shorter buffer sees the same first rows.
        #expect(Array(mask.values(rows: 3, columns: 40)) == Array(a.prefix(120)))
    }

    /// The eight-at-a-time mask application equals the scalar reference bit for bit (rows
    /// whose length is not a multiple of 8 or 64 included), and its accumulating form adds the
    /// same values.
    @Test func dropoutApplyMatchesItsReference() {
        let rows = 37
        for columns in [1, 7, 64, 75, 130] {
            let mask = DropoutMask(probability: 0.3, seed: UInt64(columns))
            var bits = [UInt64](repeating: 0, count: rows * DropoutMask.words(columns: columns))
            let x = Self.floats(Self.random(rows * columns, seed: UInt64(columns) + 1, scale: 2))
            let base = Self.floats(Self.random(rows * columns, seed: UInt64(columns) + 2, scale: 1))
            var fast = [Float](repeating: 0, count: rows * columns), reference = fast, accumulated = base
            bits.withUnsafeMutableBufferPointer { b in
                mask.generate(into: b.baseAddress!, rows: rows, columns: columns)
                DropoutMask.apply(bits: b.baseAddress!, scale: mask.keepScale, x, into: &fast, rows: rows, columns: columns,
                                  threads: 2)
                DropoutMask.applyReference(bits: b.baseAddress!, scale: mask.keepScale, x, into: &reference, rows: rows,
                                           columns: columns)
                DropoutMask.apply(bits: b.baseAddress!, scale: mask.keepScale, x, into: &accumulated, rows: rows,
                                  columns: columns, threads: 2, accumulate: true)
            }
            #expect(fast == reference, "\(columns) columns")
            #expect(accumulated == zip(base, reference).map { $0 + $1 }, "\(columns) columns, accumulated")
        }
    }

    @Test func crossEntropy() {
        let v = 23
        let z = Self.random(3 * v, seed: 18, scale: 3), targets = [0, 22, 9]
        for (row, t) in targets.enumerated() {
            let zr = Array(z[row * v ..< (row + 1) * v])
            let (_, g) = CrossEntropy.reference(zr, target: t)
            let numeric = Self.numericGradient(zr) { CrossEntropy.reference($0, target: t).loss }
            #expect(Self.maxAbsDiff(g, numeric) <= 1e-8)
        }
        var logits = Self.floats(z)
        let sum = logits.withUnsafeMutableBufferPointer {
            CrossEntropy.lossAndGradient(logits: $0.baseAddress!, vocabulary: v, targets: targets, scale: 0.5, threads: 2)
        }
        let lossOnly = Self.floats(z).withUnsafeBufferPointer {
            CrossEntropy.loss(logits: $0.baseAddress!, vocabulary: v, targets: targets, threads: 1)
        }
        var expectedSum = 0.0, expectedGradient: [Double] = []
        for (row, t) in targets.enumerated() {
            let r = CrossEntropy.reference(Self.doubles(Array(Self.floats(z)[row * v ..< (row + 1) * v])), target: t)
            expectedSum += r.loss
            expectedGradient += r.gradient.map { 0.5 * $0 }
        }
        #expect(abs(sum - expectedSum) <= 1e-6 * expectedSum)
        #expect(sum == lossOnly)
        Self.expectClose(logits, expectedGradient, 1e-6, "cross-entropy gradient")
    }

    // MARK: - Whole model

    /// A small model with odd sizes: 3 query heads per kv head, tied embeddings, llama3 RoPE.
    static let config = LlamaConfig(
        vocabularySize: 29, hiddenSize: 12, intermediateSize: 18, layerCount: 2, headCount: 6, kvHeadCount: 2,
        headDimension: 4, rmsNormEpsilon: 1e-5, ropeTheta: 10000,
        ropeScaling: .llama3(factor: 4, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContextLength: 8),
        tiedEmbeddings: true, maxPositions: 32)

    static func randomBase(seed: UInt64) throws -> FrozenBase {
        let c = config, d = c.hiddenSize
        var rng = SplitMix64(seed: seed)
        func random(_ count: Int, _ scale: Float) -> [Float] { (0 ..< count).map { _ in rng.nextFloat() * scale } }
        func norm() -> [Float] { (0 ..< d).map { _ in 1 + 0.2 * rng.nextFloat() } }
        let layers = (0 ..< c.layerCount).map { _ in
            LlamaLayerWeights(attentionNorm: norm(), query: random(c.queryDimension * d, 0.5), key: random(c.kvDimension * d, 0.5),
                              value: random(c.kvDimension * d, 0.5), output: random(d * c.queryDimension, 0.4),
                              feedForwardNorm: norm(), gate: random(c.intermediateSize * d, 0.4), up: random(c.intermediateSize * d, 0.4),
                              down: random(d * c.intermediateSize, 0.3))
        }
        let source = try InMemoryLlamaWeights(config: c, embedding: random(c.vocabularySize * d, 1), layers: layers, norm: norm(), head: nil)
        return try FrozenBase(source: source, config: c, storage: .float32)
    }

    /// The model's loss in Double from the reference forwards: embeddings, per layer RMSNorm →
    /// q/k/v with adapters → RoPE → attention → o_proj → residual → RMSNorm → SwiGLU MLP →
    /// residual, final norm, tied head, cross-entropy summed over targets / N. Examples are
    /// packed as the model packs them (dropout masks are indexed by packed row).
    static func referenceLoss(base: FrozenBase, adapter: [LoRAKey: (a: [Double], b: [Double])], lora: LoRAConfig,
                              examples: [TrainingExample], dropoutSeed: UInt64?) throws -> Double {
        let c = config, d = c.hiddenSize
        let inv = RoPE.inverseFrequencies(headDimension: c.headDimension, theta: c.ropeTheta, scaling: c.ropeScaling)
        let rows = examples.reduce(0) { $0 + $1.tokens.count }
        let emb = Self.doubles(base.embedding)
        var h = examples.flatMap { $0.tokens }.flatMap { Array(emb[$0 * d ..< ($0 + 1) * d]) }
        var buffer = LlamaLayerWeights(config: c)
        func rowsNorm(_ x: [Double], _ w: [Float]) -> [Double] {
            (0 ..< rows).flatMap { RMSNormBackward.referenceForward(Array(x[$0 * d ..< ($0 + 1) * d]), weight: Self.doubles(w), epsilon: c.rmsNormEpsilon) }
        }
        for l in 0 ..< c.layerCount {
            try base.loadLayer(l, into: &buffer)
            func linear(_ t: LoRATarget, _ x: [Double], _ w: [Float]) -> [Double] {
                let (n, m) = t.features(c)
                guard let p = adapter[LoRAKey(layer: l, target: t)] else {
                    return LoRALinear.referenceForward(x: x, rows: rows, weight: Self.doubles(w), outFeatures: m, a: [Double](repeating: 0, count: n),
                                                       b: [Double](repeating: 0, count: m), rank: 1, scaling: 0, mask: nil)
                }
                let mask = dropoutSeed.map {
                    Self.doubles(DropoutMask(probability: Float(lora.dropout),
                                             seed: TrainingRandom.derived(seed: $0, UInt64(l), UInt64(t.order)).state).values(rows: rows, columns: n))
                }
                return LoRALinear.referenceForward(x: x, rows: rows, weight: Self.doubles(w), outFeatures: m, a: p.a, b: p.b, rank: lora.rank,
                                                   scaling: lora.scaling, mask: mask)
            }
            let xn = rowsNorm(h, buffer.attentionNorm)
            var q = linear(.query, xn, buffer.query), k = linear(.key, xn, buffer.key)
            let v = linear(.value, xn, buffer.value)
            var o: [Double] = []
            var start = 0
            for e in examples {
                let n = e.tokens.count
                func rotate(_ x: inout [Double], heads: Int) {
                    let stride = heads * c.headDimension
                    for t in 0 ..< n {
                        let angles = inv.map { Double(Float(t) * $0) }
                        for hh in 0 ..< heads {
                            let at = (start + t) * stride + hh * c.headDimension
                            let rotated = RoPEBackward.referenceForward(Array(x[at ..< at + c.headDimension]), angles: angles)
                            x.replaceSubrange(at ..< at + c.headDimension, with: rotated)
                        }
                    }
                }
                rotate(&q, heads: c.headCount)
                rotate(&k, heads: c.kvHeadCount)
                o += AttentionBackward.referenceForward(
                    q: Array(q[start * c.queryDimension ..< (start + n) * c.queryDimension]),
                    k: Array(k[start * c.kvDimension ..< (start + n) * c.kvDimension]),
                    v: Array(v[start * c.kvDimension ..< (start + n) * c.kvDimension]),
                    heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: c.headDimension)
                start += n
            }
            let h1 = zip(h, linear(.output, o, buffer.output)).map(+)
            let xn2 = rowsNorm(h1, buffer.feedForwardNorm)
            let a = SwiGLUBackward.referenceForward(gate: linear(.gate, xn2, buffer.gate), up: linear(.up, xn2, buffer.up))
            h = zip(h1, linear(.down, a, buffer.down)).map(+)
        }
        let xf = rowsNorm(h, base.norm)
        var sum = 0.0, count = 0, start = 0
        for e in examples {
            for t in 0 ..< e.tokens.count - 1 where e.lossMask[t + 1] {
                let row = Array(xf[(start + t) * d ..< (start + t + 1) * d])
                let logits = (0 ..< c.vocabularySize).map { Self.dot(row, Array(emb[$0 * d ..< ($0 + 1) * d])) }
                sum += CrossEntropy.reference(logits, target: e.tokens[t + 1]).loss
                count += 1
            }
            start += e.tokens.count
        }
        return sum / Double(count)
    }

    /// Float32 gradients of the whole model (two packed sequences, dropout on, a target gap,
    /// adapters on five of the seven projections) against central differences of the Double model.
    @Test func wholeModel() throws {
        let base = try Self.randomBase(seed: 31)
        let lora = LoRAConfig(rank: 3, alpha: 5, dropout: 0.2, targets: ["q_proj", "k_proj", "o_proj", "up_proj", "down_proj"])
        var weights = try LoRAWeights(zeroBFor: Self.config, lora: lora, seed: 4)
        var rng = SplitMix64(seed: 8)
        for key in weights.keys {
            guard let p = weights[key] else { continue }
            try weights.set(key, a: p.a, b: p.b.map { _ in 0.3 * rng.nextFloat() })
        }
        let examples = [
            try TrainingExample(tokens: [1, 7, 28, 3, 3, 14, 9, 22, 5], lossMask: [false, false, true, true, false, true, true, true, true]),
            TrainingExample(tokens: [2, 11, 0, 17, 6]),
        ]
        let seed: UInt64 = 1234
        let model = try LoRAModel(base: base, config: Self.config, adapter: weights, threadCount: 2)
        let (loss, gradients) = try model.lossAndGradients(examples: examples, dropoutSeed: seed)
        // Recomputing activations in the backward pass gives the same bits.
        model.recompute = true
        let again = try model.lossAndGradients(examples: examples, dropoutSeed: seed)
        #expect(again.loss == loss && again.gradients == gradients)

        var adapter: [LoRAKey: (a: [Double], b: [Double])] = [:]
        for key in weights.keys { adapter[key] = (Self.doubles(weights[key]!.a), Self.doubles(weights[key]!.b)) }
        let referenceLoss = try Self.referenceLoss(base: base, adapter: adapter, lora: lora, examples: examples, dropoutSeed: seed)
        #expect(abs(loss - referenceLoss) <= 1e-5 * referenceLoss, "loss \(loss) vs Double \(referenceLoss)")

        // Central differences on every third element of a few matrices (A and B, both layers).
        var checked = 0
        for key in [LoRAKey(layer: 0, target: .query), LoRAKey(layer: 0, target: .up), LoRAKey(layer: 1, target: .key),
                    LoRAKey(layer: 1, target: .down), LoRAKey(layer: 1, target: .output)] {
            let g = try #require(gradients[key])
            for which in ["A", "B"] {
                let values = which == "A" ? adapter[key]!.a : adapter[key]!.b
                let sample = Array(stride(from: checked % 3, to: values.count, by: 3))
                let numeric = try sample.map { i -> Double in
                    var plus = adapter, minus = adapter
                    let h = 1e-5
                    if which == "A" { plus[key]!.a[i] += h; minus[key]!.a[i] -= h } else { plus[key]!.b[i] += h; minus[key]!.b[i] -= h }
                    let fp = try Self.referenceLoss(base: base, adapter: plus, lora: lora, examples: examples, dropoutSeed: seed)
                    let fm = try Self.referenceLoss(base: base, adapter: minus, lora: lora, examples: examples, dropoutSeed: seed)
                    return (fp - fm) / (2 * h)
                }
                let fast = sample.map { which == "A" ? g.a[$0] : g.b[$0] }
                Self.expectClose(fast, numeric, 1e-4, "\(key.peftModuleName) \(which)")
                #expect(Self.maxAbsValue(numeric) > 1e-4)
                checked += numeric.count
            }
        }
        #expect(checked > 120)
    }

    /// With B = 0 the adapted model is the base model: logits equal Verify's inference pass.
    @Test func zeroAdapterLogitsEqualTheInferenceModel() throws {
        let base = try Self.randomBase(seed: 5)
        let adapter = try LoRAWeights(zeroBFor: Self.config, lora: LoRAConfig(), seed: 1)
        let model = try LoRAModel(base: base, config: Self.config, adapter: adapter, threadCount: 1)
        let tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6]
        let ours = try model.logits(tokens: tokens)
        let inference = try LlamaModel(config: Self.config, weights: base, threadCount: 1).logits(for: tokens)
        #expect(maxAbsDifference(ours, inference) <= 1e-5 * maxAbs(inference))
    }
}
