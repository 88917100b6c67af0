public import TensorCore
import Formats
public import Quantize
import Pipeline
public import Verify

/// The frozen base model of LoRA training: embeddings, norms and output head in float32, and
/// the seven projection matrices of every layer either in float32 or in bitsandbytes 4-bit
/// (QLoRA's NF4 with double-quantized block scales: about 4.13 bits per weight).
///
/// Training asks for one layer at a time (``loadLayer(_:into:)``); a 4-bit layer is dequantized
/// then into the caller's reused buffers, so float32 copies of the matrices never exceed one
/// layer. Dequantized values are the float32 products `code × absmax`, not rounded to the
/// weight's recorded dtype: that is what bitsandbytes' training forward (`MatMul4Bit` →
/// `gemm_4bit`, which dequantizes straight to the activations' float32) multiplies with.
/// (Its backward pass instead uses `dequantize_4bit`, rounded to the recorded dtype, for
/// `∂x`; with a float32-recorded weight the two agree.) Conforms to ``LlamaWeightSource``, so
/// the inference ``LlamaModel`` runs on the same weights.
public final class FrozenBase: LlamaWeightSource, @unchecked Sendable {
    // @unchecked: immutable after init; the matrices are values.

    /// How the projection matrices are held in memory.
    public enum Storage: Sendable, Hashable {
        /// Dense float32 (as loaded, upcast from f16/bf16).
        case float32
        /// bitsandbytes NF4 (`quantize_4bit`, `blocksize` 64 by default) with the block scales
        /// double-quantized (`compress_statistics=True`) unless `doubleQuant` is false. Already
        /// quantized 4-bit checkpoint weights are kept as stored.
        case nf4(blockSize: Int = 64, doubleQuant: Bool = true)
    }

    /// One stored projection matrix `[out, in]`.
    public enum StoredMatrix: Sendable {
        case dense([Float])
        case fourBit(BNB4BitTensor)

        /// Bytes this matrix occupies in memory.
        public var byteCount: Int {
            switch self {
            case .dense(let v): v.count * 4
            case .fourBit(let t):
                switch t.absmax {
                case .plain(let a): t.packed.count + 4 * a.count
                case .doubleQuantized(let dq): t.packed.count + dq.codes.count + 4 * dq.nestedAbsmax.count + 4
                }
            }
        }
    }

    /// One decoder layer: its two norm weights, its seven projections in ``LoRATarget`` order
    /// and, for Qwen2 (``LlamaConfig/attentionBias``), the frozen q/k/v biases.
    public struct StoredLayer: Sendable {
        public var attentionNorm: [Float]
        public var feedForwardNorm: [Float]
        /// q, k, v, o, gate, up, down.
        public var matrices: [StoredMatrix]
        /// q, k, v projection biases; empty when the block has none.
        public var attentionBiases: [[Float]]
        /// The other frozen vectors of a non-LLaMA block, in ``vectorFields`` order (norm
        /// biases, output and MLP biases, q/k norms); empty for LLaMA's block.
        public var vectors: [[Float]]

        public init(attentionNorm: [Float], feedForwardNorm: [Float], matrices: [StoredMatrix], attentionBiases: [[Float]] = [],
                    vectors: [[Float]] = []) {
            self.attentionNorm = attentionNorm
            self.feedForwardNorm = feedForwardNorm
            self.matrices = matrices
            self.attentionBiases = attentionBiases
            self.vectors = vectors
        }

        /// The layer vectors besides norm weights and q/k/v biases that training reads.
        static var vectorFields: [WritableKeyPath<LlamaLayerWeights, [Float]>] {
            [\.attentionNormBias, \.feedForwardNormBias, \.outputBias, \.upBias, \.downBias,
             \.queryNorm, \.queryNormBias, \.keyNorm, \.keyNormBias]
        }

