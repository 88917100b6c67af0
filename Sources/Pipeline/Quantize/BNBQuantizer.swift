public import TensorCore
public import Formats
import Quantize

/// Hugging Face model directory → the same directory quantized with bitsandbytes (NF4, FP4 or
/// LLM.int8), laid out byte for byte as transformers + bitsandbytes save it
/// (`from_pretrained(..., quantization_config=BitsAndBytesConfig(...))` then `save_pretrained`).
///
/// - Which tensors: the rule of ``BNBWriteLayout/linearStorage(name:shape:dtype:architecture:)`` (every
///   Linear weight inside `model.layers`; embeddings, norms, biases and `lm_head` are copied).
/// - Numbers: the Quantize module's bitsandbytes kernels (bit-exact with bitsandbytes 0.50.2 on
///   CPU). A 4-bit weight keeps its dtype in `quant_state` (bitsandbytes dequantizes to it); int8
///   weights go through float16 first, as `Int8Params` does.
/// - Files: `model.safetensors` (sharded past 50 GB, transformers 5's default), config.json with
///   `quantization_config` (and `dtype`), then the tokenizer files and generation_config.json
///   copied unchanged. The output appears atomically.
/// - Memory: one weight at a time. Its pieces are written straight to their planned offsets,
///   because the safetensors layout interleaves the pieces of all weights by dtype.
///
/// With double quantization the `quant_state` JSON records the float32 offset `mean(absmax)`,
/// and its printed length fixes the file layout; a first pass therefore computes every weight's
/// block absmax and offset (a read and a max, no quantization) before anything is written.
/// bitsandbytes takes that mean with `torch.mean`, whose float32 summation order can make it
/// differ from ours (sum in Double, round once) in the last bit on some tensors; such a weight
/// then differs in its offset, and possibly in a few absmax codes, while dequantizing to the same
/// values within one float32 ulp of the offset. On the test fixtures the offsets are identical.
public enum BNBQuantizer {
    /// What happens to one logical input tensor.
    enum Action {
        case copy(TensorEntry)
        case fourBit(source: BNBTensorGroup, weight: String, shape: [Int], dtype: DType)
        case int8(source: BNBTensorGroup, module: String, rows: Int, columns: Int)

        /// The tensor (or module) name progress reports.
        var name: String {
            switch self {
            case .copy(let e): e.name
            case .fourBit(_, let weight, _, _): weight
            case .int8(_, let module, _, _): module
            }
        }
    }

    /// Quantizes `input` into a new model directory at `output`.
    /// - Parameters:
    ///   - input: an HF model directory (or a safetensors file inside one) with f32/f16/bf16
    ///     weights; a bitsandbytes checkpoint only with `options.allowRequantize`.
    ///   - options: `scheme` must be `.bnb`; `blockSize`, `doubleQuant` and `computeDType` apply to
    ///     NF4/FP4; `allowNonFinite`, `allowRequantize`, `threads` and `force` to all.
    /// - Returns: per output type (`nf4`/`fp4`/`int8` and the dtypes of copied tensors): tensor
    ///   count, bytes on disk (all pieces) and parameters; warnings.
    /// - Throws: ``PathError``/``Failure`` for an unusable input, ``TranscodeError/nonFiniteValue(tensor:index:value:)``
    ///   for NaN/Inf weights, ``OutputError`` for an existing or unwritable output.
    public static func quantize(_ input: ModelInput, to output: String, options: QuantizeOptions) throws -> QuantizeReport {
        let plan = try plan(input, options: options)
        return try write(plan, to: output, options: options)
    }

    /// Everything decided before writing: the actions, double-quant offsets, file layout and config.
    struct Plan {
        let directory: HFModelDirectory
        let source: CheckpointTensorSource
        let fourBitType: BNB4BitType?
        let actions: [Action]
        let offsets: [String: Float]
        let shards: SafetensorsShardPlan
        let config: JSONObject
        let warnings: [String]
        /// Conv1D weights quantized transposed (``loadValues(_:source:transposed:threads:)``).
        let transposed: Set<String>
    }

