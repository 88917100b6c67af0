public import TensorCore

/// One adapted module of a LoRA adapter: the pair of matrices and the factor of their product.
///
/// Linear modules (PEFT `lora_A.weight` / `lora_B.weight`): `A` is `[rank, in]`, `B` is
/// `[out, rank]`, and the weight `W [out, in]` becomes `W + scaling · B·A`.
/// Embedding modules (`lora_embedding_A` `[rank, vocab]`, `lora_embedding_B` `[dim, rank]`): the
/// embedding matrix `E [vocab, dim]` becomes `E + scaling · (B·A)ᵀ`.
public struct LoRAModule: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case linear
        case embedding
        /// A linear module over a GPT-2 `Conv1D` weight, stored `[in, out]`: PEFT's
        /// `fan_in_fan_out` layer, whose weight becomes `W + scaling · (B·A)ᵀ`. Its matrices are
        /// stored as a linear module's; ``asConv1D`` marks one once its base is known.
        case conv1D
    }

    /// The module's name in the base model, e.g. `model.layers.3.self_attn.q_proj`.
    public let name: String
    public let kind: Kind
    public let rank: Int
    /// Columns of the weight the delta is added to (`in_features`; the vocabulary for an embedding).
    public let inFeatures: Int
    /// Rows of the weight (`out_features`; the embedding width for an embedding).
    public let outFeatures: Int
    /// The module's alpha (``PEFTLoRAConfig/alpha(forModule:)``).
    public let alpha: Double
    /// alpha/rank, or alpha/√rank with rsLoRA.
    public let scaling: Double

    public init(name: String, kind: Kind, rank: Int, inFeatures: Int, outFeatures: Int, alpha: Double, scaling: Double) {
        self.name = name
        self.kind = kind
        self.rank = rank
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.alpha = alpha
        self.scaling = scaling
    }

    /// The HF name of the base weight this module changes (`<name>.weight`).
    public var baseWeightName: String { name + ".weight" }

    /// The shape of the base weight the delta is added to: `[out, in]` for a linear module,
    /// `[in, out]` for an embedding (`[vocab, dim]`) and a Conv1D.
    public var baseShape: [Int] { kind == .linear ? [outFeatures, inFeatures] : [inFeatures, outFeatures] }

    /// This linear module as one over a Conv1D weight (``Kind/conv1D``).
    public var asConv1D: LoRAModule {
        LoRAModule(name: name, kind: kind == .linear ? .conv1D : kind, rank: rank, inFeatures: inFeatures,
                   outFeatures: outFeatures, alpha: alpha, scaling: scaling)
    }

    /// The adapter file's key of A (`base_model.model.<name>.lora_A.weight`).
    public var keyA: String { PEFTAdapter.keyPrefix + name + (kind == .embedding ? ".lora_embedding_A" : ".lora_A.weight") }
    /// The adapter file's key of B.
    public var keyB: String { PEFTAdapter.keyPrefix + name + (kind == .embedding ? ".lora_embedding_B" : ".lora_B.weight") }
    /// Shape of A as stored: `[rank, in]`.
    public var shapeA: [Int] { [rank, inFeatures] }
    /// Shape of B as stored: `[out, rank]`.
    public var shapeB: [Int] { [outFeatures, rank] }
}

/// The two matrices of a module in float32, row-major, in PEFT's layout (A `[r, in]`, B `[out, r]`).
public struct LoRAMatrices: Sendable, Hashable {
    public var a: [Float]
    public var b: [Float]

    public init(a: [Float], b: [Float]) {
        self.a = a
        self.b = b
    }
}

/// A PEFT LoRA adapter directory opened for reading: `adapter_config.json` parsed, the
/// `adapter_model.safetensors` header validated and mapped. Matrices are decoded on demand,
/// one module at a time (``matrices(of:)``), so a large adapter is never in memory at once.
///
/// Accepted: adapters saved by PEFT's `save_pretrained` (adapter name stripped from the keys)
/// for linear and embedding modules, with `rank_pattern` / `alpha_pattern`, `use_rslora`, a
/// `target_modules` list or regex, and f32 / f16 / bf16 matrices. Refused with an error naming the
/// tensor: DoRA magnitudes, LoRA biases, `modules_to_save` copies and trainable tokens, whose
/// effect is not a low-rank delta.
public final class PEFTAdapter: @unchecked Sendable {
    // @unchecked: immutable after init; the mapping is read-only.

    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"
    /// What PEFT puts before a module name in the saved keys (`PeftModel.base_model.model`).
    public static let keyPrefix = "base_model.model."

