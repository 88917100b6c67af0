public import TensorCore
public import Formats

/// Options shared by the conversions.
public struct ConvertOptions: Sendable {
    /// The float type of the output's matrices (norms and 1-D tensors stay F32 in GGUF, as
    /// llama.cpp's converter keeps them).
    public enum OutType: String, Sendable, CaseIterable {
        case f32, f16, bf16
        /// GGUF: bf16 if the first ≥2-D input tensor that is bf16 or f16 is bf16, else f16
        /// (llama.cpp's heuristic). HF: the dtype most of the GGUF's matrices have.
        case auto

        public var dtype: DType? {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .bf16: .bf16
            case .auto: nil
            }
        }
    }

    public var outType: OutType = .auto
    /// Replace an existing output.
    public var force = false
    /// Split a GGUF output into parts of at most this many bytes; shard an HF output likewise.
    public var splitMaxBytes: Int?
    /// The `tokenizer.ggml.pre` name to use when the BPE pre-tokenizer is not recognised.
    public var vocabPre: String?
    /// GGUF → HF: the original checkpoint's config.json, written (with its dtype updated) instead
    /// of a config rebuilt from the GGUF metadata. Required for remote-code families (Qwen-7B,
    /// Baichuan), whose config and modeling code come from their repository; it also restores
    /// what GGUF does not keep (Mistral's class and sliding window, Falcon's context length).
    public var hfConfig: String?
    /// Worker threads for the numeric work.
    public var threads: Int = activeProcessorCount
    /// Called after each output tensor is written (for progress displays).
    public var progress: PipelineProgressHandler?
    /// Recorded inside the output (GGUF `general.wconv.*` keys, safetensors `__metadata__`);
    /// nil writes none, byte for byte as the reference tools do.
    public var provenance: Provenance?

    public init() {}
}

/// What a conversion wrote.
public struct ConvertReport: Sendable {
    public var outputs: [String] = []
    public var tensorCount = 0
    public var byteCount = 0
    public var parameterCount = 0
    /// Tensors per output type name.
    public var typeCounts: [String: Int] = [:]
}

/// Why a model cannot be converted.
public enum ConvertError: ClassifiedError, Hashable {
    case unsupportedArchitecture(String)
    case missingArchitecture
    case unmappedTensor(String)
    case missingTensor(String)
    case unsupportedDType(tensor: String, dtype: String)
    case duplicateOutputTensor(String)
    case missingMetadata(String)
    case noGGUFArchitecture(family: String, hfArchitecture: String)
    case badLayout(tensor: String, String)
    /// GGUF → HF needs the original config.json (`--config`) for this family.
    case needsReferenceConfig(family: String, why: String)
    /// The `--config` given does not describe this GGUF.
    case referenceConfigMismatch(String)
    /// The family converts, but verify and QLoRA do not run its block yet.
    case blockNotSupported(String)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedArchitecture, .unsupportedDType, .noGGUFArchitecture, .blockNotSupported, .needsReferenceConfig: .unsupported
        case .referenceConfigMismatch: .badValue
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a):
            "architecture \(a) has no GGUF description yet (supported: \(ArchitectureDescription.all.flatMap(\.hfArchitectures).joined(separator: ", ")))"
        case .missingArchitecture: "config.json has no \"architectures\" entry"
        case .unmappedTensor(let n): "tensor \(n) has no GGUF name for this architecture"
        case .missingTensor(let n): "required tensor \(n) is missing"
        case .unsupportedDType(let t, let d): "tensor \(t) has dtype \(d), which cannot be converted"
        case .duplicateOutputTensor(let n): "two input tensors map to \(n)"
        case .missingMetadata(let k): "GGUF metadata key \(k) is missing"
        case .noGGUFArchitecture(let family, let hf):
            "\(family) (\(hf)) has no llama.cpp architecture, so there is no GGUF to convert to; "
                + "the safetensors paths work for it (convert --outtype between f32/f16/bf16, quantize to bitsandbytes, dequantize)"
        case .badLayout(let t, let why): "tensor \(t): \(why)"
        case .needsReferenceConfig(let family, let why):
            "GGUF → HF for \(family) needs the original checkpoint's config.json (--config PATH): \(why)"
        case .referenceConfigMismatch(let why): "--config: \(why)"
        case .blockNotSupported(let a):
            "architecture \(a) converts between HF and GGUF, but verify and QLoRA run only the LLaMA block so far"
        }
    }
}
