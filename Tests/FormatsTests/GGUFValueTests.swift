import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

@Suite("GGUF metadata values")
struct GGUFValueTests {
    /// One scalar of every type and one array of every element type, with edge values.
    static let everyType: [GGUFKeyValue] = [
        GGUFKeyValue("u8", .uint8(255)),
        GGUFKeyValue("i8", .int8(-128)),
        GGUFKeyValue("u16", .uint16(65535)),
        GGUFKeyValue("i16", .int16(-32768)),
        GGUFKeyValue("u32", .uint32(.max)),
        GGUFKeyValue("i32", .int32(.min)),
        GGUFKeyValue("f32", .float32(Float(bitPattern: 0x7FC0_1234))),  // a NaN with a payload
        GGUFKeyValue("bool", .bool(true)),
        GGUFKeyValue("str", .string("tok\u{2581}en \u{1F600}")),
        GGUFKeyValue("u64", .uint64(.max)),
        GGUFKeyValue("i64", .int64(.min)),
        GGUFKeyValue("f64", .float64(-0.0)),
        GGUFKeyValue("empty.str", .string("")),
        GGUFKeyValue("a.u8", .array(.uint8([0, 1, 255]))),
        GGUFKeyValue("a.i8", .array(.int8([-128, 127]))),
        GGUFKeyValue("a.u16", .array(.uint16([0, 65535]))),
        GGUFKeyValue("a.i16", .array(.int16([-32768, 1]))),
        GGUFKeyValue("a.u32", .array(.uint32([0, .max]))),
        GGUFKeyValue("a.i32", .array(.int32([.min, .max]))),
        GGUFKeyValue("a.f32", .array(.float32([0, -1.5, .infinity, .leastNonzeroMagnitude]))),
        GGUFKeyValue("a.bool", .array(.bool([false, true]))),
        GGUFKeyValue("a.str", .array(.string(["", "a", "\u{00FF}", "<0x0A>"]))),
        GGUFKeyValue("a.u64", .array(.uint64([.max]))),
        GGUFKeyValue("a.i64", .array(.int64([.min, 0]))),
        GGUFKeyValue("a.f64", .array(.float64([.pi, -.greatestFiniteMagnitude]))),
        GGUFKeyValue("a.empty", .array(.int32([]))),
    ]

    @Test func everyValueTypeRoundTrips() throws {
        let writer = try GGUFWriter(metadata: Self.everyType, tensors: [])
        let header = try GGUFHeader.parse(writer.headerBytes)
        #expect(header.metadata.entries == Self.everyType)
        #expect(header.metadata.keys == Self.everyType.map(\.key))
        let types = Set(header.metadata.map(\.value.type))
        #expect(types == Set(GGUFValueType.allCases))
        let elementTypes = Set(header.metadata.compactMap { $0.value.arrayValue?.elementType })
        #expect(elementTypes == Set(GGUFValueType.allCases).subtracting([.array]))
    }

