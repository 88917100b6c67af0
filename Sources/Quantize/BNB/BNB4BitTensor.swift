public import TensorCore

/// One tensor stored as bitsandbytes 4-bit (NF4 or FP4), optionally with double-quantized absmax:
/// everything bitsandbytes' `QuantState` plus the packed weight holds, and what transformers writes
/// to safetensors for a `Linear4bit` weight (REFERENCE §5.4).
public struct BNB4BitTensor: Sendable, Equatable {
    /// How the per-block absmax values are stored.
    public enum Absmax: Sendable, Equatable {
        /// float32 per block (safetensors `.absmax` is F32).
        case plain([Float])
        /// uint8 codes per block plus nested float32 values (`.absmax` is U8).
        case doubleQuantized(DoubleQuantizedAbsmax)
    }

    public let kind: FourBit.Kind
    public let blockSize: Int
    /// dtype of the original weight, and of bitsandbytes' dequantized output (F32, F16 or BF16).
    public let dtype: DType
    /// Original shape, e.g. `[out_features, in_features]`.
    public let shape: [Int]
    /// Packed codes, `(n + 1) / 2` bytes, first element in the high nibble.
    public let packed: [UInt8]
    public let absmax: Absmax

    /// Wraps stored parts (for instance read from a checkpoint), checking that the sizes agree.
    /// - Throws: ``BNBError`` for an invalid block size, dtype or shape, or mis-sized arrays.
    public init(kind: FourBit.Kind, blockSize: Int, dtype: DType, shape: [Int], packed: [UInt8], absmax: Absmax) throws(BNBError) {
        try FourBit.validate(blockSize: blockSize)
        guard dtype.isConvertibleFloat else { throw .unsupportedName(what: "4-bit dtype", name: dtype.rawValue) }
        let count = try Self.elementCount(shape)
        let bytes = FourBit.packedByteCount(elementCount: count)
        guard packed.count == bytes else { throw .sizeMismatch(what: "packed 4-bit weight", expected: bytes, actual: packed.count) }
        let blocks = FourBit.blockCount(elementCount: count, blockSize: blockSize)
        switch absmax {
        case .plain(let values):
            guard values.count == blocks else { throw .sizeMismatch(what: "absmax", expected: blocks, actual: values.count) }
        case .doubleQuantized(let dq):
            guard dq.codes.count == blocks else { throw .sizeMismatch(what: "absmax", expected: blocks, actual: dq.codes.count) }
        }
        self.kind = kind
        self.blockSize = blockSize
        self.dtype = dtype
        self.shape = shape
        self.packed = packed
        self.absmax = absmax
    }

    /// Quantizes a tensor the way `bnb.functional.quantize_4bit` does on CPU.
    /// - Parameters:
    ///   - x: the tensor's values in float32 (f16/bf16 weights upcast exactly).
    ///   - shape: its shape; the product must equal `x.count`.
    ///   - dtype: the original dtype, recorded for dequantization and the JSON (`bfloat16`, …).
    ///   - doubleQuant: compress the absmax values (QLoRA's default).
    ///   - threads: worker threads for the 4-bit kernel; the result does not depend on it.
    public static func quantize(
        _ x: UnsafeBufferPointer<Float>, shape: [Int], dtype: DType = .f32, kind: FourBit.Kind = .nf4,
        blockSize: Int = 64, doubleQuant: Bool = true, threads: Int = 1
    ) throws(BNBError) -> BNB4BitTensor {
        let count = try elementCount(shape)
        guard count == x.count else { throw .sizeMismatch(what: "tensor data", expected: count, actual: x.count) }
        var packed = [UInt8](repeating: 0, count: FourBit.packedByteCount(elementCount: count))
        var absmax = [Float](repeating: 0, count: FourBit.blockCount(elementCount: count, blockSize: blockSize))
        // The buffer closures rethrow untyped errors, so carry the typed error out by hand.
        var failure: BNBError? = nil
        packed.withUnsafeMutableBytes { p in
            absmax.withUnsafeMutableBufferPointer { a in
                do throws(BNBError) { try FourBit.quantize(x, kind: kind, blockSize: blockSize, into: p, absmax: a, threads: threads) }
                catch { failure = error }
            }
        }
        if let failure { throw failure }
        let stored: Absmax = doubleQuant
            ? .doubleQuantized(absmax.withUnsafeBufferPointer { DoubleQuantizedAbsmax.compress($0) })
            : .plain(absmax)
        return try BNB4BitTensor(kind: kind, blockSize: blockSize, dtype: dtype, shape: shape, packed: packed, absmax: stored)
    }

    /// Number of elements (product of ``shape``).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The float32 absmax of every block, reconstructed when double-quantized.
    public func blockAbsmax() -> [Float] {
        switch absmax {
        case .plain(let values): values
        case .doubleQuantized(let dq): dq.decompressed()
        }
    }

    /// Dequantizes into `out` (float32, ``elementCount`` values), as bitsandbytes' `dequantize_4bit`
    /// computes before casting to ``dtype``.
    public func dequantize(into out: UnsafeMutableBufferPointer<Float>, threads: Int = 1) throws(BNBError) {
        let scales = blockAbsmax()
        var failure: BNBError? = nil
        packed.withUnsafeBytes { p in
            scales.withUnsafeBufferPointer { a in
                do throws(BNBError) { try FourBit.dequantize(p, absmax: a, kind: kind, blockSize: blockSize, into: out, threads: threads) }
                catch { failure = error }
            }
        }
        if let failure { throw failure }
    }

