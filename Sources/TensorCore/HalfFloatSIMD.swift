/// Eight-wide f16/bf16 conversions in plain integer and float arithmetic.
///
/// Baseline x86-64 has no F16C instructions, so `Float16(x)` is a library call per element
/// (`__truncsfhf2`), which dominated f32 → f16 conversion. These follow the branch-free
/// formulation ggml's `ggml_compute_fp32_to_fp16` uses (scale into the target exponent range
/// and let float addition round to nearest even), and are tested equal to `Float16(_:)` for
/// every non-NaN input class; NaN stays NaN.
public enum HalfFloatSIMD {
    public typealias F8 = SIMD8<Float>
    public typealias U8 = SIMD8<UInt32>

    /// f32 → f16 bit patterns (in the low 16 bits), round to nearest even; NaN → quiet NaN
    /// with the sign kept, overflow → ±infinity.
    @inlinable
    public static func f16Bits(_ f: F8) -> U8 {
        let scaleToInfinity = F8(repeating: Float(bitPattern: 0x7780_0000))  // 2^112
        let scaleToZero = F8(repeating: Float(bitPattern: 0x0880_0000))      // 2^-110
        let w = unsafeBitCast(f, to: U8.self)
        let magnitude = unsafeBitCast(w & 0x7FFF_FFFF, to: F8.self)
        var base = (magnitude * scaleToInfinity) * scaleToZero
        let shl1 = w &+ w
        let sign = w & 0x8000_0000
        var bias = shl1 & 0xFF00_0000
        bias.replace(with: 0x7100_0000, where: bias .< 0x7100_0000)
        base = unsafeBitCast((bias &>> 1) &+ 0x0780_0000, to: F8.self) + base
        let bits = unsafeBitCast(base, to: U8.self)
        let expBits = (bits &>> 13) & 0x7C00
        let mantissaBits = bits & 0x0FFF
        var nonSign = expBits &+ mantissaBits
        nonSign.replace(with: 0x7E00, where: shl1 .> 0xFF00_0000)
        return (sign &>> 16) | nonSign
    }

    /// Scalar form of ``f16Bits(_:)-(F8)`` written without branches so loops over it vectorize.
    @inlinable @inline(__always)
    public static func f16Bits(_ f: Float) -> UInt16 {
        let w = f.bitPattern
        let magnitude = Float(bitPattern: w & 0x7FFF_FFFF)
        var base = (magnitude * Float(bitPattern: 0x7780_0000)) * Float(bitPattern: 0x0880_0000)
        let shl1 = w &+ w
        let sign = w & 0x8000_0000
        let bias = max(shl1 & 0xFF00_0000, 0x7100_0000)
        base = Float(bitPattern: (bias &>> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let nonSign = ((bits &>> 13) & 0x7C00) &+ (bits & 0x0FFF)
        let result = (sign &>> 16) | (shl1 > 0xFF00_0000 ? 0x7E00 : nonSign)
        return UInt16(truncatingIfNeeded: result)
    }

    /// Scalar form of the f16 decode, branch-free.
    @inlinable @inline(__always)
    public static func float(f16Bits h: UInt16) -> Float {
        let w = UInt32(h) &<< 16
        let sign = w & 0x8000_0000
        let twoW = w &+ w
        let normalized = Float(bitPattern: (twoW &>> 4) &+ (0xE0 &<< 23)) * Float(bitPattern: 0x0780_0000)
        let denormalized = Float(bitPattern: (twoW &>> 17) | (126 &<< 23)) - 0.5
        let bits = twoW < (1 &<< 27) ? denormalized.bitPattern : normalized.bitPattern
        return Float(bitPattern: sign | bits)
    }

    /// f16 bit patterns (low 16 bits of each lane) → f32, exact; NaN payloads kept.
    @inlinable
    public static func float(f16Bits h: U8) -> F8 {
        let w = h &<< 16
        let sign = w & 0x8000_0000
        let twoW = w &+ w
        let normalized = unsafeBitCast((twoW &>> 4) &+ (0xE0 &<< 23), to: F8.self) * F8(repeating: Float(bitPattern: 0x0780_0000))  // 2^-112
        let denormalized = unsafeBitCast((twoW &>> 17) | (126 &<< 23), to: F8.self) - F8(repeating: 0.5)
        var bits = unsafeBitCast(normalized, to: U8.self)
        bits.replace(with: unsafeBitCast(denormalized, to: U8.self), where: twoW .< (1 &<< 27))
        return unsafeBitCast(sign | bits, to: F8.self)
    }

    /// f32 → bf16 bit patterns, round to nearest even, NaN forced quiet (as ``HalfFloat/bf16Bits(_:)``).
    @inlinable
    public static func bf16Bits(_ f: F8) -> U8 {
        let bits = unsafeBitCast(f, to: U8.self)
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
        let nan = (bits &>> 16) | 0x0040
        var out = rounded
        out.replace(with: nan, where: (bits & 0x7FFF_FFFF) .> 0x7F80_0000)
        return out
    }
}
