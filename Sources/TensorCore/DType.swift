/// The element types a safetensors file can declare, spelled as the format spells them.
///
/// Case order is the safetensors crate's `Dtype` order, which its writer uses to order tensors
/// (widest first); ``alignmentRank`` exposes it.
public enum DType: String, CaseIterable, Sendable, Hashable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6E2M3 = "F6_E2M3"
    case f6E3M2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case f8E8M0 = "F8_E8M0"
    case f8E4M3FNUZ = "F8_E4M3FNUZ"
    case f8E5M2FNUZ = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bits per element. Sub-byte types (F4, F6) pack elements densely.
    public var bitCount: Int {
        switch self {
        case .f4: 4
        case .f6E2M3, .f6E3M2: 6
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .c64, .f64, .i64, .u64: 64
        }
    }

    /// Position in the safetensors `Dtype` enum; its writer emits higher ranks first.
    public var alignmentRank: Int { DType.allCases.firstIndex(of: self)! }

    /// Whether wconv can convert this type to and from `Float` (the dense float types of model weights).
    public var isConvertibleFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// Number of bytes `elementCount` elements occupy, or nil when the bits do not fill whole bytes
    /// or the count overflows.
    public func byteCount(elementCount: Int) -> Int? {
        let (bits, overflow) = elementCount.multipliedReportingOverflow(by: bitCount)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }

    /// The lower-case name used on the command line and in transformers' `dtype` (`float32`, …).
    public var torchName: String? {
        switch self {
        case .f32: "float32"
        case .f16: "float16"
        case .bf16: "bfloat16"
        case .f64: "float64"
        case .i8: "int8"
        case .u8: "uint8"
        case .i16: "int16"
        case .i32: "int32"
        case .i64: "int64"
        case .bool: "bool"
        default: nil
        }
    }
}