        /// Sets the q/k/v bias fields of `weights` (empty without biases) and the other vectors.
        func copyBiases(into weights: inout LlamaLayerWeights) {
            weights.queryBias = attentionBiases.count == 3 ? attentionBiases[0] : []
            weights.keyBias = attentionBiases.count == 3 ? attentionBiases[1] : []
            weights.valueBias = attentionBiases.count == 3 ? attentionBiases[2] : []
            guard vectors.count == Self.vectorFields.count else { return }
            for (field, v) in zip(Self.vectorFields, vectors) { weights[keyPath: field] = v }
        }
    }

    public let config: LlamaConfig
    /// `model.embed_tokens.weight` `[vocab, dim]`.
    public let embedding: [Float]
    /// `model.norm.weight`.
    public let norm: [Float]
    /// `lm_head.weight`, nil when tied to the embeddings.
    public let head: [Float]?
    public let layers: [StoredLayer]
    /// The learned position table `[rows, dim]` (GPT-2, OPT), empty otherwise.
    public let positions: [Float]
    /// The final norm's bias (LayerNorm blocks), empty otherwise.
    public let finalNormBiasValues: [Float]
    /// The output head's bias (phi), empty otherwise.
    public let headBias: [Float]
    /// Threads used to dequantize a 4-bit layer (the result does not depend on it).
    public var threadCount: Int

