import TensorCore

/// bitsandbytes 4-bit blockwise quantization (NF4, FP4), bit-exact with bitsandbytes 0.50.2 on CPU.
///
/// Layout (REFERENCE §5.2): the tensor is flattened row-major and cut into blocks of `blockSize`
/// consecutive elements (the last block may be short). Each block stores its float32 absmax; each
/// element a 4-bit code, two per byte with the **first element in the high nibble**
/// (`byte[k] = code[2k] << 4 | code[2k+1]`); an odd count is padded with the code of 0.0.
///
/// Quantization follows bitsandbytes' default (pure torch) kernel, which is what its CPU backend runs:
/// - full block: `s = x * (1 / max(absmax, 1e-38))`; short last block: `s = x / max(absmax, 1e-38)`
///   (true division there), and the short block's *stored* absmax is the clamped one;
/// - code = `bucketize(s, midpoints)`: the number of table midpoints `m` with `!(m >= s)`, so a value
///   exactly on a midpoint takes the lower code and NaN takes the top bucket; the clamp of `s` to
///   [-1, 1] bitsandbytes applies first cannot change a bucket, so it is skipped;
/// - absmax is NaN when the block holds a NaN (torch's `max` propagates it).
public enum FourBit {
    /// The 4-bit data type.
    public enum Kind: String, Sendable, CaseIterable {
        case nf4, fp4

        /// The 16 float32 levels, index = 4-bit code (bitsandbytes' `quant_map`).
        public var codeTable: [Float] { self == .nf4 ? BNBCodes.nf4 : BNBCodes.fp4 }

        var buckets: FourBitBuckets { self == .nf4 ? .nf4 : .fp4 }
    }

