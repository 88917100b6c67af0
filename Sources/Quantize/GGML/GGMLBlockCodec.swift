public import TensorCore

/// One ggml block type: how many elements a block holds, how many bytes it takes, and how to turn
/// a block back into floats.
///
/// Conformers are caseless enums (`Q4_K`, `IQ4_NL`, …); everything is static. The block kernels work
/// on raw pointers and trust their caller: ``GGMLQuantizer`` checks every buffer size before it calls
/// them, so a kernel never sees a partial block.
///
/// `dequantizeBlock` is the scalar reference, written literally from ggml's `dequantize_row_*`
/// (same operations per element, same order, no FMA). `dequantizeBlockFast` is what the row API
/// runs; types with a SIMD kernel override it, and the tests hold it bit-equal to the reference.
public protocol GGMLBlockCodec: SendableMetatype {
    /// The ggml type id this codec reads and writes.
    static var ggmlType: GGMLType { get }
    /// Elements per block.
    static var blockSize: Int { get }
    /// Bytes per block.
    static var typeSize: Int { get }

    /// Decodes one block (`typeSize` bytes at `block`) into `blockSize` floats at `y`. Scalar reference.
    static func dequantizeBlock(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>)

    /// Decodes `count` consecutive blocks; same floats as calling ``dequantizeBlock(_:into:)`` on each.
    static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>)
}

/// A block type wconv can also produce, bit-exact with ggml's `quantize_row_*_ref` (what
/// `llama-quantize` runs when no importance matrix is given).
public protocol GGMLBlockQuantizer: GGMLBlockCodec {
    /// Encodes `blockSize` floats at `x` into one block of `typeSize` bytes at `block`.
    static func quantizeBlock(_ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer)
}

extension GGMLBlockCodec {
    /// The default fast path is the scalar reference, block by block.
    public static func dequantizeBlocksFast(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            dequantizeBlock(blocks + b * typeSize, into: y + b * blockSize)
        }
    }

    /// Decodes `count` blocks with the scalar reference only (for tests and comparisons).
    public static func dequantizeBlocksReference(_ blocks: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0 ..< count {
            dequantizeBlock(blocks + b * typeSize, into: y + b * blockSize)
        }
    }
}

/// Every codec wconv has, keyed by ggml type id.
public enum GGMLCodecs {
    /// Codecs that can quantize (and dequantize).
    public static let quantizers: [any GGMLBlockQuantizer.Type] = [
        F32.self, F16.self, BF16.self,
        Q4_0.self, Q4_1.self, Q5_0.self, Q5_1.self, Q8_0.self,
        Q2_K.self, Q3_K.self, Q4_K.self, Q5_K.self, Q6_K.self,
    ]

    /// Codecs that can only dequantize.
    public static let dequantizeOnly: [any GGMLBlockCodec.Type] = [
        IQ4_NL.self, IQ4_XS.self, MXFP4.self, TQ1_0.self, TQ2_0.self,
        IQ2_XXS.self, IQ2_XS.self, IQ2_S.self, IQ3_XXS.self, IQ3_S.self, IQ1_S.self, IQ1_M.self,
    ]

    /// Every codec.
    public static var all: [any GGMLBlockCodec.Type] {
        quantizers.map { $0 as any GGMLBlockCodec.Type } + dequantizeOnly
    }

    /// The codec that decodes `type`, or nil if wconv cannot.
    public static func codec(for type: GGMLType) -> (any GGMLBlockCodec.Type)? {
        if let q = quantizer(for: type) { return q }
        return dequantizeOnly.first { $0.ggmlType == type }
    }

    /// The codec that encodes `type`, or nil if wconv cannot.
    public static func quantizer(for type: GGMLType) -> (any GGMLBlockQuantizer.Type)? {
        quantizers.first { $0.ggmlType == type }
    }
}

// MARK: - Helpers shared by the block kernels
//
// Blocks are little-endian on disk and every supported host is little-endian, so fields are read
// with unaligned native loads.

@inline(__always)
func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always)
func storeHalf(_ value: Float, _ p: UnsafeMutableRawPointer, _ offset: Int) {
    // GGML_FP32_TO_FP16: round to nearest even, which is what Float16(_:) does.
    p.storeBytes(of: Float16(value).bitPattern, toByteOffset: offset, as: UInt16.self)
}

@inline(__always)
func loadU8(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
    p.load(fromByteOffset: offset, as: UInt8.self)
}

@inline(__always)
func loadU16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
}

@inline(__always)
func loadU32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    p.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
}

/// ggml's `nearest_int`: add 1.5·2²³ and read the low mantissa bits. Rounds half to even for
/// |x| ≤ 4194303; outside that range (and for NaN) it returns the same garbage the C code does,
/// instead of trapping like `Int(x)` would.
@inline(__always)
func nearestInt(_ fval: Float) -> Int32 {
    let val = fval + 12582912.0
    let i = Int32(bitPattern: val.bitPattern)
    return (i & 0x007f_ffff) - 0x0040_0000
}

/// C's float → int conversion as x86-64 performs it (`cvttss2si`): truncation toward zero, and
/// 0x80000000 for NaN or out-of-range values. Never traps.
@inline(__always)
func truncToInt32(_ x: Float) -> Int32 {
    // The same bounds `Int32(_:)` checks before trapping (NaN fails both), so the optimizer keeps
    // one range check and the conversion itself is a plain cvttss2si.
    x > -2147483904.0 && x < 2147483648.0 ? Int32(x) : Int32.min
}

/// `(int8_t)x` / `(uint8_t)x` for a float, as gcc compiles it on x86-64: convert to int32, keep the low byte.
@inline(__always)
func truncToInt8(_ x: Float) -> Int8 {
    Int8(truncatingIfNeeded: truncToInt32(x))
}

/// `MAX(a, b)` / `MIN(a, b)` macros of ggml, including how they treat NaN (the comparison decides).
@inline(__always) func cMax(_ a: Float, _ b: Float) -> Float { a > b ? a : b }
@inline(__always) func cMin(_ a: Float, _ b: Float) -> Float { a < b ? a : b }
@inline(__always) func cMax(_ a: Int32, _ b: Int32) -> Int32 { a > b ? a : b }
@inline(__always) func cMin(_ a: Int32, _ b: Int32) -> Int32 { a < b ? a : b }

/// `MAX(lo, MIN(hi, v))` without branches. Exact whenever `v - lo` and `v - hi` do not overflow, which
/// holds for every ``nearestInt`` result (|v| ≤ 2²²) and the small bounds the kernels use. LLVM turns
/// the ternary form into unpredictable branches inside the scale searches; this form stays two
/// subtract/shift/and sequences.
@inline(__always)
func clampCodes(_ v: Int32, _ lo: Int32, _ hi: Int32) -> Int32 {
    let dh = v &- hi
    let a = hi &+ (dh & (dh >> 31))       // min(v, hi)
    let dl = a &- lo
    return a &- (dl & (dl >> 31))         // max(a, lo)
}

/// `roundf`: half away from zero.
@inline(__always)
func roundAway(_ x: Float) -> Float { x.rounded(.toNearestOrAwayFromZero) }
