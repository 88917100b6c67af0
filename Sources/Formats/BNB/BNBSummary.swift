public import TensorCore

/// What `wconv inspect` shows about a bitsandbytes checkpoint: each quantized weight as one
/// logical tensor (its original shape, its quant kind, the bytes of all its pieces), so bits per
/// weight are counted against real parameters instead of packed bytes.
public struct BNBSummary: Sendable {
    /// One quantized weight.
    public struct Weight: Sendable, Hashable {
        /// `P` (4-bit) or `M.weight` (int8).
        public let name: String
        /// `nf4 block 64 + double quant`, `fp4 block 64`, `int8 row-wise (LLM.int8)`.
        public let quantization: String
        /// The original weight's shape.
        public let shape: [Int]
        public let parameterCount: Int
        /// Bytes of every stored piece.
        public let byteCount: Int
        /// The stored tensors, weight first.
        public let pieces: [String]
        public var bitsPerWeight: Double { parameterCount == 0 ? 0 : Double(byteCount * 8) / Double(parameterCount) }
    }

    /// Totals per quant kind.
    public struct KindTotal: Sendable, Hashable {
        public let quantization: String
        public var weightCount = 0
        public var byteCount = 0
        public var parameterCount = 0
        public var bitsPerWeight: Double { parameterCount == 0 ? 0 : Double(byteCount * 8) / Double(parameterCount) }
    }

    /// config.json's `quantization_config`, when it is a bitsandbytes block.
    public let config: BNBQuantizationConfig?
    public let weights: [Weight]
    /// The layout error, when the checkpoint looks like bitsandbytes but does not read as one.
    public let error: String?

    /// Reads the bitsandbytes layout of `input`; nil when it shows no sign of bitsandbytes
    /// (no bitsandbytes `quantization_config`, no `quant_state`/`SCB` entries). Never throws: a
    /// malformed layout is reported in ``error``.
    public init?(_ input: ModelInput) {
        let config: HFConfig?
        switch input {
        case .hf(let d): config = d.config
        case .safetensors: config = nil
        case .gguf: return nil
        }
        let source = input.tensorSource
        let looksQuantized = config?.quantizationConfig?["quant_method"]?.stringValue == "bitsandbytes"
            || source.entries.contains { BNBCheckpointLayout.splitQuantStateName($0.name) != nil || $0.name.hasSuffix(".SCB") }
        guard looksQuantized else { return nil }
        do {
            let layout = try BNBCheckpointLayout(source: source, config: config)
            self.config = layout.config
            weights = layout.groups.compactMap { group in
                guard let kind = group.quantizationSummary else { return nil }
                let entries = group.entries
                return Weight(name: group.name, quantization: kind, shape: group.shape,
                              parameterCount: elementCount(of: group.shape) ?? 0,
                              byteCount: entries.reduce(0) { $0 + $1.byteCount }, pieces: entries.map(\.name))
            }
            error = nil
        } catch {
            self.config = nil
            weights = []
            self.error = "\(error)"
        }
    }

    /// Totals per quant kind, most bytes first.
    public var kindTotals: [KindTotal] {
        var totals: [String: KindTotal] = [:]
        for w in weights {
            totals[w.quantization, default: KindTotal(quantization: w.quantization)].weightCount += 1
            totals[w.quantization, default: KindTotal(quantization: w.quantization)].byteCount += w.byteCount
            totals[w.quantization, default: KindTotal(quantization: w.quantization)].parameterCount += w.parameterCount
        }
        return totals.values.sorted { ($0.byteCount, $1.quantization) > ($1.byteCount, $0.quantization) }
    }

    /// For every stored piece of a quantized weight: the weight's own entry maps to its quant
    /// kind (`nf4 block 64 + double quant`), the state pieces to `state of <weight>`.
    public var quantizationByTensor: [String: String] {
        var map: [String: String] = [:]
        for w in weights {
            for (i, piece) in w.pieces.enumerated() { map[piece] = i == 0 ? w.quantization : "state of \(w.name)" }
        }
        return map
    }
}

extension ModelSummary {
    /// Parameters of the model counted as weights, not stored elements: a bitsandbytes weight
    /// counts its original shape and its state pieces count nothing. Equals ``parameterCount``
    /// for unquantized and GGUF inputs.
    public var weightParameterCount: Int {
        guard let bnb, !bnb.weights.isEmpty else { return parameterCount }
        let pieces = Set(bnb.weights.flatMap(\.pieces))
        let plain = tensors.filter { !pieces.contains($0.name) }.reduce(0) { $0 + $1.elementCount }
        return plain + bnb.weights.reduce(0) { $0 + $1.parameterCount }
    }

    /// Bits of tensor data per weight (``weightParameterCount``), the file's real bits per weight.
    public var weightBitsPerWeight: Double {
        let n = weightParameterCount
        return n == 0 ? 0 : Double(totalByteCount * 8) / Double(n)
    }
}
