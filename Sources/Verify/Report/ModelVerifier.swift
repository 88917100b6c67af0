public import TensorCore

/// Why a verification cannot run, one case per cause.
public enum VerifyRunError: ClassifiedError, Hashable {
    /// The two models do not predict over the same ids.
    case vocabularyMismatch(reference: Int, candidate: Int)
    /// The text is shorter than one chunk.
    case tooFewTokens(count: Int, contextLength: Int)
    /// The baseline does not fit the candidate or the run.
    case baselineMismatch(String)

    public var kind: ErrorKind { .usage }

    public var description: String {
        switch self {
        case .vocabularyMismatch(let r, let c):
            "the models' vocabularies differ (\(r) and \(c) ids): their logits cannot be compared"
        case .tooFewTokens(let count, let context):
            "the text has \(count) tokens, fewer than one chunk of \(context); give a longer text or a smaller --ctx"
        case .baselineMismatch(let what):
            "the baseline does not fit: \(what)"
        }
    }
}

/// What to evaluate and how.
public struct VerifyOptions: Sendable {
    /// Chunk length (llama-perplexity's `n_ctx`).
    public var contextLength = 512
    public var threads = activeProcessorCount
    public var thresholds = VerifyThresholds()
    /// Compare the tensors of both inputs (needs the reference checkpoint).
    public var compareTensors = true
    /// Compare hidden states layer by layer (needs both models live, of the same shape).
    public var compareLayers = true
    /// Relative error of the hidden states above which a stage is named as diverging.
    public var layerTolerance = VerifyOptions.defaultLayerTolerance
    /// Top-K of a baseline written during the run.
    public var baselineTopK = LogProbBaseline.defaultTopK
    /// Evaluate at most this many chunks (nil: all).
    public var maxChunks: Int?

    /// 5 %: about what Q8_0 leaves after a 30-layer model's last layer, far below what a wrong
    /// tensor causes (the stage it enters jumps to O(1)).
    public static let defaultLayerTolerance = 0.05

    public init() {}
}

/// Where the reference's predictions come from.
public enum VerifyReference {
    /// A model evaluated alongside the candidate: exact KLD from both full logit rows, and the
    /// per-layer comparison.
    case model(LlamaCheckpoint)
    /// Stored top-K log-probabilities (``LogProbBaseline``); the checkpoint, if given, is only
    /// used for the per-tensor comparison.
    case baseline(LogProbBaseline, path: String, checkpoint: LlamaCheckpoint?)
}

/// Progress of a run: the phase and (done, total) within it.
public typealias VerifyProgress = (_ phase: String, _ done: Int, _ total: Int) -> Void

