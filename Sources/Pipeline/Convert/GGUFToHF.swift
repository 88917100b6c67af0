public import TensorCore
public import Formats

/// GGUF → Hugging Face model directory: the reverse of ``HFToGGUF``, so that transformers loads
/// the result (config.json, generation_config.json, tokenizer files, model.safetensors, with
/// the Q/K row permutation undone and llama3 rope scaling turned back into config values).
public enum GGUFToHF {
    /// Default shard size of the HF output when no `--split-max-size` is given.
    public static let defaultMaxShardSize = 5_000_000_000

    struct PlannedHFTensor {
        let name: String
        let entry: TensorEntry
        let dtype: DType
        let permutation: RowPermutation?
    }

    /// The tensors of the HF checkpoint a GGUF model becomes, before anything is written.
    struct TensorPlan {
        let archName: String
        let source: GGUFTensorSource
        let hyper: LlamaHyperParameters
        let dtype: DType
        let planned: [PlannedHFTensor]
        let ropeFactors: [Float]?
        let shards: SafetensorsShardPlan
    }

    static func planTensors(_ model: GGUFModel, options: ConvertOptions) throws -> TensorPlan {
        let meta = model.metadata
        guard let archName = meta[GGUFKeys.General.architecture]?.stringValue else {
            throw PathError(path: model.path, ConvertError.missingMetadata(GGUFKeys.General.architecture))
        }
        guard let arch = ArchitectureDescription.forGGUF(architecture: archName) else {
            throw PathError(path: model.path, ConvertError.unsupportedArchitecture(archName))
        }
        // config.json is written for the families below; the others convert HF → GGUF only so far.
        guard LlamaHyperParameters.hfFamilies.keys.contains(archName) else {
            throw PathError(path: model.path, Failure(.unsupported,
                "GGUF → HF is implemented for \(LlamaHyperParameters.hfFamilies.keys.sorted().joined(separator: " and ")) so far; \(archName) converts HF → GGUF"))
        }
        let source = GGUFTensorSource(model)
        let hyper = try LlamaHyperParameters(metadata: meta, arch: archName, path: model.path)

        // The dtype of the HF checkpoint: --outtype, or what most matrices are.
        let dtype: DType
        if let chosen = options.outType.dtype {
            dtype = chosen
        } else {
            var counts: [DType: Int] = [:]
            for e in source.entries where e.shape.count >= 2 {
                counts[e.encoding.denseType?.isConvertibleFloat == true ? e.encoding.denseType! : .f32, default: 0] += e.elementCount
            }
            dtype = counts.max { ($0.value, $1.key.alignmentRank) < ($1.value, $0.key.alignmentRank) }?.key ?? .f32
        }

        var planned: [PlannedHFTensor] = []
        var ropeFactors: [Float]?
        for entry in source.entries {
            if entry.name == "rope_freqs.weight" {
                ropeFactors = try decodeFloats(source, entry)
                continue
            }
            guard let (name, headPermutation) = arch.hfName(forGGUF: entry.name) else {
                throw PathError(path: entry.file, ConvertError.unmappedTensor(entry.name))
            }
            let permutation = headPermutation.map { RowPermutation.toHF(heads: $0 == .queryHeads ? hyper.headCount : hyper.headCountKV) }
            planned.append(PlannedHFTensor(name: name, entry: entry, dtype: dtype, permutation: permutation))
        }
        let specs = planned.map { SafetensorsTensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.entry.shape) }
        let shards = try SafetensorsShardPlan(specs, maxShardSize: options.splitMaxBytes ?? defaultMaxShardSize,
                                              metadata: Provenance.safetensorsMetadata(options.provenance))
        return TensorPlan(archName: archName, source: source, hyper: hyper, dtype: dtype, planned: planned,
                          ropeFactors: ropeFactors, shards: shards)
    }

    /// What ``convert(_:to:options:)`` will write (the weights files), without writing anything.
    public static func outputPlan(_ model: GGUFModel, options: ConvertOptions) throws -> OutputPlan {
        let p = try planTensors(model, options: options)
        var peak = 0
        let tensors = p.planned.map { t in
            let bytes = t.dtype.byteCount(elementCount: t.entry.elementCount) ?? 0
            let rowLength = t.entry.shape.last ?? 1
            let rows = max(1, t.entry.elementCount / max(1, rowLength))
            peak = max(peak, OutputPlan.streamingBytes(rowLength: rowLength, rowBytes: bytes / rows, threads: options.threads))
            return OutputPlan.Tensor(name: t.name, sourceType: t.entry.encoding.description, type: t.dtype.rawValue,
                                     shape: t.entry.shape, byteCount: bytes)
        }
        return OutputPlan.safetensors(p.shards, tensors: tensors, peak: peak,
                                      peakInput: p.planned.map(\.entry.byteCount).max() ?? 0)
    }

    public static func convert(_ model: GGUFModel, to output: String, options: ConvertOptions) throws -> ConvertReport {
        let p = try planTensors(model, options: options)
        let (archName, source, hyper, dtype, planned, ropeFactors) = (p.archName, p.source, p.hyper, p.dtype, p.planned, p.ropeFactors)
        let meta = model.metadata
        let tied = !planned.contains { $0.name == "lm_head.weight" }

        let out = try AtomicOutput.directory(at: output, force: options.force)
        var rope: JSONObject
        if let ropeFactors {
            rope = try Llama3RopeRecovery.parameters(factors: ropeFactors, theta: hyper.ropeTheta, headDim: hyper.ropeDimension)
        } else {
            rope = JSONObject([("rope_theta", .double(hyper.ropeTheta)), ("rope_type", "default")])
        }
        if let scalingType = meta[GGUFKeys.Architecture.ropeScalingType(archName)]?.stringValue, scalingType == "linear",
           let factor = meta[GGUFKeys.Architecture.ropeScalingFactor(archName)]?.doubleValue {
            rope = JSONObject([("factor", .double(factor)), ("rope_theta", .double(hyper.ropeTheta)), ("rope_type", "linear")])
        }
        let vocab = try VocabularyMetadata.vocabulary(from: meta, path: model.path)
        let config = hyper.hfConfig(family: archName, dtype: dtype, tied: tied, rope: rope, bos: vocab.bos, eos: vocab.eos, pad: vocab.pad)
        try writeText(config.serialized(.python(indent: 2, sortKeys: true)) + "\n", to: out.path(of: "config.json"))
        try writeText(hyper.generationConfig(bos: vocab.bos, eos: vocab.eos, pad: vocab.pad).serialized(.python(indent: 2, sortKeys: true)) + "\n",
                      to: out.path(of: "generation_config.json"))
        for (fileName, text) in try VocabularyMetadata.tokenizerFiles(from: meta, path: model.path) {
            try writeBytes(text, to: out.path(of: fileName))
        }

        let byName = Dictionary(uniqueKeysWithValues: planned.map { ($0.name, $0) })
        let counter = ProgressCounter(options.progress, tensorCount: planned.count,
                                      bytesTotal: planned.reduce(0) { $0 + ($1.dtype.byteCount(elementCount: $1.entry.elementCount) ?? 0) })
        let files = try p.shards.write(into: out.temporaryPath) { tensor, file in
            let p = byName[tensor.name]!
            // Errors about the tensor name the file it comes from (errors naming their own file,
            // such as a failed write, keep theirs).
            let transcoder = try withPath(p.entry.file) {
                try RowTranscoder(
                    tensorName: p.entry.name, shape: p.entry.shape, source: p.entry.encoding, target: .dense(p.dtype),
                    permutation: p.permutation, threads: options.threads)
            }
            try transcoder.run(input: try source.bytes(of: p.entry), consumed: source.releasePages(of:)) { capacity, fill in
                try file.withWritableBuffer(capacity: capacity, fill)
            }
            counter.wrote(p.name, bytes: p.dtype.byteCount(elementCount: p.entry.elementCount) ?? 0)
        }
        // A changed input never becomes an output.
        try source.checkUnchanged()
        try out.commit()

        var report = ConvertReport()
        report.outputs = [output] + files.map { FileSystem.join(output, $0) }
        report.tensorCount = planned.count
        for p in planned {
            report.byteCount += p.dtype.byteCount(elementCount: p.entry.elementCount) ?? 0
            report.parameterCount += p.entry.elementCount
            report.typeCounts[p.dtype.rawValue, default: 0] += 1
        }
        return report
    }

    static func decodeFloats(_ source: GGUFTensorSource, _ entry: TensorEntry) throws -> [Float] {
        let bytes = try source.bytes(of: entry)
        guard let d = entry.encoding.denseType, d.isConvertibleFloat else {
            throw PathError(path: entry.file, ConvertError.unsupportedDType(tensor: entry.name, dtype: entry.encoding.description))
        }
        var values = [Float](repeating: 0, count: entry.elementCount)
        values.withUnsafeMutableBufferPointer { DenseFloat.decode(bytes, dtype: d, into: $0) }
        return values
    }

    static func writeText(_ text: String, to path: String) throws {
        try writeBytes(Array(text.utf8), to: path)
    }

    static func writeBytes(_ bytes: [UInt8], to path: String) throws {
        let file = try OutputFile(path: path)
        try file.write(bytes)
        try file.close()
    }
}

