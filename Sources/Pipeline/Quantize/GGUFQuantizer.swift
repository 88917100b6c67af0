public import TensorCore
public import Formats

/// Why a model cannot be quantized.
public enum GGUFQuantizeError: ClassifiedError, Hashable {
    /// The scheme is not a llama-quantize file type (bitsandbytes goes elsewhere).
    case notAGGMLScheme
    /// A tensor is already quantized and `allowRequantize` is off.
    case requantizeDisabled(tensor: String, type: GGMLType)
    /// A bare safetensors file: without config.json there is no GGUF metadata to write.
    case needsModelDirectory
    /// `dequantize` was asked for a type that is not f32, f16 or bf16.
    case notAFloatType(DType)

    public var kind: ErrorKind {
        switch self {
        case .notAGGMLScheme, .notAFloatType: .usage
        case .requantizeDisabled: .unsupported
        case .needsModelDirectory: .unsupported
        }
    }

    public var description: String {
        switch self {
        case .notAGGMLScheme: "GGUF output needs a llama.cpp quantization type (Q4_K_M, Q8_0, …), not a bitsandbytes scheme"
        case let .requantizeDisabled(t, type):
            "tensor \(t) is already quantized (\(type.name)); requantizing loses more precision than quantizing the original, pass --allow-requantize to do it anyway"
        case .needsModelDirectory:
            "a bare safetensors file has no config.json or tokenizer; quantize its model directory instead"
        case .notAFloatType(let d): "cannot dequantize to \(d.rawValue): choose f32, f16 or bf16"
        }
    }
}

/// One tensor of a planned quantization.
public struct GGUFQuantizeTensor: Sendable {
    enum Origin: Sendable {
        case entry(TensorEntry, RowPermutation?)
        case generated([Float])
    }

    /// Name, shape and types (`inputType`: for an HF input, the converter's type).
    public let layout: GGUFQuantizeLayout.Tensor
    let origin: Origin
    /// How the origin's bytes are stored (a safetensors dtype for HF input).
    let storage: TensorEncoding

    public var name: String { layout.name }
    public var dimensions: [Int] { layout.dimensions }
    public var inputType: GGMLType { layout.inputType }
    public var type: GGMLType { layout.type }
    public var fallbackFrom: GGMLType? { layout.fallbackFrom }
    public var byteCount: Int { layout.byteCount }
}

/// A quantization fully decided before any byte is written: the output metadata, and every
/// tensor with its type, in llama-quantize's order.
public struct GGUFQuantizePlan: Sendable {
    public let metadata: GGUFMetadata
    public let tensors: [GGUFQuantizeTensor]
    public let alignment: Int
    public let fileType: GGMLFileType
    /// Requantization and fallback notes.
    public let warnings: [String]
    let source: any TensorSource
}

/// The metadata and per-tensor types of a quantization, decided from names, shapes and stored
/// types alone (see ``GGUFQuantizer/layout(metadata:tensors:options:path:)``).
public struct GGUFQuantizeLayout: Sendable {
    public struct Tensor: Sendable, Hashable {
        /// Position of the tensor in the list given to `layout`.
        public let index: Int
        public let name: String
        /// ggml `ne` as written (trailing 1s trimmed, as ggml writes `n_dims`).
        public let dimensions: [Int]
        /// The type llama-quantize sees in its input GGUF.
        public let inputType: GGMLType
        /// The type written: the rules' choice, or `inputType` where they leave the tensor alone.
        public let type: GGMLType
        /// The type the rules chose when the row length forced a fallback.
        public let fallbackFrom: GGMLType?
        public let byteCount: Int
    }

    /// The output metadata (the input's, `general.quantization_version` and `general.file_type` last).
    public let metadata: GGUFMetadata
    public let alignment: Int
    /// In output order (llama-quantize's).
    public let tensors: [Tensor]
    /// Requantization and fallback notes.
    public let warnings: [String]
}

