public import Formats
public import TensorCore

/// A model input opened for the LLaMA forward pass: its configuration, its tensors under
/// Hugging Face names, and its tokenizer, whatever the file format.
///
/// - HF directory (f32/f16/bf16 safetensors, sharded or not): `config.json` and the tensors as
///   stored; the tokenizer from the directory's tokenizer files.
/// - GGUF (one file or a split set, any type wconv can dequantize): the configuration from the
///   `llama.*` or `qwen2.*` metadata (``LlamaConfig/init(gguf:tensors:ropeDivisors:)``), names mapped to HF,
///   `attn_q`/`attn_k` rows un-permuted while read, `rope_freqs.weight` as RoPE divisors; the
///   tokenizer from the `tokenizer.*` metadata.
///
/// Nothing is decoded when opening: ``weights(threads:adapter:)`` streams the tensors from the
/// memory-mapped files as the forward pass asks for them.
public final class LlamaCheckpoint: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; the mapped files are read-only.

    public let input: ModelInput
    public let config: LlamaConfig
    /// The tensors under HF names.
    public let tensors: ModelTensorTable
    /// The input's tensor bytes.
    public let source: any TensorSource

    /// Where the family keeps its weights; nil for LLaMA's layout (the table's HF names).
    let layout: FamilyTensorLayout?
    /// For a family GGUF: the family's HF layout, which says which rows of which HF module each
    /// layer field is, so a PEFT adapter (HF names) lands on the GGUF's tensors.
    let hfLayout: FamilyTensorLayout?

    public var path: String { input.path }
    public var format: ModelFormat { input.format }

    /// Opens `path` (HF directory, GGUF file) — see ``ModelInput/open(path:)``.
    /// - Throws: ``PathError`` wrapping what the readers throw, ``ModelLoadError`` or ``VerifyError``.
    public static func open(path: String) throws -> LlamaCheckpoint {
        try LlamaCheckpoint(try ModelInput.open(path: path))
    }

    /// Reads the configuration and the tensor table of an opened input.
    /// - Throws: ``PathError`` wrapping ``ModelLoadError`` or ``VerifyError``.
    public init(_ input: ModelInput) throws {
        self.input = input
        let source = input.tensorSource
        self.source = source
        switch input {
        case .hf(let directory):
            (config, tensors) = try withPath(directory.path) {
                let architecture = try directory.config.architecture
                var family = ModelFamily.llama
                if let architecture {
                    guard let f = ModelFamily(hfArchitecture: architecture) else {
                        throw ModelLoadError.unsupportedArchitecture(architecture)
                    }
                    family = f
                }
                return (try LlamaConfig(hfConfig: directory.config.object, family: family),
                        try ModelTensorTable(hf: source, config: directory.config))
            }
            let architecture = try? directory.config.architecture
            let table = tensors
            layout = FamilyTensorLayout.of(config, gguf: false, hfArchitecture: architecture ?? nil) { table[$0] != nil }
            hfLayout = nil
        case .gguf(let model):
            (config, tensors) = try withPath(model.path) {
                var divisors: [Float]?
                if let entry = source.entry(named: "rope_freqs.weight") {
                    let t = try ModelTensor(name: entry.name, entry: entry, permutation: nil)
                    divisors = try t.decodeAll(from: source, threads: 1)
                }
                let config = try LlamaConfig(gguf: model.metadata, tensors: source.entries, ropeDivisors: divisors)
                // The config accepted the architecture, so the description exists.
                let arch = model.metadata[GGUFKeys.General.architecture]?.stringValue ?? ""
                let description = ArchitectureDescription.forGGUF(architecture: arch) ?? .llama
                let table = try ModelTensorTable(gguf: source, architecture: description,
                                                 headCount: config.headCount, kvHeadCount: config.kvHeadCount)
                return (config, table)
            }
            layout = FamilyTensorLayout.of(config, gguf: true, hfArchitecture: nil) { source.entry(named: $0) != nil }
            hfLayout = layout == nil ? nil : FamilyTensorLayout.of(config, gguf: false, hfArchitecture: nil) { _ in true }
        case .safetensors(let checkpoint):
            throw PathError(path: checkpoint.path, ModelLoadError.noConfiguration)
        }
    }

    /// The tokenizer that belongs to the weights.
    /// - Throws: ``PathError`` wrapping ``ModelLoadError/noTokenizer(_:)`` when the input has no
    ///   tokenizer, or what the tokenizer readers throw.
    public func tokenizer() throws -> Tokenizer {
        try LlamaCheckpoint.tokenizer(of: input)
    }

    /// The tokenizer of any model input, without reading its weights or configuration (so it
    /// also works for architectures the forward pass does not run).
    /// - Throws: ``PathError`` wrapping ``ModelLoadError/noTokenizer(_:)`` when the input has no
    ///   tokenizer, or what the tokenizer readers throw.
    public static func tokenizer(of input: ModelInput) throws -> Tokenizer {
        switch input {
        case .hf(let directory):
            guard directory.tokenizerFiles.contains(where: { $0 == "tokenizer.json" || $0 == "tokenizer.model" })
                || FileSystem.exists(FileSystem.join(directory.path, QwenTiktokenVocabulary.fileName)) else {
                throw PathError(path: directory.path, ModelLoadError.noTokenizer("no tokenizer.json, tokenizer.model or qwen.tiktoken"))
            }
            return try Tokenizer.load(directory: directory.path)
        case .gguf(let model):
            guard model.metadata[GGUFKeys.Tokenizer.model] != nil else {
                throw PathError(path: model.path, ModelLoadError.noTokenizer("no tokenizer.ggml.model metadata"))
            }
            return try withPath(model.path) { try Tokenizer(gguf: model.metadata) }
        case .safetensors(let checkpoint):
            throw PathError(path: checkpoint.path, ModelLoadError.noTokenizer("a bare safetensors file has no tokenizer files"))
        }
    }

    /// A weight source that decodes tensors as the forward pass asks for them.
    /// - Parameters:
    ///   - threads: workers for dequantization.
    ///   - adapter: a LoRA adapter added to the targeted matrices as they are loaded.
    public func weights(threads: Int = activeProcessorCount, adapter: LoRAAdapter? = nil) -> StreamingWeights {
        StreamingWeights(checkpoint: self, threads: threads, adapter: adapter)
    }

    /// A forward pass over this checkpoint's weights.
    /// - Parameters:
    ///   - threads: for BLAS, attention and dequantization.
    ///   - adapter: see ``weights(threads:adapter:)``.
    ///   - keepLayersResident: keep every decoded layer (faster token-by-token generation, the
    ///     whole model in float32); otherwise layers are decoded again on every call.
    public func model(threads: Int = activeProcessorCount, adapter: LoRAAdapter? = nil,
                      keepLayersResident: Bool = false) throws -> LlamaModel {
        if let adapter {
            if let layout {
                try checkFamilyAdapter(adapter, layout: layout)
            } else {
                try adapter.check(against: config)
            }
        }
        return try LlamaModel(config: config, weights: weights(threads: threads, adapter: adapter),
                              threadCount: threads, keepLayersResident: keepLayersResident)
    }

    /// Checks a PEFT adapter against a family layout: every update must be of a 2-D weight some
    /// layer reads from the HF checkpoint, with `B·A` the weight's `[out, in]` shape (a Conv1D
    /// weight, stored `[in, out]`, is read transposed, so its `B·A` is `[out, in]` too; a fused
    /// q|k|v module's update covers the whole fused matrix, which the layout splits afterwards).
    /// On a family GGUF the HF layout names the modules: the update's shape is the HF matrix's,
    /// summed from the rows of the layer fields it feeds (each added to them as they load).
    private func checkFamilyAdapter(_ adapter: LoRAAdapter, layout: FamilyTensorLayout) throws {
        var shapes: [String: [Int]] = [:]  // HF weight name → [out, in]
        for l in 0 ..< config.layerCount {
            if case .hf = input {
                for recipe in layout.layer(l).values where recipe.name.hasSuffix(".weight") {
                    guard let t = tensors[recipe.name], t.shape.count == 2 else { continue }
                    shapes[recipe.name] = recipe.transposed ? [t.shape[1], t.shape[0]] : t.shape
                }
            } else if let hfLayout {
                let recipes = hfLayout.layer(l)
                for (_, count, field) in LlamaLayerWeights.tensorNames(layer: l, config: config) {
                    guard let recipe = recipes[field], recipe.name.hasSuffix(".weight"),
                          let width = StreamingWeights.rowLength(of: field, config: config) else { continue }
                    let rows = count / max(1, width)
                    let s = shapes[recipe.name] ?? [0, width]
                    shapes[recipe.name] = [s[0] + rows, width]
                }
            }
        }
        for (name, d) in adapter.deltas.sorted(by: { $0.key < $1.key }) {
            guard let shape = shapes[name] else {
                throw PathError(path: adapter.path, LoRAAdapterError.unsupported(
                    "an update of '\(name)' (only the \(config.family.displayName) decoder layers' Linear weights)"))
            }
            guard shape == [d.outFeatures, d.inFeatures] else {
                throw PathError(path: adapter.path, LoRAAdapterError.shapeMismatch(
                    module: d.module, reason: "B·A is [\(d.outFeatures), \(d.inFeatures)], the base weight is \(shape) (as [out, in])"))
            }
        }
    }

    /// The shape the configuration implies for an HF tensor name of the forward pass, or nil
    /// for a name the forward pass does not use.
    public func expectedShape(of name: String) -> [Int]? {
        LlamaCheckpoint.expectedShape(of: name, config: config)
    }

    /// See ``expectedShape(of:)``.
    public static func expectedShape(of name: String, config c: LlamaConfig) -> [Int]? {
        switch name {
        case "model.embed_tokens.weight", "lm_head.weight": return [c.vocabularySize, c.hiddenSize]
        case "model.norm.weight": return [c.hiddenSize]
        default: break
        }
        guard name.hasPrefix("model.layers.") else { return nil }
        let rest = name.dropFirst("model.layers.".count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0, layer < c.layerCount else {
            return nil
        }
        switch rest[rest.index(after: dot)...] {
        case "input_layernorm.weight", "post_attention_layernorm.weight": return [c.hiddenSize]
        case "self_attn.q_proj.weight": return [c.queryDimension, c.hiddenSize]
        case "self_attn.k_proj.weight", "self_attn.v_proj.weight": return [c.kvDimension, c.hiddenSize]
        case "self_attn.q_proj.bias" where c.attentionBias: return [c.queryDimension]
        case "self_attn.k_proj.bias" where c.attentionBias, "self_attn.v_proj.bias" where c.attentionBias:
            return [c.kvDimension]
        case "self_attn.o_proj.weight": return [c.hiddenSize, c.queryDimension]
        case "mlp.gate_proj.weight", "mlp.up_proj.weight": return [c.intermediateSize, c.hiddenSize]
        case "mlp.down_proj.weight": return [c.hiddenSize, c.intermediateSize]
        default: return nil
        }
    }
}