    /// The directory given to ``init(directory:)``.
    public let directory: String
    public let config: PEFTLoRAConfig
    /// The adapted modules, in the order of their keys (byte order of the names, which is how
    /// `safetensors` lists them and so how llama.cpp's converter meets them).
    public let modules: [LoRAModule]
    private let file: SafetensorsFile
    private let tensorsByModule: [String: (a: SafetensorsTensor, b: SafetensorsTensor)]

    /// Opens a PEFT adapter directory (or its `adapter_model.safetensors` / `adapter_config.json`).
    /// - Throws: ``PathError`` naming the file, wrapping ``AdapterError`` or the safetensors and
    ///   JSON readers' errors.
    public init(directory path: String) throws {
        let dir = FileSystem.isDirectory(path) ? path : FileSystem.directoryName(path)
        guard FileSystem.exists(path) else { throw PathError(path: path, FileAccessError.notFound) }
        let configPath = FileSystem.join(dir, Self.configFileName)
        let weightsPath = FileSystem.join(dir, Self.weightsFileName)
        guard FileSystem.exists(configPath) else { throw PathError(path: dir, AdapterError.missingFile(Self.configFileName)) }
        guard FileSystem.exists(weightsPath) else {
            if FileSystem.exists(FileSystem.join(dir, "adapter_model.bin")) {
                throw PathError(path: dir, Failure(.unsupported,
                    "adapter_model.bin (a pickled PyTorch file) is not read; save the adapter with safe_serialization=True"))
            }
            throw PathError(path: dir, AdapterError.missingFile(Self.weightsFileName))
        }
        let config = try withPath(configPath) { try PEFTLoRAConfig(text: try FileSystem.readFile(configPath)) }
        let file = try SafetensorsFile(path: weightsPath)
        let (modules, tensors) = try withPath(weightsPath) { try Self.modules(of: file.tensors, config: config) }
        self.directory = dir
        self.config = config
        self.file = file
        self.modules = modules
        self.tensorsByModule = tensors
    }

    /// The module named `name`, if the adapter has one.
    public func module(named name: String) -> LoRAModule? { modules.first { $0.name == name } }

    /// Decodes A and B of `module` to float32.
    /// - Throws: ``PathError`` wrapping ``AdapterError/nonFinite(tensor:index:)`` for NaN/Inf.
    public func matrices(of module: LoRAModule) throws -> LoRAMatrices {
        guard let pair = tensorsByModule[module.name] else {
            throw PathError(path: file.path, AdapterError.unpairedTensor(module: module.name, missing: "matrices"))
        }
        return LoRAMatrices(a: try decode(pair.a), b: try decode(pair.b))
    }

    /// The dtype the adapter's matrices are stored in (the first module's A).
    public var storedDType: DType? { modules.first.flatMap { tensorsByModule[$0.name]?.a.dtype } }

