import TensorCore
import Quantize
public import Verify

/// A decoder with LoRA adapters on a frozen base: the forward pass, and the backward pass that
/// produces gradients of the adapter matrices only.
///
/// The whole decoder is written out by hand (embedding, RMSNorm, RoPE, causal GQA attention,
/// SwiGLU, final norm, output head, cross-entropy) in float32 with OpenBLAS for every matrix
/// product. The block is the config's ``BlockDescription``, as in Verify's forward pass:
/// LayerNorm instead of RMSNorm, a plain MLP (GELU, ReLU, ReLU²), learned positions, partial
/// rotary, ALiBi, the parallel block, q/k LayerNorms and frozen biases each take their branch;
/// LLaMA's block runs the same code as before. A fused q|k|v module (GPT-2, MPT, Falcon,
/// Persimmon) carries one pair, kept on `.query` (``LoRATarget/adapterFeatures(_:)``). Several examples are packed row after row into one matrix (no padding); each is
/// its own sequence for RoPE positions and attention, and every projection runs once over all
/// rows.
///
/// Memory: the residual stream entering every layer is kept (`(layers + 1) × rows × dim`).
/// With `recompute` off, each layer's intermediate activations are kept too; with it on, one
/// set is reused and each layer's forward pass is run again during the backward pass
/// (activation checkpointing), so activation memory no longer grows with the layer count.
/// Base weights come from the ``LlamaWeightSource`` one layer at a time into a reused buffer;
/// from a ``FrozenBase`` without recomputation, one matrix at a time just before its product.
///
/// Not thread-safe: one pass at a time.
public final class LoRAModel {
    public let config: LlamaConfig
    public let loraConfig: LoRAConfig
    /// Threads for the products and the row-parallel kernels, all on our own workers (OpenBLAS
    /// runs single-threaded, see ``BLAS``). Kernels split work by rows, elements or attention
    /// heads, never a reduction, and a product is split into column blocks of its output, so
    /// every value is the same computation for any count (checked: 1 vs 2 threads bit for bit
    /// on the tiny models and on SmolLM2-135M with OpenBLAS 0.3.21).
    public var threadCount: Int
    /// Recompute each layer's activations in the backward pass instead of storing them.
    public var recompute: Bool

    let base: any LlamaWeightSource
    let layout: ParameterLayout
    /// The adapter matrices, flat (``ParameterLayout``).
    let parameters: FloatBuffer
    private let targets: [LoRATarget]
    private let inverseFrequencies: [Float]
    private let work: Workspace
    private var layerBuffer: LlamaLayerWeights
    private var loadedLayer: Int? = nil
    private var headWeights: LlamaHeadWeights
    /// The base when it is a ``FrozenBase``: then, with recomputation off, each matrix is taken
    /// just before its product (``withWeight(_:_:_:_:)``, ``fourBitMatrix(_:_:)``) instead of a
    /// whole layer up front.
    private let frozen: FrozenBase?
    /// Tile buffers of the 4-bit products.
    private let fourBitProduct = FourBitProduct()
    /// ALiBi's per-head slopes (MPT), empty otherwise.
    private var alibiSlopes: [Float] = []

    /// - Parameters:
    ///   - base: the frozen weights (``FrozenBase`` or any other source).
    ///   - config: the base model's shape.
    ///   - adapter: initial adapter matrices, made for `config`.
    ///   - threadCount: threads for BLAS and kernels (nil: all online cores).
    ///   - recompute: activation checkpointing per layer.
    /// - Throws: ``TrainingError`` if the adapter does not belong to `config`.
    public init(base: any LlamaWeightSource, config: LlamaConfig, adapter: LoRAWeights,
                threadCount: Int? = nil, recompute: Bool = false) throws {
        try config.validate()
        guard adapter.modelConfig == config else {
            throw TrainingError.badHyperparameter(name: "adapter", reason: "made for a different model shape")
        }
        self.config = config
        self.loraConfig = adapter.loraConfig
        self.base = base
        self.threadCount = max(1, threadCount ?? activeProcessorCount)
        self.recompute = recompute
        layout = ParameterLayout(adapter)
        parameters = FloatBuffer(count: layout.count)
        layout.store(try Self.reorderFused(adapter, toFused: false), into: parameters)
        targets = try adapter.loraConfig.resolvedTargets()
        if !config.block.gated, targets.contains(.gate) {
            throw TrainingError.badHyperparameter(name: "targets", reason: "gate_proj: this block's MLP has no gate")
        }
        // Partial rotary (phi, Persimmon): frequencies over the rotated dims only, as transformers.
        inverseFrequencies = RoPE.inverseFrequencies(headDimension: config.block.rotaryDimensions ?? config.headDimension,
                                                     theta: config.ropeTheta, scaling: config.ropeScaling)
        work = Workspace(config: config, rank: adapter.loraConfig.rank)
        layerBuffer = LlamaLayerWeights(config: config)
        headWeights = LlamaHeadWeights(config: config)
        frozen = base as? FrozenBase
        if case .alibi(let maxBias) = config.block.positions {
            alibiSlopes = ALiBi.slopes(heads: config.headCount, maxBias: maxBias)
        }
    }

