#if canImport(Glibc)
import Glibc
#endif
import TensorCore
import Verify

/// Everything that shapes a training run besides the model and the data.
public struct TrainingOptions: Sendable, Hashable {
    public var optimizer: AdamWConfig
    public var schedule: LearningRateSchedule.Kind
    /// Linear warmup steps.
    public var warmupSteps: Int
    /// Optimizer steps of the whole run (the schedule's length).
    public var totalSteps: Int
    /// Examples per micro-batch (packed without padding into one pass).
    public var batchSize: Int
    /// Micro-batches whose gradients are summed before each optimizer step.
    public var gradientAccumulation: Int
    /// Clip the global gradient norm to this value (`max_grad_norm`); nil or 0 disables clipping.
    public var maxGradientNorm: Double?
    /// Seed of the data order and the dropout masks.
    public var seed: UInt64
    /// Shuffle the examples anew every epoch (seeded); otherwise use them in order.
    public var shuffle: Bool

    public init(optimizer: AdamWConfig = AdamWConfig(), schedule: LearningRateSchedule.Kind = .constant,
                warmupSteps: Int = 0, totalSteps: Int, batchSize: Int = 1, gradientAccumulation: Int = 1,
                maxGradientNorm: Double? = 1.0, seed: UInt64 = 42, shuffle: Bool = true) {
        self.optimizer = optimizer
        self.schedule = schedule
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.batchSize = batchSize
        self.gradientAccumulation = gradientAccumulation
        self.maxGradientNorm = maxGradientNorm
        self.seed = seed
        self.shuffle = shuffle
    }

    /// Examples consumed by one optimizer step.
    public var examplesPerStep: Int { batchSize * gradientAccumulation }

    /// Optimizer steps for `epochs` passes over `exampleCount` examples (the last step of a run
    /// may wrap into the next epoch's order).
    public static func steps(epochs: Double, exampleCount: Int, examplesPerStep: Int) -> Int {
        max(1, Int((epochs * Double(exampleCount) / Double(max(1, examplesPerStep))).rounded(.up)))
    }

    public var learningRateSchedule: LearningRateSchedule {
        LearningRateSchedule(kind: schedule, peak: optimizer.learningRate, warmupSteps: warmupSteps, totalSteps: totalSteps)
    }

    /// - Throws: ``TrainingError/badHyperparameter(name:reason:)``.
    public func validate() throws(TrainingError) {
        try optimizer.validate()
        try learningRateSchedule.validate()
        guard batchSize > 0 else { throw .badHyperparameter(name: "batch", reason: "must be positive") }
        guard gradientAccumulation > 0 else { throw .badHyperparameter(name: "grad-accum", reason: "must be positive") }
        if let n = maxGradientNorm {
            guard n.isFinite, n >= 0 else { throw .badHyperparameter(name: "max-grad-norm", reason: "must be ≥ 0") }
        }
    }
}

/// What one optimizer step did.
public struct StepReport: Sendable, Hashable {
    /// Optimizer steps completed, this one included (1-based).
    public var step: Int
    public var totalSteps: Int
    /// Mean cross-entropy over the step's target tokens (before the update).
    public var loss: Double
    /// The learning rate the update used.
    public var learningRate: Double
    /// Global gradient norm before clipping.
    public var gradientNorm: Double
    /// Tokens processed (all positions) and target tokens.
    public var tokens: Int
    public var targetTokens: Int
    /// Wall-clock seconds of the step.
    public var seconds: Double
    /// CPU seconds of the whole process during the step, all threads (less sensitive than
    /// ``seconds`` to other processes sharing the cores; includes BLAS threads' spinning).
    public var cpuSeconds: Double
    /// Position in the data: epochs completed as a fraction (1.5 = half-way through the second).
    public var epoch: Double

    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }
}

/// Loss on held-out examples.
public struct EvaluationReport: Sendable, Hashable {
    /// Optimizer steps completed when evaluated.
    public var step: Int
    /// Mean cross-entropy over all target tokens.
    public var loss: Double
    public var targetTokens: Int
    public var perplexity: Double { exp(loss) }
}

/// What ``LoRATrainer/train(steps:evaluation:evaluateEvery:progress:)`` reports.
public enum TrainingEvent: Sendable, Hashable {
    case step(StepReport)
    case evaluation(EvaluationReport)
}