    /// What ``quantize(_:to:options:)`` will write (the weights files), without writing anything.
    /// With double quantization every weight is read once for its block statistics, which fix
    /// the length of its quant_state JSON and so the layout.
    public static func outputPlan(_ input: ModelInput, options: QuantizeOptions) throws -> OutputPlan {
        let plan = try plan(input, options: options)
        // Stored name → the source's type and the weight it belongs to (nil for a copied tensor,
        // whose mapped bytes are written as they are).
        var origin: [String: (type: String, weight: String?)] = [:]
        var weightElements: [String: Int] = [:]
        let stored = plan.shards.shards.flatMap(\.layout.tensors)
        for action in plan.actions {
            switch action {
            case .copy(let e):
                origin[e.name] = (e.encoding.description, nil)
            case .fourBit(let group, let weight, let shape, _):
                let s = group.entries.count == 1 ? group.entries[0].encoding.description : "bnb"
                for t in stored where t.name.hasPrefix(weight) { origin[t.name] = (s, weight) }
                weightElements[weight] = elementCount(of: shape) ?? 0
            case .int8(let group, let module, let rows, let columns):
                let s = group.entries.count == 1 ? group.entries[0].encoding.description : "bnb"
                for t in stored where t.name.hasPrefix(module + ".") { origin[t.name] = (s, module) }
                weightElements[module] = rows * columns
            }
        }
        // A quantized weight holds its float32 values and all its output pieces at once.
        var working = weightElements.mapValues { $0 * 4 }
        var tensors: [OutputPlan.Tensor] = []
        for t in stored {
            let o = origin[t.name] ?? ("?", nil)
            tensors.append(OutputPlan.Tensor(name: t.name, sourceType: o.type, type: t.dtype.rawValue, shape: t.shape, byteCount: t.byteCount))
            if let w = o.weight { working[w, default: 0] += t.byteCount }
        }
        var peakInput = 0
        for action in plan.actions {
            switch action {
            case .copy(let e): peakInput = max(peakInput, e.byteCount)
            case .fourBit(let group, _, _, _), .int8(let group, _, _, _):
                peakInput = max(peakInput, group.entries.reduce(0) { $0 + $1.byteCount })
            }
        }
        return OutputPlan.safetensors(plan.shards, tensors: tensors, peak: working.values.max() ?? 0, peakInput: peakInput,
                                      warnings: plan.warnings)
    }

