#if canImport(Glibc)
import Glibc
#endif

/// RMSNorm as transformers' `LlamaRMSNorm` computes it in float32:
/// `y = w * (x * rsqrt(mean(x²) + eps))` — two roundings, in that order.
public enum RMSNorm {
    /// Normalizes `rows` rows of `dim` floats from `x` into `y` (may alias `x`).
    /// - Parameters:
    ///   - x: `[rows, dim]`.
    ///   - weight: `[dim]`.
    ///   - y: `[rows, dim]`.
    public static func apply(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, epsilon: Float
    ) {
        for r in 0 ..< rows {
            let xr = x + r * dim, yr = y + r * dim
            let scale = 1 / (VectorMath.dot(xr, xr, count: dim) / Float(dim) + epsilon).squareRoot()
            for i in 0 ..< dim {
                yr[i] = weight[i] * (xr[i] * scale)
            }
        }
    }

    /// Scalar reference: one row, the mean of squares summed in Double.
    public static func reference(_ x: [Float], weight: [Float], epsilon: Float) -> [Float] {
        precondition(x.count == weight.count, "RMSNorm: length mismatch")
        var sum = 0.0
        for v in x { sum += Double(v * v) }
        let variance = Float(sum / Double(x.count))
        let scale = 1 / (variance + epsilon).squareRoot()
        return zip(x, weight).map { v, w in w * (v * scale) }
    }
}

/// The gated MLP activation of LLaMA: `silu(gate) * up`, with `silu(g) = g / (1 + exp(-g))`
/// as torch evaluates it in float32.
public enum SwiGLU {
    /// gate[i] = silu(gate[i]) · up[i] over `count` elements, in place.
    public static func apply(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        for i in 0 ..< count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// Scalar reference (Double exp, rounded to Float at the same points).
    public static func reference(gate: [Float], up: [Float]) -> [Float] {
        precondition(gate.count == up.count, "SwiGLU: length mismatch")
        return zip(gate, up).map { g, u in
            let silu = Float(Double(g) / (1 + exp(-Double(g))))
            return silu * u
        }
    }
}

/// Softmax in float32 with max subtraction (what `softmax(dtype=float32)` does for attention).
public enum Softmax {
    /// In place over `count` elements; `count` must be ≥ 1.
    public static func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maxValue = x[0]
        for i in 1 ..< max(1, count) where x[i] > maxValue { maxValue = x[i] }
        var sum: Float = 0
        for i in 0 ..< count {
            let e = expf(x[i] - maxValue)
            x[i] = e
            sum += e
        }
        let inverse = 1 / sum
        for i in 0 ..< count { x[i] *= inverse }
    }

    /// Scalar reference: everything in Double, rounded once at the end.
    public static func reference(_ x: [Float]) -> [Float] {
        guard let maxValue = x.max() else { return [] }
        let e = x.map { exp(Double($0) - Double(maxValue)) }
        let sum = e.reduce(0, +)
        return e.map { Float($0 / sum) }
    }
}
