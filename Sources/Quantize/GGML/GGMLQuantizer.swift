public import TensorCore

/// Why a ggml quantize/dequantize call was refused. Every check happens before any byte is touched.
public enum GGMLQuantizeError: ClassifiedError, Equatable {
    /// Which direction was asked for.
    public enum Direction: String, Sendable, Equatable {
        case quantize, dequantize
    }

    /// wconv has no codec for this type in this direction.
    case unsupportedType(GGMLType, Direction)
    /// Rows must be a whole number of blocks (k-quants need a multiple of 256).
    case rowNotBlockAligned(type: GGMLType, rowLength: Int, blockSize: Int)
    /// The source does not hold a whole number of rows.
    case partialRow(elementCount: Int, rowLength: Int)
    /// An element count that is not a whole number of blocks.
    case countNotBlockAligned(type: GGMLType, count: Int, blockSize: Int)
    /// A buffer has the wrong size for the request.
    case bufferSizeMismatch(what: String, expected: Int, actual: Int)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedType, .rowNotBlockAligned: .unsupported
        case .partialRow, .countNotBlockAligned, .bufferSizeMismatch: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case let .unsupportedType(type, direction):
            "cannot \(direction.rawValue) ggml type \(type.name) (id \(type.rawValue))"
        case let .rowNotBlockAligned(type, rowLength, blockSize):
            "rows of \(rowLength) elements cannot be stored as \(type.name): the row length must be a multiple of \(blockSize)"
        case let .partialRow(elementCount, rowLength):
            "\(elementCount) elements are not a whole number of rows of \(rowLength)"
        case let .countNotBlockAligned(type, count, blockSize):
            "\(count) elements are not a whole number of \(type.name) blocks of \(blockSize)"
        case let .bufferSizeMismatch(what, expected, actual):
            "\(what) has \(actual) bytes or elements, expected \(expected)"
        }
    }
}

/// Quantizes and dequantizes whole tensors in ggml block formats, in parallel, with the same bytes
/// for any thread count (each block is written by exactly one worker and blocks are independent in
/// ggml's reference quantizers).
public enum GGMLQuantizer {
    /// Whether ``quantize(_:rowLength:as:into:threads:)`` handles `type`.
    public static func supportsQuantize(_ type: GGMLType) -> Bool {
        GGMLCodecs.quantizer(for: type) != nil
    }

    /// Whether ``dequantize(_:type:count:into:threads:)`` handles `type`.
    public static func supportsDequantize(_ type: GGMLType) -> Bool {
        GGMLCodecs.codec(for: type) != nil
    }

    /// Quantizes row-major floats into ggml blocks, bit-exact with ggml's `quantize_row_*_ref`.
    /// - Parameters:
    ///   - src: `rows × rowLength` floats (rows = the ggml `ne[0]` direction, i.e. HF input features).
    ///   - rowLength: elements per row; must be a multiple of the type's block size.
    ///   - type: the target ggml type.
    ///   - dst: exactly `src.count / blockSize × typeSize` bytes.
    ///   - threads: upper bound on worker threads (1 runs inline).
    /// - Throws: ``GGMLQuantizeError`` for an unsupported type, a misaligned row, or a wrong buffer size.
    public static func quantize(
        _ src: UnsafeBufferPointer<Float>, rowLength: Int, as type: GGMLType,
        into dst: UnsafeMutableRawBufferPointer, threads: Int = activeProcessorCount
    ) throws(GGMLQuantizeError) {
        guard let codec = GGMLCodecs.quantizer(for: type) else { throw .unsupportedType(type, .quantize) }
        try quantize(codec, src, rowLength: rowLength, into: dst, threads: threads)
    }

    /// Quantizes into a new byte array; see ``quantize(_:rowLength:as:into:threads:)``.
    public static func quantize(
        _ src: [Float], rowLength: Int, as type: GGMLType, threads: Int = activeProcessorCount
    ) throws(GGMLQuantizeError) -> [UInt8] {
        guard let codec = GGMLCodecs.quantizer(for: type) else { throw .unsupportedType(type, .quantize) }
        guard rowLength > 0, rowLength % codec.blockSize == 0 else {
            throw .rowNotBlockAligned(type: type, rowLength: rowLength, blockSize: codec.blockSize)
        }
        var bytes = [UInt8](repeating: 0, count: src.count / codec.blockSize * codec.typeSize)
        var outcome: Result<Void, GGMLQuantizeError> = .success(())
        bytes.withUnsafeMutableBytes { out in
            src.withUnsafeBufferPointer { s in
                do throws(GGMLQuantizeError) {
                    try quantize(codec, s, rowLength: rowLength, into: out, threads: threads)
                } catch {
                    outcome = .failure(error)
                }
            }
        }
        try outcome.get()
        return bytes
    }

