internal import COpenBLAS
import TensorCore

/// Row-major single-precision matrix products for the training passes, one thin wrapper over
/// `cblas_sgemm` so every call site names its shapes the same way.
///
/// `C[m, n] = alpha · op(A) · op(B) + beta · C`, with `op(A)` `[m, k]` and `op(B)` `[k, n]`;
/// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
///
/// OpenBLAS runs single-threaded during training (``setThreadCount(_:)`` is given 1): a large
/// product is split into column blocks of `C` over our own workers (`threads`), the same
/// workers that run the element-wise kernels between products. With OpenBLAS's own pool, its
/// idle worker spun on `sched_yield` between products (a fifth of the step's CPU samples) while
/// the element-wise kernels and the small products ran on the calling thread alone.
enum BLAS {
    /// Multiply-adds below which a product is not split (waking a worker costs more).
    static let splitThreshold = 1 << 21

    static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            // An empty product: C = beta · C (BLAS would do the same, but some builds reject k = 0).
            for i in 0 ..< m {
                for j in 0 ..< n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] }
            }
            return
        }
        // Column blocks of at least 64 (a multiple of every sgemm kernel's column unroll, so
        // each element of C is the same dot product, in the same order, whichever block has it).
        let blocks = min(threads, n / 64, max(1, m * n * k / splitThreshold))
        if blocks <= 1 {
            call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        nonisolated(unsafe) let (pa, pb, pc) = (a, b, c)
        parallelColumnBlocks(columns: n, blocks: blocks) { columns in
            // Columns of op(B): rows of B when it is transposed, columns otherwise.
            let start = columns.lowerBound
            call(transA, transB, m, columns.count, k, alpha, pa, lda, pb + (transB ? start * ldb : start), ldb, beta,
                 pc + start, ldc)
        }
    }

    private static func call(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>,
        _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Sets OpenBLAS's thread count (process-wide).
    static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(clamping: max(1, count)))
    }
}
