@testable import Finetune
import Testing
import TestSupport
import TensorCore
import Verify

/// Training runs LLaMA's block: Qwen2's q/k/v biases are refused, and Mistral is trained only on
/// sequences that fit in its sliding window (where full causal attention is its computation).
@Suite struct FamilyTrainingTests {
    @Test func qwen2BiasesAreRefused() throws {
        #expect(throws: PathError.self) {
            try FrozenBase.load(modelDirectory: Fixtures.path("families/qwen2"), storage: .float32)
        }
    }

    @Test func mistralSequencesMustFitTheWindow() throws {
        let base = try FrozenBase.load(modelDirectory: Fixtures.path("families/mistral"), storage: .float32)
        #expect(base.config.slidingWindow == 8)
        let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(), seed: 1)
        let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: 2)
        _ = try model.loss(examples: [TrainingExample(tokens: Array(repeating: 5, count: 8))])
        #expect(throws: TrainingError.badSequenceLength(9, maximum: 8)) {
            try model.loss(examples: [TrainingExample(tokens: Array(repeating: 5, count: 9))])
        }
    }
}
