import TensorCore
public import Formats
import Pipeline

/// PEFT LoRA adapters ⇄ llama.cpp's LoRA GGUF (REFERENCE §6.3).
///
/// PEFT → GGUF writes what llama.cpp's `convert_lora_to_gguf.py` writes for the same adapter and
/// base, byte for byte: the keys `general.architecture`, `general.type` = `adapter`,
/// `adapter.type` = `lora`, the `general.*` metadata of the adapter directory (name, base
/// models and tags from its README front matter), `adapter.lora.alpha` (FLOAT32),
/// `general.quantization_version`; then per module, in key order, `<gguf weight>.lora_a`
/// (ne `[in, r]`, the bytes of PEFT's A) and `<gguf weight>.lora_b` (ne `[r, out]`, B with its
/// rows permuted like the base weight for `attn_q`/`attn_k`).
///
/// llama.cpp applies `scale = alpha / rank` per tensor pair, with one alpha per file. Where an
/// adapter's PEFT scaling is not `alpha / r` with a common alpha (rsLoRA, `alpha_pattern`,
/// `rank_pattern` with unequal ratios), the GGUF gets `alpha = scaling₀ · r₀` of the first
/// module and every other B is multiplied by `scalingₘ · rₘ / alpha`, so llama.cpp computes the
/// same delta; the report says so. (The Python converter ignores these fields, which changes
/// the adapter's effect.)
///
/// Tensors a GGUF adapter cannot hold are refused with an error, never dropped: embedding LoRA,
/// `lm_head` on a base with tied embeddings, modules the architecture has no GGUF name for.
public enum LlamaCppAdapter {
    /// Tensor type of the GGUF matrices (the converter's `--outtype`).
    public enum OutType: String, Sendable, CaseIterable {
        case f32, f16, bf16, q8_0

