public import Formats
public import TensorCore
import Quantize
import Synchronization

/// One tensor of a model input seen under its Hugging Face name, with what it takes to read it
/// as float32 rows in HF layout: the decoder for its element type and, for llama.cpp's
/// `attn_q`/`attn_k`, the row permutation that undoes the converter's reordering.
///
/// A "row" is the innermost dimension (HF input features, ggml `ne[0]`): quantized blocks never
/// cross rows, so any row range decodes on its own, and the permutation only moves whole rows.
public struct ModelTensor: Sendable, Hashable {
    /// The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
    public let name: String
    /// The tensor as the file stores it (GGUF name, type, shape).
    public let entry: TensorEntry
    /// Applied while reading: destination row `r` comes from source row `permutation.sourceRow(r)`.
    public let permutation: RowPermutation?
    /// Elements per row.
    public let rowLength: Int
    public let rowCount: Int
    /// Bytes per stored row.
    public let rowByteCount: Int

    /// Row-major shape, slowest dimension first (the same for every format after name mapping).
    public var shape: [Int] { entry.shape }
    public var elementCount: Int { rowCount * rowLength }
    /// The stored type, for reports (`F32`, `Q8_0`, `bf16`, …).
    public var typeName: String { entry.encoding.description }

    /// Checks that `entry` can be decoded and permuted, and computes its row layout.
    /// - Throws: ``ModelLoadError`` naming the tensor.
    public init(name: String, entry: TensorEntry, permutation: RowPermutation?) throws {
        self.name = name
        self.entry = entry
        self.permutation = permutation
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

    /// Whether elements of `encoding` decode to float32 (f32/f16/bf16 and every ggml type with
    /// a dequantizer).
    public static func canDecode(_ encoding: TensorEncoding) -> Bool {
        if let d = encoding.denseType { return d.isConvertibleFloat }
        if case .ggml(let g) = encoding { return GGMLQuantizer.supportsDequantize(g) }
        return false
    }

    /// Decodes rows `rows` (HF row numbers) of the tensor into `output` (`rows.count · rowLength`
    /// floats), splitting the rows over `threads` workers.
    /// - Parameter bytes: the tensor's stored bytes (from its ``TensorSource``).
    /// - Throws: ``ModelLoadError/badTensorLayout(name:reason:)`` if `bytes` or `output` is too
    ///   short, or what the dequantizer throws.
    public func decode(
        rows: Range<Int>, from bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>, threads: Int
    ) throws {
        guard rows.lowerBound >= 0, rows.upperBound <= rowCount, output.count >= rows.count * rowLength,
              bytes.count >= rowCount * rowByteCount else {
            throw ModelLoadError.badTensorLayout(name: entry.name, reason: "read of rows \(rows) does not fit the tensor")
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
    public func decodeAll(from bytes: UnsafeRawBufferPointer, threads: Int) throws -> [Float] {
        var values = [Float](repeating: 0, count: elementCount)
        try values.withUnsafeMutableBufferPointer { try decode(rows: 0 ..< rowCount, from: bytes, into: $0, threads: threads) }
        return values
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

    /// Tensors of an HF checkpoint: names as stored, nothing permuted.
    /// - Throws: ``ModelLoadError`` for a tensor that cannot be decoded (only when it is read
    ///   would be too late for a clear message; undecodable integer tensors are kept unmapped).
    public init(hf source: any TensorSource) throws {
        var tensors: [ModelTensor] = [], unmapped: [TensorEntry] = []
        for entry in source.entries {
            if ModelTensor.canDecode(entry.encoding) {
                tensors.append(try ModelTensor(name: entry.name, entry: entry, permutation: nil))
            } else {
                unmapped.append(entry)
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
