public import TensorCore
public import Formats
public import Pipeline
import Quantize
import Verify

/// Options of ``LoRAMerge/merge(base:adapter:output:options:progress:)``.
public struct MergeOptions: Sendable {
    /// Which weights the adapter's delta is added to.
    public enum Target: String, Sendable, Hashable, CaseIterable {
        /// The base as stored, dequantized: the exact weights the adapter was trained against
        /// (QLoRA trains on the dequantized NF4 weights), so the merged model equals base + adapter.
        case dequantized
        /// The unquantized original of a quantized base (``MergeOptions/originalBase``): the
        /// quantization error of the base is gone, but the adapter was fitted to the quantized
        /// weights, so the result is not exactly the model that was trained.
        case original
    }

    /// Quantize the merged weights in the same pass.
    public enum Requantize: Sendable, Hashable {
        /// bitsandbytes NF4 / FP4 / LLM.int8 (Hugging Face directory output).
        case bitsAndBytes(BNBScheme)
        /// A llama-quantize file type (GGUF output), single-type or a mix (`Q4_K_M`): every
        /// tensor gets the type `wconv quantize --type` (and llama-quantize) would give it in the
        /// merged model, so the output equals merging to a dense GGUF of ``MergeOptions/outType``
        /// and quantizing that.
        case ggml(GGMLFileType)
    }

    public var mergeInto: Target = .dequantized
    /// The unquantized model the quantized base was made from (for ``Target/original``).
    public var originalBase: String?
    /// Dtype of the output's float tensors (the 4-bit state's dtype with NF4); nil: the base's,
    /// or f32 with a llama.cpp ``Requantize/ggml(_:)`` type (the lossless intermediate).
    public var outType: DType?
    public var requantize: Requantize?
    /// NF4/FP4 block size and double quantization.
    public var blockSize = 64
    public var doubleQuant = true
    /// Run the forward pass on the merged model and on base + adapter afterwards.
    public var verify = true
    /// Text for the verification (default: a short English paragraph).
    public var verifyText: String?
    public var threads = activeProcessorCount
    public var force = false
    /// Recorded inside the output (GGUF `general.wconv.*` keys, safetensors `__metadata__`);
    /// nil writes none.
    public var provenance: Provenance?

    public init() {}
}

/// What a merge wrote and measured.
public struct MergeReport: Sendable {
    /// One adapted tensor.
    public struct TensorStat: Sendable, Hashable {
        /// HF name of the weight.
        public var name: String
        /// Decoder layer, nil outside the layers (embeddings, lm_head).
        public var layer: Int?
        /// ‖scaling · B·A‖ (Frobenius).
        public var deltaNorm: Double
        /// ‖W‖ of the merged weight.
        public var weightNorm: Double
        /// ‖W − dequant(quant(W))‖: what the output encoding (the float dtype's rounding, or the
        /// requantization) changes in the merged weight.
        public var outputError: Double
        /// The encoding the tensor was written in (`f16`, `nf4`, `int8`, `Q4_K`, `Q6_K`, …): with
        /// a llama-quantize mix, the type the rules chose for this tensor.
        public var outputType: String
        /// With ``MergeOptions/Target/original`` and a quantized base: ‖original − dequant(base)‖.
        public var baseQuantizationError: Double?

        /// The output encoding's error relative to the adapter's change.
        public var errorToDelta: Double { deltaNorm > 0 ? outputError / deltaNorm : 0 }
    }

    /// The forward-pass comparison of the merged model with base + adapter.
    public struct Verification: Sendable, Hashable {
        public var tokenCount: Int
        /// Mean and largest KL divergence (base + adapter ‖ merged) over the positions, in nats.
        public var meanKLD: Double
        public var maxKLD: Double
        /// Fraction of positions with the same top-1 token.
        public var top1Agreement: Double
        /// Largest |Δ logit|.
        public var maxLogitDifference: Float
    }

    public var outputs: [String] = []
    public var tensors: [TensorStat] = []
    public var verification: Verification?
    /// Output bytes and parameters per output type (`f16`, `nf4`, `Q4_K`, …).
    public var types: [String: (tensors: Int, bytes: Int)] = [:]
    public var mergedModules = 0
    public var warnings: [String] = []
    public var byteCount: Int { types.values.reduce(0) { $0 + $1.bytes } }

    /// Tensors whose output encoding changes them by at least half as much as the adapter does.
    public var washedOut: [TensorStat] { tensors.filter { $0.deltaNorm > 0 && $0.outputError >= 0.5 * $0.deltaNorm } }
}

/// Why a merge is refused.
public enum MergeError: ClassifiedError, Hashable {
    case needsOriginalBase
    case originalIsQuantized(String)
    case shapeMismatch(tensor: String, base: [Int], original: [Int])
    case outputKind(String)
    case missingInOriginal(String)

    public var kind: ErrorKind {
        switch self {
        case .needsOriginalBase, .outputKind: .usage
        case .originalIsQuantized: .usage
        case .shapeMismatch, .missingInOriginal: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .needsOriginalBase: "--merge-into original needs --original-base DIR (the unquantized model the base was quantized from)"
        case .originalIsQuantized(let p): "\(p): the original base must hold unquantized (f32/f16/bf16) weights"
        case .shapeMismatch(let t, let b, let o): "tensor \(t) is \(b) in the base but \(o) in the original base: not the same model"
        case .outputKind(let m): m
        case .missingInOriginal(let t): "tensor \(t) of the base is missing from the original base"
        }
    }
}

