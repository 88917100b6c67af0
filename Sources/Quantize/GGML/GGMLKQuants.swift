public import TensorCore

// The 256-element k-quant super-blocks. Ported from ggml `ggml-quants.c` (`quantize_row_q{2..6}_K_ref`,
// `dequantize_row_q{2..6}_K`): same operations, same order. Scratch arrays live in one stack
// allocation per block so the kernels never touch the heap.

/// Scratch for one super-block: codes, auxiliary codes, weights, and per-sub-block scales/mins.
@inline(__always)
private func withKScratch<R>(
    _ body: (_ L: UnsafeMutablePointer<UInt8>, _ Laux: UnsafeMutablePointer<UInt8>,
             _ weights: UnsafeMutablePointer<Float>, _ scales: UnsafeMutablePointer<Float>,
             _ mins: UnsafeMutablePointer<Float>) -> R
) -> R {
    // 256 + 32 code bytes, then 32 + 16 + 16 floats.
    withUnsafeTemporaryAllocation(byteCount: 288 + 64 * 4, alignment: 16) { raw in
        let base = raw.baseAddress.unsafelyUnwrapped
        let L = base.bindMemory(to: UInt8.self, capacity: 288)
        let floats = (base + 288).bindMemory(to: Float.self, capacity: 64)
        return body(L, L + 256, floats, floats + 32, floats + 48)
    }
}

/// Packs 256 two-bit codes: byte `32c + l` holds elements `128h + l + 32s` at bits `2s` (c = h).
@inline(__always)
private func pack2Bit(_ L: UnsafePointer<UInt8>, into qs: UnsafeMutableRawPointer) {
    for j in stride(from: 0, to: 256, by: 128) {
        for l in 0 ..< 32 {
            let v = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6)
            qs.storeBytes(of: v, toByteOffset: j / 4 + l, as: UInt8.self)
        }
    }
}

// MARK: - Q2_K

