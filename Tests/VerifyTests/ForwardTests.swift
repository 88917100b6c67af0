import Testing
import TensorCore
import TestSupport
import Verify

@Suite struct ForwardTests {
    @Test func tinyLlamaLogitsMatchTransformers() throws {
        let (config, weights) = try TinyLlama.weights()
        let model = try LlamaModel(config: config, weights: weights, threadCount: 2)
        let logits = try model.logits(for: TinyLlama.tokens)
        let reference = try TinyLlama.referenceLogits()
        #expect(reference.shape == [8, 128])
        let expected = reference.floats()
        let tolerance = 1e-4 * valueRange(expected)
        let worst = maxAbsDifference(logits, expected)
        #expect(worst <= tolerance, "max |Δlogit| \(worst) > \(tolerance)")
        let argmax = (0 ..< 8).map { LogitMetrics.argmax(logits[$0 * 128 ..< ($0 + 1) * 128]) }
        #expect(argmax == TinyLlama.argmax)
    }

    @Test func tinyLlamaHiddenStatesMatchTransformers() throws {
        let (config, weights) = try TinyLlama.weights()
        let model = try LlamaModel(config: config, weights: weights, threadCount: 1)
        let cache = try model.makeCache(capacity: 8)
        let result = try model.forward(tokens: TinyLlama.tokens, startPosition: 0, cache: cache,
                                       options: ForwardOptions(captureHiddenStates: true))
        let hidden = try #require(result.hiddenStates)
        let reference = try TinyLlama.referenceHiddenStates()
        #expect(reference.shape == [3, 8, 128])
        let r = reference.floats(), n = 8 * 128
        let stages = hidden.transformersOrder
        #expect(stages.count == 3)
        // Embeddings are a plain lookup of exactly upcast bf16: identical bits.
        #expect(stages[0] == Array(r[0 ..< n]))
        for (i, stage) in stages.enumerated().dropFirst() {
            let expected = Array(r[i * n ..< (i + 1) * n])
            let diff = stage.withUnsafeBufferPointer { a in
                expected.withUnsafeBufferPointer { b in TensorDifference(reference: b, candidate: a) }
            }
            #expect(diff.maxAbsDifference <= 1e-5 * Double(valueRange(expected)), "stage \(i): \(diff)")
            #expect(diff.cosine > 0.999_999, "stage \(i): \(diff)")
        }
        // The raw residual after the last layer, normed by model.norm, is the final stage.
        #expect(hidden.afterLayer.count == 2)
        // Logits are the final-normed states through lm_head.
        let head = try weights.outputHead()
        let viaHead = Matmul.projectReference(hidden.finalNormed, rows: 8, weight: head, outFeatures: 128)
        #expect(maxAbsDifference(viaHead, result.logits) <= 1e-4)
    }

    @Test func incrementalDecodingMatchesBatch() throws {
        let (config, weights) = try TinyLlama.weights()
        let model = try LlamaModel(config: config, weights: weights, threadCount: 2)
        let batch = try model.logits(for: TinyLlama.tokens)
        let cache = try model.makeCache(capacity: 16)
        var incremental: [Float] = []
        for (position, token) in TinyLlama.tokens.enumerated() {
            let step = try model.forward(tokens: [token], startPosition: position, cache: cache)
            #expect(step.rowCount == 1)
            incremental += step.logits
        }
        #expect(cache.count == 8)
        #expect(maxAbsDifference(incremental, batch) <= 1e-5 * valueRange(batch))

        // Prompt in two uneven chunks, asking only for the last row.
        cache.reset()
        _ = try model.forward(tokens: Array(TinyLlama.tokens[0 ..< 3]), startPosition: 0, cache: cache,
                              options: ForwardOptions(logits: .none))
        let tail = try model.forward(tokens: Array(TinyLlama.tokens[3...]), startPosition: 3, cache: cache,
                                     options: ForwardOptions(logits: .last))
        #expect(tail.firstRow == 4 && tail.rowCount == 1)
        #expect(maxAbsDifference(tail.logits, batch[7 * 128 ..< 8 * 128]) <= 1e-5 * valueRange(batch))

        // Rewinding: evaluating again from position 5 discards the later cache rows.
        let again = try model.forward(tokens: Array(TinyLlama.tokens[5...]), startPosition: 5, cache: cache)
        #expect(maxAbsDifference(again.logits, batch[5 * 128 ..< 8 * 128]) <= 1e-5 * valueRange(batch))
    }

