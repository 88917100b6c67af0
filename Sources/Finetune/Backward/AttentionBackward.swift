#if canImport(Glibc)
import Glibc
#endif
import TensorCore
import Verify

/// Causal grouped-query attention of one sequence, forward and backward, for training.
///
/// Per query head `h` (kv head `g = h / (heads / kvHeads)`): `S = scale · Q_h K_gᵀ` with the
/// causal mask, `P = softmax(S)` row-wise in float32, `O_h = P V_g` — transformers' eager
/// attention. The backward pass recomputes `P` with the same calls (so it equals the forward
/// `P` bit for bit) instead of storing `heads × n²` probabilities, then
/// `dV_g += Pᵀ dO_h`, `dP = dO_h V_gᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`,
/// `dQ_h = scale · dS K_g`, `dK_g += scale · dSᵀ Q_h`. Heads of a group accumulate into their
/// kv head in head order, so results do not depend on the thread count.
enum AttentionBackward {
    /// Score scratch floats one call needs: `n × n` (forward) — the backward pass needs two.
    static func scratchCount(length n: Int) -> Int { n * n }

    /// `P` of head `h` into `p` (`[n, n]`, zeros above the diagonal).
    private static func probabilities(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, n: Int, head h: Int, group: Int,
        qStride: Int, kvStride: Int, hd: Int, scale: Float, p: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let kvOffset = (h / group) * hd
        BLAS.gemm(transB: true, m: n, n: n, k: hd, alpha: scale, q + h * hd, lda: qStride,
                  k + kvOffset, ldb: kvStride, p, ldc: n)
        nonisolated(unsafe) let s = p
        parallelChunks(count: n, threads: threads, minimumChunk: 32) { range in
            for r in range {
                let row = s + r * n
                Softmax.apply(row, count: r + 1)
                (row + r + 1).update(repeating: 0, count: n - r - 1)
            }
        }
    }

