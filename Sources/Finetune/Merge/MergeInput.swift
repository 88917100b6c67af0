public import TensorCore
public import Formats
public import Verify
import Pipeline

/// A model wconv reads (HF directory with f32/f16/bf16 or bitsandbytes NF4/FP4/int8 weights, or
/// GGUF of any type it can dequantize), seen as logical tensors under Hugging Face names with
/// their values in float32 and HF row order.
///
/// Values come out as the reference tools see them: bitsandbytes weights as bitsandbytes
/// dequantizes them (``BNBTensorValues``), GGUF blocks through ggml's dequantizers, `attn_q` /
/// `attn_k` rows of a GGUF un-permuted. Nothing is decoded until ``values(of:threads:)`` asks.
public final class MergeInput: @unchecked Sendable {
    // @unchecked: immutable after init; the mappings are read-only.

    /// How a logical tensor is stored.
    public enum Storage: Sendable, Hashable, CustomStringConvertible {
        case dense(DType)
        case bitsAndBytes(String)
        case ggml(GGMLType)

        /// Whether the stored values are a lossy code of the original weight.
        public var isQuantized: Bool {
            switch self {
            case .dense: false
            case .bitsAndBytes: true
            case .ggml(let g): g.isQuantized || !g.isKnown
            }
        }

        public var description: String {
            switch self {
            case .dense(let d): d.rawValue
            case .bitsAndBytes(let s): s
            case .ggml(let g): g.name
            }
        }
    }

    /// One logical tensor.
    public struct Tensor: Sendable, Hashable {
        /// HF name (`model.layers.0.self_attn.q_proj.weight`); for GGUF tensors without an HF
        /// counterpart (`rope_freqs.weight`) the GGUF name.
        public let name: String
        /// The GGUF name when the input is GGUF.
        public let ggufName: String?
        /// HF (numpy) shape, slowest dimension first.
        public let shape: [Int]
        public let storage: Storage
        /// Whether the name has an HF counterpart (false: a GGUF-only tensor such as `rope_freqs.weight`).
        public let isMapped: Bool
        let index: Int

        public var elementCount: Int { TensorCore.elementCount(of: shape) ?? 0 }
        /// Float values (as opposed to integer tensors copied unchanged).
        public var isFloat: Bool {
            if case .dense(let d) = storage { return d.isConvertibleFloat }
            return true
        }
    }

    public let input: ModelInput
    /// LLaMA's block configuration, for the families merged tensor by tensor in their own names
    /// (LLaMA, Mistral, Qwen2: `LlamaConfig.ggufArchitectures`, also the only GGUF bases read);
    /// nil for the others, merged in their HF layout and verified through Verify's family layout
    /// (`MergeVerification.compareFamily`).
    public let config: LlamaConfig?
    /// The family's description; nil for the HF families llama.cpp has no architecture for
    /// (Persimmon, OPT: ``ArchitectureDescription/withoutGGUF``).
    public let architecture: ArchitectureDescription?
    /// The family's name as messages give it (`GPT-2 (GPT2LMHeadModel)`, GGUF `qwen2`).
    public let familyName: String
    /// The family's LoRA target names (which weights are Conv1D), when known.
    public let loraTargets: LoRATargetNames?
    public let tensors: [Tensor]
    /// bitsandbytes layout of an HF input (nil for GGUF).
    public let bitsAndBytes: BNBCheckpointLayout?
    let source: any TensorSource
    private let groups: [BNBTensorGroup]
    private let permutations: [RowPermutation?]
    private let byName: [String: Int]

    public var path: String { input.path }
    /// Whether any weight is stored quantized.
    public var isQuantized: Bool { tensors.contains { $0.storage.isQuantized } }

    /// Opens a base model.
    /// - Throws: ``PathError`` for unreadable inputs, unknown architectures, non-bitsandbytes
    ///   quantization (GPTQ, AWQ…), or a GGUF without the `llama.*` keys.
    public convenience init(path: String) throws {
        try self.init(try ModelInput.open(path: path))
    }

