/// One decoder layer in float32, HF layout: matrices are `nn.Linear.weight`, `[out, in]`
/// row-major, and q/k rows are in HF's rotary order (NOT llama.cpp's permuted order; a GGUF
/// source must un-permute `attn_q`/`attn_k` before handing them over).
public struct LlamaLayerWeights: Sendable {
    /// `input_layernorm.weight` — `[dim]`.
    public var attentionNorm: [Float]
    /// `self_attn.q_proj.weight` — `[heads · hd, dim]`.
    public var query: [Float]
    /// `self_attn.k_proj.weight` — `[kvHeads · hd, dim]`.
    public var key: [Float]
    /// `self_attn.v_proj.weight` — `[kvHeads · hd, dim]`.
    public var value: [Float]
    /// `self_attn.o_proj.weight` — `[dim, heads · hd]`.
    public var output: [Float]
    /// `post_attention_layernorm.weight` — `[dim]`.
    public var feedForwardNorm: [Float]
    /// `mlp.gate_proj.weight` — `[ffn, dim]`.
    public var gate: [Float]
    /// `mlp.up_proj.weight` — `[ffn, dim]`.
    public var up: [Float]
    /// `mlp.down_proj.weight` — `[dim, ffn]`.
    public var down: [Float]
    /// `self_attn.{q,k,v}_proj.bias` — `[heads · hd]`, `[kvHeads · hd]`, `[kvHeads · hd]`; empty
    /// when the block has none (``LlamaConfig/attentionBias``).
    public var queryBias: [Float]
    public var keyBias: [Float]
    public var valueBias: [Float]
    /// Norm biases (LayerNorm blocks with bias) — `[dim]` each; empty otherwise. In a parallel
    /// block with separate norms, ``attentionNorm`` is the attention branch's (Falcon `ln_attn`)
    /// and ``feedForwardNorm`` the MLP's (`ln_mlp`); with one shared norm ``feedForwardNorm`` is empty.
    public var attentionNormBias: [Float] = []
    public var feedForwardNormBias: [Float] = []
    /// Bias of the attention output projection — `[dim]`; empty when the block has none.
    public var outputBias: [Float] = []
    /// Biases of the MLP's up and down projections — `[ffn]`, `[dim]`; empty when none.
    public var upBias: [Float] = []
    public var downBias: [Float] = []
    /// Persimmon's per-head q/k LayerNorms — `[hd]` each; empty without QK-layernorm.
    public var queryNorm: [Float] = []
    public var queryNormBias: [Float] = []
    public var keyNorm: [Float] = []
    public var keyNormBias: [Float] = []

    /// Zero-filled buffers of the right sizes, for a source to overwrite in place.
    public init(config c: LlamaConfig) {
        attentionNorm = [Float](repeating: 0, count: c.hiddenSize)
        query = [Float](repeating: 0, count: c.queryDimension * c.hiddenSize)
        key = [Float](repeating: 0, count: c.kvDimension * c.hiddenSize)
        value = [Float](repeating: 0, count: c.kvDimension * c.hiddenSize)
        output = [Float](repeating: 0, count: c.hiddenSize * c.queryDimension)
        feedForwardNorm = [Float](repeating: 0, count: c.hiddenSize)
        gate = [Float](repeating: 0, count: c.intermediateSize * c.hiddenSize)
        up = [Float](repeating: 0, count: c.intermediateSize * c.hiddenSize)
        down = [Float](repeating: 0, count: c.hiddenSize * c.intermediateSize)
        queryBias = [Float](repeating: 0, count: c.attentionBias ? c.queryDimension : 0)
        keyBias = [Float](repeating: 0, count: c.attentionBias ? c.kvDimension : 0)
        valueBias = [Float](repeating: 0, count: c.attentionBias ? c.kvDimension : 0)
        for (_, count, field) in Self.extraTensors(layer: 0, config: c) {
            self[keyPath: field] = [Float](repeating: 0, count: count)
        }
        if !c.block.hasSecondNorm { feedForwardNorm = [] }
        if !c.block.gated { gate = [] }
    }

    public init(
        attentionNorm: [Float], query: [Float], key: [Float], value: [Float], output: [Float],
        feedForwardNorm: [Float], gate: [Float], up: [Float], down: [Float],
        queryBias: [Float] = [], keyBias: [Float] = [], valueBias: [Float] = []
    ) {
        self.attentionNorm = attentionNorm
        self.query = query
        self.key = key
        self.value = value
        self.output = output
        self.feedForwardNorm = feedForwardNorm
        self.gate = gate
        self.up = up
        self.down = down
        self.queryBias = queryBias
        self.keyBias = keyBias
        self.valueBias = valueBias
    }

