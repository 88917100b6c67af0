import TensorCore

/// What a forward call returns besides updating the cache.
public struct ForwardOptions: Sendable, Hashable {
    /// Which positions get logits.
    public enum LogitRows: Sendable, Hashable {
        /// Every input position (prompt scoring, `verify`).
        case all
        /// Only the last position (generation).
        case last
        /// None: fill the cache only.
        case none
        /// The positions in this range of the call's tokens (`verify` scores only the second
        /// half of each chunk, so the output head — the largest product — runs on half the rows).
        case rows(Range<Int>)
    }

    public var logits: LogitRows
    /// Keep a copy of the residual stream after the embeddings and after every layer.
    public var captureHiddenStates: Bool

    public init(logits: LogitRows = .all, captureHiddenStates: Bool = false) {
        self.logits = logits
        self.captureHiddenStates = captureHiddenStates
    }
}

/// The residual stream at each stage of one forward call, for per-layer comparison.
public struct HiddenStates: Sendable {
    public var tokenCount: Int
    public var width: Int
    /// Token embeddings — `[T, dim]`.
    public var embeddings: [Float]
    /// Residual stream after decoder layer `i` — `layerCount × [T, dim]`.
    public var afterLayer: [[Float]]
    /// `model.norm` of the last layer's output — `[T, dim]`.
    public var finalNormed: [Float]

    public init(tokenCount: Int, width: Int, embeddings: [Float], afterLayer: [[Float]], finalNormed: [Float]) {
        self.tokenCount = tokenCount
        self.width = width
        self.embeddings = embeddings
        self.afterLayer = afterLayer
        self.finalNormed = finalNormed
    }

    /// The stages in transformers' `output_hidden_states` order: embeddings, after layers
    /// `0 ..< L-1`, then the final-normed output in place of the raw last layer (transformers
    /// 5 applies `model.norm` before recording the last entry).
    public var transformersOrder: [[Float]] {
        [embeddings] + afterLayer.dropLast() + [finalNormed]
    }
}

/// Logits of one forward call.
public struct ForwardResult: Sendable {
    /// `[rowCount, vocab]` row-major.
    public var logits: [Float]
    /// Number of logit rows.
    public var rowCount: Int
    /// Index (within the call's tokens) of the first logit row: 0 for `.all`, T−1 for `.last`,
    /// the range's start for `.rows`.
    public var firstRow: Int
    public var vocabularySize: Int
    public var hiddenStates: HiddenStates?

    /// The logits of row `i` (0-based within ``logits``).
    public func row(_ i: Int) -> ArraySlice<Float> {
        logits[i * vocabularySize ..< (i + 1) * vocabularySize]
    }
}

/// A decoder evaluated in float32, laid out like llama2.c's `forward`: embeddings, then per
/// layer norm → q/k/v → RoPE → causal GQA → o_proj + residual → norm → MLP + residual, then
/// the final norm and the output head.
///
/// The block is ``LlamaConfig/block``: LLaMA's (RMSNorm, SwiGLU, rotary), or any variant a
/// ``BlockDescription`` states — LayerNorm with or without bias, GELU/ReLU/ReLU² MLPs, learned
/// positions, ALiBi, partial rotary, QK-layernorm, parallel attention + MLP, biases on any
/// projection. One pass runs them all; LLaMA's block takes exactly the steps it always took.
///
/// Batched: all `T` tokens of a call go through each projection as one `sgemm`. Weights come
/// from a ``LlamaWeightSource`` one layer at a time into a reused buffer (or are kept after the
/// first call with `keepLayersResident`). Activation buffers are allocated once and grow to the
/// largest batch; nothing is allocated per token. The logits array is reused too: a result
/// released before the next call costs no allocation (one still held is copied on write, as any
/// Swift array). Not thread-safe: one forward call at a time.
public final class LlamaModel {
    public let config: LlamaConfig
    /// Worker threads: each product is split over them (OpenBLAS itself is set to one thread
    /// during a forward call), and so are attention heads and the element-wise steps.
    public var threadCount: Int
    /// `inv_freq` of RoPE — `[rotary dims / 2]` (computed over the head size without rotary).
    public let inverseFrequencies: [Float]
    /// ALiBi's per-head slopes, for blocks with ALiBi positions.
    public let alibiSlopes: [Float]?