    @Test func greedyContinuationFollowsArgmax() throws {
        let (config, weights) = try TinyLlama.weights()
        let model = try LlamaModel(config: config, weights: weights, threadCount: 1, keepLayersResident: true)
        let cache = try model.makeCache(capacity: 32)
        let generated = try model.greedyContinuation(prompt: [1, 5, 17], count: 6, cache: cache)
        #expect(generated.count == 6)
        #expect(cache.count == 3 + 5)
        // Each generated token is the argmax of a full recomputation over the sequence so far.
        var sequence = [1, 5, 17]
        for token in generated {
            let logits = try model.logits(for: sequence)
            #expect(LogitMetrics.argmax(logits[(sequence.count - 1) * 128 ..< sequence.count * 128]) == token)
            sequence.append(token)
        }
    }

    @Test(arguments: [1, 2, 3])
    func resultsDoNotDependOnThreadsOrResidency(threads: Int) throws {
        let (config, weights) = try TinyLlama.weights()
        let baseline = try LlamaModel(config: config, weights: weights, threadCount: 1).logits(for: TinyLlama.tokens)
        let model = try LlamaModel(config: config, weights: weights, threadCount: threads, keepLayersResident: threads == 2)
        let first = try model.logits(for: TinyLlama.tokens)
        let second = try model.logits(for: TinyLlama.tokens)   // buffers reused
        #expect(first == second)
        #expect(maxAbsDifference(first, baseline) <= 1e-5 * valueRange(baseline))
    }

