public import TensorCore

/// Why a LoRA adapter cannot be read, written or converted.
public enum AdapterError: ClassifiedError, Hashable {
    /// `adapter_config.json` or `adapter_model.safetensors` is absent.
    case missingFile(String)
    /// A config field is absent or has the wrong JSON type.
    case badConfigField(key: String, reason: String)
    /// The adapter is not a LoRA (`peft_type` other than LORA).
    case notLoRA(peftType: String)
    /// A LoRA variant whose weights are not `W + s·B·A` (DoRA, LoRA bias, fan_in_fan_out layers).
    case unsupportedVariant(String)
    /// A tensor name that is neither `….lora_A.weight` nor `….lora_B.weight` of a linear module.
    case unexpectedTensor(name: String, reason: String)
    /// A module with only one of its two matrices.
    case unpairedTensor(module: String, missing: String)
    /// A module with LoRA matrices that `target_modules` / `layers_to_transform` do not select.
    case notTargeted(module: String)
    /// A matrix whose shape does not fit the LoRA layout.
    case badShape(tensor: String, shape: [Int], expected: String)
    /// A matrix stored in a non-float dtype or ggml type.
    case badDType(tensor: String, dtype: String)
    /// A regex in `target_modules`, `rank_pattern` or `alpha_pattern` that Swift's Regex cannot compile.
    case badPattern(key: String, pattern: String)
    /// A regex that could take exponential time to match (``ModulePattern/backtrackingRisk(_:)``).
    case riskyPattern(key: String, pattern: String, reason: String)
    /// A module the target format has no place for (embeddings, lm_head, norms).
    case cannotHold(tensor: String, target: String, reason: String)
    /// The adapter's module does not exist in (or does not fit) the base model.
    case moduleNotInBase(module: String, reason: String)
    /// The GGUF is not a LoRA adapter.
    case notAnAdapter(reason: String)
    /// Required base-model information is missing.
    case needsBase(String)
    /// NaN or infinite values in an adapter matrix.
    case nonFinite(tensor: String, index: Int)

    public var kind: ErrorKind {
        switch self {
        case .missingFile: .missingInput
        case .notLoRA, .unsupportedVariant, .cannotHold: .unsupported
        case .needsBase: .usage
        case .nonFinite: .badValue
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .missingFile(let f): "no \(f) (a PEFT LoRA adapter directory holds adapter_config.json and adapter_model.safetensors)"
        case .badConfigField(let k, let r): "\"\(k)\" \(r)"
        case .notLoRA(let t): "peft_type is \(t); only LORA adapters are supported"
        case .unsupportedVariant(let v): "\(v) is not supported"
        case .unexpectedTensor(let n, let r): "tensor \(n): \(r)"
        case .unpairedTensor(let m, let missing): "module \(m) has no \(missing)"
        case .notTargeted(let m): "module \(m) has LoRA weights but target_modules does not select it (or layers_to_transform leaves its layer out)"
        case .badShape(let t, let s, let e): "tensor \(t) has shape \(s), expected \(e)"
        case .badDType(let t, let d): "tensor \(t) is stored as \(d); adapter matrices must be f32, f16 or bf16"
        case .badPattern(let k, let p): "\"\(k)\" pattern \(p) is not a regular expression wconv can use"
        case .riskyPattern(let k, let p, let r): "\"\(k)\" pattern \(p) is refused: \(r)"
        case .cannotHold(let t, let target, let r): "tensor \(t) cannot be written to \(target): \(r)"
        case .moduleNotInBase(let m, let r): "adapter module \(m) does not fit the base model: \(r)"
        case .notAnAdapter(let r): "not a llama.cpp LoRA adapter: \(r)"
        case .needsBase(let m): m
        case .nonFinite(let t, let i): "tensor \(t): element \(i) is NaN or infinite"
        }
    }
}
