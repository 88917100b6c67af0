/// The code tables of bitsandbytes 0.50.2 (`functional.get_4bit_type`, `create_dynamic_map`).
///
/// REFERENCE §5.1 and §5.3. Every table is float32 and bit-exact with the one bitsandbytes builds.
public enum BNBCodes {
    /// NF4 levels, index = 4-bit code. Ascending; the float32 values are given by bit pattern because
    /// bitsandbytes ships them as literals (quantiles of N(0,1), normalised to [-1, 1]).
    public static let nf4: [Float] = [
        0xbf80_0000, 0xbf32_39b1, 0xbf06_6b30, 0xbeca_32a0, 0xbe91_a24d, 0xbe3d_353f, 0xbdba_7871, 0x0000_0000,
        0x3da2_faff, 0x3e24_cae3, 0x3e7c_04dd, 0x3ead_033a, 0x3ee1_a4b8, 0x3f10_07ab, 0x3f39_13b3, 0x3f80_0000,
    ].map { Float(bitPattern: $0) }

    /// FP4 (E2M1, exponent bias 2) levels, index = 4-bit pattern `s ee m`, normalised by the
    /// largest magnitude 12 in float32 as `get_4bit_type("fp4")` does (`data.div_(data.abs().max())`).
    /// Pattern 8 is **+0.0**: bitsandbytes writes it as the Python integer `-0`, which is plain 0.
    public static let fp4: [Float] = ([0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3] as [Float])
        .map { $0 / 12 }

    /// The signed dynamic 8-bit map (`create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`),
    /// 256 ascending float32 values from -0.99296874 to 1.0; the nested code of double quantization.
    public static let dynamicSigned: [Float] = makeDynamicSignedMap()

    /// Builds the dynamic map the way bitsandbytes does, in float32 (REFERENCE §5.3):
    /// decade `i` (0…6) spans 10^(i-6)…10^(i-5) with the midpoints of a `torch.linspace(0.1, 1, 2^i + 1)`.
    static func makeDynamicSignedMap() -> [Float] {
        // Python evaluates `10 ** (i - 6)` as a double; torch then rounds the scalar to float32.
        let decades: [Double] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
        var values: [Float] = []
        values.reserveCapacity(256)
        for i in 0 ..< 7 {
            let n = (1 << i) + 1
            let start: Float = 0.1
            let end: Float = 1.0
            let step = (end - start) / Float(n - 1)
            // torch.linspace fills the first half forward from `start` and the second half backward
            // from `end`, each `start ± step·k` rounded once (computed exactly in Double here).
            var bounds = [Float](repeating: 0, count: n)
            for k in 0 ..< n {
                bounds[k] = k < n / 2
                    ? Float(Double(start) + Double(step) * Double(k))
                    : Float(Double(end) - Double(step) * Double(n - 1 - k))
            }
            let scale = Float(decades[i])
            var means: [Float] = []
            for k in 0 ..< n - 1 { means.append((bounds[k] + bounds[k + 1]) / 2) }
            values += means.map { scale * $0 }
            values += means.map { -scale * $0 }
        }
        values.append(0)
        values.append(1)
        values.sort()
        return values
    }
}

/// The bucket boundaries bitsandbytes' default 4-bit kernel uses (`_get_4bit_quantize_bounds`):
/// the table sorted ascending, the 15 float32 midpoints of neighbours, and the map from sorted
/// position back to the 4-bit code.
struct FourBitBuckets: Sendable {
    /// `(sorted[i] + sorted[i+1]) / 2` in float32.
    let midpoints: [Float]
    /// Sorted position → 4-bit code (identity for NF4).
    let codeOfBucket: [UInt8]
    /// Packed byte of two bucket indices → packed byte of their codes (identity for NF4).
    let packedRemap: [UInt8]
    /// The code bitsandbytes pads an odd element count with: the code of 0.0.
    let padCode: UInt8

    init(table: [Float], sortedOrder: [Int]) {
        var mids: [Float] = []
        for i in 0 ..< 15 { mids.append((table[sortedOrder[i]] + table[sortedOrder[i + 1]]) / 2) }
        midpoints = mids
        let codes = sortedOrder.map { UInt8($0) }
        codeOfBucket = codes
        packedRemap = (0 ..< 256).map { byte in (codes[byte >> 4] << 4) | codes[byte & 0xF] }
        // Bucket of 0.0: the number of midpoints strictly below it.
        padCode = codes[mids.filter { $0 < 0 }.count]
    }

    static let nf4 = FourBitBuckets(table: BNBCodes.nf4, sortedOrder: Array(0 ..< 16))
    /// `torch.argsort` of the FP4 table as bitsandbytes 0.50.2 / torch 2.13 produce it. Codes 0 and 8
    /// are both 0.0 and tie; code 0 sorts first, so 0.0 itself gets code 0 and values in
    /// (0, 0.0026] get code 8.
    static let fp4 = FourBitBuckets(table: BNBCodes.fp4, sortedOrder: [11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3])
}
