public import TensorCore
public import Formats
#if canImport(Glibc)
import Glibc
#endif

/// One tensor of a planned GGUF output.
public struct PlannedTensor: Sendable {
    public enum Source: Sendable {
        /// Read from the input (by its entry) and transcoded.
        case input(TensorEntry)
        /// Computed by the converter (llama3's `rope_freqs.weight`).
        case generated([Float])
    }

    public let name: String
    public let source: Source
    public let type: GGMLType
    /// ggml `ne`: innermost dimension first.
    public let dimensions: [Int]
    public let byteCount: Int
    public let permutation: RowPermutation?
    /// A data change before transcoding (transpose, QKV regrouping, a split's rows); nil for
    /// a plain rename. The permutation applies after it.
    public var layout: TensorLayoutChange? = nil

    public var shape: [Int] { dimensions.reversed() }
}

/// A GGUF output fully described before any tensor byte is written.
public struct GGUFPlan: Sendable {
    public let metadata: GGUFMetadata
    public let tensors: [PlannedTensor]

    public var descriptors: [GGUFTensorDescriptor] {
        tensors.map { GGUFTensorDescriptor(name: $0.name, dimensions: $0.dimensions, type: $0.type, byteCount: $0.byteCount) }
    }
}

/// HF model directory → GGUF, as llama.cpp's `convert_hf_to_gguf.py` does it: the same
/// metadata keys in the same order, the same tensor names, order, types and bytes.
public enum HFToGGUF {
    /// Plans the conversion of `directory` without writing anything.
    public static func plan(_ directory: HFModelDirectory, options: ConvertOptions) throws -> GGUFPlan {
        let config = directory.config
        guard let hfArch = try config.architecture else { throw PathError(path: directory.path(of: "config.json"), ConvertError.missingArchitecture) }
        if let family = ArchitectureDescription.withoutGGUF[hfArch] {
            throw PathError(path: directory.path(of: "config.json"), ConvertError.noGGUFArchitecture(family: family, hfArchitecture: hfArch))
        }
        guard let arch = ArchitectureDescription.forHF(architecture: hfArch) else {
            throw PathError(path: directory.path(of: "config.json"), ConvertError.unsupportedArchitecture(hfArch))
        }
        // Read only when a tensor needs them: not every family names its head counts alike.
        var headCounts: (heads: Int, kvHeads: Int)?
        func heads() throws -> (heads: Int, kvHeads: Int) {
            if let headCounts { return headCounts }
            let counts = try withPath(directory.path(of: "config.json")) { try arch.headCounts(config) }
            headCounts = counts
            return counts
        }
        let source = CheckpointTensorSource(directory.weights)

        // The converter walks shard files in sorted order and each file's tensors sorted by
        // name (Python string order, i.e. by code point); so do we.
        let ordered = source.entries.enumerated().sorted { a, b in
            let fa = directory.weights.tensors[a.offset].shard, fb = directory.weights.tensors[b.offset].shard
            if fa != fb { return directory.weights.files[fa].path.utf8.lexicographicallyPrecedes(directory.weights.files[fb].path.utf8) }
            return a.element.name.utf8.lexicographicallyPrecedes(b.element.name.utf8)
        }.map(\.element)

        let fileType = try resolveOutType(options.outType, tensors: ordered)
        var planned: [PlannedTensor] = []
        var seen = Set<String>()

        if let freqs = try llama3RopeFactors(config) {
            planned.append(PlannedTensor(name: "rope_freqs.weight", source: .generated(freqs), type: .f32,
                                         dimensions: [freqs.count], byteCount: freqs.count * 4, permutation: nil))
            seen.insert("rope_freqs.weight")
        }

        for entry in ordered {
            if arch.isIgnored(hfName: entry.name) { continue }
            guard let mapped = arch.ggufTensors(forHF: entry.name) else {
                throw PathError(path: entry.file, ConvertError.unmappedTensor(entry.name))
            }
            guard let dtype = entry.encoding.denseType, dtype.isConvertibleFloat else {
                throw PathError(path: entry.file, ConvertError.unsupportedDType(tensor: entry.name, dtype: entry.encoding.description))
            }
            for target in mapped {
                let name = target.name
                guard seen.insert(name).inserted else { throw PathError(path: entry.file, ConvertError.duplicateOutputTensor(name)) }
                var shape = entry.shape
                var layout: TensorLayoutChange?
                var permutation: RowPermutation?
                switch target.transform {
                case nil:
                    break
                case .permute(let which):
                    let counts = try heads()
                    permutation = .toGGUF(heads: which == .queryHeads ? counts.heads : counts.kvHeads)
                case .transpose:
                    guard shape.count == 2 else { throw PathError(path: entry.file, ConvertError.badLayout(tensor: entry.name, "a Conv1D weight must be 2-D")) }
                    shape = [shape[1], shape[0]]
                    layout = .transpose
                case .regroupFusedQKV:
                    let counts = try heads()
                    let groups = counts.heads + 2 * counts.kvHeads
                    guard shape.count == 2, shape[0] % groups == 0 else {
                        throw PathError(path: entry.file, ConvertError.badLayout(
                            tensor: entry.name, "\(shape.first ?? 0) rows are not \(counts.heads) query + 2 × \(counts.kvHeads) key/value heads"))
                    }
                    layout = .regroupFusedQKV(heads: counts.heads, kvHeads: counts.kvHeads)
                case .split:
                    break  // ggufTensors(forHF:) yields the parts with their own transforms.
                }
                if let part = target.part {
                    guard let rows = shape.first, rows % part.count == 0 else {
                        throw PathError(path: entry.file, ConvertError.badLayout(tensor: entry.name, "rows cannot be split into \(part.count) equal parts"))
                    }
                    let n = rows / part.count
                    shape[0] = n
                    layout = .rows(part.index * n ..< (part.index + 1) * n)
                }
                let type = outputType(name: name, shape: shape, fileType: fileType)
                let dims = shape.isEmpty ? [1] : Array(shape.reversed())
                guard let bytes = GGUFTensorDescriptor.byteCount(dimensions: dims, type: type) else {
                    throw PathError(path: entry.file, ConvertError.unsupportedDType(tensor: entry.name, dtype: type.name))
                }
                if let permutation, !permutation.isValid(rowCount: shape.first ?? 0) {
                    throw PathError(path: entry.file, ConvertError.badLayout(tensor: entry.name, "rows cannot be split into heads of even size"))
                }
                planned.append(PlannedTensor(name: name, source: .input(entry), type: type, dimensions: dims,
                                             byteCount: bytes, permutation: permutation, layout: layout))
            }
        }

        var metadata = try LlamaGGUFMetadata.entries(
            directory: directory, architecture: arch, fileType: fileType,
            tensors: planned.map { ($0.name, $0.shape) }, options: options)
        if let provenance = options.provenance { metadata.setProvenance(provenance) }
        return GGUFPlan(metadata: metadata, tensors: planned)
    }

