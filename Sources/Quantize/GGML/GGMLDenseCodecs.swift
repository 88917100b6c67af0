public import TensorCore

// The unquantized ggml types as one-element "blocks", so callers can treat every tensor type the
// same way. Conversions follow ggml: f32→f16 round to nearest even (`Float16(_:)`), f32→bf16 by
// `HalfFloat.bf16Bits` (nearest even, NaN kept quiet), both widenings exact.

/// F32: 4 bytes / element, stored as is.
public enum F32: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.f32
    public static let blockSize = 1
    public static let typeSize = 4

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        block.storeBytes(of: x[0].bitPattern, as: UInt32.self)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        y[0] = Float(bitPattern: block.loadUnaligned(as: UInt32.self))
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(y).copyMemory(from: blocks, byteCount: count * 4)
    }
}

/// F16: 2 bytes / element, IEEE binary16.
public enum F16: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.f16
    public static let blockSize = 1
    public static let typeSize = 2

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        block.storeBytes(of: HalfFloat.f16Bits(x[0]), as: UInt16.self)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        y[0] = HalfFloat.float(f16Bits: block.loadUnaligned(as: UInt16.self))
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= count {
            let h = blocks.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)
            storeSIMD(SIMD8<Float>(h), y + i)
            i += 8
        }
        while i < count {
            y[i] = HalfFloat.float(f16Bits: blocks.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    }
}

/// BF16: 2 bytes / element, the top half of an f32.
public enum BF16: GGMLBlockQuantizer {
    public static let ggmlType = GGMLType.bf16
    public static let blockSize = 1
    public static let typeSize = 2

    public static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        block.storeBytes(of: HalfFloat.bf16Bits(x[0]), as: UInt16.self)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        y[0] = HalfFloat.float(bf16Bits: block.loadUnaligned(as: UInt16.self))
    }

    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= count {
            let h = blocks.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            let bits = SIMD8<UInt32>(truncatingIfNeeded: h) &<< 16
            UnsafeMutableRawPointer(y + i).storeBytes(of: bits, as: SIMD8<UInt32>.self)
            i += 8
        }
        while i < count {
            y[i] = HalfFloat.float(bf16Bits: blocks.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    }
}