/// The weights of a ``LlamaCheckpoint`` decoded on demand, for ``LlamaModel``.
///
/// Embedding rows are decoded one token at a time straight from the mapped file; each layer is
/// decoded (dequantized, un-permuted, adapter added) into the model's reused layer buffer, and
/// its pages are released from the resident set afterwards; the final norm and the output head
/// are decoded once (the model keeps them). Peak memory is therefore about one layer in float32
/// plus the output head, whatever the file's type.
public final class StreamingWeights: LlamaWeightSource {
    public let checkpoint: LlamaCheckpoint
    public let threads: Int
    public let adapter: LoRAAdapter?

    init(checkpoint: LlamaCheckpoint, threads: Int, adapter: LoRAAdapter?) {
        self.checkpoint = checkpoint
        self.threads = max(1, threads)
        self.adapter = adapter
    }

    private var config: LlamaConfig { checkpoint.config }

    /// The tensor `name` with its shape checked (errors carry the input's path).
    private func tensor(_ name: String) throws -> ModelTensor {
        try withPath(checkpoint.path) {
            guard let shape = checkpoint.expectedShape(of: name) else { throw VerifyError.missingTensor(name) }
            return try checkpoint.tensors.require(name, shape: shape)
        }
    }

    public func embeddingRow(_ token: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        guard token >= 0, token < config.vocabularySize else {
            throw VerifyError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
        }
        let t: ModelTensor
        if let layout = checkpoint.layout {
            t = try stored(TensorRecipe(name: layout.embedding))
            guard t.shape == [config.vocabularySize, config.hiddenSize] else {
                throw PathError(path: checkpoint.path, ModelLoadError.tensorShape(
                    name: t.entry.name, expected: [config.vocabularySize, config.hiddenSize], actual: t.shape))
            }
        } else {
            t = try tensor("model.embed_tokens.weight")
        }
        try withPath(t.entry.file) {
            try t.decode(rows: token ..< token + 1, from: checkpoint.source, into: row, threads: 1)
        }
    }

