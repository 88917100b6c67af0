import TensorCore
public import Formats

/// GGUF → Hugging Face model directory: the reverse of ``HFToGGUF``, so that transformers loads
/// the result (config.json, generation_config.json, tokenizer files, model.safetensors, with
/// the Q/K row permutation undone and llama3 rope scaling turned back into config values).
public enum GGUFToHF {
    /// Default shard size of the HF output when no `--split-max-size` is given.
    public static let defaultMaxShardSize = 5_000_000_000

    /// One HF tensor of the output: the GGUF tensors it is made of (one, or the parts of a
    /// split, whose rows are concatenated in order), each with the row permutation to undo, then
    /// the layout change to undo on the whole tensor.
    struct PlannedHFTensor {
        struct Piece {
            let entry: TensorEntry
            let permutation: RowPermutation?
        }

        let name: String
        let pieces: [Piece]
        let layout: InverseLayout?
        /// The HF shape (after the layout change).
        let shape: [Int]
        let dtype: DType

        var elementCount: Int { pieces.reduce(0) { $0 + $1.entry.elementCount } }
        var byteCount: Int { dtype.byteCount(elementCount: elementCount) ?? 0 }
        var inputByteCount: Int { pieces.reduce(0) { $0 + $1.entry.byteCount } }
        /// Streamed straight from the input (no concatenation, no data movement beyond rows).
        var isStreamed: Bool { pieces.count == 1 && layout == nil }
    }

    /// The inverse of a ``TensorTransform`` that moves more than rows, applied to the assembled
    /// tensor in the output dtype.
    enum InverseLayout: Hashable {
        /// `[out, in]` back to Conv1D's `[in, out]` (GPT-2).
        case transpose
        /// All query heads, all key heads, all value heads → grouped per KV head (Falcon).
        case ungroupFusedQKV(heads: Int, kvHeads: Int)
    }

    /// The tensors of the HF checkpoint a GGUF model becomes, before anything is written.
    struct TensorPlan {
        let archName: String
        let arch: ArchitectureDescription
        let source: GGUFTensorSource
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
        let source = GGUFTensorSource(model)

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

        // Head counts, read only when a transform needs them.
        func heads() throws -> (heads: Int, kvHeads: Int) {
            guard let h = meta[GGUFKeys.Architecture.headCount(archName)]?.intValue, h > 0 else {
                throw PathError(path: model.path, ConvertError.missingMetadata(GGUFKeys.Architecture.headCount(archName)))
            }
            return (h, meta[GGUFKeys.Architecture.headCountKV(archName)]?.intValue ?? h)
        }
        func rowPermutation(_ which: HeadPermutation?) throws -> RowPermutation? {
            guard let which else { return nil }
            let counts = try heads()
            return .toHF(heads: which == .queryHeads ? counts.heads : counts.kvHeads)
        }