    /// `weights` with the fused q|k|v pairs' B rows reordered between the module's own row order
    /// (`toFused`, what adapters and gradients carry) and the q | k | v order training keeps
    /// (``LoRATarget/fusedRowOrder(_:)``); unchanged when the rows are already in that order.
    static func reorderFused(_ weights: LoRAWeights, toFused: Bool) throws -> LoRAWeights {
        let c = weights.modelConfig
        guard let order = LoRATarget.fusedRowOrder(c) else { return weights }
        var pairs: [LoRAKey: LoRAPair] = [:]
        for key in weights.keys {
            guard var p = weights[key] else { continue }
            if key.target == .query {
                var b = p.b
                for (row, fused) in order.enumerated() {
                    let (to, from) = toFused ? (fused, row) : (row, fused)
                    for j in 0 ..< p.rank { b[to * p.rank + j] = p.b[from * p.rank + j] }
                }
                p.b = b
            }
            pairs[key] = p
        }
        return try LoRAWeights(modelConfig: c, loraConfig: weights.loraConfig, pairs: pairs)
    }

    /// The MLP's norm in a parallel block: its own (Falcon 40B) or the attention's (phi, Falcon 7B).
    private func mlpNorm(_ w: LlamaLayerWeights) -> (weight: [Float], bias: [Float]) {
        config.block.residual == .parallel(separateNorms: false)
            ? (w.attentionNorm, w.attentionNormBias) : (w.feedForwardNorm, w.feedForwardNormBias)
    }

    /// The current adapter matrices.
    public var adapter: LoRAWeights {
        get throws { try Self.reorderFused(layout.weights(from: parameters, model: config, lora: loraConfig), toFused: true) }
    }

    /// Replaces the adapter matrices (same configuration and shapes).
    /// - Throws: ``TrainingError`` if `adapter` has another configuration.
    public func setAdapter(_ adapter: LoRAWeights) throws {
        guard adapter.modelConfig == config, adapter.loraConfig == loraConfig, ParameterLayout(adapter) == layout else {
            throw TrainingError.badHyperparameter(name: "adapter", reason: "does not match the model's adapter layout")
        }
        layout.store(try Self.reorderFused(adapter, toFused: false), into: parameters)
    }

    /// Number of trainable values.
    public var parameterCount: Int { layout.count }

    // MARK: - Public passes

    /// Loss and adapter gradients of `examples` packed as one batch: the mean cross-entropy over
    /// all their target tokens (transformers' causal-LM loss), and `∂loss/∂A`, `∂loss/∂B` in
    /// the ``LoRAWeights`` layout.
    /// - Parameter dropoutSeed: seed of the LoRA dropout masks; nil (or dropout 0) disables dropout.
    /// - Throws: ``TrainingError`` for bad tokens or no targets; what the weight source throws.
    public func lossAndGradients(examples: [TrainingExample], dropoutSeed: UInt64? = nil) throws
        -> (loss: Double, gradients: LoRAWeights)
    {
        let targets = examples.reduce(0) { $0 + $1.targetCount }
        guard targets > 0 else { throw TrainingError.noTargets }
        let grads = FloatBuffer(count: layout.count)
        let sum = try accumulateGradients(examples: examples, lossScale: 1 / Float(targets), dropoutSeed: dropoutSeed,
                                          into: grads)
        return (sum / Double(targets),
                try Self.reorderFused(layout.weights(from: grads, model: config, lora: loraConfig), toFused: true))
    }

    /// Sum of the cross-entropy over the target tokens of `examples` and their number (no
    /// dropout, no gradients), processed as one packed batch.
    public func loss(examples: [TrainingExample]) throws -> (sum: Double, targets: Int) {
        let batch = try Batch(examples, config: config)
        guard !batch.targetRows.isEmpty else { return (0, 0) }
        BLAS.setThreadCount(1)
        try forwardLayers(batch, dropoutSeed: nil, keepActivations: false)
        let sum = try head(batch, gradientScale: nil)
        return (sum, batch.targetRows.count)
    }

    /// Logits `[T, vocab]` of one sequence with the adapter applied (no dropout).
    public func logits(tokens: [Int]) throws -> [Float] {
        let batch = try Batch([TrainingExample(tokens: tokens, lossMask: tokens.map { _ in true })], config: config,
                              allRows: true)
        BLAS.setThreadCount(1)
        try forwardLayers(batch, dropoutSeed: nil, keepActivations: false)
        let c = config, rows = batch.rows, dim = c.hiddenSize
        let x = work.hidden[c.layerCount].pointer
        let xf = FloatBuffer(count: rows * dim)
        normalize(x, try finalNorm(), try headWeights.finalNormBias(from: base), into: xf.pointer, rows: rows,
                  epsilon: Float(c.rmsNormEpsilon))
        let out = FloatBuffer(count: rows * c.vocabularySize)
        try outputHead().withUnsafeBufferPointer { h in
            BLAS.gemm(transB: true, m: rows, n: c.vocabularySize, k: dim, xf.pointer, lda: dim, h.baseAddress!, ldb: dim,
                      out.pointer, ldc: c.vocabularySize, threads: threadCount)
        }
        let headBias = try headWeights.outputBias(from: base)
        if !headBias.isEmpty { Self.addBias(headBias, to: out.pointer, rows: rows) }
        return out.array(0 ..< rows * c.vocabularySize)
    }

    // MARK: - Training pass