    private let weights: any LlamaWeightSource
    private let keepLayersResident: Bool
    private var layerBuffer: LlamaLayerWeights
    private var residentLayers: [LlamaLayerWeights] = []
    private var headWeights: LlamaHeadWeights
    private let state: RunState
    /// The logits of the last call, handed out as ``ForwardResult/logits`` and overwritten by the
    /// next call (`[rows, vocab]`; 100 MB for 512 rows of a 49k vocabulary, which allocating and
    /// zeroing per call spent most of `verify`'s system time on).
    private var logitsBuffer: [Float] = []

    /// - Parameters:
    ///   - config: the model shape (validated here).
    ///   - weights: where float32 weights come from.
    ///   - threadCount: threads for BLAS and attention (nil: all online cores).
    ///   - keepLayersResident: keep every layer in float32 after first use (faster token-by-token
    ///     generation, memory of the whole model); otherwise each call streams the layers.
    public init(
        config: LlamaConfig, weights: any LlamaWeightSource,
        threadCount: Int? = nil, keepLayersResident: Bool = false
    ) throws {
        try config.validate()
        self.config = config
        self.weights = weights
        self.threadCount = max(1, threadCount ?? activeProcessorCount)
        self.keepLayersResident = keepLayersResident
        layerBuffer = LlamaLayerWeights(config: config)
        headWeights = LlamaHeadWeights(config: config)
        state = RunState(config: config)
        inverseFrequencies = RoPE.inverseFrequencies(
            headDimension: config.block.rotaryDimensions ?? config.headDimension, theta: config.ropeTheta,
            scaling: config.ropeScaling)
        if case .alibi(let maxBias) = config.block.positions {
            alibiSlopes = ALiBi.slopes(heads: config.headCount, maxBias: maxBias)
        } else {
            alibiSlopes = nil
        }
    }

    /// An empty cache for `capacity` positions. (No default: `max_position_embeddings` is
    /// 131072 for Llama 3.1, whose cache would take 34 GB.)
    public func makeCache(capacity: Int) throws -> KVCache {
        try KVCache(config: config, capacity: capacity)
    }

