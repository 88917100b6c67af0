public import TensorCore

// Dequantize-only ggml types: the non-linear 4-bit grids (IQ4_NL, IQ4_XS, MXFP4), the ternary types
// (TQ1_0, TQ2_0) and the lattice i-quants (IQ2_*, IQ3_*, IQ1_*). Ported from ggml `ggml-quants.c`
// (`dequantize_row_*`), same operations per element and same order.

// MARK: - Tables (format constants)

/// `kvalues_iq4nl` (ggml-common.h): the IQ4_NL / IQ4_XS code points.
let kvaluesIQ4NL: SIMD16<Int8> = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

/// `kvalues_mxfp4` (ggml-common.h): E2M1 values doubled, indexed by the 4-bit code.
let kvaluesMXFP4: SIMD16<Int8> = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]

/// `ksigns_iq2xs` (ggml-common.h): 7 sign bits plus an eighth that makes the count of set bits even.
let ksignsIQ2XS: [UInt8] = (0 ..< 128).map { i in
    let v = UInt8(i)
    return v | (v.nonzeroBitCount % 2 == 1 ? 0x80 : 0)
}

/// `IQ1S_DELTA` (ggml-common.h).
let iq1sDelta: Float = 0.125

/// The lattice grids, expanded once from the packed codes in ``GGMLIQGridData`` into ggml's form:
/// one byte per coordinate, little-endian in a UInt64 (8 coordinates) or UInt32 (4 coordinates).
enum IQGrids {
    static let iq2xxs = expand8(GGMLIQGridData.iq2xxs, map: [0x08, 0x19, 0x2b, 0])
    static let iq2xs = expand8(GGMLIQGridData.iq2xs, map: [0x08, 0x19, 0x2b, 0])
    static let iq2s = expand8(GGMLIQGridData.iq2s, map: [0x08, 0x19, 0x2b, 0])
    /// Coordinates −1, 0, 1 stored as the bytes 0xff, 0x00, 0x01 (int8 in ggml).
    static let iq1s = expand8(GGMLIQGridData.iq1s, map: [0xff, 0x00, 0x01, 0])
    static let iq3xxs = expand4(GGMLIQGridData.iq3xxs, map: [0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e])
    static let iq3s = expand4(GGMLIQGridData.iq3s, map: [0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f])

    private static func expand8(_ codes: [UInt16], map: [UInt64]) -> [UInt64] {
        codes.map { code in
            var v: UInt64 = 0
            for k in 0 ..< 8 { v |= map[Int((code >> UInt16(2 * k)) & 3)] << UInt64(8 * k) }
            return v
        }
    }

    private static func expand4(_ codes: [UInt16], map: [UInt32]) -> [UInt32] {
        codes.map { code in
            var v: UInt32 = 0
            for k in 0 ..< 4 { v |= map[Int((code >> UInt16(4 * k)) & 7)] << UInt32(8 * k) }
            return v
        }
    }
}

@inline(__always)
private func byte(_ v: UInt64, _ j: Int) -> UInt8 { UInt8(truncatingIfNeeded: v >> UInt64(8 * j)) }

@inline(__always)
private func byte(_ v: UInt32, _ j: Int) -> UInt8 { UInt8(truncatingIfNeeded: v >> UInt32(8 * j)) }

/// `(signs & kmask_iq2xs[j] ? -1.f : 1.f)`
@inline(__always)
private func sign(_ signs: UInt8, _ j: Int) -> Float { signs & (1 << UInt8(j)) != 0 ? -1 : 1 }

// MARK: - IQ4_NL, IQ4_XS, MXFP4

/// IQ4_NL: 18 bytes / 32 — `d: f16`, `qs[16]`; y = d·kvalues[code], nibble layout of Q4_0.
public enum IQ4_NL: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq4_nl
    public static let blockSize = 32
    public static let typeSize = 18

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        for j in 0 ..< 16 {
            let q = loadU8(block, 2 + j)
            y[j] = d * Float(kvaluesIQ4NL[Int(q & 0xF)])
            y[j + 16] = d * Float(kvaluesIQ4NL[Int(q >> 4)])
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let p = blocks + b * typeSize
            let out = y + b * blockSize
            let d = SIMD16<Float>(repeating: loadHalf(p, 0))
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
            storeSIMD(d * toFloat(lookup16(kvaluesIQ4NL, lo)), out)
            storeSIMD(d * toFloat(lookup16(kvaluesIQ4NL, hi)), out + 16)
        }
    }
}

