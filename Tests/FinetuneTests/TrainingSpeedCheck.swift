import Finetune
import Foundation
import Testing
import TestSupport

/// Seconds per optimizer step on SmolLM2-135M (a speed check, not a timed test). Run with
///
///     WCONV_QLORA_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter TrainingSpeedCheck
///
/// after `bench/prepare_smollm2.py` made `$WCONV_CACHE/bench/SmolLM2-135M-Instruct-f32`
/// (default cache `~/.cache/wconv`). Batch 1 × 128 tokens (all targets), r = 8, alpha 16, all
/// seven projections, dropout 0.05, 2 threads; f32 and NF4 (double-quantized) bases, with and
/// without activation recomputation. Prints the median of 5 steps after 2 warm-up steps.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["WCONV_QLORA_BENCH"] != nil))
struct TrainingSpeedCheck {
    static var smolLM2: String {
        let env = ProcessInfo.processInfo.environment
        let cache = env["WCONV_CACHE"] ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/wconv").path
        return env["WCONV_SMOLLM2_F32"] ?? URL(fileURLWithPath: cache).appendingPathComponent("bench/SmolLM2-135M-Instruct-f32").path
    }

    static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    @Test func secondsPerStep() throws {
        let threads = Int(ProcessInfo.processInfo.environment["WCONV_QLORA_THREADS"] ?? "2") ?? 2
        var rng = SplitMix64(seed: 1)
        let tokens = [1] + (0 ..< 127).map { _ in 2 + Int(rng.next() % 49_000) }
        let example = TrainingExample(tokens: tokens)
        // WCONV_QLORA_STORAGE=f32|nf4 runs one base only (so the peak RSS printed is that base's).
        let only = ProcessInfo.processInfo.environment["WCONV_QLORA_STORAGE"]
        let storages: [FrozenBase.Storage] = only == "f32" ? [.float32] : only == "nf4" ? [.nf4()] : [.float32, .nf4()]
        for storage in storages {
            let loadStart = Date()
            let base = try FrozenBase.load(modelDirectory: Self.smolLM2, storage: storage, threadCount: threads)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            for recompute in [false, true] {
                let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(rank: 8, alpha: 16, dropout: 0.05), seed: 1)
                let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: threads, recompute: recompute)
                let trainer = try LoRATrainer(model: model, options: TrainingOptions(optimizer: AdamWConfig(learningRate: 1e-4),
                                                                                     totalSteps: 100), examples: [example])
                var times: [Double] = []
                var loss = 0.0
                for i in 0 ..< 7 {
                    let r = try trainer.step()
                    if i >= 2 { times.append(r.seconds) }
                    loss = r.loss
                }
                times.sort()
                print(String(format: "SmolLM2-135M %@ base (load %.2f s, weights %.0f MB), recompute %@: %.3f s/step (median of 5, min %.3f), %d threads, loss %.3f, peak RSS so far %.0f MB",
                             "\(storage)", loadSeconds, Double(base.byteCount) / 1e6, "\(recompute)", times[2], times[0], threads,
                             loss, Self.peakRSSMegabytes()))
            }
        }
    }

    /// On SmolLM2's matrix sizes (where OpenBLAS splits products across threads) the adapter
    /// after three steps is the same, bit for bit, with 1 and 2 threads, with and without
    /// recomputation, on both bases.
    @Test func resultsDoNotDependOnTheThreadCount() throws {
        var rng = SplitMix64(seed: 2)
        let examples = (0 ..< 2).map { _ in TrainingExample(tokens: [1] + (0 ..< 95).map { _ in 2 + Int(rng.next() % 49_000) }) }
        for storage in [FrozenBase.Storage.float32, .nf4()] {
            let base = try FrozenBase.load(modelDirectory: Self.smolLM2, storage: storage, threadCount: 2)
            var results: [[Float]] = []
            for (threads, recompute) in [(1, false), (2, false), (2, true)] {
                let adapter = try LoRAWeights(zeroBFor: base.config, lora: LoRAConfig(rank: 8, alpha: 16, dropout: 0.05), seed: 1)
                let model = try LoRAModel(base: base, config: base.config, adapter: adapter, threadCount: threads, recompute: recompute)
                let trainer = try LoRATrainer(model: model, options: TrainingOptions(optimizer: AdamWConfig(learningRate: 1e-3),
                                                                                     totalSteps: 3, batchSize: 2), examples: examples)
                try trainer.train()
                let a = try model.adapter
                results.append(a.keys.flatMap { (a[$0]?.a ?? []) + (a[$0]?.b ?? []) })
            }
            #expect(results[0] == results[1], "\(storage): 1 vs 2 threads")
            #expect(results[1] == results[2], "\(storage): recompute")
            print("SmolLM2 \(storage): 1 thread == 2 threads: \(results[0] == results[1]); recompute identical: \(results[1] == results[2])")
        }
    }
}