    /// Forward and backward over `examples` packed as one batch: adds `lossScale · ∂(Σ token
    /// losses)/∂θ` into `gradients` (flat layout) and returns the unscaled loss sum.
    func accumulateGradients(examples: [TrainingExample], lossScale: Float, dropoutSeed: UInt64?,
                             into gradients: FloatBuffer) throws -> Double {
        let batch = try Batch(examples, config: config)
        guard !batch.targetRows.isEmpty else { return 0 }
        BLAS.setThreadCount(1)
        let seed = loraConfig.dropout > 0 ? dropoutSeed : nil
        try forwardLayers(batch, dropoutSeed: seed, keepActivations: true)
        let loss = try head(batch, gradientScale: lossScale)
        for l in stride(from: config.layerCount - 1, through: 0, by: -1) {
            let w = try layer(l)
            let act = recompute ? work.activations[0] : work.activations[l]
            if recompute {
                try forwardLayer(l, w, batch, input: work.hidden[l].pointer, act: act, output: nil, dropoutSeed: seed)
            }
            try backwardLayer(l, w, batch, input: work.hidden[l].pointer, act: act, dropoutSeed: seed, gradients: gradients)
        }
        return loss
    }

    /// Embeddings, then every layer; `hidden[l]` receives the input of layer `l` and
    /// `hidden[L]` the last layer's output.
    private func forwardLayers(_ batch: Batch, dropoutSeed: UInt64?, keepActivations: Bool) throws {
        let c = config, rows = batch.rows, dim = c.hiddenSize
        work.reserve(rows: rows, maxLength: batch.maxLength, layers: keepActivations && !recompute ? c.layerCount : 1,
                     inverseFrequencies: inverseFrequencies)
        let h0 = work.hidden[0].pointer
        for (r, token) in batch.tokens.enumerated() {
            try base.embeddingRow(token, into: UnsafeMutableBufferPointer(start: h0 + r * dim, count: dim))
        }
        // Learned absolute positions (GPT-2, OPT): frozen, added to every sequence from 0.
        if case .learned(let offset) = c.block.positions {
            let row = work.scratch.pointer
            for s in batch.segments {
                for t in 0 ..< s.length {
                    try base.positionEmbeddingRow(t + offset, into: UnsafeMutableBufferPointer(start: row, count: dim))
                    let out = h0 + (s.start + t) * dim
                    for i in 0 ..< dim { out[i] += row[i] }
                }
            }
        }
        for l in 0 ..< c.layerCount {
            let act = keepActivations && !recompute ? work.activations[l] : work.activations[0]
            try forwardLayer(l, try layer(l), batch, input: work.hidden[l].pointer, act: act,
                             output: work.hidden[l + 1].pointer, dropoutSeed: dropoutSeed)
        }
    }

    /// The dropout mask of `layer`/`target` for a pass seeded with `seed`.
    private func dropoutMask(_ layer: Int, _ target: LoRATarget, seed: UInt64) -> DropoutMask {
        DropoutMask(probability: Float(loraConfig.dropout),
                    seed: TrainingRandom.derived(seed: seed, UInt64(layer), UInt64(target.order)).state)
    }

    /// The adapter operands of `layer`/`target` (nil when not adapted). With a dropout seed the
    /// mask is taken from `act` (generated there by the forward pass).
    private func lora(_ layer: Int, _ target: LoRATarget, rows: Int, dropoutSeed: UInt64?, act: LayerActivations) -> LoRAOperands? {
        guard let (s, bRow, owner) = slot(layer, target) else { return nil }
        let dropout = dropoutSeed.map {
            DropoutBits(bits: act.masks[owner.order].pointer, scale: dropoutMask(layer, owner, seed: $0).keepScale,
                        threads: threads(elements: rows * owner.features(config).inFeatures))
        }
        return LoRAOperands(a: parameters.pointer + s.aOffset, b: parameters.pointer + s.bOffset + bRow * s.rank, rank: s.rank,
                            scaling: Float(loraConfig.scaling), dropout: dropout)
    }

    /// The adapter slot feeding `target`'s product, the row of its B where `target`'s output
    /// starts, and the target owning the slot. A fused q|k|v pair (GPT-2, MPT) sits on `.query`:
    /// q, k and v each take their rows of its B and share its A and dropout mask, so their
    /// three backward calls add up `∂A` and fill disjoint rows of `∂B`, as PEFT's one module does.
    private func slot(_ layer: Int, _ target: LoRATarget) -> (ParameterLayout.Slot, Int, LoRATarget)? {
        if let row = target.fusedRowOffset(config) {
            return layout.slot(LoRAKey(layer: layer, target: .query)).map { ($0, row, .query) }
        }
        return layout.slot(LoRAKey(layer: layer, target: target)).map { ($0, 0, target) }
    }

