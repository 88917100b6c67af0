#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// Causal grouped-query attention over a key/value history, as transformers' eager attention:
/// `softmax(q·kᵀ · hd^-0.5 + causal mask) · v`, softmax in float32.
///
/// Query head `h` reads kv head `h / (heads / kvHeads)` (`repeat_kv`: consecutive query heads
/// share a kv head). Query `t` sits at position `startPosition + t` and sees keys `0 ... that`.
public enum Attention {
    /// The score scale `head_dim ** -0.5`, computed in Double as Python does, used as float32.
    public static func scale(headDimension: Int) -> Float {
        Float(pow(Double(headDimension), -0.5))
    }

    /// Computes attention for `queryCount` query rows, heads spread over `threads` workers.
    /// - Parameters:
    ///   - queries: `[queryCount, heads · hd]` (already rotated).
    ///   - keys, values: `[startPosition + queryCount, kvHeads · hd]` (keys rotated).
    ///   - scores: scratch of `heads · scoreStride` floats, `scoreStride ≥ startPosition + queryCount`.
    ///   - output: `[queryCount, heads · hd]`.
    public static func causal(
        queries: UnsafePointer<Float>, queryCount: Int, startPosition: Int,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        heads: Int, kvHeads: Int, headDimension hd: Int,
        scores: UnsafeMutablePointer<Float>, scoreStride: Int,
        output: UnsafeMutablePointer<Float>, threads: Int
    ) {
        precondition(heads % kvHeads == 0 && scoreStride >= startPosition + queryCount, "Attention: bad shapes")
        let group = heads / kvHeads
        let qStride = heads * hd, kvStride = kvHeads * hd
        let scale = scale(headDimension: hd)
        // Work per head ~ queries × context × hd; below ~64k multiply-adds a dispatch costs more.
        let work = queryCount * (startPosition + queryCount) * hd
        let workers = work * heads < 65_536 ? 1 : threads
        nonisolated(unsafe) let q = queries, k = keys, v = values, s = scores, out = output
        parallelChunks(count: heads, threads: workers) { headRange in
            for h in headRange {
                let kvOffset = (h / group) * hd
                let row = s + h * scoreStride
                for t in 0 ..< queryCount {
                    let visible = startPosition + t + 1
                    let qv = q + t * qStride + h * hd
                    for j in 0 ..< visible {
                        row[j] = VectorMath.dot(qv, k + j * kvStride + kvOffset, count: hd) * scale
                    }
                    Softmax.apply(row, count: visible)
                    let o = out + t * qStride + h * hd
                    o.update(repeating: 0, count: hd)
                    for j in 0 ..< visible {
                        VectorMath.addScaled(row[j], v + j * kvStride + kvOffset, to: o, count: hd)
                    }
                }
            }
        }
    }

    /// Scalar reference on arrays: scores and weighted sums in Double, Softmax.reference.
    public static func reference(
        queries: [Float], keys: [Float], values: [Float], startPosition: Int,
        heads: Int, kvHeads: Int, headDimension hd: Int
    ) -> [Float] {
        let qStride = heads * hd, kvStride = kvHeads * hd
        let queryCount = queries.count / qStride
        var out = [Float](repeating: 0, count: queries.count)
        for h in 0 ..< heads {
            let kvh = h / (heads / kvHeads)
            for t in 0 ..< queryCount {
                let visible = startPosition + t + 1
                var row = [Float](repeating: 0, count: visible)
                for j in 0 ..< visible {
                    var acc = 0.0
                    for i in 0 ..< hd {
                        acc += Double(queries[t * qStride + h * hd + i]) * Double(keys[j * kvStride + kvh * hd + i])
                    }
                    row[j] = Float(acc) * scale(headDimension: hd)
                }
                let p = Softmax.reference(row)
                for i in 0 ..< hd {
                    var acc = 0.0
                    for j in 0 ..< visible { acc += Double(p[j]) * Double(values[j * kvStride + kvh * hd + i]) }
                    out[t * qStride + h * hd + i] = Float(acc)
                }
            }
        }
        return out
    }
}
