/// Metadata key names, spelled as gguf-py's `constants.py` (`Keys`) and llama.cpp write them.
///
/// Architecture-specific keys are `<arch>.<suffix>`; ``Llama`` spells them out for `llama`, and
/// ``Architecture`` builds them for any architecture name.
public enum GGUFKeys {
    /// `general.*`.
    public enum General {
        public static let architecture = "general.architecture"
        public static let type = "general.type"
        public static let quantizationVersion = "general.quantization_version"
        /// Must be UINT32, a non-zero power of two; 32 when absent.
        public static let alignment = "general.alignment"
        public static let fileType = "general.file_type"
        public static let name = "general.name"
        public static let author = "general.author"
        public static let version = "general.version"
        public static let organization = "general.organization"
        public static let finetune = "general.finetune"
        public static let basename = "general.basename"
        public static let description = "general.description"
        public static let quantizedBy = "general.quantized_by"
        public static let sizeLabel = "general.size_label"
        public static let license = "general.license"
        public static let licenseName = "general.license.name"
        public static let licenseLink = "general.license.link"
        public static let url = "general.url"
        public static let doi = "general.doi"
        public static let uuid = "general.uuid"
        public static let repoURL = "general.repo_url"
        public static let sourceURL = "general.source.url"
        public static let sourceRepoURL = "general.source.repo_url"
        public static let baseModelCount = "general.base_model.count"
        public static let tags = "general.tags"
        public static let languages = "general.languages"
    }

    /// Architecture-specific keys for any architecture (`<arch>.block_count`, …).
    public enum Architecture {
        public static func key(_ architecture: String, _ suffix: String) -> String { "\(architecture).\(suffix)" }
        public static func vocabSize(_ a: String) -> String { key(a, "vocab_size") }
        public static func contextLength(_ a: String) -> String { key(a, "context_length") }
        public static func embeddingLength(_ a: String) -> String { key(a, "embedding_length") }
        public static func blockCount(_ a: String) -> String { key(a, "block_count") }
        public static func feedForwardLength(_ a: String) -> String { key(a, "feed_forward_length") }
        public static func headCount(_ a: String) -> String { key(a, "attention.head_count") }
        public static func headCountKV(_ a: String) -> String { key(a, "attention.head_count_kv") }
        public static func keyLength(_ a: String) -> String { key(a, "attention.key_length") }
        public static func valueLength(_ a: String) -> String { key(a, "attention.value_length") }
        public static func layerNormRMSEpsilon(_ a: String) -> String { key(a, "attention.layer_norm_rms_epsilon") }
        public static func ropeDimensionCount(_ a: String) -> String { key(a, "rope.dimension_count") }
        public static func ropeFreqBase(_ a: String) -> String { key(a, "rope.freq_base") }
        public static func ropeScalingType(_ a: String) -> String { key(a, "rope.scaling.type") }
        public static func ropeScalingFactor(_ a: String) -> String { key(a, "rope.scaling.factor") }
        public static func ropeScalingOriginalContextLength(_ a: String) -> String {
            key(a, "rope.scaling.original_context_length")
        }
    }

    /// `llama.*`, as `convert_hf_to_gguf.py` writes them for a `LlamaForCausalLM`.
    public enum Llama {
        public static let vocabSize = Architecture.vocabSize("llama")
        public static let contextLength = Architecture.contextLength("llama")
        public static let embeddingLength = Architecture.embeddingLength("llama")
        public static let blockCount = Architecture.blockCount("llama")
        public static let feedForwardLength = Architecture.feedForwardLength("llama")
        public static let headCount = Architecture.headCount("llama")
        public static let headCountKV = Architecture.headCountKV("llama")
        public static let keyLength = Architecture.keyLength("llama")
        public static let valueLength = Architecture.valueLength("llama")
        public static let layerNormRMSEpsilon = Architecture.layerNormRMSEpsilon("llama")
        public static let ropeDimensionCount = Architecture.ropeDimensionCount("llama")
        public static let ropeFreqBase = Architecture.ropeFreqBase("llama")
        public static let ropeScalingType = Architecture.ropeScalingType("llama")
        public static let ropeScalingFactor = Architecture.ropeScalingFactor("llama")
        public static let ropeScalingOriginalContextLength = Architecture.ropeScalingOriginalContextLength("llama")
    }

    /// `tokenizer.ggml.*` and `tokenizer.chat_template`.
    public enum Tokenizer {
        public static let model = "tokenizer.ggml.model"
        public static let pre = "tokenizer.ggml.pre"
        public static let tokens = "tokenizer.ggml.tokens"
        public static let tokenType = "tokenizer.ggml.token_type"
        public static let tokenTypeCount = "tokenizer.ggml.token_type_count"
        public static let scores = "tokenizer.ggml.scores"
        public static let merges = "tokenizer.ggml.merges"
        public static let bosTokenID = "tokenizer.ggml.bos_token_id"
        public static let eosTokenID = "tokenizer.ggml.eos_token_id"
        public static let eotTokenID = "tokenizer.ggml.eot_token_id"
        public static let eomTokenID = "tokenizer.ggml.eom_token_id"
        public static let unknownTokenID = "tokenizer.ggml.unknown_token_id"
        /// Spelled `seperator` in gguf-py and llama.cpp.
        public static let separatorTokenID = "tokenizer.ggml.seperator_token_id"
        public static let paddingTokenID = "tokenizer.ggml.padding_token_id"
        public static let maskTokenID = "tokenizer.ggml.mask_token_id"
        public static let addBOSToken = "tokenizer.ggml.add_bos_token"
        public static let addEOSToken = "tokenizer.ggml.add_eos_token"
        public static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
        public static let removeExtraWhitespaces = "tokenizer.ggml.remove_extra_whitespaces"
        public static let precompiledCharsmap = "tokenizer.ggml.precompiled_charsmap"
        public static let huggingFaceJSON = "tokenizer.huggingface.json"
        public static let chatTemplate = "tokenizer.chat_template"
    }

    /// `split.*`, written by llama.cpp's `gguf-split` into every part of a split model.
    public enum Split {
        /// UINT16, 0-based part index.
        public static let number = "split.no"
        /// UINT16, number of parts.
        public static let count = "split.count"
        /// INT32, number of tensors in all parts together.
        public static let tensorsCount = "split.tensors.count"
    }

    /// `adapter.*`, for LoRA adapters (`general.type` = `adapter`).
    public enum Adapter {
        public static let type = "adapter.type"
        public static let loraAlpha = "adapter.lora.alpha"
    }
}
