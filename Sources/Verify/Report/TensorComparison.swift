public import TensorCore
import Formats

/// How one tensor of the candidate compares with the reference's tensor of the same HF name,
/// after both were decoded to float32 in HF layout (names mapped, Q/K un-permuted).
public struct TensorComparison: Sendable, Hashable {
    /// HF name (the key both sides were matched by).
    public var name: String
    /// The name each file stores it under (GGUF or HF).
    public var referenceName: String
    public var candidateName: String
    /// Stored types (`bf16`, `F32`, `Q8_0`, …).
    public var referenceType: String
    public var candidateType: String
    /// HF shape (slowest dimension first).
    public var shape: [Int]
    /// nil when the shapes differ (see ``candidateShape``).
    public var difference: TensorDifference?
    /// The candidate's shape, when it differs from ``shape``.
    public var candidateShape: [Int]?
}

/// Per-tensor comparison of two checkpoints, streamed: each tensor is read in blocks of rows
/// from both memory-mapped inputs, compared, and its pages released before the next.
public enum TensorComparer {
    /// Rows per block aim at this many elements: the unit of work and of memory per worker.
    static let blockElements = 1 << 16

    /// The tensors both inputs have (matched by HF name; tensors without one, like
    /// `rope_freqs.weight`, by their stored name), compared in the reference's file order. An HF
    /// reference's tensors that a GGUF candidate holds transposed, regrouped or renamed are paired
    /// through the family's description and compared in the GGUF's layout (``Conversion``).
    /// - Parameters:
    ///   - progress: called after each tensor with (done, total).
    /// - Returns: the comparisons, and the names found on only one side.
    public static func compare(
        reference: LlamaCheckpoint, candidate: LlamaCheckpoint, threads: Int,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> (tensors: [TensorComparison], onlyInReference: [String], onlyInCandidate: [String]) {
        let refTensors = try comparable(reference), candTensors = try comparable(candidate)
        var candidateByName: [String: ModelTensor] = [:]
        for t in candTensors where candidateByName[t.name] == nil { candidateByName[t.name] = t }
        var refNames = Set(refTensors.map(\.name))
        let conversion = Conversion(reference: reference, candidate: candidate, candidateTensors: candTensors)
        var results: [TensorComparison] = []
        var onlyInReference: [String] = []
        let total = refTensors.count
        for (i, r) in refTensors.enumerated() {
            guard let c = candidateByName[r.name] else {
                if let conversion, let (c, transform) = conversion.counterpart(of: r.name) {
                    var comparison = TensorComparison(
                        name: r.name, referenceName: r.entry.name, candidateName: c.entry.name,
                        referenceType: r.typeName, candidateType: c.typeName, shape: r.shape)
                    let converted = try conversion.convert(r, transform)
                    if converted.count == c.elementCount {
                        comparison.difference = TensorDifference(
                            reference: converted, candidate: try c.decodeAll(from: candidate.source, threads: threads))
                    } else {
                        comparison.candidateShape = c.shape
                    }
                    r.releasePages(in: reference.source)
                    c.releasePages(in: candidate.source)
                    refNames.insert(c.name)
                    results.append(comparison)
                } else {
                    onlyInReference.append(r.name)
                }
                progress?(i + 1, total)
                continue
            }
            var comparison = TensorComparison(
                name: r.name, referenceName: r.entry.name, candidateName: c.entry.name,
                referenceType: r.typeName, candidateType: c.typeName, shape: r.shape)
            if r.shape == c.shape {
                comparison.difference = try difference(r, in: reference.source, c, in: candidate.source, threads: threads)
            } else {
                comparison.candidateShape = c.shape
            }
            results.append(comparison)
            progress?(i + 1, total)
        }
        let onlyInCandidate = candTensors.map(\.name).filter { !refNames.contains($0) }
        return (results, onlyInReference, onlyInCandidate)
    }

    /// How an HF reference's tensors became a GGUF candidate's when the names alone do not pair
    /// them: the family's ``ArchitectureDescription`` names the GGUF tensor the converter made of
    /// an HF tensor, with its transform. Conv1D weights are compared after transposing the
    /// reference, Falcon's fused QKV after regrouping it as q | k | v, and renamed tensors (Falcon
    /// 40B's `ln_mlp` → `attn_norm`) as they are. Splits (Baichuan's `W_pack`) stay unpaired.
    struct Conversion {
        let reference: LlamaCheckpoint
        let description: ArchitectureDescription
        let candidateByStoredName: [String: ModelTensor]

        /// nil unless REF is an HF directory and CAND a GGUF of a described family.
        init?(reference: LlamaCheckpoint, candidate: LlamaCheckpoint, candidateTensors: [ModelTensor]) {
            guard case .hf = reference.input, case .gguf(let model) = candidate.input,
                  let arch = model.metadata[GGUFKeys.General.architecture]?.stringValue,
                  let description = ArchitectureDescription.forGGUF(architecture: arch) else { return nil }
            self.reference = reference
            self.description = description
            var byStored: [String: ModelTensor] = [:]
            for t in candidateTensors where byStored[t.entry.name] == nil { byStored[t.entry.name] = t }
            candidateByStoredName = byStored
        }

        func counterpart(of hfName: String) -> (ModelTensor, TensorTransform?)? {
            guard let mapped = description.ggufTensors(forHF: hfName), mapped.count == 1, mapped[0].part == nil,
                  let c = candidateByStoredName[mapped[0].name] else { return nil }
            switch mapped[0].transform {
            case nil, .transpose, .regroupFusedQKV: return (c, mapped[0].transform)
            case .permute, .split: return nil
            }
        }

        /// The reference tensor in the candidate's layout.
        func convert(_ r: ModelTensor, _ transform: TensorTransform?) throws -> [Float] {
            let values = try withPath(reference.path) { try r.decodeAll(from: reference.source, threads: 1) }
            switch transform {
            case .transpose where r.shape.count == 2:
                return FamilyTensorLayout.transpose(values, rows: r.shape[0], columns: r.shape[1])
            case .regroupFusedQKV:
                let split = FamilyTensorLayout.split(r.name, reference.config, .grouped)
                var out: [Float] = []
                let width = r.rowLength
                for field in [\LlamaLayerWeights.query, \.key, \.value] {
                    for rows in split[field]?.rows ?? [] where rows.upperBound * width <= values.count {
                        out += values[rows.lowerBound * width ..< rows.upperBound * width]
                    }
                }
                return out
            default:
                return values
            }
        }
    }

    /// The tensors of a checkpoint that can be compared: every mapped tensor, plus the unmapped
    /// ones that decode to floats, under their stored names.
    static func comparable(_ checkpoint: LlamaCheckpoint) throws -> [ModelTensor] {
        var list = checkpoint.tensors.tensors
        for entry in checkpoint.tensors.unmapped where ModelTensor.canDecode(entry.encoding) {
            list.append(try withPath(checkpoint.path) { try ModelTensor(name: entry.name, entry: entry, permutation: nil) })
        }
        return list
    }

    /// Streams both tensors block by block. Blocks are fixed by the tensor's shape, and partial
    /// sums are merged in block order, so the result does not depend on the thread count.
    static func difference(
        _ r: ModelTensor, in referenceSource: any TensorSource,
        _ c: ModelTensor, in candidateSource: any TensorSource, threads: Int
    ) throws -> TensorDifference {
        r.prefetch(in: referenceSource)
        c.prefetch(in: candidateSource)
        defer {
            r.releasePages(in: referenceSource)
            c.releasePages(in: candidateSource)
        }
        let width = r.rowLength
        guard c.rowLength == width, c.rowCount == r.rowCount else {
            throw ModelLoadError.tensorShape(name: c.entry.name, expected: r.shape, actual: c.shape)
        }
        // bitsandbytes weights decode whole: compare them in one piece.
        guard r.supportsRowRanges && c.supportsRowRanges else {
            return TensorDifference(reference: try r.decodeAll(from: referenceSource, threads: threads),
                                    candidate: try c.decodeAll(from: candidateSource, threads: threads))
        }
        // Sources are read-only mappings that outlive the loop; workers only read them.
        nonisolated(unsafe) let (refSource, candSource) = (referenceSource, candidateSource)
        let rowsPerBlock = max(1, blockElements / max(1, width))
        let blockCount = (r.rowCount + rowsPerBlock - 1) / rowsPerBlock
        var partials = [DifferenceAccumulator](repeating: DifferenceAccumulator(), count: blockCount)
        var failure: (any Error)?
        partials.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let results = out
            let errors = ErrorBox()
            parallelChunks(count: blockCount, threads: threads) { blocks in
                var a = [Float](repeating: 0, count: rowsPerBlock * width)
                var b = [Float](repeating: 0, count: rowsPerBlock * width)
                for block in blocks {
                    let rows = block * rowsPerBlock ..< min(r.rowCount, (block + 1) * rowsPerBlock)
                    let n = rows.count * width
                    do {
                        try a.withUnsafeMutableBufferPointer { try r.decode(rows: rows, from: refSource, into: $0, threads: 1) }
                        try b.withUnsafeMutableBufferPointer { try c.decode(rows: rows, from: candSource, into: $0, threads: 1) }
                    } catch {
                        errors.record(error)
                        return
                    }
                    var acc = DifferenceAccumulator()
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            acc.add(reference: UnsafeBufferPointer(rebasing: pa[0 ..< n]), candidate: UnsafeBufferPointer(rebasing: pb[0 ..< n]))
                        }
                    }
                    results[block] = acc
                }
            }
            failure = errors.first
        }
        if let failure { throw failure }
        var total = DifferenceAccumulator()
        for p in partials { total.merge(p) }
        return total.result
    }
}

import Synchronization

/// The first error raised inside a parallel loop (whose body cannot throw).
final class ErrorBox: Sendable {
    private let stored = Mutex<(any Error)?>(nil)
    func record(_ error: any Error) { stored.withLock { if $0 == nil { $0 = error } } }
    var first: (any Error)? { stored.withLock { $0 } }
}