    /// Block sizes bitsandbytes accepts for 4-bit quantization.
    public static let validBlockSizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]

    /// Throws unless `blockSize` is one of ``validBlockSizes``.
    public static func validate(blockSize: Int) throws(BNBError) {
        guard validBlockSizes.contains(blockSize) else { throw .invalidBlockSize(blockSize) }
    }

    /// Number of absmax values (blocks) for `elementCount` elements.
    public static func blockCount(elementCount: Int, blockSize: Int) -> Int {
        (elementCount + blockSize - 1) / blockSize
    }

    /// Bytes of packed codes for `elementCount` elements: `(n + 1) / 2`.
    public static func packedByteCount(elementCount: Int) -> Int { (elementCount + 1) / 2 }

    /// Elements of the smallest 4-bit block; parallel chunks hold at least this many.
    static let elementsPerChunk = 16384

    // MARK: - Quantize

    /// Quantizes `x` to packed 4-bit codes and per-block absmax (the fast path: SIMD, parallel over blocks).
    ///
    /// The output bytes do not depend on `threads`.
    /// - Parameters:
    ///   - x: the flattened tensor, float32 (upcast f16/bf16 exactly before calling).
    ///   - kind: NF4 or FP4.
    ///   - blockSize: 32 … 4096, a power of two (bitsandbytes' default 64).
    ///   - packed: exactly ``packedByteCount(elementCount:)`` bytes.
    ///   - absmax: exactly ``blockCount(elementCount:blockSize:)`` floats.
    ///   - threads: upper bound on worker threads.
    /// - Throws: ``BNBError/invalidBlockSize(_:)`` or ``BNBError/sizeMismatch(what:expected:actual:)``.
    public static func quantize(
        _ x: UnsafeBufferPointer<Float>, kind: Kind, blockSize: Int = 64,
        into packed: UnsafeMutableRawBufferPointer, absmax: UnsafeMutableBufferPointer<Float>, threads: Int = 1
    ) throws(BNBError) {
        try checkQuantizeArguments(count: x.count, blockSize: blockSize, packed: packed.count, absmax: absmax.count)
        let count = x.count
        guard count > 0, let src = x.baseAddress, let dst = packed.baseAddress, let scales = absmax.baseAddress
        else { return }
        let blocks = blockCount(elementCount: count, blockSize: blockSize)
        let buckets = kind.buckets
        let io = SendablePointers(input: src, output: dst.assumingMemoryBound(to: UInt8.self))
        nonisolated(unsafe) let absmaxOut = scales
        parallelChunks(count: blocks, threads: threads, minimumChunk: max(1, elementsPerChunk / blockSize)) { range in
            buckets.midpoints.withUnsafeBufferPointer { mids in
                buckets.packedRemap.withUnsafeBufferPointer { remap in
                    for block in range {
                        let start = block * blockSize
                        let n = min(blockSize, count - start)
                        absmaxOut[block] = quantizeBlockSIMD(
                            io.input + start, count: n, isShortLast: n < blockSize,
                            midpoints: mids, remap: kind == .fp4 ? remap : nil, padCode: buckets.padCode,
                            into: io.output + start / 2)
                    }
                }
            }
        }
    }

    /// The scalar reference of ``quantize(_:kind:blockSize:into:absmax:threads:)``: one element at a
    /// time, written to mirror bitsandbytes' torch code. Same bytes as the fast path.
    public static func quantizeScalar(
        _ x: UnsafeBufferPointer<Float>, kind: Kind, blockSize: Int = 64,
        into packed: UnsafeMutableRawBufferPointer, absmax: UnsafeMutableBufferPointer<Float>
    ) throws(BNBError) {
        try checkQuantizeArguments(count: x.count, blockSize: blockSize, packed: packed.count, absmax: absmax.count)
        let buckets = kind.buckets
        let count = x.count
        let blocks = blockCount(elementCount: count, blockSize: blockSize)
        let tiny: Float = 1e-38
        for block in 0 ..< blocks {
            let start = block * blockSize
            let end = min(start + blockSize, count)
            // torch.max: NaN wins over everything.
            var m: Float = 0
            var sawNaN = false
            for i in start ..< end {
                let a = abs(x[i])
                if a.isNaN { sawNaN = true } else if a > m { m = a }
            }
            if sawNaN { m = .nan }
            let clamped = m < tiny ? tiny : m   // NaN stays NaN, like torch.clamp
            let isShortLast = end - start < blockSize
            absmax[block] = isShortLast ? clamped : m
            let reciprocal = 1 / clamped
            for i in start ..< end {
                let s = isShortLast ? x[i] / clamped : x[i] * reciprocal
                // torch.bucketize (right=False): index of the first midpoint m with m >= s.
                var bucket = 0
                while bucket < 15 && !(buckets.midpoints[bucket] >= s) { bucket += 1 }
                let code = buckets.codeOfBucket[bucket]
                let byte = i / 2
                if i % 2 == 0 {
                    packed[byte] = code << 4 | buckets.padCode
                } else {
                    packed[byte] = (packed[byte] & 0xF0) | code
                }
            }
        }
    }

    static func checkQuantizeArguments(count: Int, blockSize: Int, packed: Int, absmax: Int) throws(BNBError) {
        try validate(blockSize: blockSize)
        let bytes = packedByteCount(elementCount: count)
        guard packed == bytes else { throw .sizeMismatch(what: "packed 4-bit buffer", expected: bytes, actual: packed) }
        let blocks = blockCount(elementCount: count, blockSize: blockSize)
        guard absmax == blocks else { throw .sizeMismatch(what: "absmax buffer", expected: blocks, actual: absmax) }
    }

    /// Quantizes one block; returns the absmax to store. `out` points at the block's first byte
    /// (blocks start on even elements because every block size is even).
    @inline(__always)
    static func quantizeBlockSIMD(
        _ x: UnsafePointer<Float>, count: Int, isShortLast: Bool,
        midpoints: UnsafeBufferPointer<Float>, remap: UnsafeBufferPointer<UInt8>?, padCode: UInt8,
        into out: UnsafeMutablePointer<UInt8>
    ) -> Float {
        let raw = UnsafeRawPointer(x)
        // absmax: lanewise max ignoring NaN, with NaN tracked separately (torch.max propagates NaN).
        var m8 = SIMD8<Float>(repeating: 0)
        var nan8 = SIMDMask<SIMD8<Int32>>(repeating: false)
        let vectorCount = count & ~7
        var i = 0
        while i < vectorCount {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let a = unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
            m8.replace(with: a, where: m8 .< a)
            nan8 .|= v .!= v
            i += 8
        }
        var m = horizontalMax(m8)
        var sawNaN = any(nan8)
        while i < count {
            let a = abs(x[i])
            if a.isNaN { sawNaN = true } else if a > m { m = a }
            i += 1
        }
        if sawNaN { m = .nan }
        let tiny: Float = 1e-38
        let clamped = m < tiny ? tiny : m

        // Codes: bucket = 15 - #(midpoints m with m >= s). 16 elements → 8 packed bytes per step.
        let reciprocal = SIMD8<Float>(repeating: 1 / clamped)
        let divisor = SIMD8<Float>(repeating: clamped)
        i = 0
        let pairVectorCount = count & ~15
        while i < pairVectorCount {
            let v0 = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let v1 = raw.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            let s0 = isShortLast ? v0 / divisor : v0 * reciprocal
            let s1 = isShortLast ? v1 / divisor : v1 * reciprocal
            var c0 = SIMD8<Int32>(repeating: 15)
            var c1 = SIMD8<Int32>(repeating: 15)
            for j in 0 ..< 15 {
                let mid = SIMD8<Float>(repeating: midpoints[j])
                // A true lane of the mask is all ones (-1), so adding it counts down.
                c0 &+= unsafeBitCast(mid .>= s0, to: SIMD8<Int32>.self)
                c1 &+= unsafeBitCast(mid .>= s1, to: SIMD8<Int32>.self)
            }
            let hi = SIMD8<Int32>(lowHalf: c0.evenHalf, highHalf: c1.evenHalf)
            let lo = SIMD8<Int32>(lowHalf: c0.oddHalf, highHalf: c1.oddHalf)
            var bytes = SIMD8<UInt8>(truncatingIfNeeded: (hi &<< 4) | lo)
            if let remap {
                for k in 0 ..< 8 { bytes[k] = remap[Int(bytes[k])] }
            }
            UnsafeMutableRawPointer(out + i / 2).storeBytes(of: bytes, as: SIMD8<UInt8>.self)
            i += 16
        }
        // Tail (only in a short last block): the same arithmetic one element at a time.
        while i < count {
            let s = isShortLast ? x[i] / clamped : x[i] * (1 / clamped)
            var bucket: UInt8 = 15
            for j in 0 ..< 15 where midpoints[j] >= s { bucket -= 1 }
            let code = remap.map { $0[Int(bucket)] & 0x0F } ?? bucket
            if i % 2 == 0 {
                out[i / 2] = code << 4 | padCode
            } else {
                out[i / 2] = (out[i / 2] & 0xF0) | code
            }
            i += 1
        }
        return isShortLast ? clamped : m
    }

    // MARK: - Dequantize

    /// Dequantizes packed codes: `out[i] = codeTable[code_i] * absmax[i / blockSize]` in float32,
    /// as bitsandbytes' CPU `dequantize_4bit` does. Parallel over blocks; same values for any `threads`.
    /// bitsandbytes' bf16/f16 output is these values rounded to nearest-even (checked against 0.50.2).
    /// - Parameters:
    ///   - packed: ``packedByteCount(elementCount:)`` bytes for `out.count` elements.
    ///   - absmax: one float per block (already reconstructed when double-quantized).
    ///   - out: the flattened output, its count is the element count.
    /// - Throws: ``BNBError`` when a size does not match.
    public static func dequantize(
        _ packed: UnsafeRawBufferPointer, absmax: UnsafeBufferPointer<Float>, kind: Kind, blockSize: Int = 64,
        into out: UnsafeMutableBufferPointer<Float>, threads: Int = 1
    ) throws(BNBError) {
        try checkDequantizeArguments(count: out.count, blockSize: blockSize, packed: packed.count, absmax: absmax.count)
        let count = out.count
        guard count > 0, let src = packed.baseAddress, let dst = out.baseAddress, let scales = absmax.baseAddress
        else { return }
        let dequantizer = BlockDequantizer(kind: kind)
        let io = SendablePointers(input: src.assumingMemoryBound(to: UInt8.self), output: dst)
        nonisolated(unsafe) let scaleIn = scales
        let blocks = blockCount(elementCount: count, blockSize: blockSize)
        parallelChunks(count: blocks, threads: threads, minimumChunk: max(1, elementsPerChunk / blockSize)) { range in
            let start = range.lowerBound * blockSize, end = min(count, range.upperBound * blockSize)
            dequantizer.dequantize(packed: io.input, absmax: scaleIn, blockSize: blockSize, elements: start ..< end,
                                   into: io.output + start)
        }
    }

    /// Dequantization of any run of elements into a place the caller chooses: what
    /// ``dequantize(_:absmax:kind:blockSize:into:threads:)`` does per chunk, for kernels that
    /// dequantize a matrix piece by piece (a tile just before its product) instead of all at once.
    public struct BlockDequantizer: Sendable {
        /// Both levels of a byte at once: pairs[byte] = (table[byte >> 4], table[byte & 15]).
        private let pairs: [SIMD2<Float>]

        public init(kind: Kind) {
            let table = kind.codeTable
            pairs = (0 ..< 256).map { SIMD2<Float>(table[$0 >> 4], table[$0 & 0xF]) }
        }

        /// `out[i - elements.lowerBound] = codeTable[code_i] · absmax[i / blockSize]` for `i` in
        /// `elements` (indices into the whole tensor; `packed` and `absmax` are the whole tensor's).
        /// The caller guarantees the ranges lie inside the tensor.
        public func dequantize(packed: UnsafePointer<UInt8>, absmax: UnsafePointer<Float>, blockSize: Int,
                               elements: Range<Int>, into out: UnsafeMutablePointer<Float>) {
            pairs.withUnsafeBufferPointer { pairs in
                let base = elements.lowerBound
                var i = base
                while i < elements.upperBound {
                    let block = i / blockSize
                    let end = min(elements.upperBound, (block + 1) * blockSize)
                    let scale = SIMD2<Float>(repeating: absmax[block])
                    if i % 2 == 1 {   // a low nibble first
                        out[i - base] = pairs[Int(packed[i / 2])].y * scale.y
                        i += 1
                    }
                    let o = UnsafeMutableRawPointer(out + (i - base))
                    let bytes = packed + i / 2
                    let pairCount = (end - i) / 2
                    for k in 0 ..< pairCount {
                        o.storeBytes(of: pairs[Int(bytes[k])] * scale, toByteOffset: k * 8, as: SIMD2<Float>.self)
                    }
                    i += 2 * pairCount
                    if i < end {   // a high nibble last
                        out[i - base] = pairs[Int(packed[i / 2])].x * scale.x
                        i += 1
                    }
                }
            }
        }
    }

    /// The scalar reference of ``dequantize(_:absmax:kind:blockSize:into:threads:)``.
    public static func dequantizeScalar(
        _ packed: UnsafeRawBufferPointer, absmax: UnsafeBufferPointer<Float>, kind: Kind, blockSize: Int = 64,
        into out: UnsafeMutableBufferPointer<Float>
    ) throws(BNBError) {
        try checkDequantizeArguments(count: out.count, blockSize: blockSize, packed: packed.count, absmax: absmax.count)
        let table = kind.codeTable
        for i in 0 ..< out.count {
            let byte = packed[i / 2]
            let code = i % 2 == 0 ? byte >> 4 : byte & 0x0F
            out[i] = table[Int(code)] * absmax[i / blockSize]
        }
    }

    static func checkDequantizeArguments(count: Int, blockSize: Int, packed: Int, absmax: Int) throws(BNBError) {
        try validate(blockSize: blockSize)
        let bytes = packedByteCount(elementCount: count)
        guard packed == bytes else { throw .sizeMismatch(what: "packed 4-bit data", expected: bytes, actual: packed) }
        let blocks = blockCount(elementCount: count, blockSize: blockSize)
        guard absmax == blocks else { throw .sizeMismatch(what: "absmax", expected: blocks, actual: absmax) }
    }
}

/// Largest lane of `v`, as a fixed tree of scalar `max` (the generic `SIMD.max()` reduction
/// is not vectorized and showed up in profiles). Lanes hold |x| ≥ 0 or NaN-free values here.
@inline(__always)
func horizontalMax(_ v: SIMD8<Float>) -> Float {
    let a = max(v[0], v[1]), b = max(v[2], v[3]), c = max(v[4], v[5]), d = max(v[6], v[7])
    return max(max(a, b), max(c, d))
}