    static func plan(_ input: ModelInput, options: QuantizeOptions) throws -> Plan {
        guard case .bnb(let scheme) = options.scheme else {
            throw Failure(.usage, "BNBQuantizer writes bitsandbytes formats only (nf4, fp4, int8)")
        }
        let fourBitType: BNB4BitType? = scheme == .nf4 ? .nf4 : scheme == .fp4 ? .fp4 : nil
        if fourBitType != nil {
            do { try FourBit.validate(blockSize: options.blockSize) } catch { throw Failure(.usage, error.description) }
            guard options.computeDType.isConvertibleFloat else {
                throw Failure(.usage, "compute dtype must be float32, float16 or bfloat16 (got \(options.computeDType.rawValue))")
            }
        }
        let directory = try BNBInput.directory(input)
        let source = CheckpointTensorSource(directory.weights)
        let layout = try BNBCheckpointLayout(source: source, config: directory.config)
        if let other = layout.otherQuantMethod {
            throw PathError(path: directory.path(of: "config.json"),
                            Failure(.unsupported, "the model is quantized with \(other); wconv reads only bitsandbytes-quantized models"))
        }
        var report = QuantizeReport()
        let configDType = try directory.config.torchDType
        if layout.isQuantized {
            let was = layout.config?.summary ?? layout.groups.compactMap(\.quantizationSummary).first ?? "bitsandbytes"
            guard options.allowRequantize else {
                throw PathError(path: directory.path, Failure(.badValue,
                    "the model is already quantized (\(was)); pass --allow-requantize to dequantize it and quantize again"))
            }
            report.warnings.append("requantizing: the input was already quantized (\(was)); its weights were dequantized as bitsandbytes does, then quantized again, which adds a second rounding error")
        }

        // Plan every logical tensor.
        var actions: [Action] = []
        var transposed = Set<String>()
        let architecture = try withPath(directory.path(of: "config.json")) { try directory.config.architecture }
        for group in layout.groups {
            var shape = group.shape
            if case .plain(let e) = group {
                guard case .dense(let d) = e.encoding else { throw PathError(path: e.file, ConvertError.unsupportedDType(tensor: e.name, dtype: e.encoding.description)) }
                switch BNBWriteLayout.linearStorage(name: e.name, shape: e.shape, dtype: d, architecture: architecture) {
                case nil:
                    actions.append(.copy(e))
                    continue
                case .linear:
                    break
                case .conv1D:
                    // transformers quantizes Conv1D's [in, out] weight transposed: [out, in].
                    shape = [shape[1], shape[0]]
                    transposed.insert(e.name)
                }
            }
            // A Linear weight, or an already quantized one (which was a Linear weight).
            if fourBitType != nil {
                actions.append(.fourBit(source: group, weight: group.name, shape: shape, dtype: originalDType(of: group, configDType: configDType)))
            } else {
                guard shape.count == 2 else {
                    throw PathError(path: group.entries[0].file, Failure(.unsupported, "tensor \(group.name): int8 needs a 2-D weight, this one has shape \(shape)"))
                }
                actions.append(.int8(source: group, module: BNBWriteLayout.moduleName(ofWeight: group.name), rows: shape[0], columns: shape[1]))
            }
        }
        guard actions.contains(where: { if case .copy = $0 { false } else { true } }) else {
            throw PathError(path: directory.path, Failure(.unsupported,
                "no tensor to quantize: bitsandbytes quantizes the 2-D .weight tensors of the blocks' Linear (and GPT-2 Conv1D) layers, and this model has none"))
        }

        // First pass (double quantization only): the offsets decide the JSON lengths.
        var offsets: [String: Float] = [:]
        if fourBitType != nil, options.doubleQuant {
            for case .fourBit(let group, let weight, _, _) in actions {
                let values = try loadValues(group, source: source, transposed: transposed, threads: options.threads)
                for e in group.entries { source.releasePages(of: e) }
                if !options.allowNonFinite { try checkFinite(values, tensor: weight, file: group.entries[0].file) }
                let absmax = values.withUnsafeBufferPointer { blockAbsmax($0, blockSize: options.blockSize) }
                offsets[weight] = absmax.withUnsafeBufferPointer { DoubleQuantizedAbsmax.mean($0) }
            }
        }

        // The output's tensors, in state-dict order (that order decides the shards).
        var specs: [SafetensorsTensorSpec] = []
        for action in actions {
            switch action {
            case .copy(let e):
                guard case .dense(let d) = e.encoding else { continue }
                specs.append(SafetensorsTensorSpec(name: e.name, dtype: d, shape: e.shape))
            case .fourBit(_, let weight, let shape, let dtype):
                let kind: FourBit.Kind = fourBitType == .fp4 ? .fp4 : .nf4
                let json = BNB4BitTensor.quantStateJSON(kind: kind, blockSize: options.blockSize, dtype: dtype, shape: shape,
                                                        nestedOffset: options.doubleQuant ? offsets[weight] : nil)
                specs += BNBWriteLayout.fourBitSpecs(weight: weight, shape: shape, type: fourBitType ?? .nf4, blockSize: options.blockSize,
                                                     doubleQuant: options.doubleQuant, quantStateByteCount: json.utf8.count)
            case .int8(_, let module, let rows, let columns):
                specs += BNBWriteLayout.int8Specs(module: module, rows: rows, columns: columns)
            }
        }
        let plan = try SafetensorsShardPlan(specs, maxShardSize: BNBWriteLayout.defaultMaxShardSize,
                                            metadata: Provenance.safetensorsMetadata(options.provenance))

        // config.json: the input's, with quantization_config and dtype.
        let quantization = fourBitType.map { BNBQuantizationConfig.fourBit($0, doubleQuant: options.doubleQuant, computeDType: options.computeDType) }
            ?? BNBQuantizationConfig.int8()
        let weightDType = configDType.flatMap { $0.isConvertibleFloat ? $0 : nil } ?? dominantDType(actions) ?? .f32
        let config = BNBWriteLayout.quantizedConfig(directory.config.object, quantization: quantization, dtype: weightDType)

        return Plan(directory: directory, source: source, fourBitType: fourBitType, actions: actions, offsets: offsets,
                    shards: plan, config: config, warnings: report.warnings, transposed: transposed)
    }