/// Merging a PEFT LoRA adapter into a base model: `W' = W + scaling · B·A` in float32, tensor by
/// tensor, written as a dense model (HF directory or GGUF) or requantized in the same pass.
public enum LoRAMerge {
    /// Progress: (tensors done, tensor count, what is happening).
    public typealias Progress = (Int, Int, String) -> Void

    /// Merges `adapter` into `base` and writes `output` (a `.gguf` path → GGUF, else an HF
    /// directory), atomically.
    /// - Throws: ``MergeError``, ``AdapterError`` (modules that do not fit the base), reader and
    ///   writer errors as ``PathError``s.
    public static func merge(base basePath: String, adapter adapterPath: String, output: String,
                             options: MergeOptions, progress: Progress? = nil) throws -> MergeReport {
        let (job, base) = try prepare(base: basePath, adapter: adapterPath, output: output, options: options, progress: progress)
        let source = job.source
        var report = MergeReport()
        if output.hasSuffix(".gguf") {
            if case .hf(let directory) = source.input, !job.writesGGUFDirectly {
                try job.writeGGUFThroughHF(directory, to: output, report: &report)
            } else {
                try job.writeGGUF(to: output, report: &report)
            }
        } else {
            guard case .hf(let directory) = source.input else {
                throw MergeError.outputKind("a GGUF base merges into GGUF: give an output ending in .gguf (then `wconv convert` makes an HF directory)")
            }
            if case .bitsAndBytes(let scheme)? = options.requantize {
                try job.writeBitsAndBytes(directory, scheme: scheme, to: output, report: &report)
            } else {
                try job.writeDense(directory, to: output, report: &report)
            }
        }
        return try finish(job, base: base, output: output, report: report)
    }

    /// What ``merge(base:adapter:output:options:progress:)`` will write (the weights files),
    /// without writing anything. With bitsandbytes double quantization every adapted weight is
    /// merged once for its block statistics, which fix the layout.
    public static func outputPlan(base basePath: String, adapter adapterPath: String, output: String,
                                  options: MergeOptions) throws -> OutputPlan {
        let (job, _) = try prepare(base: basePath, adapter: adapterPath, output: output, options: options, progress: nil)
        if output.hasSuffix(".gguf") {
            if case .hf(let directory) = job.source.input, !job.writesGGUFDirectly {
                return try job.planGGUFThroughHF(directory, output: output)
            }
            return try job.planGGUF(output: output).outputPlan
        }
        guard case .hf = job.source.input else {
            throw MergeError.outputKind("a GGUF base merges into GGUF: give an output ending in .gguf (then `wconv convert` makes an HF directory)")
        }
        var scheme: BNBScheme?
        if case .bitsAndBytes(let s)? = options.requantize { scheme = s }
        return try job.planSafetensors(scheme: scheme).outputPlan
    }

    /// Opens the inputs, matches the adapter to the base and checks the options.
    static func prepare(base basePath: String, adapter adapterPath: String, output: String,
                        options: MergeOptions, progress: Progress?) throws -> (Job, MergeInput) {
        let base = try MergeInput(path: basePath)
        let adapter = try PEFTAdapter(directory: adapterPath)

        // The weights the delta goes into.
        var source = base
        if options.mergeInto == .original {
            if let path = options.originalBase {
                let original = try MergeInput(path: path)
                guard !original.isQuantized else { throw MergeError.originalIsQuantized(path) }
                for t in base.tensors where t.isMapped {
                    guard let o = original.tensor(named: t.name) else { throw PathError(path: path, MergeError.missingInOriginal(t.name)) }
                    guard o.shape == t.shape else { throw PathError(path: path, MergeError.shapeMismatch(tensor: t.name, base: t.shape, original: o.shape)) }
                }
                source = original
            } else if base.isQuantized {
                throw MergeError.needsOriginalBase
            }
        } else if options.originalBase != nil {
            throw MergeError.outputKind("--original-base is used only with --merge-into original")
        }
        let modules = try match(adapter, to: source)

        let toGGUF = output.hasSuffix(".gguf")
        switch options.requantize {
        case .bitsAndBytes? where toGGUF:
            throw MergeError.outputKind("--requantize nf4/fp4/int8 writes a Hugging Face directory; give an output that does not end in .gguf")
        case .ggml? where !toGGUF:
            throw MergeError.outputKind("--requantize with a llama.cpp type writes GGUF; give an output ending in .gguf")
        default: break
        }
        let outType: DType
        if let t = options.outType {
            outType = t
        } else if case .ggml? = options.requantize {
            outType = .f32
        } else {
            outType = try defaultOutType(source)
        }
        guard outType.isConvertibleFloat else { throw MergeError.outputKind("--outtype must be f32, f16 or bf16") }

        let job = Job(source: source, reference: base, adapter: adapter, modules: modules, options: options, outType: outType,
                      progress: progress)
        return (job, base)
    }