    @Test func rawValueTypeIdsMatchTheSpec() {
        #expect(GGUFValueType.allCases.map(\.rawValue) == Array(0 ... 12))
        #expect(GGUFValueType.allCases.map(\.description) == [
            "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY",
            "UINT64", "INT64", "FLOAT64",
        ])
    }

    /// A vocabulary the size of Qwen's (~150k tokens) with scores and types round trips.
    @Test func largeVocabularyRoundTrips() throws {
        let n = 150_000
        let tokens = GGUFStringList((0 ..< n).map { "tok\($0)\u{2581}" })
        let metadata: GGUFMetadata = [
            GGUFKeys.Tokenizer.tokens: .array(.string(tokens)),
            GGUFKeys.Tokenizer.scores: .array(.float32((0 ..< n).map { -Float($0) })),
            GGUFKeys.Tokenizer.tokenType: .array(.int32((0 ..< n).map { Int32($0 % 7) })),
        ]
        let writer = try GGUFWriter(metadata: metadata, tensors: [])
        let header = try GGUFHeader.parse(writer.headerBytes)
        #expect(header.metadata == metadata)
        #expect(header.metadata[GGUFKeys.Tokenizer.tokens]?.arrayValue?.count == n)
        if case .array(.string(let list)) = header.metadata[GGUFKeys.Tokenizer.tokens] {
            #expect(list[n - 1] == "tok\(n - 1)\u{2581}")
        } else {
            Issue.record("tokens are not a string array")
        }
    }

    @Test func arrayStringsKeepTheirExactBytes() throws {
        // ggml does not require tokens to be UTF-8; the bytes must survive a copy unchanged.
        var list = GGUFStringList()
        list.append(utf8: [0xE2, 0x96])  // a truncated UTF-8 sequence
        list.append("ok")
        var b = GGUFBuilder()
        b.addArray("tokenizer.ggml.tokens", elementType: 8, count: 2,
                   elements: GGUFBuilder.string(bytes: [0xE2, 0x96]) + GGUFBuilder.string("ok"))
        let bytes = b.build()
        let header = try GGUFHeader.parse(bytes)
        #expect(header.metadata["tokenizer.ggml.tokens"] == .array(.string(list)))
        #expect(Array(list.utf8(at: 0)) == [0xE2, 0x96])
        #expect(list[0] == "\u{FFFD}")
        #expect(try GGUFWriter(rewriting: header).headerBytes == bytes)
    }

    @Test func boolBytesOtherThanOneReadAsTrue() throws {
        var b = GGUFBuilder()
        b.addBoolByte("t", 2)
        b.addBoolByte("f", 0)
        let header = try GGUFHeader.parse(b.build())
        #expect(header.metadata["t"]?.boolValue == true)
        #expect(header.metadata["f"]?.boolValue == false)
    }

    @Test func accessorsAcceptAnyIntegerType() {
        let ints: [GGUFValue] = [.uint8(7), .int8(7), .uint16(7), .int16(7), .uint32(7), .int32(7), .uint64(7), .int64(7)]
        for v in ints { #expect(v.intValue == 7) }
        #expect(GGUFValue.uint64(.max).intValue == nil)
        #expect(GGUFValue.float32(1).intValue == nil)
        #expect(GGUFValue.float32(0.5).floatValue == 0.5)
        #expect(GGUFValue.float64(0.25).floatValue == 0.25)
        #expect(GGUFValue.float32(0.1).doubleValue == Double(Float(0.1)))
        #expect(GGUFValue.string("x").stringValue == "x")
        #expect(GGUFValue.uint32(1).stringValue == nil)
        #expect(GGUFValue.array(.string(["a", "b"])).stringArray == ["a", "b"])
        #expect(GGUFValue.array(.float32([1, 2])).floatArray == [1, 2])
        #expect(GGUFValue.array(.int32([1, -2])).intArray == [1, -2])
        #expect(GGUFValue.array(.uint64([.max])).intArray == nil)
        #expect(GGUFValue.array(.float32([1])).stringArray == nil)
    }

    @Test func metadataKeepsOrderWhenValuesChange() {
        var m: GGUFMetadata = ["a": .uint32(1), "b": .uint32(2), "c": .uint32(3)]
        m.set("b", .string("two"))
        m.set("d", .bool(false))
        #expect(m.keys == ["a", "b", "c", "d"])
        #expect(m["b"] == .string("two"))
        m.remove("a")
        #expect(m.keys == ["b", "c", "d"])
        #expect(m["c"] == .uint32(3))
        #expect(m["a"] == nil)
    }

    @Test func floatsCompareByBits() {
        #expect(GGUFValue.float32(.nan) == .float32(.nan))
        #expect(GGUFValue.float32(0) != .float32(-0.0))
        #expect(GGUFValue.array(.float64([.nan])) == .array(.float64([.nan])))
    }

    /// Tensors of ggml ids wconv does not know are listed, sized from the next tensor's offset
    /// (or the end of the file), and copied byte for byte.
    @Test func unknownTensorTypesAreListedAndCopied() throws {
        var b = GGUFBuilder()
        b.addString("general.architecture", "future")
        b.addTensorInfo("a", dimensions: [4], type: 0, offset: 0)
        b.addTensorInfo("mystery", dimensions: [10, 3], type: 99, offset: 32)
        b.addTensorInfo("c", dimensions: [4], type: 0, offset: 96)
        b.addTensorInfo("last", dimensions: [7], type: 4, offset: 128)  // id 4 (Q4_2) was removed from ggml
        var data: [UInt8] = []
        data += (0 ..< 16).map { UInt8($0) } + [UInt8](repeating: 0, count: 16)
        data += (0 ..< 64).map { UInt8(100 + $0) }
        data += (0 ..< 16).map { UInt8(200 + $0) } + [UInt8](repeating: 0, count: 16)
        data += (0 ..< 64).map { UInt8(255 - $0) }
        b.data = data
        let bytes = b.build()

        let dir = Fixtures.temporaryDirectory("wconv-gguf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/unknown.gguf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let file = try GGUFFile(path: path)
        #expect(file.tensors.map(\.name) == ["a", "mystery", "c", "last"])
        #expect(file.tensors.map(\.isKnownType) == [true, false, true, false])
        #expect(file.tensors.map(\.byteCount) == [16, 64, 16, 64])
        #expect(file.tensors[1].type == GGMLType(rawValue: 99))
        #expect(file.tensors[1].type.name == "type99")
        #expect(file.tensors[1].shape == [3, 10])
        #expect(Array(try file.bytes(of: file.tensors[1])) == Array(data[32 ..< 96]))
        #expect(Array(try file.bytes(of: file.tensors[3])) == Array(data[128 ..< 192]))

        let copy = try GGUFTestHelpers.written(try GGUFWriter(rewriting: file.header),
                                               data: try file.tensors.map { Array(try file.bytes(of: $0)) })
        #expect(copy == bytes)
    }

    @Test func acceptsFilesWithoutTensorsAndScalarTensors() throws {
        var none = GGUFBuilder()
        none.addUInt32("x", 1)
        none.padAfterInfos = false
        let h = try GGUFTestHelpers.parse(none)
        #expect(h.tensors.isEmpty)
        #expect(h.dataOffset == none.build().count)

        var scalar = GGUFBuilder()
        scalar.addTensorInfo("s", dimensions: [], type: 0, offset: 0)
        scalar.data = [0, 0, 0x80, 0x3F] + [UInt8](repeating: 0, count: 28)
        let s = try GGUFTestHelpers.parse(scalar)
        #expect(s.tensors[0].dimensions == [])
        #expect(s.tensors[0].elementCount == 1)
        #expect(s.tensors[0].byteCount == 4)
    }
}
