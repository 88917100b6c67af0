import TensorCore
import Verify

/// Inverted dropout with a mask that is a pure function of a seed: row `r` of a buffer is
/// masked by the generator ``TrainingRandom/derived(seed:_:)`` of `(seed, r)`, each 64-bit draw
/// deciding two elements (24 bits each: kept when `u / 2²⁴ ≥ p`), and kept elements scaled by
/// `1 / (1 − p)` (`nn.Dropout` in training mode). The mask is generated once per forward pass
/// as bits (one per element) and reused by the backward pass.
struct DropoutMask: Sendable, Hashable {
    var probability: Float
    var seed: UInt64

    /// 64-bit words per row of `columns` elements.
    static func words(columns: Int) -> Int { (columns + 63) / 64 }

    /// The factor kept elements are multiplied by.
    var keepScale: Float { Float(1 / (1 - Double(probability))) }

    /// Writes the keep bits of `rows × columns` elements: bit `j % 64` of word
    /// `r · words(columns) + j / 64` is 1 when element `(r, j)` is kept.
    /// Rows are independent (each has its own generator), so `threads` workers give the same bits.
    func generate(into bits: UnsafeMutablePointer<UInt64>, rows: Int, columns: Int, threads: Int = 1) {
        let words = Self.words(columns: columns)
        // u / 2²⁴ ≥ p  ⇔  u ≥ ⌈p · 2²⁴⌉ (p · 2²⁴ is exact in Double).
        let threshold = UInt64((Double(probability) * 16_777_216).rounded(.up))
        let seed = seed
        nonisolated(unsafe) let out = bits
        parallelChunks(count: rows, threads: threads, minimumChunk: 16) { range in
            for r in range {
                var rng = TrainingRandom.derived(seed: seed, UInt64(r))
                let row = out + r * words
                row.update(repeating: 0, count: words)
                var j = 0
                while j < columns {
                    let draw = rng.next()
                    if draw >> 40 >= threshold { row[j >> 6] |= 1 << UInt64(j & 63) }
                    if j + 1 < columns, (draw >> 16) & 0xFF_FFFF >= threshold { row[(j + 1) >> 6] |= 1 << UInt64((j + 1) & 63) }
                    j += 2
                }
            }
        }
    }

    /// `y = x ⊙ mask · scale` (or `y += x ⊙ mask · scale` when `accumulate`) for `rows × columns`
    /// values (row stride `columns`); `y` may be `x`.
    ///
    /// Eight elements at a time: a byte of keep bits selects eight 0/1 factors from a table, so
    /// each element is `x · (keep · scale)` exactly as ``applyReference(bits:scale:_:into:rows:columns:)`` computes it.
    static func apply(bits: UnsafePointer<UInt64>, scale: Float, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                      rows: Int, columns: Int, threads: Int = 1, accumulate: Bool = false) {
        let words = Self.words(columns: columns)
        nonisolated(unsafe) let (b, xs, ys) = (bits, x, y)
        byteFactors.withUnsafeBufferPointer { table in
            nonisolated(unsafe) let factors = table.baseAddress!
            parallelChunks(count: rows, threads: threads, minimumChunk: 16) { range in
                let s = SIMD8<Float>(repeating: scale)
                for r in range {
                    let row = b + r * words, xr = UnsafeRawPointer(xs + r * columns), yr = UnsafeMutableRawPointer(ys + r * columns)
                    var j = 0
                    while j + 8 <= columns {
                        let byte = Int(truncatingIfNeeded: row[j >> 6] >> UInt64(j & 63)) & 0xFF
                        var v = xr.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) * (factors[byte] * s)
                        if accumulate { v = yr.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) + v }
                        yr.storeBytes(of: v, toByteOffset: j * 4, as: SIMD8<Float>.self)
                        j += 8
                    }
                    let xt = xs + r * columns, yt = ys + r * columns
                    while j < columns {
                        let v = xt[j] * (Float((row[j >> 6] >> UInt64(j & 63)) & 1) * scale)
                        yt[j] = accumulate ? yt[j] + v : v
                        j += 1
                    }
                }
            }
        }
    }

    /// Bit `i` of byte `b` as a float factor (0 or 1), for eight elements at a time.
    private static let byteFactors: [SIMD8<Float>] = (0 ..< 256).map { b in
        SIMD8<Float>((0 ..< 8).map { Float((b >> $0) & 1) })
    }

    /// Scalar reference of ``apply(bits:scale:_:into:rows:columns:threads:accumulate:)`` (no accumulation).
    static func applyReference(bits: UnsafePointer<UInt64>, scale: Float, _ x: UnsafePointer<Float>,
                               into y: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        let words = Self.words(columns: columns)
        for r in 0 ..< rows {
            let row = bits + r * words, xr = x + r * columns, yr = y + r * columns
            for j in 0 ..< columns {
                let keep = Float((row[j >> 6] >> UInt64(j & 63)) & 1)
                yr[j] = xr[j] * (keep * scale)
            }
        }
    }

    /// The mask itself (0 or `1 / (1 − p)` per element), for references and tests.
    func values(rows: Int, columns: Int) -> [Float] {
        var bits = [UInt64](repeating: 0, count: rows * Self.words(columns: columns))
        var m = [Float](repeating: 1, count: rows * columns)
        bits.withUnsafeMutableBufferPointer { b in
            generate(into: b.baseAddress!, rows: rows, columns: columns)
            m.withUnsafeMutableBufferPointer {
                Self.apply(bits: b.baseAddress!, scale: keepScale, $0.baseAddress!, into: $0.baseAddress!, rows: rows, columns: columns)
            }
        }
        return m
    }
}