    public init(_ input: ModelInput) throws {
        self.input = input
        let source = input.tensorSource
        self.source = source
        switch input {
        case .hf(let directory):
            let configPath = directory.path(of: "config.json")
            let (arch, name) = try withPath(configPath) { () throws -> (ArchitectureDescription?, String) in
                guard let name = try directory.config.architecture else { throw ConvertError.missingArchitecture }
                let arch = ArchitectureDescription.forHF(architecture: name)
                guard arch != nil || ArchitectureDescription.withoutGGUF[name] != nil else { throw ConvertError.unsupportedArchitecture(name) }
                return (arch, name)
            }
            architecture = arch
            familyName = name
            loraTargets = LoRATargetNames.forConfig(directory.config.object)
            if let arch, LlamaConfig.ggufArchitectures.contains(arch.ggufName) {
                config = try withPath(configPath) { try LlamaConfig(hfConfig: directory.config.object) }
            } else {
                config = nil
            }
            let layout = try BNBCheckpointLayout(source: source, config: directory.config)
            if let other = layout.otherQuantMethod {
                throw PathError(path: configPath, Failure(.unsupported, "the model is quantized with \(other); wconv reads bitsandbytes-quantized models only"))
            }
            bitsAndBytes = layout
            var list: [Tensor] = []
            for (i, g) in layout.groups.enumerated() {
                let storage: Storage
                switch g {
                case .plain(let e):
                    guard let d = e.encoding.denseType else {
                        throw PathError(path: e.file, ConvertError.unsupportedDType(tensor: e.name, dtype: e.encoding.description))
                    }
                    storage = .dense(d)
                case .fourBit, .int8:
                    storage = .bitsAndBytes(g.quantizationSummary ?? "bitsandbytes")
                }
                list.append(Tensor(name: g.name, ggufName: nil, shape: g.shape, storage: storage, isMapped: true, index: i))
            }
            tensors = list
            groups = layout.groups
            permutations = Array(repeating: nil, count: list.count)
        case .gguf(let model):
            let meta = model.metadata
            let (arch, config) = try withPath(model.path) { () throws -> (ArchitectureDescription, LlamaConfig) in
                guard let name = meta[GGUFKeys.General.architecture]?.stringValue else {
                    throw ConvertError.missingMetadata(GGUFKeys.General.architecture)
                }
                guard let arch = ArchitectureDescription.forGGUF(architecture: name) else { throw ConvertError.unsupportedArchitecture(name) }
                // GGUF bases are read for the families the forward pass runs; the others'
                // tensors are transposed, regrouped or split from their HF layout.
                guard LlamaConfig.ggufArchitectures.contains(name) else {
                    throw Failure(.unsupported, "a GGUF base of architecture \(name) is not read for QLoRA (its tensors are transposed, regrouped or split from the Hugging Face layout): give the Hugging Face model directory")
                }
                return (arch, try Self.llamaConfig(gguf: meta, source: source, architecture: name))
            }
            architecture = arch
            self.config = config
            familyName = "GGUF \(arch.ggufName)"
            loraTargets = LoRATargetNames.forModelType(arch.ggufName) ?? .llama
            bitsAndBytes = nil
            var list: [Tensor] = [], perms: [RowPermutation?] = []
            for (i, e) in source.entries.enumerated() {
                guard case .ggml(let type) = e.encoding else { continue }
                if let (hf, heads) = arch.hfName(forGGUF: e.name) {
                    list.append(Tensor(name: hf, ggufName: e.name, shape: e.shape, storage: .ggml(type), isMapped: true, index: i))
                    perms.append(heads.map { RowPermutation.toHF(heads: $0 == .queryHeads ? config.headCount : config.kvHeadCount) })
                } else {
                    list.append(Tensor(name: e.name, ggufName: e.name, shape: e.shape, storage: .ggml(type), isMapped: false, index: i))
                    perms.append(nil)
                }
            }
            tensors = list
            groups = []
            permutations = perms
        case .safetensors(let checkpoint):
            throw PathError(path: checkpoint.path, Failure(.usage, "give the model directory (config.json + safetensors weights), not a bare safetensors file"))
        }
        var names: [String: Int] = [:]
        for (i, t) in tensors.enumerated() where names[t.name] == nil { names[t.name] = i }
        byName = names
    }

    /// The tensor named `name` (HF name), if any.
    public func tensor(named name: String) -> Tensor? { byName[name].map { tensors[$0] } }

    /// The values of `tensor` in float32, HF row order.
    /// - Throws: what the decoders throw, as ``PathError``s naming the file.
    public func values(of tensor: Tensor, threads: Int) throws -> [Float] {
        switch input {
        case .hf:
            let group = groups[tensor.index]
            let values = try BNBTensorValues.load(group, from: source, threads: threads)
            for e in group.entries { source.releasePages(of: e) }
            return values
        case .gguf:
            let entry = source.entries[tensor.index]
            let values = try withPath(entry.file) {
                try Self.decode(entry, bytes: try source.bytes(of: entry), permutation: permutations[tensor.index], threads: threads)
            }
            source.releasePages(of: entry)
            return values
        case .safetensors:
            throw Failure(.internalError, "safetensors inputs are refused when opened")
        }
    }

    /// The stored bytes of a tensor that is copied unchanged (an integer tensor of an HF input,
    /// or any GGUF tensor).
    func storedBytes(of tensor: Tensor) throws -> UnsafeRawBufferPointer {
        switch input {
        case .hf:
            guard case .plain(let e) = groups[tensor.index] else { throw Failure(.internalError, "\(tensor.name) is not a plain tensor") }
            return try source.bytes(of: e)
        default:
            return try source.bytes(of: source.entries[tensor.index])
        }
    }