/// GGUF quantization as llama.cpp's `llama-quantize` does it, byte for byte: the same tensor
/// order, per-tensor types (mixes, fallbacks, `--pure`, `--tensor-type`, output and embedding
/// types), metadata (input keys in order, then `general.quantization_version` and
/// `general.file_type`, split keys dropped) and block encodings.
public enum GGUFQuantizer {
    /// Quantizes `input` (a Hugging Face model directory, or a GGUF file) into the GGUF file at
    /// `output`, written atomically, tensor by tensor.
    ///
    /// An HF directory goes through ``HFToGGUF`` in the same pass, as if converted with
    /// `--outtype options.hfOutType` first. A GGUF input may be f32, f16 or bf16; an already
    /// quantized one needs `options.allowRequantize` (its tensors are dequantized, then quantized
    /// again, which the report's warnings point out).
    /// - Throws: ``GGUFQuantizeError``, ``GGUFQuantizeRuleError``, ``GGUFQuantizeValueError``
    ///   (NaN/Inf weights without `allowNonFinite`), conversion and I/O errors, as ``PathError``s
    ///   naming the input or output.
    @discardableResult
    public static func quantize(_ input: ModelInput, to output: String, options: QuantizeOptions) throws -> QuantizeReport {
        let plan = try plan(input, options: options)
        return try write(plan, to: output, options: options)
    }

    /// Decides the output (metadata, tensor order and types) without writing anything.
    public static func plan(_ input: ModelInput, options: QuantizeOptions) throws -> GGUFQuantizePlan {
        guard case .ggml(let fileType) = options.scheme else { throw GGUFQuantizeError.notAGGMLScheme }
        return try plan(input, fileType: fileType, options: options, dequantizing: false)
    }

    static func plan(_ input: ModelInput, fileType: GGMLFileType, options: QuantizeOptions, dequantizing: Bool) throws -> GGUFQuantizePlan {
        struct Candidate {
            var name: String
            var dimensions: [Int]
            var inputType: GGMLType
            var origin: GGUFQuantizeTensor.Origin
            var storage: TensorEncoding
        }
        var candidates: [Candidate] = []
        let metadata: GGUFMetadata
        let source: any TensorSource
        switch input {
        case .hf(let directory):
            var convert = ConvertOptions()
            convert.outType = options.hfOutType
            convert.vocabPre = options.vocabPre
            convert.threads = options.threads
            let converted = try HFToGGUF.plan(directory, options: convert)
            metadata = converted.metadata
            for t in converted.tensors {
                switch t.source {
                case .input(let entry):
                    candidates.append(Candidate(name: t.name, dimensions: t.dimensions, inputType: t.type,
                                                origin: .entry(entry, t.permutation), storage: entry.encoding))
                case .generated(let values):
                    candidates.append(Candidate(name: t.name, dimensions: t.dimensions, inputType: t.type,
                                                origin: .generated(values), storage: .ggml(.f32)))
                }
            }
            source = CheckpointTensorSource(directory.weights)
        case .gguf(let model):
            metadata = model.metadata
            let ggufSource = GGUFTensorSource(model)
            for entry in ggufSource.entries {
                guard case .ggml(let type) = entry.encoding else { continue }
                candidates.append(Candidate(name: entry.name, dimensions: Array(entry.shape.reversed()), inputType: type,
                                            origin: .entry(entry, nil), storage: entry.encoding))
            }
            source = ggufSource
        case .safetensors(let checkpoint):
            throw PathError(path: checkpoint.path, GGUFQuantizeError.needsModelDirectory)
        }

        let decided = try layout(metadata: metadata, tensors: candidates.map { ($0.name, $0.dimensions, $0.inputType) },
                                 fileType: fileType, options: options, dequantizing: dequantizing, path: input.path)
        let tensors = decided.tensors.map { t in
            GGUFQuantizeTensor(layout: t, origin: candidates[t.index].origin, storage: candidates[t.index].storage)
        }
        return GGUFQuantizePlan(metadata: decided.metadata, tensors: tensors, alignment: decided.alignment, fileType: fileType,
                                warnings: decided.warnings, source: source)
    }

    /// The output layout `llama-quantize --type options.scheme` gives a GGUF with this metadata
    /// and these tensors (ggml `ne`, stored type), without reading any tensor data: the final
    /// metadata, the alignment, and every tensor in output order with the type the rules
    /// choose. For producers of GGUF tensors that are not in a file yet (a LoRA merge), so that
    /// writing the layout equals writing the GGUF and quantizing it.
    /// - Parameter path: names the input in errors.
    /// - Throws: ``GGUFQuantizeError``, ``GGUFQuantizeRuleError``, metadata errors.
    public static func layout(metadata: GGUFMetadata, tensors: [(name: String, dimensions: [Int], type: GGMLType)],
                              options: QuantizeOptions, path: String) throws -> GGUFQuantizeLayout {
        guard case .ggml(let fileType) = options.scheme else { throw GGUFQuantizeError.notAGGMLScheme }
        return try layout(metadata: metadata, tensors: tensors, fileType: fileType, options: options, dequantizing: false, path: path)
    }