/// A generated dropout mask as the kernels use it.
struct DropoutBits {
    /// Keep bits, ``DropoutMask/words(columns:)`` words per row.
    var bits: UnsafePointer<UInt64>
    /// `1 / (1 − p)`.
    var scale: Float
    /// Workers for applying the mask.
    var threads: Int = 1
}

/// A LoRA adapter's matrices as the kernels see them (PEFT layout, row-major).
struct LoRAOperands {
    /// `[rank, inFeatures]`.
    var a: UnsafePointer<Float>
    /// `[outFeatures, rank]`.
    var b: UnsafePointer<Float>
    var rank: Int
    var scaling: Float
    /// nil when dropout is off (p = 0, or evaluation).
    var dropout: DropoutBits?
}

/// The adapted projection `y = x·Wᵀ + scaling · (dropout(x)·Aᵀ)·Bᵀ` (PEFT `lora.Linear.forward`)
/// and its gradients with respect to `x`, `A` and `B` (the base weight `W` is frozen).
///
/// With `z = dropout(x)·Aᵀ` (`[rows, r]`, kept from the forward pass):
/// `∂B = s · dYᵀ z`, `dz = s · dY B`, `∂A = dzᵀ dropout(x)`, `dx = dY W + dropout'(dz A)`.
enum LoRALinear {
    /// `y (+)= x·Wᵀ + s · (dropout(x)·Aᵀ)·Bᵀ`, storing `z` for the backward pass.
    /// - Parameters:
    ///   - x: `[rows, inFeatures]`.
    ///   - weight: `W` `[outFeatures, inFeatures]`, or nil when the caller has already written
    ///     `x·Wᵀ` into `y` (a 4-bit `W`, see ``FourBitProduct``).
    ///   - lora: nil for a projection without adapter.
    ///   - z: `[rows, rank]`, written when `lora` is set.
    ///   - scratch: `rows × inFeatures` floats, used when dropout is on.
    ///   - y: `[rows, outFeatures]`.
    ///   - accumulate: add to `y` (residual connection) instead of overwriting it.
    ///   - threads: workers for the base product (the adapter's are too small to split).
    static func forward(
        x: UnsafePointer<Float>, rows: Int, inFeatures n: Int, outFeatures m: Int,
        weight: UnsafePointer<Float>?, lora: LoRAOperands?, z: UnsafeMutablePointer<Float>?,
        scratch: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool, threads: Int = 1
    ) {
        if let weight {
            BLAS.gemm(transB: true, m: rows, n: m, k: n, x, lda: n, weight, ldb: n, beta: accumulate ? 1 : 0, y, ldc: m,
                      threads: threads)
        }
        guard let lora, let z else { return }
        let input = droppedInput(x, rows: rows, columns: n, dropout: lora.dropout, scratch: scratch)
        BLAS.gemm(transB: true, m: rows, n: lora.rank, k: n, input, lda: n, lora.a, ldb: n, z, ldc: lora.rank)
        BLAS.gemm(transB: true, m: rows, n: m, k: lora.rank, alpha: lora.scaling, z, lda: lora.rank, lora.b, ldb: lora.rank,
                  beta: 1, y, ldc: m)
    }

    /// Only `z = dropout(x)·Aᵀ` (what the backward pass needs when a layer is recomputed).
    static func adapterInput(
        x: UnsafePointer<Float>, rows: Int, inFeatures n: Int, lora: LoRAOperands, z: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let input = droppedInput(x, rows: rows, columns: n, dropout: lora.dropout, scratch: scratch)
        BLAS.gemm(transB: true, m: rows, n: lora.rank, k: n, input, lda: n, lora.a, ldb: n, z, ldc: lora.rank)
    }