    public func loadLayer(_ index: Int, into weights: inout LlamaLayerWeights) throws {
        if let layout = checkpoint.layout {
            try loadLayer(index, layout: layout, into: &weights)
            return
        }
        let names = LlamaLayerWeights.tensorNames(layer: index, config: config)
        let layer = try names.map { try tensor($0.name) }
        // Start reading the whole layer while the first tensors decode.
        for t in layer { t.prefetch(in: checkpoint.source) }
        for (t, (name, count, field)) in zip(layer, names) {
            if weights[keyPath: field].count != count { weights[keyPath: field] = [Float](repeating: 0, count: count) }
            try withPath(t.entry.file) {
                try weights[keyPath: field].withUnsafeMutableBufferPointer { buffer in
                    try t.decode(rows: 0 ..< t.rowCount, from: checkpoint.source, into: buffer, threads: threads)
                    try adapter?.apply(to: buffer, weightName: name)
                }
            }
            t.releasePages(in: checkpoint.source)
        }
    }

    public func finalNorm() throws -> [Float] {
        if let layout = checkpoint.layout { return try whole(TensorRecipe(name: layout.finalNorm), shape: [config.hiddenSize]) }
        return try whole("model.norm.weight")
    }

    public func outputHead() throws -> [Float] {
        guard let layout = checkpoint.layout else {
            return try whole(config.tiedEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight")
        }
        var head = try whole(TensorRecipe(name: layout.head ?? layout.embedding), shape: [config.vocabularySize, config.hiddenSize])
        if layout.normalizeHead { Self.normalizeRows(&head, width: config.hiddenSize) }
        return head
    }

    public func finalNormBias() throws -> [Float] {
        guard let name = checkpoint.layout?.finalNormBias else { return [] }
        return try whole(TensorRecipe(name: name), shape: [config.hiddenSize])
    }

    public func outputBias() throws -> [Float] {
        guard let name = checkpoint.layout?.headBias else { return [] }
        return try whole(TensorRecipe(name: name), shape: [config.vocabularySize])
    }

    public func positionEmbeddingRow(_ index: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        guard let name = checkpoint.layout?.positions else { throw VerifyError.missingTensor("position embeddings") }
        let t = try stored(TensorRecipe(name: name))
        guard t.shape.count == 2, t.shape[1] == config.hiddenSize else {
            throw PathError(path: checkpoint.path, ModelLoadError.tensorShape(name: t.entry.name, expected: [t.shape.first ?? 0, config.hiddenSize], actual: t.shape))
        }
        guard index >= 0, index < t.rowCount else {
            throw VerifyError.contextOverflow(needed: index + 1, capacity: t.rowCount)
        }
        try withPath(t.entry.file) { try t.decode(rows: index ..< index + 1, from: checkpoint.source, into: row, threads: 1) }
    }

    /// Baichuan 2's NormHead: each row over its L2 norm (`F.normalize`, float32, norm ≥ 1e-12).
    static func normalizeRows(_ w: inout [Float], width: Int) {
        guard width > 0 else { return }
        for r in 0 ..< w.count / width {
            var sum: Float = 0
            for i in 0 ..< width { sum += w[r * width + i] * w[r * width + i] }
            let norm = max(sum.squareRoot(), 1e-12)
            for i in 0 ..< width { w[r * width + i] /= norm }
        }
    }

    // MARK: - Family layouts

    /// One decoded fused tensor, kept while its q, k and v are cut from it.
    private var lastDecoded: (recipe: TensorRecipe, values: [Float])?

    /// The stored tensor a recipe reads: by HF name from the table (bitsandbytes weights
    /// included), by GGUF name from the file (with the recipe's permutation).
    private func stored(_ recipe: TensorRecipe) throws -> ModelTensor {
        try withPath(checkpoint.path) {
            if case .gguf = checkpoint.input {
                guard let entry = checkpoint.source.entry(named: recipe.name) else { throw VerifyError.missingTensor(recipe.name) }
                return try ModelTensor(name: recipe.name, entry: entry, permutation: recipe.permutation)
            }
            guard let t = checkpoint.tensors[recipe.name] else { throw VerifyError.missingTensor(recipe.name) }
            return t
        }
    }

    /// A recipe's weight, checked against the element count the block needs.
    /// A recipe's weight, checked against the element count and row length the block needs.
    private func read(_ recipe: TensorRecipe, field name: String, count: Int, rowLength: Int? = nil) throws -> [Float] {
        let t = try stored(recipe)
        let whole = TensorRecipe(name: recipe.name, transposed: recipe.transposed, permutation: recipe.permutation)
        var values: [Float]
        if let last = lastDecoded, last.recipe == whole {
            values = last.values
        } else {
            values = try withPath(t.entry.file) {
                try FamilyTensorLayout.decode(whole, tensor: t, source: checkpoint.source, threads: threads)
            }
            t.releasePages(in: checkpoint.source)
            // The update lands on the whole matrix, [out, in] after a Conv1D's transpose, before a
            // fused q|k|v is cut (PEFT adapts the fused module). On a GGUF input the recipe names
            // are llama.cpp's: the update is added per field in loadLayer(_:layout:into:).
            if let adapter, case .hf = checkpoint.input {
                try withPath(adapter.path) {
                    try values.withUnsafeMutableBufferPointer { try adapter.apply(to: $0, weightName: recipe.name) }
                }
            }
            if recipe.rows != nil { lastDecoded = (whole, values) }
        }
        // Rows and row length after the transpose (a 1-D tensor: one element per row).
        let shape = t.shape
        let rowCount = shape.count == 2 && recipe.transposed ? shape[1] : (shape.first ?? 1)
        let columns = shape.count <= 1 ? 1 : values.count / max(1, rowCount)
        if let rowLength, columns != rowLength {
            throw PathError(path: t.entry.file, ModelLoadError.tensorShape(
                name: t.entry.name, expected: [count / max(1, rowLength), rowLength], actual: shape))
        }
        var result = values
        if let rows = recipe.rows {
            result = []
            result.reserveCapacity(count)
            for r in rows {
                guard r.lowerBound >= 0, r.upperBound <= rowCount else {
                    throw PathError(path: t.entry.file, ModelLoadError.badTensorLayout(
                        name: t.entry.name, reason: "rows \(r) of a fused tensor with \(rowCount) rows"))
                }
                result.append(contentsOf: values[r.lowerBound * columns ..< r.upperBound * columns])
            }
        }
        guard result.count == count else {
            throw PathError(path: checkpoint.path, VerifyError.tensorSize(name: "\(recipe.name) (as \(name))", expected: count, actual: result.count))
        }
        return result
    }

    /// The input width of a layer matrix (nil for vectors), to tell `[out, in]` from `[in, out]`.
    private func rowLength(of field: WritableKeyPath<LlamaLayerWeights, [Float]>) -> Int? {
        Self.rowLength(of: field, config: config)
    }

    static func rowLength(of field: WritableKeyPath<LlamaLayerWeights, [Float]>, config: LlamaConfig) -> Int? {
        switch field {
        case \LlamaLayerWeights.query, \LlamaLayerWeights.key, \LlamaLayerWeights.value,
             \LlamaLayerWeights.gate, \LlamaLayerWeights.up: config.hiddenSize
        case \LlamaLayerWeights.output: config.queryDimension
        case \LlamaLayerWeights.down: config.intermediateSize
        default: nil
        }
    }

    private func loadLayer(_ index: Int, layout: FamilyTensorLayout, into weights: inout LlamaLayerWeights) throws {
        let recipes = layout.layer(index)
        for (name, count, field) in LlamaLayerWeights.tensorNames(layer: index, config: config) {
            guard let recipe = recipes[field] else {
                throw VerifyError.unsupportedConfig("\(config.family.displayName): no tensor layout for '\(name)'")
            }
            weights[keyPath: field] = try read(recipe, field: name, count: count, rowLength: rowLength(of: field))
            // A family GGUF: the update of the HF module this field is (some of the rows of) lands on
            // the field as decoded, which holds those rows in HF order (un-permuted, regrouped).
            if let adapter, case .gguf = checkpoint.input, let hf = checkpoint.hfLayout?.layer(index)[field],
               hf.name.hasSuffix(".weight"), let d = adapter.deltas[hf.name] {
                let rows = hf.rows ?? [0 ..< d.outFeatures]
                try withPath(adapter.path) {
                    try weights[keyPath: field].withUnsafeMutableBufferPointer {
                        try adapter.apply(to: $0, weightName: hf.name, rows: rows)
                    }
                }
            }
        }
        lastDecoded = nil
    }

    private func whole(_ recipe: TensorRecipe, shape: [Int]) throws -> [Float] {
        let t = try stored(recipe)
        guard t.shape == shape else {
            throw PathError(path: checkpoint.path, ModelLoadError.tensorShape(name: t.entry.name, expected: shape, actual: t.shape))
        }
        return try read(recipe, field: recipe.name, count: shape.reduce(1, *))
    }

    private func whole(_ name: String) throws -> [Float] {
        let t = try tensor(name)
        let values = try withPath(t.entry.file) { try t.decodeAll(from: checkpoint.source, threads: threads) }
        t.releasePages(in: checkpoint.source)
        return values
    }
}
