public import TensorCore
public import Formats

/// Why a tensor cannot be transcoded.
public enum TranscodeError: ClassifiedError, Hashable {
    case unsupportedSource(tensor: String, encoding: TensorEncoding)
    case unsupportedTarget(tensor: String, encoding: TensorEncoding)
    case rowNotMultipleOfBlock(tensor: String, rowLength: Int, encoding: TensorEncoding)
    case permutationDoesNotFit(tensor: String, rows: Int, heads: Int)
    case nonFiniteValue(tensor: String, index: Int, value: Float)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedSource, .unsupportedTarget, .rowNotMultipleOfBlock: .unsupported
        case .permutationDoesNotFit: .malformedInput
        case .nonFiniteValue: .badValue
        }
    }

    public var description: String {
        switch self {
        case .unsupportedSource(let t, let e): "tensor \(t): cannot read elements of type \(e)"
        case .unsupportedTarget(let t, let e): "tensor \(t): cannot write elements of type \(e)"
        case .rowNotMultipleOfBlock(let t, let n, let e): "tensor \(t): row length \(n) is not a multiple of the \(e) block size"
        case .permutationDoesNotFit(let t, let rows, let heads): "tensor \(t): \(rows) rows cannot be split into \(heads) heads of even size"
        case .nonFiniteValue(let t, let i, let v): "tensor \(t): element \(i) is \(v) (NaN or infinite weights are refused; pass --allow-non-finite to keep them)"
        }
    }
}

/// Re-encodes a tensor row by row, optionally reordering rows, streaming into an output.
///
/// A "row" is the innermost dimension (ggml `ne[0]`, the HF input dimension): blocks of the
/// quantized types never cross rows, so rows are the unit every conversion can work in, and a
/// row permutation (the Q/K reordering) never needs more than the mapped input.
public struct RowTranscoder: Sendable {
    public let tensorName: String
    public let source: TensorEncoding
    public let target: TensorEncoding
    public let rowCount: Int
    public let rowLength: Int
    public let permutation: RowPermutation?
    public let threads: Int

    public let sourceRowBytes: Int
    public let targetRowBytes: Int

    /// - Parameters:
    ///   - shape: row-major shape of the tensor; rows are the last dimension, except that a
    ///     1-D tensor with a permutation is treated as rows of one element (a bias).
    public init(tensorName: String, shape: [Int], source: TensorEncoding, target: TensorEncoding,
                permutation: RowPermutation? = nil, threads: Int) throws {
        self.tensorName = tensorName
        self.source = source
        self.target = target
        self.permutation = permutation
        self.threads = max(1, threads)
        let count = elementCount(of: shape) ?? 0
        if shape.count <= 1 {
            rowLength = permutation == nil ? max(count, shape.isEmpty ? 1 : 0) : 1
        } else {
            rowLength = shape[shape.count - 1]
        }
        rowCount = rowLength == 0 ? 0 : count / rowLength
        // A ggml type wconv does not know has no block layout: say so, not that rows do not fit it.
        if case .ggml(let g) = source, !g.isKnown { throw TranscodeError.unsupportedSource(tensor: tensorName, encoding: source) }
        if case .ggml(let g) = target, !g.isKnown { throw TranscodeError.unsupportedTarget(tensor: tensorName, encoding: target) }
        guard let s = Self.rowBytes(source, rowLength) else {
            throw TranscodeError.rowNotMultipleOfBlock(tensor: tensorName, rowLength: rowLength, encoding: source)
        }
        guard let t = Self.rowBytes(target, rowLength) else {
            throw TranscodeError.rowNotMultipleOfBlock(tensor: tensorName, rowLength: rowLength, encoding: target)
        }
        sourceRowBytes = s
        targetRowBytes = t
        if source != target {
            guard RowCodec.canDecode(source) else { throw TranscodeError.unsupportedSource(tensor: tensorName, encoding: source) }
            guard RowCodec.canEncode(target) else { throw TranscodeError.unsupportedTarget(tensor: tensorName, encoding: target) }
        }
        if let permutation, !permutation.isValid(rowCount: rowCount) {
            let heads = switch permutation { case .toGGUF(let h), .toHF(let h): h }
            throw TranscodeError.permutationDoesNotFit(tensor: tensorName, rows: rowCount, heads: heads)
        }
    }

