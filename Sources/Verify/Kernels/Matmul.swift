internal import COpenBLAS
import TensorCore

/// Matrix products against weights stored the HF way, `[out, in]` row-major.
///
/// Every projection of the forward pass is `Y[rows, out] = X[rows, in] · Wᵀ`, which is one
/// `cblas_sgemm(RowMajor, NoTrans, Trans, …)`: BLAS reads `W` in its stored layout, no copy.
/// Two ways to use several cores, never both at once (that would oversubscribe them): call
/// from one thread with OpenBLAS's own pool sized by ``setThreadCount(_:)``, or — what the
/// forward pass does — set OpenBLAS to one thread and pass `threads` so the product is split
/// over our workers. The forward pass prefers the latter because OpenBLAS's idle workers spin
/// (`sched_yield`) for a while after every call, competing with the element-wise steps that run
/// on our workers between products (measured: up to a third of the CPU time of a 512-token
/// prompt on 2 cores went to that spinning).
public enum Matmul {
    /// Sets how many threads OpenBLAS uses for the products that follow (process-wide).
    public static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(clamping: max(1, count)))
    }

    /// The thread count OpenBLAS currently uses.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// `Y = X · Wᵀ` (or `Y += X · Wᵀ` when `accumulate`).
    /// - Parameters:
    ///   - x: `[rows, inFeatures]` row-major.
    ///   - weight: `[outFeatures, inFeatures]` row-major (HF `nn.Linear.weight`).
    ///   - y: `[rows, outFeatures]` with row stride `yStride` (≥ outFeatures).
    ///   - accumulate: add into `y` instead of overwriting it (residual connections).
    ///   - threads: with more than one, the output features are split into that many column
    ///     blocks, each computed by its own worker with one BLAS call; OpenBLAS should then run
    ///     single-threaded (``setThreadCount(_:)`` with 1), else the workers oversubscribe the
    ///     cores. Each output element is the same dot product whichever block computes it.
    public static func projectRows(
        _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
        weight: UnsafePointer<Float>, outFeatures: Int,
        into y: UnsafeMutablePointer<Float>, yStride: Int? = nil, accumulate: Bool = false, threads: Int = 1
    ) {
        guard rows > 0, outFeatures > 0 else { return }
        let ldc = yStride ?? outFeatures
        precondition(inFeatures > 0 && ldc >= outFeatures, "Matmul: bad dimensions")
        // Blocks of at least 64 outputs (a multiple of every sgemm kernel's column unroll), and
        // only when there is enough work to pay for waking a worker (~1M multiply-adds).
        let blocks = min(threads, outFeatures / 64, max(1, rows * outFeatures * inFeatures / 1_000_000))
        if blocks <= 1 {
            block(x, rows: rows, inFeatures: inFeatures, weight: weight, outFeatures: outFeatures, into: y, ldc: ldc,
                  accumulate: accumulate)
            return
        }
        nonisolated(unsafe) let (xs, ws, ys) = (x, weight, y)
        parallelColumnBlocks(columns: outFeatures, blocks: blocks) { columns in
            block(xs, rows: rows, inFeatures: inFeatures, weight: ws + columns.lowerBound * inFeatures,
                  outFeatures: columns.count, into: ys + columns.lowerBound, ldc: ldc, accumulate: accumulate)
        }
    }

    /// One BLAS call: `Y[:, 0 ..< outFeatures] (+)= X · Wᵀ` with row stride `ldc`.
    private static func block(
        _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>, outFeatures: Int,
        into y: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        guard outFeatures > 0 else { return }
        if rows == 1 {
            // One token (generation): sgemv reads W once; sgemm would first pack all of W.
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures),
                        1, weight, Int32(inFeatures), x, 1, accumulate ? 1 : 0, y, 1)
            return
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans,
            Int32(rows), Int32(outFeatures), Int32(inFeatures),
            1, x, Int32(inFeatures), weight, Int32(inFeatures),
            accumulate ? 1 : 0, y, Int32(ldc))
    }

    /// Array form of ``projectRows(_:rows:inFeatures:weight:outFeatures:into:yStride:accumulate:)``.
    public static func project(_ x: [Float], rows: Int, weight: [Float], outFeatures: Int, threads: Int = 1) -> [Float] {
        precondition(rows > 0 && !x.isEmpty && x.count % rows == 0 && outFeatures > 0, "Matmul: x is not [rows, in]")
        let inFeatures = x.count / rows
        precondition(weight.count == outFeatures * inFeatures, "Matmul: weight is not [out, in]")
        var y = [Float](repeating: 0, count: rows * outFeatures)
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    projectRows(xp.baseAddress!, rows: rows, inFeatures: inFeatures,
                                weight: wp.baseAddress!, outFeatures: outFeatures, into: yp.baseAddress!)
                }
            }
        }
        return y
    }

    /// Scalar reference for tests: `Y = X · Wᵀ` with each dot product summed in Double.
    public static func projectReference(_ x: [Float], rows: Int, weight: [Float], outFeatures: Int) -> [Float] {
        precondition(rows > 0 && x.count % rows == 0, "Matmul: x is not [rows, in]")
        let inFeatures = x.count / rows
        precondition(weight.count == outFeatures * inFeatures, "Matmul: weight is not [out, in]")
        var y = [Float](repeating: 0, count: rows * outFeatures)
        for r in 0 ..< rows {
            for o in 0 ..< outFeatures {
                var acc = 0.0
                for i in 0 ..< inFeatures {
                    acc += Double(x[r * inFeatures + i]) * Double(weight[o * inFeatures + i])
                }
                y[r * outFeatures + o] = Float(acc)
            }
        }
        return y
    }
}

/// Small vector helpers shared by the attention kernel (SIMD8 with a scalar tail).
///
/// Accumulation uses `acc += a * b` rather than `addProduct`: on baseline x86-64 the latter
/// becomes `fmaf` library calls (STYLE §3.8).
public enum VectorMath {
    /// Σ a[i]·b[i] over `count` elements, in Float.
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 16 <= count {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += ra.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            i += 16
        }
        if i + 8 <= count {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var sum = (acc0 + acc1).sum()
        while i < count {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// y[i] += alpha · x[i] over `count` elements.
    @inlinable
    public static func addScaled(_ alpha: Float, _ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let a = SIMD8<Float>(repeating: alpha)
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        while i + 8 <= count {
            let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                + a * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            y[i] += alpha * x[i]
            i += 1
        }
    }
}
