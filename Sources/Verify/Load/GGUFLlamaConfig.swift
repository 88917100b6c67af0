public import Formats
import TensorCore

extension LlamaConfig {
    /// The configuration a GGUF file's metadata describes, as llama.cpp's loader reads it
    /// (`llm_load_hparams` for `LLM_ARCH_LLAMA` and `LLM_ARCH_QWEN2`).
    ///
    /// - `qwen2` is the LLaMA block with q/k/v biases (``attentionBias``) and NEOX rotary (the
    ///   tensors are stored unpermuted). GGUF has no sliding-window key: a Mistral file (`llama`)
    ///   runs with full causal attention, as llama.cpp does.
    ///
    /// - `{arch}.block_count`, `.embedding_length`, `.feed_forward_length`, `.context_length`,
    ///   `.attention.head_count` and `.attention.layer_norm_rms_epsilon` are required;
    ///   `.attention.head_count_kv` defaults to the head count, `.attention.key_length` to
    ///   embedding / heads, `.rope.freq_base` to 10000.
    /// - The vocabulary size is `{arch}.vocab_size`, else the number of `tokenizer.ggml.tokens`,
    ///   else the rows of `token_embd.weight`.
    /// - RoPE: `rope_freqs` (llama.cpp's converter stores llama3 scaling as per-frequency
    ///   divisors) becomes ``RopeScaling/divisors(_:)``; `rope.scaling.type = linear` becomes
    ///   ``RopeScaling/linear(factor:)``; YaRN and partial rotary dimensions are refused.
    /// - The output head is tied when there is no `output.weight`.
    ///
    /// - Parameters:
    ///   - metadata: the file's key-value pairs.
    ///   - tensors: the file's tensor entries (for the tied head and the vocabulary fallback).
    ///   - ropeDivisors: the decoded `rope_freqs.weight`, if the file has one.
    /// - Throws: ``ModelLoadError`` for a missing key or another architecture,
    ///   ``VerifyError`` for values the forward pass cannot run.
    public init(gguf metadata: GGUFMetadata, tensors: [TensorEntry], ropeDivisors: [Float]?) throws {
        typealias K = GGUFKeys.Architecture
        guard let arch = metadata[GGUFKeys.General.architecture]?.stringValue else {
            throw ModelLoadError.missingMetadata(GGUFKeys.General.architecture)
        }
        guard Self.ggufArchitectures.contains(arch) else { throw ModelLoadError.unsupportedArchitecture(arch) }
        func int(_ key: String) throws -> Int {
            guard let v = metadata[key]?.intValue else { throw ModelLoadError.missingMetadata(key) }
            return v
        }
        func double(_ key: String) throws -> Double {
            guard let v = metadata[key]?.doubleValue else { throw ModelLoadError.missingMetadata(key) }
            return v
        }
        let hidden = try int(K.embeddingLength(arch))
        let heads = try int(K.headCount(arch))
        let kvHeads = metadata[K.headCountKV(arch)]?.intValue ?? heads
        guard heads > 0 else { throw VerifyError.badConfigValue(key: K.headCount(arch), reason: "must be positive") }
        let headDim = metadata[K.keyLength(arch)]?.intValue ?? hidden / heads
        if let valueLength = metadata[K.valueLength(arch)]?.intValue, valueLength != headDim {
            throw VerifyError.unsupportedConfig("value_length \(valueLength) differs from key_length \(headDim)")
        }
        if let ropeDims = metadata[K.ropeDimensionCount(arch)]?.intValue, ropeDims != headDim {
            throw VerifyError.unsupportedConfig("rope.dimension_count \(ropeDims) (partial rotary) with head size \(headDim)")
        }
        let embedding = tensors.first { $0.name == "token_embd.weight" }
        let vocab = metadata[K.vocabSize(arch)]?.intValue
            ?? metadata[GGUFKeys.Tokenizer.tokens]?.arrayValue?.count
            ?? embedding?.shape.first
        guard let vocab else { throw ModelLoadError.missingMetadata(K.vocabSize(arch)) }

        var scaling = RopeScaling.none
        if let type = metadata[K.ropeScalingType(arch)]?.stringValue {
            switch type {
            case "none": break
            case "linear": scaling = .linear(factor: try double(K.ropeScalingFactor(arch)))
            default: throw VerifyError.unsupportedConfig("rope.scaling.type \(type)")
            }
        }
        if let ropeDivisors {
            guard case .none = scaling else {
                throw VerifyError.unsupportedConfig("rope_freqs together with rope.scaling.type")
            }
            scaling = .divisors(ropeDivisors)
        }
        self.init(
            vocabularySize: vocab, hiddenSize: hidden, intermediateSize: try int(K.feedForwardLength(arch)),
            layerCount: try int(K.blockCount(arch)), headCount: heads, kvHeadCount: kvHeads, headDimension: headDim,
            // FLOAT32 in the file: the float nearest the config's double, widened.
            rmsNormEpsilon: try double(K.layerNormRMSEpsilon(arch)),
            ropeTheta: metadata[K.ropeFreqBase(arch)]?.doubleValue ?? 10000,
            ropeScaling: scaling,
            tiedEmbeddings: !tensors.contains { $0.name == "output.weight" },
            maxPositions: try int(K.contextLength(arch)),
            attentionBias: arch == ArchitectureDescription.qwen2.ggufName)
        try validate()
    }

    /// The GGUF architectures the forward pass runs: LLaMA's block, and Qwen2's (LLaMA's with
    /// q/k/v biases).
    public static let ggufArchitectures: Set<String> = [
        ArchitectureDescription.llama.ggufName, ArchitectureDescription.qwen2.ggufName,
    ]
}
