public import Formats
public import TensorCore
import Pipeline
import Quantize
import Synchronization

/// One tensor of a model input seen under its Hugging Face name, with what it takes to read it
/// as float32 rows in HF layout: the decoder for its element type and, for llama.cpp's
/// `attn_q`/`attn_k`, the row permutation that undoes the converter's reordering.
///
/// A "row" is the innermost dimension (HF input features, ggml `ne[0]`): quantized blocks never
/// cross rows, so any row range decodes on its own, and the permutation only moves whole rows.
/// bitsandbytes weights are the exception: their blocks run across rows of the flattened
/// tensor, so they decode whole (``supportsRowRanges`` is false).
public struct ModelTensor: Sendable, Hashable {
    /// The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
    public let name: String
    /// The stored tensor (GGUF name, type, shape); for a bitsandbytes weight its packed data.
    public let entry: TensorEntry
    /// Applied while reading: destination row `r` comes from source row `permutation.sourceRow(r)`.
    public let permutation: RowPermutation?
    /// Row-major logical shape, slowest dimension first (the same for every format after
    /// name mapping; for bitsandbytes the original weight's shape).
    public let shape: [Int]
    /// Elements per row.
    public let rowLength: Int
    public let rowCount: Int
    /// Bytes per stored row (0 for bitsandbytes weights).
    public let rowByteCount: Int
    /// The stored type, for reports (`F32`, `Q8_0`, `bf16`, `NF4+DQ`, …).
    public let typeName: String
    /// A bitsandbytes weight, decoded whole through bitsandbytes' own dequantization.
    let bnbGroup: BNBTensorGroup?

    public var elementCount: Int { rowCount * rowLength }
    /// Whether any row range decodes on its own (everything but bitsandbytes weights).
    public var supportsRowRanges: Bool { bnbGroup == nil }
    /// Every stored piece (one entry, or a bitsandbytes weight's packed data, scales and state).
    public var entries: [TensorEntry] { bnbGroup?.entries ?? [entry] }

    /// Checks that `entry` can be decoded and permuted, and computes its row layout.
    /// - Throws: ``ModelLoadError`` naming the tensor.
    public init(name: String, entry: TensorEntry, permutation: RowPermutation?) throws {
        self.name = name
        self.entry = entry
        self.permutation = permutation
        self.shape = entry.shape
        self.typeName = entry.encoding.description
        self.bnbGroup = nil
        guard let count = TensorCore.elementCount(of: entry.shape) else {
            throw ModelLoadError.badTensorLayout(name: entry.name, reason: "shape \(entry.shape) overflows")
        }
        // A 1-D tensor is one row, except a permuted bias, whose rows are single elements.
        if entry.shape.count <= 1 {
            rowLength = permutation == nil ? max(count, 1) : 1
        } else {
            rowLength = entry.shape[entry.shape.count - 1]
        }
        rowCount = rowLength == 0 ? 0 : count / rowLength
        guard Self.canDecode(entry.encoding) else {
            throw ModelLoadError.undecodableType(name: entry.name, type: entry.encoding.description)
        }
        let bytes: Int?
        switch entry.encoding {
        case .dense(let d): bytes = d.byteCount(elementCount: rowLength)
        case .ggml(let g): bytes = g.rowByteCount(elementCount: rowLength)
        }
        guard let bytes else {
            throw ModelLoadError.badTensorLayout(
                name: entry.name, reason: "row length \(rowLength) is not a multiple of the \(entry.encoding) block size")
        }
        rowByteCount = bytes
        let (total, overflow) = rowCount.multipliedReportingOverflow(by: bytes)
        guard !overflow, total <= entry.byteCount else {
            throw ModelLoadError.badTensorLayout(
                name: entry.name, reason: "\(rowCount) rows of \(bytes) bytes do not fit its \(entry.byteCount) bytes")
        }
        if let permutation, !permutation.isValid(rowCount: rowCount) {
            let heads = switch permutation { case .toGGUF(let h), .toHF(let h): h }
            throw ModelLoadError.permutationDoesNotFit(name: entry.name, rows: rowCount, heads: heads)
        }
    }