    static func write(_ plan: Plan, to output: String, options: QuantizeOptions) throws -> QuantizeReport {
        let (directory, source, fourBitType, actions, offsets) = (plan.directory, plan.source, plan.fourBitType, plan.actions, plan.offsets)
        var report = QuantizeReport()
        report.warnings = plan.warnings
        let out = try AtomicOutput.directory(at: output, force: options.force)
        try BNBInput.writeText(BNBWriteLayout.configText(plan.config), to: out.path(of: "config.json"))
        try BNBInput.copyCompanionFiles(of: directory, into: out)
        let files = try BNBShardFiles(plan: plan.shards, directory: out.temporaryPath)
        let counter = ProgressCounter(options.progress, tensorCount: actions.count, bytesTotal: plan.shards.totalSize)

        for action in actions {
            let before = report.byteCount
            switch action {
            case .copy(let e):
                let bytes = try source.bytes(of: e)
                try files.write(e.name, bytes)
                source.releasePages(of: e)
                report.add(type: e.encoding.description, bytes: e.byteCount, parameters: e.elementCount)
            case .fourBit(let group, let weight, let shape, let dtype):
                let kind: FourBit.Kind = fourBitType == .fp4 ? .fp4 : .nf4
                let values = try loadValues(group, source: source, transposed: plan.transposed, threads: options.threads)
                for e in group.entries { source.releasePages(of: e) }
                if !options.allowNonFinite { try checkFinite(values, tensor: weight, file: group.entries[0].file) }
                let tensor = try values.withUnsafeBufferPointer { x in
                    try BNB4BitTensor.quantize(x, shape: shape, dtype: dtype, kind: kind, blockSize: options.blockSize,
                                               doubleQuant: options.doubleQuant, threads: options.threads)
                }
                if options.doubleQuant, case .doubleQuantized(let dq) = tensor.absmax,
                   dq.offset.bitPattern != offsets[weight]?.bitPattern {
                    throw Failure(.internalError, "tensor \(weight): planned double-quant offset \(offsets[weight] ?? .nan) but the kernel computed \(dq.offset)")
                }
                var bytes = 0
                for piece in tensor.safetensorsEntries() {
                    try files.write(weight + piece.suffix, piece.bytes)
                    bytes += piece.bytes.count
                }
                report.add(type: kind.rawValue, bytes: bytes, parameters: values.count)
            case .int8(let group, let module, let rows, let columns):
                let values = try loadValues(group, source: source, transposed: plan.transposed, threads: options.threads)
                for e in group.entries { source.releasePages(of: e) }
                if !options.allowNonFinite { try checkInt8Range(values, tensor: group.name, file: group.entries[0].file) }
                var cb = [Int8](repeating: 0, count: rows * columns)
                var scb = [Float](repeating: 0, count: rows)
                try values.withUnsafeBufferPointer { w in
                    try cb.withUnsafeMutableBufferPointer { c in
                        try scb.withUnsafeMutableBufferPointer { s in
                            try Int8Rowwise.quantize(w, rows: rows, columns: columns, viaFloat16: true, cb: c, scb: s, threads: options.threads)
                        }
                    }
                }
                var bytes = 0
                for piece in try Int8Rowwise.safetensorsEntries(cb: cb, scb: scb, rows: rows, columns: columns) {
                    try files.write(module + piece.suffix, piece.bytes)
                    bytes += piece.bytes.count
                }
                report.add(type: "int8", bytes: bytes, parameters: values.count)
            }
            counter.wrote(action.name, bytes: report.byteCount - before)
        }
        try files.close()
        // A changed input never becomes an output.
        try source.checkUnchanged()
        try out.commit()
        report.outputs = [output] + files.fileNames.map { FileSystem.join(output, $0) }
        return report
    }

    /// A weight's values as float32, in the orientation transformers quantizes: Conv1D weights
    /// (names in `transposed`, stored `[in, out]`) transposed to `[out, in]`.
    static func loadValues(_ group: BNBTensorGroup, source: CheckpointTensorSource, transposed: Set<String>, threads: Int) throws -> [Float] {
        let values = try BNBTensorValues.load(group, from: source, threads: threads)
        guard transposed.contains(group.name), group.shape.count == 2 else { return values }
        let (rows, columns) = (group.shape[0], group.shape[1])
        var out = [Float](repeating: 0, count: values.count)
        for r in 0 ..< rows {
            for c in 0 ..< columns { out[c * rows + r] = values[r * columns + c] }
        }
        return out
    }

    /// The dtype a logical tensor had before quantization: the entry's dtype, the 4-bit state's
    /// recorded dtype, or for int8 (which records none) config.json's `dtype`, else float32.
    static func originalDType(of group: BNBTensorGroup, configDType: DType?) -> DType {
        switch group {
        case .plain(let e): e.encoding.denseType ?? .f32
        case .fourBit(let w): w.state.dtype
        case .int8: configDType.flatMap { $0.isConvertibleFloat ? $0 : nil } ?? .f32
        }
    }

    /// The float dtype holding the most parameters among the weights being quantized.
    static func dominantDType(_ actions: [Action]) -> DType? {
        var counts: [DType: Int] = [:]
        for case .fourBit(_, _, let shape, let dtype) in actions { counts[dtype, default: 0] += elementCount(of: shape) ?? 0 }
        for case .copy(let e) in actions where e.encoding.denseType?.isConvertibleFloat == true {
            counts[e.encoding.denseType!, default: 0] += e.elementCount
        }
        return counts.max { ($0.value, $1.key.alignmentRank) < ($1.value, $0.key.alignmentRank) }?.key
    }