    /// A model with odd sizes (3 query heads per kv head, ffn not a multiple of 8, tied
    /// embeddings, llama3 RoPE) against a forward pass built only from the scalar references.
    @Test func matchesScalarReferenceOnRandomModel() throws {
        let config = LlamaConfig(
            vocabularySize: 37, hiddenSize: 48, intermediateSize: 70, layerCount: 3, headCount: 6, kvHeadCount: 2,
            headDimension: 10, rmsNormEpsilon: 1e-5, ropeTheta: 500_000,
            ropeScaling: .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContextLength: 16),
            tiedEmbeddings: true, maxPositions: 64)
        let weights = try RandomModel.make(config: config, seed: 7)
        let tokens = [0, 36, 5, 5, 12, 30, 1, 8, 19, 2, 33]
        let model = try LlamaModel(config: config, weights: weights, threadCount: 2)
        let fast = try model.logits(for: tokens)
        let reference = RandomModel.referenceForward(weights: weights, tokens: tokens)
        #expect(maxAbsDifference(fast, reference) <= 2e-5 * valueRange(reference))
    }

    /// Wide enough that the products are split over the workers and attention takes the
    /// batched path with heads spread over them; the result must not depend on the split.
    @Test(arguments: [1, 2, 3])
    func splitProductsMatchScalarReference(threads: Int) throws {
        let config = LlamaConfig(
            vocabularySize: 300, hiddenSize: 128, intermediateSize: 384, layerCount: 2, headCount: 4, kvHeadCount: 2,
            headDimension: 32, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, ropeScaling: .none,
            tiedEmbeddings: false, maxPositions: 64)
        let weights = try RandomModel.make(config: config, seed: 11)
        var rng = SplitMix64(seed: 12)
        let tokens = (0 ..< 48).map { _ in Int(rng.next() % 300) }   // ≥ 2M multiply-adds: split in two
        let model = try LlamaModel(config: config, weights: weights, threadCount: threads)
        let fast = try model.logits(for: tokens)
        let reference = RandomModel.referenceForward(weights: weights, tokens: tokens)
        #expect(maxAbsDifference(fast, reference) <= 2e-5 * valueRange(reference))
    }

    /// `.rows` computes exactly the asked rows of `.all`; a result held across the next call
    /// keeps its values although the model reuses its logits buffer.
    @Test func logitRowsAndReusedBuffer() throws {
        let (config, weights) = try TinyLlama.weights()
        let model = try LlamaModel(config: config, weights: weights, threadCount: 2)
        let cache = try model.makeCache(capacity: 8)
        let all = try model.forward(tokens: TinyLlama.tokens, startPosition: 0, cache: cache)
        let kept = all.logits
        let some = try model.forward(tokens: TinyLlama.tokens, startPosition: 0, cache: cache,
                                     options: ForwardOptions(logits: .rows(4 ..< 7)))
        #expect(some.firstRow == 4 && some.rowCount == 3 && some.logits.count == 3 * 128)
        #expect(some.logits == Array(kept[4 * 128 ..< 7 * 128]))
        #expect(all.logits == kept)
        let none = try model.forward(tokens: TinyLlama.tokens, startPosition: 0, cache: cache,
                                     options: ForwardOptions(logits: .rows(3 ..< 3)))
        #expect(none.rowCount == 0 && none.logits.isEmpty)
        #expect(some.logits == Array(kept[4 * 128 ..< 7 * 128]))
        #expect(throws: VerifyError.self) {
            try model.forward(tokens: TinyLlama.tokens, startPosition: 0, cache: cache, options: ForwardOptions(logits: .rows(6 ..< 9)))
        }
    }

    /// Streaming reads every layer once per call and the embedding matrix once; resident
    /// weights are read on the first call only.
    @Test func streamsLayersFromTheSource() throws {
        let config = try TinyLlama.config()
        let all = try TinyLlama.tensors()
        for resident in [false, true] {
            let reads = Counter()
            let source = DenseTensorProvider(config: config) { name in
                reads.names.append(name)
                guard let t = all[name] else { throw VerifyError.missingTensor(name) }
                return t
            }
            let model = try LlamaModel(config: config, weights: source, threadCount: 1, keepLayersResident: resident)
            _ = try model.logits(for: TinyLlama.tokens)
            #expect(reads.names.count == 1 + 2 * 9 + 2)   // embeddings, 2 layers × 9, norm, lm_head
            #expect(Set(reads.names) == Set(all.keys))
            reads.names.removeAll()
            _ = try model.logits(for: TinyLlama.tokens)
            #expect(reads.names.count == (resident ? 0 : 2 * 9))
        }
    }

    @Test func rejectsBadCalls() throws {
        let (config, weights) = try TinyLlama.weights()
        let model = try LlamaModel(config: config, weights: weights, threadCount: 1)
        let cache = try model.makeCache(capacity: 4)
        #expect(throws: VerifyError.tokenOutOfRange(token: 128, vocabularySize: 128)) {
            try model.forward(tokens: [1, 128], startPosition: 0, cache: cache)
        }
        #expect(throws: VerifyError.tokenOutOfRange(token: -1, vocabularySize: 128)) {
            try model.forward(tokens: [-1], startPosition: 0, cache: cache)
        }
        #expect(throws: VerifyError.contextOverflow(needed: 5, capacity: 4)) {
            try model.forward(tokens: [1, 2, 3, 4, 5], startPosition: 0, cache: cache)
        }
        #expect(throws: VerifyError.startBeyondCache(startPosition: 2, cached: 0)) {
            try model.forward(tokens: [1], startPosition: 2, cache: cache)
        }
        #expect(throws: VerifyError.emptyInput) { try model.forward(tokens: [], startPosition: 0, cache: cache) }
        #expect(throws: VerifyError.self) { try model.makeCache(capacity: 0) }
        #expect(throws: VerifyError.self) { try model.makeCache(capacity: Int.max / 2) }
    }

    @Test func reportsWrongTensorSizesByName() throws {
        let config = try TinyLlama.config()
        let all = try TinyLlama.tensors()
        let broken = DenseTensorProvider(config: config) { name in
            if name == "model.layers.1.self_attn.k_proj.weight" { return [Float](repeating: 0, count: 10) }
            guard let t = all[name] else { throw VerifyError.missingTensor(name) }
            return t
        }
        let model = try LlamaModel(config: config, weights: broken, threadCount: 1)
        #expect(throws: VerifyError.tensorSize(name: "model.layers.1.self_attn.k_proj.weight", expected: 64 * 128, actual: 10)) {
            try model.logits(for: [1, 2])
        }
    }
}