    /// Dequantizes `count` elements of ggml blocks into floats, bit-exact with ggml's `dequantize_row_*`.
    /// - Parameters:
    ///   - src: exactly `count / blockSize × typeSize` bytes.
    ///   - type: the ggml type of `src`.
    ///   - count: number of elements; a multiple of the block size.
    ///   - dst: exactly `count` floats.
    ///   - threads: upper bound on worker threads (1 runs inline).
    /// - Throws: ``GGMLQuantizeError`` for an unsupported type, a partial block, or a wrong buffer size.
    public static func dequantize(
        _ src: UnsafeRawBufferPointer, type: GGMLType, count: Int,
        into dst: UnsafeMutableBufferPointer<Float>, threads: Int = activeProcessorCount
    ) throws(GGMLQuantizeError) {
        guard let codec = GGMLCodecs.codec(for: type) else { throw .unsupportedType(type, .dequantize) }
        try dequantize(codec, src, count: count, into: dst, threads: threads)
    }

    /// Dequantizes into a new float array; see ``dequantize(_:type:count:into:threads:)``.
    public static func dequantize(
        _ src: [UInt8], type: GGMLType, count: Int, threads: Int = activeProcessorCount
    ) throws(GGMLQuantizeError) -> [Float] {
        guard let codec = GGMLCodecs.codec(for: type) else { throw .unsupportedType(type, .dequantize) }
        // Validate before allocating: `count` may come from a file header.
        guard count >= 0, count % codec.blockSize == 0 else {
            throw .countNotBlockAligned(type: type, count: count, blockSize: codec.blockSize)
        }
        let (expected, overflow) = (count / codec.blockSize).multipliedReportingOverflow(by: codec.typeSize)
        guard !overflow, src.count == expected else {
            throw .bufferSizeMismatch(what: "\(type.name) input", expected: expected, actual: src.count)
        }
        var floats = [Float](repeating: 0, count: count)
        var outcome: Result<Void, GGMLQuantizeError> = .success(())
        floats.withUnsafeMutableBufferPointer { out in
            src.withUnsafeBytes { s in
                do throws(GGMLQuantizeError) {
                    try dequantize(codec, s, count: count, into: out, threads: threads)
                } catch {
                    outcome = .failure(error)
                }
            }
        }
        try outcome.get()
        return floats
    }

    // MARK: Drivers, specialized per codec

    /// Elements a worker should at least get, so small tensors are not split into tiny chunks.
    private static let minimumElementsPerChunk = 16384

    private static func quantize<C: GGMLBlockQuantizer>(
        _: C.Type, _ src: UnsafeBufferPointer<Float>, rowLength: Int,
        into dst: UnsafeMutableRawBufferPointer, threads: Int
    ) throws(GGMLQuantizeError) {
        guard rowLength > 0, rowLength % C.blockSize == 0 else {
            throw .rowNotBlockAligned(type: C.ggmlType, rowLength: rowLength, blockSize: C.blockSize)
        }
        guard src.count % rowLength == 0 else { throw .partialRow(elementCount: src.count, rowLength: rowLength) }
        let blocks = src.count / C.blockSize
        let (expected, overflow) = blocks.multipliedReportingOverflow(by: C.typeSize)
        guard !overflow, dst.count == expected else {
            throw .bufferSizeMismatch(what: "\(C.ggmlType.name) output buffer", expected: expected, actual: dst.count)
        }
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let io = GGMLKernelIO(src: UnsafeRawPointer(s), dst: d)
        parallelChunks(count: blocks, threads: threads, minimumChunk: max(1, minimumElementsPerChunk / C.blockSize)) { range in
            let x = io.src.assumingMemoryBound(to: Float.self)
            for b in range {
                C.quantizeBlock(x + b * C.blockSize, into: io.dst + b * C.typeSize)
            }
        }
    }

    private static func dequantize<C: GGMLBlockCodec>(
        _: C.Type, _ src: UnsafeRawBufferPointer, count: Int,
        into dst: UnsafeMutableBufferPointer<Float>, threads: Int
    ) throws(GGMLQuantizeError) {
        guard count >= 0, count % C.blockSize == 0 else {
            throw .countNotBlockAligned(type: C.ggmlType, count: count, blockSize: C.blockSize)
        }
        let blocks = count / C.blockSize
        let (expected, overflow) = blocks.multipliedReportingOverflow(by: C.typeSize)
        guard !overflow, src.count == expected else {
            throw .bufferSizeMismatch(what: "\(C.ggmlType.name) input", expected: expected, actual: src.count)
        }
        guard dst.count == count else {
            throw .bufferSizeMismatch(what: "float output buffer", expected: count, actual: dst.count)
        }
        guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        let io = GGMLKernelIO(src: s, dst: UnsafeMutableRawPointer(d))
        parallelChunks(count: blocks, threads: threads, minimumChunk: max(1, minimumElementsPerChunk / C.blockSize)) { range in
            let y = io.dst.assumingMemoryBound(to: Float.self)
            C.dequantizeBlocksFast(io.src + range.lowerBound * C.typeSize, count: range.count,
                                   into: y + range.lowerBound * C.blockSize)
        }
    }
}

/// Source and destination of a parallel kernel. Safe to share because every worker reads only its
/// own blocks of `src` and writes only its own blocks of `dst`, and both outlive the call.
private struct GGMLKernelIO: @unchecked Sendable {
    let src: UnsafeRawPointer
    let dst: UnsafeMutableRawPointer
}