    static func layout(metadata input: GGUFMetadata, tensors candidates: [(name: String, dimensions: [Int], type: GGMLType)],
                       fileType: GGMLFileType, options: QuantizeOptions, dequantizing: Bool, path: String) throws -> GGUFQuantizeLayout {
        var metadata = input
        let facts = try modelFacts(metadata, path: path)
        // llama-quantize: the input's keys in order, then these two moved to the end; a split
        // input's split.* keys dropped.
        metadata.remove(GGUFKeys.General.quantizationVersion)
        metadata.remove(GGUFKeys.General.fileType)
        metadata.set(GGUFKeys.General.quantizationVersion, .uint32(2))
        metadata.set(GGUFKeys.General.fileType, .uint32(fileType.llamaFileType))
        metadata.remove(GGUFKeys.Split.number)
        metadata.remove(GGUFKeys.Split.count)
        metadata.remove(GGUFKeys.Split.tensorsCount)
        if let provenance = options.provenance { metadata.setProvenance(provenance) }
        // ggml's writer pads to its default of 32 even when the input declares another
        // alignment (and keeps that key), which gives a file ggml cannot read back; wconv writes
        // the declared alignment instead.
        let alignment: Int
        if let value = metadata[GGUFKeys.General.alignment] {
            guard case .uint32(let a) = value else { throw PathError(path: path, GGUFError.alignmentWrongType(value.type)) }
            guard a > 0, a & (a - 1) == 0 else { throw PathError(path: path, GGUFError.alignmentNotPowerOfTwo(Int(a))) }
            alignment = Int(a)
        } else {
            alignment = GGUFHeader.defaultAlignment
        }

        let order = candidates.indices.sorted { GGUFTensorTypeRules.outputOrder(candidates[$0].name, candidates[$1].name) }
        var rules = try GGUFTensorTypeRules(fileType: fileType, options: options, facts: facts, names: order.map { candidates[$0].name })
        var tensors: [GGUFQuantizeLayout.Tensor] = []
        var requantized: [String: Int] = [:]
        var fallbacks: [(String, GGMLType, GGMLType)] = []
        for index in order {
            let c = candidates[index]
            let dims = Array(c.dimensions.prefix(GGUFTensorTypeRules.dimensionCount(c.dimensions)))
            var decision = try rules.decide(name: c.name, dimensions: dims, currentType: c.type)
            // Dequantizing: what the rules leave alone (1-D tensors, norms) is widened to F32 if
            // it is not a float already, so the output holds no quantized blocks at all.
            if dequantizing, decision.type == c.type, c.type.isQuantized || c.type == .f16 || c.type == .bf16,
               dims.count == 1 || !GGUFTensorTypeRules.allowsQuantization(name: c.name, dimensions: dims, leaveOutputTensor: options.leaveOutputTensor) {
                decision = GGUFTypeDecision(type: .f32)
            }
            if decision.type != c.type {
                guard GGUFRowQuantizer.canEncode(decision.type) else {
                    throw GGUFQuantizeRuleError.cannotQuantize(tensor: c.name, type: decision.type)
                }
                if c.type.isQuantized || !c.type.isKnown {
                    guard options.allowRequantize || dequantizing else {
                        throw PathError(path: path, GGUFQuantizeError.requantizeDisabled(tensor: c.name, type: c.type))
                    }
                    requantized[c.type.name, default: 0] += 1
                }
            }
            if let from = decision.fallbackFrom { fallbacks.append((c.name, from, decision.type)) }
            guard let bytes = GGUFTensorDescriptor.byteCount(dimensions: dims, type: decision.type) else {
                throw GGUFQuantizeRuleError.typeDoesNotFitRows(tensor: c.name, type: decision.type, rowLength: dims.first ?? 1)
            }
            tensors.append(GGUFQuantizeLayout.Tensor(index: index, name: c.name, dimensions: dims, inputType: c.type, type: decision.type,
                                                     fallbackFrom: decision.fallbackFrom, byteCount: bytes))
        }

        var warnings: [String] = []
        if !requantized.isEmpty && !dequantizing {
            let list = requantized.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            warnings.append("requantized \(requantized.values.reduce(0, +)) already-quantized tensors (\(list)): they were "
                + "dequantized and quantized again, so both roundings add up; quantizing the f16/f32 original gives better weights")
        }
        // llama-quantize loads the model's hyper-parameters and refuses a file that lacks a key its
        // loader requires; wconv needs only what the type rules read, so it quantizes and says so.
        let missing = (Self.keysLlamaCppLoaderRequires[facts.architecture] ?? [])
            .map { GGUFKeys.Architecture.key(facts.architecture, $0) }.filter { input[$0] == nil }
        if !missing.isEmpty {
            warnings.append("the input lacks \(missing.joined(separator: ", ")), which llama.cpp's \(facts.architecture) loader requires: "
                + "llama-quantize refuses this file and llama.cpp will not load the output without supplying the key "
                + "(e.g. --override-kv \(missing[0])=float:1e-6)")
        }
        if let (name, from, to) = fallbacks.first {
            warnings.append("\(fallbacks.count) of \(tensors.count) tensors fell back to another type because their rows do not "
                + "fit the block size (e.g. \(name): \(from.name) -> \(to.name))")
        }
        return GGUFQuantizeLayout(metadata: metadata, alignment: alignment, tensors: tensors, warnings: warnings)
    }