/// IQ4_XS: 136 bytes / 256 — `d: f16`, `scales_h: u16`, `scales_l[4]`, `qs[128]`; eight sub-blocks of
/// 32 with 6-bit scales (offset 32); y = d·(ls − 32)·kvalues[code].
public enum IQ4_XS: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq4_xs
    public static let blockSize = 256
    public static let typeSize = 136

    @inline(__always)
    static func subScale(_ block: UnsafeRawPointer, _ ib: Int) -> Int32 {
        let scalesH = loadU16(block, 2)
        let low = (loadU8(block, 4 + ib / 2) >> UInt8(4 * (ib % 2))) & 0xF
        let high = (scalesH >> UInt16(2 * ib)) & 3
        return Int32(low) | (Int32(high) << 4)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        for ib in 0 ..< 8 {
            let dl = d * Float(subScale(block, ib) - 32)
            let qs = 8 + 16 * ib
            let out = y + 32 * ib
            for j in 0 ..< 16 {
                let q = loadU8(block, qs + j)
                out[j] = dl * Float(kvaluesIQ4NL[Int(q & 0xF)])
                out[j + 16] = dl * Float(kvaluesIQ4NL[Int(q >> 4)])
            }
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let block = blocks + b * typeSize
            let d = loadHalf(block, 0)
            for ib in 0 ..< 8 {
                let dl = SIMD16<Float>(repeating: d * Float(subScale(block, ib) - 32))
                let (lo, hi) = nibbles(block.loadUnaligned(fromByteOffset: 8 + 16 * ib, as: SIMD16<UInt8>.self))
                let out = y + b * blockSize + 32 * ib
                storeSIMD(dl * toFloat(lookup16(kvaluesIQ4NL, lo)), out)
                storeSIMD(dl * toFloat(lookup16(kvaluesIQ4NL, hi)), out + 16)
            }
        }
    }
}

/// MXFP4: 17 bytes / 32 — `e: u8` (E8M0 scale), `qs[16]`; y = kvalues_mxfp4[code]·2^(e−128).
public enum MXFP4: GGMLBlockCodec {
    public static let ggmlType = GGMLType.mxfp4
    public static let blockSize = 32
    public static let typeSize = 17

    /// `GGML_E8M0_TO_FP32_HALF`: 2^(e−128), with the two smallest exponents as subnormals.
    @inline(__always)
    static func e8m0ToFloatHalf(_ e: UInt8) -> Float {
        let bits: UInt32 = e < 2 ? 0x0020_0000 << UInt32(e) : UInt32(e - 1) << 23
        return Float(bitPattern: bits)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = e8m0ToFloatHalf(loadU8(block, 0))
        for j in 0 ..< 16 {
            let q = loadU8(block, 1 + j)
            y[j] = Float(kvaluesMXFP4[Int(q & 0x0F)]) * d
            y[j + 16] = Float(kvaluesMXFP4[Int(q >> 4)]) * d
        }
    }
}

// MARK: - Ternary

/// TQ1_0: 54 bytes / 256 — `qs[48]` (five base-3 digits per byte), `qh[4]` (four per byte), `d: f16`;
/// y = (digit − 1)·d.
public enum TQ1_0: GGMLBlockCodec {
    public static let ggmlType = GGMLType.tq1_0
    public static let blockSize = 256
    public static let typeSize = 54

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let pow3: (UInt8, UInt8, UInt8, UInt8, UInt8) = (1, 3, 9, 27, 81)
        @inline(__always) func p3(_ n: Int) -> UInt8 {
            switch n {
            case 0: pow3.0
            case 1: pow3.1
            case 2: pow3.2
            case 3: pow3.3
            default: pow3.4
            }
        }
        @inline(__always) func trit(_ byte: UInt8, _ n: Int) -> Float {
            let q = byte &* p3(n)                       // uint8_t q = qs * pow3[n]
            let xi = Int16((UInt16(q) * 3) >> 8)        // int16_t xi = ((uint16_t) q * 3) >> 8
            return Float(xi - 1)
        }
        let d = loadHalf(block, 52)
        var out = y
        // 32 bytes × 5 digits, then 16 bytes × 5 digits, then the 4 qh bytes × 4 digits.
        for n in 0 ..< 5 {
            for m in 0 ..< 32 { out[m] = trit(loadU8(block, m), n) * d }
            out += 32
        }
        for n in 0 ..< 5 {
            for m in 0 ..< 16 { out[m] = trit(loadU8(block, 32 + m), n) * d }
            out += 16
        }
        for n in 0 ..< 4 {
            for j in 0 ..< 4 { out[j] = trit(loadU8(block, 48 + j), n) * d }
            out += 4
        }
    }
}

/// TQ2_0: 66 bytes / 256 — `qs[64]` (2-bit codes), `d: f16`; y = (code − 1)·d.
public enum TQ2_0: GGMLBlockCodec {
    public static let ggmlType = GGMLType.tq2_0
    public static let blockSize = 256
    public static let typeSize = 66

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 64)
        var out = y
        for j in stride(from: 0, to: 64, by: 32) {
            for l in 0 ..< 4 {
                for m in 0 ..< 32 {
                    let q = Int8(bitPattern: (loadU8(block, j + m) >> UInt8(2 * l)) & 3)
                    out[m] = Float(q - 1) * d
                }
                out += 32
            }
        }
    }
}