    /// Evaluates `tokens` at positions `startPosition ..< startPosition + T`.
    ///
    /// The cache must hold at least `startPosition` positions; anything it holds beyond is
    /// discarded first. On return it holds `startPosition + T` positions, so the next call can
    /// continue at `startPosition + T`. Feeding a prompt token by token gives the same logits
    /// as one batch (up to summation order inside BLAS).
    /// - Returns: logits for the rows chosen by `options.logits`, plus hidden states if asked.
    /// - Throws: ``VerifyError`` for bad tokens or positions; whatever the weight source throws.
    public func forward(
        tokens: [Int], startPosition: Int, cache: KVCache, options: ForwardOptions = ForwardOptions()
    ) throws -> ForwardResult {
        let c = config
        let T = tokens.count, start = startPosition
        let dim = c.hiddenSize, qDim = c.queryDimension, kvDim = c.kvDimension, ffn = c.intermediateSize
        let hd = c.headDimension, block = c.block
        guard T > 0 else { throw VerifyError.emptyInput }
        guard start >= 0, start <= cache.count else {
            throw VerifyError.startBeyondCache(startPosition: start, cached: cache.count)
        }
        guard start + T <= cache.capacity else { throw VerifyError.contextOverflow(needed: start + T, capacity: cache.capacity) }
        guard cache.layerCount == c.layerCount, cache.rowWidth == kvDim else {
            throw VerifyError.badConfigValue(key: "cache", reason: "made for a different model shape")
        }
        for token in tokens where token < 0 || token >= c.vocabularySize {
            throw VerifyError.tokenOutOfRange(token: token, vocabularySize: c.vocabularySize)
        }
        cache.truncate(to: start)
        // Our workers split every product and call BLAS themselves: OpenBLAS's own pool would
        // otherwise spin (sched_yield) between calls while these workers run the element-wise
        // steps, two pools on the same cores. The caller's setting is restored on return.
        let blasThreads = Matmul.threadCount
        Matmul.setThreadCount(1)
        defer { Matmul.setThreadCount(blasThreads) }
        let s = state
        s.reserve(rows: T, context: start + T, threads: threadCount)
        let rotary = block.rotaryDimensions
        if rotary != nil {
            RoPE.fillTables(inverseFrequencies: inverseFrequencies, positions: start ..< start + T, cos: s.cos, sin: s.sin)
        }

        // 1. Token embeddings: x[t] = E[token t] (+ P[start + t + offset] with learned positions).
        for (t, token) in tokens.enumerated() {
            try weights.embeddingRow(token, into: UnsafeMutableBufferPointer(start: s.x + t * dim, count: dim))
        }
        if case .learned(let offset) = block.positions {
            guard start + T <= c.maxPositions else { throw VerifyError.contextOverflow(needed: start + T, capacity: c.maxPositions) }
            for t in 0 ..< T {
                let row = UnsafeMutableBufferPointer(start: s.xb + t * dim, count: dim)
                try weights.positionEmbeddingRow(start + t + offset, into: row)
                for i in 0 ..< dim { s.x[t * dim + i] += row[i] }
            }
        }
        var hidden: HiddenStates? = nil
        if options.captureHiddenStates {
            hidden = HiddenStates(tokenCount: T, width: dim, embeddings: s.copy(s.x, count: T * dim),
                                  afterLayer: [], finalNormed: [])
        }

        // 2. Decoder layers.
        for l in 0 ..< c.layerCount {
            let w = try layer(l)
            let keys = cache.keys(layer: l), values = cache.values(layer: l)
            let newKeys = keys + start * kvDim, newValues = values + start * kvDim

            // Attention block: x += o_proj(attention(rope(q), rope(k), v)) on xb = norm(x). A
            // parallel block with its own MLP norm reads it from x before attention changes x.
            normalize(s.x, w.attentionNorm, bias: w.attentionNormBias, into: s.xb, rows: T)
            var mlpInput = UnsafePointer(s.xb)
            if block.residual == .parallel(separateNorms: true) {
                normalize(s.x, w.feedForwardNorm, bias: w.feedForwardNormBias, into: s.xb2, rows: T)
                mlpInput = UnsafePointer(s.xb2)
            }
            project(s.xb, rows: T, w.query, into: s.q, outFeatures: qDim)
            project(s.xb, rows: T, w.key, into: newKeys, outFeatures: kvDim)        // straight into the cache
            project(s.xb, rows: T, w.value, into: newValues, outFeatures: kvDim)
            // Qwen2's q/k/v biases are part of the projection, so they come before RoPE.
            addBias(w.queryBias, to: s.q, rows: T)
            addBias(w.keyBias, to: newKeys, rows: T)
            addBias(w.valueBias, to: newValues, rows: T)
            if block.qkNorm {
                // Persimmon: LayerNorm over each head's q and k, before rotary.
                LayerNorm.apply(s.q, weight: w.queryNorm, bias: w.queryNormBias, into: s.q, rows: T * c.headCount,
                                dim: hd, epsilon: Float(c.rmsNormEpsilon), threads: threadCount)
                LayerNorm.apply(newKeys, weight: w.keyNorm, bias: w.keyNormBias, into: newKeys, rows: T * c.kvHeadCount,
                                dim: hd, epsilon: Float(c.rmsNormEpsilon), threads: threadCount)
            }
            if let rotary {
                RoPE.apply(s.q, rows: T, rowStride: qDim, heads: c.headCount, headDimension: hd, cos: s.cos, sin: s.sin,
                           rotaryDimensions: rotary)
                RoPE.apply(newKeys, rows: T, rowStride: kvDim, heads: c.kvHeadCount, headDimension: hd, cos: s.cos, sin: s.sin,
                           rotaryDimensions: rotary)
            }
            Attention.causal(
                queries: s.q, queryCount: T, startPosition: start, keys: keys, values: values,
                heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: hd,
                scores: s.scores, scoreStride: s.scoreStride, output: s.attention, threads: threadCount,
                window: c.slidingWindow, alibiSlopes: alibiSlopes)
            project(s.attention, rows: T, w.output, into: s.x, outFeatures: dim, accumulate: true)
            addBias(w.outputBias, to: s.x, rows: T)

            // MLP block: x += mlp(xb) on xb = norm(x) (sequential), or on the input's norm (parallel).
            if block.residual == .sequential {
                normalize(s.x, w.feedForwardNorm, bias: w.feedForwardNormBias, into: s.xb, rows: T)
                mlpInput = UnsafePointer(s.xb)
            }
            switch block.mlp {
            case .swiGLU:
                project(mlpInput, rows: T, w.gate, into: s.gate, outFeatures: ffn)
                project(mlpInput, rows: T, w.up, into: s.up, outFeatures: ffn)
                swiGLU(s.gate, s.up, count: T * ffn)
                project(s.gate, rows: T, w.down, into: s.x, outFeatures: dim, accumulate: true)
            case .plain(let activation):
                project(mlpInput, rows: T, w.up, into: s.up, outFeatures: ffn)
                addBias(w.upBias, to: s.up, rows: T)
                activate(activation, s.up, count: T * ffn)
                project(s.up, rows: T, w.down, into: s.x, outFeatures: dim, accumulate: true)
                addBias(w.downBias, to: s.x, rows: T)
            }

            hidden?.afterLayer.append(s.copy(s.x, count: T * dim))
        }
        cache.count = start + T

        // 3. Final norm and output head, only for the rows that need logits.
        let rows: Range<Int>
        switch options.logits {
        case .all: rows = 0 ..< T
        case .last: rows = T - 1 ..< T
        case .none: rows = T ..< T
        case .rows(let r):
            guard r.lowerBound >= 0, r.upperBound <= T else {
                throw VerifyError.badConfigValue(key: "logits", reason: "rows \(r) outside the call's \(T) tokens")
            }
            rows = r
        }
        let normRows = hidden == nil ? rows : 0 ..< T
        normalize(s.x + normRows.lowerBound * dim, try finalNorm(), bias: try headWeights.finalNormBias(from: weights),
                  into: s.xb + normRows.lowerBound * dim, rows: normRows.count)
        if hidden != nil { hidden?.finalNormed = s.copy(s.xb, count: T * dim) }
        resizeLogits(to: rows.count * c.vocabularySize)
        if !rows.isEmpty {
            let head = try outputHead()
            // beta = 0: BLAS overwrites every element, so stale values from the last call never show.
            logitsBuffer.withUnsafeMutableBufferPointer { out in
                project(s.xb + rows.lowerBound * dim, rows: rows.count, head, into: out.baseAddress!,
                        outFeatures: c.vocabularySize)
            }
            let bias = try headWeights.outputBias(from: weights)
            if !bias.isEmpty {
                logitsBuffer.withUnsafeMutableBufferPointer { addBias(bias, to: $0.baseAddress!, rows: rows.count) }
            }
        }
        return ForwardResult(logits: logitsBuffer, rowCount: rows.count, firstRow: rows.lowerBound,
                             vocabularySize: c.vocabularySize, hiddenStates: hidden)
    }