    /// Wraps stored weights, checking every size against `config`.
    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)`` naming the HF tensor.
    public init(config c: LlamaConfig, embedding: [Float], norm: [Float], head: [Float]?, layers: [StoredLayer],
                positions: [Float] = [], finalNormBias: [Float] = [], headBias: [Float] = [], threadCount: Int = 1) throws {
        try c.validate()
        func check(_ name: String, _ expected: Int, _ actual: Int) throws {
            guard expected == actual else { throw VerifyError.tensorSize(name: name, expected: expected, actual: actual) }
        }
        try check("model.embed_tokens.weight", c.vocabularySize * c.hiddenSize, embedding.count)
        try check("model.norm.weight", c.hiddenSize, norm.count)
        if let head { try check("lm_head.weight", c.vocabularySize * c.hiddenSize, head.count) }
        if head == nil && !c.tiedEmbeddings { throw VerifyError.missingTensor("lm_head.weight") }
        guard layers.count == c.layerCount else {
            throw VerifyError.badConfigValue(key: "num_hidden_layers", reason: "\(layers.count) layers supplied")
        }
        for (l, layer) in layers.enumerated() {
            let p = "model.layers.\(l)."
            try check(p + "input_layernorm.weight", c.hiddenSize, layer.attentionNorm.count)
            // A parallel block over one norm (phi, Falcon 7B) has no second norm.
            try check(p + "post_attention_layernorm.weight", c.block.hasSecondNorm ? c.hiddenSize : 0, layer.feedForwardNorm.count)
            guard layer.matrices.count == LoRATarget.allCases.count else {
                throw VerifyError.badConfigValue(key: "layers", reason: "layer \(l) has \(layer.matrices.count) matrices, needs 7")
            }
            let biasNames = ["q_proj", "k_proj", "v_proj"].map { p + "self_attn.\($0).bias" }
            if c.attentionBias {
                guard layer.attentionBiases.count == 3 else { throw VerifyError.missingTensor(biasNames[0]) }
                for (name, (b, n)) in zip(biasNames, zip(layer.attentionBiases, [c.queryDimension, c.kvDimension, c.kvDimension])) {
                    try check(name, n, b.count)
                }
            } else if !layer.attentionBiases.isEmpty {
                throw VerifyError.unsupportedConfig("q/k/v biases in a block without attention biases")
            }
            for (target, m) in zip(LoRATarget.allCases, layer.matrices) {
                // A plain MLP has no gate: its slot stays empty.
                if target == .gate && !c.block.gated {
                    try check(p + "mlp.gate_proj.weight", 0, m.byteCount)
                    continue
                }
                let (n, o) = target.features(c)
                let count: Int
                switch m {
                case .dense(let v): count = v.count
                case .fourBit(let t): count = t.shape == [o, n] ? t.elementCount : -1
                }
                try check(p + target.modulePath + ".weight", n * o, count)
            }
        }
        self.config = c
        self.embedding = embedding
        self.norm = norm
        self.head = head
        self.layers = layers
        self.positions = positions
        self.finalNormBiasValues = finalNormBias
        self.headBias = headBias
        self.threadCount = max(1, threadCount)
    }

    /// Reads every weight from `source` once, quantizing the projections when `storage` asks for it.
    /// - Parameters:
    ///   - originalDType: the checkpoint's dtype, recorded in the 4-bit state (bitsandbytes'
    ///     `quant_state.dtype`).
    /// - Throws: what the source throws; ``VerifyError`` for wrong sizes; ``BNBError``.
    public convenience init(source: any LlamaWeightSource, config c: LlamaConfig, storage: Storage,
                            originalDType: DType = .f32, threadCount: Int = 1) throws {
        try c.validate()
        let dim = c.hiddenSize
        var embedding: [Float]
        if c.tiedEmbeddings {
            embedding = try source.outputHead()
        } else {
            embedding = [Float](repeating: 0, count: c.vocabularySize * dim)
            try embedding.withUnsafeMutableBufferPointer { e in
                for token in 0 ..< c.vocabularySize {
                    try source.embeddingRow(token, into: UnsafeMutableBufferPointer(rebasing: e[token * dim ..< (token + 1) * dim]))
                }
            }
        }
        var buffer = LlamaLayerWeights(config: c)
        var layers: [StoredLayer] = []
        for l in 0 ..< c.layerCount {
            try source.loadLayer(l, into: &buffer)
            try buffer.checkSizes(layer: l, config: c)
            let dense = [buffer.query, buffer.key, buffer.value, buffer.output, buffer.gate, buffer.up, buffer.down]
            let matrices = try zip(LoRATarget.allCases, dense).map { target, values in
                target == .gate && !c.block.gated ? StoredMatrix.dense([])
                    : try Self.store(values, shape: Self.shape(target, c), dtype: originalDType, storage: storage, threads: threadCount)
            }
            let llama = c.runsLlamaBlock
            layers.append(StoredLayer(attentionNorm: buffer.attentionNorm, feedForwardNorm: buffer.feedForwardNorm, matrices: matrices,
                                      attentionBiases: c.attentionBias ? [buffer.queryBias, buffer.keyBias, buffer.valueBias] : [],
                                      vectors: llama ? [] : StoredLayer.vectorFields.map { buffer[keyPath: $0] }))
        }
        var positions: [Float] = []
        if case .learned(let offset) = c.block.positions {
            positions = [Float](repeating: 0, count: (c.maxPositions + offset) * dim)
            try positions.withUnsafeMutableBufferPointer { p in
                for r in 0 ..< c.maxPositions + offset {
                    try source.positionEmbeddingRow(r, into: UnsafeMutableBufferPointer(rebasing: p[r * dim ..< (r + 1) * dim]))
                }
            }
        }
        try self.init(config: c, embedding: embedding, norm: try source.finalNorm(),
                      head: c.tiedEmbeddings ? nil : try source.outputHead(), layers: layers, positions: positions,
                      finalNormBias: try source.finalNormBias(), headBias: try source.outputBias(), threadCount: threadCount)
    }

    static func shape(_ target: LoRATarget, _ c: LlamaConfig) -> [Int] {
        let (n, m) = target.features(c)
        return [m, n]
    }

    static func store(_ values: [Float], shape: [Int], dtype: DType, storage: Storage, threads: Int) throws -> StoredMatrix {
        switch storage {
        case .float32:
            return .dense(values)
        case .nf4(let blockSize, let doubleQuant):
            let t = try values.withUnsafeBufferPointer {
                try BNB4BitTensor.quantize($0, shape: shape, dtype: dtype, kind: .nf4, blockSize: blockSize,
                                           doubleQuant: doubleQuant, threads: threads)
            }
            return .fourBit(t)
        }
    }

    /// Bytes the projection matrices occupy (what ``Storage`` saves).
    public var matrixByteCount: Int {
        layers.reduce(0) { $0 + $1.matrices.reduce(0) { $0 + $1.byteCount } }
    }

    /// Bytes of all weights held.
    public var byteCount: Int {
        matrixByteCount + 4 * (embedding.count + norm.count + (head?.count ?? 0)
            + layers.reduce(0) { $0 + $1.attentionNorm.count + $1.feedForwardNorm.count + $1.attentionBiases.reduce(0) { $0 + $1.count } })
    }

    // MARK: - LlamaWeightSource

    public func embeddingRow(_ token: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        let dim = config.hiddenSize
        guard token >= 0, token < config.vocabularySize else {
            throw VerifyError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
        }
        _ = row.update(fromContentsOf: embedding[token * dim ..< (token + 1) * dim])
    }

    /// Writes layer `index` into `weights` in float32, dequantizing 4-bit matrices into the
    /// buffers already there (no allocation when they have the right sizes and are unshared).
    public func loadLayer(_ index: Int, into weights: inout LlamaLayerWeights) throws {
        let layer = layers[index]
        weights.attentionNorm = layer.attentionNorm
        weights.feedForwardNorm = layer.feedForwardNorm
        layer.copyBiases(into: &weights)
        let fields: [WritableKeyPath<LlamaLayerWeights, [Float]>] = [\.query, \.key, \.value, \.output, \.gate, \.up, \.down]
        for (field, matrix) in zip(fields, layer.matrices) {
            switch matrix {
            case .dense(let values):
                weights[keyPath: field] = values
            case .fourBit(let t):
                if weights[keyPath: field].count != t.elementCount {
                    weights[keyPath: field] = [Float](repeating: 0, count: t.elementCount)
                }
                try weights[keyPath: field].withUnsafeMutableBufferPointer { out in
                    try t.dequantize(into: out, threads: threadCount)
                }
            }
        }
    }

    public func finalNorm() throws -> [Float] { norm }
    public func outputHead() throws -> [Float] { head ?? embedding }
    public func finalNormBias() throws -> [Float] { finalNormBiasValues }
    public func outputBias() throws -> [Float] { headBias }

    public func positionEmbeddingRow(_ index: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        let dim = config.hiddenSize
        guard index >= 0, (index + 1) * dim <= positions.count else {
            throw VerifyError.badConfigValue(key: "max_position_embeddings", reason: "no learned position \(index)")
        }
        _ = row.update(fromContentsOf: positions[index * dim ..< (index + 1) * dim])
    }
}