/// Q2_K: 84 bytes / 256 — `scales[16]` (low nibble scale, high nibble min), `qs[64]` (2-bit codes),
/// `d: f16`, `dmin: f16`; y = d·sc·q − dmin·m over 16 sub-blocks of 16.
public enum Q2_K: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q2_K
    public static let blockSize = 256
    public static let typeSize = 84

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        withKScratch { L, Laux, weights, scales, mins in
            let q4scale: Float = 15
            var maxScale: Float = 0
            var maxMin: Float = 0
            for j in 0 ..< 16 {
                for l in 0 ..< 16 { weights[l] = abs(x[16 * j + l]) }
                var theMin: Float = 0
                scales[j] = makeQKX2Quants(
                    n: 16, nmax: 3, x: x + 16 * j, weights: weights, L: L + 16 * j, theMin: &theMin, Laux: Laux,
                    rmin: -0.5, rdelta: 0.1, nstep: 15, useMAD: true)
                mins[j] = theMin
                if scales[j] > maxScale { maxScale = scales[j] }
                if mins[j] > maxMin { maxMin = mins[j] }
            }
            let sc = block // scales[16] at offset 0
            if maxScale > 0 {
                let iscale = q4scale / maxScale
                for j in 0 ..< 16 {
                    let l = nearestInt(iscale * scales[j])
                    sc.storeBytes(of: UInt8(truncatingIfNeeded: l), toByteOffset: j, as: UInt8.self)
                }
                storeHalf(maxScale / q4scale, block, 80)
            } else {
                for j in 0 ..< 16 { sc.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
                storeHalf(0, block, 80)
            }
            if maxMin > 0 {
                let iscale = q4scale / maxMin
                for j in 0 ..< 16 {
                    let l = nearestInt(iscale * mins[j])
                    let v = Int32(loadU8(sc, j)) | (l << 4)
                    sc.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: j, as: UInt8.self)
                }
                storeHalf(maxMin / q4scale, block, 82)
            } else {
                storeHalf(0, block, 82)
            }
            let dAll = loadHalf(block, 80)
            let dminAll = loadHalf(block, 82)
            for j in 0 ..< 16 {
                let s = loadU8(sc, j)
                let d = dAll * Float(s & 0xF)
                if d == 0 { continue }
                let dm = dminAll * Float(s >> 4)
                for ii in 0 ..< 16 {
                    var l = nearestInt((x[16 * j + ii] + dm) / d)
                    l = clampCodes(l, 0, 3)
                    L[16 * j + ii] = UInt8(truncatingIfNeeded: l)
                }
            }
            pack2Bit(L, into: block + 16)
        }
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 80)
        let min = loadHalf(block, 82)
        var out = y
        var q = block + 16
        var scaleIndex = 0
        for _ in stride(from: 0, to: 256, by: 128) {
            var shift: UInt8 = 0
            for _ in 0 ..< 4 {
                var sc = loadU8(block, scaleIndex)
                scaleIndex += 1
                var dl = d * Float(sc & 0xF)
                var ml = min * Float(sc >> 4)
                for l in 0 ..< 16 {
                    out[l] = dl * Float(Int8(bitPattern: (loadU8(q, l) >> shift) & 3)) - ml
                }
                out += 16
                sc = loadU8(block, scaleIndex)
                scaleIndex += 1
                dl = d * Float(sc & 0xF)
                ml = min * Float(sc >> 4)
                for l in 0 ..< 16 {
                    out[l] = dl * Float(Int8(bitPattern: (loadU8(q, l + 16) >> shift) & 3)) - ml
                }
                out += 16
                shift += 2
            }
            q += 32
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let block = blocks + b * typeSize
            let out = y + b * blockSize
            let d = loadHalf(block, 80)
            let min = loadHalf(block, 82)
            for half in 0 ..< 2 {
                let q0 = block.loadUnaligned(fromByteOffset: 16 + 32 * half, as: SIMD16<UInt8>.self)
                let q1 = block.loadUnaligned(fromByteOffset: 16 + 32 * half + 16, as: SIMD16<UInt8>.self)
                for j in 0 ..< 4 {
                    let shift = SIMD16<UInt8>(repeating: UInt8(2 * j))
                    let is0 = 8 * half + 2 * j
                    let sc0 = loadU8(block, is0)
                    let sc1 = loadU8(block, is0 + 1)
                    let dl0 = SIMD16<Float>(repeating: d * Float(sc0 & 0xF))
                    let ml0 = SIMD16<Float>(repeating: min * Float(sc0 >> 4))
                    let dl1 = SIMD16<Float>(repeating: d * Float(sc1 & 0xF))
                    let ml1 = SIMD16<Float>(repeating: min * Float(sc1 >> 4))
                    let c0 = (q0 &>> shift) & 3
                    let c1 = (q1 &>> shift) & 3
                    let o = out + 128 * half + 32 * j
                    storeSIMD(dl0 * toFloat(widen(c0)) - ml0, o)
                    storeSIMD(dl1 * toFloat(widen(c1)) - ml1, o + 16)
                }
            }
        }
    }
}

// MARK: - Q3_K

