public import TensorCore
public import Formats

/// Hugging Face safetensors → safetensors with another float dtype, for any architecture (no
/// ``ArchitectureDescription`` needed): what `AutoModel.from_pretrained(dir, dtype=…)
/// .save_pretrained(out)` does to the weights, without the model class.
///
/// F32, F16 and BF16 tensors are cast to the output dtype (round to nearest even, as torch's
/// `.to()`); every other dtype (integers, bool, F64, FP8) is copied byte for byte. Tensors keep
/// the input's order, which decides the sharding (past `--split-max-size`, default 5 GB as
/// transformers); each file's layout is the safetensors writer's. config.json gets `dtype` (and
/// loses `torch_dtype`) as transformers 5 writes it; tokenizer and generation files are copied.
public enum HFToHF {
    struct PlannedTensor {
        let entry: TensorEntry
        let dtype: DType
    }

    struct TensorPlan {
        let source: CheckpointTensorSource
        let planned: [PlannedTensor]
        let shards: SafetensorsShardPlan
    }

    /// The output dtype: --outtype, which must name a float type (auto has no meaning here).
    static func dtype(_ options: ConvertOptions) throws -> DType {
        guard let d = options.outType.dtype else {
            throw Failure(.usage, "HF → HF converts between float dtypes: give --outtype f32, f16 or bf16")
        }
        return d
    }

    /// - Parameter fileOutput: the output path when a single file is written (it names the plan's file).
    static func planTensors(_ checkpoint: SafetensorsCheckpoint, fileOutput: String?, options: ConvertOptions) throws -> TensorPlan {
        let target = try dtype(options)
        let source = CheckpointTensorSource(checkpoint)
        let planned = source.entries.map { e in
            // F64 is kept: wconv's float kernels go through f32, and a cast would lose precision silently.
            let d = e.encoding.denseType.flatMap { $0.isConvertibleFloat ? target : $0 } ?? .f32
            return PlannedTensor(entry: e, dtype: d)
        }
        let specs = planned.map { SafetensorsTensorSpec(name: $0.entry.name, dtype: $0.dtype, shape: $0.entry.shape) }
        let shards = try SafetensorsShardPlan(specs, maxShardSize: options.splitMaxBytes ?? GGUFToHF.defaultMaxShardSize,
                                              metadata: Provenance.safetensorsMetadata(options.provenance),
                                              baseName: fileOutput.map { baseName(ofFile: $0) } ?? "model")
        return TensorPlan(source: source, planned: planned, shards: shards)
    }

    static func baseName(ofFile path: String) -> String {
        let name = FileSystem.baseName(path)
        return name.hasSuffix(".safetensors") ? String(name.dropLast(".safetensors".count)) : name
    }

    static func checkpoint(_ input: ModelInput) throws -> (SafetensorsCheckpoint, HFModelDirectory?) {
        switch input {
        case .hf(let d): (d.weights, d)
        case .safetensors(let c): (c, nil)
        case .gguf(let g): throw PathError(path: g.path, Failure(.usage, "HF → HF takes a model directory or a safetensors file"))
        }
    }

    /// What ``convert(_:to:options:)`` will write (the weights files), without writing anything.
    public static func outputPlan(_ input: ModelInput, output: String, options: ConvertOptions) throws -> OutputPlan {
        let (weights, directory) = try checkpoint(input)
        let p = try planTensors(weights, fileOutput: directory == nil ? output : nil, options: options)
        var peak = 0
        let tensors = p.planned.map { t in
            let bytes = t.dtype.byteCount(elementCount: t.entry.elementCount) ?? 0
            let rowLength = t.entry.shape.last ?? 1
            let rows = max(1, t.entry.elementCount / max(1, rowLength))
            peak = max(peak, OutputPlan.streamingBytes(rowLength: rowLength, rowBytes: bytes / rows, threads: options.threads))
            return OutputPlan.Tensor(name: t.entry.name, sourceType: t.entry.encoding.description, type: t.dtype.rawValue,
                                     shape: t.entry.shape, byteCount: bytes)
        }
        return OutputPlan.safetensors(p.shards, tensors: tensors, peak: peak,
                                      peakInput: p.planned.map(\.entry.byteCount).max() ?? 0)
    }

    /// Converts a model directory into a new one at `output`, or a bare safetensors file (one
    /// shard, no index) into the file `output`.
    public static func convert(_ input: ModelInput, to output: String, options: ConvertOptions) throws -> ConvertReport {
        let (weights, directory) = try checkpoint(input)
        let p = try planTensors(weights, fileOutput: directory == nil ? output : nil, options: options)
        let target = try dtype(options)
        let out: AtomicOutput
        let weightsDirectory: String
        if let directory {
            out = try AtomicOutput.directory(at: output, force: options.force)
            weightsDirectory = out.temporaryPath
            var config = directory.config.object
            // transformers 5 reads `torch_dtype` as `dtype` and saves only `dtype`.
            config.remove("torch_dtype")
            config["dtype"] = .string(target.torchName ?? "float32")
            try BNBInput.writeText(BNBWriteLayout.configText(config), to: out.path(of: "config.json"))
            try BNBInput.copyCompanionFiles(of: directory, into: out)
        } else {
            guard !p.shards.isSharded else {
                throw Failure(.usage, "a single safetensors file converts to a single file; give the model directory to shard the output")
            }
            out = try AtomicOutput.file(at: output, force: options.force)
            weightsDirectory = FileSystem.directoryName(out.temporaryPath)
        }

        let byName = Dictionary(uniqueKeysWithValues: p.planned.map { ($0.entry.name, $0) })
        let counter = ProgressCounter(options.progress, tensorCount: p.planned.count, bytesTotal: p.shards.totalSize)
        let tensorData: (SafetensorsTensor, OutputFile) throws -> Void = { tensor, file in
            guard let t = byName[tensor.name] else { throw Failure(.internalError, "tensor \(tensor.name) was not planned") }
            let bytes = try p.source.bytes(of: t.entry)
            if t.entry.encoding == .dense(t.dtype) {
                try file.write(bytes)
                p.source.releasePages(of: bytes)
            } else {
                let transcoder = try withPath(t.entry.file) {
                    try RowTranscoder(tensorName: t.entry.name, shape: t.entry.shape, source: t.entry.encoding,
                                      target: .dense(t.dtype), threads: options.threads)
                }
                try transcoder.run(input: bytes, consumed: p.source.releasePages(of:)) { capacity, fill in
                    try file.withWritableBuffer(capacity: capacity, fill)
                }
            }
            counter.wrote(tensor.name, bytes: tensor.byteCount)
        }
        var files: [String]
        if directory != nil {
            files = try p.shards.write(into: weightsDirectory, tensorData: tensorData)
        } else {
            try SafetensorsWriter.write(p.shards.shards[0].layout, toPath: out.temporaryPath, tensorData: tensorData)
            files = []
        }
        // A changed input never becomes an output.
        try p.source.checkUnchanged()
        try out.commit()

        var report = ConvertReport()
        report.outputs = [output] + files.map { FileSystem.join(output, $0) }
        report.tensorCount = p.planned.count
        for t in p.planned {
            report.byteCount += t.dtype.byteCount(elementCount: t.entry.elementCount) ?? 0
            report.parameterCount += t.entry.elementCount
            report.typeCounts[t.dtype.rawValue, default: 0] += 1
        }
        return report
    }
}