    /// The HF tensor names of layer `index`, with the element count each must have.
    public static func tensorNames(layer index: Int, config c: LlamaConfig)
        -> [(name: String, elementCount: Int, field: WritableKeyPath<LlamaLayerWeights, [Float]>)]
    {
        let p = "model.layers.\(index)."
        let biases: [(name: String, elementCount: Int, field: WritableKeyPath<LlamaLayerWeights, [Float]>)] =
            c.attentionBias ? [
                (p + "self_attn.q_proj.bias", c.queryDimension, \.queryBias),
                (p + "self_attn.k_proj.bias", c.kvDimension, \.keyBias),
                (p + "self_attn.v_proj.bias", c.kvDimension, \.valueBias),
            ] : []
        var names = biases + [
            (p + "input_layernorm.weight", c.hiddenSize, \.attentionNorm),
            (p + "self_attn.q_proj.weight", c.queryDimension * c.hiddenSize, \.query),
            (p + "self_attn.k_proj.weight", c.kvDimension * c.hiddenSize, \.key),
            (p + "self_attn.v_proj.weight", c.kvDimension * c.hiddenSize, \.value),
            (p + "self_attn.o_proj.weight", c.hiddenSize * c.queryDimension, \.output),
            (p + "post_attention_layernorm.weight", c.hiddenSize, \.feedForwardNorm),
            (p + "mlp.gate_proj.weight", c.intermediateSize * c.hiddenSize, \.gate),
            (p + "mlp.up_proj.weight", c.intermediateSize * c.hiddenSize, \.up),
            (p + "mlp.down_proj.weight", c.hiddenSize * c.intermediateSize, \.down),
        ]
        if !c.block.hasSecondNorm { names.removeAll { $0.field == \.feedForwardNorm } }
        if !c.block.gated { names.removeAll { $0.field == \.gate } }
        return names + extraTensors(layer: index, config: c)
    }

    /// The tensors beyond LLaMA's block that `config.block` asks for, under LLaMA-style names
    /// (the names the weight sources use as keys; a family's tensor layout says where each comes
    /// from). Empty for LLaMA's block.
    static func extraTensors(layer index: Int, config c: LlamaConfig)
        -> [(name: String, elementCount: Int, field: WritableKeyPath<LlamaLayerWeights, [Float]>)]
    {
        let p = "model.layers.\(index).", b = c.block, dim = c.hiddenSize
        var names: [(name: String, elementCount: Int, field: WritableKeyPath<LlamaLayerWeights, [Float]>)] = []
        if b.normBias {
            names.append((p + "input_layernorm.bias", dim, \.attentionNormBias))
            if b.hasSecondNorm { names.append((p + "post_attention_layernorm.bias", dim, \.feedForwardNormBias)) }
        }
        if b.outputBias { names.append((p + "self_attn.o_proj.bias", dim, \.outputBias)) }
        if b.mlpBias {
            names.append((p + "mlp.up_proj.bias", c.intermediateSize, \.upBias))
            names.append((p + "mlp.down_proj.bias", dim, \.downBias))
        }
        if b.qkNorm {
            names.append((p + "self_attn.q_norm.weight", c.headDimension, \.queryNorm))
            names.append((p + "self_attn.q_norm.bias", c.headDimension, \.queryNormBias))
            names.append((p + "self_attn.k_norm.weight", c.headDimension, \.keyNorm))
            names.append((p + "self_attn.k_norm.bias", c.headDimension, \.keyNormBias))
        }
        return names
    }

    /// Checks every buffer's size against `config`.
    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)`` naming the HF tensor.
    public func checkSizes(layer index: Int, config: LlamaConfig) throws {
        for (name, count, field) in Self.tensorNames(layer: index, config: config) where self[keyPath: field].count != count {
            throw VerifyError.tensorSize(name: name, expected: count, actual: self[keyPath: field].count)
        }
    }
}

/// Where the forward pass gets its float32 weights, one piece at a time.
///
/// The pass asks for the embedding rows of its tokens, then each layer in turn (into one
/// reused ``LlamaLayerWeights``), then the final norm and the output head. A source backed by
/// a quantized file dequantizes each layer when asked, so peak memory is about one layer in
/// float32 plus activations plus the output head — never the whole model in float32.
public protocol LlamaWeightSource {
    /// Writes row `token` of `model.embed_tokens.weight` (`hiddenSize` floats) into `row`.
    func embeddingRow(_ token: Int, into row: UnsafeMutableBufferPointer<Float>) throws
    /// Overwrites `weights` with layer `index` (buffers arrive sized for the configuration;
    /// a source may fill them in place or replace them).
    func loadLayer(_ index: Int, into weights: inout LlamaLayerWeights) throws
    /// `model.norm.weight` — `[dim]`.
    func finalNorm() throws -> [Float]
    /// The output projection `[vocab, dim]`: `lm_head.weight`, or the embedding matrix when
    /// the embeddings are tied.
    func outputHead() throws -> [Float]
    /// Writes row `index` of the learned position table (GPT-2 `wpe`, OPT `embed_positions`;
    /// OPT's offset of 2 already added by the caller). Only asked for by blocks with learned positions.
    func positionEmbeddingRow(_ index: Int, into row: UnsafeMutableBufferPointer<Float>) throws
    /// The final norm's bias `[dim]` (LayerNorm blocks); empty when there is none.
    func finalNormBias() throws -> [Float]
    /// The output head's bias `[vocab]` (phi); empty when there is none.
    func outputBias() throws -> [Float]
}

