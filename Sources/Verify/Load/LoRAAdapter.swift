public import TensorCore
public import Formats
internal import COpenBLAS

/// Why a PEFT adapter cannot be applied, one case per cause (reading errors are the shared
/// reader's ``AdapterError``).
public enum LoRAAdapterError: ClassifiedError, Hashable {
    /// The adapter changes something the forward pass cannot take an update for (embeddings).
    case unsupported(String)
    /// A module's matrices do not fit the base model.
    case shapeMismatch(module: String, reason: String)

    public var kind: ErrorKind {
        switch self {
        case .unsupported: .unsupported
        case .shapeMismatch: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .unsupported(let what): "unsupported LoRA adapter: \(what)"
        case .shapeMismatch(let module, let reason): "module '\(module)': \(reason)"
        }
    }
}

/// A PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) applied on the fly:
/// each targeted `nn.Linear` weight becomes `W + s·B·A` as it is loaded, with `s = alpha / r`
/// (`alpha / √r` for rsLoRA) and per-module overrides from `rank_pattern` / `alpha_pattern`
/// (REFERENCE §6). The base files are never changed.
///
/// The files are read by Formats' ``PEFTAdapter`` (the same reader `qlora-merge` and
/// `qlora-train --resume` use); the matrices are held here in float32 (a few MB).
public struct LoRAAdapter: Sendable {
    /// The update of one Linear.
    public struct Delta: Sendable, Hashable {
        /// HF module path (`model.layers.3.mlp.up_proj`).
        public var module: String
        public var rank: Int
        public var inFeatures: Int
        public var outFeatures: Int
        /// `lora_alpha / r` (or `/ √r`).
        public var scale: Float
        /// `lora_A.weight` — `[r, in]`.
        public var a: [Float]
        /// `lora_B.weight` — `[out, r]`.
        public var b: [Float]

        public init(module: String, rank: Int, inFeatures: Int, outFeatures: Int, scale: Float, a: [Float], b: [Float]) {
            self.module = module
            self.rank = rank
            self.inFeatures = inFeatures
            self.outFeatures = outFeatures
            self.scale = scale
            self.a = a
            self.b = b
        }
    }

    /// The adapter directory.
    public let path: String
    /// Updates keyed by the HF weight name they apply to (`<module>.weight`).
    public let deltas: [String: Delta]

    /// Reads and checks an adapter directory.
    /// - Throws: ``PathError`` wrapping ``AdapterError`` (the reader's), ``LoRAAdapterError`` for
    ///   an embedding LoRA, a JSON error or a safetensors error.
    public init(directory: String) throws {
        try self.init(try PEFTAdapter(directory: directory))
    }

    /// The updates of an adapter already read (`qlora-merge` verifies a merge with it).
    /// - Throws: ``PathError`` wrapping ``LoRAAdapterError`` for an embedding LoRA, or what
    ///   reading the matrices throws.
    public init(_ adapter: PEFTAdapter) throws {
        let directory = adapter.directory
        var deltas: [String: Delta] = [:]
        for m in adapter.modules {
            guard m.kind == .linear else {
                throw PathError(path: directory, LoRAAdapterError.unsupported("embedding LoRA (\(m.name))"))
            }
            let mats = try adapter.matrices(of: m)
            deltas[m.baseWeightName] = Delta(module: m.name, rank: m.rank, inFeatures: m.inFeatures, outFeatures: m.outFeatures,
                                             scale: Float(m.scaling), a: mats.a, b: mats.b)
        }
        path = directory
        self.deltas = deltas
    }

    /// Builds an adapter from matrices in memory (for tests and for training code).
    public init(path: String = "", deltas: [String: Delta]) {
        self.path = path
        self.deltas = deltas
    }

