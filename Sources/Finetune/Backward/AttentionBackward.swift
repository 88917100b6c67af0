#if canImport(Glibc)
import Glibc
#endif
import TensorCore
import Verify

/// Causal grouped-query attention of one sequence, forward and backward, for training.
///
/// Per query head `h` (kv head `g = h / (heads / kvHeads)`): `S = scale · Q_h K_gᵀ` with the
/// causal mask (and with a sliding window `W`, Mistral's, query `i` sees keys `i − W < j ≤ i`,
/// as transformers masks it), `P = softmax(S)` row-wise in float32, `O_h = P V_g` — transformers' eager
/// attention. The backward pass recomputes `P` with the same calls (so it equals the forward
/// `P` bit for bit) instead of storing `heads × n²` probabilities, then
/// `dV_g += Pᵀ dO_h`, `dP = dO_h V_gᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`,
/// `dQ_h = scale · dS K_g`, `dK_g += scale · dSᵀ Q_h`. Query rows go in blocks of
/// ``blockRows``, so the score scratch grows linearly with the sequence length.
///
/// Heads run in parallel, each with its own scratch (the products are too small to split:
/// 128 × 128 × 64). The backward pass gives each head its own `dK`, `dV` contribution, summed
/// into its kv head in head order afterwards, so results do not depend on the thread count.
enum AttentionBackward {
    /// Query rows per block: the score scratch is `blockRows × n` per matrix, whatever the
    /// sequence length, and the masked upper triangle beyond a block's last row is skipped.
    static let blockRows = 128

    /// Score floats of one head: `P` of one block of query rows.
    private static func blockCount(length n: Int) -> Int { min(n, blockRows) * n }

    /// Floats of one head's backward scratch: `P`, `dP`, and its `dK`, `dV` contributions.
    private static func headCount(length n: Int, headDimension hd: Int) -> Int { 2 * blockCount(length: n) + 2 * n * hd }

    /// Scratch floats ``forward(q:k:v:length:heads:kvHeads:headDimension:output:scratch:threads:)`` and
    /// ``backward(q:k:v:dO:length:heads:kvHeads:headDimension:dQ:dK:dV:scratch:threads:)`` need.
    static func scratchCount(length n: Int, heads: Int, headDimension hd: Int) -> Int {
        heads * headCount(length: n, headDimension: hd)
    }

    /// `P` of head `h` for query rows `t0 ..< t0 + rows` against keys `0 ..< visible` (= t0 + rows)
    /// into `p` (`[rows, visible]`, zeros above the diagonal and, with a `window`, before it).
    /// A masked probability is exactly 0, so the backward pass's `dS = P ⊙ (…)` is 0 there too
    /// and needs no mask of its own.
    private static func probabilities(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, rows: Int, firstRow t0: Int, head h: Int, group: Int,
        qStride: Int, kvStride: Int, hd: Int, scale: Float, window: Int?, alibi: UnsafePointer<Float>?,
        p: UnsafeMutablePointer<Float>
    ) {
        let visible = t0 + rows
        BLAS.gemm(transB: true, m: rows, n: visible, k: hd, alpha: scale, q + t0 * qStride + h * hd, lda: qStride,
                  k + (h / group) * hd, ldb: kvStride, p, ldc: visible)
        for r in 0 ..< rows {
            let row = p + r * visible, last = t0 + r
            let first = firstVisible(last, window: window)
            row.update(repeating: 0, count: first)
            // ALiBi: a constant per (query, key) added to the score, so the softmax's gradient
            // (and everything after it) is unchanged.
            if let alibi {
                let slope = alibi[h]
                for j in first ... last { row[j] += slope * Float(j - last) }
            }
            Softmax.apply(row + first, count: last + 1 - first)
            (row + last + 1).update(repeating: 0, count: rows - r - 1)
        }
    }

    /// The first key query `t` sees: 0, or `t − window + 1` with a sliding window.
    static func firstVisible(_ t: Int, window: Int?) -> Int { window.map { max(0, t - $0 + 1) } ?? 0 }

