public import TensorCore
public import Formats
import Quantize
import Synchronization

/// Why a tensor's values cannot be written.
public enum GGUFQuantizeValueError: ClassifiedError, Hashable {
    /// A NaN or infinite weight (refused unless `allowNonFinite`).
    case nonFinite(tensor: String, row: Int, column: Int, value: Float)
    /// A finite weight too large for the F16 output (it would become infinite).
    case overflowsF16(tensor: String, row: Int, column: Int, value: Float)

    public var kind: ErrorKind { .badValue }

    public var description: String {
        switch self {
        case let .nonFinite(t, r, c, v):
            "tensor \(t): element [\(r), \(c)] is \(v); NaN or infinite weights are refused (allow them with --allow-non-finite)"
        case let .overflowsF16(t, r, c, v):
            "tensor \(t): element [\(r), \(c)] = \(v) does not fit in F16 (it would become infinite; allow with --allow-non-finite)"
        }
    }
}

/// Re-encodes one tensor row by row for the quantizer: decode (any readable type) → optional
/// rounding through a 16-bit float (what an f16/bf16 intermediate GGUF would hold) → value
/// checks → encode, with an optional row permutation.
///
/// Rows are independent and every output row is written by exactly one worker, so the bytes do
/// not depend on the thread count. Work is done in slabs of whole rows (about 4 MiB of output),
/// each written straight into the output buffer, so memory stays bounded whatever the tensor size.
struct GGUFRowQuantizer: Sendable {
    let tensorName: String
    let rowLength: Int
    let rowCount: Int
    let source: TensorEncoding
    /// Round decoded values through this 16-bit type before encoding.
    let intermediate: DType?
    let target: GGMLType
    let permutation: RowPermutation?
    /// Refuse NaN/Inf (and F16 overflow) in the values being written.
    let checkValues: Bool
    let threads: Int
    let sourceRowBytes: Int
    let targetRowBytes: Int

    /// Rows of at most this many elements are grouped so each codec call gets ~16K elements
    /// (llama-quantize's chunk size is 32·512 elements).
    static let batchElements = 16384