    /// The report's common part and the verification, once the output is written.
    static func finish(_ job: Job, base: MergeInput, output: String, report: MergeReport) throws -> MergeReport {
        var report = report
        let (source, adapter, modules, options, progress) = (job.source, job.adapter, job.modules, job.options, job.progress)
        report.mergedModules = modules.count
        if options.mergeInto == .dequantized && base.isQuantized {
            report.warnings.append("merged into the dequantized base: the model equals base + adapter exactly, and keeps the base's quantization error in dense weights (--merge-into original --original-base DIR adds the delta to the unquantized weights instead)")
        }

        if options.verify && base.config == nil {
            // The families Verify runs through their own tensor layouts.
            progress?(0, 0, "verifying")
            // Opened by Verify directly: MergeInput reads no GGUF of these families.
            let merged = try ModelInput.open(path: output)
            let tokenizerSources = [base] + (source !== base ? [source] : [])
            do {
                report.verification = try MergeVerification.compareFamily(reference: base, adapter: adapter, merged: merged,
                                                                          text: options.verifyText, tokenizerFrom: tokenizerSources,
                                                                          threads: options.threads)
                if output.hasSuffix(".gguf"), base.architecture?.ggufName == "baichuan", base.config == nil {
                    report.warnings.append("Baichuan 2's GGUF keeps the output head as stored and llama.cpp does not normalize its rows (NormHead), so the merged GGUF is compared with llama.cpp's semantics, not the Hugging Face model's: a large KLD here is that difference, not the merge")
                }
            } catch let error as Failure where error.kind == .unsupported {
                report.warnings.append("not verified by a forward pass: \(error.message) (the merged weights are base + delta as PEFT's merge_and_unload computes them)")
            }
        } else if options.verify {
            progress?(0, 0, "verifying")
            let merged = try MergeInput(path: output)
            // The text is tokenized with the first tokenizer found: base, output, original base.
            let tokenizerSources = [base, merged] + (source !== base ? [source] : [])
            report.verification = try MergeVerification.compare(reference: base, adapter: adapter, merged: merged,
                                                                 text: options.verifyText, tokenizerFrom: tokenizerSources,
                                                                 threads: options.threads)
        }
        return report
    }

    /// The adapter's modules by the base weight they change, checked against the base's shapes.
    static func match(_ adapter: PEFTAdapter, to input: MergeInput) throws -> [String: LoRAModule] {
        var out: [String: LoRAModule] = [:]
        for stored in adapter.modules {
            guard let t = input.tensor(named: stored.baseWeightName) else {
                throw PathError(path: adapter.directory, AdapterError.moduleNotInBase(module: stored.name, reason: "the base has no \(stored.baseWeightName)"))
            }
            // GPT-2's Conv1D weights are [in, out]: PEFT transposes their delta (fan_in_fan_out).
            // bitsandbytes checkpoints hold them as transformers' Linear4bit/8bit replacements,
            // transposed to [out, in], where the delta is a Linear's.
            var isBitsAndBytes = false
            if case .bitsAndBytes = t.storage { isBitsAndBytes = true }
            let m = input.loraTargets?.isConv1D(module: stored.name) == true && !isBitsAndBytes ? stored.asConv1D : stored
            let expected = m.baseShape
            guard t.shape == expected else {
                throw PathError(path: adapter.directory, AdapterError.moduleNotInBase(
                    module: m.name, reason: "\(m.baseWeightName) is \(t.shape), the adapter's delta is \(expected)"))
            }
            out[m.baseWeightName] = m
        }
        return out
    }

    /// The base's float dtype: config.json's dtype, a 4-bit weight's recorded dtype, or the
    /// type of a GGUF's matrices (f16 for quantized GGUF matrices).
    static func defaultOutType(_ input: MergeInput) throws -> DType {
        if case .hf(let d) = input.input {
            if let t = try? d.config.torchDType, t.isConvertibleFloat { return t }
            if let w = input.bitsAndBytes?.fourBitWeights.first { return w.state.dtype }
        }
        for t in input.tensors where t.shape.count == 2 {
            switch t.storage {
            case .dense(let d) where d.isConvertibleFloat: return d
            case .ggml(let g): if let d = g.denseEquivalent, d.isConvertibleFloat { return d } else { return .f16 }
            default: continue
            }
        }
        return .f16
    }

    /// Everything one merge needs while writing.
    struct Job {
        let source: MergeInput
        /// The base as given (for the base-quantization error in `original` mode).
        let reference: MergeInput
        let adapter: PEFTAdapter
        let modules: [String: LoRAModule]
        let options: MergeOptions
        let outType: DType
        let progress: Progress?

        var threads: Int { options.threads }

        /// The merged values of `t` (delta added when adapted) and its stat.
        func mergedValues(_ t: MergeInput.Tensor) throws -> (values: [Float], module: LoRAModule?, deltaNorm: Double) {
            var values = try source.values(of: t, threads: threads)
            guard let m = modules[t.name] else { return (values, nil, 0) }
            let mats = try adapter.matrices(of: m)
            values.withUnsafeMutableBufferPointer { LoRADelta.add(m, matrices: mats, to: $0) }
            return (values, m, LoRADelta.norm(m, matrices: mats))
        }

        /// Records the stat of an adapted tensor: `decoded` is what the output will read back.
        func stat(_ t: MergeInput.Tensor, merged: [Float], decoded: [Float], deltaNorm: Double, type: String) throws
            -> MergeReport.TensorStat
        {
            var weight = 0.0, error = 0.0
            for i in merged.indices {
                weight += Double(merged[i]) * Double(merged[i])
                let d = Double(merged[i]) - Double(decoded[i])
                error += d * d
            }
            var baseError: Double? = nil
            if options.mergeInto == .original, reference !== source, let q = reference.tensor(named: t.name), q.storage.isQuantized {
                let original = try source.values(of: t, threads: threads)
                let dequantized = try reference.values(of: q, threads: threads)
                var s = 0.0
                for i in original.indices { let d = Double(original[i]) - Double(dequantized[i]); s += d * d }
                baseError = s.squareRoot()
            }
            return MergeReport.TensorStat(name: t.name, layer: PEFTAdapter.layerIndex(ofModule: t.name), deltaNorm: deltaNorm,
                                          weightNorm: weight.squareRoot(), outputError: error.squareRoot(), outputType: type,
                                          baseQuantizationError: baseError)
        }

        // MARK: HF directory, dense