    /// Attention output `o` `[n, heads · hd]` from rotated `q` `[n, heads · hd]` and rotated `k`,
    /// `v` `[n, kvHeads · hd]`; `scratch` holds ``scratchCount(length:)`` floats.
    static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, length n: Int,
        heads: Int, kvHeads: Int, headDimension hd: Int,
        output o: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let group = heads / kvHeads, qStride = heads * hd, kvStride = kvHeads * hd
        let scale = Attention.scale(headDimension: hd)
        for h in 0 ..< heads {
            probabilities(q: q, k: k, n: n, head: h, group: group, qStride: qStride, kvStride: kvStride, hd: hd,
                          scale: scale, p: scratch, threads: threads)
            BLAS.gemm(m: n, n: hd, k: n, scratch, lda: n, v + (h / group) * hd, ldb: kvStride,
                      o + h * hd, ldc: qStride)
        }
    }

    /// Gradients of `q`, `k`, `v` (rotated) given `dO`; `dQ`, `dK`, `dV` are overwritten.
    /// `scratch` holds `2 ×` ``scratchCount(length:)`` floats.
    static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, dO: UnsafePointer<Float>,
        length n: Int, heads: Int, kvHeads: Int, headDimension hd: Int,
        dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, threads: Int
    ) {
        let group = heads / kvHeads, qStride = heads * hd, kvStride = kvHeads * hd
        let scale = Attention.scale(headDimension: hd)
        let p = scratch, dp = scratch + n * n
        for h in 0 ..< heads {
            let kvOffset = (h / group) * hd
            let first: Float = h % group == 0 ? 0 : 1   // the first head of a group overwrites dK/dV
            probabilities(q: q, k: k, n: n, head: h, group: group, qStride: qStride, kvStride: kvStride, hd: hd,
                          scale: scale, p: p, threads: threads)
            // dV_g (+)= Pᵀ dO_h
            BLAS.gemm(transA: true, m: n, n: hd, k: n, p, lda: n, dO + h * hd, ldb: qStride,
                      beta: first, dV + kvOffset, ldc: kvStride)
            // dP = dO_h V_gᵀ
            BLAS.gemm(transB: true, m: n, n: n, k: hd, dO + h * hd, lda: qStride, v + kvOffset, ldb: kvStride,
                      dp, ldc: n)
            // dS = P ⊙ (dP − Σⱼ Pᵢⱼ dPᵢⱼ), zero above the diagonal (P is zero there).
            nonisolated(unsafe) let (ps, dps) = (p, dp)
            parallelChunks(count: n, threads: threads, minimumChunk: 32) { range in
                for r in range {
                    let pr = ps + r * n, dr = dps + r * n
                    var dot: Float = 0
                    for j in 0 ... r { dot += pr[j] * dr[j] }
                    for j in 0 ... r { dr[j] = pr[j] * (dr[j] - dot) }
                    (dr + r + 1).update(repeating: 0, count: n - r - 1)
                }
            }
            // dQ_h = scale · dS K_g
            BLAS.gemm(m: n, n: hd, k: n, alpha: scale, dp, lda: n, k + kvOffset, ldb: kvStride,
                      dQ + h * hd, ldc: qStride)
            // dK_g (+)= scale · dSᵀ Q_h
            BLAS.gemm(transA: true, m: n, n: hd, k: n, alpha: scale, dp, lda: n, q + h * hd, ldb: qStride,
                      beta: first, dK + kvOffset, ldc: kvStride)
        }
    }

    /// Scalar reference forward in Double (one sequence, positions 0 ..< n).
    static func referenceForward(q: [Double], k: [Double], v: [Double], heads: Int, kvHeads: Int, headDimension hd: Int) -> [Double] {
        let qStride = heads * hd, kvStride = kvHeads * hd, n = q.count / qStride
        let scale = Double(Attention.scale(headDimension: hd))
        var out = [Double](repeating: 0, count: q.count)
        for h in 0 ..< heads {
            let g = h / (heads / kvHeads)
            for t in 0 ..< n {
                var s = (0 ... t).map { j in
                    (0 ..< hd).reduce(0.0) { $0 + q[t * qStride + h * hd + $1] * k[j * kvStride + g * hd + $1] } * scale
                }
                let m = s.max() ?? 0
                s = s.map { exp($0 - m) }
                let z = s.reduce(0, +)
                for i in 0 ..< hd {
                    out[t * qStride + h * hd + i] = (0 ... t).reduce(0.0) { $0 + s[$1] / z * v[$1 * kvStride + g * hd + i] }
                }
            }
        }
        return out
    }

    /// Scalar reference gradients in Double (the textbook chain rule, no recomputation tricks).
    static func reference(
        q: [Double], k: [Double], v: [Double], dO: [Double], heads: Int, kvHeads: Int, headDimension hd: Int
    ) -> (dQ: [Double], dK: [Double], dV: [Double]) {
        let qStride = heads * hd, kvStride = kvHeads * hd, n = q.count / qStride
        let scale = Double(Attention.scale(headDimension: hd))
        var dQ = [Double](repeating: 0, count: q.count)
        var dK = [Double](repeating: 0, count: k.count), dV = dK
        for h in 0 ..< heads {
            let g = h / (heads / kvHeads)
            for t in 0 ..< n {
                var p = (0 ... t).map { j in
                    (0 ..< hd).reduce(0.0) { $0 + q[t * qStride + h * hd + $1] * k[j * kvStride + g * hd + $1] } * scale
                }
                let m = p.max() ?? 0
                p = p.map { exp($0 - m) }
                let z = p.reduce(0, +)
                p = p.map { $0 / z }
                // dP_j = dO_t · v_j; dS_j = P_j (dP_j − Σ P dP)
                let dp = (0 ... t).map { j in (0 ..< hd).reduce(0.0) { $0 + dO[t * qStride + h * hd + $1] * v[j * kvStride + g * hd + $1] } }
                let dot = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                for j in 0 ... t {
                    let ds = p[j] * (dp[j] - dot) * scale
                    for i in 0 ..< hd {
                        dQ[t * qStride + h * hd + i] += ds * k[j * kvStride + g * hd + i]
                        dK[j * kvStride + g * hd + i] += ds * q[t * qStride + h * hd + i]
                        dV[j * kvStride + g * hd + i] += p[j] * dO[t * qStride + h * hd + i]
                    }
                }
            }
        }
        return (dQ, dK, dV)
    }
}