/// Q3_K: 110 bytes / 256 — `hmask[32]` (3rd bit), `qs[64]` (low 2 bits), `scales[12]` (16 six-bit
/// signed scales, offset 32), `d: f16`; y = d·(sc − 32)·(q − 4) over 16 sub-blocks of 16.
public enum Q3_K: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q3_K
    public static let blockSize = 256
    public static let typeSize = 110

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        withKScratch { Lu, _, _, scales, _ in
            let L = UnsafeMutableRawPointer(Lu).bindMemory(to: Int8.self, capacity: 256)
            var maxScale: Float = 0
            var amax: Float = 0
            for j in 0 ..< 16 {
                scales[j] = makeQ3Quants(n: 16, nmax: 4, x: x + 16 * j, L: L + 16 * j)
                let scale = abs(scales[j])
                if scale > amax {
                    amax = scale
                    maxScale = scales[j]
                }
            }
            let sc = block + 96
            for j in 0 ..< 12 { sc.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
            if maxScale != 0 {
                let iscale = -32 / maxScale
                for j in 0 ..< 16 {
                    var l = Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))
                    l = Int8(truncatingIfNeeded: cMax(-32, cMin(31, Int32(l))) + 32)
                    let lu = UInt8(bitPattern: l)
                    if j < 8 {
                        sc.storeBytes(of: lu & 0xF, toByteOffset: j, as: UInt8.self)
                    } else {
                        sc.storeBytes(of: loadU8(sc, j - 8) | ((lu & 0xF) << 4), toByteOffset: j - 8, as: UInt8.self)
                    }
                    let hi = UInt8(bitPattern: l >> 4)
                    let k = j % 4 + 8
                    sc.storeBytes(of: loadU8(sc, k) | (hi << UInt8(2 * (j / 4))), toByteOffset: k, as: UInt8.self)
                }
                storeHalf(1 / iscale, block, 108)
            } else {
                storeHalf(0, block, 108)
            }
            let dAll = loadHalf(block, 108)
            for j in 0 ..< 16 {
                var s = j < 8 ? Int8(bitPattern: loadU8(sc, j) & 0xF) : Int8(bitPattern: loadU8(sc, j - 8) >> 4)
                let high = Int8(bitPattern: ((loadU8(sc, 8 + j % 4) >> UInt8(2 * (j / 4))) & 3) << 4)
                s = (s | high) &- 32
                let d = dAll * Float(s)
                if d == 0 { continue }
                for ii in 0 ..< 16 {
                    var l = nearestInt(x[16 * j + ii] / d)
                    l = clampCodes(l, -4, 3)
                    L[16 * j + ii] = Int8(truncatingIfNeeded: l + 4)
                }
            }
            // High bit of the first 32 codes goes to bit 0 of hmask[0..<32], the next 32 to bit 1, …
            for j in 0 ..< 32 { block.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
            var m = 0
            var hm: UInt8 = 1
            for j in 0 ..< 256 {
                if L[j] > 3 {
                    block.storeBytes(of: loadU8(block, m) | hm, toByteOffset: m, as: UInt8.self)
                    L[j] -= 4
                }
                m += 1
                if m == 32 {
                    m = 0
                    hm = hm &<< 1
                }
            }
            pack2Bit(Lu, into: block + 32)
        }
    }

    /// The 16 scales (0…63, still offset by 32) unpacked as `dequantize_row_q3_K` does with `aux`.
    @inline(__always)
    static func unpackScales(_ block: UnsafeRawPointer) -> SIMD16<Int8> {
        let kmask1: UInt32 = 0x0303_0303
        let kmask2: UInt32 = 0x0f0f_0f0f
        let a0 = loadU32(block, 96), a1 = loadU32(block, 100), tmp = loadU32(block, 104)
        let aux = SIMD4<UInt32>(
            (a0 & kmask2) | (((tmp >> 0) & kmask1) << 4),
            (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4),
            ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4),
            ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4))
        return unsafeBitCast(aux, to: SIMD16<Int8>.self)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let dAll = loadHalf(block, 108)
        let scales = unpackScales(block)
        var out = y
        var q = block + 32
        let hm = block
        var m: UInt8 = 1
        var scaleIndex = 0
        for _ in stride(from: 0, to: 256, by: 128) {
            var shift: UInt8 = 0
            for _ in 0 ..< 4 {
                var dl = dAll * Float(Int32(scales[scaleIndex]) - 32)
                scaleIndex += 1
                for l in 0 ..< 16 {
                    let c = Int32(Int8(bitPattern: (loadU8(q, l) >> shift) & 3)) - ((loadU8(hm, l) & m) != 0 ? 0 : 4)
                    out[l] = dl * Float(c)
                }
                out += 16
                dl = dAll * Float(Int32(scales[scaleIndex]) - 32)
                scaleIndex += 1
                for l in 0 ..< 16 {
                    let c = Int32(Int8(bitPattern: (loadU8(q, l + 16) >> shift) & 3)) - ((loadU8(hm, l + 16) & m) != 0 ? 0 : 4)
                    out[l] = dl * Float(c)
                }
                out += 16
                shift += 2
                m = m &<< 1
            }
            q += 32
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let block = blocks + b * typeSize
            let out = y + b * blockSize
            let dAll = loadHalf(block, 108)
            let scales = unpackScales(block)
            let hm0 = block.loadUnaligned(fromByteOffset: 0, as: SIMD16<UInt8>.self)
            let hm1 = block.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self)
            let zero = SIMD16<UInt8>(repeating: 0)
            let four = SIMD16<UInt8>(repeating: 4)
            for half in 0 ..< 2 {
                let q0 = block.loadUnaligned(fromByteOffset: 32 + 32 * half, as: SIMD16<UInt8>.self)
                let q1 = block.loadUnaligned(fromByteOffset: 32 + 32 * half + 16, as: SIMD16<UInt8>.self)
                for j in 0 ..< 4 {
                    let shift = SIMD16<UInt8>(repeating: UInt8(2 * j))
                    let m = SIMD16<UInt8>(repeating: UInt8(1) << UInt8(4 * half + j))
                    let is0 = 8 * half + 2 * j
                    let dl0 = SIMD16<Float>(repeating: dAll * Float(Int32(scales[is0]) - 32))
                    let dl1 = SIMD16<Float>(repeating: dAll * Float(Int32(scales[is0 + 1]) - 32))
                    // code = low 2 bits − (high bit set ? 0 : 4)
                    let sub0 = four.replacing(with: zero, where: (hm0 & m) .!= zero)
                    let sub1 = four.replacing(with: zero, where: (hm1 & m) .!= zero)
                    let c0 = widen((q0 &>> shift) & 3) &- widen(sub0)
                    let c1 = widen((q1 &>> shift) & 3) &- widen(sub1)
                    let o = out + 128 * half + 32 * j
                    storeSIMD(dl0 * toFloat(c0), o)
                    storeSIMD(dl1 * toFloat(c1), o + 16)
                }
            }
        }
    }
}

