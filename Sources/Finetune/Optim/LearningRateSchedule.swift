#if canImport(Glibc)
import Glibc
#endif

/// Learning rate over the optimizer steps, as transformers' `get_constant_schedule_with_warmup`,
/// `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup` (half a cosine period)
/// drive torch's `LambdaLR`.
public struct LearningRateSchedule: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case constant, linear, cosine
    }

    public var kind: Kind
    public var peak: Double
    /// Steps of linear warmup from 0 to `peak`.
    public var warmupSteps: Int
    /// Total optimizer steps (where linear and cosine reach 0).
    public var totalSteps: Int

    public init(kind: Kind = .constant, peak: Double, warmupSteps: Int = 0, totalSteps: Int) {
        self.kind = kind
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// - Throws: ``TrainingError/badHyperparameter(name:reason:)``.
    public func validate() throws(TrainingError) {
        guard warmupSteps >= 0 else { throw .badHyperparameter(name: "warmup", reason: "must be ≥ 0") }
        guard totalSteps > 0 else { throw .badHyperparameter(name: "steps", reason: "must be positive") }
        guard peak.isFinite, peak >= 0 else { throw .badHyperparameter(name: "lr", reason: "must be ≥ 0") }
    }

    /// The rate of the optimizer step taken after `completed` steps (0 for the first step):
    /// `LambdaLR` evaluates its lambda at `last_epoch`, which counts the `scheduler.step()`
    /// calls made so far. With warmup, the first step therefore has rate 0, as in transformers.
    public func learningRate(afterSteps completed: Int) -> Double {
        peak * factor(completed)
    }

    func factor(_ step: Int) -> Double {
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        switch kind {
        case .constant:
            return 1
        case .linear:
            return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        case .cosine:
            let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
            return max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
        }
    }
}