        /// The safetensors layout of an HF output, dense (`scheme` nil) or bitsandbytes.
        struct SafetensorsPlan {
            let shards: SafetensorsShardPlan
            /// Double-quant offsets (mean absmax) by weight name.
            let offsets: [String: Float]
            let outputPlan: OutputPlan
        }

        /// The largest stored size of one input tensor (the weights the delta goes into), for
        /// ``OutputPlan/peakInputBytes``; a bitsandbytes weight counts as one byte per value.
        func peakInputBytes() -> Int {
            source.tensors.map { t in
                switch t.storage {
                case .dense(let d): d.byteCount(elementCount: t.elementCount) ?? 0
                case .ggml(let g): GGUFTensorDescriptor.byteCount(dimensions: t.shape.isEmpty ? [1] : t.shape.reversed(), type: g) ?? 0
                case .bitsAndBytes: t.elementCount
                }
            }.max() ?? 0
        }

        /// Whether `t` becomes a bitsandbytes weight when requantizing.
        func isQuantizedTarget(_ t: MergeInput.Tensor) -> Bool {
            if case .bitsAndBytes = t.storage { return true }
            guard case .dense(let d) = t.storage else { return false }
            return BNBWriteLayout.isQuantizedLinear(name: t.name, shape: t.shape, dtype: d)
        }

        func planSafetensors(scheme: BNBScheme?) throws -> SafetensorsPlan {
            let fourBit: BNB4BitType? = scheme == .nf4 ? .nf4 : scheme == .fp4 ? .fp4 : nil
            let kind: FourBit.Kind = scheme == .fp4 ? .fp4 : .nf4
            if scheme != nil && scheme != .int8 {
                do { try FourBit.validate(blockSize: options.blockSize) } catch { throw Failure(.usage, error.description) }
            }
            // Double quantization records mean(absmax) in the quant-state JSON, whose length fixes
            // the layout: a first pass computes it from the merged values.
            var offsets: [String: Float] = [:]
            if fourBit != nil && options.doubleQuant {
                for t in source.tensors where isQuantizedTarget(t) {
                    progress?(0, source.tensors.count, "planning \(t.name)")
                    let values = try mergedValues(t).values
                    let absmax = values.withUnsafeBufferPointer { Self.blockAbsmax($0, blockSize: options.blockSize) }
                    offsets[t.name] = absmax.withUnsafeBufferPointer { DoubleQuantizedAbsmax.mean($0) }
                }
            }
            var specs: [SafetensorsTensorSpec] = []
            var origin: [String: (type: String, elements: Int)] = [:]
            for t in source.tensors {
                let first = specs.count
                if scheme != nil && isQuantizedTarget(t) {
                    if let fourBit {
                        let json = BNB4BitTensor.quantStateJSON(kind: kind, blockSize: options.blockSize, dtype: outType, shape: t.shape,
                                                                nestedOffset: options.doubleQuant ? offsets[t.name] : nil)
                        specs += BNBWriteLayout.fourBitSpecs(weight: t.name, shape: t.shape, type: fourBit, blockSize: options.blockSize,
                                                             doubleQuant: options.doubleQuant, quantStateByteCount: json.utf8.count)
                    } else {
                        guard t.shape.count == 2 else { throw Failure(.unsupported, "tensor \(t.name): int8 needs a 2-D weight") }
                        specs += BNBWriteLayout.int8Specs(module: BNBWriteLayout.moduleName(ofWeight: t.name), rows: t.shape[0], columns: t.shape[1])
                    }
                } else {
                    specs.append(SafetensorsTensorSpec(name: t.name, dtype: t.isFloat ? outType : (t.storage.denseDType ?? .u8), shape: t.shape))
                }
                // The merged float32 values, and for an adapted weight their decoded copy for the comparison.
                let floats = t.isFloat ? (elementCount(of: t.shape) ?? 0) * (modules[t.name] == nil ? 1 : 2) : 0
                for s in specs[first...] { origin[s.name] = (t.storage.description, floats) }
            }
            let shards = try SafetensorsShardPlan(specs, maxShardSize: BNBWriteLayout.defaultMaxShardSize,
                                                  metadata: Provenance.safetensorsMetadata(options.provenance))
            var peak = 0
            var tensors: [OutputPlan.Tensor] = []
            for shard in shards.shards {
                for t in shard.layout.tensors {
                    let o = origin[t.name] ?? ("?", 0)
                    tensors.append(OutputPlan.Tensor(name: t.name, sourceType: o.type, type: t.dtype.rawValue, shape: t.shape, byteCount: t.byteCount))
                    peak = max(peak, o.elements * 4 + t.byteCount)
                }
            }
            return SafetensorsPlan(shards: shards, offsets: offsets,
                                   outputPlan: OutputPlan.safetensors(shards, tensors: tensors, peak: peak, peakInput: peakInputBytes()))
        }

