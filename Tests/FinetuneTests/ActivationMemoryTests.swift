@testable import Finetune
import Testing
import TestSupport
import Verify

/// What the passes keep in memory: per-layer activations without recomputation, one reused set
/// with it, and scratch that grows linearly with the sequence length.
@Suite struct ActivationMemoryTests {
    @Test func recomputationKeepsOneLayerOfActivations() throws {
        let base = try FrozenBase.load(modelDirectory: Fixtures.path("tiny-llama-spm"), storage: .nf4())
        let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(dropout: 0.1), seed: 1)
        let example = TrainingExample(tokens: Array(repeating: 5, count: 200))
        for recompute in [false, true] {
            let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: 2, recompute: recompute)
            _ = try model.lossAndGradients(examples: [example], dropoutSeed: 3)
            let work = try #require(Mirror(reflecting: model).descendant("work") as? Workspace)
            #expect(work.activations.count == (recompute ? 1 : base.config.layerCount))
            // Per head (heads run in parallel): two score matrices of at most 128 query rows × 200
            // keys, not 200 × 200, and the head's dK, dV contributions (200 × head dimension each).
            let c = base.config
            #expect(work.scores.capacity == c.headCount * (2 * AttentionBackward.blockRows * 200 + 2 * 200 * c.headDimension))
        }
    }
}