        let names = Set(source.entries.map(\.name))
        var planned: [PlannedHFTensor] = []
        var ropeFactors: [Float]?
        // Parts of split HF tensors, gathered until all are seen; placed where the first part is.
        var parts: [String: [Int: (TensorEntry, RowPermutation?)]] = [:]
        var partCounts: [String: Int] = [:]
        var slots: [(index: Int, name: String)] = []
        var seen = Set<String>()
        for entry in source.entries {
            if entry.name == "rope_freqs.weight" {
                ropeFactors = try decodeFloats(source, entry)
                continue
            }
            guard let origin = arch.hfTensor(forGGUF: entry.name, ggufHas: names.contains) else {
                throw PathError(path: entry.file, ConvertError.unmappedTensor(entry.name))
            }
            let bad = { (why: String) in PathError(path: entry.file, ConvertError.badLayout(tensor: entry.name, why)) }
            if let part = origin.part {
                let permutation = try rowPermutation(part.permutation)
                if let permutation, !permutation.isValid(rowCount: entry.shape.first ?? 0) { throw bad("rows cannot be split into heads of even size") }
                if parts[origin.hfName] == nil {
                    slots.append((planned.count + slots.count, origin.hfName))
                    partCounts[origin.hfName] = part.count
                }
                guard parts[origin.hfName, default: [:]].updateValue((entry, permutation), forKey: part.index) == nil else {
                    throw PathError(path: entry.file, ConvertError.duplicateOutputTensor(origin.hfName))
                }
                continue
            }
            guard seen.insert(origin.hfName).inserted else { throw PathError(path: entry.file, ConvertError.duplicateOutputTensor(origin.hfName)) }
            var shape = entry.shape
            var permutation: RowPermutation?
            var layout: InverseLayout?
            switch origin.transform {
            case nil, .split:
                break
            case .permute(let which):
                permutation = try rowPermutation(which)
                if let permutation, !permutation.isValid(rowCount: shape.first ?? 0) { throw bad("rows cannot be split into heads of even size") }
            case .transpose:
                guard shape.count == 2 else { throw bad("a Conv1D weight must be 2-D") }
                shape = [shape[1], shape[0]]
                layout = .transpose
            case .regroupFusedQKV:
                let counts = try heads()
                guard shape.count == 2,
                      TensorLayoutChange.fusedQKVRowOrder(rows: shape[0], heads: counts.heads, kvHeads: counts.kvHeads) != nil else {
                    throw bad("\(shape.first ?? 0) rows are not \(counts.heads) query + 2 × \(counts.kvHeads) key/value heads")
                }
                layout = .ungroupFusedQKV(heads: counts.heads, kvHeads: counts.kvHeads)
            }
            planned.append(PlannedHFTensor(name: origin.hfName, pieces: [.init(entry: entry, permutation: permutation)],
                                           layout: layout, shape: shape, dtype: dtype))
        }
        // Assemble the split tensors from their parts, in the parts' order.
        for slot in slots {
            let byIndex = parts[slot.name] ?? [:]
            let count = partCounts[slot.name] ?? 0
            guard byIndex.count == count, seen.insert(slot.name).inserted else {
                throw PathError(path: model.path, ConvertError.missingTensor("\(slot.name): \(byIndex.count) of its \(count) parts"))
            }
            let pieces = (0 ..< count).compactMap { byIndex[$0] }.map { PlannedHFTensor.Piece(entry: $0.0, permutation: $0.1) }
            let inner = pieces[0].entry.shape.dropFirst()
            guard pieces.allSatisfy({ $0.entry.shape.count >= 1 && $0.entry.shape.dropFirst() == inner }) else {
                throw PathError(path: model.path, ConvertError.badLayout(tensor: slot.name, "its parts differ in their row length"))
            }
            let shape = [pieces.reduce(0) { $0 + $1.entry.shape[0] }] + inner
            planned.insert(PlannedHFTensor(name: slot.name, pieces: pieces, layout: nil, shape: shape, dtype: dtype),
                           at: min(slot.index, planned.count))
        }
        let specs = planned.map { SafetensorsTensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        let shards = try SafetensorsShardPlan(specs, maxShardSize: options.splitMaxBytes ?? defaultMaxShardSize,
                                              metadata: Provenance.safetensorsMetadata(options.provenance))
        return TensorPlan(archName: archName, arch: arch, source: source, dtype: dtype, planned: planned,
                          ropeFactors: ropeFactors, shards: shards)
    }

    /// What ``convert(_:to:options:)`` will write (the weights files), without writing anything.
    public static func outputPlan(_ model: GGUFModel, options: ConvertOptions) throws -> OutputPlan {
        let p = try planTensors(model, options: options)
        // A run that would refuse (a remote-code family without --config, a mismatching one) refuses here too.
        _ = try configs(model, p, options: options)
        var peak = 0
        let tensors = p.planned.map { t in
            let bytes = t.byteCount
            let rowLength = t.shape.last ?? 1
            let rows = max(1, t.elementCount / max(1, rowLength))
            // An assembled tensor is held whole in the output dtype.
            peak = max(peak, t.isStreamed ? OutputPlan.streamingBytes(rowLength: rowLength, rowBytes: bytes / rows, threads: options.threads)
                                          : 2 * bytes)
            return OutputPlan.Tensor(name: t.name, sourceType: t.pieces[0].entry.encoding.description, type: t.dtype.rawValue,
                                     shape: t.shape, byteCount: bytes)
        }
        return OutputPlan.safetensors(p.shards, tensors: tensors, peak: peak,
                                      peakInput: p.planned.map(\.inputByteCount).max() ?? 0)
    }