// MARK: - Q4_K

/// Q4_K: 144 bytes / 256 — `d: f16`, `dmin: f16`, `scales[12]` (8 six-bit scales and mins),
/// `qs[128]`; y = d·sc·q − dmin·m over 8 sub-blocks of 32. Chunk c (64 elements) uses `qs[32c..<32c+32]`:
/// low nibbles → sub-block 2c, high nibbles → sub-block 2c+1.
public enum Q4_K: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q4_K
    public static let blockSize = 256
    public static let typeSize = 144

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        quantizeQ45K(x, into: block, nmax: 15, rmin: -1, rdelta: 0.1, nstep: 20)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        let min = loadHalf(block, 2)
        let scales = block + 4
        var q = block + 16
        var out = y
        var scaleIndex = 0
        for _ in stride(from: 0, to: 256, by: 64) {
            var (sc, m) = scaleMinK4(scaleIndex, scales)
            let d1 = d * Float(sc), m1 = min * Float(m)
            (sc, m) = scaleMinK4(scaleIndex + 1, scales)
            let d2 = d * Float(sc), m2 = min * Float(m)
            for l in 0 ..< 32 { out[l] = d1 * Float(loadU8(q, l) & 0xF) - m1 }
            out += 32
            for l in 0 ..< 32 { out[l] = d2 * Float(loadU8(q, l) >> 4) - m2 }
            out += 32
            q += 32
            scaleIndex += 2
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let block = blocks + b * typeSize
            let out = y + b * blockSize
            let d = loadHalf(block, 0)
            let min = loadHalf(block, 2)
            let scales = block + 4
            for c in 0 ..< 4 {
                let (sc1, m1) = scaleMinK4(2 * c, scales)
                let (sc2, m2) = scaleMinK4(2 * c + 1, scales)
                let d1 = SIMD16<Float>(repeating: d * Float(sc1)), mm1 = SIMD16<Float>(repeating: min * Float(m1))
                let d2 = SIMD16<Float>(repeating: d * Float(sc2)), mm2 = SIMD16<Float>(repeating: min * Float(m2))
                let o = out + 64 * c
                for h in 0 ..< 2 {
                    let (lo, hi) = nibbles(block.loadUnaligned(fromByteOffset: 16 + 32 * c + 16 * h, as: SIMD16<UInt8>.self))
                    storeSIMD(d1 * toFloat(widen(lo)) - mm1, o + 16 * h)
                    storeSIMD(d2 * toFloat(widen(hi)) - mm2, o + 32 + 16 * h)
                }
            }
        }
    }
}

