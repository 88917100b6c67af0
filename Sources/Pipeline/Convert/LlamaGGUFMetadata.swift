public import TensorCore
public import Formats

/// The GGUF metadata of an HF model, key for key as llama.cpp's converter writes it:
/// `general.*` first, then the architecture's hyper-parameters (from its
/// ``ArchitectureDescription``, for every family), `general.quantization_version`, and the tokenizer.
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
        kv += try withPath(directory.path(of: "config.json")) {
            try arch.hyperParameterEntries(config, fileType: UInt32(LlamaFileType.forConvertedType(fileType)))
        }
        kv.append(GGUFKeyValue(GGUFKeys.General.quantizationVersion, .uint32(2)))
        // gguf-py keeps a key's first position when it is written again (phi writes
        // add_bos_token with its hyper-parameters; the tokenizer section only updates it).
        for entry in try VocabularyMetadata.entries(directory: directory, vocabPre: options.vocabPre, source: arch.vocabulary) {
            if let i = kv.firstIndex(where: { $0.key == entry.key }) { kv[i].value = entry.value } else { kv.append(entry) }
        }
        return GGUFMetadata(kv)
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
