#if canImport(Glibc)
import Glibc
#endif

/// How one position's candidate logits compare with the base (reference) logits.
public struct TokenScore: Sendable, Hashable {
    /// KL(base ‖ candidate) of the two softmax distributions, in nats.
    public var kld: Double
    /// −log p_base(target).
    public var baseNLL: Double
    /// −log p_candidate(target).
    public var candidateNLL: Double
    /// p_candidate(target) − p_base(target).
    public var deltaP: Double
    /// Both argmaxes are the same token (first index wins ties, as in llama.cpp).
    public var sameTop: Bool

    public init(kld: Double, baseNLL: Double, candidateNLL: Double, deltaP: Double, sameTop: Bool) {
        self.kld = kld
        self.baseNLL = baseNLL
        self.candidateNLL = candidateNLL
        self.deltaP = deltaP
        self.sameTop = sameTop
    }
}

/// Per-position logit comparison, the quantities llama-perplexity `--kl-divergence` reports.
///
/// Decision (REFERENCE §9): llama.cpp scores against base log-probs it stored as uint16
/// (its "f16 vs f16" row, KLD ≈ 5e-4 on Llama 3 8B, is that storage error alone) and drops
/// base entries with log p ≤ −16 from the KLD sum. Here both sides are float32 logits and
/// every sum runs in Double over the whole vocabulary, so the KLD is exact; pass
/// `baseLogProbabilityFloor: -16` to drop the same entries llama.cpp drops.
public enum LogitMetrics {
    /// Index of the largest logit; the first one on ties (llama.cpp's strict `>` scan).
    public static func argmax(_ logits: some Collection<Float>) -> Int {
        var best = -Float.infinity, bestIndex = 0
        for (i, v) in logits.enumerated() where i == 0 || v > best {
            best = v
            bestIndex = i
        }
        return bestIndex
    }

    /// log Σ exp(z) in Double, with max subtraction.
    public static func logSumExp(_ logits: UnsafeBufferPointer<Float>) -> Double {
        guard var m = logits.first.map(Double.init) else { return -.infinity }
        for v in logits where Double(v) > m { m = Double(v) }
        guard m.isFinite else { return m }
        var sum = 0.0
        for v in logits { sum += exp(Double(v) - m) }
        return m + log(sum)
    }

    /// log softmax in Double.
    public static func logSoftmax(_ logits: [Float]) -> [Double] {
        let lse = logits.withUnsafeBufferPointer(logSumExp)
        return logits.map { Double($0) - lse }
    }

    /// Scores one position.
    /// - Parameters:
    ///   - base: reference logits `[vocab]`.
    ///   - candidate: logits of the model under test `[vocab]`.
    ///   - target: the token that actually follows (for NLL and Δp).
    ///   - baseLogProbabilityFloor: if set, KLD terms whose base log-prob is not above it are
    ///     skipped (llama.cpp uses −16).
    public static func score(
        base: UnsafeBufferPointer<Float>, candidate: UnsafeBufferPointer<Float>, target: Int,
        baseLogProbabilityFloor: Double? = nil
    ) -> TokenScore {
        precondition(base.count == candidate.count && target >= 0 && target < base.count, "LogitMetrics: bad shapes")
        let lseBase = logSumExp(base), lseCandidate = logSumExp(candidate)
        var kld = 0.0
        let floor = baseLogProbabilityFloor ?? -.infinity
        for i in 0 ..< base.count {
            let lpBase = Double(base[i]) - lseBase
            guard lpBase > floor else { continue }
            let lpCandidate = Double(candidate[i]) - lseCandidate
            kld += exp(lpBase) * (lpBase - lpCandidate)
        }
        let baseNLL = lseBase - Double(base[target])
        let candidateNLL = lseCandidate - Double(candidate[target])
        return TokenScore(
            kld: kld, baseNLL: baseNLL, candidateNLL: candidateNLL,
            deltaP: exp(-candidateNLL) - exp(-baseNLL),
            sameTop: argmax(base) == argmax(candidate))
    }

    /// Array-slice form of ``score(base:candidate:target:baseLogProbabilityFloor:)``.
    public static func score(
        base: ArraySlice<Float>, candidate: ArraySlice<Float>, target: Int, baseLogProbabilityFloor: Double? = nil
    ) -> TokenScore {
        base.withUnsafeBufferPointer { b in
            candidate.withUnsafeBufferPointer { c in
                score(base: b, candidate: c, target: target, baseLogProbabilityFloor: baseLogProbabilityFloor)
            }
        }
    }

    /// Scalar reference of the KLD for tests: straight from the definition, with log-softmax
    /// arrays, no floor.
    public static func kldReference(base: [Float], candidate: [Float]) -> Double {
        let p = logSoftmax(base), q = logSoftmax(candidate)
        var sum = 0.0
        for i in p.indices { sum += exp(p[i]) * (p[i] - q[i]) }
        return sum
    }
}

