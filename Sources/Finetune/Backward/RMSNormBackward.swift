import TensorCore
import Verify

/// The gradient of RMSNorm `y = w ⊙ x · r` with `r = 1 / √(mean(x²) + eps)` (norm weights frozen).
///
/// `∂r/∂xⱼ = −r³ xⱼ / d`, so `dxⱼ = r · (wⱼ dyⱼ − xⱼ · r² · Σᵢ wᵢ dyᵢ xᵢ / d)`.
enum RMSNormBackward {
    /// `dx (+)= ∂L/∂x` for `rows` rows of `dim` values; `r` is recomputed from `x` exactly as the
    /// forward pass (``RMSNorm/apply(_:weight:into:rows:dim:epsilon:)``) computes it.
    /// - Parameters:
    ///   - x: the norm's input `[rows, dim]`.
    ///   - dy: gradient of the norm's output `[rows, dim]`.
    ///   - dx: `[rows, dim]`; may not alias `dy` unless `accumulate` is false.
    ///   - accumulate: add to `dx` (a residual branch) instead of overwriting it.
    static func apply(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        into dx: UnsafeMutablePointer<Float>, rows: Int, dim: Int, epsilon: Float, accumulate: Bool
    ) {
        for row in 0 ..< rows {
            let xr = x + row * dim, gr = dy + row * dim, out = dx + row * dim
            let r = 1 / (VectorMath.dot(xr, xr, count: dim) / Float(dim) + epsilon).squareRoot()
            var s: Float = 0
            for i in 0 ..< dim { s += weight[i] * gr[i] * xr[i] }
            let c = r * r * r * s / Float(dim)
            if accumulate {
                for i in 0 ..< dim { out[i] += r * (weight[i] * gr[i]) - xr[i] * c }
            } else {
                for i in 0 ..< dim { out[i] = r * (weight[i] * gr[i]) - xr[i] * c }
            }
        }
    }

    /// Scalar reference forward in Double: one row.
    static func referenceForward(_ x: [Double], weight: [Double], epsilon: Double) -> [Double] {
        let r = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + epsilon).squareRoot()
        return zip(x, weight).map { $1 * ($0 * r) }
    }

    /// Scalar reference gradient in Double: one row, `∂L/∂x` given `∂L/∂y`.
    static func reference(_ x: [Double], weight: [Double], dy: [Double], epsilon: Double) -> [Double] {
        let d = Double(x.count)
        let r = 1 / (x.reduce(0) { $0 + $1 * $1 } / d + epsilon).squareRoot()
        var s = 0.0
        for i in x.indices { s += weight[i] * dy[i] * x[i] }
        return x.indices.map { r * weight[$0] * dy[$0] - x[$0] * r * r * r * s / d }
    }
}