    init(tensorName: String, dimensions: [Int], source: TensorEncoding, intermediate: DType?, target: GGMLType,
         permutation: RowPermutation?, checkValues: Bool, threads: Int) throws {
        self.tensorName = tensorName
        self.source = source
        self.intermediate = intermediate
        self.target = target
        self.permutation = permutation
        self.checkValues = checkValues
        self.threads = max(1, threads)
        let count = elementCount(of: dimensions) ?? 0
        // A permuted 1-D tensor (a q/k bias) is rows of one element, as in RowTranscoder.
        let n = GGUFTensorTypeRules.dimensionCount(dimensions) == 1 && permutation != nil ? 1 : (dimensions.first ?? 1)
        rowLength = n
        rowCount = n == 0 ? 0 : count / n
        guard let s = Self.rowBytes(source, n) else {
            throw TranscodeError.rowNotMultipleOfBlock(tensor: tensorName, rowLength: n, encoding: source)
        }
        guard let t = target.rowByteCount(elementCount: n) else {
            throw TranscodeError.rowNotMultipleOfBlock(tensor: tensorName, rowLength: n, encoding: .ggml(target))
        }
        sourceRowBytes = s
        targetRowBytes = t
        if !isCopy {
            guard RowCodec.canDecode(source) else { throw TranscodeError.unsupportedSource(tensor: tensorName, encoding: source) }
            guard Self.canEncode(target) else { throw TranscodeError.unsupportedTarget(tensor: tensorName, encoding: .ggml(target)) }
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

    static func canEncode(_ type: GGMLType) -> Bool {
        type.denseEquivalent?.isConvertibleFloat ?? GGMLQuantizer.supportsQuantize(type)
    }

    /// Whether the bytes go through unchanged.
    var isCopy: Bool { source.ggmlType == target && intermediate == nil && permutation == nil }

    var targetByteCount: Int { rowCount * targetRowBytes }

    /// Writes the tensor: `input` is its whole source data (checked to be long enough).
    /// - Parameters:
    ///   - consumed: called with each part of `input` once it has been read for the last time
    ///     (slab by slab when rows are in order, all of it at the end otherwise), so a mapped
    ///     input can drop those pages from the resident set.
    ///   - emit: provides an output buffer of the given capacity (a `GGUFTensorSink`).
    func run(input: UnsafeRawBufferPointer, consumed: ((UnsafeRawBufferPointer) -> Void)? = nil,
             emit: (Int, (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Void) throws {
        guard input.count >= rowCount * sourceRowBytes else {
            throw TranscodeError.unsupportedSource(tensor: tensorName, encoding: source)
        }
        let rowsPerSlab = max(1, (1 << 22) / max(1, targetRowBytes))
        var start = 0
        while start < rowCount {
            let n = min(rowsPerSlab, rowCount - start)
            let slab = start ..< start + n
            try emit(n * targetRowBytes) { buffer in
                if isCopy {
                    let bytes = UnsafeRawBufferPointer(rebasing: input[slab.lowerBound * sourceRowBytes ..< slab.upperBound * sourceRowBytes])
                    if checkValues, let d = target.denseEquivalent, d.isConvertibleFloat {
                        try checkFloats(bytes, dtype: d, firstRow: slab.lowerBound)
                    }
                    buffer.copyMemory(from: bytes)
                } else {
                    try transcode(slab, input: input, output: buffer)
                }
                return n * targetRowBytes
            }
            if permutation == nil, let consumed {
                consumed(UnsafeRawBufferPointer(rebasing: input[slab.lowerBound * sourceRowBytes ..< slab.upperBound * sourceRowBytes]))
            }
            start += n
        }
        if permutation != nil, let consumed { consumed(input) }
    }

    /// The first bad element of a slab: the lowest index wins, whichever worker found it.
    private struct Problem: Sendable {
        var index: Int
        var value: Float
        var overflow: Bool
    }

    private func transcode(_ rows: Range<Int>, input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
        let me = self
        nonisolated(unsafe) let input = input
        nonisolated(unsafe) let output = output
        let first = rows.lowerBound
        let batchRows = max(1, Self.batchElements / max(1, rowLength))
        let problem = Mutex<Problem?>(nil)
        let failure = Mutex<GGMLQuantizeError?>(nil)
        // f32 rows laid out in order are quantized where they lie (as llama-quantize does);
        // everything else is decoded into a scratch batch first.
        let direct = source.denseType == .f32 && intermediate == nil && permutation == nil
            && Int(bitPattern: input.baseAddress) % MemoryLayout<Float>.alignment == 0
        parallelChunks(count: rows.count, threads: threads, minimumChunk: batchRows) { part in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: direct ? 1 : max(1, min(batchRows, part.count) * me.rowLength)) { scratch in
                var r = part.lowerBound
                while r < part.upperBound {
                    let n = min(batchRows, part.upperBound - r)
                    do throws(GGMLQuantizeError) {
                        let values: UnsafeBufferPointer<Float>
                        if direct, let base = input.baseAddress {
                            let start = (base + (first + r) * me.sourceRowBytes).assumingMemoryBound(to: Float.self)
                            values = UnsafeBufferPointer(start: start, count: n * me.rowLength)
                        } else {
                            let buffer = UnsafeMutableBufferPointer(rebasing: scratch[0 ..< n * me.rowLength])
                            try me.decode(rows: first + r, count: n, input: input, into: buffer)
                            if let d = me.intermediate { Self.round(buffer, through: d) }
                            values = UnsafeBufferPointer(buffer)
                        }
                        if me.checkValues, let i = Self.firstOutOfRange(values, limit: me.magnitudeLimit) {
                            let p = Problem(index: (first + r) * me.rowLength + i, value: values[i], overflow: values[i].isFinite)
                            problem.withLock { if let q = $0, q.index <= p.index { return }; $0 = p }
                        }
                        let out = UnsafeMutableRawBufferPointer(rebasing: output[r * me.targetRowBytes ..< (r + n) * me.targetRowBytes])
                        try me.encode(values, into: out)
                    } catch {
                        failure.withLock { if $0 == nil { $0 = error } }
                    }
                    r += n
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        if let p = problem.withLock({ $0 }) { throw valueError(p) }
    }

    private func valueError(_ p: Problem) -> GGUFQuantizeValueError {
        let row = p.index / max(1, rowLength), column = p.index % max(1, rowLength)
        return p.overflow
            ? .overflowsF16(tensor: tensorName, row: row, column: column, value: p.value)
            : .nonFinite(tensor: tensorName, row: row, column: column, value: p.value)
    }

    /// Decodes `count` output rows starting at output row `row` (source rows via the permutation).
    private func decode(rows row: Int, count: Int, input: UnsafeRawBufferPointer,
                        into values: UnsafeMutableBufferPointer<Float>) throws(GGMLQuantizeError) {
        if permutation == nil {
            try decodeRows(UnsafeRawBufferPointer(rebasing: input[row * sourceRowBytes ..< (row + count) * sourceRowBytes]), into: values)
            return
        }
        for i in 0 ..< count {
            // Validated in init: the permutation fits rowCount, so sourceRow is never nil.
            let from = permutation?.sourceRow(of: row + i, rowCount: rowCount) ?? (row + i)
            try decodeRows(UnsafeRawBufferPointer(rebasing: input[from * sourceRowBytes ..< (from + 1) * sourceRowBytes]),
                           into: UnsafeMutableBufferPointer(rebasing: values[i * rowLength ..< (i + 1) * rowLength]))
        }
    }

    private func decodeRows(_ bytes: UnsafeRawBufferPointer, into values: UnsafeMutableBufferPointer<Float>) throws(GGMLQuantizeError) {
        switch source {
        case .dense(let d):
            DenseFloat.decode(bytes, dtype: d, into: values)
        case .ggml(let g):
            if let d = g.denseEquivalent {
                DenseFloat.decode(bytes, dtype: d, into: values)
            } else {
                try GGMLQuantizer.dequantize(bytes, type: g, count: values.count, into: values, threads: 1)
            }
        }
    }

    private func encode(_ values: UnsafeBufferPointer<Float>, into out: UnsafeMutableRawBufferPointer) throws(GGMLQuantizeError) {
        if let d = target.denseEquivalent {
            DenseFloat.encode(values, as: d, into: out)
        } else {
            try GGMLQuantizer.quantize(values, rowLength: rowLength, as: target, into: out, threads: 1)
        }
    }

    /// What a 16-bit intermediate file would hold: each value rounded to `dtype` and back.
    static func round(_ values: UnsafeMutableBufferPointer<Float>, through dtype: DType) {
        switch dtype {
        case .f16:
            for i in values.indices { values[i] = HalfFloat.float(f16Bits: HalfFloat.f16Bits(values[i])) }
        case .bf16:
            for i in values.indices { values[i] = HalfFloat.float(bf16Bits: HalfFloat.bf16Bits(values[i])) }
        default:
            break
        }
    }

    /// Bit pattern of the smallest magnitude refused: infinity (NaN lies above it), or for an F16
    /// target 65520, the smallest value that rounds to infinity in F16.
    var magnitudeLimit: UInt32 { target == .f16 ? Float(65520).bitPattern : Float.infinity.bitPattern }

    /// Index of the first value whose magnitude bits reach `limit` (positive floats order like
    /// their bit patterns), checked 16 at a time.
    static func firstOutOfRange(_ values: UnsafeBufferPointer<Float>, limit: UInt32) -> Int? {
        guard let base = values.baseAddress else { return nil }
        let raw = UnsafeRawPointer(base)
        let mask = SIMD16<UInt32>(repeating: 0x7FFF_FFFF), bound = SIMD16<UInt32>(repeating: limit)
        var i = 0
        while i + 16 <= values.count {
            let bits = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self) & mask
            if any(bits .>= bound) { break }
            i += 16
        }
        while i < values.count {
            if values[i].bitPattern & 0x7FFF_FFFF >= limit { return i }
            i += 1
        }
        return nil
    }

    /// Reference for ``firstOutOfRange(_:limit:)``: one value at a time, by value.
    static func firstOutOfRangeScalar(_ values: UnsafeBufferPointer<Float>, f16Target: Bool) -> Int? {
        let limit: Float = f16Target ? 65520 : .infinity
        return values.firstIndex { !(abs($0) < limit) }
    }

    /// Value check for bytes copied unchanged.
    private func checkFloats(_ bytes: UnsafeRawBufferPointer, dtype: DType, firstRow: Int) throws {
        let width = dtype.bitCount / 8
        let count = bytes.count / width
        for i in 0 ..< count {
            let v: Float
            switch dtype {
            case .f32: v = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            case .f16: v = HalfFloat.float(f16Bits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            default: v = HalfFloat.float(bf16Bits: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
            if !v.isFinite {
                throw valueError(Problem(index: firstRow * rowLength + i, value: v, overflow: false))
            }
        }
    }
}