/// The LLaMA hyper-parameters held in GGUF metadata, and the HF config they become.
struct LlamaHyperParameters {
    let blockCount, contextLength, embeddingLength, feedForwardLength, headCount, headCountKV: Int
    let vocabSize: Int
    let ropeDimension: Int
    let headDim: Int?
    let ropeTheta: Double
    let rmsEpsilon: Double

    init(metadata meta: GGUFMetadata, arch: String, path: String) throws {
        typealias K = GGUFKeys.Architecture
        func int(_ key: String) throws -> Int {
            guard let v = meta[key]?.intValue else { throw PathError(path: path, ConvertError.missingMetadata(key)) }
            return v
        }
        blockCount = try int(K.blockCount(arch))
        contextLength = try int(K.contextLength(arch))
        embeddingLength = try int(K.embeddingLength(arch))
        feedForwardLength = try int(K.feedForwardLength(arch))
        headCount = try int(K.headCount(arch))
        headCountKV = meta[K.headCountKV(arch)]?.intValue ?? headCount
        let tokens = meta[GGUFKeys.Tokenizer.tokens]?.arrayValue?.count
        vocabSize = meta[K.vocabSize(arch)]?.intValue ?? tokens ?? 0
        headDim = meta[K.keyLength(arch)]?.intValue
        ropeDimension = meta[K.ropeDimensionCount(arch)]?.intValue ?? embeddingLength / headCount
        // FLOAT32 values were rounded from the config's doubles; print them as the shortest
        // decimal that rounds to the same float (1e-05, not 9.999999747378752e-06).
        ropeTheta = Self.shortestDouble(meta[K.ropeFreqBase(arch)]?.floatValue ?? 10000)
        rmsEpsilon = Self.shortestDouble(meta[K.layerNormRMSEpsilon(arch)]?.floatValue ?? 1e-5)
    }

