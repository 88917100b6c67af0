/// Conversions between `Float` and the 16-bit float formats, with the rounding the references use.
///
/// `Float16` is native on x86_64 Linux and rounds to nearest even, as ggml's `GGML_FP32_TO_FP16`
/// and numpy's `astype(float16)` do. bfloat16 has no Swift type; it is carried as its bit pattern.
public enum HalfFloat {
    /// f32 → bf16 bits, round to nearest even; NaN stays NaN (quiet bit forced, as ggml and gguf-py do).
    @inlinable
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 {
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// bf16 bits → f32 (exact).
    @inlinable
    public static func float(bf16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// f32 → f16 bits, round to nearest even; NaN stays NaN, overflow becomes ±inf.
    @inlinable
    public static func f16Bits(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    /// f16 bits → f32 (exact).
    @inlinable
    public static func float(f16Bits bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }
}
