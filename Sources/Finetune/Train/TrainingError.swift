public import TensorCore

/// Failures of LoRA training: bad hyper-parameters, inputs that do not fit the model, adapter
/// matrices that do not match, unreadable checkpoints.
public enum TrainingError: ClassifiedError, Hashable {
    /// A target module name that is not one of `q_proj` … `down_proj`.
    case unknownTarget(String)
    /// A hyper-parameter outside its valid range.
    case badHyperparameter(name: String, reason: String)
    /// An array with the wrong number of elements.
    case shapeMismatch(what: String, expected: Int, actual: Int)
    /// An adapted projection the configuration asks for is absent.
    case missingAdapter(String)
    /// An adapter for a projection the configuration does not list.
    case unexpectedAdapter(String)
    /// A token id outside the vocabulary.
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    /// A sequence longer than the model's positions allow, or empty.
    case badSequenceLength(Int, maximum: Int)
    /// A step whose examples contain no target token (the loss would be 0/0).
    case noTargets
    /// Training example `index` (0-based) has no target token after its first.
    case exampleWithoutTargets(index: Int)
    /// The loss or a gradient became NaN or infinite.
    case nonFinite(what: String, step: Int)
    /// A checkpoint directory whose contents are missing, damaged or from another run.
    case badCheckpoint(String)
    /// A model family whose block the training pass does not run: what it would need.
    case familyNotTrainable(family: String, missing: String)

    public var kind: ErrorKind {
        switch self {
        case .unknownTarget, .badHyperparameter: .usage
        case .shapeMismatch, .missingAdapter, .unexpectedAdapter, .badCheckpoint: .malformedInput
        case .tokenOutOfRange, .badSequenceLength, .noTargets, .exampleWithoutTargets: .malformedInput
        case .nonFinite: .badValue
        case .familyNotTrainable: .unsupported
        }
    }

    public var description: String {
        switch self {
        case .unknownTarget(let name):
            "unknown LoRA target '\(name)' (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj)"
        case .badHyperparameter(let name, let reason): "\(name): \(reason)"
        case .shapeMismatch(let what, let expected, let actual): "\(what) has \(actual) values, expected \(expected)"
        case .missingAdapter(let name): "no adapter for \(name)"
        case .unexpectedAdapter(let name): "adapter for \(name), which the configuration does not target"
        case .tokenOutOfRange(let token, let vocabularySize): "token \(token) is outside the vocabulary (0..<\(vocabularySize))"
        case .badSequenceLength(let length, let maximum): "sequence of \(length) tokens (must be 1...\(maximum))"
        case .noTargets: "no target tokens in the step's examples"
        case .exampleWithoutTargets(let index): "training example \(index + 1) has no target token"
        case .nonFinite(let what, let step): "\(what) is not finite at step \(step)"
        case .badCheckpoint(let reason): "bad checkpoint: \(reason)"
        case .familyNotTrainable(let family, let missing):
            "QLoRA training of \(family) is not supported yet: the training pass runs LLaMA's block (RMSNorm, SwiGLU, rotary attention, optional q/k/v biases), and \(family) needs \(missing) (qlora-merge and convert-adapter take its PEFT adapters with the Hugging Face base)"
        }
    }
}
