public import Formats
internal import COpenBLAS

/// Adding a LoRA module's delta to the weight it adapts, in float32.
///
/// Linear: `W[out, in] += scaling · (B[out, r] · A[r, in])`. Embedding: `E[vocab, dim] +=
/// scaling · (B[dim, r] · A[r, vocab])ᵀ`; a Conv1D (GPT-2, PEFT's `fan_in_fan_out`) likewise:
/// `W[in, out] += scaling · (B·A)ᵀ`. PEFT's `get_delta_weight` computes `(B @ A) * scaling`
/// in float32 and adds it; ``add(_:matrices:to:)`` does the product with `sgemm` (one call,
/// `alpha = scaling`, `beta = 1`), whose summation order may differ from torch's in the last
/// bit; ``addReference(_:matrices:to:)`` is the plain loop it is tested against.
public enum LoRADelta {
    /// Adds the module's delta to `weight` (row-major, the shape of the weight it adapts).
    /// - Precondition: sizes agree with the module (checked by the caller against the base).
    public static func add(_ module: LoRAModule, matrices m: LoRAMatrices, to weight: UnsafeMutableBufferPointer<Float>) {
        let r = Int32(module.rank), n = Int32(module.inFeatures), o = Int32(module.outFeatures)
        precondition(weight.count == module.inFeatures * module.outFeatures && m.a.count == module.rank * module.inFeatures
            && m.b.count == module.outFeatures * module.rank, "LoRADelta: sizes do not match the module")
        let s = Float(module.scaling)
        m.a.withUnsafeBufferPointer { a in
            m.b.withUnsafeBufferPointer { b in
                switch module.kind {
                case .linear:
                    // W[o, n] = s · B[o, r] · A[r, n] + W
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, n, r, s, b.baseAddress, r, a.baseAddress, n,
                                1, weight.baseAddress, n)
                case .embedding, .conv1D:
                    // E[n, o] = s · Aᵀ[n, r] · Bᵀ[r, o] + E   (A is [r, n], B is [o, r]); a Conv1D
                    // weight is stored [in, out] like an embedding.
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, n, o, r, s, a.baseAddress, n, b.baseAddress, r,
                                1, weight.baseAddress, o)
                }
            }
        }
    }

    /// The scalar reference: each element's sum over the rank in order, times `scaling`, added.
    public static func addReference(_ module: LoRAModule, matrices m: LoRAMatrices, to weight: inout [Float]) {
        let r = module.rank, n = module.inFeatures, o = module.outFeatures
        let s = Float(module.scaling)
        for row in 0 ..< o {
            for col in 0 ..< n {
                var sum: Float = 0
                for k in 0 ..< r { sum += m.b[row * r + k] * m.a[k * n + col] }
                switch module.kind {
                case .linear: weight[row * n + col] += sum * s
                case .embedding, .conv1D: weight[col * o + row] += sum * s
                }
            }
        }
    }

    /// ‖scaling · B·A‖ (Frobenius), computed without forming the product:
    /// ‖BA‖² = trace((BᵀB)(AAᵀ)), both r × r.
    public static func norm(_ module: LoRAModule, matrices m: LoRAMatrices) -> Double {
        let r = module.rank, n = module.inFeatures, o = module.outFeatures
        var btb = [Double](repeating: 0, count: r * r), aat = [Double](repeating: 0, count: r * r)
        for i in 0 ..< r {
            for j in 0 ... i {
                var x = 0.0, y = 0.0
                for row in 0 ..< o { x += Double(m.b[row * r + i]) * Double(m.b[row * r + j]) }
                for col in 0 ..< n { y += Double(m.a[i * n + col]) * Double(m.a[j * n + col]) }
                btb[i * r + j] = x; btb[j * r + i] = x
                aat[i * r + j] = y; aat[j * r + i] = y
            }
        }
        var trace = 0.0
        for i in 0 ..< r { for j in 0 ..< r { trace += btb[i * r + j] * aat[j * r + i] } }
        return abs(module.scaling) * max(0, trace).squareRoot()
    }
}
