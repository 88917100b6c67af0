#if canImport(Glibc)
import Glibc
#endif
import TensorCore
import Verify

/// The gradient of LayerNorm `y = x̂ ⊙ w + b` with `x̂ = (x − μ) · r`, `r = 1 / √(var + eps)`
/// (biased variance, as torch), with the weight and bias frozen: only `∂L/∂x` is produced.
///
/// With `g = w ⊙ dy` (or `dy` without a weight): `dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂))`.
/// The bias does not enter the gradient, so one kernel serves norms with and without it.
enum LayerNormBackward {
    /// `dx (+)= ∂L/∂x` for `rows` rows of `dim` values; mean and `r` are recomputed from `x` in
    /// the order ``LayerNorm/apply(_:weight:bias:into:rows:dim:epsilon:)`` computes them.
    /// - Parameters:
    ///   - x: the norm's input `[rows, dim]`.
    ///   - weight: the frozen scale, nil for none (MPT's `no_bias` norms keep the weight).
    ///   - dy: gradient of the norm's output `[rows, dim]`.
    ///   - dx: `[rows, dim]`; may not alias `dy` unless `accumulate` is false.
    ///   - accumulate: add to `dx` (a residual branch) instead of overwriting it.
    static func apply(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, dy: UnsafePointer<Float>,
        into dx: UnsafeMutablePointer<Float>, rows: Int, dim: Int, epsilon: Float, accumulate: Bool, threads: Int = 1
    ) {
        nonisolated(unsafe) let (xs, ws, gs, ds) = (x, weight, dy, dx)
        parallelChunks(count: rows, threads: threads, minimumChunk: 32) { range in
            for row in range {
                let xr = xs + row * dim, gr = gs + row * dim, out = ds + row * dim
                var sum: Float = 0
                for i in 0 ..< dim { sum += xr[i] }
                let mean = sum / Float(dim)
                var sq: Float = 0
                for i in 0 ..< dim {
                    let d = xr[i] - mean
                    sq += d * d
                }
                let r = 1 / (sq / Float(dim) + epsilon).squareRoot()
                // mean(g) and mean(g ⊙ x̂)
                var sg: Float = 0, sgx: Float = 0
                for i in 0 ..< dim {
                    let g = ws.map { $0[i] * gr[i] } ?? gr[i]
                    sg += g
                    sgx += g * (xr[i] - mean) * r
                }
                let mg = sg / Float(dim), mgx = sgx / Float(dim)
                for i in 0 ..< dim {
                    let g = ws.map { $0[i] * gr[i] } ?? gr[i]
                    let v = r * (g - mg - (xr[i] - mean) * r * mgx)
                    if accumulate { out[i] += v } else { out[i] = v }
                }
            }
        }
    }

    /// ``apply(x:weight:dy:into:rows:dim:epsilon:accumulate:threads:)`` with an empty `weight`
    /// array meaning none.
    static func apply(
        x: UnsafePointer<Float>, weight: [Float], dy: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, epsilon: Float, accumulate: Bool, threads: Int = 1
    ) {
        weight.withUnsafeBufferPointer { w in
            apply(x: x, weight: w.isEmpty ? nil : w.baseAddress, dy: dy, into: dx, rows: rows, dim: dim, epsilon: epsilon,
                  accumulate: accumulate, threads: threads)
        }
    }

    /// Scalar reference forward in Double: one row.
    static func referenceForward(_ x: [Double], weight: [Double]?, bias: [Double]?, epsilon: Double) -> [Double] {
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        let r = 1 / (variance + epsilon).squareRoot()
        return x.indices.map { i in (x[i] - mean) * r * (weight?[i] ?? 1) + (bias?[i] ?? 0) }
    }

    /// Scalar reference gradient in Double: one row, `∂L/∂x` given `∂L/∂y` (the chain rule
    /// through mean and variance written out term by term).
    static func reference(_ x: [Double], weight: [Double]?, dy: [Double], epsilon: Double) -> [Double] {
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        let r = 1 / (variance + epsilon).squareRoot()
        let g = x.indices.map { (weight?[$0] ?? 1) * dy[$0] }
        // ∂L/∂var = Σ gᵢ (xᵢ − μ) · (−½ r³); ∂L/∂μ = −r Σ gᵢ (the variance term's ∂var/∂μ is 0).
        let dVar = x.indices.reduce(0.0) { $0 + g[$1] * (x[$1] - mean) } * -0.5 * r * r * r
        let dMean = -r * g.reduce(0, +)
        return x.indices.map { i in g[i] * r + dVar * 2 * (x[i] - mean) / n + dMean / n }
    }
}

extension BlockDescription.Activation {
    /// `dx (+)= f′(x) ⊙ dy` over `count` elements, `x` the activation's input.
    ///
    /// GELU tanh: with `u = c(x + 0.044715x³)`, `t = tanh u`,
    /// `f′ = ½(1 + t) + ½x(1 − t²)·c(1 + 3·0.044715x²)`; GELU exact: `Φ(x) + x·φ(x)`;
    /// ReLU: 1 above 0, else 0 (torch's choice at 0); squared ReLU: `2·max(x, 0)`. ggml's
    /// table GELU is differentiated as the tanh formula it tabulates (training runs Hugging Face
    /// checkpoints, which never use it).
    func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, count: Int,
                  accumulate: Bool) {
        func store(_ i: Int, _ v: Float) { if accumulate { dx[i] += v } else { dx[i] = v } }
        switch self {
        case .geluExact:
            let invSqrt2: Float = 0.70710678118654752440, invSqrt2Pi: Float = 0.39894228040143267794
            for i in 0 ..< count {
                let v = x[i]
                store(i, dy[i] * (0.5 * (1 + erff(v * invSqrt2)) + v * invSqrt2Pi * expf(-0.5 * v * v)))
            }
        case .geluTanh, .geluGGML:
            let c: Float = 0.79788456080286535588, a: Float = 0.044715
            for i in 0 ..< count {
                let v = x[i]
                let t = tanhf(c * (v + a * (v * v * v)))
                store(i, dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * a * v * v)))
            }
        case .relu:
            for i in 0 ..< count { store(i, x[i] > 0 ? dy[i] : 0) }
        case .squaredReLU:
            for i in 0 ..< count { store(i, x[i] > 0 ? 2 * x[i] * dy[i] : 0) }
        }
    }

    /// Scalar reference forward in Double.
    func referenceForward(_ v: Double) -> Double {
        switch self {
        case .geluExact: 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
        case .geluTanh, .geluGGML: 0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
        case .relu: max(v, 0)
        case .squaredReLU: max(v, 0) * max(v, 0)
        }
    }

    /// Scalar reference derivative `f′(v)` in Double.
    func referenceDerivative(_ v: Double) -> Double {
        switch self {
        case .geluExact: 0.5 * (1 + erf(v / 2.0.squareRoot())) + v * exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
        case .geluTanh, .geluGGML:
            { () -> Double in
                let c = (2 / Double.pi).squareRoot(), t = tanh(c * (v + 0.044715 * v * v * v))
                return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
            }()
        case .relu: v > 0 ? 1 : 0
        case .squaredReLU: v > 0 ? 2 * v : 0
        }
    }
}
