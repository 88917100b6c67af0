public import TensorCore
public import Formats
import Quantize

/// A bitsandbytes checkpoint (NF4/FP4 ± double quantization, LLM.int8) → a dense Hugging Face
/// model directory, every float tensor in one dtype and `quantization_config` removed.
///
/// Each quantized weight gets exactly the values bitsandbytes' own dequantization returns
/// (``BNBTensorValues``): `dequantize_4bit` rounds to the weight's recorded dtype, so an NF4
/// weight saved from bf16 dequantizes to bf16 values (also when written as f32); int8 weights
/// dequantize to float32 `CB * SCB / 127`. Those values are then cast to the output dtype
/// (round to nearest even). Plain float tensors are cast the same way; other tensors are copied.
/// Tokenizer files and generation_config.json are copied unchanged.
public enum BNBDequantizer {
    /// Dequantizes `input` into a new model directory at `output`.
    /// - Parameters:
    ///   - outType: f32, f16 or bf16; nil keeps the model's dtype (config.json `dtype`, else the
    ///     first 4-bit weight's recorded dtype, else f32).
    ///   - options: `threads` and `force` are used.
    /// - Throws: ``PathError``/``Failure`` (`.usage`) when the input has no bitsandbytes weights,
    ///   ``BNBFormatError`` for a malformed layout, ``OutputError`` for the output.
    public static func dequantize(_ input: ModelInput, to output: String, outType: DType?, options: QuantizeOptions) throws -> QuantizeReport {
        if let outType, !outType.isConvertibleFloat {
            throw Failure(.usage, "the output dtype must be f32, f16 or bf16 (got \(outType.rawValue))")
        }
        let directory = try BNBInput.directory(input)
        let source = CheckpointTensorSource(directory.weights)
        let layout = try BNBCheckpointLayout(source: source, config: directory.config)
        if let other = layout.otherQuantMethod {
            throw PathError(path: directory.path(of: "config.json"),
                            Failure(.unsupported, "the model is quantized with \(other); wconv reads only bitsandbytes-quantized models"))
        }
        guard layout.isQuantized else {
            throw PathError(path: directory.path, Failure(.usage,
                "no bitsandbytes-quantized weights to dequantize; use `wconv convert` or `wconv quantize` for dense models"))
        }
        let configDType = try directory.config.torchDType.flatMap { $0.isConvertibleFloat ? $0 : nil }
        let dtype = outType ?? configDType ?? layout.fourBitWeights.first?.state.dtype ?? .f32

        // One output tensor per logical tensor, in input order.
        var specs: [SafetensorsTensorSpec] = []
        var groups: [String: BNBTensorGroup] = [:]
        for group in layout.groups {
            let outDType: DType
            switch group {
            case .plain(let e):
                guard case .dense(let d) = e.encoding else {
                    throw PathError(path: e.file, ConvertError.unsupportedDType(tensor: e.name, dtype: e.encoding.description))
                }
                outDType = d.isConvertibleFloat ? dtype : d
            case .fourBit, .int8:
                outDType = dtype
            }
            specs.append(SafetensorsTensorSpec(name: group.name, dtype: outDType, shape: group.shape))
            groups[group.name] = group
        }
        let plan = try SafetensorsShardPlan(specs, maxShardSize: BNBWriteLayout.defaultMaxShardSize,
                                            metadata: Provenance.safetensorsMetadata(options.provenance))

        let out = try AtomicOutput.directory(at: output, force: options.force)
        try BNBInput.writeText(BNBWriteLayout.configText(BNBWriteLayout.dequantizedConfig(directory.config.object, dtype: dtype)),
                               to: out.path(of: "config.json"))
        try BNBInput.copyCompanionFiles(of: directory, into: out)

        var report = QuantizeReport()
        let counter = ProgressCounter(options.progress, tensorCount: specs.count, bytesTotal: plan.totalSize)
        // Every output tensor is one input group, so the files are written front to back.
        let files = try plan.write(into: out.temporaryPath) { tensor, file in
            guard let group = groups[tensor.name] else { throw Failure(.internalError, "tensor \(tensor.name) was not planned") }
            if case .plain(let e) = group, tensor.dtype == e.encoding.denseType {
                try file.write(try source.bytes(of: e))
            } else if case .plain(let e) = group, case .dense(let d) = e.encoding {
                let bytes = try source.bytes(of: e)
                try file.withWritableBuffer(capacity: tensor.byteCount) { buffer in
                    DenseFloat.convert(bytes, from: d, into: buffer, as: tensor.dtype, count: e.elementCount)
                    return tensor.byteCount
                }
            } else {
                let values = try BNBTensorValues.load(group, from: source, threads: options.threads)
                guard values.count == tensor.elementCount else {
                    throw Failure(.internalError, "tensor \(tensor.name): \(values.count) values for shape \(tensor.shape)")
                }
                try file.withWritableBuffer(capacity: tensor.byteCount) { buffer in
                    values.withUnsafeBufferPointer { DenseFloat.encode($0, as: tensor.dtype, into: buffer) }
                    return tensor.byteCount
                }
            }
            report.add(type: tensor.dtype.rawValue, bytes: tensor.byteCount, parameters: tensor.elementCount)
            counter.wrote(tensor.name, bytes: tensor.byteCount)
        }
        // A changed input never becomes an output.
        try source.checkUnchanged()
        try out.commit()
        report.outputs = [output] + files.map { FileSystem.join(output, $0) }
        return report
    }
}
