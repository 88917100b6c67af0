public import TensorCore
public import Formats
import Quantize

/// Reading one logical tensor of a (possibly bitsandbytes-quantized) checkpoint as `Float`s.
///
/// A quantized weight reads back exactly as bitsandbytes' own dequantization returns it:
/// `dequantize_4bit` (float32 products `code_table[code] * absmax`, then cast to the weight's
/// recorded `dtype`, round to nearest even), or `int8_vectorwise_dequant` (float32
/// `CB * SCB * (1/127)`, not cast).
public enum BNBTensorValues {
    /// The values of `group`, flattened row-major (one tensor in memory at a time).
    /// - Throws: ``PathError`` for a dtype that is not a float, or a block size bitsandbytes rejects.
    public static func load(_ group: BNBTensorGroup, from source: any TensorSource, threads: Int) throws -> [Float] {
        switch group {
        case .plain(let entry):
            guard let dtype = entry.encoding.denseType, dtype.isConvertibleFloat, case .dense = entry.encoding else {
                throw PathError(path: entry.file, ConvertError.unsupportedDType(tensor: entry.name, dtype: entry.encoding.description))
            }
            return try decode(source.bytes(of: entry), dtype: dtype, count: entry.elementCount, threads: threads)
        case .fourBit(let w):
            return try withPath(w.packed.file) { try dequantize(w, from: source, threads: threads) }
        case .int8(let w):
            return try withPath(w.weight.file) { try dequantize(w, from: source) }
        }
    }

    /// `dequantize_4bit` of a stored weight.
    static func dequantize(_ w: BNB4BitWeight, from source: any TensorSource, threads: Int) throws -> [Float] {
        let state = w.state
        let absmax = try blockAbsmax(w, from: source)
        let kind: FourBit.Kind = state.quantType == .nf4 ? .nf4 : .fp4
        var out = [Float](repeating: 0, count: state.elementCount)
        let packed = try source.bytes(of: w.packed)
        try out.withUnsafeMutableBufferPointer { o in
            try absmax.withUnsafeBufferPointer { a in
                try FourBit.dequantize(packed, absmax: a, kind: kind, blockSize: state.blockSize, into: o, threads: threads)
            }
        }
        // bitsandbytes returns the recorded dtype: round the float32 products once.
        roundInPlace(&out, to: state.dtype)
        return out
    }

    /// The float32 absmax of every block: stored as is, or reconstructed from the double
    /// quantization as bitsandbytes does (`dequantize_blockwise` with the *stored* nested code
    /// table, then `+ offset`, all float32).
    static func blockAbsmax(_ w: BNB4BitWeight, from source: any TensorSource) throws -> [Float] {
        let state = w.state
        guard let nested = state.nested, let nestedEntry = w.nestedAbsmax, let mapEntry = w.nestedQuantMap else {
            return try floats(source.bytes(of: w.absmax))
        }
        let codes = try source.bytes(of: w.absmax)
        let scales = try floats(source.bytes(of: nestedEntry))
        let map = try floats(source.bytes(of: mapEntry))
        var absmax = [Float](repeating: 0, count: state.blockCount)
        for b in 0 ..< absmax.count {
            // Shapes were validated by BNBCheckpointLayout: codes has blockCount bytes, scales
            // ceil(blockCount / nested.blockSize) floats, map 256.
            absmax[b] = map[Int(codes[b])] * scales[b / nested.blockSize] + nested.offset
        }
        return absmax
    }

    /// `int8_vectorwise_dequant` of a stored weight.
    static func dequantize(_ w: BNBInt8Weight, from source: any TensorSource) throws -> [Float] {
        let cb = try source.bytes(of: w.weight)
        let scb = try floats(source.bytes(of: w.scb))
        var out = [Float](repeating: 0, count: w.rows * w.columns)
        try out.withUnsafeMutableBufferPointer { o in
            try scb.withUnsafeBufferPointer { s in
                try Int8Rowwise.dequantize(cb: cb.bindMemory(to: Int8.self), scb: s, rows: w.rows, columns: w.columns, into: o)
            }
        }
        return out
    }

    /// Decodes a dense float tensor in parallel chunks.
    static func decode(_ bytes: UnsafeRawBufferPointer, dtype: DType, count: Int, threads: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        let width = dtype.bitCount / 8
        out.withUnsafeMutableBufferPointer { o in
            nonisolated(unsafe) let dst = o
            nonisolated(unsafe) let src = bytes
            // Each chunk decodes its own range of elements.
            parallelChunks(count: count, threads: threads, minimumChunk: 1 << 16) { range in
                DenseFloat.decode(UnsafeRawBufferPointer(rebasing: src[range.lowerBound * width ..< range.upperBound * width]), dtype: dtype,
                                  into: UnsafeMutableBufferPointer(rebasing: dst[range]))
            }
        }
        return out
    }

    /// Little-endian float32 values.
    static func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        (0 ..< bytes.count / 4).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }

    /// Rounds every value to `dtype` and back (round to nearest even; no-op for f32).
    static func roundInPlace(_ values: inout [Float], to dtype: DType) {
        switch dtype {
        case .bf16: for i in values.indices { values[i] = HalfFloat.float(bf16Bits: HalfFloat.bf16Bits(values[i])) }
        case .f16: for i in values.indices { values[i] = Float(Float16(values[i])) }
        default: break
        }
    }

    /// The first NaN or infinite value, if any.
    static func firstNonFinite(_ values: [Float]) -> (index: Int, value: Float)? {
        values.withUnsafeBufferPointer { v in
            // A whole chunk is tested with one branch; only a hit is searched element by element.
            var start = 0
            while start < v.count {
                let end = min(v.count, start + 4096)
                // Counting all-ones exponents with no early exit lets the compiler vectorize.
                var nonFinite: UInt32 = 0
                for i in start ..< end { nonFinite &+= (v[i].bitPattern & 0x7F80_0000) == 0x7F80_0000 ? 1 : 0 }
                if nonFinite != 0 {
                    for i in start ..< end where !v[i].isFinite { return (i, v[i]) }
                }
                start = end
            }
            return nil
        }
    }
}