    /// One decoder layer. With `output` nil (recomputation), only what the backward pass reads
    /// is produced: the down projection's adapter input `z`, not the layer output.
    private func forwardLayer(
        _ l: Int, _ w: LlamaLayerWeights, _ batch: Batch, input h: UnsafeMutablePointer<Float>,
        act: LayerActivations, output: UnsafeMutablePointer<Float>?, dropoutSeed: UInt64?
    ) throws {
        let c = config, rows = batch.rows, dim = c.hiddenSize, qDim = c.queryDimension, kvDim = c.kvDimension
        let ffn = c.intermediateSize, hd = c.headDimension, eps = Float(c.rmsNormEpsilon)
        let xn = work.normed.pointer, scratch = work.scratch.pointer

        // Dropout masks of this layer, drawn once per pass (a recomputation draws the same bits).
        if let seed = dropoutSeed {
            for target in targets {
                let n = target.features(c).inFeatures
                act.masks[target.order].reserve(rows * DropoutMask.words(columns: n))
                dropoutMask(l, target, seed: seed).generate(into: act.masks[target.order].pointer, rows: rows, columns: n,
                                                            threads: threadCount)
            }
        }
        func linear(_ target: LoRATarget, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                    accumulate: Bool = false) throws {
            let (n, m) = target.features(c)
            let op = lora(l, target, rows: rows, dropoutSeed: dropoutSeed, act: act)
            if let t = fourBitMatrix(l, target) {
                fourBitProduct.forward(t, x: x, rows: rows, y: y, accumulate: accumulate, threads: threadCount)
                LoRALinear.forward(x: x, rows: rows, inFeatures: n, outFeatures: m, weight: nil, lora: op,
                                   z: act.z[target.order].pointer, scratch: scratch, y: y, accumulate: accumulate)
                return
            }
            withWeight(l, target, w) { wp in
                LoRALinear.forward(x: x, rows: rows, inFeatures: n, outFeatures: m, weight: wp, lora: op,
                                   z: act.z[target.order].pointer, scratch: scratch, y: y, accumulate: accumulate,
                                   threads: threadCount)
            }
        }

        // Attention block.
        normalize(h, w.attentionNorm, w.attentionNormBias, into: xn, rows: rows, epsilon: eps)
        try linear(.query, xn, act.q.pointer)
        try linear(.key, xn, act.k.pointer)
        try linear(.value, xn, act.v.pointer)
        // Qwen2's frozen q/k/v biases: added before RoPE; having no gradient, they leave the
        // backward pass unchanged.
        if c.attentionBias {
            Self.addBias(w.queryBias, to: act.q.pointer, rows: rows)
            Self.addBias(w.keyBias, to: act.k.pointer, rows: rows)
            Self.addBias(w.valueBias, to: act.v.pointer, rows: rows)
        }
        // Persimmon: LayerNorm over each head's q and k (frozen weight and bias) before rotary; the
        // inputs are kept for its backward pass.
        if c.block.qkNorm {
            act.qRaw.pointer.update(from: act.q.pointer, count: rows * qDim)
            act.kRaw.pointer.update(from: act.k.pointer, count: rows * kvDim)
            LayerNorm.apply(act.q.pointer, weight: w.queryNorm, bias: w.queryNormBias, into: act.q.pointer,
                            rows: rows * c.headCount, dim: hd, epsilon: eps, threads: 1)
            LayerNorm.apply(act.k.pointer, weight: w.keyNorm, bias: w.keyNormBias, into: act.k.pointer,
                            rows: rows * c.kvHeadCount, dim: hd, epsilon: eps, threads: 1)
        }
        let rotary = c.block.rotaryDimensions
        for s in batch.segments {
            if let rotary {
                RoPE.apply(act.q.pointer + s.start * qDim, rows: s.length, rowStride: qDim, heads: c.headCount,
                           headDimension: hd, cos: work.cos.pointer, sin: work.sin.pointer, rotaryDimensions: rotary)
                RoPE.apply(act.k.pointer + s.start * kvDim, rows: s.length, rowStride: kvDim, heads: c.kvHeadCount,
                           headDimension: hd, cos: work.cos.pointer, sin: work.sin.pointer, rotaryDimensions: rotary)
            }
            withAlibi { slopes in
                AttentionBackward.forward(q: act.q.pointer + s.start * qDim, k: act.k.pointer + s.start * kvDim,
                                          v: act.v.pointer + s.start * kvDim, length: s.length, heads: c.headCount,
                                          kvHeads: c.kvHeadCount, headDimension: hd, window: c.slidingWindow, alibi: slopes,
                                          output: act.o.pointer + s.start * qDim,
                                          scratch: work.scores.pointer, threads: threadCount)
            }
        }
        act.h1.pointer.update(from: h, count: rows * dim)
        try linear(.output, act.o.pointer, act.h1.pointer, accumulate: true)
        // Frozen projection biases have no gradient: added in the forward pass only.
        if c.block.outputBias { Self.addBias(w.outputBias, to: act.h1.pointer, rows: rows) }

        // MLP block.
        // Sequential: the MLP reads the stream after attention; parallel: the layer input.
        let parallel = c.block.residual != .sequential
        let mlpIn = parallel ? UnsafePointer(h) : UnsafePointer(act.h1.pointer), mlpNorm = mlpNorm(w)
        normalize(mlpIn, mlpNorm.weight, mlpNorm.bias, into: xn, rows: rows, epsilon: eps)
        let a = work.mlp.pointer
        switch c.block.mlp {
        case .swiGLU:
            try linear(.gate, xn, act.g.pointer)
            try linear(.up, xn, act.u.pointer)
            SwiGLUBackward.forward(gate: act.g.pointer, up: act.u.pointer, into: a, count: rows * ffn, threads: threadCount)
        case .plain(let f):
            // `u` keeps the activation's input for the backward pass.
            try linear(.up, xn, act.u.pointer)
            if c.block.mlpBias { Self.addBias(w.upBias, to: act.u.pointer, rows: rows) }
            a.update(from: act.u.pointer, count: rows * ffn)
            f.apply(a, count: rows * ffn)
        }
        if let output {
            output.update(from: act.h1.pointer, count: rows * dim)
            try linear(.down, a, output, accumulate: true)
            if c.block.mlpBias { Self.addBias(w.downBias, to: output, rows: rows) }
        } else if let op = lora(l, .down, rows: rows, dropoutSeed: dropoutSeed, act: act) {
            LoRALinear.adapterInput(x: a, rows: rows, inFeatures: ffn, lora: op, z: act.z[LoRATarget.down.order].pointer,
                                    scratch: scratch)
        }
    }