    /// A bitsandbytes 4-bit or int8 weight (layout already validated by ``BNBCheckpointLayout``).
    /// - Throws: ``ModelLoadError/badTensorLayout(name:reason:)`` for a plain group (use
    ///   ``init(name:entry:permutation:)``) or an impossible shape.
    public init(bnb group: BNBTensorGroup) throws {
        let main: TensorEntry
        switch group {
        case .plain(let e):
            throw ModelLoadError.badTensorLayout(name: e.name, reason: "not a bitsandbytes weight")
        case .fourBit(let w):
            main = w.packed
            typeName = w.state.quantType.rawValue.uppercased() + (w.state.nested == nil ? "" : "+DQ")
        case .int8(let w):
            main = w.weight
            typeName = "INT8"
        }
        name = group.name
        entry = main
        permutation = nil
        shape = group.shape
        bnbGroup = group
        guard let count = TensorCore.elementCount(of: shape), !shape.isEmpty else {
            throw ModelLoadError.badTensorLayout(name: group.name, reason: "shape \(shape) is not a weight shape")
        }
        rowLength = max(1, shape[shape.count - 1])
        rowCount = count / rowLength
        rowByteCount = 0
    }

    /// Whether elements of `encoding` decode to float32 (f32/f16/bf16 and every ggml type with
    /// a dequantizer).
    public static func canDecode(_ encoding: TensorEncoding) -> Bool {
        if let d = encoding.denseType { return d.isConvertibleFloat }
        if case .ggml(let g) = encoding { return GGMLQuantizer.supportsDequantize(g) }
        return false
    }