    static func shortestDouble(_ f: Float) -> Double { Double(f.description) ?? Double(f) }

    /// GGUF architecture → (HF class, `model_type`) of the configs ``hfConfig(family:dtype:tied:rope:bos:eos:pad:)`` writes.
    static let hfFamilies: [String: (architecture: String, modelType: String)] = [
        "llama": ("LlamaForCausalLM", "llama"),
        "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    ]

    func hfConfig(family: String, dtype: DType, tied: Bool, rope: JSONObject, bos: Int?, eos: Int?, pad: Int?) -> JSONValue {
        func opt(_ v: Int?) -> JSONValue { v.map { .int(Int64($0)) } ?? .null }
        if family == "qwen2" {
            // Qwen2's keys as transformers' Qwen2Config saves them (q/k/v biases are implied by the class).
            var c = JSONObject()
            c["architectures"] = ["Qwen2ForCausalLM"]
            c["attention_dropout"] = 0.0
            c["bos_token_id"] = opt(bos)
            c["dtype"] = .string(dtype.torchName ?? "float32")
            c["eos_token_id"] = opt(eos)
            c["hidden_act"] = "silu"
            c["hidden_size"] = .int(Int64(embeddingLength))
            c["initializer_range"] = 0.02
            c["intermediate_size"] = .int(Int64(feedForwardLength))
            c["max_position_embeddings"] = .int(Int64(contextLength))
            c["model_type"] = "qwen2"
            c["num_attention_heads"] = .int(Int64(headCount))
            c["num_hidden_layers"] = .int(Int64(blockCount))
            c["num_key_value_heads"] = .int(Int64(headCountKV))
            c["pad_token_id"] = opt(pad)
            c["rms_norm_eps"] = .double(rmsEpsilon)
            c["rope_parameters"] = .object(rope)
            c["sliding_window"] = .null
            c["tie_word_embeddings"] = .bool(tied)
            c["use_cache"] = true
            c["use_sliding_window"] = false
            c["vocab_size"] = .int(Int64(vocabSize))
            return .object(c)
        }
        var c = JSONObject()
        c["architectures"] = ["LlamaForCausalLM"]
        c["attention_bias"] = false
        c["attention_dropout"] = 0.0
        c["bos_token_id"] = opt(bos)
        c["dtype"] = .string(dtype.torchName ?? "float32")
        c["eos_token_id"] = opt(eos)
        c["head_dim"] = .int(Int64(headDim ?? embeddingLength / headCount))
        c["hidden_act"] = "silu"
        c["hidden_size"] = .int(Int64(embeddingLength))
        c["initializer_range"] = 0.02
        c["intermediate_size"] = .int(Int64(feedForwardLength))
        c["max_position_embeddings"] = .int(Int64(contextLength))
        c["mlp_bias"] = false
        c["model_type"] = "llama"
        c["num_attention_heads"] = .int(Int64(headCount))
        c["num_hidden_layers"] = .int(Int64(blockCount))
        c["num_key_value_heads"] = .int(Int64(headCountKV))
        c["pad_token_id"] = opt(pad)
        c["pretraining_tp"] = 1
        c["rms_norm_eps"] = .double(rmsEpsilon)
        c["rope_parameters"] = .object(rope)
        c["tie_word_embeddings"] = .bool(tied)
        c["use_cache"] = true
        c["vocab_size"] = .int(Int64(vocabSize))
        return .object(c)
    }

    func generationConfig(bos: Int?, eos: Int?, pad: Int?) -> JSONValue {
        var c = JSONObject()
        c["_from_model_config"] = true
        if let bos { c["bos_token_id"] = .int(Int64(bos)) }
        if let eos { c["eos_token_id"] = .int(Int64(eos)) }
        if let pad { c["pad_token_id"] = .int(Int64(pad)) }
        return .object(c)
    }
}

/// Recovers llama3 rope-scaling parameters from the `rope_freqs.weight` divisors the
/// converter wrote: the factor is the largest divisor; the band limits and original context
/// are searched among the values real checkpoints use, keeping the one that reproduces every
/// divisor exactly.
enum Llama3RopeRecovery {
    struct Unrecoverable: ClassifiedError {
        var kind: ErrorKind { .unsupported }
        var description: String { "rope_freqs.weight does not match any llama3 rope scaling wconv can express in config.json" }
    }

