public import TensorCore

/// Why a value could not be read from a Hugging Face `config.json`.
public enum HFConfigError: ClassifiedError, Hashable {
    /// The file is not a JSON object.
    case notAnObject
    /// A required key is absent (or null).
    case missingKey(String)
    /// A key holds a value of the wrong JSON type.
    case wrongType(key: String, expected: String)
    /// A key holds a value of the right type that cannot be used.
    case invalidValue(key: String, reason: String)

    public var kind: ErrorKind { .malformedInput }

    public var description: String {
        switch self {
        case .notAnObject: "config is not a JSON object"
        case .missingKey(let key): "config has no \"\(key)\""
        case .wrongType(let key, let expected): "config \"\(key)\" is not \(expected)"
        case .invalidValue(let key, let reason): "config \"\(key)\": \(reason)"
        }
    }
}

/// RoPE scaling parameters, from transformers 4's `rope_scaling` or transformers 5's
/// `rope_parameters`.
public struct HFRopeScaling: Sendable, Hashable {
    /// `rope_type` (or the older `type`): `linear`, `dynamic`, `yarn`, `llama3`, …
    public let type: String
    public let factor: Double?
    public let lowFrequencyFactor: Double?
    public let highFrequencyFactor: Double?
    public let originalMaxPositionEmbeddings: Int?

    public init(type: String, factor: Double?, lowFrequencyFactor: Double?, highFrequencyFactor: Double?, originalMaxPositionEmbeddings: Int?) {
        self.type = type
        self.factor = factor
        self.lowFrequencyFactor = lowFrequencyFactor
        self.highFrequencyFactor = highFrequencyFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }
}

/// A Hugging Face model `config.json` with typed accessors for what the converters need.
///
/// Required values throw when absent or mistyped; errors name the file when the config was read
/// from one (``PathError``), otherwise they are ``HFConfigError``s. Keys spelled differently by
/// transformers 4 and 5 are both understood (`torch_dtype`/`dtype`, `rope_theta` at the top level
/// or inside `rope_parameters`, `rope_scaling`/`rope_parameters`).
public struct HFConfig: Sendable {
    /// The whole JSON object, keys in file order.
    public let object: JSONObject
    /// The file it was read from, if any.
    public let path: String?

    /// Wraps an already parsed object.
    public init(_ object: JSONObject, path: String? = nil) {
        self.object = object
        self.path = path
    }

    /// Parses config JSON text.
    public init(json: String) throws {
        let value = try JSONParser.parse(json)
        guard case .object(let object) = value else { throw HFConfigError.notAnObject }
        self.init(object)
    }

