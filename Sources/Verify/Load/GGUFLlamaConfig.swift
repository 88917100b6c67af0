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
        guard Self.ggufArchitectures.contains(arch) else {
            guard let family = ModelFamily(ggufArchitecture: arch) else { throw ModelLoadError.unsupportedArchitecture(arch) }
            try self.init(gguf: metadata, tensors: tensors, architecture: arch, family: family)
            return
        }
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

    /// The GGUF architectures read as LLaMA's block: LLaMA's, and Qwen2's (LLaMA's with q/k/v
    /// biases). The other families' architectures are ``ModelFamily/init(ggufArchitecture:)``'s.
    public static let ggufArchitectures: Set<String> = [
        ArchitectureDescription.llama.ggufName, ArchitectureDescription.qwen2.ggufName,
    ]
}

extension LlamaConfig {
    /// The other families' `<arch>.*` keys, as llama.cpp's loader reads them (`llm_load_hparams`),
    /// and the block llama.cpp's graph for the architecture runs:
    ///
    /// - `gpt2`: learned positions (`position_embd`), LayerNorm with bias, biases everywhere.
    /// - `phi2`: parallel block with one LayerNorm, partial rotary over `rope.dimension_count`,
    ///   a biased head.
    /// - `falcon`: parallel block; two norms when the file has `blk.0.attn_norm_2.weight` (40B).
    /// - `mpt`: ALiBi with `attention.max_alibi_bias`; norm biases when the file has them.
    /// - `qwen`: `feed_forward_length` is twice the MLP width (llama.cpp halves it); the epsilon
    ///   is `layer_norm_rms_epsilon`, else the converter's `layer_norm_epsilon`.
    /// - `baichuan`: llama.cpp picks RoPE for 32 layers and ALiBi (max bias 8) for 40, and
    ///   runs neither for any other count; so does this (the file does not say which model it is).
    ///
    /// GELU is llama.cpp's table-driven tanh form (``BlockDescription/Activation/geluGGML``), so
    /// the logits are llama.cpp's; the HF checkpoint of the same model runs its own GELU (exact for
    /// Falcon and MPT), which moves logits by ~1e-3.
    init(gguf metadata: GGUFMetadata, tensors: [TensorEntry], architecture arch: String, family: ModelFamily) throws {
        typealias K = GGUFKeys.Architecture
        func int(_ key: String) throws -> Int {
            guard let v = metadata[key]?.intValue else { throw ModelLoadError.missingMetadata(key) }
            return v
        }
        func double(_ key: String) -> Double? { metadata[key]?.doubleValue }
        func has(_ name: String) -> Bool { tensors.contains { $0.name == name } }
        let hidden = try int(K.embeddingLength(arch))
        let heads = try int(K.headCount(arch))
        guard heads > 0 else { throw VerifyError.badConfigValue(key: K.headCount(arch), reason: "must be positive") }
        let kvHeads = metadata[K.headCountKV(arch)]?.intValue ?? heads
        let headDim = hidden / heads
        let vocab = metadata[K.vocabSize(arch)]?.intValue
            ?? metadata[GGUFKeys.Tokenizer.tokens]?.arrayValue?.count
            ?? tensors.first { $0.name == "token_embd.weight" }?.shape.first
        guard let vocab else { throw ModelLoadError.missingMetadata(K.vocabSize(arch)) }
        let layers = try int(K.blockCount(arch))
        var ffn = try int(K.feedForwardLength(arch))
        let layerNormKey = K.key(arch, "attention.layer_norm_epsilon")
        var epsilon = double(layerNormKey)
        let normBias = has("blk.0.attn_norm.bias")
        let block: BlockDescription
        switch family {
        case .gpt2:
            block = BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(.geluGGML), positions: .learned(offset: 0),
                                     qkvBias: true, outputBias: true, mlpBias: true)
        case .phi:
            let dims = metadata[K.ropeDimensionCount(arch)]?.intValue ?? headDim
            block = BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(.geluGGML), positions: .rotary(dimensions: dims),
                                     residual: .parallel(separateNorms: false), qkvBias: true, outputBias: true, mlpBias: true,
                                     headBias: has("output.bias"))
        case .falcon:
            let bias = has("blk.0.attn_qkv.bias")
            block = BlockDescription(norm: .layerNorm(bias: true), mlp: .plain(.geluGGML), positions: .rotary(dimensions: headDim),
                                     residual: .parallel(separateNorms: has("blk.0.attn_norm_2.weight")),
                                     qkvBias: bias, outputBias: bias, mlpBias: bias)
        case .mpt:
            if metadata[K.key(arch, "attention.clamp_kqv")] != nil {
                throw VerifyError.unsupportedConfig("MPT: attention.clamp_kqv")
            }
            let maxBias = double(K.key(arch, "attention.max_alibi_bias")) ?? 0
            guard maxBias > 0 else { throw VerifyError.unsupportedConfig("MPT: attention.max_alibi_bias 0 (no ALiBi)") }
            let bias = has("blk.0.attn_qkv.bias")
            block = BlockDescription(norm: .layerNorm(bias: normBias), mlp: .plain(.geluGGML), positions: .alibi(maxBias: maxBias),
                                     qkvBias: bias, outputBias: bias, mlpBias: bias)
        case .qwen:
            ffn /= 2
            epsilon = double(K.layerNormRMSEpsilon(arch)) ?? epsilon
            block = BlockDescription(norm: .rms, mlp: .swiGLU, positions: .rotary(dimensions: headDim), qkvBias: true)
        case .baichuan:
            epsilon = double(K.layerNormRMSEpsilon(arch))
            let positions: BlockDescription.Positions =
                layers == 32 ? .rotary(dimensions: headDim) : layers == 40 ? .alibi(maxBias: 8) : .none
            block = BlockDescription(norm: .rms, mlp: .swiGLU, positions: positions)
        case .llama, .opt, .persimmon:
            throw ModelLoadError.unsupportedArchitecture(arch)
        }
        guard let epsilon else {
            throw ModelLoadError.missingMetadata(family == .baichuan ? K.layerNormRMSEpsilon(arch) : layerNormKey)
        }
        self.init(
            vocabularySize: vocab, hiddenSize: hidden, intermediateSize: ffn, layerCount: layers,
            headCount: heads, kvHeadCount: kvHeads, headDimension: headDim, rmsNormEpsilon: epsilon,
            ropeTheta: double(K.ropeFreqBase(arch)) ?? 10000,
            tiedEmbeddings: !has("output.weight"), maxPositions: try int(K.contextLength(arch)),
            block: block, family: family)
        try validate()
    }
}