    /// Decodes rows `rows` (HF row numbers) of the tensor into `output` (`rows.count · rowLength`
    /// floats), splitting the rows over `threads` workers. A bitsandbytes weight is decoded
    /// whole and the rows copied out.
    /// - Parameter source: the input holding the tensor.
    /// - Throws: ``ModelLoadError/badTensorLayout(name:reason:)`` if the range or `output` does
    ///   not fit, or what the dequantizer throws.
    public func decode(
        rows: Range<Int>, from source: any TensorSource, into output: UnsafeMutableBufferPointer<Float>, threads: Int
    ) throws {
        guard rows.lowerBound >= 0, rows.upperBound <= rowCount, output.count >= rows.count * rowLength else {
            throw ModelLoadError.badTensorLayout(name: entry.name, reason: "read of rows \(rows) does not fit the tensor")
        }
        if let bnbGroup {
            let values = try BNBTensorValues.load(bnbGroup, from: source, threads: threads)
            guard values.count == elementCount else {
                throw ModelLoadError.badTensorLayout(name: entry.name, reason: "decoded \(values.count) values, expected \(elementCount)")
            }
            _ = UnsafeMutableBufferPointer(rebasing: output[0 ..< rows.count * rowLength])
                .update(fromContentsOf: values[rows.lowerBound * rowLength ..< rows.upperBound * rowLength])
            return
        }
        let bytes = try source.bytes(of: entry)
        guard bytes.count >= rowCount * rowByteCount else {
            throw ModelLoadError.badTensorLayout(name: entry.name, reason: "\(bytes.count) bytes, \(rowCount * rowByteCount) needed")
        }
        let me = self
        let failure = Mutex<(any Error)?>(nil)
        nonisolated(unsafe) let (src, dst) = (bytes, output)
        let first = rows.lowerBound
        // About 64 Ki elements per chunk: enough work to amortise a dispatch.
        parallelChunks(count: rows.count, threads: threads, minimumChunk: max(1, 65536 / max(1, rowLength))) { part in
            do {
                for i in part {
                    let row = first + i
                    let from = me.permutation?.sourceRow(of: row, rowCount: me.rowCount) ?? row
                    try me.decodeRow(
                        UnsafeRawBufferPointer(rebasing: src[from * me.rowByteCount ..< (from + 1) * me.rowByteCount]),
                        into: UnsafeMutableBufferPointer(rebasing: dst[i * me.rowLength ..< (i + 1) * me.rowLength]))
                }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Decodes the whole tensor into a new array.
    public func decodeAll(from source: any TensorSource, threads: Int) throws -> [Float] {
        if let bnbGroup {
            return try BNBTensorValues.load(bnbGroup, from: source, threads: threads)
        }
        var values = [Float](repeating: 0, count: elementCount)
        try values.withUnsafeMutableBufferPointer { try decode(rows: 0 ..< rowCount, from: source, into: $0, threads: threads) }
        return values
    }

    /// Asks the kernel to read the tensor's pages ahead.
    public func prefetch(in source: any TensorSource) {
        for e in entries { source.prefetch(e) }
    }

    /// Drops the tensor's mapped pages from the resident set.
    public func releasePages(in source: any TensorSource) {
        for e in entries { source.releasePages(of: e) }
    }

    /// One stored row to float32.
    func decodeRow(_ bytes: UnsafeRawBufferPointer, into row: UnsafeMutableBufferPointer<Float>) throws {
        if let d = entry.encoding.denseType, d.isConvertibleFloat {
            DenseFloat.decode(bytes, dtype: d, into: row)
        } else if case .ggml(let g) = entry.encoding {
            try GGMLQuantizer.dequantize(bytes, type: g, count: row.count, into: row, threads: 1)
        } else {
            throw ModelLoadError.undecodableType(name: entry.name, type: entry.encoding.description)
        }
    }
}

/// A model input's tensors by Hugging Face name.
///
/// HF directories keep their names; GGUF names are mapped through the architecture's name table
/// (``ArchitectureDescription``) and `attn_q`/`attn_k` get the un-permutation with the model's
/// head counts. GGUF tensors without an HF counterpart (`rope_freqs.weight`, which becomes part
/// of the configuration) are kept in ``unmapped``.
public struct ModelTensorTable: Sendable {
    /// The mapped tensors in file order.
    public let tensors: [ModelTensor]
    /// Tensors that have no HF name.
    public let unmapped: [TensorEntry]
    private let index: [String: Int]

    /// Tensors of an HF checkpoint: names as stored, nothing permuted. bitsandbytes weights
    /// (4-bit with their quant_state, int8 with SCB) become one tensor each under their
    /// weight's name; entries that decode to nothing (integer buffers) are kept in ``unmapped``.
    /// - Parameter config: the model's config.json (its `quantization_config`).
    /// - Throws: ``ModelLoadError`` for an unsupported quantization method, ``PathError``
    ///   wrapping what the bitsandbytes layout check throws.
    public init(hf source: any TensorSource, config: HFConfig?) throws {
        let layout = try BNBCheckpointLayout(source: source, config: config)
        if let method = layout.otherQuantMethod {
            throw ModelLoadError.unsupportedQuantization(method)
        }
        var tensors: [ModelTensor] = [], unmapped: [TensorEntry] = []
        for group in layout.groups {
            switch group {
            case .plain(let entry):
                if ModelTensor.canDecode(entry.encoding) {
                    tensors.append(try ModelTensor(name: entry.name, entry: entry, permutation: nil))
                } else {
                    unmapped.append(entry)
                }
            case .fourBit, .int8:
                tensors.append(try ModelTensor(bnb: group))
            }
        }
        self.init(tensors: tensors, unmapped: unmapped)
    }

    /// Tensors of a GGUF model, mapped to HF names.
    /// - Parameters:
    ///   - architecture: the family's name table.
    ///   - headCount: `num_attention_heads`, for the `attn_q` un-permutation.
    ///   - kvHeadCount: `num_key_value_heads`, for `attn_k`.
    public init(gguf source: any TensorSource, architecture: ArchitectureDescription, headCount: Int, kvHeadCount: Int) throws {
        var tensors: [ModelTensor] = [], unmapped: [TensorEntry] = []
        for entry in source.entries {
            guard let (name, heads) = architecture.hfName(forGGUF: entry.name) else {
                unmapped.append(entry)
                continue
            }
            let permutation = heads.map { RowPermutation.toHF(heads: $0 == .queryHeads ? headCount : kvHeadCount) }
            tensors.append(try ModelTensor(name: name, entry: entry, permutation: permutation))
        }
        self.init(tensors: tensors, unmapped: unmapped)
    }

    init(tensors: [ModelTensor], unmapped: [TensorEntry]) {
        self.tensors = tensors
        self.unmapped = unmapped
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() where index[t.name] == nil { index[t.name] = i }
        self.index = index
    }

    /// The tensor with HF name `name`.
    public subscript(name: String) -> ModelTensor? { index[name].map { tensors[$0] } }

    /// The tensor named `name`, checked against the shape the configuration implies.
    /// - Throws: ``VerifyError/missingTensor(_:)`` or ``ModelLoadError/tensorShape(name:expected:actual:)``.
    public func require(_ name: String, shape: [Int]) throws -> ModelTensor {
        guard let t = self[name] else { throw VerifyError.missingTensor(name) }
        guard t.shape == shape else { throw ModelLoadError.tensorShape(name: t.entry.name, expected: shape, actual: t.shape) }
        return t
    }
}