    private func decode(_ t: SafetensorsTensor) throws -> [Float] {
        var values = [Float](repeating: 0, count: t.elementCount)
        let bytes = file.bytes(of: t)
        values.withUnsafeMutableBufferPointer { DenseFloat.decode(bytes, dtype: t.dtype, into: $0) }
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw PathError(path: file.path, AdapterError.nonFinite(tensor: t.name, index: i))
        }
        return values
    }

    /// Groups safetensors entries into modules and checks names, dtypes and shapes.
    static func modules(of tensors: [SafetensorsTensor], config: PEFTLoRAConfig) throws
        -> ([LoRAModule], [String: (a: SafetensorsTensor, b: SafetensorsTensor)])
    {
        var a: [String: (SafetensorsTensor, LoRAModule.Kind)] = [:]
        var b: [String: (SafetensorsTensor, LoRAModule.Kind)] = [:]
        for t in tensors {
            guard t.name.hasPrefix(keyPrefix) else {
                throw AdapterError.unexpectedTensor(name: t.name, reason: "PEFT adapter keys start with \"\(keyPrefix)\"")
            }
            let rest = String(t.name.dropFirst(keyPrefix.count))
            let forms: [(suffix: String, isA: Bool, kind: LoRAModule.Kind)] = [
                (".lora_A.weight", true, .linear), (".lora_B.weight", false, .linear),
                (".lora_embedding_A", true, .embedding), (".lora_embedding_B", false, .embedding),
            ]
            guard let form = forms.first(where: { rest.hasSuffix($0.suffix) }) else {
                throw AdapterError.unexpectedTensor(name: t.name, reason: refusalReason(rest))
            }
            let module = String(rest.dropLast(form.suffix.count))
            guard !module.isEmpty else { throw AdapterError.unexpectedTensor(name: t.name, reason: "no module name") }
            guard t.dtype.isConvertibleFloat else { throw AdapterError.badDType(tensor: t.name, dtype: t.dtype.rawValue) }
            guard t.shape.count == 2, t.shape.allSatisfy({ $0 > 0 }) else {
                throw AdapterError.badShape(tensor: t.name, shape: t.shape, expected: form.isA ? "[rank, in_features]" : "[out_features, rank]")
            }
            if form.isA { a[module] = (t, form.kind) } else { b[module] = (t, form.kind) }
        }
        var modules: [LoRAModule] = []
        var pairs: [String: (a: SafetensorsTensor, b: SafetensorsTensor)] = [:]
        for (name, (ta, kind)) in a {
            guard let (tb, kindB) = b[name], kindB == kind else {
                throw AdapterError.unpairedTensor(module: name, missing: kind == .linear ? "lora_B.weight" : "lora_embedding_B")
            }
            let rank = ta.shape[0]
            guard tb.shape[1] == rank else {
                throw AdapterError.badShape(tensor: tb.name, shape: tb.shape, expected: "[out_features, \(rank)] (the rank of \(ta.name))")
            }
            guard config.selects(module: name) else { throw AdapterError.notTargeted(module: name) }
            let expected = config.rank(forModule: name)
            guard expected == rank else {
                throw AdapterError.badShape(tensor: ta.name, shape: ta.shape,
                                            expected: "rank \(expected) as adapter_config.json gives for \(name)")
            }
            let alpha = config.alpha(forModule: name)
            modules.append(LoRAModule(
                name: name, kind: kind, rank: rank, inFeatures: ta.shape[1], outFeatures: tb.shape[0],
                alpha: alpha, scaling: loraScaling(alpha: alpha, rank: rank, rsLoRA: config.useRSLoRA)))
            pairs[name] = (ta, tb)
        }
        for (name, (_, kind)) in b where a[name] == nil {
            throw AdapterError.unpairedTensor(module: name, missing: kind == .linear ? "lora_A.weight" : "lora_embedding_A")
        }
        modules.sort { $0.keyA.utf8.lexicographicallyPrecedes($1.keyA.utf8) }
        return (modules, pairs)
    }

    /// Why a non-LoRA tensor of a PEFT file is refused.
    static func refusalReason(_ key: String) -> String {
        if key.hasSuffix(".lora_magnitude_vector") || key.contains(".lora_magnitude_vector.") {
            return "a DoRA magnitude vector; DoRA adapters are not supported"
        }
        if key.contains(".lora_B.bias") || key.contains(".lora_A.bias") { return "a LoRA bias; lora_bias adapters are not supported" }
        if key.contains("trainable_tokens") { return "trainable tokens (trainable_token_indices) are not supported" }
        return "a full weight (modules_to_save or an extra trained layer), not a LoRA matrix; only lora_A/lora_B pairs are supported"
    }
}

extension PEFTAdapter {
    /// The layer index of a module, as PEFT finds it without `layers_pattern`: the first
    /// all-digit path component with at least two components before it and one after
    /// (`model.layers.{L}.…`, `transformer.h.{L}.…`, `model.decoder.layers.{L}.…`); nil otherwise.
    public static func layerIndex(ofModule name: String) -> Int? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 4 else { return nil }
        for i in 2 ..< parts.count - 1 where !parts[i].isEmpty && parts[i].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return Int(parts[i])
        }
        return nil
    }
}