    static func parameters(factors: [Float], theta: Double, headDim: Int) throws -> JSONObject {
        let factor = Double(factors.max() ?? 1)
        var contexts: [Int] = []
        var c = 16
        while c <= 1 << 21 { contexts.append(c); c *= 2 }
        for original in [8192] + contexts {
            for (low, high) in [(1.0, 4.0), (1.0, 2.0), (2.0, 8.0), (1.0, 8.0)] {
                let object = JSONObject([
                    ("rope_type", "llama3"), ("rope_theta", .double(theta)), ("factor", .double(factor)),
                    ("low_freq_factor", .double(low)), ("high_freq_factor", .double(high)),
                    ("original_max_position_embeddings", .int(Int64(original))),
                ])
                let config = HFConfig(JSONObject([
                    ("rope_parameters", .object(object)), ("head_dim", .int(Int64(headDim))),
                    ("hidden_size", .int(Int64(headDim))), ("num_attention_heads", 1),
                ]))
                if let recomputed = try? HFToGGUF.llama3RopeFactors(config), recomputed == factors {
                    return JSONObject([
                        ("factor", .double(factor)), ("high_freq_factor", .double(high)), ("low_freq_factor", .double(low)),
                        ("original_max_position_embeddings", .int(Int64(original))),
                        ("rope_theta", .double(theta)), ("rope_type", "llama3"),
                    ])
                }
            }
        }
        throw Unrecoverable()
    }
}