/// `wconv verify`: a candidate against a reference, scored as llama-perplexity
/// `--kl-divergence` does (REFERENCE §9), plus per-layer and per-tensor attribution.
///
/// The token stream is cut into chunks of `contextLength` (a partial last chunk is dropped),
/// each evaluated from position 0 with its first token replaced by BOS when the model adds one,
/// and only the second half is scored: the logits at positions n/2 … n−2, each predicting the
/// next token. Each chunk is one forward call per model, so every weight is decoded once per
/// chunk.
public enum ModelVerifier {
    /// Compares `candidate` with `reference` on `tokens`.
    /// - Parameters:
    ///   - tokens: the evaluation text's ids (ignored with a baseline, which carries its own).
    ///   - bos: the BOS id put at the start of every chunk, or nil if the model adds none.
    ///   - saveBaseline: also record the reference's top-K log-probs (live reference only).
    /// - Returns: the report, and the recorded baseline if asked for.
    /// - Throws: ``VerifyRunError``, and what loading or evaluating the models throws.
    public static func verify(
        reference: VerifyReference, candidate: LlamaCheckpoint, tokens: [Int], bos: Int?,
        options: VerifyOptions, saveBaseline: Bool = false, progress: VerifyProgress? = nil
    ) throws -> (report: VerifyReport, baseline: LogProbBaseline?) {
        let clock = ContinuousClock()
        var notes: [String] = []
        var report: VerifyReport

        // 1. Per-tensor comparison, streamed.
        let tensorStart = clock.now
        var tensorResult: (tensors: [TensorComparison], onlyInReference: [String], onlyInCandidate: [String])?
        let referenceCheckpoint: LlamaCheckpoint?
        switch reference {
        case .model(let r): referenceCheckpoint = r
        case .baseline(_, _, let r): referenceCheckpoint = r
        }
        if options.compareTensors, let r = referenceCheckpoint {
            tensorResult = try TensorComparer.compare(reference: r, candidate: candidate, threads: options.threads) { done, total in
                progress?("tensors", done, total)
            }
        }
        let tensorSeconds = seconds(clock.now - tensorStart)

        // 2. Logits (and hidden states) over the chunks.
        let evaluationStart = clock.now
        let candidateModel = try candidate.model(threads: options.threads)
        switch reference {
        case .model(let r):
            guard r.config.vocabularySize == candidate.config.vocabularySize else {
                throw VerifyRunError.vocabularyMismatch(reference: r.config.vocabularySize, candidate: candidate.config.vocabularySize)
            }
            let chunks = try makeChunks(tokens: tokens, bos: bos, options: options)
            notes += contextNotes(options.contextLength, r.config, candidate.config)
            let referenceModel = try r.model(threads: options.threads)
            let sameShape = r.config.layerCount == candidate.config.layerCount && r.config.hiddenSize == candidate.config.hiddenSize
            let compareLayers = options.compareLayers && sameShape
            if options.compareLayers && !sameShape {
                notes.append("layers not compared: the models have different layer counts or widths")
            }
            var baseline = saveBaseline
                ? try LogProbBaseline(vocabularySize: r.config.vocabularySize, topK: min(options.baselineTopK, r.config.vocabularySize),
                                      contextLength: options.contextLength, tokens: chunks.inputs.flatMap { $0 })
                : nil
            var comparison = LogitComparison()
            var stages = compareLayers ? [DifferenceAccumulator](repeating: DifferenceAccumulator(), count: r.config.layerCount + 2) : []
            let refCache = try referenceModel.makeCache(capacity: options.contextLength)
            let candCache = try candidateModel.makeCache(capacity: options.contextLength)
            let scored = chunks.scoredPositions
            let forward = ForwardOptions(logits: .rows(scored), captureHiddenStates: compareLayers)
            for c in chunks.inputs.indices {
                let input = chunks.inputs[c]
                let ref = try referenceModel.forward(tokens: input, startPosition: 0, cache: refCache, options: forward)
                let cand = try candidateModel.forward(tokens: input, startPosition: 0, cache: candCache, options: forward)
                if compareLayers, let a = ref.hiddenStates, let b = cand.hiddenStates {
                    accumulate(&stages, a, b)
                }
                // Row k of the results is position scored.lowerBound + k.
                let scores = scorePositions(scored.count, threads: options.threads) { k in
                    LogitMetrics.score(base: ref.row(k), candidate: cand.row(k),
                                       target: chunks.target(chunk: c, position: scored.lowerBound + k))
                }
                for score in scores { comparison.add(score) }
                for k in scores.indices {
                    baseline?.append(logits: ref.row(k), target: chunks.target(chunk: c, position: scored.lowerBound + k))
                }
                progress?("chunks", c + 1, chunks.inputs.count)
            }
            report = VerifyReport(
                referencePath: r.path, candidatePath: candidate.path, baselinePath: nil, contextLength: options.contextLength,
                tokenCount: tokens.count, chunkCount: chunks.inputs.count, logits: comparison.summary,
                layerTolerance: options.layerTolerance, thresholds: options.thresholds)
            if compareLayers { report.layers = layerComparisons(stages, layerCount: r.config.layerCount, tolerance: options.layerTolerance) }
            report.evaluationSeconds = seconds(clock.now - evaluationStart)
            report.tensorSeconds = tensorSeconds
            report.notes = notes
            if let tensorResult { apply(tensorResult, to: &report) }
            return (report, baseline)

        case .baseline(let stored, let path, let r):
            guard stored.vocabularySize == candidate.config.vocabularySize else {
                throw VerifyRunError.vocabularyMismatch(reference: stored.vocabularySize, candidate: candidate.config.vocabularySize)
            }
            guard stored.contextLength >= 4 else { throw VerifyRunError.baselineMismatch("it records no chunk length") }
            // The stored stream already has BOS at every chunk start.
            var chunkOptions = options
            chunkOptions.contextLength = stored.contextLength
            chunkOptions.maxChunks = nil
            let chunks = try makeChunks(tokens: stored.tokens.map(Int.init), bos: nil, options: chunkOptions)
            let perChunk = chunks.scoredPositions.count
            guard stored.count == chunks.inputs.count * perChunk else {
                throw VerifyRunError.baselineMismatch("\(stored.count) scored positions for \(chunks.inputs.count) chunks of \(stored.contextLength)")
            }
            notes += contextNotes(stored.contextLength, r?.config, candidate.config)
            notes.append("reference from a top-\(stored.topK) baseline: KLD coarse-grained to the top \(stored.topK) tokens and the rest")
            var comparison = LogitComparison()
            let cache = try candidateModel.makeCache(capacity: stored.contextLength)
            let scored = chunks.scoredPositions
            for c in chunks.inputs.indices {
                let cand = try candidateModel.forward(tokens: chunks.inputs[c], startPosition: 0, cache: cache,
                                                      options: ForwardOptions(logits: .rows(scored)))
                for k in 0 ..< perChunk {
                    guard Int(stored.entry(c * perChunk + k).target) == chunks.target(chunk: c, position: scored.lowerBound + k) else {
                        throw VerifyRunError.baselineMismatch("target of chunk \(c) position \(scored.lowerBound + k) differs from its token stream")
                    }
                }
                let scores = scorePositions(perChunk, threads: options.threads) { k in
                    stored.score(c * perChunk + k, candidate: cand.row(k))
                }
                for score in scores { comparison.add(score) }
                progress?("chunks", c + 1, chunks.inputs.count)
            }
            report = VerifyReport(
                referencePath: r?.path, candidatePath: candidate.path, baselinePath: path, contextLength: stored.contextLength,
                tokenCount: stored.tokens.count, chunkCount: chunks.inputs.count, logits: comparison.summary,
                layerTolerance: options.layerTolerance, thresholds: options.thresholds)
            report.evaluationSeconds = seconds(clock.now - evaluationStart)
            report.tensorSeconds = tensorSeconds
            report.notes = notes
            if let tensorResult { apply(tensorResult, to: &report) }
            return (report, nil)
        }
    }

