public import TensorCore

/// Failures of the forward pass and its inputs, one case per cause.
public enum VerifyError: ClassifiedError, Hashable {
    /// config.json lacks a required key.
    case missingConfigKey(String)
    /// A config value has the wrong type or an impossible value.
    case badConfigValue(key: String, reason: String)
    /// The configuration uses a feature the forward pass does not implement.
    case unsupportedConfig(String)
    /// A weight tensor has the wrong number of elements.
    case tensorSize(name: String, expected: Int, actual: Int)
    /// A weight source has no tensor by this name.
    case missingTensor(String)
    /// A token id outside `0 ..< vocabularySize`.
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    /// The positions asked for do not fit the cache (or the model's context).
    case contextOverflow(needed: Int, capacity: Int)
    /// `startPosition` is beyond what the cache holds.
    case startBeyondCache(startPosition: Int, cached: Int)
    /// A forward call with no tokens.
    case emptyInput

    public var kind: ErrorKind {
        switch self {
        case .missingConfigKey, .badConfigValue, .tensorSize, .missingTensor: .malformedInput
        case .unsupportedConfig: .unsupported
        case .tokenOutOfRange, .contextOverflow, .startBeyondCache, .emptyInput: .usage
        }
    }

    public var description: String {
        switch self {
        case .missingConfigKey(let key):
            "config has no '\(key)'"
        case .badConfigValue(let key, let reason):
            "config '\(key)': \(reason)"
        case .unsupportedConfig(let what):
            "unsupported model configuration: \(what)"
        case .tensorSize(let name, let expected, let actual):
            "tensor '\(name)' has \(actual) elements, the configuration needs \(expected)"
        case .missingTensor(let name):
            "no tensor '\(name)'"
        case .tokenOutOfRange(let token, let vocabularySize):
            "token id \(token) is outside the vocabulary (0..<\(vocabularySize))"
        case .contextOverflow(let needed, let capacity):
            "\(needed) positions do not fit the context of \(capacity)"
        case .startBeyondCache(let startPosition, let cached):
            "start position \(startPosition) is beyond the \(cached) positions in the cache"
        case .emptyInput:
            "no tokens to evaluate"
        }
    }
}