    /// The backward pass of one layer: on entry `work.dh` holds `∂loss/∂(layer output)`, on
    /// return `∂loss/∂(layer input)` (not computed for layer 0, whose input is the frozen
    /// embedding); adapter gradients are added into `gradients`.
    private func backwardLayer(
        _ l: Int, _ w: LlamaLayerWeights, _ batch: Batch, input h: UnsafeMutablePointer<Float>,
        act: LayerActivations, dropoutSeed: UInt64?, gradients: FloatBuffer
    ) throws {
        let c = config, rows = batch.rows, qDim = c.queryDimension, kvDim = c.kvDimension
        let ffn = c.intermediateSize, hd = c.headDimension, eps = Float(c.rmsNormEpsilon), dim = c.hiddenSize
        let xn = work.normed.pointer, scratch = work.scratch.pointer, dh = work.dh.pointer, dxn = work.dxn.pointer

        func linear(_ target: LoRATarget, x: UnsafePointer<Float>, dY: UnsafePointer<Float>,
                    dx: UnsafeMutablePointer<Float>?, accumulate: Bool) throws {
            let (n, m) = target.features(c)
            let slot = self.slot(l, target).map { (aOffset: $0.0.aOffset, bOffset: $0.0.bOffset + $0.1 * $0.0.rank) }
            func backward(_ weight: UnsafePointer<Float>?) {
                LoRALinear.backward(x: x, dY: dY, rows: rows, inFeatures: n, outFeatures: m, weight: weight,
                                    lora: lora(l, target, rows: rows, dropoutSeed: dropoutSeed, act: act), z: act.z[target.order].pointer,
                                    gradA: slot.map { gradients.pointer + $0.aOffset },
                                    gradB: slot.map { gradients.pointer + $0.bOffset },
                                    dz: work.dz.pointer, scratch: scratch, dx: dx, accumulate: accumulate,
                                    threads: threadCount)
            }
            if let t = fourBitMatrix(l, target) {
                // The base part of dx first, then the adapter's added to it (the same order as
                // LoRALinear.backward with the weight).
                if let dx { fourBitProduct.backward(t, dY: dY, rows: rows, dx: dx, accumulate: accumulate, threads: threadCount) }
                backward(nil)
                return
            }
            withWeight(l, target, w) { backward($0) }
        }

        // MLP block: a = silu(g)·u and the normed input are recomputed (cheap, element-wise).
        let parallel = c.block.residual != .sequential
        let mlpIn = parallel ? UnsafePointer(h) : UnsafePointer(act.h1.pointer), mlpNorm = mlpNorm(w)
        normalize(mlpIn, mlpNorm.weight, mlpNorm.bias, into: xn, rows: rows, epsilon: eps)
        let a = work.mlp.pointer, da = work.dMLP.pointer, du = work.dUp.pointer
        switch c.block.mlp {
        case .swiGLU:
            // The exponentials of the gate are kept in `du` for the activation's backward pass.
            SwiGLUBackward.forward(gate: act.g.pointer, up: act.u.pointer, into: a, denominators: du, count: rows * ffn,
                                   threads: threadCount)
            try linear(.down, x: a, dY: dh, dx: da, accumulate: false)
            SwiGLUBackward.apply(gate: act.g.pointer, up: act.u.pointer, da: da, dGate: da, dUp: du, denominators: du,
                                 count: rows * ffn, threads: threadCount)
            try linear(.gate, x: xn, dY: da, dx: dxn, accumulate: false)
            try linear(.up, x: xn, dY: du, dx: dxn, accumulate: true)
        case .plain(let f):
            a.update(from: act.u.pointer, count: rows * ffn)
            f.apply(a, count: rows * ffn)
            try linear(.down, x: a, dY: dh, dx: da, accumulate: false)
            f.backward(x: act.u.pointer, dy: da, into: du, count: rows * ffn, accumulate: false)
            try linear(.up, x: xn, dY: du, dx: dxn, accumulate: false)
        }
        // Parallel: the MLP's input gradient joins the layer input's after the attention branch
        // (which sees only the output's gradient); kept in `dParallel` until then.
        let dParallel = work.dParallel.pointer
        if parallel {
            dParallel.update(from: dxn, count: rows * dim)
        } else {
            normalizeBackward(x: act.h1.pointer, w.feedForwardNorm, dy: dxn, into: dh, rows: rows, epsilon: eps)
        }

        // Attention block.
        let dO = work.dO.pointer, dq = work.dq.pointer, dk = work.dk.pointer, dv = work.dv.pointer
        try linear(.output, x: act.o.pointer, dY: dh, dx: dO, accumulate: false)
        let rotary = c.block.rotaryDimensions
        for s in batch.segments {
            withAlibi { slopes in
                AttentionBackward.backward(
                    q: act.q.pointer + s.start * qDim, k: act.k.pointer + s.start * kvDim, v: act.v.pointer + s.start * kvDim,
                    dO: dO + s.start * qDim, length: s.length, heads: c.headCount, kvHeads: c.kvHeadCount, headDimension: hd,
                    window: c.slidingWindow, alibi: slopes,
                    dQ: dq + s.start * qDim, dK: dk + s.start * kvDim, dV: dv + s.start * kvDim,
                    scratch: work.scores.pointer, threads: threadCount)
            }
            guard let rotary else { continue }
            RoPEBackward.apply(dq + s.start * qDim, rows: s.length, rowStride: qDim, heads: c.headCount, headDimension: hd,
                               cos: work.cos.pointer, sin: work.sin.pointer, rotaryDimensions: rotary)
            RoPEBackward.apply(dk + s.start * kvDim, rows: s.length, rowStride: kvDim, heads: c.kvHeadCount,
                               headDimension: hd, cos: work.cos.pointer, sin: work.sin.pointer, rotaryDimensions: rotary)
        }
        if c.block.qkNorm {
            // In place: the kernel reads each row's gradient before writing it.
            LayerNormBackward.apply(x: act.qRaw.pointer, weight: w.queryNorm, dy: dq, into: dq, rows: rows * c.headCount,
                                    dim: hd, epsilon: eps, accumulate: false)
            LayerNormBackward.apply(x: act.kRaw.pointer, weight: w.keyNorm, dy: dk, into: dk, rows: rows * c.kvHeadCount,
                                    dim: hd, epsilon: eps, accumulate: false)
        }
        normalize(h, w.attentionNorm, w.attentionNormBias, into: xn, rows: rows, epsilon: eps)
        // The first layer's input is the frozen embedding: its gradient is not needed.
        let inputGradient = l > 0 ? dxn : nil
        try linear(.query, x: xn, dY: dq, dx: inputGradient, accumulate: false)
        try linear(.key, x: xn, dY: dk, dx: inputGradient, accumulate: true)
        try linear(.value, x: xn, dY: dv, dx: inputGradient, accumulate: true)
        guard l > 0 else { return }
        switch c.block.residual {
        case .sequential:
            break
        case .parallel(separateNorms: false):
            // One norm feeds both branches: its output gradient is the sum of theirs.
            for i in 0 ..< rows * dim { dxn[i] += dParallel[i] }
        case .parallel(separateNorms: true):
            normalizeBackward(x: h, w.feedForwardNorm, dy: dParallel, into: dh, rows: rows, epsilon: eps)
        }
        normalizeBackward(x: h, w.attentionNorm, dy: dxn, into: dh, rows: rows, epsilon: eps)
    }

