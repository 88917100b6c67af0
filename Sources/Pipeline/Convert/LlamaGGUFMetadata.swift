public import TensorCore
public import Formats

/// The GGUF metadata of an HF model, key for key as llama.cpp's converter writes it:
/// `general.*` first, then the architecture's hyper-parameters, the file type,
/// `general.quantization_version`, and the tokenizer.
public enum LlamaGGUFMetadata {
    public static func entries(
        directory: HFModelDirectory, architecture arch: ArchitectureDescription, fileType: GGMLType,
        tensors: [(name: String, shape: [Int])], options: ConvertOptions
    ) throws -> GGUFMetadata {
        let config = directory.config
        var kv: [GGUFKeyValue] = []
        kv.append(GGUFKeyValue(GGUFKeys.General.architecture, .string(arch.ggufName)))
        kv.append(GGUFKeyValue(GGUFKeys.General.type, .string("model")))
        kv += try GeneralMetadata.entries(directory: directory, tensors: tensors)
        kv += try hyperParameters(config, arch: arch.ggufName, fileType: fileType)
        kv.append(GGUFKeyValue(GGUFKeys.General.quantizationVersion, .uint32(2)))
        kv += try VocabularyMetadata.entries(directory: directory, vocabPre: options.vocabPre)
        return GGUFMetadata(kv)
    }

    /// `TextModel.set_gguf_parameters` + `LlamaModel.set_gguf_parameters`, in their order.
    static func hyperParameters(_ config: HFConfig, arch: String, fileType: GGMLType) throws -> [GGUFKeyValue] {
        typealias K = GGUFKeys.Architecture
        var kv: [GGUFKeyValue] = []
        func u32(_ key: String, _ value: Int) { kv.append(GGUFKeyValue(key, .uint32(UInt32(truncatingIfNeeded: value)))) }
        func f32(_ key: String, _ value: Double) { kv.append(GGUFKeyValue(key, .float32(Float(value)))) }

        u32(K.blockCount(arch), try config.numHiddenLayers)
        if let n = config["max_position_embeddings"]?.intValue { u32(K.contextLength(arch), n) }
        u32(K.embeddingLength(arch), try config.hiddenSize)
        if let n = config["intermediate_size"]?.intValue { u32(K.feedForwardLength(arch), n) }
        u32(K.headCount(arch), try config.numAttentionHeads)
        if let n = config["num_key_value_heads"]?.intValue { u32(K.headCountKV(arch), n) }
        if let scaling = try config.ropeScaling, let factor = scaling.factor {
            switch scaling.type {
            case "linear":
                kv.append(GGUFKeyValue(K.ropeScalingType(arch), .string("linear")))
                f32(K.ropeScalingFactor(arch), factor)
            case "yarn":
                kv.append(GGUFKeyValue(K.ropeScalingType(arch), .string("yarn")))
                f32(K.ropeScalingFactor(arch), factor)
                if let ctx = scaling.originalMaxPositionEmbeddings { u32(K.ropeScalingOriginalContextLength(arch), ctx) }
            default:
                break  // llama3 becomes the rope_freqs tensor; others are not in llama's GGUF.
            }
        }
        if let theta = try config.ropeTheta { f32(K.ropeFreqBase(arch), theta) }
        if let eps = config["rms_norm_eps"]?.doubleValue { f32(K.layerNormRMSEpsilon(arch), eps) }
        if let headDim = try config.headDim {
            u32(K.keyLength(arch), headDim)
            u32(K.valueLength(arch), headDim)
        }
        u32(GGUFKeys.General.fileType, LlamaFileType.forConvertedType(fileType))
        u32(K.vocabSize(arch), try config.vocabSize)
        u32(K.ropeDimensionCount(arch), try config.headDim ?? (config.hiddenSize / config.numAttentionHeads))
        return kv
    }
}

/// llama.cpp's `LlamaFileType` ids (`general.file_type`).
public enum LlamaFileType {
    public static let allF32 = 0, mostlyF16 = 1, mostlyQ4_0 = 2, mostlyQ4_1 = 3, mostlyQ8_0 = 7, mostlyQ5_0 = 8,
        mostlyQ5_1 = 9, mostlyQ2_K = 10, mostlyQ3_K_S = 11, mostlyQ3_K_M = 12, mostlyQ3_K_L = 13, mostlyQ4_K_S = 14,
        mostlyQ4_K_M = 15, mostlyQ5_K_S = 16, mostlyQ5_K_M = 17, mostlyQ6_K = 18, mostlyBF16 = 32

    /// The file type the converter records for a plain output type.
    static func forConvertedType(_ type: GGMLType) -> Int {
        switch type {
        case .f32: allF32
        case .f16: mostlyF16
        case .bf16: mostlyBF16
        case .q8_0: mostlyQ8_0
        default: mostlyF16
        }
    }
}