    /// The safetensors shard holding an HF tensor (its main entry), for the converter's order.
    func file(of tensor: Tensor) -> String {
        switch input {
        case .hf: groups[tensor.index].entries.first?.file ?? ""
        default: source.entries[tensor.index].file
        }
    }

    /// Rows of a GGUF tensor to float32, reordered by `permutation` (destination row r comes from
    /// source row `permutation.sourceRow(r)`).
    static func decode(_ entry: TensorEntry, bytes: UnsafeRawBufferPointer, permutation: RowPermutation?, threads: Int) throws -> [Float] {
        guard RowCodec.canDecode(entry.encoding) else {
            throw TranscodeError.unsupportedSource(tensor: entry.name, encoding: entry.encoding)
        }
        let count = entry.elementCount
        let rowLength: Int
        if entry.shape.count <= 1 { rowLength = permutation == nil ? max(count, 1) : 1 } else { rowLength = entry.shape[entry.shape.count - 1] }
        let rows = rowLength == 0 ? 0 : count / rowLength
        guard let rowBytes = entry.encoding.ggmlType?.rowByteCount(elementCount: rowLength) ?? entry.encoding.denseType?.byteCount(elementCount: rowLength),
              rows * rowBytes <= bytes.count else {
            throw TranscodeError.rowNotMultipleOfBlock(tensor: entry.name, rowLength: rowLength, encoding: entry.encoding)
        }
        if let permutation, !permutation.isValid(rowCount: rows) {
            let heads = switch permutation { case .toGGUF(let h), .toHF(let h): h }
            throw TranscodeError.permutationDoesNotFit(tensor: entry.name, rows: rows, heads: heads)
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let (dst, src) = (out, bytes)
            // Each worker decodes its own destination rows.
            parallelChunks(count: rows, threads: threads, minimumChunk: max(1, 65536 / max(1, rowLength))) { part in
                for r in part {
                    let from = permutation?.sourceRow(of: r, rowCount: rows) ?? r
                    RowCodec.decode(UnsafeRawBufferPointer(rebasing: src[from * rowBytes ..< (from + 1) * rowBytes]), entry.encoding,
                                    into: UnsafeMutableBufferPointer(rebasing: dst[r * rowLength ..< (r + 1) * rowLength]))
                }
            }
        }
        return values
    }

    /// A LLaMA configuration from GGUF `llama.*` metadata (llama.cpp's keys; `rope_freqs.weight`
    /// as RoPE divisors).
    static func llamaConfig(gguf meta: GGUFMetadata, source: any TensorSource, architecture a: String) throws -> LlamaConfig {
        typealias K = GGUFKeys.Architecture
        func int(_ key: String) throws -> Int {
            guard let v = meta[key]?.intValue else { throw ConvertError.missingMetadata(key) }
            return v
        }
        let embedding = try int(K.embeddingLength(a))
        let heads = try int(K.headCount(a))
        let kvHeads = meta[K.headCountKV(a)]?.intValue ?? heads
        let headDim = meta[K.keyLength(a)]?.intValue ?? (heads > 0 ? embedding / heads : 0)
        let vocab = meta[K.vocabSize(a)]?.intValue ?? meta[GGUFKeys.Tokenizer.tokens]?.arrayValue?.count
            ?? source.entry(named: "token_embd.weight")?.shape.first ?? 0
        var scaling: RopeScaling = .none
        if let e = source.entry(named: "rope_freqs.weight") {
            scaling = .divisors(try decode(e, bytes: try source.bytes(of: e), permutation: nil, threads: 1))
        } else if meta[K.ropeScalingType(a)]?.stringValue == "linear", let f = meta[K.ropeScalingFactor(a)]?.doubleValue {
            scaling = .linear(factor: f)
        }
        let config = LlamaConfig(
            vocabularySize: vocab, hiddenSize: embedding, intermediateSize: try int(K.feedForwardLength(a)),
            layerCount: try int(K.blockCount(a)), headCount: heads, kvHeadCount: kvHeads, headDimension: headDim,
            rmsNormEpsilon: meta[K.layerNormRMSEpsilon(a)]?.doubleValue ?? 1e-5,
            ropeTheta: meta[K.ropeFreqBase(a)]?.doubleValue ?? 10000, ropeScaling: scaling,
            tiedEmbeddings: source.entry(named: "output.weight") == nil,
            maxPositions: meta[K.contextLength(a)]?.intValue ?? 2048,
            attentionBias: a == ArchitectureDescription.qwen2.ggufName)
        try config.validate()
        return config
    }
}
