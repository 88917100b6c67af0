import Finetune
import Foundation
import Formats
import TensorCore
import Testing
import TestSupport
import Verify

/// The training loop: a short run against PyTorch + PEFT + AdamW, the loss falling, resume
/// equal to an uninterrupted run, thread-count independence.
@Suite struct TrainingTests {
    static func tinyBase(_ storage: FrozenBase.Storage = .float32) throws -> FrozenBase {
        try FrozenBase.load(modelDirectory: Fixtures.path("tiny-llama-spm"), storage: storage)
    }

    /// Three optimizer steps (2 micro-batches × 2 examples, clipping, weight decay, cosine with
    /// warmup) against the same run in PyTorch.
    @Test func shortRunMatchesPyTorch() throws {
        let json = try QLoRAGolden.json()
        guard let run = json["train_spm_f32"]?.objectValue, let hp = run["hyperparameters"]?.objectValue,
              let steps = run["steps"]?.arrayValue, let rawExamples = run["examples"]?.arrayValue else {
            throw Failure(.malformedInput, "no training golden")
        }
        let base = try Self.tinyBase()
        let tensors = try QLoRAGolden.tensors("train_spm_f32.safetensors")
        let initial = try QLoRAGolden.adapter(tensors, config: base.config, suffix: ".init")
        let expected = try QLoRAGolden.adapter(tensors, config: base.config, suffix: ".final")
        let examples = try rawExamples.map {
            try TrainingExample(tokens: QLoRAGolden.ints($0["tokens"]), lossMask: QLoRAGolden.bools($0["mask"]))
        }
        let betas = OptimizerTests.doubles(hp["betas"])
        let options = TrainingOptions(
            optimizer: AdamWConfig(learningRate: try #require(hp["lr"]?.doubleValue), beta1: betas[0], beta2: betas[1],
                                   epsilon: try #require(hp["eps"]?.doubleValue),
                                   weightDecay: try #require(hp["weight_decay"]?.doubleValue)),
            schedule: .cosine, warmupSteps: try #require(hp["warmup_steps"]?.intValue),
            totalSteps: try #require(hp["total_steps"]?.intValue), batchSize: 2, gradientAccumulation: 2,
            maxGradientNorm: try #require(hp["max_grad_norm"]?.doubleValue), shuffle: false)
        for recompute in [false, true] {
            let model = try LoRAModel(base: base, config: base.config, adapter: initial, threadCount: 2, recompute: recompute)
            let trainer = try LoRATrainer(model: model, options: options, examples: examples)
            for (i, golden) in steps.enumerated() {
                let report = try trainer.step([Array(examples[4 * i ..< 4 * i + 2]), Array(examples[4 * i + 2 ..< 4 * i + 4])])
                let loss = try #require(golden["loss"]?.doubleValue), norm = try #require(golden["grad_norm"]?.doubleValue)
                let lr = try #require(golden["lr"]?.doubleValue)
                #expect(report.step == i + 1)
                #expect(abs(report.loss - loss) <= 1e-5 * loss, "step \(i + 1) loss \(report.loss) vs \(loss)")
                #expect(abs(report.gradientNorm - norm) <= 1e-4 * norm, "step \(i + 1) norm \(report.gradientNorm) vs \(norm)")
                #expect(abs(report.learningRate - lr) <= 1e-12)
                #expect(report.targetTokens == golden["targets"]?.intValue)
            }
            let final = try model.adapter
            var worst: Float = 0
            for key in final.keys {
                guard let ours = final[key], let theirs = expected[key] else { continue }
                worst = max(worst, relativeDifference(ours.a, theirs.a), relativeDifference(ours.b, theirs.b))
            }
            // The adapter moved by ~lr per element per step; differences are float32 rounding.
            #expect(worst <= 1e-4, "worst relative difference of the final adapter \(worst)")
            print("3-step run (recompute \(recompute)): final adapter within \(worst) of PyTorch")
        }
    }

    /// A tiny dataset the model can memorise: the loss falls steadily over 40 steps.
    @Test func lossFallsOnATinyDataset() throws {
        let base = try Self.tinyBase(.nf4())
        var rng = SplitMix64(seed: 11)
        let examples = try (0 ..< 6).map { _ in
            let tokens = [1] + (0 ..< 15).map { _ in 3 + Int(rng.next() % 125) }
            return try TrainingExample(tokens: tokens, lossMask: tokens.indices.map { $0 >= 4 })
        }
        let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(rank: 8, alpha: 16, dropout: 0.05), seed: 3)
        let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: 2)
        let options = TrainingOptions(optimizer: AdamWConfig(learningRate: 3e-3), schedule: .cosine, warmupSteps: 3,
                                      totalSteps: 40, batchSize: 2, gradientAccumulation: 1, maxGradientNorm: 1.0, seed: 5)
        let trainer = try LoRATrainer(model: model, options: options, examples: examples)
        let before = try trainer.evaluate(examples)
        var losses: [Double] = []
        var evaluations: [EvaluationReport] = []
        try trainer.train(evaluation: examples, evaluateEvery: 10) { event in
            switch event {
            case .step(let r): losses.append(r.loss)
            case .evaluation(let e): evaluations.append(e)
            }
        }
        let after = try trainer.evaluate(examples)
        #expect(losses.count == 40)
        #expect(evaluations.map(\.step) == [10, 20, 30, 40])
        #expect(after.loss < 0.6 * before.loss, "loss \(before.loss) → \(after.loss)")
        let firstFive = losses.prefix(5).reduce(0, +) / 5, lastFive = losses.suffix(5).reduce(0, +) / 5
        #expect(lastFive < 0.6 * firstFive)
        #expect(evaluations.map(\.loss) == evaluations.map(\.loss).sorted(by: >))
        print("tiny dataset: eval loss \(before.loss) → \(after.loss); evaluations \(evaluations.map(\.loss))")
    }

