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

    /// Accepts any case (`q4_k_m`), or llama-quantize's numeric id (`15`).
    public init?(name: String) {
        if let match = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) {
            self = match
        } else if let id = UInt32(name), let match = Self.allCases.first(where: { $0.llamaFileType == id && $0.canonical == $0 }) {
            self = match
        } else {
            return nil
        }
    }

    /// The mix this name stands for: llama-quantize reads `Q3_K`, `Q4_K` and `Q5_K` as aliases
    /// of `Q3_K_M`, `Q4_K_M` and `Q5_K_M`.
    public var canonical: GGMLFileType {
        switch self {
        case .Q3_K: .Q3_K_M
        case .Q4_K: .Q4_K_M
        case .Q5_K: .Q5_K_M
        default: self
        }
    }

    /// llama.cpp's `llama_ftype` id, written to `general.file_type` (15 for Q4_K_M).
    public var llamaFileType: UInt32 {
        switch canonical {
        case .F32: 0
        case .F16: 1
        case .Q4_0: 2
        case .Q4_1: 3
        case .Q8_0: 7
        case .Q5_0: 8
        case .Q5_1: 9
        case .Q2_K: 10
        case .Q3_K_S: 11
        case .Q3_K_M, .Q3_K: 12
        case .Q3_K_L: 13
        case .Q4_K_S: 14
        case .Q4_K_M, .Q4_K: 15
        case .Q5_K_S: 16
        case .Q5_K_M, .Q5_K: 17
        case .Q6_K: 18
        case .BF16: 32
        }
    }

    /// The block type most tensors get (`llama_ftype_get_default_type`); the mix rules then
    /// raise some tensors above it.
    public var defaultTensorType: GGMLType {
        switch canonical {
        case .F32: .f32
        case .F16: .f16
        case .BF16: .bf16
        case .Q4_0: .q4_0
        case .Q4_1: .q4_1
        case .Q5_0: .q5_0
        case .Q5_1: .q5_1
        case .Q8_0: .q8_0
        case .Q2_K: .q2_K
        case .Q3_K_S, .Q3_K_M, .Q3_K_L, .Q3_K: .q3_K
        case .Q4_K_S, .Q4_K_M, .Q4_K: .q4_K
        case .Q5_K_S, .Q5_K_M, .Q5_K: .q5_K
        case .Q6_K: .q6_K
        }
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
    /// `--tensor-type REGEX=TYPE` overrides, first match wins. A pattern is searched for
    /// anywhere in the tensor name (`std::regex_search`), after lowercasing the pattern as
    /// llama-quantize does; overrides apply only when the file type is a quantized one.
    public var tensorTypeOverrides: [(pattern: String, type: GGMLType)] = []
    /// `--output-tensor-type`: the type of `output.weight` (and of `token_embd.weight` when
    /// the embeddings are tied), instead of the mix's choice.
    public var outputTensorType: GGMLType?
    /// `--token-embedding-type`: the type of `token_embd.weight`.
    public var tokenEmbeddingType: GGMLType?
    /// `--leave-output-tensor`: copy `output.weight` as it is in the input.
    public var leaveOutputTensor = false
    /// Every quantizable tensor gets the default type (no mixture rules).
    public var pure = false
    /// For a Hugging Face directory input: the float type the matrices are first converted to,
    /// as `convert_hf_to_gguf.py --outtype` would (the result equals running the converter
    /// with this type and then llama-quantize). `.f32` loses nothing; tensors the file type
    /// leaves unquantized keep this type.
    public var hfOutType: ConvertOptions.OutType = .f32
    /// For a Hugging Face directory input: `tokenizer.ggml.pre` when the BPE pre-tokenizer is
    /// not recognised (see ``ConvertOptions/vocabPre``).
    public var vocabPre: String?
    // both
    /// Accept an input whose weights are already quantized (it is dequantized first).
    public var allowRequantize = false
    /// Keep NaN/Inf weights instead of refusing them.
    public var allowNonFinite = false
    public var threads = activeProcessorCount
    public var force = false
    /// Called after each output tensor is written (for progress displays).
    public var progress: PipelineProgressHandler?
    /// Recorded inside the output (GGUF `general.wconv.*` keys, safetensors `__metadata__`);
    /// nil writes none, byte for byte as llama-quantize and transformers + bitsandbytes do.
    public var provenance: Provenance?

    public init(scheme: Scheme) { self.scheme = scheme }

    /// Parses a `--tensor-type NAME=TYPE` argument as llama-quantize does: split at the first
    /// `=`, lowercase the name pattern, look the type up by its ggml name (any case).
    /// - Throws: ``QuantizeOptionError`` for a missing `=`, an empty side, or an unknown type.
    public static func parseTensorTypeOverride(_ argument: String) throws -> (pattern: String, type: GGMLType) {
        guard let eq = argument.firstIndex(of: "=") else { throw QuantizeOptionError.malformedTensorType(argument) }
        let pattern = String(argument[..<eq]), typeName = String(argument[argument.index(after: eq)...])
        guard !pattern.isEmpty else { throw QuantizeOptionError.missingTensorName(argument) }
        guard !typeName.isEmpty else { throw QuantizeOptionError.missingType(argument) }
        return (asciiLowercased(pattern), try parseTensorType(typeName))
    }

    /// Looks up a ggml type by name (any case: `q4_k`, `Q8_0`, `f16`), as llama-quantize's
    /// `--output-tensor-type`, `--token-embedding-type` and `--tensor-type` do.
    /// - Throws: ``QuantizeOptionError/unknownType(_:)``.
    public static func parseTensorType(_ name: String) throws -> GGMLType {
        guard let type = GGMLType(name: name) else { throw QuantizeOptionError.unknownType(name) }
        return type
    }

    /// C `tolower` in the "C" locale: only ASCII letters change.
    static func asciiLowercased(_ s: String) -> String {
        String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
    }
}

/// A quantization option that cannot be understood.
public enum QuantizeOptionError: ClassifiedError, Hashable {
    case malformedTensorType(String)
    case missingTensorName(String)
    case missingType(String)
    case unknownType(String)
    case unknownFileType(String)

    public var kind: ErrorKind { .usage }

    public var description: String {
        switch self {
        case .malformedTensorType(let a): "--tensor-type '\(a)' is not NAME=TYPE"
        case .missingTensorName(let a): "--tensor-type '\(a)' has no tensor name before '='"
        case .missingType(let a): "--tensor-type '\(a)' has no type after '='"
        case .unknownType(let t):
            "unknown ggml type '\(t)' (known: \(GGMLType.known.map(\.name).joined(separator: ", ")))"
        case .unknownFileType(let t):
            "unknown quantization type '\(t)' (known: \(GGMLFileType.allCases.map(\.rawValue).joined(separator: ", ")))"
        }
    }
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

    /// One output tensor: its type before and after.
    public struct TensorLine: Sendable, Hashable {
        public var name: String
        public var sourceType: String
        public var type: String
        public var byteCount: Int
        public var parameterCount: Int
        public init(name: String, sourceType: String, type: String, byteCount: Int, parameterCount: Int) {
            self.name = name
            self.sourceType = sourceType
            self.type = type
            self.byteCount = byteCount
            self.parameterCount = parameterCount
        }
    }

    public var outputs: [String] = []
    public var totals: [String: TypeTotal] = [:]
    /// Every output tensor in file order (filled by the GGUF paths).
    public var tensors: [TensorLine] = []
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
