import Testing
import TestSupport
import Verify

/// Each fast kernel against its scalar reference.
@Suite struct KernelTests {
    static func random(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in rng.nextFloat() * scale }
    }

    @Test(arguments: [(1, 1, 1), (3, 7, 5), (17, 64, 33), (64, 96, 130)])
    func sgemmMatchesNaiveMatmul(shape: (rows: Int, inFeatures: Int, outFeatures: Int)) {
        let x = Self.random(shape.rows * shape.inFeatures, seed: 1)
        let w = Self.random(shape.outFeatures * shape.inFeatures, seed: 2)
        let fast = Matmul.project(x, rows: shape.rows, weight: w, outFeatures: shape.outFeatures)
        let reference = Matmul.projectReference(x, rows: shape.rows, weight: w, outFeatures: shape.outFeatures)
        #expect(maxAbsDifference(fast, reference) <= 1e-6 * Float(shape.inFeatures))
    }

    /// Shapes big enough for the column split (≥ 64 outputs per block, ≥ 1M multiply-adds),
    /// one row included (the sgemv path), an output count that is not a multiple of 16.
    @Test(arguments: [(64, 256, 200, 2), (33, 96, 1000, 3), (1, 1024, 2050, 2), (40, 256, 300, 4)])
    func splitProjectionMatchesReference(shape: (rows: Int, inFeatures: Int, outFeatures: Int, threads: Int)) {
        let x = Self.random(shape.rows * shape.inFeatures, seed: 21)
        let w = Self.random(shape.outFeatures * shape.inFeatures, seed: 22)
        Matmul.setThreadCount(1)
        let split = Matmul.project(x, rows: shape.rows, weight: w, outFeatures: shape.outFeatures, threads: shape.threads)
        let reference = Matmul.projectReference(x, rows: shape.rows, weight: w, outFeatures: shape.outFeatures)
        #expect(maxAbsDifference(split, reference) <= 1e-6 * Float(shape.inFeatures))
        // Accumulating into a strided output touches only the first outFeatures columns of each row.
        let stride = shape.outFeatures + 3
        var y = [Float](repeating: 1, count: shape.rows * stride)
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    Matmul.projectRows(xp.baseAddress!, rows: shape.rows, inFeatures: shape.inFeatures, weight: wp.baseAddress!,
                                       outFeatures: shape.outFeatures, into: yp.baseAddress!, yStride: shape.rows == 1 ? nil : stride,
                                       accumulate: true, threads: shape.threads)
                }
            }
        }
        let width = shape.rows == 1 ? shape.outFeatures : stride
        for r in 0 ..< shape.rows {
            let row = Array(y[r * width ..< r * width + shape.outFeatures])
            let expected = reference[r * shape.outFeatures ..< (r + 1) * shape.outFeatures].map { $0 + 1 }
            #expect(maxAbsDifference(row, expected) <= 1e-6 * Float(shape.inFeatures))
            if width > shape.outFeatures { #expect(y[r * width + shape.outFeatures ..< (r + 1) * width].allSatisfy { $0 == 1 }) }
        }
    }

    @Test func accumulatingProjectionAddsIntoTheOutput() {
        let x = Self.random(4 * 8, seed: 3), w = Self.random(5 * 8, seed: 4)
        var y = Self.random(4 * 5, seed: 5)
        let expected = zip(y, Matmul.projectReference(x, rows: 4, weight: w, outFeatures: 5)).map { $0 + $1 }
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    Matmul.projectRows(xp.baseAddress!, rows: 4, inFeatures: 8, weight: wp.baseAddress!, outFeatures: 5,
                                       into: yp.baseAddress!, accumulate: true)
                }
            }
        }
        #expect(maxAbsDifference(y, expected) <= 1e-5)
    }

    @Test(arguments: [1, 7, 8, 15, 16, 17, 100])
    func dotAndAddScaledMatchScalarLoops(count: Int) {
        let a = Self.random(count, seed: 6), b = Self.random(count, seed: 7)
        var expectedDot = 0.0
        for i in 0 ..< count { expectedDot += Double(a[i]) * Double(b[i]) }
        let dot = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in VectorMath.dot(ap.baseAddress!, bp.baseAddress!, count: count) }
        }
        #expect(abs(Double(dot) - expectedDot) <= 1e-5)
        var y = b
        a.withUnsafeBufferPointer { ap in
            y.withUnsafeMutableBufferPointer { VectorMath.addScaled(0.5, ap.baseAddress!, to: $0.baseAddress!, count: count) }
        }
        #expect(y == zip(a, b).map { $1 + 0.5 * $0 })
    }

    @Test func rmsNormMatchesReference() {
        let dim = 77, rows = 3
        let x = Self.random(rows * dim, seed: 8, scale: 3), w = Self.random(dim, seed: 9)
        var y = [Float](repeating: 0, count: rows * dim)
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer {
                    RMSNorm.apply(xp.baseAddress!, weight: wp.baseAddress!, into: $0.baseAddress!, rows: rows, dim: dim, epsilon: 1e-5)
                }
            }
        }
        let reference = (0 ..< rows).flatMap { RMSNorm.reference(Array(x[$0 * dim ..< ($0 + 1) * dim]), weight: w, epsilon: 1e-5) }
        #expect(maxAbsDifference(y, reference) <= 2e-6)
        // Hand check: x = [3, 4], w = [1, 2], eps 0 → rms = sqrt(12.5); y = [3, 8] / sqrt(12.5).
        let small = RMSNorm.reference([3, 4], weight: [1, 2], epsilon: 0)
        let rms = Float(12.5).squareRoot()
        #expect(abs(small[0] - 3 / rms) < 1e-6 && abs(small[1] - 8 / rms) < 1e-6)
    }

    @Test func swigluAndSoftmaxMatchReferences() {
        let g = Self.random(300, seed: 10, scale: 8), u = Self.random(300, seed: 11)
        var fast = g
        u.withUnsafeBufferPointer { up in
            fast.withUnsafeMutableBufferPointer { SwiGLU.apply(gate: $0.baseAddress!, up: up.baseAddress!, count: 300) }
        }
        #expect(maxAbsDifference(fast, SwiGLU.reference(gate: g, up: u)) <= 1e-6)
        #expect(SwiGLU.reference(gate: [0], up: [5]) == [0])

        let x = Self.random(129, seed: 12, scale: 20)
        var s = x
        s.withUnsafeMutableBufferPointer { Softmax.apply($0.baseAddress!, count: 129) }
        #expect(maxAbsDifference(s, Softmax.reference(x)) <= 1e-6)
        #expect(abs(s.reduce(0, +) - 1) < 1e-5)
        // Large logits do not overflow thanks to the max subtraction.
        var big: [Float] = [1000, 1000]
        big.withUnsafeMutableBufferPointer { Softmax.apply($0.baseAddress!, count: 2) }
        #expect(big == [0.5, 0.5])
    }

    @Test func ropeApplyMatchesReferenceAndKeepsNorms() {
        let hd = 16, heads = 3, rows = 5, start = 9
        let inv = RoPE.inverseFrequencies(headDimension: hd, theta: 10000, scaling: .none)
        let x = Self.random(rows * heads * hd, seed: 13)
        var cos = [Float](repeating: 0, count: rows * hd / 2), sin = cos
        cos.withUnsafeMutableBufferPointer { c in
            sin.withUnsafeMutableBufferPointer { s in
                RoPE.fillTables(inverseFrequencies: inv, positions: start ..< start + rows, cos: c.baseAddress!, sin: s.baseAddress!)
            }
        }
        var y = x
        y.withUnsafeMutableBufferPointer { yp in
            RoPE.apply(yp.baseAddress!, rows: rows, rowStride: heads * hd, heads: heads, headDimension: hd, cos: cos, sin: sin)
        }
        for r in 0 ..< rows {
            for h in 0 ..< heads {
                let o = (r * heads + h) * hd
                let expected = RoPE.reference(Array(x[o ..< o + hd]), position: start + r, inverseFrequencies: inv)
                #expect(Array(y[o ..< o + hd]) == expected)
                let before = x[o ..< o + hd].reduce(0) { $0 + $1 * $1 }, after = y[o ..< o + hd].reduce(0) { $0 + $1 * $1 }
                #expect(abs(before - after) < 1e-5)
            }
        }
        // Position 0 is the identity; at position 1 the first pair turns by exactly 1 radian
        // (inv_freq[0] = 1): pairs are (i, i + d/2), HF's rotate_half convention.
        #expect(RoPE.reference(Array(x[0 ..< hd]), position: 0, inverseFrequencies: inv) == Array(x[0 ..< hd]))
        let e0 = [Float(1)] + [Float](repeating: 0, count: hd - 1)
        let turned = RoPE.reference(e0, position: 1, inverseFrequencies: inv)
        #expect(turned[0] == Float(cos1) && turned[hd / 2] == Float(sin1))
        #expect(turned.enumerated().allSatisfy { $0.offset == 0 || $0.offset == hd / 2 || $0.element == 0 })
    }

    /// Small query counts take the per-head vector path, larger ones the blocked BLAS path
    /// (150 rows cross a block boundary).
    /// With a sliding window (Mistral) both paths match the reference's mask too; window 1
    /// leaves each query only itself, 200 covers everything (same as no window).
    @Test(arguments: [(0, 6, 4, 2, 1), (5, 3, 6, 3, 4), (11, 1, 4, 1, 3), (0, 24, 4, 2, 8), (3, 150, 3, 1, 37), (7, 20, 4, 2, 200)])
    func windowedAttentionMatchesReference(shape: (start: Int, queries: Int, heads: Int, kvHeads: Int, window: Int)) {
        let hd = 8, positions = shape.start + shape.queries
        let q = Self.random(shape.queries * shape.heads * hd, seed: 24, scale: 2)
        let k = Self.random(positions * shape.kvHeads * hd, seed: 25, scale: 2)
        let v = Self.random(positions * shape.kvHeads * hd, seed: 26)
        let out = Self.attention(q: q, k: k, v: v, start: shape.start, queries: shape.queries, heads: shape.heads,
                                 kvHeads: shape.kvHeads, hd: hd, window: shape.window)
        let reference = Attention.reference(queries: q, keys: k, values: v, startPosition: shape.start,
                                            heads: shape.heads, kvHeads: shape.kvHeads, headDimension: hd,
                                            window: shape.window)
        #expect(maxAbsDifference(out, reference) <= 1e-5)
        if shape.window == 1 {
            // Each query sees only its own key: the output is its value vector.
            let group = shape.heads / shape.kvHeads
            for t in 0 ..< shape.queries {
                for h in 0 ..< shape.heads {
                    let o = (t * shape.heads + h) * hd, vo = ((shape.start + t) * shape.kvHeads + h / group) * hd
                    #expect(maxAbsDifference(out[o ..< o + hd], v[vo ..< vo + hd]) <= 1e-6)
                }
            }
        }
        if shape.window >= positions {
            let full = Attention.reference(queries: q, keys: k, values: v, startPosition: shape.start,
                                           heads: shape.heads, kvHeads: shape.kvHeads, headDimension: hd)
            #expect(maxAbsDifference(out, full) <= 1e-5)
        }
    }

    static func attention(q: [Float], k: [Float], v: [Float], start: Int, queries: Int, heads: Int, kvHeads: Int,
                          hd: Int, window: Int?) -> [Float] {
        let positions = start + queries
        var out = [Float](repeating: .nan, count: q.count)
        var scores = [Float](repeating: .nan, count: Attention.scratchRows(queryCount: queries, heads: heads, threads: 2) * positions)
        q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    scores.withUnsafeMutableBufferPointer { sp in
                        out.withUnsafeMutableBufferPointer { op in
                            Attention.causal(
                                queries: qp.baseAddress!, queryCount: queries, startPosition: start,
                                keys: kp.baseAddress!, values: vp.baseAddress!, heads: heads, kvHeads: kvHeads,
                                headDimension: hd, scores: sp.baseAddress!, scoreStride: positions, output: op.baseAddress!,
                                threads: 2, window: window)
                        }
                    }
                }
            }
        }
        return out
    }

    @Test(arguments: [(0, 6, 4, 2), (5, 3, 6, 3), (11, 1, 4, 1), (0, 8, 2, 2), (7, 20, 4, 2), (3, 150, 3, 1)])
    func attentionMatchesReference(shape: (start: Int, queries: Int, heads: Int, kvHeads: Int)) {
        let hd = 12, positions = shape.start + shape.queries
        let q = Self.random(shape.queries * shape.heads * hd, seed: 14, scale: 2)
        let k = Self.random(positions * shape.kvHeads * hd, seed: 15, scale: 2)
        let v = Self.random(positions * shape.kvHeads * hd, seed: 16)
        var out = [Float](repeating: .nan, count: q.count)
        var scores = [Float](repeating: .nan, count: Attention.scratchRows(queryCount: shape.queries, heads: shape.heads, threads: 2) * positions)
        q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    scores.withUnsafeMutableBufferPointer { sp in
                        out.withUnsafeMutableBufferPointer { op in
                            Attention.causal(
                                queries: qp.baseAddress!, queryCount: shape.queries, startPosition: shape.start,
                                keys: kp.baseAddress!, values: vp.baseAddress!, heads: shape.heads, kvHeads: shape.kvHeads,
                                headDimension: hd, scores: sp.baseAddress!, scoreStride: positions, output: op.baseAddress!,
                                threads: 2)
                        }
                    }
                }
            }
        }
        let reference = Attention.reference(queries: q, keys: k, values: v, startPosition: shape.start,
                                            heads: shape.heads, kvHeads: shape.kvHeads, headDimension: hd)
        #expect(maxAbsDifference(out, reference) <= 1e-5)
    }

    @Test func firstQueryAttendsOnlyToItself() {
        // With one visible position the output is exactly that position's value vector.
        let reference = Attention.reference(queries: [1, 2, 3, 4], keys: [5, 6, 7, 8], values: [0.5, -1, 2, 3],
                                            startPosition: 0, heads: 1, kvHeads: 1, headDimension: 4)
        #expect(reference == [0.5, -1, 2, 3])
        #expect(Attention.scale(headDimension: 64) == 0.125)
    }
}

private let cos1 = 0.5403023058681398
private let sin1 = 0.8414709848078965
