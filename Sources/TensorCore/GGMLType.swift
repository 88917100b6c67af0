/// A ggml tensor type id as stored in GGUF tensor infos.
///
/// An open set (like swift-system's `Errno`): files carry ids wconv may not know, and those must
/// still be listed and copied byte for byte, so this is a struct over the raw id rather than an enum.
public struct GGMLType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let q8_1 = GGMLType(rawValue: 9)
    public static let q2_K = GGMLType(rawValue: 10)
    public static let q3_K = GGMLType(rawValue: 11)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q5_K = GGMLType(rawValue: 13)
    public static let q6_K = GGMLType(rawValue: 14)
    public static let q8_K = GGMLType(rawValue: 15)
    public static let iq2_xxs = GGMLType(rawValue: 16)
    public static let iq2_xs = GGMLType(rawValue: 17)
    public static let iq3_xxs = GGMLType(rawValue: 18)
    public static let iq1_s = GGMLType(rawValue: 19)
    public static let iq4_nl = GGMLType(rawValue: 20)
    public static let iq3_s = GGMLType(rawValue: 21)
    public static let iq2_s = GGMLType(rawValue: 22)
    public static let iq4_xs = GGMLType(rawValue: 23)
    public static let i8 = GGMLType(rawValue: 24)
    public static let i16 = GGMLType(rawValue: 25)
    public static let i32 = GGMLType(rawValue: 26)
    public static let i64 = GGMLType(rawValue: 27)
    public static let f64 = GGMLType(rawValue: 28)
    public static let iq1_m = GGMLType(rawValue: 29)
    public static let bf16 = GGMLType(rawValue: 30)
    public static let tq1_0 = GGMLType(rawValue: 34)
    public static let tq2_0 = GGMLType(rawValue: 35)
    public static let mxfp4 = GGMLType(rawValue: 39)
    public static let nvfp4 = GGMLType(rawValue: 40)
    public static let q1_0 = GGMLType(rawValue: 41)
    public static let q2_0 = GGMLType(rawValue: 42)

    /// Name, elements per block and bytes per block of every id ggml has defined
    /// (gguf-py `GGML_QUANT_SIZES`, ggml `type_traits`). Removed ids (4, 5, 31–33, 36–38) are absent.
    static let table: [UInt32: (name: String, blockSize: Int, typeSize: Int)] = [
        0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
        6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
        10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
        14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
        18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
        22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
        26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
        30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
        40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
    ]

    /// Every id in the layout table, in id order.
    public static var known: [GGMLType] { table.keys.sorted().map(GGMLType.init(rawValue:)) }

    /// Whether ggml defines this id (so its block layout is known).
    public var isKnown: Bool { Self.table[rawValue] != nil }

    /// The ggml name (`Q4_K`), or `type<id>` for an id wconv does not know.
    public var name: String { Self.table[rawValue]?.name ?? "type\(rawValue)" }
    public var description: String { name }

    /// Elements per block; nil for unknown ids.
    public var blockSize: Int? { Self.table[rawValue]?.blockSize }
    /// Bytes per block; nil for unknown ids.
    public var typeSize: Int? { Self.table[rawValue]?.typeSize }

    /// Bits per weight of the block layout.
    public var bitsPerWeight: Double? {
        guard let e = blockSize, let b = typeSize else { return nil }
        return Double(b * 8) / Double(e)
    }

    /// Whether this is one of the quantized block types (block size > 1).
    public var isQuantized: Bool { (blockSize ?? 1) > 1 }

    /// Looks a type up by its ggml name, case-insensitively (`q4_k` → ``q4_K``).
    public init?(name: String) {
        let upper = name.uppercased()
        guard let (id, _) = Self.table.first(where: { $0.value.name == upper }) else { return nil }
        self.init(rawValue: id)
    }

    /// Bytes of a row of `elementCount` elements; nil if the count is not a whole number of blocks.
    public func rowByteCount(elementCount: Int) -> Int? {
        guard let e = blockSize, let b = typeSize, elementCount >= 0, elementCount % e == 0 else { return nil }
        return (elementCount / e).multipliedReportingOverflow(by: b).overflow ? nil : elementCount / e * b
    }

    /// The dense dtype with the same bytes, for the plain types both formats share.
    public var denseEquivalent: DType? {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .f64: .f64
        case .i8: .i8
        case .i16: .i16
        case .i32: .i32
        case .i64: .i64
        default: nil
        }
    }

    /// The ggml type carrying a dense dtype's bytes unchanged, if there is one.
    public init?(dense: DType) {
        switch dense {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f64: self = .f64
        case .i8: self = .i8
        case .i16: self = .i16
        case .i32: self = .i32
        case .i64: self = .i64
        default: return nil
        }
    }
}