        var ggmlType: GGMLType {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .bf16: .bf16
            case .q8_0: .q8_0
            }
        }
    }

    /// What a conversion wrote.
    public struct Report: Sendable {
        public var output: String = ""
        public var moduleCount = 0
        public var tensorCount = 0
        public var alpha: Double = 0
        /// Facts a user should know (folded scalings, type fallbacks).
        public var warnings: [String] = []
    }

    /// `adapter.alora.invocation_tokens` (activated LoRA).
    static let aloraInvocationTokensKey = "adapter.alora.invocation_tokens"

    struct PlannedPair {
        let module: LoRAModule
        let ggufBase: String
        /// The rows of B written, in order (source row of each output row); nil: all, unchanged.
        /// Q/K rotary permutations, Falcon's fused-QKV regrouping and Baichuan's W_pack split
        /// change B's rows like the base weight's; A is shared.
        let rowOrder: [Int]?
        /// Rows of B written (`out` of this GGUF weight).
        let outRows: Int
        /// B multiplied by this before writing (1 unless the scaling was folded).
        let bFactor: Float
        let typeA: GGMLType
        let typeB: GGMLType
    }

    // MARK: - PEFT → GGUF

    /// Converts `adapter` to a llama.cpp LoRA GGUF at `output` (written atomically).
    /// - Parameters:
    ///   - base: the base model's family and head counts (``AdapterBaseModel/load(path:)``).
    ///   - outType: the matrices' type; q8_0 falls back to f16 for matrices whose rows are not a
    ///     multiple of 32 (the rank-long rows of `lora_b`), as the converter does.
    /// - Throws: ``AdapterError/cannotHold(tensor:target:reason:)`` for a module GGUF cannot hold;
    ///   ``AdapterError/moduleNotInBase(module:reason:)`` when B's rows do not fit the heads;
    ///   I/O errors as ``PathError``s.
    @discardableResult
    public static func toGGUF(_ adapter: PEFTAdapter, base: AdapterBaseModel, output: String,
                              outType: OutType = .f32, force: Bool = false, provenance: Provenance? = nil) throws -> Report {
        var report = Report()
        let modules = adapter.modules
        guard let first = modules.first else {
            throw PathError(path: adapter.directory, AdapterError.notAnAdapter(reason: "the adapter has no LoRA matrices"))
        }
        let alpha = first.scaling * Double(first.rank)
        report.alpha = alpha
        var planned: [PlannedPair] = []
        var folded: [String] = []
        var fallbacks = 0
        for m in modules {
            let targets = try withPath(adapter.directory) { try ggufTargets(of: m, base: base) }
            let wanted = m.scaling * Double(m.rank)
            var factor: Float = 1
            if Float(wanted) != Float(alpha) {
                factor = Float(wanted / alpha)
                folded.append(m.name)
            }
            func type(_ rowLength: Int) -> GGMLType {
                if outType == .q8_0 && rowLength % 32 != 0 { fallbacks += 1; return .f16 }
                return outType.ggmlType
            }
            for t in targets {
                planned.append(PlannedPair(module: m, ggufBase: t.name, rowOrder: t.rowOrder, outRows: t.rowOrder?.count ?? m.outFeatures,
                                           bFactor: factor, typeA: type(m.inFeatures), typeB: type(m.rank)))
            }
        }
        if !folded.isEmpty {
            report.warnings.append("\(folded.count) module(s) have a scaling other than alpha/r with alpha = \(formatNumber(alpha)) "
                + "(rsLoRA, rank_pattern or alpha_pattern); their lora_b was multiplied so llama.cpp's alpha/r gives the same delta "
                + "(e.g. \(folded[0]))")
        }
        if fallbacks > 0 {
            report.warnings.append("\(fallbacks) matrices have rows that are not a multiple of 32 and were written as F16 instead of Q8_0")
        }

        var descriptors: [GGUFTensorDescriptor] = []
        var shapes: [(name: String, shape: [Int])] = []
        for p in planned {
            let m = p.module
            for (suffix, ne, type) in [(".lora_a", [m.inFeatures, m.rank], p.typeA), (".lora_b", [m.rank, p.outRows], p.typeB)] {
                let name = p.ggufBase + suffix
                guard let d = GGUFTensorDescriptor(name: name, dimensions: ne, type: type) else {
                    throw PathError(path: adapter.directory, AdapterError.badShape(tensor: name, shape: ne.reversed(), expected: "rows fitting \(type.name)"))
                }
                descriptors.append(d)
                shapes.append((name, ne.reversed()))
            }
        }
        var metadata: [GGUFKeyValue] = [
            GGUFKeyValue(GGUFKeys.General.architecture, .string(base.architecture.ggufName)),
            GGUFKeyValue(GGUFKeys.General.type, .string("adapter")),
            GGUFKeyValue(GGUFKeys.Adapter.type, .string("lora")),
        ]
        let general = try ModelMetadata.load(directory: adapter.directory, parameterCount: ParameterCount(tensors: shapes))
        metadata += general.entries.map { GGUFKeyValue($0.key, $0.value.ggufValue) }
        metadata.append(GGUFKeyValue(GGUFKeys.Adapter.loraAlpha, .float32(Float(alpha))))
        if let tokens = adapter.config.json["alora_invocation_tokens"]?.arrayValue, !tokens.isEmpty {
            let ids = tokens.compactMap { $0.intValue }.compactMap { UInt32(exactly: $0) }
            guard ids.count == tokens.count else {
                throw PathError(path: adapter.directory, AdapterError.badConfigField(
                    key: "alora_invocation_tokens", reason: "is not a list of token ids"))
            }
            metadata.append(GGUFKeyValue(aloraInvocationTokensKey, .array(.uint32(ids))))
        }
        metadata.append(GGUFKeyValue(GGUFKeys.General.quantizationVersion, .uint32(2)))
        metadata += provenance?.ggufEntries ?? []

        let writer = try withPath(output) { try GGUFWriter(metadata: metadata, tensors: descriptors) }
        var current: (name: String, matrices: LoRAMatrices)? = nil
        try writer.write(toPath: output, force: force) { i, sink in
            let p = planned[i / 2]
            if current?.name != p.module.name { current = (p.module.name, try adapter.matrices(of: p.module)) }
            guard let mats = current?.matrices else { return }
            let m = p.module
            if i % 2 == 0 {
                try encodeRows(mats.a, rowLength: m.inFeatures, type: p.typeA, rowOrder: nil, factor: 1, into: sink)
            } else {
                try encodeRows(mats.b, rowLength: m.rank, type: p.typeB, rowOrder: p.rowOrder, factor: p.bFactor, into: sink)
            }
        }
        report.output = output
        report.moduleCount = modules.count
        report.tensorCount = descriptors.count
        return report
    }

    /// The GGUF weights a module's pair attaches to (several for a split fused weight), each
    /// with the order of B's rows.
    ///
    /// A GPT-2 Conv1D module is written as a linear one: the converter transposes the base
    /// weight to `[out, in]`, and PEFT's delta `(B·A)ᵀ` of the `[in, out]` weight is `B·A` of
    /// that transposed weight, so A and B go in unchanged. (`convert_lora_to_gguf.py` instead
    /// transposes the LoRA pair as well, which swaps A and B: llama.cpp refuses its file for
    /// non-square weights and applies `Aᵀ·Bᵀ` to square ones.)
    static func ggufTargets(of m: LoRAModule, base: AdapterBaseModel) throws -> [(name: String, rowOrder: [Int]?)] {
        if m.kind == .embedding {
            throw AdapterError.cannotHold(tensor: m.keyA, target: "a llama.cpp LoRA GGUF",
                                          reason: "embedding LoRA (lora_embedding_A/B) is not applied by llama.cpp; merge it with `wconv qlora-merge` instead")
        }
        let arch = base.architecture
        guard let mapped = arch.ggufTensors(forHF: m.baseWeightName), let first = mapped.first, first.name.hasSuffix(".weight") else {
            throw AdapterError.cannotHold(tensor: m.keyA, target: "a llama.cpp LoRA GGUF",
                                          reason: "\(m.baseWeightName) has no GGUF name in the \(arch.ggufName) architecture")
        }
        if first.name == "token_embd.weight" {
            throw AdapterError.cannotHold(tensor: m.keyA, target: "a llama.cpp LoRA GGUF", reason: "LoRA on the token embeddings is not supported")
        }
        if first.name == "output.weight" && base.tiedEmbeddings {
            throw AdapterError.cannotHold(tensor: m.keyA, target: "a llama.cpp LoRA GGUF",
                                          reason: "the base ties lm_head to the embeddings, so llama.cpp has no output.weight to adapt")
        }
        func notHeads() -> AdapterError {
            .moduleNotInBase(module: m.name, reason: "\(m.outFeatures) output rows cannot be split into the base's heads")
        }
        func order(_ p: HeadPermutation?, rows: Int, offset: Int = 0) throws -> [Int]? {
            guard let permutation = base.toGGUF(p) else { return offset == 0 ? nil : Array(offset ..< offset + rows) }
            guard permutation.isValid(rowCount: rows) else { throw notHeads() }
            return try (0 ..< rows).map { r in
                guard let from = permutation.sourceRow(of: r, rowCount: rows) else { throw notHeads() }
                return offset + from
            }
        }
        if let part = first.part {
            // Equal row parts of the fused weight (Baichuan's W_pack → q | k | v), each permuted as its part.
            guard m.outFeatures % part.count == 0 else { throw notHeads() }
            let rows = m.outFeatures / part.count
            return try mapped.enumerated().map { i, t in
                var p: HeadPermutation? = nil
                if case .permute(let q)? = t.transform { p = q }
                return (t.name, try order(p, rows: rows, offset: i * rows))
            }
        }
        switch first.transform {
        case nil, .transpose?:
            return [(first.name, nil)]
        case .permute(let p)?:
            return [(first.name, try order(p, rows: m.outFeatures))]
        case .regroupFusedQKV?:
            guard let rows = TensorLayoutChange.fusedQKVRowOrder(rows: m.outFeatures, heads: base.headCount, kvHeads: base.kvHeadCount) else {
                throw notHeads()
            }
            return [(first.name, rows)]
        case .split?:
            throw Failure(.internalError, "unexpected split transform for \(m.baseWeightName)")
        }
    }

    /// Encodes the rows `rowOrder` (all, in order, when nil) of `values` (`rows × rowLength`,
    /// row-major) to `type`, scaled by `factor`.
    static func encodeRows(_ values: [Float], rowLength: Int, type: GGMLType, rowOrder: [Int]?,
                           factor: Float, into sink: GGUFTensorSink) throws {
        var ordered = values
        if let rowOrder {
            ordered = []
            ordered.reserveCapacity(rowOrder.count * rowLength)
            for from in rowOrder { ordered += values[from * rowLength ..< (from + 1) * rowLength] }
        }
        if factor != 1 { for i in ordered.indices { ordered[i] *= factor } }
        let rows = ordered.count / rowLength
        guard let rowBytes = type.rowByteCount(elementCount: rowLength) else {
            throw AdapterError.badShape(tensor: sink.descriptor.name, shape: [rows, rowLength], expected: "rows fitting \(type.name)")
        }
        try sink.withWritableBuffer(capacity: rows * rowBytes) { buffer in
            ordered.withUnsafeBufferPointer { v in
                for r in 0 ..< rows {
                    RowCodec.encode(UnsafeBufferPointer(rebasing: v[r * rowLength ..< (r + 1) * rowLength]), .ggml(type),
                                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[r * rowBytes ..< (r + 1) * rowBytes]))
                }
            }
            return rows * rowBytes
        }
    }


    static func formatNumber(_ d: Double) -> String {
        d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }

    // MARK: - GGUF → PEFT

    /// A llama.cpp LoRA GGUF read back as PEFT modules (matrices in float32, PEFT layout).
    public struct GGUFAdapterContents: Sendable {
        public var architecture: String
        public var alpha: Double
        public var entries: [PEFTAdapterWriter.Entry]
        public var invocationTokens: [Int]?
    }

    /// Reads a llama.cpp LoRA GGUF: checks `general.type`, `adapter.type`, pairs every
    /// `.lora_a` with its `.lora_b`, maps names back to HF modules and undoes the Q/K row
    /// permutation of `lora_b`.
    /// - Parameter base: needed only when the adapter has `attn_q`/`attn_k` pairs (for the
    ///   head counts); its architecture must match `general.architecture`.
    /// - Throws: ``AdapterError`` as ``PathError``s naming the file.
    public static func read(gguf path: String, base: AdapterBaseModel?) throws -> GGUFAdapterContents {
        let model = try GGUFModel.open(path: path)
        let meta = model.metadata
        return try withPath(path) {
            guard meta[GGUFKeys.General.type]?.stringValue == "adapter" else {
                throw AdapterError.notAnAdapter(reason: "general.type is \(meta[GGUFKeys.General.type]?.stringValue ?? "absent"), not adapter")
            }
            guard meta[GGUFKeys.Adapter.type]?.stringValue == "lora" else {
                throw AdapterError.notAnAdapter(reason: "adapter.type is \(meta[GGUFKeys.Adapter.type]?.stringValue ?? "absent"), not lora")
            }
            guard let archName = meta[GGUFKeys.General.architecture]?.stringValue else {
                throw ConvertError.missingMetadata(GGUFKeys.General.architecture)
            }
            guard let arch = ArchitectureDescription.forGGUF(architecture: archName) else {
                throw ConvertError.unsupportedArchitecture(archName)
            }
            if let base, base.architecture.ggufName != archName {
                throw AdapterError.moduleNotInBase(module: "(all)", reason: "the adapter is for \(archName), the base is \(base.architecture.ggufName)")
            }
            let alpha = meta[GGUFKeys.Adapter.loraAlpha]?.doubleValue ?? 0
            let source = GGUFTensorSource(model)
            var aEntries: [String: TensorEntry] = [:], bEntries: [String: TensorEntry] = [:]
            var order: [String] = []
            for e in source.entries {
                if e.name.hasSuffix(".lora_a") {
                    let b = String(e.name.dropLast(7))
                    if aEntries[b] == nil && bEntries[b] == nil { order.append(b) }
                    aEntries[b] = e
                } else if e.name.hasSuffix(".lora_b") {
                    let b = String(e.name.dropLast(7))
                    if aEntries[b] == nil && bEntries[b] == nil { order.append(b) }
                    bEntries[b] = e
                } else {
                    throw AdapterError.cannotHold(tensor: e.name, target: "a PEFT LoRA adapter",
                                                  reason: "not a lora_a/lora_b matrix (a full tensor such as a mergekit norm)")
                }
            }
            // Each GGUF pair, mapped back to its HF module and B's rows put back in HF order; the
            // parts of a split fused weight (Baichuan's attn_q/k/v from W_pack) are joined after.
            var pieces: [String: [(part: Int, a: [Float], b: [Float], rank: Int, inFeatures: Int, outFeatures: Int)]] = [:]
            var partCounts: [String: Int] = [:]
            var moduleOrder: [String] = []
            for baseName in order {
                guard let ea = aEntries[baseName] else { throw AdapterError.unpairedTensor(module: baseName, missing: "\(baseName).lora_a") }
                guard let eb = bEntries[baseName] else { throw AdapterError.unpairedTensor(module: baseName, missing: "\(baseName).lora_b") }
                // Only weights are adapted: the layout-conditional rules (Falcon's norms) never apply.
                guard let mapping = arch.hfTensor(forGGUF: baseName, ggufHas: { _ in false }), mapping.hfName.hasSuffix(".weight"),
                      baseName != "token_embd.weight" else {
                    throw AdapterError.cannotHold(tensor: ea.name, target: "a PEFT LoRA adapter",
                                                  reason: "\(baseName) is not a linear weight of the \(archName) architecture")
                }
                let hfName = mapping.hfName
                // ggml ne: A [in, r] → numpy [r, in]; B [r, out] → numpy [out, r].
                guard ea.shape.count == 2, eb.shape.count == 2, ea.shape[0] == eb.shape[1], ea.shape[0] > 0 else {
                    throw AdapterError.badShape(tensor: eb.name, shape: eb.shape, expected: "[out, r] with r the rank of \(ea.name) \(ea.shape)")
                }
                let rank = ea.shape[0], inFeatures = ea.shape[1], outFeatures = eb.shape[0]
                func needBase() throws -> AdapterBaseModel {
                    guard let base else {
                        throw AdapterError.needsBase("\(baseName) needs the base model's head counts to undo llama.cpp's row order; pass --base")
                    }
                    return base
                }
                // Source row in the GGUF B of each HF row.
                var rowOrder: [Int]? = nil
                switch mapping.part.map({ p in p.permutation.map { TensorTransform.permute($0) } }) ?? mapping.transform {
                case .permute(let headPermutation)?:
                    guard let permutation = try needBase().toHF(headPermutation), permutation.isValid(rowCount: outFeatures) else {
                        throw AdapterError.moduleNotInBase(module: hfName, reason: "\(outFeatures) rows cannot be split into the base's heads")
                    }
                    rowOrder = try (0 ..< outFeatures).map { r in
                        guard let from = permutation.sourceRow(of: r, rowCount: outFeatures) else {
                            throw AdapterError.moduleNotInBase(module: hfName, reason: "\(outFeatures) rows cannot be split into the base's heads")
                        }
                        return from
                    }
                case .regroupFusedQKV?:
                    let base = try needBase()
                    guard let forward = TensorLayoutChange.fusedQKVRowOrder(rows: outFeatures, heads: base.headCount, kvHeads: base.kvHeadCount) else {
                        throw AdapterError.moduleNotInBase(module: hfName, reason: "\(outFeatures) rows cannot be split into the base's heads")
                    }
                    var inverse = [Int](repeating: 0, count: outFeatures)
                    for (gguf, hf) in forward.enumerated() { inverse[hf] = gguf }
                    rowOrder = inverse
                case nil, .transpose?, .split?:
                    // GPT-2's Conv1D pairs are stored as llama.cpp applies them to the transposed weight.
                    break
                }
                let a = try decode(ea, from: source)
                var b = try decode(eb, from: source)
                if let rowOrder {
                    let stored = b
                    for (r, from) in rowOrder.enumerated() { b.replaceSubrange(r * rank ..< (r + 1) * rank, with: stored[from * rank ..< (from + 1) * rank]) }
                }
                if pieces[hfName] == nil { moduleOrder.append(hfName) }
                pieces[hfName, default: []].append((mapping.part?.index ?? 0, a, b, rank, inFeatures, outFeatures))
                partCounts[hfName] = mapping.part?.count ?? 1
            }
            var entries: [PEFTAdapterWriter.Entry] = []
            for hfName in moduleOrder {
                let parts = (pieces[hfName] ?? []).sorted { $0.part < $1.part }
                guard let first = parts.first, parts.count == partCounts[hfName], Set(parts.map(\.part)).count == parts.count else {
                    throw AdapterError.cannotHold(tensor: hfName, target: "a PEFT LoRA adapter",
                                                  reason: "only \(pieces[hfName]?.count ?? 0) of the \(partCounts[hfName] ?? 0) parts of the fused weight are adapted")
                }
                // One PEFT module holds one A: the parts of a split weight must share it.
                guard parts.allSatisfy({ $0.a == first.a && $0.rank == first.rank && $0.inFeatures == first.inFeatures }) else {
                    throw AdapterError.cannotHold(tensor: hfName, target: "a PEFT LoRA adapter",
                                                  reason: "the parts of the fused weight have different lora_a matrices, which one PEFT module cannot hold")
                }
                let moduleName = String(hfName.dropLast(".weight".count))
                // llama.cpp: scale = alpha / rank, or 1 when alpha is 0.
                let moduleAlpha = alpha == 0 ? Double(first.rank) : alpha
                let outFeatures = parts.reduce(0) { $0 + $1.outFeatures }
                let module = LoRAModule(name: moduleName, kind: .linear, rank: first.rank, inFeatures: first.inFeatures,
                                        outFeatures: outFeatures, alpha: moduleAlpha, scaling: moduleAlpha / Double(first.rank))
                entries.append(PEFTAdapterWriter.Entry(module: module, matrices: LoRAMatrices(a: first.a, b: parts.flatMap(\.b))))
            }
            guard !entries.isEmpty else { throw AdapterError.notAnAdapter(reason: "no lora_a/lora_b tensors") }
            entries.sort { $0.module.keyA.utf8.lexicographicallyPrecedes($1.module.keyA.utf8) }
            let tokens = meta[aloraInvocationTokensKey]?.intArray
            return GGUFAdapterContents(architecture: archName, alpha: alpha, entries: entries, invocationTokens: tokens)
        }
    }

    static func decode(_ e: TensorEntry, from source: GGUFTensorSource) throws -> [Float] {
        guard RowCodec.canDecode(e.encoding), let rowLength = e.shape.last, let rowBytes = e.encoding.ggmlType?.rowByteCount(elementCount: rowLength) else {
            throw AdapterError.badDType(tensor: e.name, dtype: e.encoding.description)
        }
        let rows = e.elementCount / rowLength
        let bytes = try source.bytes(of: e)
        guard bytes.count >= rows * rowBytes else {
            throw AdapterError.badShape(tensor: e.name, shape: e.shape, expected: "\(rows * rowBytes) bytes of data")
        }
        var values = [Float](repeating: 0, count: e.elementCount)
        values.withUnsafeMutableBufferPointer { v in
            for r in 0 ..< rows {
                RowCodec.decode(UnsafeRawBufferPointer(rebasing: bytes[r * rowBytes ..< (r + 1) * rowBytes]), e.encoding,
                                into: UnsafeMutableBufferPointer(rebasing: v[r * rowLength ..< (r + 1) * rowLength]))
            }
        }
        if let i = values.firstIndex(where: { !$0.isFinite }) { throw AdapterError.nonFinite(tensor: e.name, index: i) }
        return values
    }

    /// Converts a llama.cpp LoRA GGUF into a PEFT adapter directory at `output`.
    ///
    /// `r` is the most common rank (others go to `rank_pattern`), `lora_alpha` the GGUF's alpha
    /// (for alpha 0, which llama.cpp reads as scale 1, alpha = rank per module), `target_modules`
    /// the projection names present, `base_model_name_or_path` `baseModelName` (the caller
    /// decides: the adapter is a release artifact, where a path of this machine has no place).
    /// Matrices are written F32.
    @discardableResult
    public static func toPEFT(gguf path: String, base: AdapterBaseModel?, output: String, baseModelName: String? = nil, force: Bool = false,
                              provenance: Provenance? = nil) throws -> Report {
        let contents = try read(gguf: path, base: base)
        var rankCounts: [Int: Int] = [:]
        for e in contents.entries { rankCounts[e.module.rank, default: 0] += 1 }
        let rank = rankCounts.max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key ?? 8
        let alpha = contents.alpha == 0 ? Double(rank) : contents.alpha
        var leafNames: [String] = []
        for e in contents.entries {
            let leaf = String(e.module.name.split(separator: ".").last ?? "")
            if !leafNames.contains(leaf) { leafNames.append(leaf) }
        }
        var config = PEFTLoRAConfig(rank: rank, alpha: alpha, dropout: 0, targetModules: leafNames.sorted(),
                                    baseModelNameOrPath: baseModelName)
        for e in contents.entries where e.module.rank != rank {
            config.rankPattern.append((e.module.name, e.module.rank))
            if contents.alpha == 0 { config.alphaPattern.append((e.module.name, Double(e.module.rank))) }
        }
        config.syncJSON()
        if let tokens = contents.invocationTokens {
            config.setRaw("alora_invocation_tokens", .array(tokens.map { .int(Int64($0)) }))
        }
        try PEFTAdapterWriter.write(config: config, entries: contents.entries, to: output, force: force,
                                     metadata: Provenance.safetensorsMetadata(provenance))
        var report = Report()
        report.output = output
        report.moduleCount = contents.entries.count
        report.tensorCount = contents.entries.count * 2
        report.alpha = alpha
        return report
    }
}