    /// Reads the config file at `path`.
    /// - Throws: ``PathError`` naming `path`.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        let value: JSONValue
        do { value = try JSONParser.parse(file.bytes) } catch { throw PathError(path: path, error) }
        guard case .object(let object) = value else { throw PathError(path: path, HFConfigError.notAnObject) }
        self.init(object, path: path)
    }

    /// The raw value of `key`.
    public subscript(key: String) -> JSONValue? { object[key] }

    // MARK: Identity

    /// `architectures` (e.g. `["LlamaForCausalLM"]`); empty when absent.
    public var architectures: [String] {
        get throws {
            guard let value = present("architectures") else { return [] }
            guard case .array(let items) = value else { throw fail(.wrongType(key: "architectures", expected: "an array of strings")) }
            var names: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw fail(.wrongType(key: "architectures", expected: "an array of strings")) }
                names.append(s)
            }
            return names
        }
    }

    /// The first architecture, if any.
    public var architecture: String? { get throws { try architectures.first } }

    /// `model_type` (e.g. `llama`).
    public var modelType: String? { get throws { try optionalString("model_type") } }

    // MARK: Shape

    /// `vocab_size` (required).
    public var vocabSize: Int { get throws { try requiredInt("vocab_size") } }
    /// `hidden_size`, the embedding width (required).
    public var hiddenSize: Int { get throws { try requiredInt("hidden_size") } }
    /// `intermediate_size`, the MLP width (required).
    public var intermediateSize: Int { get throws { try requiredInt("intermediate_size") } }
    /// `num_hidden_layers` (required).
    public var numHiddenLayers: Int { get throws { try requiredInt("num_hidden_layers") } }
    /// `num_attention_heads` (required).
    public var numAttentionHeads: Int { get throws { try requiredInt("num_attention_heads") } }

    /// `num_key_value_heads`; transformers defaults it to `num_attention_heads` (no GQA).
    public var numKeyValueHeads: Int {
        get throws { try optionalInt("num_key_value_heads") ?? numAttentionHeads }
    }

    /// `head_dim` when given (otherwise models use `hidden_size / num_attention_heads`).
    public var headDim: Int? { get throws { try optionalInt("head_dim") } }

    /// `max_position_embeddings`, the trained context length (required).
    public var maxPositionEmbeddings: Int { get throws { try requiredInt("max_position_embeddings") } }

    /// `rms_norm_eps` (required).
    public var rmsNormEps: Double { get throws { try requiredDouble("rms_norm_eps") } }

    // MARK: RoPE

    /// `rope_theta`, or transformers 5's `rope_parameters.rope_theta`; nil when neither is given.
    public var ropeTheta: Double? {
        get throws {
            if let theta = try optionalDouble("rope_theta") { return theta }
            guard let params = try ropeParameters else { return nil }
            guard let value = params["rope_theta"], !value.isNull else { return nil }
            guard let theta = value.doubleValue else { throw fail(.wrongType(key: "rope_parameters.rope_theta", expected: "a number")) }
            return theta
        }
    }

    /// RoPE scaling from `rope_scaling` or `rope_parameters`; nil when absent or of type `default`.
    public var ropeScaling: HFRopeScaling? {
        get throws {
            let key: String
            let params: JSONObject
            if let value = present("rope_scaling") {
                guard case .object(let o) = value else { throw fail(.wrongType(key: "rope_scaling", expected: "an object")) }
                key = "rope_scaling"
                params = o
            } else if let o = try ropeParameters {
                key = "rope_parameters"
                params = o
            } else {
                return nil
            }
            guard let typeValue = params["rope_type"] ?? params["type"], !typeValue.isNull else {
                throw fail(.missingKey("\(key).rope_type"))
            }
            guard case .string(let type) = typeValue else { throw fail(.wrongType(key: "\(key).rope_type", expected: "a string")) }
            if type == "default" { return nil }
            func number(_ name: String) throws -> Double? {
                guard let v = params[name], !v.isNull else { return nil }
                guard let d = v.doubleValue else { throw fail(.wrongType(key: "\(key).\(name)", expected: "a number")) }
                return d
            }
            var original: Int? = nil
            if let v = params["original_max_position_embeddings"], !v.isNull {
                guard let i = v.intValue else {
                    throw fail(.wrongType(key: "\(key).original_max_position_embeddings", expected: "an integer"))
                }
                original = i
            }
            return HFRopeScaling(type: type, factor: try number("factor"),
                                 lowFrequencyFactor: try number("low_freq_factor"),
                                 highFrequencyFactor: try number("high_freq_factor"),
                                 originalMaxPositionEmbeddings: original)
        }
    }

    private var ropeParameters: JSONObject? {
        get throws {
            guard let value = present("rope_parameters") else { return nil }
            guard case .object(let o) = value else { throw fail(.wrongType(key: "rope_parameters", expected: "an object")) }
            return o
        }
    }

    // MARK: Tokens and dtype

    /// `tie_word_embeddings`; transformers defaults it to false for LLaMA.
    public var tieWordEmbeddings: Bool {
        get throws {
            guard let value = present("tie_word_embeddings") else { return false }
            guard case .bool(let b) = value else { throw fail(.wrongType(key: "tie_word_embeddings", expected: "a boolean")) }
            return b
        }
    }

    /// `bos_token_id`, if given.
    public var bosTokenId: Int? { get throws { try optionalInt("bos_token_id") } }

    /// `eos_token_id`, which LLaMA 3 configs give as a list; a single id becomes a one-element list.
    public var eosTokenIds: [Int] {
        get throws {
            guard let value = present("eos_token_id") else { return [] }
            if let id = value.intValue { return [id] }
            guard case .array(let items) = value else { throw fail(.wrongType(key: "eos_token_id", expected: "an integer or a list of integers")) }
            var ids: [Int] = []
            for item in items {
                guard let id = item.intValue else { throw fail(.wrongType(key: "eos_token_id", expected: "an integer or a list of integers")) }
                ids.append(id)
            }
            return ids
        }
    }

    /// The first end-of-sequence id.
    public var eosTokenId: Int? { get throws { try eosTokenIds.first } }

    /// The weights' dtype name as written (`dtype` in transformers 5, `torch_dtype` in 4.x),
    /// e.g. `bfloat16`.
    public var torchDTypeName: String? {
        get throws { try optionalString("dtype") ?? optionalString("torch_dtype") }
    }

    /// ``torchDTypeName`` as a ``DType``; nil when absent.
    /// - Throws: when the name is not a dtype wconv knows.
    public var torchDType: DType? {
        get throws {
            guard let name = try torchDTypeName else { return nil }
            let spelled = name.hasPrefix("torch.") ? String(name.dropFirst(6)) : name
            guard let dtype = DType.allCases.first(where: { $0.torchName == spelled }) else {
                throw fail(.invalidValue(key: object["dtype"] != nil ? "dtype" : "torch_dtype", reason: "unknown dtype \"\(name)\""))
            }
            return dtype
        }
    }

    /// `quantization_config`, if the model is quantized.
    public var quantizationConfig: JSONObject? { object["quantization_config"]?.objectValue }

    // MARK: Helpers

    /// The value of `key` unless absent or null.
    private func present(_ key: String) -> JSONValue? {
        guard let v = object[key], !v.isNull else { return nil }
        return v
    }

    private func fail(_ error: HFConfigError) -> any Error {
        if let path { return PathError(path: path, error) }
        return error
    }

    private func optionalInt(_ key: String) throws -> Int? {
        guard let value = present(key) else { return nil }
        guard let i = value.intValue else { throw fail(.wrongType(key: key, expected: "an integer")) }
        return i
    }

    private func requiredInt(_ key: String) throws -> Int {
        guard let i = try optionalInt(key) else { throw fail(.missingKey(key)) }
        return i
    }

    private func optionalDouble(_ key: String) throws -> Double? {
        guard let value = present(key) else { return nil }
        guard let d = value.doubleValue else { throw fail(.wrongType(key: key, expected: "a number")) }
        return d
    }

    private func requiredDouble(_ key: String) throws -> Double {
        guard let d = try optionalDouble(key) else { throw fail(.missingKey(key)) }
        return d
    }

    private func optionalString(_ key: String) throws -> String? {
        guard let value = present(key) else { return nil }
        guard case .string(let s) = value else { throw fail(.wrongType(key: key, expected: "a string")) }
        return s
    }
}