    /// What ``write(_:to:options:)`` will write to `output` for `plan`, without writing anything;
    /// `threads` only changes the memory estimate.
    public static func outputPlan(_ plan: GGUFQuantizePlan, output: String, threads: Int) throws -> OutputPlan {
        var peak = 0
        var peakInput = 0
        for t in plan.tensors { if case .entry(let e, _) = t.origin { peakInput = max(peakInput, e.byteCount) } }
        let tensors = plan.tensors.map { t in
            let rowLength = t.dimensions.first ?? 1
            let rows = max(1, (elementCount(of: t.dimensions) ?? 0) / max(1, rowLength))
            peak = max(peak, OutputPlan.streamingBytes(rowLength: rowLength, rowBytes: t.byteCount / rows, threads: threads))
            return OutputPlan.Tensor(name: t.name, sourceType: t.storage.description, type: t.type.name,
                                     shape: Array(t.dimensions.reversed()), byteCount: t.byteCount)
        }
        let descriptors = plan.tensors.map { GGUFTensorDescriptor(name: $0.name, dimensions: $0.dimensions, type: $0.type, byteCount: $0.byteCount) }
        return try withPath(output) {
            try OutputPlan.gguf(metadata: plan.metadata, tensors: tensors, descriptors: descriptors, alignment: plan.alignment,
                                output: output, splitMaxBytes: nil, peak: peak, peakInput: peakInput, warnings: plan.warnings)
        }
    }

    /// Per architecture, keys (after `<arch>.`) that llama.cpp's model loader requires but its
    /// converter does not always write: Qwen-7B's converter writes `attention.layer_norm_epsilon`
    /// from the config while the qwen loader reads the RMS key.
    static let keysLlamaCppLoaderRequires: [String: [String]] = ["qwen": ["attention.layer_norm_rms_epsilon"]]

    /// The hyper-parameters llama-quantize's rules read.
    static func modelFacts(_ metadata: GGUFMetadata, path: String) throws -> GGUFQuantModelFacts {
        guard let arch = metadata[GGUFKeys.General.architecture]?.stringValue else {
            throw PathError(path: path, ConvertError.missingMetadata(GGUFKeys.General.architecture))
        }
        typealias K = GGUFKeys.Architecture
        func int(_ key: String) -> Int? { metadata[key]?.intValue ?? metadata[key]?.intArray?.first }
        guard let layers = int(K.blockCount(arch)) else { throw PathError(path: path, ConvertError.missingMetadata(K.blockCount(arch))) }
        let heads = int(K.headCount(arch)) ?? 0
        return GGUFQuantModelFacts(architecture: arch, layerCount: layers, headCount: heads,
                                   headCountKV: int(K.headCountKV(arch)) ?? heads, expertCount: int(K.key(arch, "expert_count")) ?? 0)
    }