        func writeDense(_ directory: HFModelDirectory, to output: String, report: inout MergeReport) throws {
            let plan = try planSafetensors(scheme: nil).shards
            let out = try AtomicOutput.directory(at: output, force: options.force)
            do {
                try writeText(BNBWriteLayout.configText(BNBWriteLayout.dequantizedConfig(directory.config.object, dtype: outType)),
                              to: out.path(of: "config.json"))
                try copyCompanionFiles(of: directory, into: out)
                let files = try BNBShardFiles(plan: plan, directory: out.temporaryPath)
                for (i, t) in source.tensors.enumerated() {
                    progress?(i, source.tensors.count, t.name)
                    guard t.isFloat else {
                        let bytes = try source.storedBytes(of: t)
                        try files.write(t.name, bytes)
                        report.add(type: t.storage.description, bytes: bytes.count)
                        continue
                    }
                    let (values, module, deltaNorm) = try mergedValues(t)
                    var bytes = [UInt8](repeating: 0, count: values.count * outType.bitCount / 8)
                    values.withUnsafeBufferPointer { v in bytes.withUnsafeMutableBytes { DenseFloat.encode(v, as: outType, into: $0) } }
                    try files.write(t.name, bytes)
                    report.add(type: outType.rawValue, bytes: bytes.count)
                    if module != nil {
                        var decoded = [Float](repeating: 0, count: values.count)
                        bytes.withUnsafeBytes { b in decoded.withUnsafeMutableBufferPointer { DenseFloat.decode(b, dtype: outType, into: $0) } }
                        report.tensors.append(try stat(t, merged: values, decoded: decoded, deltaNorm: deltaNorm, type: outType.rawValue))
                    }
                }
                try files.close()
                try out.commit()
                report.outputs = [output] + files.fileNames.map { FileSystem.join(output, $0) }
            } catch {
                out.abandon()
                throw error
            }
        }

        // MARK: HF directory, bitsandbytes

        func writeBitsAndBytes(_ directory: HFModelDirectory, scheme: BNBScheme, to output: String, report: inout MergeReport) throws {
            let fourBit: BNB4BitType? = scheme == .nf4 ? .nf4 : scheme == .fp4 ? .fp4 : nil
            let kind: FourBit.Kind = scheme == .fp4 ? .fp4 : .nf4
            let planned = try planSafetensors(scheme: scheme)
            let (plan, offsets) = (planned.shards, planned.offsets)
            func quantized(_ t: MergeInput.Tensor) -> Bool { isQuantizedTarget(t) }
            // Compute dtype float32: BitsAndBytesConfig's default.
            let quantization = fourBit.map { BNBQuantizationConfig.fourBit($0, doubleQuant: options.doubleQuant, computeDType: .f32) }
                ?? BNBQuantizationConfig.int8()
            let out = try AtomicOutput.directory(at: output, force: options.force)
            do {
                var config = directory.config.object
                config.remove("quantization_config")
                try writeText(BNBWriteLayout.configText(BNBWriteLayout.quantizedConfig(config, quantization: quantization, dtype: outType)),
                              to: out.path(of: "config.json"))
                try copyCompanionFiles(of: directory, into: out)
                let files = try BNBShardFiles(plan: plan, directory: out.temporaryPath)
                for (i, t) in source.tensors.enumerated() {
                    progress?(i, source.tensors.count, t.name)
                    guard t.isFloat else {
                        let bytes = try source.storedBytes(of: t)
                        try files.write(t.name, bytes)
                        report.add(type: t.storage.description, bytes: bytes.count)
                        continue
                    }
                    let (values, module, deltaNorm) = try mergedValues(t)
                    var decoded: [Float]
                    var written = outType.rawValue
                    if quantized(t), fourBit != nil {
                        written = kind.rawValue
                        let q = try values.withUnsafeBufferPointer { x in
                            try BNB4BitTensor.quantize(x, shape: t.shape, dtype: outType, kind: kind, blockSize: options.blockSize,
                                                       doubleQuant: options.doubleQuant, threads: threads)
                        }
                        if options.doubleQuant, case .doubleQuantized(let dq) = q.absmax, dq.offset.bitPattern != offsets[t.name]?.bitPattern {
                            throw Failure(.internalError, "tensor \(t.name): planned double-quant offset differs from the kernel's")
                        }
                        var bytes = 0
                        for piece in q.safetensorsEntries() {
                            try files.write(t.name + piece.suffix, piece.bytes)
                            bytes += piece.bytes.count
                        }
                        report.add(type: kind.rawValue, bytes: bytes)
                        decoded = module == nil ? [] : q.dequantized(threads: threads).map { Self.round($0, to: outType) }
                    } else if quantized(t) {
                        written = "int8"
                        let rows = t.shape[0], columns = t.shape[1]
                        var cb = [Int8](repeating: 0, count: rows * columns), scb = [Float](repeating: 0, count: rows)
                        try values.withUnsafeBufferPointer { w in
                            try cb.withUnsafeMutableBufferPointer { c in
                                try scb.withUnsafeMutableBufferPointer { s in
                                    try Int8Rowwise.quantize(w, rows: rows, columns: columns, viaFloat16: true, cb: c, scb: s, threads: threads)
                                }
                            }
                        }
                        var bytes = 0
                        let module8 = BNBWriteLayout.moduleName(ofWeight: t.name)
                        for piece in try Int8Rowwise.safetensorsEntries(cb: cb, scb: scb, rows: rows, columns: columns) {
                            try files.write(module8 + piece.suffix, piece.bytes)
                            bytes += piece.bytes.count
                        }
                        report.add(type: "int8", bytes: bytes)
                        decoded = [Float](repeating: 0, count: module == nil ? 0 : values.count)
                        if module != nil {
                            try cb.withUnsafeBufferPointer { c in
                                try scb.withUnsafeBufferPointer { s in
                                    try decoded.withUnsafeMutableBufferPointer { try Int8Rowwise.dequantize(cb: c, scb: s, rows: rows, columns: columns, into: $0) }
                                }
                            }
                        }
                    } else {
                        var bytes = [UInt8](repeating: 0, count: values.count * outType.bitCount / 8)
                        values.withUnsafeBufferPointer { v in bytes.withUnsafeMutableBytes { DenseFloat.encode(v, as: outType, into: $0) } }
                        try files.write(t.name, bytes)
                        report.add(type: outType.rawValue, bytes: bytes.count)
                        decoded = values.map { Self.round($0, to: outType) }
                    }
                    if module != nil { report.tensors.append(try stat(t, merged: values, decoded: decoded, deltaNorm: deltaNorm, type: written)) }
                }
                try files.close()
                try out.commit()
                report.outputs = [output] + files.fileNames.map { FileSystem.join(output, $0) }
            } catch {
                out.abandon()
                throw error
            }
        }

