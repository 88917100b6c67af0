/// Element count of a shape, or nil if it overflows `Int` or has a negative dimension.
public func elementCount(of shape: [Int]) -> Int? {
    var total = 1
    for dim in shape {
        guard dim >= 0 else { return nil }
        let (product, overflow) = total.multipliedReportingOverflow(by: dim)
        if overflow { return nil }
        total = product
    }
    return total
}

/// Decoding and encoding the dense float dtypes to and from `Float`, for casts and for numerics.
public enum DenseFloat {
    /// Decodes `count` elements of `dtype` from `source` into `destination` as `Float`.
    /// - Precondition: `dtype.isConvertibleFloat` and both buffers hold `count` elements.
    public static func decode(_ source: UnsafeRawBufferPointer, dtype: DType, into destination: UnsafeMutableBufferPointer<Float>) {
        let count = destination.count
        precondition(source.count >= count * dtype.bitCount / 8)
        switch dtype {
        case .f32:
            for i in 0 ..< count { destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            // Branch-free scalar code the compiler vectorizes (little-endian hosts only).
            let halves = source.bindMemory(to: UInt16.self)
            for i in 0 ..< count { destination[i] = HalfFloatSIMD.float(f16Bits: halves[i]) }
        case .bf16:
            for i in 0 ..< count { destination[i] = HalfFloat.float(bf16Bits: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        default:
            preconditionFailure("DenseFloat.decode: \(dtype) is not a float dtype")
        }
    }

    /// Encodes `source` as `dtype` into `destination` (round to nearest even for f16 and bf16).
    public static func encode(_ source: UnsafeBufferPointer<Float>, as dtype: DType, into destination: UnsafeMutableRawBufferPointer) {
        let count = source.count
        precondition(destination.count >= count * dtype.bitCount / 8)
        switch dtype {
        case .f32:
            for i in 0 ..< count { destination.storeBytes(of: source[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        case .f16:
            let halves = destination.bindMemory(to: UInt16.self)
            for i in 0 ..< count { halves[i] = HalfFloatSIMD.f16Bits(source[i]) }
        case .bf16:
            var i = 0
            while i + 8 <= count {
                let f = UnsafeRawPointer(source.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                let h = SIMD8<UInt16>(truncatingIfNeeded: HalfFloatSIMD.bf16Bits(f))
                destination.storeBytes(of: h, toByteOffset: 2 * i, as: SIMD8<UInt16>.self)
                i += 8
            }
            while i < count {
                destination.storeBytes(of: HalfFloat.bf16Bits(source[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                i += 1
            }
        default:
            preconditionFailure("DenseFloat.encode: \(dtype) is not a float dtype")
        }
    }

    /// Converts `count` elements between two float dtypes, going through `Float` (exact for
    /// widening, round to nearest even for narrowing). Equal dtypes copy the bytes.
    public static func convert(
        _ source: UnsafeRawBufferPointer, from sourceType: DType,
        into destination: UnsafeMutableRawBufferPointer, as destinationType: DType, count: Int
    ) {
        if sourceType == destinationType {
            let n = count * sourceType.bitCount / 8
            destination.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: n)
            return
        }
        // Work in chunks so the scratch buffer stays small whatever the tensor size.
        let chunk = 16384
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { scratch in
            var start = 0
            while start < count {
                let n = min(chunk, count - start)
                let part = UnsafeMutableBufferPointer(rebasing: scratch[0 ..< n])
                let srcBytes = sourceType.bitCount / 8, dstBytes = destinationType.bitCount / 8
                decode(UnsafeRawBufferPointer(rebasing: source[start * srcBytes ..< (start + n) * srcBytes]), dtype: sourceType, into: part)
                encode(UnsafeBufferPointer(part), as: destinationType,
                       into: UnsafeMutableRawBufferPointer(rebasing: destination[start * dstBytes ..< (start + n) * dstBytes]))
                start += n
            }
        }
    }
}