extension FrozenBase {
    /// Loads a Hugging Face LLaMA directory: dense safetensors (f32/f16/bf16) or a bitsandbytes
    /// checkpoint as transformers saves it. 4-bit weights stay quantized as stored (with
    /// ``Storage/nf4(blockSize:doubleQuant:)``) or are dequantized to float32 products
    /// (``Storage/float32``; see the type's note on rounding); int8 weights are dequantized;
    /// dense projections are quantized at load for `.nf4` with their dtype recorded, as
    /// transformers + bitsandbytes would quantize them.
    /// - Throws: ``PathError`` for unreadable files, ``VerifyError`` for configurations or
    ///   tensors the forward pass cannot use.
    /// Loads the GGUF of a family other than LLaMA/Qwen2 (GPT-2, phi-2, Falcon, MPT, Qwen-7B)
    /// through Verify's family layout, which presents its tensors as the HF checkpoint's (Conv1D
    /// layout, Falcon's regrouped q|k|v and split tensors undone): an f32 GGUF gives the weights
    /// of the HF checkpoint it was converted from, bit for bit.
    ///
    /// The block trained is the HF model's, the one PEFT trains the adapter on: the GGUF
    /// configuration's GELU, llama.cpp's f16-table form (``BlockDescription/Activation/geluGGML``, an
    /// inference approximation), becomes the family's own (tanh for GPT-2 and phi, exact for
    /// Falcon and MPT, as their HF configs default to).
    /// - Throws: ``TrainingError/familyNotTrainable(family:missing:)`` for a GGUF architecture
    ///   training refuses (``TrainingFamily/check(ggufArchitecture:)``); what opening throws.
    public static func load(familyGGUF path: String, storage: Storage, threadCount: Int = 1) throws -> FrozenBase {
        let checkpoint = try LlamaCheckpoint.open(path: path)
        guard case .gguf(let model) = checkpoint.input else {
            throw PathError(path: path, Failure(.usage, "not a GGUF file"))
        }
        let name = model.metadata[GGUFKeys.General.architecture]?.stringValue ?? ""
        try withPath(path) { try TrainingFamily.check(ggufArchitecture: name) }
        var config = checkpoint.config
        if config.block.mlp == .plain(.geluGGML) {
            config.block.mlp = .plain(config.family == .falcon || config.family == .mpt ? .geluExact : .geluTanh)
        }
        return try withPath(path) {
            try FrozenBase(source: checkpoint.weights(threads: threadCount), config: config, storage: storage,
                           threadCount: threadCount)
        }
    }