    /// Writes a plan to `output` atomically.
    @discardableResult
    public static func write(_ plan: GGUFQuantizePlan, to output: String, options: QuantizeOptions) throws -> QuantizeReport {
        let descriptors = plan.tensors.map { GGUFTensorDescriptor(name: $0.name, dimensions: $0.dimensions, type: $0.type, byteCount: $0.byteCount) }
        let writer = try withPath(output) { try GGUFWriter(metadata: plan.metadata, tensors: descriptors, alignment: plan.alignment) }
        let counter = ProgressCounter(options.progress, tensorCount: plan.tensors.count,
                                      bytesTotal: plan.tensors.reduce(0) { $0 + $1.byteCount })
        try writer.write(toPath: output, force: options.force) { i, sink in
            let t = plan.tensors[i]
            switch t.origin {
            case .generated(let values):
                try values.withUnsafeBytes { try sink.write($0) }
            case .entry(let entry, let permutation):
                let source = plan.source
                // An HF tensor read as f16/bf16 by the converter's intermediate file: the
                // quantizer must see the 16-bit values, not the original ones.
                var intermediate: DType?
                if let d = t.inputType.denseEquivalent, d == .f16 || d == .bf16, t.storage.denseType != d, t.type != t.inputType {
                    intermediate = d
                }
                let job = try GGUFRowQuantizer(
                    tensorName: t.name, dimensions: t.dimensions,
                    source: t.storage,
                    intermediate: intermediate, target: t.type, permutation: permutation,
                    checkValues: !options.allowNonFinite, threads: options.threads)
                let bytes = try source.bytes(of: entry)
                source.prefetch(entry)
                try job.run(input: bytes, consumed: source.releasePages(of:)) { capacity, fill in
                    try sink.withWritableBuffer(capacity: capacity, fill)
                }
            }
            counter.wrote(t.name, bytes: t.byteCount)
        }
        var report = QuantizeReport()
        report.outputs = [output]
        report.warnings = plan.warnings
        for t in plan.tensors {
            let params = elementCount(of: t.dimensions) ?? 0
            report.add(type: t.type.name, bytes: t.byteCount, parameters: params)
            report.tensors.append(.init(name: t.name, sourceType: t.inputType.name, type: t.type.name, byteCount: t.byteCount, parameterCount: params))
        }
        return report
    }
}

/// Any GGUF back to floats.
public enum GGUFDequantizer {
    /// Dequantizes `model` (any readable ggml types) to `output`.
    ///
    /// - A path ending in `.gguf` gets a GGUF whose matrices are `outType` and everything else
    ///   F32: llama-quantize's F32/F16/BF16 file type with `--allow-requantize` (same bytes), plus
    ///   1-D tensors widened to F32 should an input have them quantized or 16-bit.
    /// - Any other path gets a Hugging Face model directory, through ``GGUFToHF``.
    /// - Parameter outType: `.f32`, `.f16` or `.bf16`.
    /// - Throws: ``GGUFQuantizeError/notAFloatType(_:)``, conversion, value and I/O errors.
    @discardableResult
    public static func dequantize(_ model: GGUFModel, to output: String, outType: DType, options: QuantizeOptions) throws -> QuantizeReport {
        let fileType: GGMLFileType
        switch outType {
        case .f32: fileType = .F32
        case .f16: fileType = .F16
        case .bf16: fileType = .BF16
        default: throw GGUFQuantizeError.notAFloatType(outType)
        }
        guard output.hasSuffix(".gguf") else {
            var convert = ConvertOptions()
            convert.outType = outType == .f32 ? .f32 : outType == .f16 ? .f16 : .bf16
            convert.force = options.force
            convert.threads = options.threads
            convert.progress = options.progress
            convert.provenance = options.provenance
            let converted = try GGUFToHF.convert(model, to: output, options: convert)
            var report = QuantizeReport()
            report.outputs = converted.outputs
            var total = QuantizeReport.TypeTotal(type: outType.rawValue)
            total.tensorCount = converted.tensorCount
            total.byteCount = converted.byteCount
            total.parameterCount = converted.parameterCount
            report.totals[outType.rawValue] = total
            return report
        }
        var o = options
        o.scheme = .ggml(fileType)
        let plan = try GGUFQuantizer.plan(.gguf(model), fileType: fileType, options: o, dequantizing: true)
        return try GGUFQuantizer.write(plan, to: output, options: o)
    }
}
