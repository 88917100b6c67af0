/// The 4-bit block absmax values compressed by bitsandbytes' double quantization
/// (`compress_statistics=True`, REFERENCE §5.3): one uint8 per block plus one float32 per 256 blocks.
///
/// `offset = mean(absmax)`; `codes, nestedAbsmax = quantize_blockwise(absmax - offset, 256, dynamic map)`;
/// reconstruction `absmax_b = dynamicMap[codes[b]] * nestedAbsmax[b / 256] + offset`.
public struct DoubleQuantizedAbsmax: Sendable, Equatable {
    /// bitsandbytes always uses 256 for the nested block size.
    public static let nestedBlockSize = 256

    /// One code per 4-bit block (safetensors `.absmax`, U8).
    public var codes: [UInt8]
    /// One float32 per 256 codes (`.nested_absmax`).
    public var nestedAbsmax: [Float]
    /// The float32 mean subtracted before quantizing (`nested_offset`).
    public var offset: Float

    /// Wraps stored values, checking that the counts agree.
    public init(codes: [UInt8], nestedAbsmax: [Float], offset: Float) throws(BNBError) {
        let nested = Blockwise8.blockCount(elementCount: codes.count, blockSize: Self.nestedBlockSize)
        guard nestedAbsmax.count == nested else {
            throw .sizeMismatch(what: "nested_absmax", expected: nested, actual: nestedAbsmax.count)
        }
        self.codes = codes
        self.nestedAbsmax = nestedAbsmax
        self.offset = offset
    }

    /// Compresses block absmax values.
    /// - Parameters:
    ///   - absmax: the float32 absmax of every 4-bit block.
    ///   - offset: the value to subtract; nil computes ``mean(_:)``. (Passing bitsandbytes' own offset
    ///     reproduces its codes exactly; see ``mean(_:)`` for why ours may differ in the last bit.)
    public static func compress(_ absmax: UnsafeBufferPointer<Float>, offset: Float? = nil) -> DoubleQuantizedAbsmax {
        let offset = offset ?? mean(absmax)
        let centered = absmax.map { $0 - offset }
        var codes = [UInt8](repeating: 0, count: absmax.count)
        var nested = [Float](repeating: 0, count: Blockwise8.blockCount(elementCount: absmax.count, blockSize: nestedBlockSize))
        centered.withUnsafeBufferPointer { c in
            codes.withUnsafeMutableBufferPointer { q in
                nested.withUnsafeMutableBufferPointer { a in
                    // Sizes are computed above and the block size is a positive constant: cannot throw.
                    try? Blockwise8.quantize(c, blockSize: nestedBlockSize, codes: q, absmax: a)
                }
            }
        }
        // The counts match by construction.
        return DoubleQuantizedAbsmax(unchecked: codes, nestedAbsmax: nested, offset: offset)
    }

    private init(unchecked codes: [UInt8], nestedAbsmax: [Float], offset: Float) {
        self.codes = codes
        self.nestedAbsmax = nestedAbsmax
        self.offset = offset
    }

    /// The float32 mean of `values`, summed in Double and rounded once.
    ///
    /// bitsandbytes uses `torch.mean`, whose float32 summation order depends on torch's vectorised
    /// reduction (and the CPU's vector width), so its offset can differ from this one in the last
    /// bit or two; compare reconstructed absmax values with a tolerance, not bit for bit.
    public static func mean(_ values: UnsafeBufferPointer<Float>) -> Float {
        guard !values.isEmpty else { return .nan }   // torch.mean of an empty tensor is NaN
        var sum: Double = 0
        for v in values { sum += Double(v) }
        return Float(sum / Double(values.count))
    }

    /// The reconstructed absmax values: `dynamicMap[code] * nestedAbsmax[b / 256] + offset` (float32).
    public func decompressed() -> [Float] {
        let map = BNBCodes.dynamicSigned
        var out = [Float](repeating: 0, count: codes.count)
        for b in 0 ..< codes.count {
            out[b] = map[Int(codes[b])] * nestedAbsmax[b / Self.nestedBlockSize] + offset
        }
        return out
    }
}
