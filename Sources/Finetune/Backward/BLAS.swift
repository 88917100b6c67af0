internal import COpenBLAS

/// Row-major single-precision matrix products for the training passes, one thin wrapper over
/// `cblas_sgemm` so every call site names its shapes the same way.
///
/// `C[m, n] = alpha · op(A) · op(B) + beta · C`, with `op(A)` `[m, k]` and `op(B)` `[k, n]`;
/// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored. BLAS is called from
/// one thread at a time (OpenBLAS runs its own workers).
enum BLAS {
    static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            // An empty product: C = beta · C (BLAS would do the same, but some builds reject k = 0).
            for i in 0 ..< m {
                for j in 0 ..< n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] }
            }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Sets OpenBLAS's thread count (process-wide).
    static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(clamping: max(1, count)))
    }
}