    /// The absmax of every block as bitsandbytes' 4-bit kernel computes it (and so as
    /// ``FourBit/quantize(_:kind:blockSize:into:absmax:threads:)`` stores it): `max |x|` over the
    /// block, NaN if the block holds a NaN, and a short last block clamped to at least 1e-38.
    /// Used only to know the double-quant offset before quantizing; the quantizer checks that
    /// the kernel's offset is the same.
    static func blockAbsmax(_ x: UnsafeBufferPointer<Float>, blockSize: Int) -> [Float] {
        let blocks = (x.count + blockSize - 1) / blockSize
        var out = [Float](repeating: 0, count: blocks)
        for b in 0 ..< blocks {
            let start = b * blockSize
            let end = min(start + blockSize, x.count)
            var m: Float = 0
            var sawNaN = false
            for i in start ..< end {
                let a = abs(x[i])
                if a.isNaN { sawNaN = true } else if a > m { m = a }
            }
            if sawNaN { m = .nan }
            if end - start < blockSize && m < 1e-38 { m = 1e-38 }
            out[b] = m
        }
        return out
    }

    /// The absmax the 4-bit kernel itself stores, for testing ``blockAbsmax(_:blockSize:)`` against it.
    static func kernelBlockAbsmax(_ x: [Float], blockSize: Int) throws -> [Float] {
        var packed = [UInt8](repeating: 0, count: FourBit.packedByteCount(elementCount: x.count))
        var absmax = [Float](repeating: 0, count: FourBit.blockCount(elementCount: x.count, blockSize: blockSize))
        try x.withUnsafeBufferPointer { v in
            try packed.withUnsafeMutableBytes { p in
                try absmax.withUnsafeMutableBufferPointer { a in try FourBit.quantize(v, kind: .nf4, blockSize: blockSize, into: p, absmax: a) }
            }
        }
        return absmax
    }

    static func checkFinite(_ values: [Float], tensor: String, file: String) throws {
        if let (index, value) = BNBTensorValues.firstNonFinite(values) {
            throw PathError(path: file, TranscodeError.nonFiniteValue(tensor: tensor, index: index, value: value))
        }
    }

    /// LLM.int8 stores weights through float16, where magnitudes from 65520 up become infinite and
    /// zero their whole row; refuse those as well as NaN/Inf.
    static func checkInt8Range(_ values: [Float], tensor: String, file: String) throws {
        try checkFinite(values, tensor: tensor, file: file)
        if let index = values.firstIndex(where: { abs($0) >= 65520 }) {
            throw PathError(path: file, Failure(.badValue,
                "tensor \(tensor): element \(index) is \(values[index]), beyond float16's range; bitsandbytes int8 stores weights through float16, so its row would quantize to zeros (pass --allow-non-finite to accept that)"))
        }
    }
}

/// Input and companion-file handling shared by the bitsandbytes quantizer and dequantizer.
enum BNBInput {
    /// Files copied unchanged next to the weights: tokenizer files, generation_config.json and
    /// transformers 5's separate chat template.
    static let companionFileNames = HFModelDirectory.tokenizerFileNames + ["chat_template.jinja"]

    /// The HF directory of an input: the directory itself, or the one holding a safetensors file.
    static func directory(_ input: ModelInput) throws -> HFModelDirectory {
        switch input {
        case .hf(let d):
            return d
        case .safetensors(let checkpoint):
            let configPath = FileSystem.join(checkpoint.directory, "config.json")
            guard FileSystem.exists(configPath) else {
                throw PathError(path: checkpoint.path, Failure(.unsupported,
                    "a bitsandbytes model needs its config.json; give the model directory (config.json + safetensors weights)"))
            }
            return try HFModelDirectory(path: checkpoint.path)
        case .gguf(let model):
            throw PathError(path: model.path, Failure(.unsupported,
                "bitsandbytes works on Hugging Face model directories; convert the GGUF first (wconv convert \(model.path) -o DIR), or use --type for GGUF quantization"))
        }
    }

    static func copyCompanionFiles(of directory: HFModelDirectory, into out: AtomicOutput) throws {
        for name in companionFileNames where FileSystem.exists(directory.path(of: name)) {
            let bytes = try FileSystem.readFile(directory.path(of: name))
            let file = try OutputFile(path: out.path(of: name))
            try file.write(bytes)
            try file.close()
        }
    }

    static func writeText(_ text: String, to path: String) throws {
        let file = try OutputFile(path: path)
        try file.write(Array(text.utf8))
        try file.close()
    }
}
