public import TensorCore

/// The two 4-bit data types of bitsandbytes, spelled as its keys and JSON spell them.
public enum BNB4BitType: String, Sendable, Hashable, CaseIterable {
    case nf4, fp4
}

/// The `quantization_config` block transformers writes into config.json for a bitsandbytes
/// model (`BitsAndBytesConfig.to_dict()`, REFERENCE §5.4), read or built.
///
/// Every field of the block is kept, so a parsed block re-serializes to the same text.
public struct BNBQuantizationConfig: Sendable, Hashable {
    public var loadIn4Bit: Bool
    public var loadIn8Bit: Bool
    /// `bnb_4bit_compute_dtype` as written (`float32`, `bfloat16`, …).
    public var computeDType: String
    /// `bnb_4bit_quant_storage`: the dtype the packed bytes are viewed as (always `uint8` here).
    public var quantStorage: String
    /// `bnb_4bit_quant_type` as written (`nf4`, `fp4`); transformers records it for int8 too.
    public var quantType: String
    public var useDoubleQuant: Bool
    public var enableFP32CPUOffload: Bool
    public var hasFP16Weight: Bool
    /// `llm_int8_skip_modules`; nil is JSON null (transformers then skips the output head).
    public var skipModules: [String]?
    /// `llm_int8_threshold`: the runtime outlier threshold of LLM.int8, not a storage property.
    public var threshold: Double

    /// The block transformers writes for `BitsAndBytesConfig(load_in_4bit=True,
    /// bnb_4bit_quant_type=…, bnb_4bit_use_double_quant=…, bnb_4bit_compute_dtype=…)`.
    public static func fourBit(_ type: BNB4BitType, doubleQuant: Bool, computeDType: DType) -> BNBQuantizationConfig {
        BNBQuantizationConfig(
            loadIn4Bit: true, loadIn8Bit: false, computeDType: computeDType.torchName ?? "float32",
            quantStorage: "uint8", quantType: type.rawValue, useDoubleQuant: doubleQuant,
            enableFP32CPUOffload: false, hasFP16Weight: false, skipModules: nil, threshold: 6.0)
    }

    /// The block for `BitsAndBytesConfig(load_in_8bit=True)`: the 4-bit fields keep their defaults
    /// (fp4, no double quantization, float32 compute), as transformers writes them.
    public static func int8() -> BNBQuantizationConfig {
        BNBQuantizationConfig(
            loadIn4Bit: false, loadIn8Bit: true, computeDType: "float32", quantStorage: "uint8", quantType: "fp4",
            useDoubleQuant: false, enableFP32CPUOffload: false, hasFP16Weight: false, skipModules: nil, threshold: 6.0)
    }

    public init(loadIn4Bit: Bool, loadIn8Bit: Bool, computeDType: String, quantStorage: String, quantType: String,
                useDoubleQuant: Bool, enableFP32CPUOffload: Bool, hasFP16Weight: Bool, skipModules: [String]?, threshold: Double) {
        self.loadIn4Bit = loadIn4Bit
        self.loadIn8Bit = loadIn8Bit
        self.computeDType = computeDType
        self.quantStorage = quantStorage
        self.quantType = quantType
        self.useDoubleQuant = useDoubleQuant
        self.enableFP32CPUOffload = enableFP32CPUOffload
        self.hasFP16Weight = hasFP16Weight
        self.skipModules = skipModules
        self.threshold = threshold
    }