/// The training loop: draws examples in a seeded order, runs forward and backward passes over
/// micro-batches, accumulates gradients, clips, applies AdamW with the scheduled learning rate.
///
/// The loss of a step is normalised by the number of target tokens of the whole step (all
/// micro-batches), as transformers' Trainer does with `num_items_in_batch`, so gradient
/// accumulation over k micro-batches equals one k-times-larger batch.
///
/// Determinism: for a given seed, data and thread count a run is reproducible bit for bit,
/// including across ``saveCheckpoint(to:extraFiles:)`` / ``resume(from:model:examples:)``:
/// the data order of epoch `e` and the dropout masks of step `s` derive from the seed and those
/// indices alone, so nothing but counters needs to be restored besides the adapter and the
/// optimizer moments.
public final class LoRATrainer {
    public let model: LoRAModel
    public let options: TrainingOptions
    public let examples: [TrainingExample]
    public private(set) var optimizer: AdamW
    /// Optimizer steps completed.
    public var completedSteps: Int { optimizer.step }
    /// Position in the data: the epoch being read and the next index into its order.
    public private(set) var epoch: Int = 0
    public private(set) var position: Int = 0
    private var order: [Int] = []
    private let gradients: FloatBuffer

    /// - Parameters:
    ///   - model: the model with its initial adapter (its thread count and recompute flag are used).
    ///   - options: hyper-parameters.
    ///   - examples: the training set (may be empty when only ``step(_:)`` with explicit
    ///     micro-batches is used).
    /// - Throws: ``TrainingError`` for invalid options or examples that do not fit the model.
    public init(model: LoRAModel, options: TrainingOptions, examples: [TrainingExample]) throws {
        try options.validate()
        for (i, e) in examples.enumerated() {
            guard e.targetCount > 0 else { throw TrainingError.exampleWithoutTargets(index: i) }
            let longest = model.config.maxPositions
            guard !e.tokens.isEmpty, e.tokens.count <= longest else {
                throw TrainingError.badSequenceLength(e.tokens.count, maximum: longest)
            }
            if let bad = e.tokens.first(where: { $0 < 0 || $0 >= model.config.vocabularySize }) {
                throw TrainingError.tokenOutOfRange(token: bad, vocabularySize: model.config.vocabularySize)
            }
        }
        self.model = model
        self.options = options
        self.examples = examples
        optimizer = AdamW(config: options.optimizer, parameterCount: model.parameterCount)
        gradients = FloatBuffer(count: model.parameterCount)
        order = epochOrder(0)
    }

    /// The example order of `epoch`: a seeded Fisher–Yates shuffle (or the given order).
    private func epochOrder(_ epoch: Int) -> [Int] {
        var indices = Array(examples.indices)
        guard options.shuffle else { return indices }
        var rng = TrainingRandom.derived(seed: options.seed, 0x6461_7461, UInt64(epoch))   // "data"
        indices.shuffle(using: &rng)
        return indices
    }

    /// The next `count` examples of the data order, moving into the next epoch as needed.
    private func nextExamples(_ count: Int) throws -> [TrainingExample] {
        guard !examples.isEmpty else { throw TrainingError.badHyperparameter(name: "data", reason: "no training examples") }
        var out: [TrainingExample] = []
        while out.count < count {
            if position == order.count {
                epoch += 1
                position = 0
                order = epochOrder(epoch)
            }
            out.append(examples[order[position]])
            position += 1
        }
        return out
    }

    /// One optimizer step on the next ``TrainingOptions/examplesPerStep`` examples of the data.
    @discardableResult
    public func step() throws -> StepReport {
        let batch = try nextExamples(options.examplesPerStep)
        let micro = stride(from: 0, to: batch.count, by: options.batchSize).map {
            Array(batch[$0 ..< min(batch.count, $0 + options.batchSize)])
        }
        return try step(micro)
    }

