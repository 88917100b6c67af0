public import TensorCore

/// The weights after the decoder layers — the final norm and the output head — read once from
/// a ``LlamaWeightSource`` and checked against the model shape. The forward pass
/// (``LlamaModel``) and the LoRA trainer both keep them this way.
public struct LlamaHeadWeights: Sendable {
    public let config: LlamaConfig
    private var norm: [Float]?
    private var head: [Float]?
    private var normBias: [Float]?
    private var headBias: [Float]?

    public init(config: LlamaConfig) { self.config = config }

    /// `model.norm.weight` `[dim]`.
    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)``, or what the source throws.
    public mutating func finalNorm(from source: any LlamaWeightSource) throws -> [Float] {
        if let norm { return norm }
        let w = try source.finalNorm()
        guard w.count == config.hiddenSize else {
            throw VerifyError.tensorSize(name: "model.norm.weight", expected: config.hiddenSize, actual: w.count)
        }
        norm = w
        return w
    }

    /// The output projection `[vocab, dim]` (`lm_head.weight`, or the tied embedding).
    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)``, or what the source throws.
    public mutating func outputHead(from source: any LlamaWeightSource) throws -> [Float] {
        if let head { return head }
        let w = try source.outputHead()
        let expected = config.vocabularySize * config.hiddenSize
        guard w.count == expected else {
            throw VerifyError.tensorSize(name: config.tiedEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight",
                                         expected: expected, actual: w.count)
        }
        head = w
        return w
    }

    /// The final norm's bias `[dim]`, or empty when the block's norm has none.
    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)``, or what the source throws.
    public mutating func finalNormBias(from source: any LlamaWeightSource) throws -> [Float] {
        if let normBias { return normBias }
        let b = try Self.bias(config.block.normBias, count: config.hiddenSize, name: "model.norm.bias", source.finalNormBias)
        normBias = b
        return b
    }

    /// The output head's bias `[vocab]`, or empty when the block has none.
    /// - Throws: ``VerifyError/tensorSize(name:expected:actual:)``, or what the source throws.
    public mutating func outputBias(from source: any LlamaWeightSource) throws -> [Float] {
        if let headBias { return headBias }
        let b = try Self.bias(config.block.headBias, count: config.vocabularySize, name: "lm_head.bias", source.outputBias)
        headBias = b
        return b
    }

    /// An optional bias read from the source when the block has it, checked for its size.
    private static func bias(_ present: Bool, count: Int, name: String, _ read: () throws -> [Float]) throws -> [Float] {
        guard present else { return [] }
        let b = try read()
        guard b.count == count else { throw VerifyError.tensorSize(name: name, expected: count, actual: b.count) }
        return b
    }

    /// Drops all of them (after the source changed).
    public mutating func forget() {
        norm = nil
        head = nil
        normBias = nil
        headBias = nil
    }
}

extension RMSNorm {
    /// ``apply(_:weight:into:rows:dim:epsilon:)`` with the rows split over `threads` workers
    /// (rows are independent, so the result does not depend on the count).
    public static func apply(_ x: UnsafePointer<Float>, weight: [Float], into y: UnsafeMutablePointer<Float>,
                             rows: Int, dim: Int, epsilon: Float, threads: Int) {
        weight.withUnsafeBufferPointer { w in
            guard let base = w.baseAddress else { return }
            nonisolated(unsafe) let (xs, ys, ws) = (x, y, base)
            parallelChunks(count: rows, threads: threads, minimumChunk: 64) { range in
                apply(xs + range.lowerBound * dim, weight: ws, into: ys + range.lowerBound * dim,
                      rows: range.count, dim: dim, epsilon: epsilon)
            }
        }
    }
}
