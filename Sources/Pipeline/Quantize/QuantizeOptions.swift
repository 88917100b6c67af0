public import TensorCore
public import Formats

/// A bitsandbytes weight format (`wconv quantize --nf4|--fp4|--int8`).
public enum BNBScheme: String, Sendable, CaseIterable {
    case nf4, fp4, int8
}

/// A llama-quantize file type: one block type for everything, or one of its mixes
/// (`wconv quantize --type Q4_K_M`). Names as llama-quantize spells them.
public enum GGMLFileType: String, Sendable, CaseIterable {
    case Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K
    case Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M
    case F16, BF16, F32

    /// Accepts any case (`q4_k_m`).
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = match
    }
}

/// Everything `wconv quantize` can be asked.
public struct QuantizeOptions: Sendable {
    public enum Scheme: Sendable, Hashable {
        case bnb(BNBScheme)
        case ggml(GGMLFileType)
    }

    public var scheme: Scheme
    // bitsandbytes
    /// NF4/FP4 block size (32…4096, a power of two).
    public var blockSize = 64
    /// Quantize the absmax statistics again (QLoRA's double quantization).
    public var doubleQuant = true
    /// `bnb_4bit_compute_dtype` recorded in config.json.
    public var computeDType: DType = .bf16
    // llama-quantize
    /// `--tensor-type REGEX=TYPE` overrides, first match wins.
    public var tensorTypeOverrides: [(pattern: String, type: GGMLType)] = []
    public var outputTensorType: GGMLType?
    public var tokenEmbeddingType: GGMLType?
    public var leaveOutputTensor = false
    /// Every quantizable tensor gets the default type (no mixture rules).
    public var pure = false
    // both
    /// Accept an input whose weights are already quantized (it is dequantized first).
    public var allowRequantize = false
    /// Keep NaN/Inf weights instead of refusing them.
    public var allowNonFinite = false
    public var threads = activeProcessorCount
    public var force = false

    public init(scheme: Scheme) { self.scheme = scheme }
}

/// What a quantization wrote, per output type.
public struct QuantizeReport: Sendable {
    public struct TypeTotal: Sendable, Hashable {
        public var type: String
        public var tensorCount = 0
        public var byteCount = 0
        public var parameterCount = 0
        public var bitsPerWeight: Double { parameterCount == 0 ? 0 : Double(byteCount * 8) / Double(parameterCount) }
        public init(type: String) { self.type = type }
    }

    public var outputs: [String] = []
    public var totals: [String: TypeTotal] = [:]
    /// Warnings to show the user (requantization, fallbacks).
    public var warnings: [String] = []

    public init() {}

    public mutating func add(type: String, bytes: Int, parameters: Int) {
        totals[type, default: TypeTotal(type: type)].tensorCount += 1
        totals[type, default: TypeTotal(type: type)].byteCount += bytes
        totals[type, default: TypeTotal(type: type)].parameterCount += parameters
    }

    public var byteCount: Int { totals.values.reduce(0) { $0 + $1.byteCount } }
    public var parameterCount: Int { totals.values.reduce(0) { $0 + $1.parameterCount } }
    public var bitsPerWeight: Double { parameterCount == 0 ? 0 : Double(byteCount * 8) / Double(parameterCount) }
}