/// A value with its standard error, as llama-perplexity prints `x ± u`.
public struct Estimate: Sendable, Hashable, CustomStringConvertible {
    public var value: Double
    public var uncertainty: Double

    public init(_ value: Double, _ uncertainty: Double) {
        self.value = value
        self.uncertainty = uncertainty
    }

    /// llama.cpp's `mean_and_uncertainty`: mean, and sqrt(var/(n−1)) when n > 10 (else 0).
    public init(sum: Double, sumOfSquares: Double, count: Int) {
        guard count >= 1 else {
            self.init(0, 0)
            return
        }
        let mean = sum / Double(count)
        let variance = sumOfSquares / Double(count) - mean * mean
        self.init(mean, variance > 0 && count > 10 ? (variance / Double(count - 1)).squareRoot() : 0)
    }

    public var description: String { "\(value) ± \(uncertainty)" }
}

/// Values sorted ascending, with percentiles by linear interpolation (llama.cpp's rule:
/// position `fraction · (n − 1)` between neighbours).
public struct SortedSample: Sendable, Hashable {
    public let values: [Double]

    public init(_ values: [Double]) { self.values = values.sorted() }

    public var count: Int { values.count }
    public var minimum: Double { values.first ?? .nan }
    public var maximum: Double { values.last ?? .nan }
    /// Middle value, or the mean of the middle two (equals `percentile(0.5)`).
    public var median: Double { percentile(0.5) }

    /// The `fraction` quantile (0 … 1), linearly interpolated.
    public func percentile(_ fraction: Double) -> Double {
        guard let first = values.first, let last = values.last else { return .nan }
        if fraction <= 0 { return first }
        if fraction >= 1 { return last }
        let position = fraction * Double(values.count - 1)
        let i = Int(position)
        let t = position - Double(i)
        return (1 - t) * values[i] + t * values[min(i + 1, values.count - 1)]
    }
}

/// Accumulates ``TokenScore``s over a corpus and summarizes them like llama-perplexity
/// `--kl-divergence`.
public struct LogitComparison: Sendable {
    public private(set) var scores: [TokenScore] = []

    public init() {}

    public mutating func add(_ score: TokenScore) { scores.append(score) }

    /// Scores rows of two `[T, vocab]` logit matrices of the same tokens, row `t` predicting
    /// `tokens[t + 1]`.
    /// - Parameters:
    ///   - positions: rows to score (default: every row that has a next token, `0 ..< T−1`;
    ///     llama-perplexity scores ``EvaluationChunks/scoredPositions``).
    ///   - baseLogProbabilityFloor: see ``LogitMetrics/score(base:candidate:target:baseLogProbabilityFloor:)``.
    /// - Precondition: both matrices are `tokens.count × vocabularySize`.
    public mutating func add(
        base: [Float], candidate: [Float], vocabularySize: Int, tokens: [Int], positions: Range<Int>? = nil,
        baseLogProbabilityFloor: Double? = nil
    ) {
        let v = vocabularySize
        precondition(base.count == tokens.count * v && candidate.count == base.count, "LogitComparison: shapes differ")
        for t in positions ?? 0 ..< max(0, tokens.count - 1) {
            add(LogitMetrics.score(base: base[t * v ..< (t + 1) * v], candidate: candidate[t * v ..< (t + 1) * v],
                                   target: tokens[t + 1], baseLogProbabilityFloor: baseLogProbabilityFloor))
        }
    }

    public var count: Int { scores.count }

    /// The statistics llama-perplexity prints, computed from the scores so far.
    public var summary: LogitComparisonSummary { LogitComparisonSummary(scores) }
}

/// The numbers of llama-perplexity's final report (REFERENCE §9), same formulas.
public struct LogitComparisonSummary: Sendable, Hashable {
    public var count: Int
    /// exp(mean NLL) of the candidate / base, with uncertainty.
    public var candidatePerplexity: Estimate
    public var basePerplexity: Estimate
    /// Correlation of the per-token NLLs (llama.cpp's "Cor(ln PPL(Q), ln PPL(base))").
    public var nllCorrelation: Double
    /// mean(NLL_candidate) − mean(NLL_base).
    public var logPerplexityRatio: Estimate
    /// PPL(candidate) / PPL(base).
    public var perplexityRatio: Estimate
    /// PPL(candidate) − PPL(base).
    public var perplexityDifference: Estimate
    public var meanKLD: Estimate
    public var kld: SortedSample
    public var meanDeltaP: Estimate
    public var deltaP: SortedSample
    /// sqrt(mean Δp²).
    public var rmsDeltaP: Estimate
    /// Fraction of positions whose argmax agrees, ± sqrt(p(1−p)/(n−1)).
    public var sameTop: Estimate

