#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// The gradient of the gated MLP activation `a = silu(g) · u`, `silu(g) = g · σ(g)`:
/// `∂a/∂g = u · σ(g) · (1 + g · (1 − σ(g)))`, `∂a/∂u = silu(g)`.
enum SwiGLUBackward {
    /// `a[i] = silu(g[i]) · u[i]` into a separate buffer (the backward pass needs `g` kept); with
    /// `denominators`, `1 + exp(−g[i])` is kept there too, so that
    /// ``apply(gate:up:da:dGate:dUp:denominators:count:threads:)`` need not compute it again.
    static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, into a: UnsafeMutablePointer<Float>,
                        denominators: UnsafeMutablePointer<Float>? = nil, count: Int, threads: Int = 1) {
        nonisolated(unsafe) let (gs, us, out, dens) = (gate, up, a, denominators)
        parallelChunks(count: count, threads: threads, minimumChunk: 1 << 14) { range in
            if let dens {
                for i in range {
                    let g = gs[i], denominator = 1 + expf(-g)
                    dens[i] = denominator
                    out[i] = g / denominator * us[i]
                }
            } else {
                for i in range {
                    let g = gs[i]
                    out[i] = g / (1 + expf(-g)) * us[i]
                }
            }
        }
    }

    /// Gradients of `gate` and `up` from `da`, written over `dGate` and `dUp` (which may alias `da`
    /// only for `dGate`: each element is read before it is written). `denominators` (which may
    /// be `dUp`) are the forward pass's `1 + exp(−g)`, or nil to compute them here.
    static func apply(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, da: UnsafePointer<Float>,
        dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>,
        denominators: UnsafePointer<Float>? = nil, count: Int, threads: Int = 1
    ) {
        nonisolated(unsafe) let (gs, us, ds, dg, du, dens) = (gate, up, da, dGate, dUp, denominators)
        parallelChunks(count: count, threads: threads, minimumChunk: 1 << 14) { range in
            for i in range {
                let g = gs[i], d = ds[i]
                let denominator = dens?[i] ?? 1 + expf(-g)
                let sigma = 1 / denominator
                let silu = g / denominator
                du[i] = d * silu
                dg[i] = d * us[i] * (sigma * (1 + g * (1 - sigma)))
            }
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