        // MARK: GGUF

        struct GGUFTensorPlan {
            let tensor: MergeInput.Tensor?
            let name: String
            let type: GGMLType
            /// ggml ne.
            let dimensions: [Int]
            /// HF → GGUF row order for attn_q / attn_k.
            let permutation: RowPermutation?
            let generated: [Float]?
        }

        /// A GGUF output decided: tensors, metadata, descriptors.
        struct GGUFMergePlan {
            let metadata: GGUFMetadata
            /// What is written, in file order: (planned tensor, type written, descriptor).
            let written: [(plan: GGUFTensorPlan, type: GGMLType, descriptor: GGUFTensorDescriptor)]
            let alignment: Int
            let warnings: [String]
            let outputPlan: OutputPlan
        }

        /// Whether the merged GGUF is planned here tensor by tensor (LLaMA's layout: LLaMA,
        /// Mistral, Qwen2, whose GGUF names map one to one); the other families' GGUFs regroup,
        /// split and transpose tensors, so they go through ``writeGGUFThroughHF(_:to:report:)``.
        var writesGGUFDirectly: Bool { source.architecture != nil && source.config != nil }

        /// A GGUF merge of a family whose converter changes tensor layouts (GPT-2, Falcon, MPT,
        /// phi, Baichuan, Qwen-7B): the merged HF directory is written to a scratch directory beside
        /// the output, then converted by Pipeline's ``HFToGGUF`` with `--outtype` the merge's type,
        /// so the file is exactly `qlora-merge -o DIR` followed by `wconv convert DIR -o out.gguf
        /// --outtype T`, DIR named as the base directory. The scratch directory (the merged model once more on disk) is removed
        /// afterwards, also when anything fails.
        func writeGGUFThroughHF(_ directory: HFModelDirectory, to output: String, report: inout MergeReport) throws {
            let convert = try throughHFConvertOptions()
            let scratch = try AtomicOutput.directory(at: output + ".merged-hf", force: true)
            defer { scratch.abandon() }
            // Named as the base: the converter takes `general.name` from the directory's name, and
            // the LLaMA-layout GGUF merge takes it from the base directory.
            let hfPath = FileSystem.join(scratch.temporaryPath, FileSystem.baseName(directory.path))
            var merged = MergeReport()
            try writeDense(directory, to: hfPath, report: &merged)
            progress?(0, 0, "converting to GGUF")
            let hf = try HFModelDirectory(path: hfPath)
            let written = try HFToGGUF.convert(hf, to: output, options: convert)
            report.tensors += merged.tensors
            report.outputs = written.outputs
            for t in try HFToGGUF.plan(hf, options: convert).tensors { report.add(type: t.type.name, bytes: t.byteCount) }
        }

        /// The conversion options of ``writeGGUFThroughHF(_:to:report:)``, after its refusals.
        func throughHFConvertOptions() throws -> ConvertOptions {
            guard source.architecture != nil else {
                throw MergeError.outputKind("llama.cpp has no architecture for \(source.familyName), so there is no GGUF to merge into; give an output directory")
            }
            if case .ggml? = options.requantize {
                throw MergeError.outputKind("--requantize with a llama.cpp type is done in the merge for LLaMA, Mistral and Qwen2 bases; merge \(source.familyName) to a .gguf without it, then `wconv quantize` that file")
            }
            var convert = ConvertOptions()
            convert.outType = outType == .f32 ? .f32 : outType == .bf16 ? .bf16 : .f16
            convert.force = options.force
            convert.threads = threads
            convert.provenance = options.provenance
            return convert
        }

        /// The dry-run plan of ``writeGGUFThroughHF(_:to:report:)``: the converter's plan of the
        /// base directory, whose merged copy has the same names, shapes and config (the types
        /// are fixed by `--outtype`). A bitsandbytes base's directory holds packed tensors, so it
        /// is not planned.
        func planGGUFThroughHF(_ directory: HFModelDirectory, output: String) throws -> OutputPlan {
            let convert = try throughHFConvertOptions()
            guard !source.isQuantized else {
                throw MergeError.outputKind("--dry-run does not plan the GGUF of a quantized \(source.familyName) base (it is converted from the merged directory once written); merge without --dry-run, or plan the merge to a directory")
            }
            return try HFToGGUF.outputPlan(directory, output: output, options: convert)
        }

