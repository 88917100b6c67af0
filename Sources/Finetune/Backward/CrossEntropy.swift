#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// Cross-entropy of logit rows against target ids, with its gradient, as
/// `torch.nn.functional.cross_entropy` in float32: `loss = logsumexp(z) − z[target]`,
/// `∂loss/∂z = softmax(z) − onehot(target)`.
enum CrossEntropy {
    /// Overwrites each row of `logits` with `scale · (softmax(row) − onehot(target))` and returns
    /// the sum of the rows' losses (unscaled), accumulated in Double.
    ///
    /// The exponentials are summed in Double; each row's loss is `max + log(Σ exp(z − max)) − z[t]`.
    /// - Parameters:
    ///   - logits: `[targets.count, vocabulary]`, replaced by the scaled gradient.
    ///   - scale: typically `1 / N` for a loss averaged over `N` target tokens.
    static func lossAndGradient(
        logits: UnsafeMutablePointer<Float>, vocabulary v: Int, targets: [Int], scale: Float, threads: Int
    ) -> Double {
        var losses = [Double](repeating: 0, count: targets.count)
        losses.withUnsafeMutableBufferPointer { lp in
            nonisolated(unsafe) let (z, out) = (logits, lp.baseAddress!)
            let targets = targets
            parallelChunks(count: targets.count, threads: threads, minimumChunk: 4) { range in
                for r in range {
                    let row = z + r * v
                    var m = row[0]
                    for j in 1 ..< v where row[j] > m { m = row[j] }
                    var sum = 0.0
                    for j in 0 ..< v { sum += Double(expf(row[j] - m)) }
                    let target = targets[r]
                    out[r] = Double(m) + log(sum) - Double(row[target])
                    let inverse = Float(1 / sum)
                    for j in 0 ..< v { row[j] = expf(row[j] - m) * inverse * scale }
                    row[target] -= scale
                }
            }
        }
        // Summed in row order: the same total whatever the thread count.
        return losses.reduce(0, +)
    }

    /// Loss sum only (evaluation); `logits` are left unchanged.
    static func loss(logits: UnsafePointer<Float>, vocabulary v: Int, targets: [Int], threads: Int) -> Double {
        var losses = [Double](repeating: 0, count: targets.count)
        losses.withUnsafeMutableBufferPointer { lp in
            nonisolated(unsafe) let (z, out) = (logits, lp.baseAddress!)
            let targets = targets
            parallelChunks(count: targets.count, threads: threads, minimumChunk: 4) { range in
                for r in range {
                    let row = z + r * v
                    var m = row[0]
                    for j in 1 ..< v where row[j] > m { m = row[j] }
                    var sum = 0.0
                    for j in 0 ..< v { sum += Double(expf(row[j] - m)) }
                    out[r] = Double(m) + log(sum) - Double(row[targets[r]])
                }
            }
        }
        return losses.reduce(0, +)
    }

    /// Scalar reference in Double: one row's loss and `∂loss/∂z`.
    static func reference(_ z: [Double], target: Int) -> (loss: Double, gradient: [Double]) {
        let m = z.max() ?? 0
        let e = z.map { exp($0 - m) }
        let sum = e.reduce(0, +)
        var g = e.map { $0 / sum }
        g[target] -= 1
        return (m + log(sum) - z[target], g)
    }
}
