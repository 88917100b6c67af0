import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

@Suite("GGUF writer")
struct GGUFWriterTests {
    static func le(_ floats: [Float]) -> [UInt8] { floats.flatMap { GGUFBuilder.le($0.bitPattern) } }

    /// gguf-py packs a Python float (a double) into FLOAT32; round through Double the same way.
    static func f32(_ x: Double) -> Float { Float(x) }

    /// The inputs `testdata/scripts/dump_gguf.py` (`write_all_types`) gives gguf-py's GGUFWriter.
    static func allTypesInput() throws -> (GGUFWriter, [[UInt8]]) {
        let metadata: [GGUFKeyValue] = [
            GGUFKeyValue("general.architecture", .string("wconv-test")),
            GGUFKeyValue("test.uint8", .uint8(200)),
            GGUFKeyValue("test.int8", .int8(-100)),
            GGUFKeyValue("test.uint16", .uint16(60000)),
            GGUFKeyValue("test.int16", .int16(-30000)),
            GGUFKeyValue("test.uint32", .uint32(4_000_000_000)),
            GGUFKeyValue("test.int32", .int32(-2_000_000_000)),
            GGUFKeyValue("test.float32", .float32(f32(0.1))),
            GGUFKeyValue("test.bool", .bool(true)),
            GGUFKeyValue("test.string", .string("h\u{e9}llo \u{2713} world")),
            GGUFKeyValue("test.uint64", .uint64((1 << 63) + 5)),
            GGUFKeyValue("test.int64", .int64(-(1 << 62) - 7)),
            GGUFKeyValue("test.float64", .float64(1.0 / 3.0)),
            GGUFKeyValue("test.array.uint8", .array(.uint8([0, 1, 255]))),
            GGUFKeyValue("test.array.int8", .array(.int8([-128, 0, 127]))),
            GGUFKeyValue("test.array.uint16", .array(.uint16([0, 65535]))),
            GGUFKeyValue("test.array.int16", .array(.int16([-32768, 32767, -1]))),
            GGUFKeyValue("test.array.uint32", .array(.uint32([1, 4_294_967_295]))),
            GGUFKeyValue("test.array.int32", .array(.int32([-2_147_483_648, 2_147_483_647, 3]))),
            GGUFKeyValue("test.array.float32", .array(.float32([0.5, -1.25, 3.0e38, 1.0e-40].map(f32)))),
            GGUFKeyValue("test.array.bool", .array(.bool([true, false, true]))),
            GGUFKeyValue("test.array.string", .array(.string(["a", "", "tok\u{2581}en", "\u{ff}\u{1F600}"]))),
            GGUFKeyValue("test.array.uint64", .array(.uint64([0, .max]))),
            GGUFKeyValue("test.array.int64", .array(.int64([.min, .max]))),
            GGUFKeyValue("test.array.float64", .array(.float64([0.1, -2.5e300, .leastNonzeroMagnitude]))),  // Python writes 5e-324
        ]
        let f32Matrix = le((0 ..< 15).map { Float($0) * 0.5 - 3 })
        let f16Vector = [-1, -0.5, 0, 0.25, 1.5, 2, 65504].flatMap { GGUFBuilder.le(HalfFloat.f16Bits(Float($0))) }
        let i8Cube = (0 ..< 24).map { UInt8(bitPattern: Int8($0 - 12)) }
        let q8 = (0 ..< 136).map { UInt8(($0 * 37 + 11) & 0xFF) }
        let i32One = GGUFBuilder.le(Int32(7))
        let f32Rank4 = le((0 ..< 6).map { Float($0) + 1 })
        let tensors = [
            GGUFTensorDescriptor(name: "f32.matrix", dimensions: [5, 3], type: .f32, byteCount: 60),
            GGUFTensorDescriptor(name: "f16.vector", dimensions: [7], type: .f16, byteCount: 14),
            GGUFTensorDescriptor(name: "i8.cube", dimensions: [4, 3, 2], type: .i8, byteCount: 24),
            GGUFTensorDescriptor(name: "q8_0.raw", dimensions: [64, 2], type: .q8_0, byteCount: 136),
            GGUFTensorDescriptor(name: "i32.one", dimensions: [1], type: .i32, byteCount: 4),
            GGUFTensorDescriptor(name: "f32.rank4", dimensions: [3, 1, 2, 1], type: .f32, byteCount: 24),
        ]
        let writer = try GGUFWriter(metadata: metadata, tensors: tensors)
        return (writer, [f32Matrix, f16Vector, i8Cube, q8, i32One, f32Rank4])
    }