    /// The dequantized values as a new array.
    public func dequantized(threads: Int = 1) -> [Float] {
        var out = [Float](repeating: 0, count: elementCount)
        // Sizes were validated when this value was made.
        _ = out.withUnsafeMutableBufferPointer { try? dequantize(into: $0, threads: threads) }
        return out
    }

    // MARK: - Serialization

    /// The key suffix of the packed JSON entry: `quant_state.bitsandbytes__nf4` / `__fp4`.
    public var quantStateKey: String { "quant_state.bitsandbytes__\(kind.rawValue)" }

    /// The JSON text bitsandbytes packs into the `quant_state` entry (`QuantState.as_dict(packed=True)`),
    /// byte for byte: Python `json.dumps` separators and key order, floats as Python `repr`.
    public var quantStateJSON: String {
        var offset: Float? = nil
        if case .doubleQuantized(let dq) = absmax { offset = dq.offset }
        return Self.quantStateJSON(kind: kind, blockSize: blockSize, dtype: dtype, shape: shape, nestedOffset: offset)
    }

    /// The quant_state JSON for explicit values; `nestedOffset` nil means no double quantization.
    /// E.g. `{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [128, 128],
    /// "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.05148506164550781}`.
    public static func quantStateJSON(kind: FourBit.Kind, blockSize: Int, dtype: DType, shape: [Int], nestedOffset: Float?) -> String {
        // bitsandbytes writes `str(torch.dtype).strip("torch.")`: float32, float16, bfloat16.
        let dtypeName = dtype.torchName ?? dtype.rawValue.lowercased()
        var text = "{\"quant_type\": \"\(kind.rawValue)\", \"blocksize\": \(blockSize), \"dtype\": \"\(dtypeName)\", "
        text += "\"shape\": [" + shape.map(String.init).joined(separator: ", ") + "]"
        if let nestedOffset {
            // `offset.item()` widens the float32 to a Python float (double).
            text += ", \"nested_blocksize\": \(DoubleQuantizedAbsmax.nestedBlockSize), \"nested_dtype\": \"float32\", "
            text += "\"nested_offset\": " + PythonFloat.repr(Double(nestedOffset))
        }
        return text + "}"
    }

    /// The safetensors entries transformers writes for this weight, with key suffixes relative to the
    /// weight's own name `P` (`""` is `P` itself, then `.absmax`, `.quant_map`, `.nested_absmax`,
    /// `.nested_quant_map`, `.quant_state.bitsandbytes__<kind>`). Bytes are little-endian.
    public func safetensorsEntries() -> [BNBTensorEntry] {
        var entries = [BNBTensorEntry(suffix: "", dtype: .u8, shape: [packed.count, 1], bytes: packed)]
        switch absmax {
        case .plain(let values):
            entries.append(BNBTensorEntry(suffix: ".absmax", dtype: .f32, shape: [values.count], bytes: Self.littleEndianBytes(values)))
            entries.append(BNBTensorEntry(suffix: ".quant_map", dtype: .f32, shape: [16], bytes: Self.littleEndianBytes(kind.codeTable)))
        case .doubleQuantized(let dq):
            entries.append(BNBTensorEntry(suffix: ".absmax", dtype: .u8, shape: [dq.codes.count], bytes: dq.codes))
            entries.append(BNBTensorEntry(suffix: ".quant_map", dtype: .f32, shape: [16], bytes: Self.littleEndianBytes(kind.codeTable)))
            entries.append(BNBTensorEntry(suffix: ".nested_absmax", dtype: .f32, shape: [dq.nestedAbsmax.count],
                                          bytes: Self.littleEndianBytes(dq.nestedAbsmax)))
            entries.append(BNBTensorEntry(suffix: ".nested_quant_map", dtype: .f32, shape: [256],
                                          bytes: Self.littleEndianBytes(BNBCodes.dynamicSigned)))
        }
        let json = Array(quantStateJSON.utf8)
        entries.append(BNBTensorEntry(suffix: "." + quantStateKey, dtype: .u8, shape: [json.count], bytes: json))
        return entries
    }

    static func littleEndianBytes(_ values: [Float]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for v in values {
            let bits = v.bitPattern
            bytes += [UInt8(truncatingIfNeeded: bits), UInt8(truncatingIfNeeded: bits >> 8),
                      UInt8(truncatingIfNeeded: bits >> 16), UInt8(truncatingIfNeeded: bits >> 24)]
        }
        return bytes
    }

    static func elementCount(_ shape: [Int]) throws(BNBError) -> Int {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw .invalidShape(shape) }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .invalidShape(shape) }
            count = product
        }
        return count
    }
}

/// One tensor of a serialized bitsandbytes weight: key suffix, safetensors dtype, shape and raw bytes.
public struct BNBTensorEntry: Sendable, Equatable {
    /// Appended to the weight's name (`model.layers.0.mlp.up_proj.weight` + suffix).
    public let suffix: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: [UInt8]

    public init(suffix: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.suffix = suffix
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }
}
