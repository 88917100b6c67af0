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
    let lanes = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    let all = SIMD16<UInt32>(repeating: qh)
    let h0 = ((all &>> lanes) & 1) &<< 4
    let h1 = ((all &>> (lanes &+ 16)) & 1) &<< 4
    return (SIMD16<UInt8>(truncatingIfNeeded: h0), SIMD16<UInt8>(truncatingIfNeeded: h1))
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