final class Counter: @unchecked Sendable {
    var names: [String] = []
}

/// Seeded random weights and a forward pass assembled from the scalar reference kernels only.
enum RandomModel {
    static func make(config c: LlamaConfig, seed: UInt64) throws -> InMemoryLlamaWeights {
        var rng = SplitMix64(seed: seed)
        func random(_ count: Int, scale: Float) -> [Float] { (0 ..< count).map { _ in rng.nextFloat() * scale } }
        func norm(_ count: Int) -> [Float] { (0 ..< count).map { _ in 1 + 0.2 * rng.nextFloat() } }
        let d = c.hiddenSize
        let layers = (0 ..< c.layerCount).map { _ in
            LlamaLayerWeights(
                attentionNorm: norm(d), query: random(c.queryDimension * d, scale: 0.3),
                key: random(c.kvDimension * d, scale: 0.3), value: random(c.kvDimension * d, scale: 0.3),
                output: random(d * c.queryDimension, scale: 0.2), feedForwardNorm: norm(d),
                gate: random(c.intermediateSize * d, scale: 0.2), up: random(c.intermediateSize * d, scale: 0.2),
                down: random(d * c.intermediateSize, scale: 0.2))
        }
        return try InMemoryLlamaWeights(
            config: c, embedding: random(c.vocabularySize * d, scale: 1), layers: layers, norm: norm(d),
            head: c.tiedEmbeddings ? nil : random(c.vocabularySize * d, scale: 0.2))
    }

    static func referenceForward(weights w: InMemoryLlamaWeights, tokens: [Int]) -> [Float] {
        let c = w.config, d = c.hiddenSize, T = tokens.count, hd = c.headDimension
        let eps = Float(c.rmsNormEpsilon)
        let inv = RoPE.inverseFrequencies(headDimension: hd, theta: c.ropeTheta, scaling: c.ropeScaling)
        var x = tokens.flatMap { w.embedding[$0 * d ..< ($0 + 1) * d] }
        func normRows(_ x: [Float], _ weight: [Float]) -> [Float] {
            (0 ..< T).flatMap { RMSNorm.reference(Array(x[$0 * d ..< ($0 + 1) * d]), weight: weight, epsilon: eps) }
        }
        func rope(_ m: [Float], heads: Int) -> [Float] {
            var out: [Float] = []
            for t in 0 ..< T {
                for h in 0 ..< heads {
                    let start = (t * heads + h) * hd
                    out += RoPE.reference(Array(m[start ..< start + hd]), position: t, inverseFrequencies: inv)
                }
            }
            return out
        }
        for layer in w.layers {
            let xb = normRows(x, layer.attentionNorm)
            let q = rope(Matmul.projectReference(xb, rows: T, weight: layer.query, outFeatures: c.queryDimension), heads: c.headCount)
            let k = rope(Matmul.projectReference(xb, rows: T, weight: layer.key, outFeatures: c.kvDimension), heads: c.kvHeadCount)
            let v = Matmul.projectReference(xb, rows: T, weight: layer.value, outFeatures: c.kvDimension)
            let att = Attention.reference(queries: q, keys: k, values: v, startPosition: 0,
                                          heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: hd)
            let o = Matmul.projectReference(att, rows: T, weight: layer.output, outFeatures: d)
            x = zip(x, o).map { $0 + $1 }
            let xb2 = normRows(x, layer.feedForwardNorm)
            let g = Matmul.projectReference(xb2, rows: T, weight: layer.gate, outFeatures: c.intermediateSize)
            let u = Matmul.projectReference(xb2, rows: T, weight: layer.up, outFeatures: c.intermediateSize)
            let m = Matmul.projectReference(SwiGLU.reference(gate: g, up: u), rows: T, weight: layer.down, outFeatures: d)
            x = zip(x, m).map { $0 + $1 }
        }
        let final = normRows(x, w.norm)
        return Matmul.projectReference(final, rows: T, weight: w.head ?? w.embedding, outFeatures: c.vocabularySize)
    }
}