    @Test func matchesGGUFPyWriterForEveryValueType() throws {
        let (writer, data) = try Self.allTypesInput()
        let golden = try Fixtures.data("golden/gguf/pywriter-all-types.gguf")
        #expect(writer.headerBytes.count == writer.dataOffset)
        #expect(writer.fileSize == golden.count)
        #expect(try GGUFTestHelpers.written(writer, data: data) == golden)
    }

    @Test func matchesGGUFPyWriterWithCustomAlignment() throws {
        let metadata: [GGUFKeyValue] = [
            GGUFKeyValue("general.architecture", .string("wconv-test")),
            GGUFKeyValue("general.alignment", .uint32(64)),
            GGUFKeyValue("test.count", .uint32(3)),
        ]
        let tensors = [
            GGUFTensorDescriptor(name: "a", dimensions: [5], type: .f32, byteCount: 20),
            GGUFTensorDescriptor(name: "b", dimensions: [3], type: .i16, byteCount: 6),
        ]
        let writer = try GGUFWriter(metadata: metadata, tensors: tensors, alignment: 64)
        let data = [Self.le([0, 1, 2, 3, 4]), [0, 0, 1, 0, 2, 0]]
        #expect(try GGUFTestHelpers.written(writer, data: data) == (try Fixtures.data("golden/gguf/pywriter-align64.gguf")))
    }

    /// Re-writing a llama.cpp converter output (same KV, tensors, alignment) gives the same file.
    @Test(arguments: ["tiny-f16", "tiny-q8_0"])
    func rewritesLlamaCppFileByteForByte(name: String) throws {
        let path = Fixtures.path("vectors/fixtures/\(name).gguf")
        let file = try GGUFFile(path: path)
        let writer = try GGUFWriter(rewriting: file.header)
        #expect(writer.offsets == file.tensors.map(\.offset))
        #expect(writer.dataOffset == file.dataOffset)
        let copy = try GGUFTestHelpers.written(writer, data: try file.tensors.map { Array(try file.bytes(of: $0)) })
        #expect(copy == (try Fixtures.dataAt(path)))
    }

    @Test func appendsAlignmentKeyOnlyWhenNotDefault() throws {
        let t = [GGUFTensorDescriptor(name: "a", dimensions: [3], type: .f32, byteCount: 12)]
        let plain = try GGUFWriter(metadata: ["k": .uint8(1)], tensors: t)
        #expect(plain.metadata.keys == ["k"])
        let custom = try GGUFWriter(metadata: ["k": .uint8(1)], tensors: t, alignment: 128)
        #expect(custom.metadata.keys == ["k", "general.alignment"])
        #expect(custom.metadata["general.alignment"] == .uint32(128))
        let bytes = try GGUFTestHelpers.written(custom, data: [[UInt8](repeating: 7, count: 12)])
        #expect(bytes.count == custom.fileSize)
        let header = try GGUFHeader.parse(bytes)
        #expect(header.alignment == 128)
        #expect(header.dataOffset == 128)
        #expect(bytes.count == 256)
        #expect(Array(bytes[128 ..< 140]) == [UInt8](repeating: 7, count: 12))
        #expect(Array(bytes[140...]).allSatisfy { $0 == 0 })
    }