    public static func convert(_ model: GGUFModel, to output: String, options: ConvertOptions) throws -> ConvertReport {
        let p = try planTensors(model, options: options)
        let (source, dtype, planned) = (p.source, p.dtype, p.planned)
        let meta = model.metadata
        // Build the configs before creating the output, so a refusal leaves nothing behind.
        let configs = try configs(model, p, options: options)

        let out = try AtomicOutput.directory(at: output, force: options.force)
        try writeText(configs.config, to: out.path(of: "config.json"))
        try writeText(configs.generation, to: out.path(of: "generation_config.json"))
        for (fileName, text) in try VocabularyMetadata.tokenizerFiles(from: meta, path: model.path) {
            try writeBytes(text, to: out.path(of: fileName))
        }

        let byName = Dictionary(uniqueKeysWithValues: planned.map { ($0.name, $0) })
        let counter = ProgressCounter(options.progress, tensorCount: planned.count, bytesTotal: planned.reduce(0) { $0 + $1.byteCount })
        let files = try p.shards.write(into: out.temporaryPath) { tensor, file in
            guard let t = byName[tensor.name] else { throw ConvertError.missingTensor(tensor.name) }
            if t.isStreamed {
                let piece = t.pieces[0]
                // Errors about the tensor name the file it comes from (errors naming their own
                // file, such as a failed write, keep theirs).
                let transcoder = try transcoder(piece, dtype: dtype, threads: options.threads)
                try transcoder.run(input: try source.bytes(of: piece.entry), consumed: source.releasePages(of:)) { capacity, fill in
                    try file.withWritableBuffer(capacity: capacity, fill)
                }
            } else {
                try file.write(try assemble(t, source: source, threads: options.threads))
            }
            counter.wrote(t.name, bytes: t.byteCount)
        }
        // A changed input never becomes an output.
        try source.checkUnchanged()
        try out.commit()

        var report = ConvertReport()
        report.outputs = [output] + files.map { FileSystem.join(output, $0) }
        report.tensorCount = planned.count
        for p in planned {
            report.byteCount += p.byteCount
            report.parameterCount += p.elementCount
            report.typeCounts[p.dtype.rawValue, default: 0] += 1
        }
        return report
    }

    /// config.json and generation_config.json for the planned checkpoint.
    static func configs(_ model: GGUFModel, _ p: TensorPlan, options: ConvertOptions) throws -> HFConfigFromGGUF.Output {
        let vocab = try VocabularyMetadata.vocabulary(from: model.metadata, path: model.path)
        return try HFConfigFromGGUF.make(HFConfigFromGGUF.Input(
            metadata: model.metadata, arch: p.arch, archName: p.archName, path: model.path,
            shapes: Dictionary(p.planned.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a }),
            dtype: p.dtype, ropeFactors: p.ropeFactors, bos: vocab.bos, eos: vocab.eos, pad: vocab.pad,
            reference: options.hfConfig))
    }

    static func transcoder(_ piece: PlannedHFTensor.Piece, dtype: DType, threads: Int) throws -> RowTranscoder {
        try withPath(piece.entry.file) {
            try RowTranscoder(tensorName: piece.entry.name, shape: piece.entry.shape, source: piece.entry.encoding,
                              target: .dense(dtype), permutation: piece.permutation, threads: threads)
        }
    }

    /// A tensor whose GGUF form moved data: its pieces transcoded (rows un-permuted) into one
    /// buffer in the output dtype, rows concatenated, then the layout change undone.
    static func assemble(_ t: PlannedHFTensor, source: GGUFTensorSource, threads: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: t.byteCount)
        var offset = 0
        for piece in t.pieces {
            let transcoder = try transcoder(piece, dtype: t.dtype, threads: threads)
            let input = try source.bytes(of: piece.entry)
            try buffer.withUnsafeMutableBytes { dst in
                try transcoder.run(input: input) { capacity, fill in
                    guard offset + capacity <= dst.count else { throw ConvertError.badLayout(tensor: t.name, "parts larger than the tensor") }
                    offset += try fill(UnsafeMutableRawBufferPointer(rebasing: dst[offset ..< offset + capacity]))
                }
            }
            source.releasePages(of: input)
        }
        guard offset == buffer.count else { throw ConvertError.badLayout(tensor: t.name, "parts smaller than the tensor") }
        let elementSize = t.dtype.bitCount / 8
        switch t.layout {
        case nil:
            return buffer
        case .transpose:
            // The GGUF tensor is [shape[1], shape[0]]; Conv1D wants [shape[0], shape[1]].
            return buffer.withUnsafeBytes {
                TensorLayoutChange.transposed($0, rows: t.shape[1], columns: t.shape[0], elementSize: elementSize)
            }
        case .ungroupFusedQKV(let heads, let kvHeads):
            let rows = t.shape[0], rowBytes = t.byteCount / max(1, rows)
            guard let order = TensorLayoutChange.fusedQKVRowOrder(rows: rows, heads: heads, kvHeads: kvHeads) else {
                throw ConvertError.badLayout(tensor: t.name, "\(rows) rows are not \(heads) query + 2 × \(kvHeads) key/value heads")
            }
            // The converter wrote GGUF row i from HF row order[i]; put it back.
            var out = [UInt8](repeating: 0, count: buffer.count)
            buffer.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    for (row, from) in order.enumerated() {
                        (dst.baseAddress! + from * rowBytes).copyMemory(from: src.baseAddress! + row * rowBytes, byteCount: rowBytes)
                    }
                }
            }
            return out
        }
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
