public import TensorCore

/// The non-tensor part of a bitsandbytes 4-bit `QuantState`, as `as_dict(packed=True)` stores it
/// in the `<weight>.quant_state.bitsandbytes__<type>` entry: UTF-8 JSON bytes such as
/// `{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [128, 128],
/// "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0514…}` (REFERENCE §5.4).
public struct BNBQuantState: Sendable, Hashable {
    /// The double-quantization parameters (`nested_*` keys).
    public struct Nested: Sendable, Hashable {
        /// `nested_blocksize`: absmax values per nested float32 scale (bitsandbytes always uses 256).
        public let blockSize: Int
        /// `nested_offset`: the float32 mean subtracted from the absmax values before quantizing
        /// them. Stored as a Python float; bitsandbytes reads it back into a float32 tensor.
        public let offset: Float

        public init(blockSize: Int, offset: Float) {
            self.blockSize = blockSize
            self.offset = offset
        }
    }

    public let quantType: BNB4BitType
    /// Elements per absmax block.
    public let blockSize: Int
    /// The original weight's dtype, and the dtype bitsandbytes dequantizes to.
    public let dtype: DType
    /// The original weight's shape (`[out_features, in_features]`).
    public let shape: [Int]
    /// Present when the absmax values are double-quantized.
    public let nested: Nested?

    public init(quantType: BNB4BitType, blockSize: Int, dtype: DType, shape: [Int], nested: Nested?) {
        self.quantType = quantType
        self.blockSize = blockSize
        self.dtype = dtype
        self.shape = shape
        self.nested = nested
    }

    /// Element count of ``shape`` (validated non-negative and not overflowing when parsed).
    public var elementCount: Int { TensorCore.elementCount(of: shape) ?? 0 }

    /// Number of absmax blocks: `ceil(elementCount / blockSize)`.
    public var blockCount: Int { ceilingDivide(elementCount, blockSize) }

    /// Bytes of packed codes: two per byte, `ceil(n / 2)`.
    public var packedByteCount: Int { ceilingDivide(elementCount, 2) }

    /// Number of nested float32 scales, when double-quantized.
    public var nestedBlockCount: Int? { nested.map { ceilingDivide(blockCount, $0.blockSize) } }

    /// `ceil(n / d)` for n ≥ 0, d > 0, without the `n + d - 1` that overflows when a file's
    /// shape puts n near Int.max.
    private func ceilingDivide(_ n: Int, _ d: Int) -> Int { n / d + (n % d == 0 ? 0 : 1) }

    /// Parses the packed JSON of the entry `tensor` (named for messages).
    ///
    /// Accepted: what bitsandbytes' `QuantState.from_dict` accepts for packed states on CPU:
    /// `quant_type` nf4/fp4, a positive `blocksize`, `dtype` float32/float16/bfloat16 (the names
    /// `getattr(torch, …)` resolves for a float weight), a `shape` of non-negative integers, and
    /// either no `nested_*` key or all three with `nested_dtype` float32. Unknown extra keys are
    /// ignored, as `from_dict` ignores them.
    /// - Throws: ``BNBFormatError``.
    public static func parse(_ bytes: UnsafeRawBufferPointer, tensor: String) throws(BNBFormatError) -> BNBQuantState {
        let value: JSONValue
        do { value = try JSONParser.parse(bytes) } catch { throw .invalidQuantState(tensor: tensor, reason: "\(error)") }
        guard let object = value.objectValue else { throw .invalidQuantState(tensor: tensor, reason: "not a JSON object") }

        func required(_ key: String) throws(BNBFormatError) -> JSONValue {
            guard let v = object[key], !v.isNull else { throw .invalidQuantState(tensor: tensor, reason: "no \"\(key)\"") }
            return v
        }
        func positiveInt(_ key: String) throws(BNBFormatError) -> Int {
            guard case .int(let i) = try required(key), i > 0, let n = Int(exactly: i), n <= 1 << 30 else {
                throw .invalidQuantState(tensor: tensor, reason: "\"\(key)\" is not a positive integer")
            }
            return n
        }
        func string(_ key: String) throws(BNBFormatError) -> String {
            guard let s = try required(key).stringValue else {
                throw .invalidQuantState(tensor: tensor, reason: "\"\(key)\" is not a string")
            }
            return s
        }

        let typeName = try string("quant_type")
        guard let quantType = BNB4BitType(rawValue: typeName) else { throw .unknownQuantType(tensor: tensor, name: typeName) }
        let blockSize = try positiveInt("blocksize")
        let dtypeName = try string("dtype")
        guard let dtype = floatDType(named: dtypeName) else {
            throw .unsupportedValue(tensor: tensor, what: "dtype", value: "\"\(dtypeName)\"")
        }
        guard let shapeItems = try required("shape").arrayValue else {
            throw .invalidQuantState(tensor: tensor, reason: "\"shape\" is not a list")
        }
        var shape: [Int] = []
        for item in shapeItems {
            guard case .int(let d) = item, d >= 0, let dim = Int(exactly: d) else {
                throw .invalidQuantState(tensor: tensor, reason: "\"shape\" is not a list of non-negative integers")
            }
            shape.append(dim)
        }
        guard TensorCore.elementCount(of: shape) != nil else {
            throw .invalidQuantState(tensor: tensor, reason: "\"shape\" \(shape) has too many elements")
        }

        let nestedKeys = ["nested_blocksize", "nested_dtype", "nested_offset"]
        let present = nestedKeys.filter { object[$0] != nil }
        var nested: Nested? = nil
        if !present.isEmpty {
            guard present.count == nestedKeys.count else {
                let missing = nestedKeys.filter { object[$0] == nil }
                throw .invalidQuantState(tensor: tensor, reason: "double quantization keys incomplete (no \(missing.map { "\"\($0)\"" }.joined(separator: ", ")))")
            }
            let nestedBlockSize = try positiveInt("nested_blocksize")
            let nestedDType = try string("nested_dtype")
            guard nestedDType == "float32" else {
                throw .unsupportedValue(tensor: tensor, what: "nested_dtype", value: "\"\(nestedDType)\"")
            }
            guard let offset = try required("nested_offset").doubleValue else {
                throw .invalidQuantState(tensor: tensor, reason: "\"nested_offset\" is not a number")
            }
            // `torch.tensor(float(x))` makes a float32 tensor: round the double once.
            nested = Nested(blockSize: nestedBlockSize, offset: Float(offset))
        }
        return BNBQuantState(quantType: quantType, blockSize: blockSize, dtype: dtype, shape: shape, nested: nested)
    }

    /// The float dtypes a bitsandbytes 4-bit weight can record, by torch name.
    static func floatDType(named name: String) -> DType? {
        switch name {
        case "float32": .f32
        case "float16": .f16
        case "bfloat16": .bf16
        default: nil
        }
    }

    /// A short description for listings: `nf4 block 64 + double quant`.
    public var summary: String {
        "\(quantType.rawValue) block \(blockSize)" + (nested == nil ? "" : " + double quant")
    }
}