    /// Logits `[T, vocab]` of a whole sequence from position 0, with a fresh cache.
    public func logits(for tokens: [Int]) throws -> [Float] {
        let cache = try makeCache(capacity: max(1, tokens.count))
        return try forward(tokens: tokens, startPosition: 0, cache: cache).logits
    }

    /// Greedy continuation: evaluates `prompt` in one batch, then appends the argmax token
    /// `count` times, one position per call (llama2.c's loop without sampling).
    public func greedyContinuation(prompt: [Int], count: Int, cache: KVCache) throws -> [Int] {
        var result: [Int] = []
        var step = try forward(tokens: prompt, startPosition: 0, cache: cache, options: ForwardOptions(logits: .last))
        for _ in 0 ..< count {
            let next = LogitMetrics.argmax(step.row(0))
            result.append(next)
            if result.count == count { break }
            step = try forward(tokens: [next], startPosition: cache.count, cache: cache,
                               options: ForwardOptions(logits: .last))
        }
        return result
    }

    /// Gives ``logitsBuffer`` `count` elements without giving back its capacity, so a prompt
    /// batch followed by single-token steps (and the next batch) reuses one allocation.
    private func resizeLogits(to count: Int) {
        if logitsBuffer.count > count {
            logitsBuffer.removeLast(logitsBuffer.count - count)
        } else if logitsBuffer.count < count {
            logitsBuffer.append(contentsOf: repeatElement(0, count: count - logitsBuffer.count))
        }
    }

