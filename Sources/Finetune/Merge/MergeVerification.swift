import TensorCore
public import Formats
public import Verify

/// The float32 weights of a ``MergeInput`` for the forward pass, optionally with a LoRA
/// adapter's deltas added as each tensor is loaded (base + adapter).
///
/// Layers are decoded on every ``loadLayer(_:into:)`` call (the pass streams them); the
/// embedding matrix is decoded once and kept, since it is read row by row and may be the head.
public final class MergeWeightSource: LlamaWeightSource {
    public let input: MergeInput
    public let adapter: PEFTAdapter?
    public let threads: Int
    /// The input's forward-pass configuration.
    public let config: LlamaConfig
    private var embedding: [Float]?
    private let modules: [String: LoRAModule]

    /// - Throws: ``AdapterError`` when the adapter's modules do not fit the input.
    public init(input: MergeInput, adapter: PEFTAdapter?, threads: Int) throws {
        self.input = input
        self.adapter = adapter
        self.threads = max(1, threads)
        guard let config = input.config else {
            throw PathError(path: input.path, VerifyError.unsupportedConfig("the forward pass of \(input.familyName)"))
        }
        self.config = config
        modules = try adapter.map { try LoRAMerge.match($0, to: input) } ?? [:]
    }

    /// The tensor `name` in float32 with the adapter's delta, checked for size.
    func tensor(_ name: String, count: Int) throws -> [Float] {
        guard let t = input.tensor(named: name) else { throw PathError(path: input.path, VerifyError.missingTensor(name)) }
        var values = try input.values(of: t, threads: threads)
        guard values.count == count else { throw PathError(path: input.path, VerifyError.tensorSize(name: name, expected: count, actual: values.count)) }
        if let m = modules[name], let adapter {
            let mats = try adapter.matrices(of: m)
            values.withUnsafeMutableBufferPointer { LoRADelta.add(m, matrices: mats, to: $0) }
        }
        return values
    }

    private func embeddingMatrix() throws -> [Float] {
        if let embedding { return embedding }
        let c = config
        let e = try tensor("model.embed_tokens.weight", count: c.vocabularySize * c.hiddenSize)
        embedding = e
        return e
    }

    public func embeddingRow(_ token: Int, into row: UnsafeMutableBufferPointer<Float>) throws {
        let dim = config.hiddenSize
        guard token >= 0, token < config.vocabularySize else {
            throw VerifyError.tokenOutOfRange(token: token, vocabularySize: config.vocabularySize)
        }
        let e = try embeddingMatrix()
        _ = row.update(fromContentsOf: e[token * dim ..< (token + 1) * dim])
    }

    public func loadLayer(_ index: Int, into weights: inout LlamaLayerWeights) throws {
        for (name, count, field) in LlamaLayerWeights.tensorNames(layer: index, config: config) {
            weights[keyPath: field] = try tensor(name, count: count)
        }
    }

    public func finalNorm() throws -> [Float] { try tensor("model.norm.weight", count: config.hiddenSize) }

    public func outputHead() throws -> [Float] {
        let c = config
        if c.tiedEmbeddings { return try embeddingMatrix() }
        return try tensor("lm_head.weight", count: c.vocabularySize * c.hiddenSize)
    }
}

/// The check a merge ends with: the merged model against the model the adapter was trained
/// with (the base as stored plus the adapter, in float32), on the same tokens.
public enum MergeVerification {
    /// The default text: plain English prose, long enough for a few dozen tokens.
    public static let defaultText = """
        The old lighthouse keeper climbed the spiral stairs every evening at dusk. From the top he \
        could see the fishing boats returning to the harbour, their lamps flickering like stars \
        that had fallen onto the dark water.
        """

    /// Runs both models on `text` (tokenized with the reference's tokenizer, at most 128 tokens)
    /// and compares the logits at every position.
    /// - Throws: reader and forward-pass errors.
    /// - Parameter tokenizerFrom: inputs to take the tokenizer from, first that has one (default: the reference).
    public static func compare(reference: MergeInput, adapter: PEFTAdapter, merged: MergeInput, text: String?,
                               tokenizerFrom: [MergeInput]? = nil, threads: Int) throws -> MergeReport.Verification {
        let referenceWeights = try MergeWeightSource(input: reference, adapter: adapter, threads: threads)
        let candidateWeights = try MergeWeightSource(input: merged, adapter: nil, threads: threads)
        let config = referenceWeights.config
        var limit = min(128, config.maxPositions)
        // A Mistral base against its merged GGUF: GGUF has no sliding window (llama.cpp runs full
        // attention), so the two compute the same only within the window.
        if config.slidingWindow != candidateWeights.config.slidingWindow,
           let window = [config.slidingWindow, candidateWeights.config.slidingWindow].compactMap({ $0 }).min() {
            limit = min(limit, window)
        }
        let tokens = Self.tokens(text: text, from: tokenizerFrom ?? [reference], config: config, limit: limit)
        let referenceModel = try LlamaModel(config: config, weights: referenceWeights, threadCount: threads)
        let candidateModel = try LlamaModel(config: candidateWeights.config, weights: candidateWeights, threadCount: threads)
        let expected = try referenceModel.logits(for: tokens)
        let actual = try candidateModel.logits(for: tokens)
        return metrics(reference: expected, candidate: actual, tokens: tokens, vocabularySize: config.vocabularySize)
    }