/// The shared body of `quantize_row_q4_K_ref` and `quantize_row_q5_K_ref` up to the final codes:
/// per-sub-block scale/min search, 6-bit packing of scales and mins, re-derivation of the codes from
/// the stored fp16 values; then the code packing of the type (`nmax` 15 → Q4_K, 31 → Q5_K).
@inline(__always)
private func quantizeQ45K(
    _ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer,
    nmax: Int32, rmin: Float, rdelta: Float, nstep: Int
) {
    withKScratch { L, Laux, weights, scales, mins in
        var maxScale: Float = 0
        var maxMin: Float = 0
        for j in 0 ..< 8 {
            var sumX2: Float = 0
            for l in 0 ..< 32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
            let avX = (sumX2 / 32).squareRoot()
            for l in 0 ..< 32 { weights[l] = avX + abs(x[32 * j + l]) }
            var theMin: Float = 0
            scales[j] = makeQKX2Quants(
                n: 32, nmax: nmax, x: x + 32 * j, weights: weights, L: L + 32 * j, theMin: &theMin, Laux: Laux,
                rmin: rmin, rdelta: rdelta, nstep: nstep, useMAD: false)
            mins[j] = theMin
            if scales[j] > maxScale { maxScale = scales[j] }
            if mins[j] > maxMin { maxMin = mins[j] }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        // ls/lm reuse the tail of Laux (only 32 bytes are needed by the search above, which is done).
        let ls = Laux, lm = Laux + 8
        for j in 0 ..< 8 {
            ls[j] = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j])))
            lm[j] = Swift.min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j])))
        }
        packScaleMinK4(ls: ls, lm: lm, into: block + 4)
        storeHalf(maxScale / 63, block, 0)
        storeHalf(maxMin / 63, block, 2)
        let dAll = loadHalf(block, 0)
        let dminAll = loadHalf(block, 2)
        for j in 0 ..< 8 {
            let (sc, m) = scaleMinK4(j, block + 4)
            let d = dAll * Float(sc)
            if d == 0 { continue }
            let dm = dminAll * Float(m)
            for ii in 0 ..< 32 {
                var l = nearestInt((x[32 * j + ii] + dm) / d)
                l = clampCodes(l, 0, nmax)
                L[32 * j + ii] = UInt8(truncatingIfNeeded: l)
            }
        }
        if nmax == 15 {
            // Q4_K: qs at 16.
            for c in 0 ..< 4 {
                for l in 0 ..< 32 {
                    let v = L[64 * c + l] | (L[64 * c + l + 32] << 4)
                    block.storeBytes(of: v, toByteOffset: 16 + 32 * c + l, as: UInt8.self)
                }
            }
        } else {
            // Q5_K: qh[32] at 16, qs[128] at 48.
            for j in 0 ..< 32 { block.storeBytes(of: 0, toByteOffset: 16 + j, as: UInt8.self) }
            var m1: UInt8 = 1, m2: UInt8 = 2
            for c in 0 ..< 4 {
                for j in 0 ..< 32 {
                    var l1 = L[64 * c + j]
                    var qh = loadU8(block, 16 + j)
                    if l1 > 15 {
                        l1 -= 16
                        qh |= m1
                    }
                    var l2 = L[64 * c + j + 32]
                    if l2 > 15 {
                        l2 -= 16
                        qh |= m2
                    }
                    block.storeBytes(of: qh, toByteOffset: 16 + j, as: UInt8.self)
                    block.storeBytes(of: l1 | (l2 << 4), toByteOffset: 48 + 32 * c + j, as: UInt8.self)
                }
                m1 = m1 &<< 2
                m2 = m2 &<< 2
            }
        }
    }
}

// MARK: - Q5_K