    // MARK: - Weights

    private func layer(_ index: Int) throws -> LlamaLayerWeights {
        if keepLayersResident && index < residentLayers.count { return residentLayers[index] }
        try weights.loadLayer(index, into: &layerBuffer)
        try layerBuffer.checkSizes(layer: index, config: config)
        if keepLayersResident {
            residentLayers.append(layerBuffer)
            layerBuffer = LlamaLayerWeights(config: config)
            return residentLayers[index]
        }
        return layerBuffer
    }

    private func finalNorm() throws -> [Float] { try headWeights.finalNorm(from: weights) }

    private func outputHead() throws -> [Float] { try headWeights.outputHead(from: weights) }

    // MARK: - Helpers over the kernels

    private func project(
        _ x: UnsafePointer<Float>, rows: Int, _ weight: [Float], into y: UnsafeMutablePointer<Float>,
        outFeatures: Int, accumulate: Bool = false
    ) {
        weight.withUnsafeBufferPointer { w in
            Matmul.projectRows(x, rows: rows, inFeatures: w.count / outFeatures, weight: w.baseAddress!,
                               outFeatures: outFeatures, into: y, accumulate: accumulate,
                               threads: threadCount)
        }
    }

    /// Adds `bias` to each of `rows` rows of width `bias.count`; nothing for an empty bias.
    private func addBias(_ bias: [Float], to y: UnsafeMutablePointer<Float>, rows: Int) {
        guard !bias.isEmpty else { return }
        bias.withUnsafeBufferPointer { b in
            for r in 0 ..< rows {
                let row = y + r * b.count
                for i in 0 ..< b.count { row[i] += b[i] }
            }
        }
    }

    /// SwiGLU in place on `gate`, split over the threads (one `expf` per element: at 512 tokens
    /// as many as all of attention's softmax).
    private func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        nonisolated(unsafe) let (g, u) = (gate, up)
        parallelChunks(count: count, threads: threadCount, minimumChunk: 16_384) { range in
            SwiGLU.apply(gate: g + range.lowerBound, up: u + range.lowerBound, count: range.count)
        }
    }

    private func normalize(_ x: UnsafePointer<Float>, _ weight: [Float], bias: [Float], into y: UnsafeMutablePointer<Float>,
                           rows: Int) {
        let epsilon = Float(config.rmsNormEpsilon)
        switch config.block.norm {
        case .rms:
            RMSNorm.apply(x, weight: weight, into: y, rows: rows, dim: config.hiddenSize, epsilon: epsilon, threads: threadCount)
        case .layerNorm:
            LayerNorm.apply(x, weight: weight, bias: bias, into: y, rows: rows, dim: config.hiddenSize, epsilon: epsilon,
                            threads: threadCount)
        }
    }

    /// A plain MLP's activation in place, split over the threads.
    private func activate(_ activation: BlockDescription.Activation, _ x: UnsafeMutablePointer<Float>, count: Int) {
        nonisolated(unsafe) let p = x
        parallelChunks(count: count, threads: threadCount, minimumChunk: 16_384) { range in
            activation.apply(p + range.lowerBound, count: range.count)
        }
    }
}