        func planGGUF(output: String) throws -> GGUFMergePlan {
            guard let arch = source.architecture, let config = source.config else {
                throw Failure(.internalError, "\(source.familyName): a GGUF merge through the HF directory planned tensor by tensor")
            }
            let denseType: GGMLType = outType == .f32 ? .f32 : outType == .bf16 ? .bf16 : .f16
            // The dense merged GGUF first (the converter's types for `denseType`); a llama.cpp
            // requantization then re-plans it as `wconv quantize` would plan that file.
            func matrixType(_ name: String, shape: [Int]) -> GGMLType {
                // The converter's rule: 1-D tensors and norms F32, the rest the file type.
                if shape.count <= 1 || name.hasSuffix("_norm.weight") { return .f32 }
                return HFToGGUF.outputType(name: name, shape: shape, fileType: denseType)
            }
            func permutation(_ p: HeadPermutation?) -> RowPermutation? {
                p.map { .toGGUF(heads: $0 == .queryHeads ? config.headCount : config.kvHeadCount) }
            }
            var planned: [GGUFTensorPlan] = []
            var metadata: GGUFMetadata
            switch source.input {
            case .hf(let directory):
                // llama.cpp's converter order: shard files sorted, then names sorted (by code point).
                let ordered = source.tensors.filter { !arch.isIgnored(hfName: $0.name) }.sorted { a, b in
                    let fa = source.file(of: a), fb = source.file(of: b)
                    if fa != fb { return fa.utf8.lexicographicallyPrecedes(fb.utf8) }
                    return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
                }
                if let freqs = try HFToGGUF.llama3RopeFactors(directory.config) {
                    planned.append(GGUFTensorPlan(tensor: nil, name: "rope_freqs.weight", type: .f32, dimensions: [freqs.count],
                                                  permutation: nil, generated: freqs))
                }
                for t in ordered {
                    guard t.isFloat else {
                        throw PathError(path: source.file(of: t), ConvertError.unsupportedDType(tensor: t.name, dtype: t.storage.description))
                    }
                    guard let (name, heads) = arch.ggufName(forHF: t.name) else {
                        throw PathError(path: source.file(of: t), ConvertError.unmappedTensor(t.name))
                    }
                    planned.append(GGUFTensorPlan(tensor: t, name: name, type: matrixType(name, shape: t.shape),
                                                  dimensions: t.shape.isEmpty ? [1] : t.shape.reversed(), permutation: permutation(heads), generated: nil))
                }
                var convert = ConvertOptions()
                convert.threads = threads
                metadata = try LlamaGGUFMetadata.entries(directory: directory, architecture: arch, fileType: denseType,
                                                         tensors: planned.map { ($0.name, Array($0.dimensions.reversed())) }, options: convert)
            case .gguf(let model):
                metadata = model.metadata
                for key in [GGUFKeys.Split.number, GGUFKeys.Split.count, GGUFKeys.Split.tensorsCount] { metadata.remove(key) }
                for t in source.tensors {
                    let name = t.ggufName ?? t.name
                    let heads = t.isMapped ? arch.ggufName(forHF: t.name)?.permutation : nil
                    // GGUF-only tensors (rope_freqs) keep their type; the rest follow the converter's rule.
                    let type: GGMLType
                    if t.isMapped { type = matrixType(name, shape: t.shape) } else if case .ggml(let g) = t.storage { type = g } else { type = .f32 }
                    planned.append(GGUFTensorPlan(tensor: t, name: name, type: type, dimensions: t.shape.isEmpty ? [1] : t.shape.reversed(),
                                                  permutation: permutation(heads), generated: nil))
                }
            case .safetensors:
                throw Failure(.internalError, "safetensors input")
            }
            let denseFileType = denseType == .f32 ? LlamaFileType.allF32 : denseType == .bf16 ? LlamaFileType.mostlyBF16 : LlamaFileType.mostlyF16
            metadata.set(GGUFKeys.General.fileType, .uint32(UInt32(denseFileType)))

            // What is written, in file order: (planned tensor, type written, descriptor).
            var written: [(plan: GGUFTensorPlan, type: GGMLType, descriptor: GGUFTensorDescriptor)] = []
            var alignment = GGUFHeader.defaultAlignment
            var warnings: [String] = []
            if case .ggml(let fileType)? = options.requantize {
                var quantize = QuantizeOptions(scheme: .ggml(fileType))
                quantize.threads = threads
                // A GGUF base's own quantized tensors that the merge keeps (none in LLaMA
                // models) are decoded and encoded again like the rest.
                quantize.allowRequantize = true
                let layout = try GGUFQuantizer.layout(metadata: metadata, tensors: planned.map { ($0.name, $0.dimensions, $0.type) },
                                                      options: quantize, path: source.path)
                metadata = layout.metadata
                alignment = layout.alignment
                warnings += layout.warnings
                for t in layout.tensors {
                    written.append((planned[t.index], t.type, GGUFTensorDescriptor(name: t.name, dimensions: t.dimensions, type: t.type, byteCount: t.byteCount)))
                }
            } else {
                for p in planned {
                    guard let d = GGUFTensorDescriptor(name: p.name, dimensions: p.dimensions, type: p.type) else {
                        throw Failure(.unsupported, "tensor \(p.name): rows of \(p.dimensions.first ?? 0) cannot be written as \(p.type.name)")
                    }
                    written.append((p, p.type, d))
                }
            }
            for w in written where !RowCodec.canEncode(.ggml(w.type)) {
                throw Failure(.unsupported, "tensor \(w.plan.name): wconv cannot write \(w.type.name)")
            }
            // Last, so a requantization's re-planned metadata carries it too.
            if let provenance = options.provenance { metadata.setProvenance(provenance) }
            var peak = 0
            let tensors = written.map { w in
                let (p, d) = (w.plan, w.descriptor)
                let sourceType = p.tensor?.storage.description ?? GGMLType.f32.name
                let adapted = p.tensor.map { modules[$0.name] != nil } ?? false
                let elements = p.generated == nil ? (elementCount(of: p.dimensions) ?? 0) : 0
                // The merged float32 values, their rounded copy when requantizing from f16/bf16,
                // for an adapted weight their decoded copy for the comparison, and the output bytes.
                let copies = 1 + (adapted ? 1 : 0) + (w.type != p.type ? 1 : 0)
                peak = max(peak, elements * 4 * copies + d.byteCount)
                return OutputPlan.Tensor(name: p.name, sourceType: sourceType, type: w.type.name, shape: Array(p.dimensions.reversed()),
                                         byteCount: d.byteCount)
            }
            let descriptors = written.map(\.descriptor)
            let outputPlan = try withPath(output) {
                try OutputPlan.gguf(metadata: metadata, tensors: tensors, descriptors: descriptors, alignment: alignment,
                                    output: output, splitMaxBytes: nil, peak: peak, peakInput: peakInputBytes(), warnings: warnings)
            }
            return GGUFMergePlan(metadata: metadata, written: written, alignment: alignment, warnings: warnings, outputPlan: outputPlan)
        }