    /// Checks every update against a model shape: the base weight must exist and be `[out, in]`.
    /// - Throws: ``PathError`` wrapping ``LoRAAdapterError/shapeMismatch(module:reason:)``.
    public func check(against config: LlamaConfig) throws {
        for (name, d) in deltas.sorted(by: { $0.key < $1.key }) {
            guard let shape = LlamaCheckpoint.expectedShape(of: name, config: config), shape.count == 2,
                  name.hasPrefix("model.layers.") else {
                throw PathError(path: path, LoRAAdapterError.unsupported("an update of '\(name)' (only the decoder layers' Linear weights)"))
            }
            guard shape == [d.outFeatures, d.inFeatures] else {
                throw PathError(path: path, LoRAAdapterError.shapeMismatch(
                    module: d.module, reason: "B·A is [\(d.outFeatures), \(d.inFeatures)], the base weight is \(shape)"))
            }
        }
    }

    /// Adds `s·B·A` to `weight` (`[out, in]` row-major) if the adapter updates `weightName`.
    /// - Throws: ``LoRAAdapterError/shapeMismatch(module:reason:)`` if the sizes disagree.
    public func apply(to weight: UnsafeMutableBufferPointer<Float>, weightName: String) throws {
        guard let d = deltas[weightName] else { return }
        guard weight.count == d.outFeatures * d.inFeatures, let w = weight.baseAddress else {
            throw LoRAAdapterError.shapeMismatch(
                module: d.module, reason: "the base weight has \(weight.count) elements, B·A \(d.outFeatures * d.inFeatures)")
        }
        d.b.withUnsafeBufferPointer { b in
            d.a.withUnsafeBufferPointer { a in
                // W[out, in] += s · B[out, r] · A[r, in]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                            Int32(d.outFeatures), Int32(d.inFeatures), Int32(d.rank),
                            d.scale, b.baseAddress, Int32(d.rank), a.baseAddress, Int32(d.inFeatures),
                            1, w, Int32(d.inFeatures))
            }
        }
    }

    /// Adds rows `rows` of `s·B·A` (in order, one after another) to `weight`, a weight that holds
    /// only those rows of the adapted matrix: the q, k or v slice of a fused module whose GGUF stores
    /// the slices apart or regrouped (the layout's rows of the HF matrix, `[out, in]`).
    /// - Throws: ``LoRAAdapterError/shapeMismatch(module:reason:)`` if the sizes disagree.
    public func apply(to weight: UnsafeMutableBufferPointer<Float>, weightName: String, rows: [Range<Int>]) throws {
        guard let d = deltas[weightName] else { return }
        let total = rows.reduce(0) { $0 + $1.count }
        guard weight.count == total * d.inFeatures, let w = weight.baseAddress,
              rows.allSatisfy({ $0.lowerBound >= 0 && $0.upperBound <= d.outFeatures }) else {
            throw LoRAAdapterError.shapeMismatch(
                module: d.module, reason: "the base weight slice has \(weight.count) elements for rows \(rows) of B·A [\(d.outFeatures), \(d.inFeatures)]")
        }
        var offset = 0
        d.b.withUnsafeBufferPointer { b in
            d.a.withUnsafeBufferPointer { a in
                for r in rows where !r.isEmpty {
                    // W[rows, in] += s · B[rows, r] · A[r, in]
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                Int32(r.count), Int32(d.inFeatures), Int32(d.rank),
                                d.scale, b.baseAddress.map { $0 + r.lowerBound * d.rank }, Int32(d.rank),
                                a.baseAddress, Int32(d.inFeatures), 1, w + offset * d.inFeatures, Int32(d.inFeatures))
                    offset += r.count
                }
            }
        }
    }

    /// Scalar reference of ``apply(to:weightName:)`` for tests: PEFT's merge order,
    /// `W + (B @ A) · s`, each dot product summed in Double.
    public static func applyReference(_ d: Delta, to weight: inout [Float]) {
        for o in 0 ..< d.outFeatures {
            for i in 0 ..< d.inFeatures {
                var acc = 0.0
                for k in 0 ..< d.rank { acc += Double(d.b[o * d.rank + k]) * Double(d.a[k * d.inFeatures + i]) }
                weight[o * d.inFeatures + i] += Float(acc) * d.scale
            }
        }
    }
}