extension LlamaWeightSource {
    /// No learned positions: LLaMA's block never asks.
    public func positionEmbeddingRow(_ index: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        throw VerifyError.missingTensor("position embeddings")
    }
    /// No final norm bias (RMSNorm).
    public func finalNormBias() throws -> [Float] { [] }
    /// No head bias.
    public func outputBias() throws -> [Float] { [] }
}

/// All weights held in memory in float32: for tests and for small models.
public struct InMemoryLlamaWeights: LlamaWeightSource, Sendable {
    public var config: LlamaConfig
    /// `model.embed_tokens.weight` — `[vocab, dim]`.
    public var embedding: [Float]
    public var layers: [LlamaLayerWeights]
    /// `model.norm.weight` — `[dim]`.
    public var norm: [Float]
    /// `lm_head.weight` — `[vocab, dim]`; nil when tied to ``embedding``.
    public var head: [Float]?

    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)`` if a buffer has the wrong size.
    public init(config: LlamaConfig, embedding: [Float], layers: [LlamaLayerWeights], norm: [Float], head: [Float]?) throws {
        let c = config
        guard embedding.count == c.vocabularySize * c.hiddenSize else {
            throw VerifyError.tensorSize(name: "model.embed_tokens.weight",
                                         expected: c.vocabularySize * c.hiddenSize, actual: embedding.count)
        }
        guard layers.count == c.layerCount else {
            throw VerifyError.badConfigValue(key: "num_hidden_layers", reason: "\(layers.count) layers supplied")
        }
        for (i, layer) in layers.enumerated() { try layer.checkSizes(layer: i, config: c) }
        guard norm.count == c.hiddenSize else {
            throw VerifyError.tensorSize(name: "model.norm.weight", expected: c.hiddenSize, actual: norm.count)
        }
        if let head, head.count != c.vocabularySize * c.hiddenSize {
            throw VerifyError.tensorSize(name: "lm_head.weight", expected: c.vocabularySize * c.hiddenSize, actual: head.count)
        }
        if head == nil && !c.tiedEmbeddings { throw VerifyError.missingTensor("lm_head.weight") }
        self.config = config
        self.embedding = embedding
        self.layers = layers
        self.norm = norm
        self.head = head
    }

    public func embeddingRow(_ token: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        let dim = config.hiddenSize
        guard token >= 0, token < config.vocabularySize else {
            throw VerifyError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
        }
        _ = row.update(fromContentsOf: embedding[token * dim ..< (token + 1) * dim])
    }

    public func loadLayer(_ index: Int, into weights: inout LlamaLayerWeights) throws {
        weights = layers[index]
    }

    public func finalNorm() throws -> [Float] { norm }
    public func outputHead() throws -> [Float] { head ?? embedding }
}

/// Adapts any reader that returns a whole float32 tensor by HF name — safetensors, GGUF
/// (after un-permuting q/k), bitsandbytes (after dequantizing) — to ``LlamaWeightSource``.
///
/// The embedding matrix is read once, on the first embedding lookup, and kept (it is the
/// output head as well when tied). Layers are read on every ``loadLayer(_:into:)`` call.
public final class DenseTensorProvider: LlamaWeightSource {
    /// Returns the float32 elements of the named HF tensor, row-major.
    public typealias TensorReader = (_ hfName: String) throws -> [Float]

    public let config: LlamaConfig
    private let read: TensorReader
    private var embedding: [Float]?

    /// - Parameters:
    ///   - config: the model shape; every tensor is checked against it.
    ///   - tensor: reads one tensor by HF name (`model.layers.3.mlp.up_proj.weight`).
    public init(config: LlamaConfig, tensor: @escaping TensorReader) {
        self.config = config
        self.read = tensor
    }

    private func tensor(_ name: String, elementCount: Int) throws -> [Float] {
        let values = try read(name)
        guard values.count == elementCount else {
            throw VerifyError.tensorSize(name: name, expected: elementCount, actual: values.count)
        }
        return values
    }

    private func embeddingMatrix() throws -> [Float] {
        if let embedding { return embedding }
        let e = try tensor("model.embed_tokens.weight", elementCount: config.vocabularySize * config.hiddenSize)
        embedding = e
        return e
    }

    public func embeddingRow(_ token: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        guard token >= 0, token < config.vocabularySize else {
            throw VerifyError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
        }
        let dim = config.hiddenSize
        let e = try embeddingMatrix()
        _ = row.update(fromContentsOf: e[token * dim ..< (token + 1) * dim])
    }

    public func loadLayer(_ index: Int, into weights: inout LlamaLayerWeights) throws {
        for (name, count, field) in LlamaLayerWeights.tensorNames(layer: index, config: config) {
            weights[keyPath: field] = try tensor(name, elementCount: count)
        }
    }

    public func finalNorm() throws -> [Float] {
        try tensor("model.norm.weight", elementCount: config.hiddenSize)
    }

    public func outputHead() throws -> [Float] {
        if config.tiedEmbeddings { return try embeddingMatrix() }
        return try tensor("lm_head.weight", elementCount: config.vocabularySize * config.hiddenSize)
    }
}
