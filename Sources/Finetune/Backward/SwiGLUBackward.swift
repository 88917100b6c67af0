#if canImport(Glibc)
import Glibc
#endif

/// The gradient of the gated MLP activation `a = silu(g) · u`, `silu(g) = g · σ(g)`:
/// `∂a/∂g = u · σ(g) · (1 + g · (1 − σ(g)))`, `∂a/∂u = silu(g)`.
enum SwiGLUBackward {
    /// `a[i] = silu(g[i]) · u[i]` into a separate buffer (the backward pass needs `g` kept).
    static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, into a: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0 ..< count {
            let g = gate[i]
            a[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// Gradients of `gate` and `up` from `da`, written over `dGate` and `dUp` (which may alias `da`
    /// only for `dGate`: each element is read before it is written).
    static func apply(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, da: UnsafePointer<Float>,
        dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int
    ) {
        for i in 0 ..< count {
            let g = gate[i], d = da[i]
            let sigma = 1 / (1 + expf(-g))
            let silu = g / (1 + expf(-g))
            dUp[i] = d * silu
            dGate[i] = d * up[i] * (sigma * (1 + g * (1 - sigma)))
        }
    }

    /// Scalar reference forward in Double.
    static func referenceForward(gate: [Double], up: [Double]) -> [Double] {
        zip(gate, up).map { g, u in g / (1 + exp(-g)) * u }
    }

    /// Scalar reference gradients in Double.
    static func reference(gate: [Double], up: [Double], da: [Double]) -> (dGate: [Double], dUp: [Double]) {
        var dg = [Double](repeating: 0, count: gate.count), du = dg
        for i in gate.indices {
            let g = gate[i], s = 1 / (1 + exp(-g))
            du[i] = da[i] * g * s
            dg[i] = da[i] * up[i] * s * (1 + g * (1 - s))
        }
        return (dg, du)
    }
}