    /// What ``convert(_:to:options:)`` will write to `output`, without writing anything.
    public static func outputPlan(_ directory: HFModelDirectory, output: String, options: ConvertOptions) throws -> OutputPlan {
        let plan = try plan(directory, options: options)
        var peak = 0, peakInput = 0
        let tensors = plan.tensors.map { t in
            let sourceType: String
            switch t.source {
            case .input(let entry):
                sourceType = entry.encoding.description
                peakInput = max(peakInput, entry.byteCount)
            case .generated: sourceType = GGMLType.f32.name
            }
            let rowLength = t.dimensions.first ?? 1
            let rows = max(1, (elementCount(of: t.dimensions) ?? 0) / max(1, rowLength))
            peak = max(peak, OutputPlan.streamingBytes(rowLength: rowLength, rowBytes: t.byteCount / rows, threads: options.threads))
            return OutputPlan.Tensor(name: t.name, sourceType: sourceType, type: t.type.name, shape: t.shape, byteCount: t.byteCount)
        }
        return try OutputPlan.gguf(metadata: plan.metadata, tensors: tensors, descriptors: plan.descriptors,
                                   alignment: GGUFHeader.defaultAlignment, output: output, splitMaxBytes: options.splitMaxBytes,
                                   peak: peak, peakInput: peakInput, warnings: [])
    }

    /// Converts `directory` into the GGUF file at `output` (or split parts with
    /// `options.splitMaxBytes`), writing atomically.
    @discardableResult
    public static func convert(_ directory: HFModelDirectory, to output: String, options: ConvertOptions) throws -> ConvertReport {
        let plan = try plan(directory, options: options)
        let source = CheckpointTensorSource(directory.weights)
        return try GGUFPlanWriter.write(plan, to: output, options: options) { tensor, sink in
            switch tensor.source {
            case .generated(let values):
                try values.withUnsafeBytes { try sink.write($0) }
            case .input(let entry):
                let bytes = try source.bytes(of: entry)
                source.prefetch(entry)
                let emit = { (input: UnsafeRawBufferPointer, shape: [Int], consumed: ((UnsafeRawBufferPointer) -> Void)?) throws in
                    // Errors about the tensor name the file it comes from.
                    let transcoder = try withPath(entry.file) {
                        try RowTranscoder(
                            tensorName: entry.name, shape: shape, source: entry.encoding, target: .ggml(tensor.type),
                            permutation: tensor.permutation, threads: options.threads)
                    }
                    try transcoder.run(input: input, consumed: consumed) { capacity, fill in
                        try sink.withWritableBuffer(capacity: capacity, fill)
                    }
                }
                if let layout = tensor.layout {
                    let changed = try withPath(entry.file) { try layout.apply(to: bytes, entry: entry) }
                    switch changed {
                    case .view(let view):
                        try emit(view, tensor.shape, nil)
                    case .copy(let copy):
                        try copy.withUnsafeBytes { try emit($0, tensor.shape, nil) }
                    }
                    source.releasePages(of: bytes)
                } else {
                    try emit(bytes, entry.shape, source.releasePages(of:))
                }
                // After each tensor, so the last check precedes the commit: a changed input never
                // becomes an output.
                try source.checkUnchanged()
            }
        }
    }