// MARK: - IQ2

/// IQ2_XXS: 66 bytes / 256 — `d: f16`, `qs: 32 × u16`. Per 32 elements two u32: four 8-bit grid
/// indices, then four 7-bit sign indices and a 4-bit scale.
public enum IQ2_XXS: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq2_xxs
    public static let blockSize = 256
    public static let typeSize = 66

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq2xxs
        let d = loadHalf(block, 0)
        var out = y
        for ib32 in 0 ..< 8 {
            let aux0 = loadU32(block, 2 + 8 * ib32)
            let aux1 = loadU32(block, 2 + 8 * ib32 + 4)
            let db = d * (0.5 + Float(aux1 >> 28)) * 0.25
            for l in 0 ..< 4 {
                let g = grid[Int(byte(aux0, l))]
                let signs = ksignsIQ2XS[Int((aux1 >> UInt32(7 * l)) & 127)]
                for j in 0 ..< 8 { out[j] = db * Float(byte(g, j)) * sign(signs, j) }
                out += 8
            }
        }
    }
}

/// IQ2_XS: 74 bytes / 256 — `d: f16`, `qs: 32 × u16` (9-bit grid index, 7-bit sign index),
/// `scales[8]` (two 4-bit scales per 32 elements).
public enum IQ2_XS: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq2_xs
    public static let blockSize = 256
    public static let typeSize = 74

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq2xs
        let d = loadHalf(block, 0)
        var out = y
        for ib32 in 0 ..< 8 {
            let sc = loadU8(block, 66 + ib32)
            let db0 = d * (0.5 + Float(sc & 0xf)) * 0.25
            let db1 = d * (0.5 + Float(sc >> 4)) * 0.25
            for l in 0 ..< 4 {
                let q = loadU16(block, 2 + 2 * (4 * ib32 + l))
                let g = grid[Int(q & 511)]
                let signs = ksignsIQ2XS[Int(q >> 9)]
                let db = l / 2 == 0 ? db0 : db1
                for j in 0 ..< 8 { out[j] = db * Float(byte(g, j)) * sign(signs, j) }
                out += 8
            }
        }
    }
}

/// IQ2_S: 82 bytes / 256 — `d: f16`, `qs[64]` (32 low grid-index bytes, then 32 sign bytes),
/// `qh[8]` (2 high index bits per group of 8), `scales[8]`.
public enum IQ2_S: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq2_s
    public static let blockSize = 256
    public static let typeSize = 82

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq2s
        let d = loadHalf(block, 0)
        var qs = 2
        var signs = 2 + 32
        var out = y
        for ib32 in 0 ..< 8 {
            let sc = loadU8(block, 74 + ib32)
            let db0 = d * (0.5 + Float(sc & 0xf)) * 0.25
            let db1 = d * (0.5 + Float(sc >> 4)) * 0.25
            let qh = Int(loadU8(block, 66 + ib32))
            for l in 0 ..< 4 {
                let dl = l / 2 == 0 ? db0 : db1
                let g = grid[Int(loadU8(block, qs + l)) | ((qh << (8 - 2 * l)) & 0x300)]
                let s = loadU8(block, signs + l)
                for j in 0 ..< 8 { out[j] = dl * Float(byte(g, j)) * sign(s, j) }
                out += 8
            }
            qs += 4
            signs += 4
        }
    }
}

// MARK: - IQ3

/// IQ3_XXS: 98 bytes / 256 — `d: f16`, `qs[64]` (grid indices, 4 coordinates each), then 8 × u32
/// (four 7-bit sign indices and a 4-bit scale per 32 elements).
public enum IQ3_XXS: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq3_xxs
    public static let blockSize = 256
    public static let typeSize = 98

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq3xxs
        let d = loadHalf(block, 0)
        var qs = 2
        var out = y
        for ib32 in 0 ..< 8 {
            let aux32 = loadU32(block, 2 + 64 + 4 * ib32)
            let db = d * (0.5 + Float(aux32 >> 28)) * 0.5
            for l in 0 ..< 4 {
                let signs = ksignsIQ2XS[Int((aux32 >> UInt32(7 * l)) & 127)]
                let g1 = grid[Int(loadU8(block, qs + 2 * l))]
                let g2 = grid[Int(loadU8(block, qs + 2 * l + 1))]
                for j in 0 ..< 4 {
                    out[j] = db * Float(byte(g1, j)) * sign(signs, j)
                    out[j + 4] = db * Float(byte(g2, j)) * sign(signs, j + 4)
                }
                out += 8
            }
            qs += 8
        }
    }
}