    /// Records the reference's top-K log-probs on `tokens` without a candidate
    /// (`wconv verify REF --save-baseline FILE`).
    public static func makeBaseline(
        reference: LlamaCheckpoint, tokens: [Int], bos: Int?, options: VerifyOptions, progress: VerifyProgress? = nil
    ) throws -> LogProbBaseline {
        let chunks = try makeChunks(tokens: tokens, bos: bos, options: options)
        let model = try reference.model(threads: options.threads)
        let vocab = reference.config.vocabularySize
        var baseline = try LogProbBaseline(vocabularySize: vocab, topK: min(options.baselineTopK, vocab),
                                           contextLength: options.contextLength, tokens: chunks.inputs.flatMap { $0 })
        let cache = try model.makeCache(capacity: options.contextLength)
        let scored = chunks.scoredPositions
        for c in chunks.inputs.indices {
            let out = try model.forward(tokens: chunks.inputs[c], startPosition: 0, cache: cache,
                                        options: ForwardOptions(logits: .rows(scored)))
            for k in 0 ..< scored.count {
                baseline.append(logits: out.row(k), target: chunks.target(chunk: c, position: scored.lowerBound + k))
            }
            progress?("chunks", c + 1, chunks.inputs.count)
        }
        return baseline
    }

    // MARK: - Pieces

    /// `score(k)` for `k` in `0 ..< count`, in order. Positions are independent and each costs
    /// three passes of `exp` over the vocabulary (for SmolLM2-135M roughly a tenth of the time
    /// of the two forward passes), so they are spread over `threads`; the results are identical
    /// to a serial loop because each score is computed alone and they are added in order after.
    static func scorePositions(_ count: Int, threads: Int, _ score: @Sendable (Int) -> TokenScore) -> [TokenScore] {
        var scores = [TokenScore](repeating: TokenScore(kld: 0, baseNLL: 0, candidateNLL: 0, deltaP: 0, sameTop: false),
                                  count: count)
        scores.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            parallelChunks(count: count, threads: threads, minimumChunk: 8) { range in
                for k in range { out[k] = score(k) }
            }
        }
        return scores
    }

    static func makeChunks(tokens: [Int], bos: Int?, options: VerifyOptions) throws -> EvaluationChunks {
        guard tokens.count >= options.contextLength else {
            throw VerifyRunError.tooFewTokens(count: tokens.count, contextLength: options.contextLength)
        }
        var stream = tokens
        if let limit = options.maxChunks, limit >= 1 {
            stream = Array(tokens.prefix(limit * options.contextLength))
        }
        return try EvaluationChunks(tokens: stream, contextLength: options.contextLength, bos: bos)
    }

    static func contextNotes(_ context: Int, _ configs: LlamaConfig?...) -> [String] {
        let limit = configs.compactMap { $0?.maxPositions }.min()
        guard let limit, context > limit else { return [] }
        return ["--ctx \(context) exceeds the model's max_position_embeddings \(limit)"]
    }

    /// Stages: embeddings, each layer's output, then the final-normed states.
    static func accumulate(_ stages: inout [DifferenceAccumulator], _ a: HiddenStates, _ b: HiddenStates) {
        let ra = [a.embeddings] + a.afterLayer + [a.finalNormed]
        let rb = [b.embeddings] + b.afterLayer + [b.finalNormed]
        for i in stages.indices where i < ra.count && i < rb.count && ra[i].count == rb[i].count {
            stages[i].add(reference: ra[i], candidate: rb[i])
        }
    }

    static func layerComparisons(_ stages: [DifferenceAccumulator], layerCount: Int, tolerance: Double) -> [LayerComparison] {
        stages.enumerated().map { i, acc in
            let name: String, layer: Int?
            switch i {
            case 0: (name, layer) = ("model.embed_tokens", nil)
            case layerCount + 1: (name, layer) = ("model.norm", nil)
            default: (name, layer) = ("model.layers.\(i - 1)", i - 1)
            }
            let d = acc.result
            return LayerComparison(name: name, layer: layer, difference: d, diverges: !(d.relativeError <= tolerance))
        }
    }

    static func apply(_ result: (tensors: [TensorComparison], onlyInReference: [String], onlyInCandidate: [String]),
                      to report: inout VerifyReport) {
        report.tensors = result.tensors
        report.tensorsOnlyInReference = result.onlyInReference
        report.tensorsOnlyInCandidate = result.onlyInCandidate
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