/// Q5_K: 176 bytes / 256 — `d`, `dmin`, `scales[12]` as Q4_K, `qh[32]` (5th bits), `qs[128]`.
/// Chunk c takes its 5th bits from `qh[l]` bit 2c (low nibbles) and bit 2c+1 (high nibbles).
public enum Q5_K: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q5_K
    public static let blockSize = 256
    public static let typeSize = 176

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        quantizeQ45K(x, into: block, nmax: 31, rmin: -0.5, rdelta: 0.1, nstep: 15)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        let min = loadHalf(block, 2)
        let scales = block + 4
        let qh = block + 16
        var ql = block + 48
        var out = y
        var scaleIndex = 0
        var u1: UInt8 = 1, u2: UInt8 = 2
        for _ in stride(from: 0, to: 256, by: 64) {
            var (sc, m) = scaleMinK4(scaleIndex, scales)
            let d1 = d * Float(sc), m1 = min * Float(m)
            (sc, m) = scaleMinK4(scaleIndex + 1, scales)
            let d2 = d * Float(sc), m2 = min * Float(m)
            for l in 0 ..< 32 {
                let q = Int32(loadU8(ql, l) & 0xF) + ((loadU8(qh, l) & u1) != 0 ? 16 : 0)
                out[l] = d1 * Float(q) - m1
            }
            out += 32
            for l in 0 ..< 32 {
                let q = Int32(loadU8(ql, l) >> 4) + ((loadU8(qh, l) & u2) != 0 ? 16 : 0)
                out[l] = d2 * Float(q) - m2
            }
            out += 32
            ql += 32
            scaleIndex += 2
            u1 = u1 &<< 2
            u2 = u2 &<< 2
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let block = blocks + b * typeSize
            let out = y + b * blockSize
            let d = loadHalf(block, 0)
            let min = loadHalf(block, 2)
            let scales = block + 4
            let zero = SIMD16<UInt8>(repeating: 0)
            let sixteen = SIMD16<UInt8>(repeating: 16)
            for c in 0 ..< 4 {
                let (sc1, m1) = scaleMinK4(2 * c, scales)
                let (sc2, m2) = scaleMinK4(2 * c + 1, scales)
                let d1 = SIMD16<Float>(repeating: d * Float(sc1)), mm1 = SIMD16<Float>(repeating: min * Float(m1))
                let d2 = SIMD16<Float>(repeating: d * Float(sc2)), mm2 = SIMD16<Float>(repeating: min * Float(m2))
                let u1 = SIMD16<UInt8>(repeating: UInt8(1) << UInt8(2 * c))
                let u2 = SIMD16<UInt8>(repeating: UInt8(2) << UInt8(2 * c))
                let o = out + 64 * c
                for h in 0 ..< 2 {
                    let qh = block.loadUnaligned(fromByteOffset: 16 + 16 * h, as: SIMD16<UInt8>.self)
                    let (lo, hi) = nibbles(block.loadUnaligned(fromByteOffset: 48 + 32 * c + 16 * h, as: SIMD16<UInt8>.self))
                    let b1 = zero.replacing(with: sixteen, where: (qh & u1) .!= zero)
                    let b2 = zero.replacing(with: sixteen, where: (qh & u2) .!= zero)
                    storeSIMD(d1 * toFloat(widen(lo | b1)) - mm1, o + 16 * h)
                    storeSIMD(d2 * toFloat(widen(hi | b2)) - mm2, o + 32 + 16 * h)
                }
            }
        }
    }
}

// MARK: - Q6_K

