#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// Hyper-parameters of AdamW (`torch.optim.AdamW`).
public struct AdamWConfig: Sendable, Hashable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    /// Decoupled weight decay: parameters shrink by `lr · weightDecay` each step, apart from the
    /// gradient (Loshchilov & Hutter), as torch's AdamW does.
    public var weightDecay: Double

    /// torch's defaults except the learning rate (`betas=(0.9, 0.999)`, `eps=1e-8`) and weight
    /// decay 0 (QLoRA's and transformers' `TrainingArguments` default; torch's own is 0.01).
    public init(learningRate: Double = 2e-4, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                weightDecay: Double = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// - Throws: ``TrainingError/badHyperparameter(name:reason:)``.
    public func validate() throws(TrainingError) {
        guard learningRate.isFinite, learningRate >= 0 else { throw .badHyperparameter(name: "lr", reason: "must be ≥ 0") }
        guard beta1 >= 0, beta1 < 1 else { throw .badHyperparameter(name: "beta1", reason: "must be in [0, 1)") }
        guard beta2 >= 0, beta2 < 1 else { throw .badHyperparameter(name: "beta2", reason: "must be in [0, 1)") }
        guard epsilon.isFinite, epsilon >= 0 else { throw .badHyperparameter(name: "epsilon", reason: "must be ≥ 0") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw .badHyperparameter(name: "weight_decay", reason: "must be ≥ 0") }
    }
}

/// AdamW with torch's arithmetic (`torch.optim.adam._single_tensor_adam`, decoupled decay,
/// no amsgrad): scalars computed in Double as Python does, rounded to float32 where torch
/// turns them into tensor operands, element operations in float32 in torch's order:
///
/// ```
/// θ ← θ · (1 − lr·λ)
/// m ← m + (1 − β₁)·(g − m)                  (lerp)
/// v ← v·β₂ + ((1 − β₂)·g)·g                 (mul_, addcmul_)
/// θ ← θ + (−lr / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
public struct AdamW: Sendable, Hashable {
    public var config: AdamWConfig
    /// Steps taken (`t` of the bias corrections).
    public private(set) var step: Int
    /// First and second moments, one per parameter.
    public private(set) var m: [Float]
    public private(set) var v: [Float]

    public init(config: AdamWConfig, parameterCount: Int) {
        self.config = config
        step = 0
        m = [Float](repeating: 0, count: parameterCount)
        v = [Float](repeating: 0, count: parameterCount)
    }

    /// Restores saved state.
    /// - Throws: ``TrainingError/shapeMismatch(what:expected:actual:)`` if the moments differ in size.
    public init(config: AdamWConfig, step: Int, m: [Float], v: [Float]) throws(TrainingError) {
        guard m.count == v.count else { throw .shapeMismatch(what: "exp_avg_sq", expected: m.count, actual: v.count) }
        guard step >= 0 else { throw .badCheckpoint("negative optimizer step") }
        self.config = config
        self.step = step
        self.m = m
        self.v = v
    }

    /// One update of `parameters` with `gradients` (same layout as the moments) at `learningRate`.
    /// Each element is updated on its own, so `threads` workers give the same values as one.
    public mutating func update(_ parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, learningRate lr: Double,
                                threads: Int = 1) {
        step += 1
        let c = config
        let decay = Float(1 - lr * c.weightDecay)
        let mWeight = Float(1 - c.beta1)
        let beta2 = Float(c.beta2), vWeight = Float(1 - c.beta2)
        let correction1 = 1 - pow(c.beta1, Double(step))
        let correction2 = 1 - pow(c.beta2, Double(step))
        let stepSize = Float(-(lr / correction1))
        let correction2Root = Float(correction2.squareRoot())
        let eps = Float(c.epsilon)
        let count = m.count
        guard count > 0 else { return }
        m.withUnsafeMutableBufferPointer { mp in
            v.withUnsafeMutableBufferPointer { vp in
                nonisolated(unsafe) let (ms, vs, ps, gs) = (mp.baseAddress!, vp.baseAddress!, parameters, gradients)
                parallelChunks(count: count, threads: threads, minimumChunk: 1 << 16) { range in
                    for i in range {
                        let g = gs[i]
                        var p = ps[i]
                        if c.weightDecay != 0 { p = p * decay }
                        let mi = ms[i] + mWeight * (g - ms[i])
                        var vi = vs[i] * beta2
                        vi = vi + vWeight * g * g
                        let denominator = vi.squareRoot() / correction2Root + eps
                        ps[i] = p + stepSize * mi / denominator
                        ms[i] = mi
                        vs[i] = vi
                    }
                }
            }
        }
    }
}

/// Clipping by global norm as `torch.nn.utils.clip_grad_norm_`: `total = ‖g‖₂` over all
/// gradients; if `maxNorm / (total + 1e-6) < 1`, every gradient is multiplied by that factor.
public enum GradientClipping {
    /// The global L2 norm (sum of squares in Double, in parameter order).
    public static func norm(_ g: UnsafePointer<Float>, count: Int) -> Double {
        var sum = 0.0
        for i in 0 ..< count { sum += Double(g[i]) * Double(g[i]) }
        return sum.squareRoot()
    }

    /// Clips in place; returns the norm before clipping (what torch returns).
    @discardableResult
    public static func clip(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double) -> Double {
        let total = norm(g, count: count)
        // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, in float32 tensors.
        let coefficient = Float(maxNorm) / (Float(total) + 1e-6)
        if coefficient < 1 {
            for i in 0 ..< count { g[i] *= coefficient }
        }
        return total
    }
}
