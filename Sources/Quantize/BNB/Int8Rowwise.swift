import TensorCore

/// LLM.int8 weight storage (bitsandbytes `int8_vectorwise_quant` with threshold 0, REFERENCE §5.5):
/// per output row `SCB = max |W_row|` (float32) and `CB = round(W * ((1 / SCB) * 127))` as int8.
///
/// The expression is bitsandbytes 0.50.2's default (pure torch) kernel, which its CPU backend runs:
/// `torch.round(A * (127.0 / row_stats))`, where torch evaluates `127.0 / t` as `t.reciprocal() * 127`.
/// Rounding is half-to-even. A row whose SCB is 0, infinite or NaN turns every product into NaN or 0,
/// and torch's float→int8 cast maps NaN and ±inf to 0, so such rows store zeros (SCB stays as computed).
/// `Linear8bitLt` weights pass through float16 first (`Int8Params` casts to `torch.float16`); set
/// `viaFloat16` to reproduce checkpoints transformers saves.
public enum Int8Rowwise {
    /// bitsandbytes dequantizes with `CB * SCB * 7.874015718698502e-3`; that constant is float32(1/127).
    public static let inverse127: Float = 7.874015718698502e-3

    /// Quantizes a row-major `rows × columns` matrix (fast path: SIMD, parallel over rows).
    /// - Parameters:
    ///   - w: `rows * columns` float32 values.
    ///   - viaFloat16: round every value to float16 first, as `Int8Params` does.
    ///   - cb: `rows * columns` int8 outputs.
    ///   - scb: `rows` float32 row scales.
    /// - Throws: ``BNBError/sizeMismatch(what:expected:actual:)`` for mis-sized buffers.
    public static func quantize(
        _ w: UnsafeBufferPointer<Float>, rows: Int, columns: Int, viaFloat16: Bool = false,
        cb: UnsafeMutableBufferPointer<Int8>, scb: UnsafeMutableBufferPointer<Float>, threads: Int = 1
    ) throws(BNBError) {
        try check(count: w.count, rows: rows, columns: columns, cb: cb.count, scb: scb.count)
        guard rows > 0, columns > 0, let src = w.baseAddress, let dst = cb.baseAddress, let scales = scb.baseAddress
        else {
            for r in 0 ..< rows { scb[r] = 0 }   // torch.max over an empty row would fail; store 0
            return
        }
        let io = SendablePointers(input: src, output: dst)
        nonisolated(unsafe) let scaleOut = scales
        parallelChunks(count: rows, threads: threads, minimumChunk: max(1, 16384 / columns)) { range in
            guard viaFloat16 else {
                for r in range {
                    scaleOut[r] = quantizeRowSIMD(io.input + r * columns, count: columns, into: io.output + r * columns)
                }
                return
            }
            // One scratch row per chunk holds the float16-rounded values.
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: columns)
            defer { scratch.deallocate() }
            let vectorColumns = columns & ~7
            for r in range {
                let row = UnsafeRawPointer(io.input + r * columns)
                let scratchRaw = UnsafeMutableRawPointer(scratch)
                var c = 0
                while c < vectorColumns {
                    let v = row.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self)
                    scratchRaw.storeBytes(of: roundedToFloat16(v), toByteOffset: c * 4, as: SIMD8<Float>.self)
                    c += 8
                }
                while c < columns {
                    scratch[c] = value(io.input[r * columns + c], true)
                    c += 1
                }
                scaleOut[r] = quantizeRowSIMD(scratch, count: columns, into: io.output + r * columns)
            }
        }
    }

    /// The scalar reference of ``quantize(_:rows:columns:viaFloat16:cb:scb:threads:)``.
    public static func quantizeScalar(
        _ w: UnsafeBufferPointer<Float>, rows: Int, columns: Int, viaFloat16: Bool = false,
        cb: UnsafeMutableBufferPointer<Int8>, scb: UnsafeMutableBufferPointer<Float>
    ) throws(BNBError) {
        try check(count: w.count, rows: rows, columns: columns, cb: cb.count, scb: scb.count)
        for r in 0 ..< rows {
            var m: Float = 0
            var sawNaN = false
            for c in 0 ..< columns {
                let a = abs(value(w[r * columns + c], viaFloat16))
                if a.isNaN { sawNaN = true } else if a > m { m = a }
            }
            if sawNaN { m = .nan }
            scb[r] = m
            let scale = (1 / m) * 127
            for c in 0 ..< columns {
                cb[r * columns + c] = toInt8((value(w[r * columns + c], viaFloat16) * scale).rounded(.toNearestOrEven))
            }
        }
    }

    /// Dequantizes: `W[r][c] = Float(CB[r][c]) * SCB[r] * (1/127)` in float32, as bitsandbytes does.
    public static func dequantize(
        cb: UnsafeBufferPointer<Int8>, scb: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
        into out: UnsafeMutableBufferPointer<Float>
    ) throws(BNBError) {
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, rows >= 0, columns >= 0 else { throw .invalidShape([rows, columns]) }
        guard cb.count == count else { throw .sizeMismatch(what: "int8 weight", expected: count, actual: cb.count) }
        guard scb.count == rows else { throw .sizeMismatch(what: "SCB", expected: rows, actual: scb.count) }
        guard out.count == count else { throw .sizeMismatch(what: "dequantized output", expected: count, actual: out.count) }
        for r in 0 ..< rows {
            let s = scb[r]
            for c in 0 ..< columns { out[r * columns + c] = Float(cb[r * columns + c]) * s * inverse127 }
        }
    }

    /// The safetensors entries transformers writes for a `Linear8bitLt` module `M` (REFERENCE §5.5), with
    /// key suffixes relative to the module name: `.weight` (I8 `[rows, columns]`), `.SCB` (F32 `[rows]`,
    /// a module-level key, not `weight.SCB`) and `.weight_format` (U8 scalar 0 = row-major).
    public static func safetensorsEntries(cb: [Int8], scb: [Float], rows: Int, columns: Int) throws(BNBError) -> [BNBTensorEntry] {
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, rows >= 0, columns >= 0 else { throw .invalidShape([rows, columns]) }
        guard cb.count == count else { throw .sizeMismatch(what: "int8 weight", expected: count, actual: cb.count) }
        guard scb.count == rows else { throw .sizeMismatch(what: "SCB", expected: rows, actual: scb.count) }
        return [
            BNBTensorEntry(suffix: ".weight", dtype: .i8, shape: [rows, columns], bytes: cb.map { UInt8(bitPattern: $0) }),
            BNBTensorEntry(suffix: ".SCB", dtype: .f32, shape: [rows], bytes: BNB4BitTensor.littleEndianBytes(scb)),
            BNBTensorEntry(suffix: ".weight_format", dtype: .u8, shape: [], bytes: [0]),
        ]
    }

    static func check(count: Int, rows: Int, columns: Int, cb: Int, scb: Int) throws(BNBError) {
        let (elements, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, rows >= 0, columns >= 0 else { throw .invalidShape([rows, columns]) }
        guard count == elements else { throw .sizeMismatch(what: "weight", expected: elements, actual: count) }
        guard cb == elements else { throw .sizeMismatch(what: "int8 output", expected: elements, actual: cb) }
        guard scb == rows else { throw .sizeMismatch(what: "SCB output", expected: rows, actual: scb) }
    }

    /// `x`, or `x` rounded to float16 (round-to-nearest-even, overflow to ±inf) and back, as
    /// `tensor.to(torch.float16)` does.
    @inline(__always)
    static func value(_ x: Float, _ viaFloat16: Bool) -> Float {
        viaFloat16 ? Float(Float16(x)) : x
    }

    /// `Float(Float16(v))` lanewise without the (software, on baseline x86-64) conversion calls:
    /// round the float32 to 11 significant bits half-to-even in place.
    @inline(__always)
    static func roundedToFloat16(_ v: SIMD8<Float>) -> SIMD8<Float> {
        // Lane masks come from float comparisons: integer SIMD comparisons are scalarized by the
        // compiler on baseline x86-64, float ones are single instructions.
        let bits = unsafeBitCast(v, to: SIMD8<Int32>.self)
        let sign = bits & Int32(bitPattern: 0x8000_0000)
        let magnitude = bits & 0x7FFF_FFFF
        let absolute = unsafeBitCast(magnitude, to: SIMD8<Float>.self)
        // Normal float16 range (|v| >= 2^-14): drop 13 mantissa bits, ties to even. A carry into the
        // exponent is the correct rounding up to the next binade.
        let normal = (magnitude &+ 0x0FFF &+ ((magnitude &>> 13) & 1)) & Int32(bitPattern: 0xFFFF_E000)
        // Subnormal float16 (|v| < 2^-14): multiples of 2^-24. Floats in [0.5, 1) are spaced 2^-24, so
        // (|v| + 0.5) - 0.5 rounds half-to-even to that grid.
        let small = unsafeBitCast(absolute + 0.5 - 0.5, to: SIMD8<Int32>.self)
        let isSmall = unsafeBitCast(absolute .< 0x1p-14, to: SIMD8<Int32>.self)
        // At or above 65520 (halfway to 2^16, which rounds up) the result overflows to infinity.
        let isHuge = unsafeBitCast(absolute .>= 65520, to: SIMD8<Int32>.self)
        let isNaN = unsafeBitCast(absolute .!= absolute, to: SIMD8<Int32>.self)
        var r = (normal & ~isSmall) | (small & isSmall)
        r = (r & ~isHuge) | (0x7F80_0000 & isHuge)
        r = (r & ~isNaN) | ((magnitude | 0x0040_0000) & isNaN)   // NaN stays NaN (quieted)
        return unsafeBitCast(r | sign, to: SIMD8<Float>.self)
    }

    /// torch's float→int8 cast on x86: NaN and ±inf become 0 (the int32 conversion yields
    /// 0x80000000, whose low byte is 0); finite values here are already within ±127.
    @inline(__always)
    static func toInt8(_ rounded: Float) -> Int8 {
        guard rounded.isFinite else { return 0 }
        return Int8(truncatingIfNeeded: Int32(rounded))
    }

    static func quantizeRowSIMD(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Int8>) -> Float {
        let raw = UnsafeRawPointer(x)
        var m8 = SIMD8<Float>(repeating: 0)
        var nan8 = SIMDMask<SIMD8<Int32>>(repeating: false)
        let vectorCount = count & ~7
        var c = 0
        while c < vectorCount {
            let v = raw.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self)
            let a = unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
            m8.replace(with: a, where: m8 .< a)
            nan8 .|= v .!= v
            c += 8
        }
        var m = horizontalMax(m8)
        var sawNaN = any(nan8)
        while c < count {
            let a = abs(x[c])
            if a.isNaN { sawNaN = true } else if a > m { m = a }
            c += 1
        }
        if sawNaN { m = .nan }
        let scale = (1 / m) * 127
        guard scale.isFinite, m.isFinite else {
            // SCB 0 (scale inf) or NaN: every product is NaN (0 · inf) → 0, like torch's cast.
            // SCB inf (scale 0): finite values give 0, the infinities NaN → 0 as well.
            for i in 0 ..< count { out[i] = 0 }
            return m
        }
        // Here every product is finite with |v| <= 127 (+ an ulp): adding 1.5 · 2^23 rounds it to an
        // integer half-to-even (the FPU's mode, as torch.round), and the low mantissa bits are then
        // that integer in two's complement: bits(v + 1.5·2^23) - bits(1.5·2^23).
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let magicBits = SIMD8<Int32>(repeating: 0x4B40_0000)
        let scale8 = SIMD8<Float>(repeating: scale)
        let outRaw = UnsafeMutableRawPointer(out)
        c = 0
        while c < vectorCount {
            let v = raw.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self) * scale8
            let q = unsafeBitCast(v + magic, to: SIMD8<Int32>.self) &- magicBits
            outRaw.storeBytes(of: SIMD8<Int8>(truncatingIfNeeded: q), toByteOffset: c, as: SIMD8<Int8>.self)
            c += 8
        }
        while c < count {
            out[c] = toInt8((x[c] * scale).rounded(.toNearestOrEven))
            c += 1
        }
        return m
    }
}