        func writeGGUF(to output: String, report: inout MergeReport) throws {
            let plan = try planGGUF(output: output)
            let (metadata, written) = (plan.metadata, plan.written)
            report.warnings += plan.warnings
            let descriptors = written.map(\.descriptor)
            let writer = try withPath(output) { try GGUFWriter(metadata: metadata, tensors: descriptors, alignment: plan.alignment) }
            var stats: [MergeReport.TensorStat] = []
            var totals: [String: (Int, Int)] = [:]
            try writer.write(toPath: output, force: options.force) { i, sink in
                let (p, type, descriptor) = written[i]
                progress?(i, written.count, p.name)
                totals[type.name, default: (0, 0)].0 += 1
                totals[type.name, default: (0, 0)].1 += descriptor.byteCount
                if let t = p.tensor, !t.isMapped, case .ggml(let g) = t.storage, g == type {
                    try sink.write(try source.storedBytes(of: t))
                    return
                }
                var values: [Float], module: LoRAModule? = nil, deltaNorm = 0.0
                if let generated = p.generated {
                    values = generated
                } else if let t = p.tensor {
                    (values, module, deltaNorm) = try mergedValues(t)
                } else {
                    return
                }
                let merged = values
                // Requantizing: the quantizer reads what the dense merged file would hold.
                if type != p.type, p.type == .f16 || p.type == .bf16 {
                    let dtype: DType = p.type == .f16 ? .f16 : .bf16
                    for k in values.indices { values[k] = Self.round(values[k], to: dtype) }
                }
                let rowLength = descriptor.dimensions[0]
                let rows = values.count / max(1, rowLength)
                let rowBytes = descriptor.byteCount / max(1, rows)
                let keepDecoded = module != nil
                var decoded = [Float](repeating: 0, count: keepDecoded ? values.count : 0)
                try sink.withWritableBuffer(capacity: descriptor.byteCount) { buffer in
                    values.withUnsafeBufferPointer { v in
                        decoded.withUnsafeMutableBufferPointer { dec in
                            nonisolated(unsafe) let (src, dst, back) = (v, buffer, dec)
                            let enc = TensorEncoding.ggml(type), perm = p.permutation
                            // Each worker encodes its own output rows (GGUF order); the decoded copy
                            // goes back to HF order for the error against the merged values.
                            parallelChunks(count: rows, threads: threads, minimumChunk: max(1, 16384 / max(1, rowLength))) { part in
                                for r in part {
                                    let from = perm?.sourceRow(of: r, rowCount: rows) ?? r
                                    let row = UnsafeBufferPointer(rebasing: src[from * rowLength ..< (from + 1) * rowLength])
                                    let out = UnsafeMutableRawBufferPointer(rebasing: dst[r * rowBytes ..< (r + 1) * rowBytes])
                                    RowCodec.encode(row, enc, into: out)
                                    if keepDecoded {
                                        RowCodec.decode(UnsafeRawBufferPointer(out), enc,
                                                        into: UnsafeMutableBufferPointer(rebasing: back[from * rowLength ..< (from + 1) * rowLength]))
                                    }
                                }
                            }
                        }
                    }
                    return descriptor.byteCount
                }
                if keepDecoded, let t = p.tensor { stats.append(try stat(t, merged: merged, decoded: decoded, deltaNorm: deltaNorm, type: type.name)) }
            }
            report.tensors = stats
            for (k, v) in totals { report.types[k] = (v.0, v.1) }
            report.outputs = [output]
        }

        // MARK: Helpers

        static func blockAbsmax(_ x: UnsafeBufferPointer<Float>, blockSize: Int) -> [Float] {
            var out: [Float] = []
            out.reserveCapacity((x.count + blockSize - 1) / blockSize)
            var start = 0
            while start < x.count {
                var m: Float = 0
                for i in start ..< min(x.count, start + blockSize) { m = max(m, abs(x[i])) }
                out.append(m)
                start += blockSize
            }
            return out
        }

        static func round(_ v: Float, to dtype: DType) -> Float {
            switch dtype {
            case .bf16: HalfFloat.float(bf16Bits: HalfFloat.bf16Bits(v))
            case .f16: Float(Float16(v))
            default: v
            }
        }

        func writeText(_ text: String, to path: String) throws {
            let file = try OutputFile(path: path)
            try file.write(Array(text.utf8))
            try file.close()
        }

        func copyCompanionFiles(of directory: HFModelDirectory, into out: AtomicOutput) throws {
            // qwen.tiktoken: Qwen-7B's tokenizer, which `wconv convert` reads from the merged directory.
            for name in HFModelDirectory.tokenizerFileNames + ["chat_template.jinja", "qwen.tiktoken"] where FileSystem.exists(directory.path(of: name)) {
                let bytes = try FileSystem.readFile(directory.path(of: name))
                let file = try OutputFile(path: out.path(of: name))
                try file.write(bytes)
                try file.close()
            }
        }
    }
}

extension MergeReport {
    mutating func add(type: String, bytes: Int) {
        let current = types[type] ?? (0, 0)
        types[type] = (current.tensors + 1, current.bytes + bytes)
    }
}

extension MergeInput.Storage {
    /// The dtype of a dense tensor.
    var denseDType: DType? {
        if case .dense(let d) = self { return d }
        return nil
    }
}