    /// Data with prompts, uneven lengths and a count that makes steps straddle epochs.
    static func dataset(count: Int = 5, seed: UInt64 = 21) throws -> [TrainingExample] {
        var rng = SplitMix64(seed: seed)
        return try (0 ..< count).map { i in
            let tokens = [1] + (0 ..< 8 + 3 * i).map { _ in 3 + Int(rng.next() % 125) }
            return try TrainingExample(tokens: tokens, lossMask: tokens.indices.map { $0 >= 2 + i % 3 })
        }
    }

    static let resumeOptions = TrainingOptions(
        optimizer: AdamWConfig(learningRate: 2e-3, weightDecay: 0.01), schedule: .linear, warmupSteps: 2, totalSteps: 9,
        batchSize: 2, gradientAccumulation: 2, maxGradientNorm: 0.5, seed: 77, shuffle: true)

    static func trainer(_ base: FrozenBase, threads: Int = 2, recompute: Bool = false, adapterSeed: UInt64 = 1) throws -> LoRATrainer {
        let lora = LoRAConfig(rank: 4, alpha: 8, dropout: 0.1, targets: ["q_proj", "v_proj", "down_proj", "gate_proj"])
        let adapter = try LoRAWeights(zeroBFor: base.config, lora: lora, seed: adapterSeed)
        let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: threads, recompute: recompute)
        return try LoRATrainer(model: model, options: resumeOptions, examples: try dataset())
    }

    static func flat(_ t: LoRATrainer) throws -> [Float] {
        let a = try t.model.adapter
        return a.keys.flatMap { (a[$0]?.a ?? []) + (a[$0]?.b ?? []) }
    }

    /// Stopping after 4 steps, saving, and resuming into a fresh model reaches bit for bit the
    /// adapter and moments of 9 uninterrupted steps (dropout on, shuffled data, epochs crossed
    /// inside a step). Recomputing activations gives the same bits too.
    @Test func resumeEqualsUninterruptedRun() throws {
        let base = try Self.tinyBase(.nf4())
        let straight = try Self.trainer(base)
        var straightLosses: [Double] = []
        try straight.train { if case .step(let r) = $0 { straightLosses.append(r.loss) } }
        #expect(straight.completedSteps == 9)

        let first = try Self.trainer(base)
        var losses: [Double] = []
        try first.train(steps: 4) { if case .step(let r) = $0 { losses.append(r.loss) } }
        let dir = Fixtures.temporaryDirectory("wconv-finetune-resume") + "/checkpoint-4"
        var extra = false
        try first.saveCheckpoint(to: dir) { tmp in
            extra = true
            #expect(FileSystem.exists(FileSystem.join(tmp, TrainingCheckpoint.stateFileName)))
        }
        #expect(extra)
        // A fresh model with a different initial adapter: the checkpoint must replace it.
        let fresh = try Self.trainer(base, adapterSeed: 999)
        let resumed = try LoRATrainer.resume(from: dir, model: fresh.model, examples: try Self.dataset())
        #expect(resumed.completedSteps == 4)
        #expect(resumed.epoch == first.epoch && resumed.position == first.position)
        try resumed.train { if case .step(let r) = $0 { losses.append(r.loss) } }
        #expect(losses == straightLosses)
        #expect(try Self.flat(resumed) == Self.flat(straight))
        #expect(resumed.optimizer.m == straight.optimizer.m)
        #expect(resumed.optimizer.v == straight.optimizer.v)

        let recomputed = try Self.trainer(base, recompute: true)
        try recomputed.train()
        #expect(try Self.flat(recomputed) == Self.flat(straight))
    }

    @Test func resumeRejectsOtherDataOrModels() throws {
        let base = try Self.tinyBase()
        let t = try Self.trainer(base)
        try t.step()
        let dir = Fixtures.temporaryDirectory("wconv-finetune-resume-bad")
        try t.saveCheckpoint(to: dir)
        let other = try Self.trainer(base)
        #expect(throws: PathError.self) {
            try LoRATrainer.resume(from: dir, model: other.model, examples: try Self.dataset(seed: 22))
        }
        let lora = LoRAConfig(rank: 2, alpha: 8, dropout: 0.1, targets: ["q_proj"])
        let otherModel = try LoRAModel(base: base, config: base.config,
                                       adapter: try LoRAWeights(zeroBFor: base.config, lora: lora, seed: 1))
        #expect(throws: PathError.self) {
            try LoRATrainer.resume(from: dir, model: otherModel, examples: try Self.dataset())
        }
        #expect(throws: PathError.self) {
            try LoRATrainer.resume(from: dir + "/missing", model: other.model, examples: try Self.dataset())
        }
        // A damaged tensor file.
        let tensors = FileSystem.join(dir, TrainingCheckpoint.tensorFileName)
        var bytes = try FileSystem.readFile(tensors)
        bytes.removeLast(100)
        try Data(bytes).write(to: URL(fileURLWithPath: tensors))
        #expect(throws: (any Error).self) {
            try LoRATrainer.resume(from: dir, model: other.model, examples: try Self.dataset())
        }
    }

    /// The same run on 1 and 2 threads gives identical bits.
    @Test func resultsDoNotDependOnTheThreadCount() throws {
        let base = try Self.tinyBase()
        let one = try Self.trainer(base, threads: 1), two = try Self.trainer(base, threads: 2)
        try one.train(steps: 3)
        try two.train(steps: 3)
        #expect(try Self.flat(one) == Self.flat(two))
    }

    @Test func rejectsBadExamples() throws {
        let base = try Self.tinyBase()
        let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(), seed: 1)
        let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: 1)
        let options = TrainingOptions(totalSteps: 1)
        #expect(throws: TrainingError.exampleWithoutTargets(index: 1)) {
            try LoRATrainer(model: model, options: options,
                            examples: [TrainingExample(tokens: [1, 2, 3]), try TrainingExample(tokens: [1, 2], lossMask: [true, false])])
        }
        #expect(throws: TrainingError.tokenOutOfRange(token: 128, vocabularySize: 128)) {
            try LoRATrainer(model: model, options: options, examples: [TrainingExample(tokens: [1, 128])])
        }
        #expect(throws: TrainingError.badSequenceLength(257, maximum: 256)) {
            try LoRATrainer(model: model, options: options, examples: [TrainingExample(tokens: Array(repeating: 5, count: 257))])
        }
        #expect(throws: TrainingError.shapeMismatch(what: "loss mask", expected: 2, actual: 1)) {
            try TrainingExample(tokens: [1, 2], lossMask: [true])
        }
        #expect(throws: TrainingError.noTargets) {
            try model.lossAndGradients(examples: [TrainingExample(tokens: [4])])
        }
    }
}
