/// A sorted 256-entry code table plus the 65536-entry lookup table bitsandbytes' CPU kernel
/// quantizes through.
public struct BlockwiseCodebook: Sendable {
    /// The 256 ascending float32 levels (bitsandbytes' `code`).
    public let code: [Float]
    /// Grid point `i` of [-1, 1] (`-1 + 2i/65535`) → index of the first code whose midpoint with
    /// its upper neighbour is not below the grid point.
    let lut: [UInt8]

    /// The signed dynamic map, the nested code of double quantization.
    public static let dynamicSigned: BlockwiseCodebook = {
        // The table is a constant of this module, ascending by construction.
        let code = BNBCodes.dynamicSigned
        return BlockwiseCodebook(validated: code)
    }()

    /// - Throws: ``BNBError/invalidCodebook(_:)`` unless `code` is 256 ascending, non-NaN values.
    public init(code: [Float]) throws(BNBError) {
        guard code.count == 256 else { throw .invalidCodebook("\(code.count) entries, expected 256") }
        for i in 1 ..< 256 where !(code[i - 1] <= code[i]) {
            throw .invalidCodebook("entries \(i - 1) and \(i) are not ascending")
        }
        self.init(validated: code)
    }

    private init(validated code: [Float]) {
        self.code = code
        // bitsandbytes `build_quantize_lut`: midpoints `0.5f * (c[i] + c[i+1])`, grid value
        // `(2.0f * i) / 65535 - 1`, advance while the midpoint is strictly below the grid value.
        var midpoints = [Float](repeating: 0, count: 255)
        for i in 0 ..< 255 { midpoints[i] = 0.5 * (code[i] + code[i + 1]) }
        var lut = [UInt8](repeating: 0, count: 65536)
        var index = 0
        for i in 0 ..< 65536 {
            let value = (Float(i) + Float(i)) / 65535 - 1
            while index < 255 && midpoints[index] < value { index += 1 }
            lut[i] = UInt8(index)
        }
        self.lut = lut
    }

    /// Code index for a value already divided by its block absmax (bitsandbytes
    /// `lut[norm_to_lut_index(v)]`): clamp to [-1, 1], then the grid index
    /// `trunc(fma((s + 1) * 0.5, 65535, 0.5))`. The CPU library is built with FMA, so the last
    /// multiply-add rounds once. NaN becomes grid index 0 (x86 `cvttss2si` gives 0x80000000, whose
    /// low 16 bits are 0).
    @inline(__always)
    func index(ofNormalized value: Float) -> UInt8 {
        let s = value < -1 ? -1 : (1 < value ? 1 : value)
        let f = (0.5 as Float).addingProduct((s + 1) * 0.5, 65535)
        guard !f.isNaN else { return lut[0] }
        return lut[Int(UInt16(truncatingIfNeeded: Int32(f)))]
    }
}

/// bitsandbytes' 8-bit blockwise quantization with an arbitrary sorted code (`quantize_blockwise`),
/// as its C++ CPU kernel (`cquantize_blockwise_cpu_fp32`, 0.50.2) computes it — the path double
/// quantization sends the 4-bit absmax values through.
///
/// Per block: `absmax = max |x|` ignoring NaN (0 for an all-NaN block); a zero absmax gives all
/// codes 0; otherwise `code = lut[grid(x * (1 / absmax))]` (see ``BlockwiseCodebook``). This is
/// **not** the nearest code in general: the 65536-point grid is coarser than the dynamic map near 0.
public enum Blockwise8 {
    /// Number of absmax values for `elementCount` elements.
    public static func blockCount(elementCount: Int, blockSize: Int) -> Int {
        (elementCount + blockSize - 1) / blockSize
    }

    /// Quantizes `x` in blocks of `blockSize` to one code byte per element.
    /// - Throws: ``BNBError`` for a non-positive block size or mis-sized outputs.
    public static func quantize(
        _ x: UnsafeBufferPointer<Float>, codebook: BlockwiseCodebook = .dynamicSigned, blockSize: Int,
        codes: UnsafeMutableBufferPointer<UInt8>, absmax: UnsafeMutableBufferPointer<Float>
    ) throws(BNBError) {
        guard blockSize > 0 else { throw .invalidNestedBlockSize(blockSize) }
        guard codes.count == x.count else { throw .sizeMismatch(what: "8-bit codes", expected: x.count, actual: codes.count) }
        let blocks = blockCount(elementCount: x.count, blockSize: blockSize)
        guard absmax.count == blocks else { throw .sizeMismatch(what: "8-bit absmax", expected: blocks, actual: absmax.count) }
        for block in 0 ..< blocks {
            let start = block * blockSize
            let end = min(start + blockSize, x.count)
            // `std::max(m, fabs(v))` = `m < a ? a : m` skips NaN; OpenMP then folds in the initial 0.
            var m = -Float.infinity
            for i in start ..< end {
                let a = abs(x[i])
                if m < a { m = a }
            }
            let blockMax: Float = 0 > m ? 0 : m
            absmax[block] = blockMax
            if blockMax == 0 {
                for i in start ..< end { codes[i] = 0 }
                continue
            }
            let inverse = 1 / blockMax
            for i in start ..< end { codes[i] = codebook.index(ofNormalized: x[i] * inverse) }
        }
    }

    /// `out[i] = code[codes[i]] * absmax[i / blockSize]` in float32 (bitsandbytes' CPU dequantize).
    public static func dequantize(
        codes: UnsafeBufferPointer<UInt8>, absmax: UnsafeBufferPointer<Float>, code: [Float], blockSize: Int,
        into out: UnsafeMutableBufferPointer<Float>
    ) throws(BNBError) {
        guard blockSize > 0 else { throw .invalidNestedBlockSize(blockSize) }
        guard code.count == 256 else { throw .invalidCodebook("\(code.count) entries, expected 256") }
        guard out.count == codes.count else { throw .sizeMismatch(what: "8-bit output", expected: codes.count, actual: out.count) }
        let blocks = blockCount(elementCount: codes.count, blockSize: blockSize)
        guard absmax.count == blocks else { throw .sizeMismatch(what: "8-bit absmax", expected: blocks, actual: absmax.count) }
        for i in 0 ..< codes.count { out[i] = code[Int(codes[i])] * absmax[i / blockSize] }
    }
}