    public static func load(modelDirectory path: String, storage: Storage, threadCount: Int = 1) throws -> FrozenBase {
        let directory = try HFModelDirectory(path: path)
        let c = try withPath(directory.path(of: "config.json")) { () throws -> LlamaConfig in
            try TrainingFamily.check(config: directory.config.object)
            let name = directory.config.object["architectures"]?.arrayValue?.first?.stringValue ?? ""
            return try LlamaConfig(hfConfig: directory.config.object, family: ModelFamily(hfArchitecture: name) ?? .llama)
        }
        // The other blocks: read through Verify's family layout (fused and Conv1D tensors split and
        // transposed to [out, in]; Baichuan 2's NormHead rows normalised), projections quantized here
        // for `.nf4`. Qwen-7B and Baichuan 2 7B run LLaMA's block under their own tensor names.
        if !c.runsLlamaBlock || c.family != .llama {
            let checkpoint = try LlamaCheckpoint.open(path: path)
            return try withPath(path) {
                try FrozenBase(source: checkpoint.weights(threads: threadCount), config: checkpoint.config, storage: storage,
                               threadCount: threadCount)
            }
        }
        let source = CheckpointTensorSource(directory.weights)
        let layout = try BNBCheckpointLayout(source: source, config: directory.config)
        var groups: [String: BNBTensorGroup] = [:]
        for g in layout.groups { groups[g.name] = g }

        func group(_ name: String) throws -> BNBTensorGroup {
            guard let g = groups[name] else { throw PathError(path: directory.path, VerifyError.missingTensor(name)) }
            return g
        }
        // Mapped pages of a tensor are released once it is read, so peak memory is the stored
        // model plus one tensor, not the stored model plus the whole file.
        func release(_ g: BNBTensorGroup) { for e in g.entries { source.releasePages(of: e) } }
        func dense(_ name: String, count: Int) throws -> [Float] {
            let g = try group(name)
            defer { release(g) }
            let values = try BNBTensorValues.load(g, from: source, threads: threadCount)
            guard values.count == count else {
                throw PathError(path: directory.path, VerifyError.tensorSize(name: name, expected: count, actual: values.count))
            }
            return values
        }
        func matrix(_ name: String, shape: [Int]) throws -> StoredMatrix {
            let g = try group(name)
            defer { release(g) }
            if case .fourBit(let w) = g, let t = try fourBit(w, source: source) {
                guard t.shape == shape else {
                    throw PathError(path: w.packed.file, VerifyError.tensorSize(name: name, expected: shape.reduce(1, *), actual: t.elementCount))
                }
                // Dequantized here as in loadLayer (float32 products, not rounded to the stored dtype).
                if case .float32 = storage { return .dense(t.dequantized(threads: threadCount)) }
                return .fourBit(t)
            }
            let values = try dense(name, count: shape.reduce(1, *))
            // A 4-bit weight that could not be kept as stored is used dequantized, never requantized.
            if case .fourBit = g { return .dense(values) }
            var dtype = DType.f32
            if case .plain(let e) = g, let d = e.encoding.denseType { dtype = d }
            return try withPath(directory.path) { try store(values, shape: shape, dtype: dtype, storage: storage, threads: threadCount) }
        }

        let dim = c.hiddenSize
        var layers: [StoredLayer] = []
        for l in 0 ..< c.layerCount {
            let p = "model.layers.\(l)."
            let matrices = try LoRATarget.allCases.map { target in
                try matrix(p + target.modulePath + ".weight", shape: shape(target, c))
            }
            let biases = c.attentionBias ? try [("q_proj", c.queryDimension), ("k_proj", c.kvDimension), ("v_proj", c.kvDimension)].map {
                try dense(p + "self_attn.\($0.0).bias", count: $0.1)
            } : []
            layers.append(StoredLayer(attentionNorm: try dense(p + "input_layernorm.weight", count: dim),
                                      feedForwardNorm: try dense(p + "post_attention_layernorm.weight", count: dim),
                                      matrices: matrices, attentionBiases: biases))
        }
        let embedding = try dense("model.embed_tokens.weight", count: c.vocabularySize * dim)
        let head: [Float]? = c.tiedEmbeddings && groups["lm_head.weight"] == nil
            ? nil : try dense("lm_head.weight", count: c.vocabularySize * dim)
        return try withPath(directory.path) {
            try FrozenBase(config: c, embedding: embedding, norm: try dense("model.norm.weight", count: dim), head: head,
                           layers: layers, threadCount: threadCount)
        }
    }