    static func rowBytes(_ encoding: TensorEncoding, _ n: Int) -> Int? {
        switch encoding {
        case .dense(let d): d.byteCount(elementCount: n)
        case .ggml(let g): g.rowByteCount(elementCount: n)
        }
    }

    public var targetByteCount: Int { rowCount * targetRowBytes }

    /// Transcodes `input` (the whole source tensor) and hands the output to `emit` in chunks of
    /// whole rows, each written into a buffer `emit` provides.
    /// - Parameter emit: called with a byte capacity and a closure that fills a buffer of that
    ///   size; typically `GGUFTensorSink.withWritableBuffer` or `OutputFile.withWritableBuffer`.
    ///   - consumed: called with each part of `input` once it has been read for the last time
    ///     (chunk by chunk when rows are in order; the whole input at the end otherwise), so a
    ///     mapped input can release its pages as the pass goes.
    public func run(
        input: UnsafeRawBufferPointer,
        consumed: ((UnsafeRawBufferPointer) -> Void)? = nil,
        emit: (Int, (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Void
    ) throws {
        precondition(input.count >= rowCount * sourceRowBytes, "RowTranscoder: input shorter than the tensor")
        // About 4 MiB of output per chunk: large enough to amortise dispatch, small enough to
        // stay in the output buffer without a copy.
        let rowsPerChunk = max(1, (1 << 22) / max(1, targetRowBytes))
        var start = 0
        while start < rowCount {
            let n = min(rowsPerChunk, rowCount - start)
            let chunkStart = start
            try emit(n * targetRowBytes) { buffer in
                transcodeRows(chunkStart ..< chunkStart + n, input: input, output: buffer)
                return n * targetRowBytes
            }
            if permutation == nil, let consumed {
                consumed(UnsafeRawBufferPointer(rebasing: input[chunkStart * sourceRowBytes ..< (chunkStart + n) * sourceRowBytes]))
            }
            start += n
        }
        if permutation != nil, let consumed { consumed(input) }
    }

    private func transcodeRows(_ rows: Range<Int>, input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) {
        let me = self
        nonisolated(unsafe) let out = output
        nonisolated(unsafe) let input = input
        let firstRow = rows.lowerBound
        parallelChunks(count: rows.count, threads: threads, minimumChunk: max(1, 65536 / max(1, rowLength))) { part in
            RowCodec.withScratch(count: me.rowLength) { scratch in
                for i in part {
                    let row = firstRow + i
                    let from = me.permutation.map { $0.sourceRow(of: row, rowCount: me.rowCount)! } ?? row
                    let src = UnsafeRawBufferPointer(rebasing: input[from * me.sourceRowBytes ..< (from + 1) * me.sourceRowBytes])
                    let dst = UnsafeMutableRawBufferPointer(rebasing: out[i * me.targetRowBytes ..< (i + 1) * me.targetRowBytes])
                    if me.source == me.target {
                        dst.copyMemory(from: src)
                    } else if me.source.denseType == .f32, Int(bitPattern: src.baseAddress) % MemoryLayout<Float>.alignment == 0 {
                        // f32 input needs no decode pass: encode straight from the mapped row.
                        RowCodec.encode(UnsafeBufferPointer(start: src.baseAddress!.assumingMemoryBound(to: Float.self), count: me.rowLength),
                                        me.target, into: dst)
                    } else {
                        RowCodec.decode(src, me.source, into: scratch)
                        RowCodec.encode(UnsafeBufferPointer(scratch), me.target, into: dst)
                    }
                }
            }
        }
    }
}