    /// Final norm, output head and cross-entropy over the target rows, in chunks of rows so the
    /// logits never exceed 32 MB. With `gradientScale`, `work.dh` receives
    /// `gradientScale · ∂(Σ losses)/∂(last hidden state)` (zero on rows without a target).
    /// - Returns: the sum of the target tokens' losses.
    private func head(_ batch: Batch, gradientScale: Float?) throws -> Double {
        let c = config, dim = c.hiddenSize, vocab = c.vocabularySize, eps = Float(c.rmsNormEpsilon)
        let rows = batch.targetRows
        let chunk = max(1, min(rows.count, (1 << 23) / vocab))
        work.reserveHead(chunk: chunk, vocabulary: vocab)
        let x = work.hidden[c.layerCount].pointer
        if gradientScale != nil { work.dh.zero(batch.rows * dim) }
        let norm = try finalNorm(), normBias = try headWeights.finalNormBias(from: base), headMatrix = try outputHead()
        let headBias = try headWeights.outputBias(from: base)
        var total = 0.0
        let xg = work.headInput.pointer, xf = work.headNormed.pointer, logits = work.logits.pointer
        for start in stride(from: 0, to: rows.count, by: chunk) {
            let n = min(chunk, rows.count - start)
            for i in 0 ..< n { (xg + i * dim).update(from: x + rows[start + i] * dim, count: dim) }
            normalize(xg, norm, normBias, into: xf, rows: n, epsilon: eps)
            headMatrix.withUnsafeBufferPointer { hp in
                BLAS.gemm(transB: true, m: n, n: vocab, k: dim, xf, lda: dim, hp.baseAddress!, ldb: dim, logits, ldc: vocab,
                          threads: threadCount)
            }
            // phi's frozen head bias.
            if !headBias.isEmpty { Self.addBias(headBias, to: logits, rows: n) }
            let targets = Array(batch.targetTokens[start ..< start + n])
            guard let scale = gradientScale else {
                total += CrossEntropy.loss(logits: logits, vocabulary: vocab, targets: targets, threads: threadCount)
                continue
            }
            total += CrossEntropy.lossAndGradient(logits: logits, vocabulary: vocab, targets: targets, scale: scale,
                                                  threads: threadCount)
            // ∂xf = ∂logits · H, then back through the final norm into the rows' gradients.
            headMatrix.withUnsafeBufferPointer { hp in
                BLAS.gemm(m: n, n: dim, k: vocab, logits, lda: vocab, hp.baseAddress!, ldb: dim, xf, ldc: dim,
                          threads: threadCount)
            }
            for i in 0 ..< n {
                normalizeBackward(x: xg + i * dim, norm, dy: xf + i * dim, into: work.dh.pointer + rows[start + i] * dim,
                                  rows: 1, epsilon: eps, accumulate: false, threads: 1)
            }
        }
        return total
    }

    // MARK: - Weights

    /// Whether matrices are taken one at a time just before their product: a 4-bit matrix is
    /// then dequantized tile by tile into buffers that stay in the core's cache for the tile's
    /// product (``FourBitProduct``), instead of a whole layer (14 MB on SmolLM2) dequantized up
    /// front and read back from memory. With
    /// recomputation on, a layer's matrices serve two passes in a row, so the layer is loaded
    /// whole once instead. The values are the same either way, so are the results.
    private var takesMatricesOneByOne: Bool { frozen != nil && !recompute }

    /// Layer `index`'s weights; when matrices are taken one by one, only its norms are current.
    private func layer(_ index: Int) throws -> LlamaLayerWeights {
        if loadedLayer == index { return layerBuffer }
        loadedLayer = nil
        if takesMatricesOneByOne, let frozen {
            layerBuffer.attentionNorm = frozen.layers[index].attentionNorm
            layerBuffer.feedForwardNorm = frozen.layers[index].feedForwardNorm
            frozen.layers[index].copyBiases(into: &layerBuffer)
            return layerBuffer
        }
        try base.loadLayer(index, into: &layerBuffer)
        try layerBuffer.checkSizes(layer: index, config: config)
        loadedLayer = index
        return layerBuffer
    }