    /// A stored 4-bit weight as a ``BNB4BitTensor``, or nil when it uses code tables other than
    /// bitsandbytes' standard ones (then it is dequantized with its own tables instead).
    private static func fourBit(_ w: BNB4BitWeight, source: any TensorSource) throws -> BNB4BitTensor? {
        let state = w.state
        let kind: FourBit.Kind = state.quantType == .nf4 ? .nf4 : .fp4
        let packed = [UInt8](try source.bytes(of: w.packed))
        guard floats(try source.bytes(of: w.quantMap)) == kind.codeTable else { return nil }
        let absmax: BNB4BitTensor.Absmax
        if let nested = state.nested, let nestedEntry = w.nestedAbsmax, let mapEntry = w.nestedQuantMap {
            guard nested.blockSize == DoubleQuantizedAbsmax.nestedBlockSize,
                  floats(try source.bytes(of: mapEntry)) == BNBCodes.dynamicSigned else { return nil }
            absmax = .doubleQuantized(try withPath(w.absmax.file) {
                try DoubleQuantizedAbsmax(codes: [UInt8](try source.bytes(of: w.absmax)),
                                          nestedAbsmax: floats(try source.bytes(of: nestedEntry)), offset: nested.offset)
            })
        } else {
            absmax = .plain(floats(try source.bytes(of: w.absmax)))
        }
        return try withPath(w.packed.file) {
            try BNB4BitTensor(kind: kind, blockSize: state.blockSize, dtype: state.dtype, shape: state.shape,
                              packed: packed, absmax: absmax)
        }
    }

    private static func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        (0 ..< bytes.count / 4).map {
            Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
        }
    }
}