    /// Gradients: `gradA += ∂A`, `gradB += ∂B`, `dx (+)= ∂x`.
    /// - Parameters:
    ///   - x: the forward input `[rows, inFeatures]` (before dropout).
    ///   - dY: `[rows, outFeatures]`.
    ///   - z: the forward pass's `z` `[rows, rank]`.
    ///   - dz: scratch `[rows, rank]`.
    ///   - scratch: `rows × inFeatures` floats, used when dropout is on.
    ///   - dx: `[rows, inFeatures]`, or nil when the input's gradient is not needed (the first
    ///     layer: embeddings are frozen).
    ///   - accumulate: add to `dx` instead of overwriting it.
    ///   - threads: workers for the base product.
    ///   - weight: nil when the caller has already written (or added) `dY·W` into `dx`.
    static func backward(
        x: UnsafePointer<Float>, dY: UnsafePointer<Float>, rows: Int, inFeatures n: Int, outFeatures m: Int,
        weight: UnsafePointer<Float>?, lora: LoRAOperands?, z: UnsafePointer<Float>?,
        gradA: UnsafeMutablePointer<Float>?, gradB: UnsafeMutablePointer<Float>?,
        dz: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        dx: UnsafeMutablePointer<Float>?, accumulate: Bool, threads: Int = 1
    ) {
        if let lora, let z, let gradA, let gradB {
            let r = lora.rank, s = lora.scaling
            BLAS.gemm(transA: true, m: m, n: r, k: rows, alpha: s, dY, lda: m, z, ldb: r, beta: 1, gradB, ldc: r)
            BLAS.gemm(m: rows, n: r, k: m, alpha: s, dY, lda: m, lora.b, ldb: r, dz, ldc: r)
            let input = droppedInput(x, rows: rows, columns: n, dropout: lora.dropout, scratch: scratch)
            BLAS.gemm(transA: true, m: r, n: n, k: rows, dz, lda: r, input, ldb: n, beta: 1, gradA, ldc: n)
        }
        guard let dx else { return }
        if let weight {
            BLAS.gemm(m: rows, n: n, k: m, dY, lda: m, weight, ldb: n, beta: accumulate ? 1 : 0, dx, ldc: n, threads: threads)
        }
        guard let lora, z != nil, gradA != nil, gradB != nil else { return }
        if let dropout = lora.dropout {
            BLAS.gemm(m: rows, n: n, k: lora.rank, dz, lda: lora.rank, lora.a, ldb: n, scratch, ldc: n)
            DropoutMask.apply(bits: dropout.bits, scale: dropout.scale, scratch, into: dx, rows: rows, columns: n,
                              threads: dropout.threads, accumulate: true)
        } else {
            BLAS.gemm(m: rows, n: n, k: lora.rank, dz, lda: lora.rank, lora.a, ldb: n, beta: 1, dx, ldc: n)
        }
    }

    /// `x` itself without dropout; otherwise `dropout(x)` written into `scratch`.
    private static func droppedInput(
        _ x: UnsafePointer<Float>, rows: Int, columns: Int, dropout: DropoutBits?, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        guard let dropout else { return x }
        DropoutMask.apply(bits: dropout.bits, scale: dropout.scale, x, into: scratch, rows: rows, columns: columns,
                          threads: dropout.threads)
        return UnsafePointer(scratch)
    }

    /// Scalar reference forward in Double; `mask` multiplies `x` before `A` (nil: no dropout).
    static func referenceForward(
        x: [Double], rows: Int, weight: [Double], outFeatures m: Int, a: [Double], b: [Double], rank r: Int,
        scaling s: Double, mask: [Double]?
    ) -> [Double] {
        let n = x.count / rows
        let xd = mask.map { zip(x, $0).map(*) } ?? x
        var y = [Double](repeating: 0, count: rows * m)
        for t in 0 ..< rows {
            let z = (0 ..< r).map { k in (0 ..< n).reduce(0.0) { $0 + xd[t * n + $1] * a[k * n + $1] } }
            for o in 0 ..< m {
                let base = (0 ..< n).reduce(0.0) { $0 + x[t * n + $1] * weight[o * n + $1] }
                y[t * m + o] = base + s * (0 ..< r).reduce(0.0) { $0 + z[$1] * b[o * r + $1] }
            }
        }
        return y
    }

    /// Scalar reference gradients in Double.
    static func reference(
        x: [Double], dY: [Double], rows: Int, weight: [Double], outFeatures m: Int, a: [Double], b: [Double], rank r: Int,
        scaling s: Double, mask: [Double]?
    ) -> (dx: [Double], dA: [Double], dB: [Double]) {
        let n = x.count / rows
        let xd = mask.map { zip(x, $0).map(*) } ?? x
        var dx = [Double](repeating: 0, count: x.count), dA = [Double](repeating: 0, count: a.count)
        var dB = [Double](repeating: 0, count: b.count)
        for t in 0 ..< rows {
            let z = (0 ..< r).map { k in (0 ..< n).reduce(0.0) { $0 + xd[t * n + $1] * a[k * n + $1] } }
            var dz = [Double](repeating: 0, count: r)
            for o in 0 ..< m {
                let g = dY[t * m + o]
                for k in 0 ..< r {
                    dB[o * r + k] += s * g * z[k]
                    dz[k] += s * g * b[o * r + k]
                }
                for i in 0 ..< n { dx[t * n + i] += g * weight[o * n + i] }
            }
            for k in 0 ..< r {
                for i in 0 ..< n {
                    dA[k * n + i] += dz[k] * xd[t * n + i]
                    dx[t * n + i] += dz[k] * a[k * n + i] * (mask?[t * n + i] ?? 1)
                }
            }
        }
        return (dx, dA, dB)
    }
}
