import Finetune
import Formats
import TensorCore
import Testing
import TestSupport

/// AdamW, gradient clipping and learning-rate schedules against torch / transformers.
@Suite struct OptimizerTests {
    static func doubles(_ v: JSONValue?) -> [Double] { v?.arrayValue?.compactMap(\.doubleValue) ?? [] }

    @Test func schedulesMatchTransformers() throws {
        let json = try QLoRAGolden.json()
        guard let s = json["schedules"]?.objectValue, let steps = s["steps"]?.objectValue else {
            throw Failure(.malformedInput, "no schedules golden")
        }
        let cases: [(String, LearningRateSchedule)] = [
            ("constant", LearningRateSchedule(kind: .constant, peak: 2e-4, warmupSteps: 3, totalSteps: 20)),
            ("linear", LearningRateSchedule(kind: .linear, peak: 2e-4, warmupSteps: 3, totalSteps: 17)),
            ("cosine", LearningRateSchedule(kind: .cosine, peak: 2e-4, warmupSteps: 3, totalSteps: 17)),
            ("cosine_no_warmup", LearningRateSchedule(kind: .cosine, peak: 2e-4, warmupSteps: 0, totalSteps: 20)),
        ]
        for (name, schedule) in cases {
            let expected = Self.doubles(steps[name])
            #expect(expected.count == 20)
            for (i, lr) in expected.enumerated() {
                let ours = schedule.learningRate(afterSteps: i)
                #expect(abs(ours - lr) <= 1e-15 * 2e-4, "\(name) step \(i): \(ours) vs \(lr)")
            }
        }
    }

    @Test func adamWAndClippingMatchTorch() throws {
        let json = try QLoRAGolden.json()
        guard let g = json["adamw"]?.objectValue else { throw Failure(.malformedInput, "no adamw golden") }
        let betas = Self.doubles(g["betas"])
        let config = AdamWConfig(learningRate: try #require(g["lr"]?.doubleValue), beta1: betas[0], beta2: betas[1],
                                 epsilon: try #require(g["eps"]?.doubleValue), weightDecay: try #require(g["weight_decay"]?.doubleValue))
        var parameters = Self.doubles(g["init"]).map { Float($0) }
        var adam = AdamW(config: config, parameterCount: parameters.count)
        let norms = Self.doubles(g["norms"])
        for (step, gradients) in (g["grads"]?.arrayValue ?? []).enumerated() {
            var grad = Self.doubles(gradients).map { Float($0) }
            let norm = grad.withUnsafeMutableBufferPointer { GradientClipping.clip($0.baseAddress!, count: $0.count, maxNorm: 1.0) }
            #expect(abs(norm - norms[step]) <= 1e-6 * norms[step], "step \(step + 1) norm \(norm) vs \(norms[step])")
            parameters.withUnsafeMutableBufferPointer { p in
                grad.withUnsafeBufferPointer { adam.update(p.baseAddress!, gradients: $0.baseAddress!, learningRate: config.learningRate) }
            }
        }
        #expect(adam.step == 5)
        let final = Self.doubles(g["final"]).map { Float($0) }
        let m = Self.doubles(g["exp_avg"]).map { Float($0) }, v = Self.doubles(g["exp_avg_sq"]).map { Float($0) }
        // torch's vectorized lerp/addcmul may fuse multiply-adds; a few ulps are allowed.
        #expect(maxAbsDifference(parameters, final) <= 4e-7 * maxAbs(final), "parameters \(maxAbsDifference(parameters, final))")
        #expect(maxAbsDifference(adam.m, m) <= 1e-6 * maxAbs(m))
        #expect(maxAbsDifference(adam.v, v) <= 1e-6 * maxAbs(v))
    }

    @Test func clippingLeavesSmallGradientsAlone() {
        var g: [Float] = [0.3, -0.4]   // norm 0.5
        let norm = g.withUnsafeMutableBufferPointer { GradientClipping.clip($0.baseAddress!, count: 2, maxNorm: 1) }
        #expect(abs(norm - 0.5) < 1e-7)
        #expect(g == [0.3, -0.4])
        let clipped = g.withUnsafeMutableBufferPointer { p -> [Float] in
            GradientClipping.clip(p.baseAddress!, count: 2, maxNorm: 0.25)
            return Array(p)
        }
        #expect(abs(GradientClipping.norm(clipped, count: 2) - 0.25) < 1e-6)
    }

    @Test func rejectsBadHyperparameters() {
        #expect(throws: TrainingError.self) { try AdamWConfig(learningRate: -1).validate() }
        #expect(throws: TrainingError.self) { try AdamWConfig(beta1: 1).validate() }
        #expect(throws: TrainingError.self) { try LearningRateSchedule(peak: 1, totalSteps: 0).validate() }
        #expect(throws: TrainingError.self) { try TrainingOptions(totalSteps: 10, batchSize: 0).validate() }
        #expect(throws: TrainingError.unknownTarget("qkv_proj")) { try LoRAConfig(targets: ["qkv_proj"]).validate() }
        #expect(throws: TrainingError.self) { try LoRAConfig(dropout: 1).validate() }
        #expect(throws: TrainingError.self) { try LoRAConfig(rank: 0).validate() }
    }
}

extension GradientClipping {
    static func norm(_ g: [Float], count: Int) -> Double {
        g.withUnsafeBufferPointer { norm($0.baseAddress!, count: count) }
    }
}