/// IQ3_S: 110 bytes / 256 — `d: f16`, `qs[64]`, `qh[8]` (9th index bits), `signs[32]`, `scales[4]`.
public enum IQ3_S: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq3_s
    public static let blockSize = 256
    public static let typeSize = 110

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq3s
        let d = loadHalf(block, 0)
        var qs = 2
        var qh = 66
        var signs = 74
        var out = y
        for ib32 in stride(from: 0, to: 8, by: 2) {
            let sc = loadU8(block, 106 + ib32 / 2)
            let db1 = d * Float(1 + 2 * Int32(sc & 0xf))
            let db2 = d * Float(1 + 2 * Int32(sc >> 4))
            for half in 0 ..< 2 {
                let db = half == 0 ? db1 : db2
                let h = Int(loadU8(block, qh + half))
                for l in 0 ..< 4 {
                    let g1 = grid[Int(loadU8(block, qs + 2 * l)) | ((h << (8 - 2 * l)) & 256)]
                    let g2 = grid[Int(loadU8(block, qs + 2 * l + 1)) | ((h << (7 - 2 * l)) & 256)]
                    let s = loadU8(block, signs + l)
                    for j in 0 ..< 4 {
                        out[j] = db * Float(byte(g1, j)) * sign(s, j)
                        out[j + 4] = db * Float(byte(g2, j)) * sign(s, j + 4)
                    }
                    out += 8
                }
                qs += 8
                signs += 4
            }
            qh += 2
        }
    }
}

// MARK: - IQ1

/// IQ1_S: 50 bytes / 256 — `d: f16`, `qs[32]` (low 8 grid-index bits), `qh: 8 × u16` (3 high index
/// bits per group of 8, a 3-bit scale, and the sign of the ±1/8 shift).
public enum IQ1_S: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq1_s
    public static let blockSize = 256
    public static let typeSize = 50

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq1s
        let d = loadHalf(block, 0)
        var qs = 2
        var out = y
        for ib in 0 ..< 8 {
            let qh = loadU16(block, 34 + 2 * ib)
            let dl = d * Float(2 * Int32((qh >> 12) & 7) + 1)
            let delta = qh & 0x8000 != 0 ? -iq1sDelta : iq1sDelta
            for l in 0 ..< 4 {
                let g = grid[Int(loadU8(block, qs + l)) | (Int((qh >> UInt16(3 * l)) & 7) << 8)]
                for j in 0 ..< 8 { out[j] = dl * (Float(Int8(bitPattern: byte(g, j))) + delta) }
                out += 8
            }
            qs += 4
        }
    }
}

/// IQ1_M: 56 bytes / 256 — `qs[32]`, `qh[16]` (3 high index bits + shift sign per group of 8),
/// `scales[8]` (3-bit scales per 16 elements; the fp16 super-scale is spread over the top nibbles).
public enum IQ1_M: GGMLBlockCodec {
    public static let ggmlType = GGMLType.iq1_m
    public static let blockSize = 256
    public static let typeSize = 56

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let grid = IQGrids.iq1s
        let sc0 = loadU16(block, 48), sc1 = loadU16(block, 50), sc2 = loadU16(block, 52), sc3 = loadU16(block, 54)
        let scaleBits = (sc0 >> 12) | ((sc1 >> 8) & 0x00f0) | ((sc2 >> 4) & 0x0f00) | (sc3 & 0xf000)
        let d = Float(Float16(bitPattern: scaleBits))
        var qs = 0
        var qh = 32
        var out = y
        for ib in 0 ..< 8 {
            let sc = loadU16(block, 48 + 2 * (ib / 2))
            let dl1 = d * Float(2 * Int32((sc >> UInt16(6 * (ib % 2) + 0)) & 0x7) + 1)
            let dl2 = d * Float(2 * Int32((sc >> UInt16(6 * (ib % 2) + 3)) & 0x7) + 1)
            let h0 = Int(loadU8(block, qh)), h1 = Int(loadU8(block, qh + 1))
            // Four groups of 8: grid index low byte from qs, 3 high bits and the shift sign from qh.
            for l in 0 ..< 4 {
                let h = l < 2 ? h0 : h1
                let hiBits = l % 2 == 0 ? (h << 8) & 0x700 : (h << 4) & 0x700
                let g = grid[Int(loadU8(block, qs + l)) | hiBits]
                let negative = l % 2 == 0 ? h & 0x08 != 0 : h & 0x80 != 0
                let delta = negative ? -iq1sDelta : iq1sDelta
                let dl = l < 2 ? dl1 : dl2
                for j in 0 ..< 8 { out[j] = dl * (Float(Int8(bitPattern: byte(g, j))) + delta) }
                out += 8
            }
            qs += 4
            qh += 2
        }
    }
}
