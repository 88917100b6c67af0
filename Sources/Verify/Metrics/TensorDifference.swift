/// How far one tensor is from another: the per-tensor numbers `verify` reports.
public struct TensorDifference: Sendable, Hashable {
    /// Root mean square of the element differences.
    public var rmse: Double
    /// Largest absolute element difference.
    public var maxAbsDifference: Double
    /// Cosine similarity of the two tensors as flat vectors (1 for two zero tensors).
    public var cosine: Double
    /// Signal-to-noise ratio in dB: 10·log10(Σref² / Σ(ref−cand)²); +∞ when identical.
    public var snrDecibels: Double
    /// ‖ref − cand‖ / ‖ref‖ (0 when identical, +∞ against a zero reference).
    public var relativeError: Double

    /// Compares `candidate` with `reference` element by element, accumulating in Double.
    /// - Precondition: equal lengths.
    public init(reference: UnsafeBufferPointer<Float>, candidate: UnsafeBufferPointer<Float>) {
        precondition(reference.count == candidate.count, "TensorDifference: length mismatch")
        var sumSq = 0.0, maxAbs = 0.0, dot = 0.0, refSq = 0.0, candSq = 0.0
        for i in 0 ..< reference.count {
            let r = Double(reference[i]), c = Double(candidate[i])
            let d = r - c
            sumSq += d * d
            maxAbs = max(maxAbs, abs(d))
            dot += r * c
            refSq += r * r
            candSq += c * c
        }
        let n = Double(max(1, reference.count))
        rmse = (sumSq / n).squareRoot()
        maxAbsDifference = maxAbs
        cosine = refSq == 0 && candSq == 0 ? 1 : dot / ((refSq * candSq).squareRoot() + .leastNonzeroMagnitude)
        snrDecibels = sumSq == 0 ? .infinity : 10 * log10(refSq / sumSq)
        relativeError = sumSq == 0 ? 0 : (sumSq / refSq).squareRoot()
    }

    /// Array form of ``init(reference:candidate:)``.
    public init(reference: [Float], candidate: [Float]) {
        self = reference.withUnsafeBufferPointer { r in
            candidate.withUnsafeBufferPointer { c in TensorDifference(reference: r, candidate: c) }
        }
    }

    /// Stage-by-stage comparison of two captures of the same tokens: embeddings, the output of
    /// every layer, then the final-normed output (`layerCount + 2` entries). Where the first
    /// layer with a large relative error sits tells which tensor of a conversion is wrong.
    /// - Precondition: both captures come from models of the same shape on the same tokens.
    public static func perLayer(reference: HiddenStates, candidate: HiddenStates) -> [TensorDifference] {
        precondition(reference.afterLayer.count == candidate.afterLayer.count, "TensorDifference: layer counts differ")
        let r = [reference.embeddings] + reference.afterLayer + [reference.finalNormed]
        let c = [candidate.embeddings] + candidate.afterLayer + [candidate.finalNormed]
        return zip(r, c).map { TensorDifference(reference: $0, candidate: $1) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