    /// `target`'s 4-bit matrix of layer `l` when matrices are taken one by one: its products
    /// then dequantize it tile by tile (``FourBitProduct``).
    private func fourBitMatrix(_ l: Int, _ target: LoRATarget) -> BNB4BitTensor? {
        guard takesMatricesOneByOne, let frozen, case .fourBit(let t) = frozen.layers[l].matrices[target.order] else { return nil }
        return t
    }

    /// Calls `body` with `target`'s dense matrix of layer `l` (`w` from ``layer(_:)``); 4-bit
    /// matrices taken one by one go through ``fourBitMatrix(_:_:)`` instead.
    private func withWeight(_ l: Int, _ target: LoRATarget, _ w: LlamaLayerWeights,
                            _ body: (UnsafePointer<Float>) -> Void) {
        guard takesMatricesOneByOne, let frozen else {
            let fields: [KeyPath<LlamaLayerWeights, [Float]>] = [\.query, \.key, \.value, \.output, \.gate, \.up, \.down]
            w[keyPath: fields[target.order]].withUnsafeBufferPointer { body($0.baseAddress!) }
            return
        }
        switch frozen.layers[l].matrices[target.order] {
        case .dense(let values):
            values.withUnsafeBufferPointer { body($0.baseAddress!) }
        case .fourBit:
            // The passes take these through fourBitMatrix(_:_:) before asking for a pointer.
            preconditionFailure("a 4-bit matrix is multiplied tile by tile, never whole")
        }
    }

    /// Forgets the cached layer (after the base changed).
    func invalidateWeights() {
        loadedLayer = nil
        headWeights.forget()
    }

    private func finalNorm() throws -> [Float] { try headWeights.finalNorm(from: base) }

    private func outputHead() throws -> [Float] { try headWeights.outputHead(from: base) }

    /// `y[r, :] += bias` for every row.
    static func addBias(_ bias: [Float], to y: UnsafeMutablePointer<Float>, rows: Int) {
        let n = bias.count
        bias.withUnsafeBufferPointer { b in
            for r in 0 ..< rows {
                let row = y + r * n
                for i in 0 ..< n { row[i] += b[i] }
            }
        }
    }

    /// The block's norm (RMSNorm, or LayerNorm with `bias` when it has one).
    private func normalize(_ x: UnsafePointer<Float>, _ weight: [Float], _ bias: [Float] = [],
                           into y: UnsafeMutablePointer<Float>, rows: Int, epsilon: Float) {
        let t = threads(elements: rows * config.hiddenSize)
        switch config.block.norm {
        case .rms:
            RMSNorm.apply(x, weight: weight, into: y, rows: rows, dim: config.hiddenSize, epsilon: epsilon, threads: t)
        case .layerNorm:
            LayerNorm.apply(x, weight: weight, bias: bias, into: y, rows: rows, dim: config.hiddenSize, epsilon: epsilon,
                            threads: t)
        }
    }

    /// `dx (+)= ∂L/∂x` through the block's norm (frozen weight and bias).
    private func normalizeBackward(x: UnsafePointer<Float>, _ weight: [Float], dy: UnsafePointer<Float>,
                                   into dx: UnsafeMutablePointer<Float>, rows: Int, epsilon: Float,
                                   accumulate: Bool = true, threads t: Int? = nil) {
        let dim = config.hiddenSize, t = t ?? threads(elements: rows * dim)
        switch config.block.norm {
        case .rms:
            weight.withUnsafeBufferPointer { wp in
                RMSNormBackward.apply(x: x, weight: wp.baseAddress!, dy: dy, into: dx, rows: rows, dim: dim,
                                      epsilon: epsilon, accumulate: accumulate, threads: t)
            }
        case .layerNorm:
            LayerNormBackward.apply(x: x, weight: weight, dy: dy, into: dx, rows: rows, dim: dim, epsilon: epsilon,
                                    accumulate: accumulate, threads: t)
        }
    }

    /// Calls `body` with ALiBi's slopes, or nil for a block without ALiBi.
    private func withAlibi(_ body: (UnsafePointer<Float>?) -> Void) {
        guard !alibiSlopes.isEmpty else { return body(nil) }
        alibiSlopes.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// Workers for a light element-wise kernel (a few operations per element) over `elements`
    /// values: below 256K values one thread, since waking a worker and waiting for it costs more
    /// than the work (a 128-token batch of SmolLM2 is 74K values per norm).
    private func threads(elements: Int) -> Int { elements >= 1 << 18 ? threadCount : 1 }
}

/// Examples packed row after row, with what the head needs: the rows that predict a target
/// token and those tokens.
struct Batch {
    struct Segment { var start: Int; var length: Int }
    var tokens: [Int] = []
    var segments: [Segment] = []
    /// Packed rows whose next token (same example) is a target.
    var targetRows: [Int] = []
    var targetTokens: [Int] = []
    var maxLength = 0
    var rows: Int { tokens.count }