    /// One optimizer step on explicit micro-batches (their gradients summed).
    /// - Throws: ``TrainingError/noTargets`` if they hold no target token;
    ///   ``TrainingError/nonFinite(what:step:)`` if the loss or gradient norm is NaN/∞ (the
    ///   adapter is then left unchanged).
    @discardableResult
    public func step(_ microBatches: [[TrainingExample]]) throws -> StepReport {
        let start = monotonicSeconds(), cpuStart = processCPUSeconds()
        let targets = microBatches.reduce(0) { $0 + $1.reduce(0) { $0 + $1.targetCount } }
        guard targets > 0 else { throw TrainingError.noTargets }
        let count = model.parameterCount
        gradients.zero(count)
        let stepIndex = optimizer.step   // 0-based index of this step
        var lossSum = 0.0
        for (i, micro) in microBatches.enumerated() {
            let seed = TrainingRandom.derived(seed: options.seed, 0x6472_6f70, UInt64(stepIndex), UInt64(i)).state   // "drop"
            lossSum += try model.accumulateGradients(examples: micro, lossScale: 1 / Float(targets), dropoutSeed: seed,
                                                     into: gradients)
        }
        let loss = lossSum / Double(targets)
        let norm: Double
        if let maxNorm = options.maxGradientNorm, maxNorm > 0 {
            norm = GradientClipping.clip(gradients.pointer, count: count, maxNorm: maxNorm)
        } else {
            norm = GradientClipping.norm(gradients.pointer, count: count)
        }
        guard loss.isFinite else { throw TrainingError.nonFinite(what: "loss", step: stepIndex + 1) }
        guard norm.isFinite else { throw TrainingError.nonFinite(what: "gradient norm", step: stepIndex + 1) }
        let lr = options.learningRateSchedule.learningRate(afterSteps: stepIndex)
        optimizer.update(model.parameters.pointer, gradients: gradients.pointer, learningRate: lr, threads: model.threadCount)
        let tokens = microBatches.reduce(0) { $0 + $1.reduce(0) { $0 + $1.tokens.count } }
        let epochFraction = examples.isEmpty ? 0 : Double(epoch) + Double(position) / Double(examples.count)
        return StepReport(step: optimizer.step, totalSteps: options.totalSteps, loss: loss, learningRate: lr,
                          gradientNorm: norm, tokens: tokens, targetTokens: targets,
                          seconds: monotonicSeconds() - start, cpuSeconds: processCPUSeconds() - cpuStart, epoch: epochFraction)
    }

    /// Mean loss over `examples` (no dropout, no update), evaluated `batchSize` at a time.
    public func evaluate(_ examples: [TrainingExample]) throws -> EvaluationReport {
        var sum = 0.0, targets = 0
        for start in stride(from: 0, to: examples.count, by: options.batchSize) {
            let r = try model.loss(examples: Array(examples[start ..< min(examples.count, start + options.batchSize)]))
            sum += r.sum
            targets += r.targets
        }
        guard targets > 0 else { throw TrainingError.noTargets }
        return EvaluationReport(step: completedSteps, loss: sum / Double(targets), targetTokens: targets)
    }

    /// Runs steps until `steps` (default ``TrainingOptions/totalSteps``) have been completed in
    /// total, evaluating on `evaluation` every `evaluateEvery` steps and after the last one.
    /// `progress` sees every event; an error it throws stops the run after the current step.
    public func train(
        steps: Int? = nil, evaluation: [TrainingExample] = [], evaluateEvery: Int? = nil,
        progress: (TrainingEvent) throws -> Void = { _ in }
    ) throws {
        let last = steps ?? options.totalSteps
        while completedSteps < last {
            let report = try step()
            try progress(.step(report))
            let due = evaluateEvery.map { $0 > 0 && report.step % $0 == 0 } ?? false
            if !evaluation.isEmpty && (due || report.step == last) {
                try progress(.evaluation(try evaluate(evaluation)))
            }
        }
    }

    // MARK: - Checkpoints

    /// The state a checkpoint restores (see ``TrainingCheckpoint``).
    var state: TrainingCheckpoint.State {
        TrainingCheckpoint.State(step: optimizer.step, epoch: epoch, position: position)
    }

    /// Restores counters and data position (after the adapter and optimizer were loaded).
    func restore(_ s: TrainingCheckpoint.State, optimizer restored: AdamW) throws {
        guard s.epoch >= 0, s.position >= 0, s.position <= examples.count else {
            throw TrainingError.badCheckpoint("data position \(s.epoch):\(s.position) outside \(examples.count) examples")
        }
        optimizer = restored
        epoch = s.epoch
        position = s.position
        order = epochOrder(epoch)
    }
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double { clockSeconds(CLOCK_MONOTONIC) }

/// CPU seconds used by the process so far (every thread).
func processCPUSeconds() -> Double { clockSeconds(CLOCK_PROCESS_CPUTIME_ID) }

private func clockSeconds(_ clock: clockid_t) -> Double {
    var t = timespec()
    clock_gettime(clock, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
