public import TensorCore

/// Limits a candidate must stay within; nil leaves a quantity unchecked.
public struct VerifyThresholds: Sendable, Hashable {
    /// Largest acceptable mean KL divergence (nats per token).
    public var maxMeanKLD: Double?
    /// Smallest acceptable top-1 agreement (0 … 1).
    public var minTop1Agreement: Double?
    /// Largest acceptable PPL(candidate) / PPL(reference).
    public var maxPerplexityRatio: Double?

    public init(maxMeanKLD: Double? = nil, minTop1Agreement: Double? = nil, maxPerplexityRatio: Double? = nil) {
        self.maxMeanKLD = maxMeanKLD
        self.minTop1Agreement = minTop1Agreement
        self.maxPerplexityRatio = maxPerplexityRatio
    }

    /// Whether any limit is set.
    public var isEmpty: Bool { maxMeanKLD == nil && minTop1Agreement == nil && maxPerplexityRatio == nil }

    /// One sentence per limit the summary breaks (empty when it passes).
    public func failures(of s: LogitComparisonSummary) -> [String] {
        var out: [String] = []
        if let limit = maxMeanKLD, !(s.meanKLD.value <= limit) {
            out.append("mean KLD \(VerifyReport.format(s.meanKLD.value)) > --max-kld \(VerifyReport.format(limit))")
        }
        if let limit = minTop1Agreement, !(s.sameTop.value >= limit) {
            out.append("top-1 agreement \(VerifyReport.format(s.sameTop.value)) < --min-top1 \(VerifyReport.format(limit))")
        }
        if let limit = maxPerplexityRatio, !(s.perplexityRatio.value <= limit) {
            out.append("PPL ratio \(VerifyReport.format(s.perplexityRatio.value)) > --max-ppl-ratio \(VerifyReport.format(limit))")
        }
        return out
    }
}

/// How the hidden states of one stage of the forward pass compare, over all scored chunks.
public struct LayerComparison: Sendable, Hashable {
    /// `model.embed_tokens` (the embeddings), `model.layers.<i>` (the residual stream after
    /// decoder layer i) or `model.norm` (the final-normed states the head sees).
    public var name: String
    /// Decoder layer index; nil for the embeddings and the final norm.
    public var layer: Int?
    public var difference: TensorDifference
    /// The relative error exceeds the report's layer tolerance.
    public var diverges: Bool
}

/// Everything `wconv verify` found, ready to render as a table or JSON (see docs/verify.md).
public struct VerifyReport: Sendable {
    public var referencePath: String?
    public var candidatePath: String
    /// The log-prob baseline the reference side came from, if any.
    public var baselinePath: String?
    public var contextLength: Int
    /// Tokens in the evaluated text.
    public var tokenCount: Int
    public var chunkCount: Int
    /// Logit statistics (llama-perplexity's formulas).
    public var logits: LogitComparisonSummary
    /// Stages of the forward pass; empty when not compared (baseline, or different shapes).
    public var layers: [LayerComparison] = []
    /// Relative error above which a stage counts as diverging.
    public var layerTolerance: Double
    /// Per-tensor comparisons; empty when not compared.
    public var tensors: [TensorComparison] = []
    public var tensorsOnlyInReference: [String] = []
    public var tensorsOnlyInCandidate: [String] = []
    public var thresholds: VerifyThresholds
    /// Remarks on how the run went (context beyond the model's positions, skipped parts).
    public var notes: [String] = []
    /// Wall-clock seconds of the tensor comparison and of the evaluation.
    public var tensorSeconds: Double = 0
    public var evaluationSeconds: Double = 0

    /// The first stage whose hidden states diverge, if any.
    public var firstDivergentLayer: LayerComparison? { layers.first { $0.diverges } }

    /// Broken thresholds, one sentence each.
    public var failures: [String] { thresholds.failures(of: logits) }
    /// Within every threshold given.
    public var passed: Bool { failures.isEmpty }

    /// Numbers for messages and tables: 4 significant digits (or `significant`), no trailing noise.
    static func format(_ x: Double) -> String { format(x, significant: 4) }

    static func format(_ x: Double, significant: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        if x == 0 { return "0" }
        let magnitude = abs(x)
        if magnitude >= 1e-4 && magnitude < 1e6 {
            var s = String(Self.rounded(x, significant: significant))
            if s.hasSuffix(".0") { s.removeLast(2) }
            return s
        }
        let exponent = Int((log10(magnitude)).rounded(.down))
        let mantissa = Self.rounded(x / pow(10, Double(exponent)), significant: significant)
        return "\(mantissa)e\(exponent)"
    }

    static func rounded(_ x: Double, significant: Int) -> Double {
        guard x != 0, x.isFinite else { return x }
        // Scale by an exact power of ten on the side that keeps it an integer, so the result
        // is the double nearest the rounded decimal and prints as that decimal.
        let e = significant - 1 - Int(log10(abs(x)).rounded(.down))
        let scale = pow(10, Double(abs(e)))
        return e >= 0 ? (x * scale).rounded() / scale : (x / scale).rounded() * scale
    }
}

#if canImport(Glibc)
import Glibc
#endif
