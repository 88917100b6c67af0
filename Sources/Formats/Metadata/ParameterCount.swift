#if canImport(Glibc)
import Glibc
#endif

/// The parameter counts llama.cpp's converter derives from the tensors it writes
/// (gguf-py `GGUFWriter.get_total_parameter_count`), which feed the size label and the
/// size-versus-context-length heuristic.
///
/// - Every output tensor counts with the product of its dimensions (a scalar counts 1), including
///   1-D norms and generated tensors such as `rope_freqs.weight`; tensors the converter does not
///   write (a tied `output.weight`) do not.
/// - Tensors whose name contains `_exps.` with at least 3 dimensions are expert stacks: the
///   expert count is dimension -3 (-2 for a `.bias`), and one expert's share goes to `expert`.
///   Everything else, including 2-D `_exps.` tensors, goes to `shared`.
/// - `.lora_a`/`.lora_b` pairs (b right after its a) count `b` as `(*b.shape[:-1], a.shape[-1])`;
///   the total is then negated to mark it as inexact. An unpaired `lora_b` makes everything 0.
public struct ParameterCount: Sendable, Hashable {
    /// All parameters; negative for a LoRA adapter.
    public var total: Int
    /// Parameters outside expert stacks.
    public var shared: Int
    /// Parameters of one expert, summed over the expert tensors.
    public var expert: Int
    /// Experts per expert tensor, averaged (integer division) over the expert tensors; 0 if none.
    public var expertCount: Int

    public init(total: Int, shared: Int, expert: Int, expertCount: Int) {
        self.total = total
        self.shared = shared
        self.expert = expert
        self.expertCount = expertCount
    }

    /// No tensors known: the converter's value for a vocab-only file.
    public static let zero = ParameterCount(total: 0, shared: 0, expert: 0, expertCount: 0)

    /// Counts the tensors of an output file, in the order they are written.
    ///
    /// - Parameter tensors: GGUF tensor names with shapes in numpy/PyTorch order (outermost first,
    ///   the reverse of GGUF's `ne`). Products saturate at `Int.max` instead of trapping.
    public init(tensors: [(name: String, shape: [Int])]) {
        var total = 0, shared = 0, expert = 0
        var expertSum = 0, expertTensors = 0
        var lastLoRAA: (name: String, shape: [Int])? = nil
        for tensor in tensors {
            var shape = tensor.shape
            if tensor.name.hasSuffix(".lora_a") {
                lastLoRAA = tensor
                continue
            } else if tensor.name.hasSuffix(".lora_b") {
                // gguf-py gives up when the pair is not adjacent
                guard let a = lastLoRAA, a.name == String(tensor.name.dropLast()) + "a", let inner = a.shape.last else {
                    self = .zero
                    return
                }
                shape = shape.dropLast() + [inner]
            }
            let size = shape.reduce(1) { saturatingMultiply($0, $1) }
            if tensor.name.contains("_exps.") && shape.count >= 3 {
                let count = shape[shape.count - (tensor.name.contains(".bias") ? 2 : 3)]
                // gguf-py divides by zero here; an empty expert stack adds nothing instead
                if count != 0 { expert = saturatingAdd(expert, size / count) }
                expertSum = saturatingAdd(expertSum, count)
                expertTensors += 1
            } else {
                shared = saturatingAdd(shared, size)
            }
            total = saturatingAdd(total, size)
        }
        self.total = lastLoRAA != nil ? -total : total
        self.shared = shared
        self.expert = expert
        self.expertCount = expertTensors > 0 ? expertSum / expertTensors : 0
    }

    /// The size label the converter writes when neither the model card nor the name gives one
    /// (`gguf.size_label`): `7.2B`, `135M`, or `8x7.0B` for expert models.
    public var sizeLabel: String {
        if expertCount > 0 {
            let perExpert = saturatingAdd(Int(clamping: shared.magnitude), Int(clamping: expert.magnitude))
            return "\(expertCount)x\(Self.roundedNotation(perExpert))"
        }
        return Self.roundedNotation(Int(clamping: total.magnitude))
    }

    /// gguf-py's `model_weight_count_rounded_notation`: the count in K, M, B or T (chosen by
    /// strictly exceeding 10³ⁿ) with enough decimals for `minimumDigits` significant digits,
    /// e.g. 7_241_732_096 → "7.2B", 134_515_008 → "135M", 100 → "0.10K".
    public static func roundedNotation(_ count: Int, minimumDigits: Int = 2) -> String {
        let scaled: Double
        let suffix: String
        if count > 1_000_000_000_000 {
            (scaled, suffix) = (Double(count) * 1e-12, "T")
        } else if count > 1_000_000_000 {
            (scaled, suffix) = (Double(count) * 1e-9, "B")
        } else if count > 1_000_000 {
            (scaled, suffix) = (Double(count) * 1e-6, "M")
        } else {
            (scaled, suffix) = (Double(count) * 1e-3, "K")
        }
        // digits of round(scaled) without leading zeros ("0" counts as none)
        let rounded = String(Int(scaled.rounded(.toNearestOrEven)))
        let digitCount = rounded.drop(while: { $0 == "0" }).count
        return formatFixed(scaled, decimals: max(minimumDigits - digitCount, 0)) + suffix
    }
}

/// Python's `f"{value:.{decimals}f}"`: correctly rounded, ties to even on the exact binary value,
/// which glibc's printf also does.
func formatFixed(_ value: Double, decimals: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 400)
    let written = withVaList([Int32(clamping: decimals), value]) { args in
        buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, "%.*f", args) }
    }
    guard written > 0 else { return "" }
    return String(decoding: buffer.prefix(min(Int(written), buffer.count - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func saturatingAdd(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? .max : .min) : sum
}

private func saturatingMultiply(_ a: Int, _ b: Int) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? ((a < 0) != (b < 0) ? .min : .max) : product
}
