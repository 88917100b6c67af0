@testable import Finetune
import Testing
import TestSupport
import TensorCore
import Verify

/// Training runs LLaMA's block with Qwen2's frozen q/k/v biases and Mistral's sliding window
/// (GoldenStepTests compares one step of each with PyTorch + PEFT).
@Suite struct FamilyTrainingTests {
    @Test func qwen2LoadsItsBiases() throws {
        let base = try FrozenBase.load(modelDirectory: Fixtures.path("families/qwen2"), storage: .float32)
        #expect(base.config.attentionBias)
        #expect(base.layers.allSatisfy { $0.attentionBiases.count == 3 && $0.attentionBiases.allSatisfy { b in b.contains { $0 != 0 } } })
    }

    /// The training forward pass gives Verify's logits (transformers' to 1e-4, FamilyForwardTests) for
    /// Qwen2 (biases) and Mistral on a sequence three times its window.
    @Test(arguments: ["qwen2", "mistral"])
    func trainingForwardEqualsInference(family: String) throws {
        let base = try FrozenBase.load(modelDirectory: Fixtures.path("families/\(family)"), storage: .float32)
        let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(), seed: 1)
        let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: 2)
        let tokens = (0 ..< 24).map { ($0 * 37 + 5) % base.config.vocabularySize }
        let training = try model.logits(tokens: tokens)
        let inference = try LlamaModel(config: base.config, weights: base, threadCount: 2).logits(for: tokens)
        #expect(maxAbsDifference(training, inference) <= 1e-4, "\(family)")
        if family == "mistral" {
            #expect(base.config.slidingWindow == 8)
            _ = try model.loss(examples: [TrainingExample(tokens: tokens)])
        }
    }
}
