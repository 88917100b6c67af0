/// ``TensorDifference`` computed piece by piece: the sums behind it accumulate over any number
/// of chunks, so a tensor (or the hidden states of many evaluation chunks) never has to be in
/// memory at once. Adding the pieces of a buffer in order gives exactly
/// `TensorDifference(reference:candidate:)` of the whole buffer.
public struct DifferenceAccumulator: Sendable, Hashable {
    public private(set) var count = 0
    private var sumOfSquaredDifferences = 0.0
    private var maxAbsDifference = 0.0
    private var dot = 0.0
    private var referenceSquares = 0.0
    private var candidateSquares = 0.0

    public init() {}

    /// Adds elementwise pairs.
    /// - Precondition: equal lengths.
    public mutating func add(reference: UnsafeBufferPointer<Float>, candidate: UnsafeBufferPointer<Float>) {
        precondition(reference.count == candidate.count, "DifferenceAccumulator: length mismatch")
        var sumSq = sumOfSquaredDifferences, maxAbs = maxAbsDifference, d = dot
        var refSq = referenceSquares, candSq = candidateSquares
        for i in 0 ..< reference.count {
            let r = Double(reference[i]), c = Double(candidate[i])
            let diff = r - c
            sumSq += diff * diff
            maxAbs = max(maxAbs, abs(diff))
            d += r * c
            refSq += r * r
            candSq += c * c
        }
        sumOfSquaredDifferences = sumSq
        maxAbsDifference = maxAbs
        dot = d
        referenceSquares = refSq
        candidateSquares = candSq
        count += reference.count
    }

    /// Array form of ``add(reference:candidate:)``.
    public mutating func add(reference: [Float], candidate: [Float]) {
        reference.withUnsafeBufferPointer { r in
            candidate.withUnsafeBufferPointer { c in add(reference: r, candidate: c) }
        }
    }

    /// Adds the sums of another accumulator (a chunk computed elsewhere). Merging partial results
    /// in a fixed order keeps parallel comparisons deterministic.
    public mutating func merge(_ other: DifferenceAccumulator) {
        count += other.count
        sumOfSquaredDifferences += other.sumOfSquaredDifferences
        maxAbsDifference = max(maxAbsDifference, other.maxAbsDifference)
        dot += other.dot
        referenceSquares += other.referenceSquares
        candidateSquares += other.candidateSquares
    }

    /// The statistics of everything added so far (same formulas as ``TensorDifference``).
    public var result: TensorDifference {
        TensorDifference(sumOfSquaredDifferences: sumOfSquaredDifferences, maxAbsDifference: maxAbsDifference, dot: dot,
                         referenceSquares: referenceSquares, candidateSquares: candidateSquares, count: count)
    }
}

extension TensorDifference {
    /// The statistics from the sums ``init(reference:candidate:)`` accumulates.
    init(sumOfSquaredDifferences sumSq: Double, maxAbsDifference maxAbs: Double, dot: Double,
         referenceSquares refSq: Double, candidateSquares candSq: Double, count: Int) {
        let n = Double(max(1, count))
        rmse = (sumSq / n).squareRoot()
        maxAbsDifference = maxAbs
        cosine = refSq == 0 && candSq == 0 ? 1 : dot / ((refSq * candSq).squareRoot() + .leastNonzeroMagnitude)
        snrDecibels = sumSq == 0 ? .infinity : 10 * log10(refSq / sumSq)
        relativeError = sumSq == 0 ? 0 : (sumSq / refSq).squareRoot()
    }
}

#if canImport(Glibc)
import Glibc
#endif
