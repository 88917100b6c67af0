public import TensorCore

// The 32-element "legacy" block types. Ported from ggml `ggml-quants.c`
// (`quantize_row_q{4_0,4_1,5_0,5_1,8_0}_ref`, `dequantize_row_*`): same operations, same order.
// Nibble layout of all of them: low nibble of qs[j] = element j, high nibble = element j+16.

/// Q8_0: 34 bytes / 32 elements — `d: f16`, `qs: 32 × i8`; y = qs·d.
public enum Q8_0: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q8_0
    public static let blockSize = 32
    public static let typeSize = 34

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0 ..< 32 { amax = cMax(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, block, 0)
        for j in 0 ..< 32 {
            let x0 = x[j] * id
            block.storeBytes(of: truncToInt8(roundAway(x0)), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        for j in 0 ..< 32 {
            y[j] = Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) * d
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let p = blocks + b * typeSize
            let out = y + b * blockSize
            let d = SIMD16<Float>(repeating: loadHalf(p, 0))
            let q0 = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
            let q1 = p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
            storeSIMD(toFloat(widen(q0)) * d, out)
            storeSIMD(toFloat(widen(q1)) * d, out + 16)
        }
    }
}

/// Q4_0: 18 bytes / 32 elements — `d: f16`, `qs: 16 bytes`; y = (q − 8)·d.
public enum Q4_0: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q4_0
    public static let blockSize = 32
    public static let typeSize = 18

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        // The element of largest magnitude keeps its sign: d = max / -8 maps it to code 0.
        var amax: Float = 0
        var max: Float = 0
        for j in 0 ..< 32 {
            let v = x[j]
            if amax < abs(v) {
                amax = abs(v)
                max = v
            }
        }
        let d = max / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, block, 0)
        for j in 0 ..< 16 {
            let x0 = x[j] * id
            let x1 = x[16 + j] * id
            let xi0 = Swift.min(15, Int32(truncToInt8(x0 + 8.5)))
            let xi1 = Swift.min(15, Int32(truncToInt8(x1 + 8.5)))
            block.storeBytes(of: UInt8(truncatingIfNeeded: xi0 | (xi1 << 4)), toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        for j in 0 ..< 16 {
            let q = loadU8(block, 2 + j)
            let x0 = Int32(q & 0x0F) - 8
            let x1 = Int32(q >> 4) - 8
            y[j] = Float(x0) * d
            y[j + 16] = Float(x1) * d
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let p = blocks + b * typeSize
            let out = y + b * blockSize
            let d = SIMD16<Float>(repeating: loadHalf(p, 0))
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
            let eight = SIMD16<Int32>(repeating: 8)
            storeSIMD(toFloat(widen(lo) &- eight) * d, out)
            storeSIMD(toFloat(widen(hi) &- eight) * d, out + 16)
        }
    }
}

/// Q4_1: 20 bytes / 32 elements — `d: f16`, `m: f16`, `qs: 16 bytes`; y = q·d + m.
public enum Q4_1: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q4_1
    public static let blockSize = 32
    public static let typeSize = 20

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var min = Float.greatestFiniteMagnitude
        var max = -Float.greatestFiniteMagnitude
        for j in 0 ..< 32 {
            let v = x[j]
            if v < min { min = v }
            if v > max { max = v }
        }
        let d = (max - min) / 15
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, block, 0)
        storeHalf(min, block, 2)
        for j in 0 ..< 16 {
            let x0 = (x[j] - min) * id
            let x1 = (x[16 + j] - min) * id
            let xi0 = Swift.min(15, Int32(truncToInt8(x0 + 0.5)))
            let xi1 = Swift.min(15, Int32(truncToInt8(x1 + 0.5)))
            block.storeBytes(of: UInt8(truncatingIfNeeded: xi0 | (xi1 << 4)), toByteOffset: 4 + j, as: UInt8.self)
        }
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        let m = loadHalf(block, 2)
        for j in 0 ..< 16 {
            let q = loadU8(block, 4 + j)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let p = blocks + b * typeSize
            let out = y + b * blockSize
            let d = SIMD16<Float>(repeating: loadHalf(p, 0))
            let m = SIMD16<Float>(repeating: loadHalf(p, 2))
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self))
            storeSIMD(toFloat(widen(lo)) * d + m, out)
            storeSIMD(toFloat(widen(hi)) * d + m, out + 16)
        }
    }
}

