// Small SIMD building blocks for the fast dequantizers.
//
// Every fast kernel computes each element with exactly the operations of the scalar reference
// (integer code → Float, then the same multiplies/adds in the same order), only sixteen lanes at a
// time, so its output is bit-identical; the tests compare the two on random blocks.

/// Splits 16 packed bytes into their low and high nibbles.
@inline(__always)
func nibbles(_ v: SIMD16<UInt8>) -> (low: SIMD16<UInt8>, high: SIMD16<UInt8>) {
    (v & 0x0F, v &>> 4)
}

/// Q5_0/Q5_1 fifth bits: lane j of the first result is `0x10` if bit j of `qh` is set, lane j of the
/// second if bit j+16 is.
@inline(__always)
func highBits(_ qh: UInt32) -> (SIMD16<UInt8>, SIMD16<UInt8>) {
    // Lane j tests bit j%8 of byte j/8: broadcast each byte over 8 lanes, mask, compare.
    let masks = SIMD16<UInt8>(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128)
    let zero = SIMD16<UInt8>(), sixteen = SIMD16<UInt8>(repeating: 0x10)
    @inline(__always) func spread(_ lo: UInt32, _ hi: UInt32) -> SIMD16<UInt8> {
        SIMD16(lowHalf: SIMD8(repeating: UInt8(truncatingIfNeeded: lo)), highHalf: SIMD8(repeating: UInt8(truncatingIfNeeded: hi)))
    }
    let b0 = spread(qh, qh >> 8), b1 = spread(qh >> 16, qh >> 24)
    return (zero.replacing(with: sixteen, where: (b0 & masks) .!= zero),
            zero.replacing(with: sixteen, where: (b1 & masks) .!= zero))
}

/// Stores 16 floats at `p` (no alignment needed).
@inline(__always)
func storeSIMD(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Stores 8 floats at `p` (no alignment needed).
@inline(__always)
func storeSIMD(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Maps 16 four-bit indices through a 16-entry signed table (`kvalues_iq4nl`, `kvalues_mxfp4`).
@inline(__always)
func lookup16(_ table: SIMD16<Int8>, _ idx: SIMD16<UInt8>) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0 ..< 16 { r[i] = Int32(table[Int(idx[i] & 0x0F)]) }
    return r
}

/// Zero-extends 16 bytes to 32-bit lanes. Written out so it is always inlined (the generic
/// `init(truncatingIfNeeded:)` is emitted as an out-of-line call that does not vectorize).
@inline(__always)
func widen(_ v: SIMD16<UInt8>) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0 ..< 16 { r[i] = Int32(v[i]) }
    return r
}

/// Sign-extends 16 bytes to 32-bit lanes.
@inline(__always)
func widen(_ v: SIMD16<Int8>) -> SIMD16<Int32> {
    var r = SIMD16<Int32>()
    for i in 0 ..< 16 { r[i] = Int32(v[i]) }
    return r
}

/// `Float(v)` lane by lane for |v| < 2²²: add the integer to the bits of 1.5·2²³ and subtract
/// 1.5·2²³ as a float. Both steps are exact, so the result equals the scalar conversion bit for bit,
/// and both are plain vector instructions.
@inline(__always)
func toFloat(_ v: SIMD16<Int32>) -> SIMD16<Float> {
    let magic = SIMD16<Int32>(repeating: 0x4B40_0000)
    return unsafeBitCast(v &+ magic, to: SIMD16<Float>.self) - SIMD16<Float>(repeating: 12582912.0)
}