    /// `general.file_type` and the matrices' type for an `--outtype`.
    static func resolveOutType(_ outType: ConvertOptions.OutType, tensors: [TensorEntry]) throws -> GGMLType {
        switch outType {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .auto:
            // llama.cpp: the first ≥2-D tensor that is bf16 or f16 decides; f32 ones are skipped.
            for t in tensors where t.shape.count >= 2 {
                if t.encoding.denseType == .bf16 { return .bf16 }
                if t.encoding.denseType == .f16 { return .f16 }
            }
            return .f16
        }
    }

    /// The converter's per-tensor rule (`ModelBase.prepare_tensors`): 1-D tensors, norms, learned
    /// position embeddings (`position_embd`, GPT-2) and anything not named `*.weight` stay F32; the
    /// rest take the file type.
    public static func outputType(name: String, shape: [Int], fileType: GGMLType) -> GGMLType {
        if shape.count <= 1 || name.hasSuffix("_norm.weight") { return .f32 }
        if name == "position_embd.weight" || !name.hasSuffix(".weight") { return .f32 }
        return fileType
    }

    /// llama3 rope scaling becomes a tensor of per-frequency divisors (`rope_freqs.weight`),
    /// computed in float32 step by step as the converter's torch code does.
    public static func llama3RopeFactors(_ config: HFConfig) throws -> [Float]? {
        guard let scaling = try config.ropeScaling, scaling.type.lowercased() == "llama3" else { return nil }
        let base = Float(try config.ropeTheta ?? 10000)
        let dim = try config.headDim ?? (try config.hiddenSize / config.numAttentionHeads)
        let factor = Float(scaling.factor ?? 8)
        let low = Float(scaling.lowFrequencyFactor ?? 1)
        let high = Float(scaling.highFrequencyFactor ?? 4)
        let oldContext = Float(scaling.originalMaxPositionEmbeddings ?? 8192)
        let lowWavelength = Double(scaling.originalMaxPositionEmbeddings ?? 8192) / (scaling.lowFrequencyFactor ?? 1)
        let highWavelength = Double(scaling.originalMaxPositionEmbeddings ?? 8192) / (scaling.highFrequencyFactor ?? 4)
        let twoPi = Float(2 * Double.pi)
        var factors: [Float] = []
        for i in stride(from: 0, to: dim, by: 2) {
            let freq = 1 / powf(base, Float(i) / Float(dim))
            let wavelength = twoPi / freq
            if Double(wavelength) < highWavelength {
                factors.append(1)
            } else if Double(wavelength) > lowWavelength {
                factors.append(factor)
            } else {
                let smooth = (oldContext / wavelength - low) / Float(Double(high) - Double(low))
                factors.append(1 / ((1 - smooth) / factor + smooth))
            }
        }
        return factors
    }
}

/// Writes a ``GGUFPlan`` to one file or split parts, tensor by tensor.
enum GGUFPlanWriter {
    static func write(
        _ plan: GGUFPlan, to output: String, options: ConvertOptions,
        tensorData: (PlannedTensor, GGUFTensorSink) throws -> Void
    ) throws -> ConvertReport {
        var report = ConvertReport()
        let counter = ProgressCounter(options.progress, tensorCount: plan.tensors.count,
                                      bytesTotal: plan.tensors.reduce(0) { $0 + $1.byteCount })
        if let limit = options.splitMaxBytes {
            let splitter = try GGUFSplitWriter(metadata: plan.metadata, tensors: plan.descriptors, limit: .maxBytes(limit))
            let prefix = output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output
            report.outputs = try splitter.write(prefix: prefix, force: options.force) { i, sink in
                try tensorData(plan.tensors[i], sink)
                counter.wrote(plan.tensors[i].name, bytes: plan.tensors[i].byteCount)
            }
        } else {
            let writer = try GGUFWriter(metadata: plan.metadata, tensors: plan.descriptors)
            try writer.write(toPath: output, force: options.force) { i, sink in
                try tensorData(plan.tensors[i], sink)
                counter.wrote(plan.tensors[i].name, bytes: plan.tensors[i].byteCount)
            }
            report.outputs = [output]
        }
        report.tensorCount = plan.tensors.count
        for t in plan.tensors {
            report.byteCount += t.byteCount
            report.parameterCount += elementCount(of: t.dimensions) ?? 0
            report.typeCounts[t.type.name, default: 0] += 1
        }
        return report
    }
}