    public init(_ scores: [TokenScore]) {
        let n = scores.count
        var nll = 0.0, nll2 = 0.0, base = 0.0, base2 = 0.0, cross = 0.0
        var kldSum = 0.0, kld2 = 0.0, dp = 0.0, dp2 = 0.0, dp4 = 0.0, same = 0
        for s in scores {
            nll += s.candidateNLL
            nll2 += s.candidateNLL * s.candidateNLL
            base += s.baseNLL
            base2 += s.baseNLL * s.baseNLL
            cross += s.candidateNLL * s.baseNLL
            kldSum += s.kld
            kld2 += s.kld * s.kld
            dp += s.deltaP
            dp2 += s.deltaP * s.deltaP
            dp4 += s.deltaP * s.deltaP * s.deltaP * s.deltaP
            if s.sameTop { same += 1 }
        }
        count = n
        let logPPL = Estimate(sum: nll, sumOfSquares: nll2, count: n)
        let logPPLBase = Estimate(sum: base, sumOfSquares: base2, count: n)
        let covariance = n < 10 ? 0 : (cross / Double(n) - (nll / Double(n)) * (base / Double(n))) / Double(n - 1)
        let ppl = exp(logPPL.value), pplBase = exp(logPPLBase.value)
        candidatePerplexity = Estimate(ppl, ppl * logPPL.uncertainty)
        basePerplexity = Estimate(pplBase, pplBase * logPPLBase.uncertainty)
        nllCorrelation = covariance / (logPPL.uncertainty * logPPLBase.uncertainty)
        let ratioUncertainty = (logPPL.uncertainty * logPPL.uncertainty + logPPLBase.uncertainty * logPPLBase.uncertainty
            - 2 * covariance).squareRoot()
        logPerplexityRatio = Estimate(logPPL.value - logPPLBase.value, ratioUncertainty)
        let ratio = exp(logPPL.value - logPPLBase.value)
        perplexityRatio = Estimate(ratio, ratio * ratioUncertainty)
        let pplCovariance = ppl * pplBase * covariance
        perplexityDifference = Estimate(
            ppl - pplBase,
            (candidatePerplexity.uncertainty * candidatePerplexity.uncertainty
                + basePerplexity.uncertainty * basePerplexity.uncertainty - 2 * pplCovariance).squareRoot())
        meanKLD = Estimate(sum: kldSum, sumOfSquares: kld2, count: n)
        kld = SortedSample(scores.map(\.kld))
        meanDeltaP = Estimate(sum: dp, sumOfSquares: dp2, count: n)
        deltaP = SortedSample(scores.map(\.deltaP))
        let mse = Estimate(sum: dp2, sumOfSquares: dp4, count: n)
        let rms = mse.value.squareRoot()
        rmsDeltaP = Estimate(rms, rms > 0 ? 0.5 / rms * mse.uncertainty : 0)
        let p = n > 0 ? Double(same) / Double(n) : 0
        sameTop = Estimate(p, n > 1 ? (p * (1 - p) / Double(n - 1)).squareRoot() : 0)
    }
}

/// How llama-perplexity cuts a token stream for scoring: chunks of `contextLength` tokens
/// (a trailing partial chunk is dropped), each evaluated from position 0 with its first token
/// replaced by BOS when the model adds one; only the second half is scored — the logits at
/// positions `n/2 ..< n−1`, each predicting the next token of the chunk.
public struct EvaluationChunks: Sendable, Hashable {
    public let contextLength: Int
    /// The chunks as evaluated (BOS substituted).
    public let inputs: [[Int]]
    /// The chunks' original tokens (targets come from these).
    public let originals: [[Int]]

    /// - Parameters:
    ///   - tokens: the whole tokenized text.
    ///   - contextLength: chunk length (llama.cpp's `n_ctx`, default 512); at least 4.
    ///   - bos: BOS id to put at the start of each chunk, or nil if the model adds none.
    public init(tokens: [Int], contextLength: Int, bos: Int?) throws {
        guard contextLength >= 4 else {
            throw VerifyError.badConfigValue(key: "context", reason: "chunks need at least 4 tokens, got \(contextLength)")
        }
        self.contextLength = contextLength
        let chunkCount = tokens.count / contextLength
        originals = (0 ..< chunkCount).map { Array(tokens[$0 * contextLength ..< ($0 + 1) * contextLength]) }
        inputs = originals.map { chunk in
            var c = chunk
            if let bos { c[0] = bos }
            return c
        }
    }

    /// Logit rows that are scored: `n/2 ..< n−1`.
    public var scoredPositions: Range<Int> { contextLength / 2 ..< contextLength - 1 }

    /// The token predicted at `position` of chunk `chunk`.
    public func target(chunk: Int, position: Int) -> Int { originals[chunk][position + 1] }
}