    /// Attention output `o` `[n, heads · hd]` from rotated `q` `[n, heads · hd]` and rotated `k`,
    /// `v` `[n, kvHeads · hd]`; `scratch` holds ``scratchCount(length:heads:headDimension:)`` floats.
    static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, length n: Int,
        heads: Int, kvHeads: Int, headDimension hd: Int, window: Int? = nil, alibi: UnsafePointer<Float>? = nil,
        output o: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let group = heads / kvHeads, qStride = heads * hd, kvStride = kvHeads * hd
        let scale = Attention.scale(headDimension: hd), perHead = headCount(length: n, headDimension: hd)
        nonisolated(unsafe) let (qs, ks, vs, os, scores, slopes) = (q, k, v, o, scratch, alibi)
        parallelChunks(count: heads, threads: threads) { range in
            for h in range {
                let p = scores + h * perHead
                for t0 in stride(from: 0, to: n, by: blockRows) {
                    let rows = min(blockRows, n - t0), visible = t0 + rows
                    probabilities(q: qs, k: ks, rows: rows, firstRow: t0, head: h, group: group, qStride: qStride,
                                  kvStride: kvStride, hd: hd, scale: scale, window: window, alibi: slopes, p: p)
                    BLAS.gemm(m: rows, n: hd, k: visible, p, lda: visible, vs + (h / group) * hd, ldb: kvStride,
                              os + t0 * qStride + h * hd, ldc: qStride)
                }
            }
        }
    }

    /// Gradients of `q`, `k`, `v` (rotated) given `dO`; `dQ`, `dK`, `dV` are overwritten.
    /// `scratch` holds ``scratchCount(length:heads:headDimension:)`` floats.
    static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, dO: UnsafePointer<Float>,
        length n: Int, heads: Int, kvHeads: Int, headDimension hd: Int, window: Int? = nil,
        alibi: UnsafePointer<Float>? = nil, dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let group = heads / kvHeads, qStride = heads * hd, kvStride = kvHeads * hd
        let scale = Attention.scale(headDimension: hd), perHead = headCount(length: n, headDimension: hd)
        let block = blockCount(length: n)
        nonisolated(unsafe) let (qs, ks, vs, dOs, dQs, scores, slopes) = (q, k, v, dO, dQ, scratch, alibi)
        parallelChunks(count: heads, threads: threads) { range in
            for h in range {
                let p = scores + h * perHead, dp = p + block
                // This head's dK and dV contributions `[n, hd]`, accumulated over row blocks.
                let dKh = dp + block, dVh = dKh + n * hd
                let kvOffset = (h / group) * hd
                for t0 in stride(from: 0, to: n, by: blockRows) {
                    let rows = min(blockRows, n - t0), visible = t0 + rows
                    // Rows of dK_h, dV_h past this block's last visible key start at zero.
                    let beta: Float = t0 == 0 ? 0 : 1
                    if t0 > 0 {
                        (dKh + t0 * hd).update(repeating: 0, count: rows * hd)
                        (dVh + t0 * hd).update(repeating: 0, count: rows * hd)
                    }
                    probabilities(q: qs, k: ks, rows: rows, firstRow: t0, head: h, group: group, qStride: qStride,
                                  kvStride: kvStride, hd: hd, scale: scale, window: window, alibi: slopes, p: p)
                    let dOBlock = dOs + t0 * qStride + h * hd
                    // dV_h += Pᵀ dO_h
                    BLAS.gemm(transA: true, m: visible, n: hd, k: rows, p, lda: visible, dOBlock, ldb: qStride,
                              beta: beta, dVh, ldc: hd)
                    // dP = dO_h V_gᵀ
                    BLAS.gemm(transB: true, m: rows, n: visible, k: hd, dOBlock, lda: qStride, vs + kvOffset, ldb: kvStride,
                              dp, ldc: visible)
                    // dS = P ⊙ (dP − Σⱼ Pᵢⱼ dPᵢⱼ), zero above the diagonal (P is zero there).
                    for r in 0 ..< rows {
                        let pr = p + r * visible, dr = dp + r * visible, last = t0 + r
                        var dot: Float = 0
                        for j in 0 ... last { dot += pr[j] * dr[j] }
                        for j in 0 ... last { dr[j] = pr[j] * (dr[j] - dot) }
                        (dr + last + 1).update(repeating: 0, count: visible - last - 1)
                    }
                    // dQ_h = scale · dS K_g
                    BLAS.gemm(m: rows, n: hd, k: visible, alpha: scale, dp, lda: visible, ks + kvOffset, ldb: kvStride,
                              dQs + t0 * qStride + h * hd, ldc: qStride)
                    // dK_h += scale · dSᵀ Q_h
                    BLAS.gemm(transA: true, m: visible, n: hd, k: rows, alpha: scale, dp, lda: visible,
                              qs + t0 * qStride + h * hd, ldb: qStride, beta: beta, dKh, ldc: hd)
                }
            }
        }
        // dK_g, dV_g: the contributions of the group's heads, in head order.
        for t in 0 ..< n {
            for g in 0 ..< kvHeads {
                let dKt = dK + t * kvStride + g * hd, dVt = dV + t * kvStride + g * hd
                for h in g * group ..< (g + 1) * group {
                    let dKh = scratch + h * perHead + 2 * block + t * hd, dVh = dKh + n * hd
                    if h == g * group {
                        dKt.update(from: dKh, count: hd)
                        dVt.update(from: dVh, count: hd)
                    } else {
                        for i in 0 ..< hd {
                            dKt[i] += dKh[i]
                            dVt[i] += dVh[i]
                        }
                    }
                }
            }
        }
    }

    /// Scalar reference forward in Double (one sequence, positions 0 ..< n).
    static func referenceForward(q: [Double], k: [Double], v: [Double], heads: Int, kvHeads: Int, headDimension hd: Int,
                                 window: Int? = nil, alibi: [Double]? = nil) -> [Double] {
        let qStride = heads * hd, kvStride = kvHeads * hd, n = q.count / qStride
        let scale = Double(Attention.scale(headDimension: hd))
        var out = [Double](repeating: 0, count: q.count)
        for h in 0 ..< heads {
            let g = h / (heads / kvHeads)
            for t in 0 ..< n {
                let lo = firstVisible(t, window: window)
                var s = (lo ... t).map { j in
                    (0 ..< hd).reduce(0.0) { $0 + q[t * qStride + h * hd + $1] * k[j * kvStride + g * hd + $1] } * scale
                    + (alibi.map { $0[h] * Double(j - t) } ?? 0)
                }
                let m = s.max() ?? 0
                s = s.map { exp($0 - m) }
                let z = s.reduce(0, +)
                for i in 0 ..< hd {
                    out[t * qStride + h * hd + i] = (lo ... t).reduce(0.0) { $0 + s[$1 - lo] / z * v[$1 * kvStride + g * hd + i] }
                }
            }
        }
        return out
    }

    /// Scalar reference gradients in Double (the textbook chain rule, no recomputation tricks).
    static func reference(
        q: [Double], k: [Double], v: [Double], dO: [Double], heads: Int, kvHeads: Int, headDimension hd: Int, window: Int? = nil,
        alibi: [Double]? = nil
    ) -> (dQ: [Double], dK: [Double], dV: [Double]) {
        let qStride = heads * hd, kvStride = kvHeads * hd, n = q.count / qStride
        let scale = Double(Attention.scale(headDimension: hd))
        var dQ = [Double](repeating: 0, count: q.count)
        var dK = [Double](repeating: 0, count: k.count), dV = dK
        for h in 0 ..< heads {
            let g = h / (heads / kvHeads)
            for t in 0 ..< n {
                let lo = firstVisible(t, window: window)
                var p = (lo ... t).map { j in
                    (0 ..< hd).reduce(0.0) { $0 + q[t * qStride + h * hd + $1] * k[j * kvStride + g * hd + $1] } * scale
                    + (alibi.map { $0[h] * Double(j - t) } ?? 0)
                }
                let m = p.max() ?? 0
                p = p.map { exp($0 - m) }
                let z = p.reduce(0, +)
                p = p.map { $0 / z }
                // dP_j = dO_t · v_j; dS_j = P_j (dP_j − Σ P dP)
                let dp = (lo ... t).map { j in (0 ..< hd).reduce(0.0) { $0 + dO[t * qStride + h * hd + $1] * v[j * kvStride + g * hd + $1] } }
                let dot = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                for j in lo ... t {
                    let ds = p[j - lo] * (dp[j - lo] - dot) * scale
                    for i in 0 ..< hd {
                        dQ[t * qStride + h * hd + i] += ds * k[j * kvStride + g * hd + i]
                        dK[j * kvStride + g * hd + i] += ds * q[t * qStride + h * hd + i]
                        dV[j * kvStride + g * hd + i] += p[j - lo] * dO[t * qStride + h * hd + i]
                    }
                }
            }
        }
        return (dQ, dK, dV)
    }
}
