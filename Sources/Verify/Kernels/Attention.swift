#if canImport(Glibc)
import Glibc
#endif
internal import COpenBLAS
import TensorCore

/// Causal grouped-query attention over a key/value history, as transformers' eager attention:
/// `softmax(q·kᵀ · hd^-0.5 + causal mask) · v`, softmax in float32.
///
/// Query head `h` reads kv head `h / (heads / kvHeads)` (`repeat_kv`: consecutive query heads
/// share a kv head). Query `t` sits at position `p = startPosition + t` and sees keys `0 ... p`,
/// or with a sliding window `w` (Mistral) keys `max(0, p − w + 1) ... p`: transformers' mask
/// keeps key j iff `j > p − w`.
public enum Attention {
    /// The score scale `head_dim ** -0.5`, computed in Double as Python does, used as float32.
    public static func scale(headDimension: Int) -> Float {
        Float(pow(Double(headDimension), -0.5))
    }

    /// Query rows per block of the batched path: bounds the score scratch to
    /// `blockRows × context` and skips most of the masked upper triangle.
    static let blockRows = 128
    /// Below this many queries the per-head vector loop beats the BLAS path.
    static let batchThreshold = 8

    /// Rows of score scratch ``causal(queries:queryCount:startPosition:keys:values:heads:kvHeads:headDimension:scores:scoreStride:output:threads:)``
    /// needs with the same `threads`: it takes `rows × scoreStride` floats with
    /// `scoreStride ≥ context` (one block of query rows per worker, or a row per head).
    public static func scratchRows(queryCount: Int, heads: Int, threads: Int) -> Int {
        queryCount < batchThreshold ? heads : batchWorkers(heads: heads, threads: threads) * min(queryCount, blockRows)
    }

    /// Workers of the batched path: heads are split between them.
    static func batchWorkers(heads: Int, threads: Int) -> Int { max(1, min(threads, heads)) }