/// Q5_0: 22 bytes / 32 elements — `d: f16`, `qh: u32` (5th bits), `qs: 16 bytes`; y = (q − 16)·d.
public enum Q5_0: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q5_0
    public static let blockSize = 32
    public static let typeSize = 22

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var amax: Float = 0
        var max: Float = 0
        for j in 0 ..< 32 {
            let v = x[j]
            if amax < abs(v) {
                amax = abs(v)
                max = v
            }
        }
        let d = max / -16
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, block, 0)
        var qh: UInt32 = 0
        for j in 0 ..< 16 {
            let x0 = x[j] * id
            let x1 = x[16 + j] * id
            let xi0 = UInt32(truncatingIfNeeded: Swift.min(31, Int32(truncToInt8(x0 + 16.5)))) & 0xFF
            let xi1 = UInt32(truncatingIfNeeded: Swift.min(31, Int32(truncToInt8(x1 + 16.5)))) & 0xFF
            block.storeBytes(of: UInt8(truncatingIfNeeded: (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)), toByteOffset: 6 + j, as: UInt8.self)
            qh |= ((xi0 & 0x10) >> 4) << UInt32(j)
            qh |= ((xi1 & 0x10) >> 4) << UInt32(j + 16)
        }
        block.storeBytes(of: qh, toByteOffset: 2, as: UInt32.self)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        let qh = loadU32(block, 2)
        for j in 0 ..< 16 {
            let q = loadU8(block, 6 + j)
            let xh0 = UInt8(truncatingIfNeeded: (qh >> UInt32(j)) << 4) & 0x10
            let xh1 = UInt8(truncatingIfNeeded: qh >> UInt32(j + 12)) & 0x10
            let x0 = Int32((q & 0x0F) | xh0) - 16
            let x1 = Int32((q >> 4) | xh1) - 16
            y[j] = Float(x0) * d
            y[j + 16] = Float(x1) * d
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let p = blocks + b * typeSize
            let out = y + b * blockSize
            let d = SIMD16<Float>(repeating: loadHalf(p, 0))
            let (h0, h1) = highBits(loadU32(p, 2))
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 6, as: SIMD16<UInt8>.self))
            let sixteen = SIMD16<Int32>(repeating: 16)
            storeSIMD(toFloat(widen(lo | h0) &- sixteen) * d, out)
            storeSIMD(toFloat(widen(hi | h1) &- sixteen) * d, out + 16)
        }
    }
}

/// Q5_1: 24 bytes / 32 elements — `d: f16`, `m: f16`, `qh: u32`, `qs: 16 bytes`; y = q·d + m.
public enum Q5_1: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.q5_1
    public static let blockSize = 32
    public static let typeSize = 24

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var min = Float.greatestFiniteMagnitude
        var max = -Float.greatestFiniteMagnitude
        for j in 0 ..< 32 {
            let v = x[j]
            if v < min { min = v }
            if v > max { max = v }
        }
        let d = (max - min) / 31
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, block, 0)
        storeHalf(min, block, 2)
        var qh: UInt32 = 0
        for j in 0 ..< 16 {
            let x0 = (x[j] - min) * id
            let x1 = (x[16 + j] - min) * id
            // No clamp in the C reference: `(uint8_t)(x0 + 0.5f)`.
            let xi0 = UInt32(UInt8(bitPattern: truncToInt8(x0 + 0.5)))
            let xi1 = UInt32(UInt8(bitPattern: truncToInt8(x1 + 0.5)))
            block.storeBytes(of: UInt8(truncatingIfNeeded: (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)), toByteOffset: 8 + j, as: UInt8.self)
            qh |= ((xi0 & 0x10) >> 4) << UInt32(j)
            qh |= ((xi1 & 0x10) >> 4) << UInt32(j + 16)
        }
        block.storeBytes(of: qh, toByteOffset: 4, as: UInt32.self)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(block, 0)
        let m = loadHalf(block, 2)
        let qh = loadU32(block, 4)
        for j in 0 ..< 16 {
            let q = loadU8(block, 8 + j)
            let xh0 = UInt8(truncatingIfNeeded: (qh >> UInt32(j)) << 4) & 0x10
            let xh1 = UInt8(truncatingIfNeeded: qh >> UInt32(j + 12)) & 0x10
            let x0 = Int32((q & 0x0F) | xh0)
            let x1 = Int32((q >> 4) | xh1)
            y[j] = Float(x0) * d + m
            y[j + 16] = Float(x1) * d + m
        }
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            let p = blocks + b * typeSize
            let out = y + b * blockSize
            let d = SIMD16<Float>(repeating: loadHalf(p, 0))
            let m = SIMD16<Float>(repeating: loadHalf(p, 2))
            let (h0, h1) = highBits(loadU32(p, 4))
            let (lo, hi) = nibbles(p.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self))
            storeSIMD(toFloat(widen(lo | h0)) * d + m, out)
            storeSIMD(toFloat(widen(hi | h1)) * d + m, out + 16)
        }
    }
}