/// Q6_K: 210 bytes / 256 — `ql[128]` (low 4 bits), `qh[64]` (high 2 bits), `scales[16]` (i8), `d: f16`
/// (last); y = d·sc·(q − 32) over 16 sub-blocks of 16.
public enum Q6_K: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q6_K
    public static let blockSize = 256
    public static let typeSize = 210

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        withKScratch { Lu, _, _, scales, _ in
            let L = UnsafeMutableRawPointer(Lu).bindMemory(to: Int8.self, capacity: 256)
            var maxScale: Float = 0
            var maxAbsScale: Float = 0
            for ib in 0 ..< 16 {
                let scale = makeQXQuantsFast(n: 16, nmax: 32, x: x + 16 * ib, L: L + 16 * ib, qw: nil)
                scales[ib] = scale
                let absScale = abs(scale)
                if absScale > maxAbsScale {
                    maxAbsScale = absScale
                    maxScale = scale
                }
            }
            if maxAbsScale < groupMaxEps {
                block.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                return
            }
            let iscale = -128 / maxScale
            storeHalf(1 / iscale, block, 208)
            for ib in 0 ..< 16 {
                let v = Int8(truncatingIfNeeded: cMin(127, nearestInt(iscale * scales[ib])))
                block.storeBytes(of: v, toByteOffset: 192 + ib, as: Int8.self)
            }
            let dAll = loadHalf(block, 208)
            for j in 0 ..< 16 {
                let d = dAll * Float(block.load(fromByteOffset: 192 + j, as: Int8.self))
                if d == 0 { continue }
                for ii in 0 ..< 16 {
                    var l = nearestInt(x[16 * j + ii] / d)
                    l = clampCodes(l, -32, 31)
                    L[16 * j + ii] = Int8(truncatingIfNeeded: l + 32)
                }
            }
            for (n, j) in stride(from: 0, to: 256, by: 128).enumerated() {
                let ql = 64 * n, qh = 128 + 32 * n
                for l in 0 ..< 32 {
                    let a = UInt8(bitPattern: L[j + l]), b = UInt8(bitPattern: L[j + l + 32])
                    let c = UInt8(bitPattern: L[j + l + 64]), e = UInt8(bitPattern: L[j + l + 96])
                    block.storeBytes(of: (a & 0xF) | ((c & 0xF) << 4), toByteOffset: ql + l, as: UInt8.self)
                    block.storeBytes(of: (b & 0xF) | ((e & 0xF) << 4), toByteOffset: ql + l + 32, as: UInt8.self)
                    let h = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
                    block.storeBytes(of: h, toByteOffset: qh + l, as: UInt8.self)
                }
            }
        }
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 208)
        var ql = block
        var qh = block + 128
        var sc = block + 192
        var out = y
        for _ in stride(from: 0, to: 256, by: 128) {
            for l in 0 ..< 32 {
                let s = l / 16
                let h = loadU8(qh, l)
                let q1 = Int8(bitPattern: (loadU8(ql, l) & 0xF) | (((h >> 0) & 3) << 4)) - 32
                let q2 = Int8(bitPattern: (loadU8(ql, l + 32) & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int8(bitPattern: (loadU8(ql, l) >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int8(bitPattern: (loadU8(ql, l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[l] = d * Float(sc.load(fromByteOffset: s, as: Int8.self)) * Float(q1)
                out[l + 32] = d * Float(sc.load(fromByteOffset: s + 2, as: Int8.self)) * Float(q2)
                out[l + 64] = d * Float(sc.load(fromByteOffset: s + 4, as: Int8.self)) * Float(q3)
                out[l + 96] = d * Float(sc.load(fromByteOffset: s + 6, as: Int8.self)) * Float(q4)
            }
            out += 128
            ql += 64
            qh += 32
            sc += 8
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let block = blocks + b * typeSize
            let out = y + b * blockSize
            let d = loadHalf(block, 208)
            let thirtyTwo = SIMD16<Int32>(repeating: 32)
            for n in 0 ..< 2 {
                let ql = 64 * n, qh = 128 + 32 * n, sc = 192 + 8 * n
                for s in 0 ..< 2 {
                    // Elements l = 16s ..< 16s+16 of each of the four 32-element quarters share one scale.
                    let (l0, l2) = nibbles(block.loadUnaligned(fromByteOffset: ql + 16 * s, as: SIMD16<UInt8>.self))
                    let (l1, l3) = nibbles(block.loadUnaligned(fromByteOffset: ql + 32 + 16 * s, as: SIMD16<UInt8>.self))
                    let h = block.loadUnaligned(fromByteOffset: qh + 16 * s, as: SIMD16<UInt8>.self)
                    let lows = (l0, l1, l2, l3)
                    for k in 0 ..< 4 {
                        let low: SIMD16<UInt8>
                        switch k {
                        case 0: low = lows.0
                        case 1: low = lows.1
                        case 2: low = lows.2
                        default: low = lows.3
                        }
                        let code = low | (((h &>> UInt8(2 * k)) & 3) &<< 4)
                        let q = widen(code) &- thirtyTwo
                        let scale = d * Float(block.load(fromByteOffset: sc + s + 2 * k, as: Int8.self))
                        storeSIMD(SIMD16<Float>(repeating: scale) * toFloat(q), out + 128 * n + 32 * k + 16 * s)
                    }
                }
            }
        }
    }
}