    /// Computes attention for `queryCount` query rows.
    ///
    /// Prompt batches go through BLAS per head and per block of query rows (`sgemm` for
    /// q·kᵀ over the visible keys, a masked softmax, `sgemm` for p·v), heads spread over
    /// `threads` workers that each call BLAS (so OpenBLAS should be single-threaded, see
    /// ``Matmul/setThreadCount(_:)``); one or a few queries (generation) use a vector loop with
    /// heads spread over `threads`.
    /// - Parameters:
    ///   - queries: `[queryCount, heads · hd]` (already rotated).
    ///   - keys, values: `[startPosition + queryCount, kvHeads · hd]` (keys rotated).
    ///   - scores: scratch of `scratchRows(queryCount:heads:threads:) · scoreStride` floats, with
    ///     `scoreStride ≥ startPosition + queryCount`.
    ///   - output: `[queryCount, heads · hd]`.
    public static func causal(
        queries: UnsafePointer<Float>, queryCount: Int, startPosition: Int,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        heads: Int, kvHeads: Int, headDimension hd: Int,
        scores: UnsafeMutablePointer<Float>, scoreStride: Int,
        output: UnsafeMutablePointer<Float>, threads: Int, window: Int? = nil, alibiSlopes: [Float]? = nil
    ) {
        precondition(alibiSlopes.map { $0.count == heads } ?? true, "Attention: one ALiBi slope per head")
        precondition(heads % kvHeads == 0 && scoreStride >= startPosition + queryCount, "Attention: bad shapes")
        precondition(window.map { $0 > 0 } ?? true, "Attention: window must be positive")
        if queryCount >= batchThreshold {
            batched(queries: queries, queryCount: queryCount, startPosition: startPosition, keys: keys, values: values,
                    heads: heads, kvHeads: kvHeads, headDimension: hd, scores: scores, output: output, threads: threads,
                    window: window, alibiSlopes: alibiSlopes)
            return
        }
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
                    let first = firstVisibleKey(position: startPosition + t, window: window)
                    let qv = q + t * qStride + h * hd
                    for j in first ..< visible {
                        row[j] = VectorMath.dot(qv, k + j * kvStride + kvOffset, count: hd) * scale
                    }
                    if let alibiSlopes { addALiBi(alibiSlopes[h], row: row, keys: first ..< visible, position: startPosition + t) }
                    Softmax.apply(row + first, count: visible - first)
                    let o = out + t * qStride + h * hd
                    o.update(repeating: 0, count: hd)
                    for j in first ..< visible {
                        VectorMath.addScaled(row[j], v + j * kvStride + kvOffset, to: o, count: hd)
                    }
                }
            }
        }
    }

    /// The BLAS path: for each head and block of query rows `[t0, t1)`, scores against the
    /// `startPosition + t1` keys the block can see, row-wise causal softmax (masked entries set
    /// to 0), then the weighted sum of values. Worker `w` takes heads `w, w + workers, …` and
    /// the scratch rows `w · blockRows ..< (w + 1) · blockRows`.
    private static func batched(
        queries: UnsafePointer<Float>, queryCount: Int, startPosition: Int,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        heads: Int, kvHeads: Int, headDimension hd: Int,
        scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>, threads: Int, window: Int?,
        alibiSlopes: [Float]?
    ) {
        let group = heads / kvHeads
        let qStride = heads * hd, kvStride = kvHeads * hd
        let scale = scale(headDimension: hd)
        let workers = batchWorkers(heads: heads, threads: threads)
        let slot = min(queryCount, blockRows) * (startPosition + queryCount)
        nonisolated(unsafe) let (q, k, v, s, out) = (queries, keys, values, scores, output)
        parallelChunks(count: workers, threads: workers) { range in
            for w in range {
                let scores = s + w * slot
                for h in stride(from: w, to: heads, by: workers) {
                    let kvOffset = (h / group) * hd
                    for t0 in stride(from: 0, to: queryCount, by: blockRows) {
                        let t1 = min(queryCount, t0 + blockRows), rows = t1 - t0
                        let visibleKeys = startPosition + t1
                        // scores[r, j] = scale · q[t0 + r] · k[j]
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(visibleKeys), Int32(hd),
                                    scale, q + t0 * qStride + h * hd, Int32(qStride), k + kvOffset, Int32(kvStride),
                                    0, scores, Int32(visibleKeys))
                        for r in 0 ..< rows {
                            let row = scores + r * visibleKeys
                            let visible = startPosition + t0 + r + 1
                            let first = firstVisibleKey(position: startPosition + t0 + r, window: window)
                            // Keys before the window (and after the query) weigh 0 in p·v.
                            row.update(repeating: 0, count: first)
                            if let alibiSlopes {
                                addALiBi(alibiSlopes[h], row: row, keys: first ..< visible, position: startPosition + t0 + r)
                            }
                            Softmax.apply(row + first, count: visible - first)
                            (row + visible).update(repeating: 0, count: visibleKeys - visible)
                        }
                        // out[t0 + r] = Σ_j p[r, j] · v[j]
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(hd), Int32(visibleKeys),
                                    1, scores, Int32(visibleKeys), v + kvOffset, Int32(kvStride),
                                    0, out + t0 * qStride + h * hd, Int32(qStride))
                    }
                }
            }
        }
    }

    /// Adds ALiBi's `slope · (j − position)` to the scores of keys `keys` (after scaling, before
    /// softmax, as MPT and Baichuan do; any per-row shift gives the same softmax).
    @inline(__always)
    static func addALiBi(_ slope: Float, row: UnsafeMutablePointer<Float>, keys: Range<Int>, position: Int) {
        for j in keys { row[j] += slope * Float(j - position) }
    }

    /// The first key a query at `position` sees: 0 without a window, else `position − window + 1`.
    @inline(__always)
    static func firstVisibleKey(position: Int, window: Int?) -> Int {
        guard let window else { return 0 }
        return max(0, position - window + 1)
    }

    /// Scalar reference on arrays: scores and weighted sums in Double, Softmax.reference; the
    /// window written out as transformers' mask condition `j > p − window`.
    public static func reference(
        queries: [Float], keys: [Float], values: [Float], startPosition: Int,
        heads: Int, kvHeads: Int, headDimension hd: Int, window: Int? = nil, alibiSlopes: [Float]? = nil
    ) -> [Float] {
        let qStride = heads * hd, kvStride = kvHeads * hd
        let queryCount = queries.count / qStride
        var out = [Float](repeating: 0, count: queries.count)
        for h in 0 ..< heads {
            let kvh = h / (heads / kvHeads)
            for t in 0 ..< queryCount {
                let visible = startPosition + t + 1
                let position = startPosition + t
                let keysSeen = (0 ..< visible).filter { j in window.map { j > position - $0 } ?? true }
                var row = [Float](repeating: 0, count: keysSeen.count)
                for (r, j) in keysSeen.enumerated() {
                    var acc = 0.0
                    for i in 0 ..< hd {
                        acc += Double(queries[t * qStride + h * hd + i]) * Double(keys[j * kvStride + kvh * hd + i])
                    }
                    row[r] = Float(acc) * scale(headDimension: hd)
                    if let alibiSlopes { row[r] += Float(Double(alibiSlopes[h]) * Double(j - position)) }
                }
                let p = Softmax.reference(row)
                for i in 0 ..< hd {
                    var acc = 0.0
                    for (r, j) in keysSeen.enumerated() { acc += Double(p[r]) * Double(values[j * kvStride + kvh * hd + i]) }
                    out[t * qStride + h * hd + i] = Float(acc)
                }
            }
        }
        return out
    }
}