    /// Reads a `quantization_config` object. Missing keys take `BitsAndBytesConfig`'s defaults
    /// (older transformers versions wrote fewer keys); present keys must have the right type.
    /// - Throws: ``BNBFormatError/invalidConfig(reason:)`` when `quant_method` is not
    ///   `bitsandbytes`, a key is mistyped, or neither/both of 4-bit and 8-bit are set.
    public init(_ object: JSONObject) throws(BNBFormatError) {
        guard let method = object["quant_method"]?.stringValue else {
            throw .invalidConfig(reason: "no \"quant_method\"")
        }
        guard method == "bitsandbytes" else {
            throw .invalidConfig(reason: "quant_method is \"\(method)\", not \"bitsandbytes\"")
        }
        func bool(_ key: String, _ fallback: Bool) throws(BNBFormatError) -> Bool {
            guard let v = object[key], !v.isNull else { return fallback }
            guard let b = v.boolValue else { throw .invalidConfig(reason: "\"\(key)\" is not a boolean") }
            return b
        }
        func string(_ key: String, _ fallback: String) throws(BNBFormatError) -> String {
            guard let v = object[key], !v.isNull else { return fallback }
            guard let s = v.stringValue else { throw .invalidConfig(reason: "\"\(key)\" is not a string") }
            return s
        }
        // transformers 4.3x wrote `load_in_4bit`; later versions both it and `_load_in_4bit`.
        loadIn4Bit = try bool("load_in_4bit", bool("_load_in_4bit", false))
        loadIn8Bit = try bool("load_in_8bit", bool("_load_in_8bit", false))
        guard loadIn4Bit != loadIn8Bit else {
            throw .invalidConfig(reason: loadIn4Bit ? "both load_in_4bit and load_in_8bit are set" : "neither load_in_4bit nor load_in_8bit is set")
        }
        computeDType = try string("bnb_4bit_compute_dtype", "float32")
        quantStorage = try string("bnb_4bit_quant_storage", "uint8")
        quantType = try string("bnb_4bit_quant_type", "fp4")
        useDoubleQuant = try bool("bnb_4bit_use_double_quant", false)
        enableFP32CPUOffload = try bool("llm_int8_enable_fp32_cpu_offload", false)
        hasFP16Weight = try bool("llm_int8_has_fp16_weight", false)
        if let v = object["llm_int8_skip_modules"], !v.isNull {
            guard let items = v.arrayValue else { throw .invalidConfig(reason: "\"llm_int8_skip_modules\" is not a list") }
            var names: [String] = []
            for item in items {
                guard let s = item.stringValue else { throw .invalidConfig(reason: "\"llm_int8_skip_modules\" is not a list of strings") }
                names.append(s)
            }
            skipModules = names
        } else {
            skipModules = nil
        }
        if let v = object["llm_int8_threshold"], !v.isNull {
            guard let d = v.doubleValue else { throw .invalidConfig(reason: "\"llm_int8_threshold\" is not a number") }
            threshold = d
        } else {
            threshold = 6.0
        }
        if loadIn4Bit && BNB4BitType(rawValue: quantType) == nil {
            throw .invalidConfig(reason: "bnb_4bit_quant_type \"\(quantType)\" is neither nf4 nor fp4")
        }
    }

    /// The 4-bit type, for a 4-bit config.
    public var fourBitType: BNB4BitType? { loadIn4Bit ? BNB4BitType(rawValue: quantType) : nil }

    /// The block as transformers writes it: `BitsAndBytesConfig.to_dict()` keys in sorted order
    /// (config.json is written with `sort_keys=True`, so the order here only matters for
    /// other serializations).
    public var json: JSONObject {
        JSONObject([
            ("_load_in_4bit", .bool(loadIn4Bit)),
            ("_load_in_8bit", .bool(loadIn8Bit)),
            ("bnb_4bit_compute_dtype", .string(computeDType)),
            ("bnb_4bit_quant_storage", .string(quantStorage)),
            ("bnb_4bit_quant_type", .string(quantType)),
            ("bnb_4bit_use_double_quant", .bool(useDoubleQuant)),
            ("llm_int8_enable_fp32_cpu_offload", .bool(enableFP32CPUOffload)),
            ("llm_int8_has_fp16_weight", .bool(hasFP16Weight)),
            ("llm_int8_skip_modules", skipModules.map { .array($0.map { .string($0) }) } ?? .null),
            ("llm_int8_threshold", .double(threshold)),
            ("load_in_4bit", .bool(loadIn4Bit)),
            ("load_in_8bit", .bool(loadIn8Bit)),
            ("quant_method", "bitsandbytes"),
        ])
    }

    /// A short human description: `nf4 + double quant (compute bfloat16)`, `int8 (LLM.int8)`.
    public var summary: String {
        if loadIn8Bit { return "int8 (LLM.int8)" }
        return quantType + (useDoubleQuant ? " + double quant" : "") + " (compute \(computeDType))"
    }
}