/// Activation buffers of the forward pass (llama2.c's `RunState`), grown on demand and reused.
final class RunState {
    private let config: LlamaConfig
    private(set) var rows = 0
    private(set) var scoreStride = 0
    private var scoreRows = 0
    /// Residual stream — `[T, dim]`.
    private(set) var x: UnsafeMutablePointer<Float>
    /// Normed input of a block — `[T, dim]`.
    private(set) var xb: UnsafeMutablePointer<Float>
    /// The MLP's normed input in a parallel block with two norms — `[T, dim]` (else unused).
    private(set) var xb2: UnsafeMutablePointer<Float>
    /// Queries — `[T, heads · hd]`.
    private(set) var q: UnsafeMutablePointer<Float>
    /// Attention output, heads concatenated — `[T, heads · hd]`.
    private(set) var attention: UnsafeMutablePointer<Float>
    /// MLP gate (then silu(gate)·up) — `[T, ffn]`.
    private(set) var gate: UnsafeMutablePointer<Float>
    /// MLP up projection — `[T, ffn]`.
    private(set) var up: UnsafeMutablePointer<Float>
    /// RoPE tables for the call's positions — `[T, hd/2]` each.
    private(set) var cos: UnsafeMutablePointer<Float>
    private(set) var sin: UnsafeMutablePointer<Float>
    /// Attention scores — `[Attention.scratchRows, scoreStride]`.
    private(set) var scores: UnsafeMutablePointer<Float>

    init(config c: LlamaConfig) {
        config = c
        x = Self.allocate(0); xb = Self.allocate(0); xb2 = Self.allocate(0); q = Self.allocate(0); attention = Self.allocate(0)
        gate = Self.allocate(0); up = Self.allocate(0); cos = Self.allocate(0); sin = Self.allocate(0)
        scores = Self.allocate(0)
    }

    /// Makes room for `needed` rows and the attention scratch of `threads` workers over `context` keys.
    func reserve(rows needed: Int, context: Int, threads: Int) {
        let c = config
        if needed > rows {
            rows = needed
            for p in [x, xb, xb2, q, attention, gate, up, cos, sin] { p.deallocate() }
            x = Self.allocate(needed * c.hiddenSize)
            xb = Self.allocate(needed * c.hiddenSize)
            xb2 = Self.allocate(c.block.residual == .parallel(separateNorms: true) ? needed * c.hiddenSize : 0)
            q = Self.allocate(needed * c.queryDimension)
            attention = Self.allocate(needed * c.queryDimension)
            gate = Self.allocate(c.block.gated ? needed * c.intermediateSize : 0)
            up = Self.allocate(needed * c.intermediateSize)
            cos = Self.allocate(needed * c.headDimension / 2)
            sin = Self.allocate(needed * c.headDimension / 2)
        }
        let scoreRows = Attention.scratchRows(queryCount: needed, heads: c.headCount, threads: threads)
        if context > scoreStride || scoreRows > self.scoreRows {
            // Grow geometrically so token-by-token generation reallocates O(log n) times.
            if context > scoreStride { scoreStride = max(context, scoreStride * 2, 64) }
            self.scoreRows = max(scoreRows, self.scoreRows)
            scores.deallocate()
            scores = Self.allocate(self.scoreRows * scoreStride)
        }
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
        p.initialize(repeating: 0, count: max(1, count))
        return p
    }

    func copy(_ p: UnsafePointer<Float>, count: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: p, count: count))
    }

    deinit {
        for p in [x, xb, xb2, q, attention, gate, up, cos, sin, scores] { p.deallocate() }
    }
}