    /// - Parameter allRows: every row is a "target row" (logits of a whole sequence).
    init(_ examples: [TrainingExample], config: LlamaConfig, allRows: Bool = false) throws {
        for e in examples {
            // Attention applies Mistral's sliding window, so any length up to the positions runs.
            let longest = config.maxPositions
            guard !e.tokens.isEmpty, e.tokens.count <= longest else {
                throw TrainingError.badSequenceLength(e.tokens.count, maximum: longest)
            }
            let start = tokens.count
            for (t, token) in e.tokens.enumerated() {
                guard token >= 0, token < config.vocabularySize else {
                    throw TrainingError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
                }
                if allRows || (t + 1 < e.tokens.count && e.lossMask[t + 1]) {
                    targetRows.append(start + t)
                    targetTokens.append(t + 1 < e.tokens.count ? e.tokens[t + 1] : token)
                }
            }
            tokens += e.tokens
            segments.append(Segment(start: start, length: e.tokens.count))
            maxLength = max(maxLength, e.tokens.count)
        }
        guard !tokens.isEmpty else { throw TrainingError.badSequenceLength(0, maximum: config.maxPositions) }
    }
}

/// What one layer's forward pass leaves for its backward pass.
final class LayerActivations {
    /// Rotated queries `[rows, qDim]`, rotated keys and values `[rows, kvDim]`.
    let q = FloatBuffer(), k = FloatBuffer(), v = FloatBuffer()
    /// q and k before their per-head LayerNorms (Persimmon) `[rows, qDim]`, `[rows, kvDim]`.
    let qRaw = FloatBuffer(), kRaw = FloatBuffer()
    /// Attention output before o_proj `[rows, qDim]`.
    let o = FloatBuffer()
    /// Residual stream after the attention block `[rows, dim]`.
    let h1 = FloatBuffer()
    /// Gate and up projections `[rows, ffn]`.
    let g = FloatBuffer(), u = FloatBuffer()
    /// Adapter inputs `z = dropout(x)·Aᵀ` `[rows, rank]`, per target in ``LoRATarget`` order.
    let z = LoRATarget.allCases.map { _ in FloatBuffer() }
    /// Dropout keep bits per target (when dropout is on), ``DropoutMask/words(columns:)`` per row.
    let masks = LoRATarget.allCases.map { _ in BitBuffer() }

    func reserve(rows: Int, config c: LlamaConfig, rank: Int) {
        q.reserve(rows * c.queryDimension); o.reserve(rows * c.queryDimension)
        k.reserve(rows * c.kvDimension); v.reserve(rows * c.kvDimension)
        h1.reserve(rows * c.hiddenSize)
        if c.block.qkNorm { qRaw.reserve(rows * c.queryDimension); kRaw.reserve(rows * c.kvDimension) }
        g.reserve(rows * c.intermediateSize); u.reserve(rows * c.intermediateSize)
        for b in z { b.reserve(rows * rank) }
    }
}

/// All buffers of the passes, grown to the largest batch and reused.
final class Workspace {
    let config: LlamaConfig
    let rank: Int
    /// Residual stream entering layer l (`hidden[L]`: the last layer's output) `[rows, dim]`.
    var hidden: [FloatBuffer] = []
    var activations: [LayerActivations] = []
    let normed = FloatBuffer(), mlp = FloatBuffer(), scratch = FloatBuffer()
    let dh = FloatBuffer(), dxn = FloatBuffer(), dMLP = FloatBuffer(), dUp = FloatBuffer()
    let dO = FloatBuffer(), dq = FloatBuffer(), dk = FloatBuffer(), dv = FloatBuffer(), dz = FloatBuffer()
    /// The MLP branch's input gradient of a parallel block `[rows, dim]`.
    let dParallel = FloatBuffer()
    let scores = FloatBuffer(), cos = FloatBuffer(), sin = FloatBuffer()
    let headInput = FloatBuffer(), headNormed = FloatBuffer(), logits = FloatBuffer()
    private var tableLength = 0

    init(config: LlamaConfig, rank: Int) {
        self.config = config
        self.rank = rank
    }

    func reserve(rows: Int, maxLength: Int, layers: Int, inverseFrequencies: [Float]) {
        let c = config
        while hidden.count < c.layerCount + 1 { hidden.append(FloatBuffer()) }
        for h in hidden { h.reserve(rows * c.hiddenSize) }
        while activations.count < layers { activations.append(LayerActivations()) }
        for a in activations.prefix(layers) { a.reserve(rows: rows, config: c, rank: rank) }
        let widest = max(c.hiddenSize, c.queryDimension, c.intermediateSize)
        for b in [normed, dh, dxn] { b.reserve(rows * c.hiddenSize) }
        if c.block.residual != .sequential { dParallel.reserve(rows * c.hiddenSize) }
        for b in [mlp, dMLP, dUp] { b.reserve(rows * c.intermediateSize) }
        scratch.reserve(rows * widest)
        for b in [dO, dq] { b.reserve(rows * c.queryDimension) }
        for b in [dk, dv] { b.reserve(rows * c.kvDimension) }
        dz.reserve(rows * rank)
        scores.reserve(AttentionBackward.scratchCount(length: maxLength, heads: c.headCount, headDimension: c.headDimension))
        if maxLength > tableLength {
            tableLength = maxLength
            cos.reserve(maxLength * c.headDimension / 2)
            sin.reserve(maxLength * c.headDimension / 2)
            RoPE.fillTables(inverseFrequencies: inverseFrequencies, positions: 0 ..< maxLength, cos: cos.pointer, sin: sin.pointer)
        }
    }

    func reserveHead(chunk: Int, vocabulary: Int) {
        headInput.reserve(chunk * config.hiddenSize)
        headNormed.reserve(chunk * config.hiddenSize)
        logits.reserve(chunk * vocabulary)
    }
}