    /// The same check for the families Verify runs through their own tensor layouts (GPT-2, OPT,
    /// phi, Falcon, MPT, Persimmon, Baichuan, Qwen-7B: ``MergeInput/config`` nil): the base with the
    /// adapter applied on the fly by ``LoRAAdapter`` (Conv1D and fused q|k|v handled as PEFT does)
    /// against the merged output (HF directory or the family's GGUF), both opened by ``LlamaCheckpoint``.
    /// - Throws: ``Failure`` (`.unsupported`) for a bitsandbytes base of a Conv1D family (its
    ///   weights are stored transposed to Linear4bit's `[out, in]`, which the GPT-2 layout does not
    ///   read), reader and forward-pass errors.
    public static func compareFamily(reference: MergeInput, adapter: PEFTAdapter, merged: ModelInput, text: String?,
                                     tokenizerFrom: [MergeInput]? = nil, threads: Int) throws -> MergeReport.Verification {
        if reference.isQuantized, let targets = reference.loraTargets, !targets.conv1D.isEmpty {
            throw Failure(.unsupported, "the forward pass does not read a bitsandbytes \(reference.familyName) (Conv1D weights stored as Linear4bit)")
        }
        let base = try LlamaCheckpoint(reference.input)
        let candidate = try LlamaCheckpoint(merged)
        let config = base.config
        let limit = min(128, config.maxPositions, candidate.config.maxPositions)
        let tokens = Self.tokens(text: text, from: tokenizerFrom ?? [reference], config: config, limit: limit)
        let expected = try base.model(threads: threads, adapter: try LoRAAdapter(adapter)).logits(for: tokens)
        let actual = try candidate.model(threads: threads).logits(for: tokens)
        guard candidate.config.vocabularySize == config.vocabularySize else {
            throw PathError(path: merged.path, VerifyError.tensorSize(name: "logits", expected: expected.count, actual: actual.count))
        }
        return metrics(reference: expected, candidate: actual, tokens: tokens, vocabularySize: config.vocabularySize)
    }

    /// The verification tokens: `text` (or ``defaultText``) with the first tokenizer found, ids
    /// inside the vocabulary, at most `limit`; a fixed spread of ids when no tokenizer gives two.
    static func tokens(text: String?, from inputs: [MergeInput], config: LlamaConfig, limit: Int) -> [Int] {
        let tokenizer = inputs.lazy.compactMap { try? Self.tokenizer(for: $0) }.first
        var tokens = tokenizer?.encode(text ?? defaultText, addSpecialTokens: true).filter { $0 < config.vocabularySize } ?? []
        if tokens.count < 2 {
            // No tokenizer: a fixed spread of ids still exercises every weight.
            let v = config.vocabularySize
            tokens = (0 ..< min(32, limit)).map { ($0 * 7919 + 1) % v }
        }
        return Array(tokens.prefix(limit))
    }

    /// KLD, top-1 agreement and largest logit difference of two `[T, vocab]` logit arrays.
    public static func metrics(reference: [Float], candidate: [Float], tokens: [Int], vocabularySize v: Int) -> MergeReport.Verification {
        let t = tokens.count
        var sumKLD = 0.0, maxKLD = 0.0, same = 0
        var maxDiff: Float = 0
        for i in 0 ..< t {
            let a = reference[i * v ..< (i + 1) * v], b = candidate[i * v ..< (i + 1) * v]
            let target = i + 1 < t ? tokens[i + 1] : tokens[i]
            let s = LogitMetrics.score(base: a, candidate: b, target: target)
            sumKLD += s.kld
            maxKLD = max(maxKLD, s.kld)
            if s.sameTop { same += 1 }
            for (x, y) in zip(a, b) { maxDiff = max(maxDiff, abs(x - y)) }
        }
        return MergeReport.Verification(tokenCount: t, meanKLD: t > 0 ? sumKLD / Double(t) : 0, maxKLD: maxKLD,
                                        top1Agreement: t > 0 ? Double(same) / Double(t) : 1, maxLogitDifference: maxDiff)
    }

    /// The tokenizer of an HF directory or GGUF input.
    static func tokenizer(for input: MergeInput) throws -> Tokenizer {
        switch input.input {
        case .hf(let d): try Tokenizer.load(directory: d.path)
        case .gguf(let m): try Tokenizer(gguf: m.metadata)
        case .safetensors(let c): throw PathError(path: c.path, Failure(.unsupported, "no tokenizer"))
        }
    }
}