    @Test func writesEmptyFileWithPadding() throws {
        let writer = try GGUFWriter(metadata: GGUFMetadata(), tensors: [])
        // 24 header bytes padded to 32, as gguf-py and ggml do.
        #expect(writer.headerBytes.count == 32)
        #expect(try GGUFTestHelpers.written(writer, data: []).count == 32)
    }

    // MARK: What the writer refuses

    @Test func refusesNamesOf64Bytes() {
        let name = String(repeating: "x", count: 64)
        #expect(throws: GGUFError.nameTooLong(name)) {
            try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: name, dimensions: [1], type: .f32, byteCount: 4)])
        }
    }

    @Test func refusesRowsNotMultipleOfBlock() {
        #expect(throws: GGUFError.rowNotMultipleOfBlock(name: "w", rowLength: 48, type: .q4_K, blockSize: 256)) {
            try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: "w", dimensions: [48, 2], type: .q4_K, byteCount: 144)])
        }
    }

    @Test func refusesByteCountThatDisagreesWithShape() {
        #expect(throws: GGUFError.byteCountDisagreesWithShape(name: "w", byteCount: 100, expected: 68)) {
            try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: "w", dimensions: [32, 2], type: .q8_0, byteCount: 100)])
        }
    }

    @Test func refusesBadTensorLists() {
        let a = GGUFTensorDescriptor(name: "a", dimensions: [1], type: .f32, byteCount: 4)
        #expect(throws: GGUFError.duplicateTensor("a")) { try GGUFWriter(metadata: GGUFMetadata(), tensors: [a, a]) }
        #expect(throws: GGUFError.tooManyDimensions(name: "a", count: 5)) {
            try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: "a", dimensions: [1, 1, 1, 1, 1], type: .f32, byteCount: 4)])
        }
        #expect(throws: GGUFError.negativeDimension(name: "a", index: 0, value: -1)) {
            try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: "a", dimensions: [-1], type: .f32, byteCount: 4)])
        }
    }

    @Test func refusesBadMetadata() {
        #expect(throws: GGUFError.duplicateKey("k")) {
            try GGUFWriter(metadata: [GGUFKeyValue("k", .uint8(1)), GGUFKeyValue("k", .uint8(2))], tensors: [])
        }
        #expect(throws: GGUFError.emptyKey(index: 1)) {
            try GGUFWriter(metadata: [GGUFKeyValue("k", .uint8(1)), GGUFKeyValue("", .uint8(2))], tensors: [])
        }
        #expect(throws: GGUFError.alignmentWrongType(.uint64)) {
            try GGUFWriter(metadata: ["general.alignment": .uint64(32)], tensors: [])
        }
        #expect(throws: GGUFError.alignmentMismatch(metadata: 64, requested: 32)) {
            try GGUFWriter(metadata: ["general.alignment": .uint32(64)], tensors: [])
        }
        #expect(throws: GGUFError.alignmentNotPowerOfTwo(48)) {
            try GGUFWriter(metadata: GGUFMetadata(), tensors: [], alignment: 48)
        }
    }

    @Test func refusesTensorDataOfTheWrongSize() throws {
        let writer = try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: "a", dimensions: [4], type: .f32, byteCount: 16)])
        #expect(throws: GGUFError.wrongDataSize(name: "a", written: 12, expected: 16)) {
            try GGUFTestHelpers.written(writer, data: [[UInt8](repeating: 0, count: 12)])
        }
        #expect(throws: GGUFError.wrongDataSize(name: "a", written: 20, expected: 16)) {
            try GGUFTestHelpers.written(writer, data: [[UInt8](repeating: 0, count: 20)])
        }
    }

    @Test func failedWriteLeavesNothingBehind() throws {
        let dir = Fixtures.temporaryDirectory("wconv-gguf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = try GGUFWriter(metadata: GGUFMetadata(), tensors: [GGUFTensorDescriptor(name: "a", dimensions: [4], type: .f32, byteCount: 16)])
        #expect(throws: (any Error).self) {
            try writer.write(toPath: dir + "/out.gguf", force: false) { _, sink in try sink.write([1, 2, 3]) }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
