import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

/// One test per reader error, each on hand-built bytes, asserting the exact error.
@Suite("GGUF reader rejects malformed files")
struct GGUFReaderErrorTests {
    typealias B = GGUFBuilder

    /// A valid file with one F32 tensor of 4 elements, to break one piece at a time.
    static func validBuilder() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.addString("general.architecture", "llama")
        b.addTensorInfo("t", dimensions: [4], type: 0, offset: 0)
        b.data = [UInt8](repeating: 0, count: 32)
        return b
    }

    @Test func acceptsTheBaseline() throws {
        let header = try GGUFTestHelpers.parse(Self.validBuilder())
        #expect(header.tensors.map(\.name) == ["t"])
        #expect(header.tensors[0].byteCount == 16)
    }

    @Test func rejectsBadMagic() {
        var b = Self.validBuilder()
        b.magic = Array("GGUX".utf8)
        #expect(throws: GGUFError.badMagic(found: Array("GGUX".utf8))) { try GGUFTestHelpers.parse(b) }
        // Too short to hold a magic at all.
        #expect(throws: GGUFError.badMagic(found: [0x47, 0x47])) { try GGUFHeader.parse([0x47, 0x47]) }
        #expect(throws: GGUFError.badMagic(found: [])) { try GGUFHeader.parse([]) }
    }

    @Test(arguments: [UInt32(0), 1, 4, 0x1234_5678])
    func rejectsUnsupportedVersion(version: UInt32) {
        var b = Self.validBuilder()
        b.version = version
        #expect(throws: GGUFError.unsupportedVersion(version)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func acceptsVersion2() throws {
        var b = Self.validBuilder()
        b.version = 2
        #expect(try GGUFTestHelpers.parse(b).version == 2)
    }

    @Test func rejectsByteSwappedFile() {
        var b = Self.validBuilder()
        b.version = 0x0300_0000  // 3 written big-endian
        #expect(throws: GGUFError.byteSwapped(version: 0x0300_0000)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsTruncatedHeader() {
        let bytes = Array(Self.validBuilder().build().prefix(12))
        #expect(throws: GGUFError.truncated(what: "header", offset: 8)) { try GGUFHeader.parse(bytes) }
    }

    @Test func rejectsTruncatedValue() {
        var b = GGUFBuilder()
        b.addEntry("k", type: 4, payload: [1, 2])  // a UINT32 with 2 bytes
        b.padAfterInfos = false
        let bytes = b.build()
        #expect(throws: GGUFError.truncated(what: "value of 'k'", offset: bytes.count - 2)) { try GGUFHeader.parse(bytes) }
    }

    @Test func rejectsTruncatedTensorInfo() {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [4], type: 0, offset: 0)
        b.padAfterInfos = false
        let bytes = Array(b.build().dropLast(4))
        #expect(throws: GGUFError.truncated(what: "tensor info 't'", offset: bytes.count - 4)) { try GGUFHeader.parse(bytes) }
    }

    @Test func rejectsEmptyKey() {
        var b = Self.validBuilder()
        b.addEntry(keyBytes: [], type: 4, payload: B.le(UInt32(1)))
        #expect(throws: GGUFError.emptyKey(index: 1)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsDuplicateKey() {
        var b = Self.validBuilder()
        b.addUInt32("llama.block_count", 2)
        b.addUInt32("llama.block_count", 3)
        #expect(throws: GGUFError.duplicateKey("llama.block_count")) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsUnknownValueType() {
        var b = Self.validBuilder()
        b.addEntry("k", type: 13, payload: [0])
        #expect(throws: GGUFError.unknownValueType(id: 13, key: "k")) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsUnknownArrayElementType() {
        var b = Self.validBuilder()
        b.addArray("k", elementType: 0xFFFF_FFFF, count: 1, elements: [0])
        #expect(throws: GGUFError.unknownValueType(id: 0xFFFF_FFFF, key: "k")) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsNestedArray() {
        var b = Self.validBuilder()
        let inner = B.le(UInt32(4)) + B.le(UInt64(1)) + B.le(UInt32(7))
        b.addArray("k", elementType: 9, count: 1, elements: inner)
        #expect(throws: GGUFError.nestedArray(key: "k")) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsStringLongerThanTheFile() {
        // A claimed length of 2^60 with a few bytes left fails at once, without allocating.
        var b = GGUFBuilder()
        b.addEntry("k", type: 8, payload: B.string(bytes: Array("abcdefghij".utf8), claimedLength: 1 << 60))
        b.padAfterInfos = false
        #expect(throws: GGUFError.stringTooLong(what: "value of 'k'", length: 1 << 60, maximum: 10)) {
            try GGUFTestHelpers.parse(b)
        }
    }

    @Test func rejectsKeyLongerThanTheFile() {
        var b = GGUFBuilder()
        b.addRawEntry(B.le(UInt64.max) + Array("keykeykeykey".utf8))
        b.padAfterInfos = false
        #expect(throws: GGUFError.stringTooLong(what: "metadata key 0", length: .max, maximum: 12)) {
            try GGUFTestHelpers.parse(b)
        }
    }

    @Test func rejectsArrayLongerThanTheFile() {
        var b = GGUFBuilder()
        b.addArray("k", elementType: 5, count: 1 << 60, elements: [UInt8](repeating: 0, count: 10))
        b.padAfterInfos = false
        // 10 bytes left hold at most 2 INT32 elements.
        #expect(throws: GGUFError.arrayTooLong(key: "k", count: 1 << 60, maximum: 2)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsStringArrayLongerThanTheFile() {
        var b = GGUFBuilder()
        b.addArray("tokenizer.ggml.tokens", elementType: 8, count: 3, elements: B.string("a") + B.string("b"))
        b.padAfterInfos = false
        // 18 bytes left; each string needs at least its 8-byte length.
        #expect(throws: GGUFError.arrayTooLong(key: "tokenizer.ggml.tokens", count: 3, maximum: 2)) {
            try GGUFTestHelpers.parse(b)
        }
    }

    /// The 1 GiB caps of ggml apply even when the bytes are there: the header sits in front of
    /// a sparse file a little over 1 GiB, so nothing big is allocated or read.
    @Test func rejectsStringAndArrayOverTheGGMLCaps() throws {
        let cap = GGUFHeader.maximumStringLength
        var s = GGUFBuilder()
        s.addEntry("k", type: 8, payload: B.le(cap + 1))
        s.padAfterInfos = false
        try withSparseFile(prefix: s.build(), size: Int(cap) + 4096) { bytes in
            #expect(throws: GGUFError.stringTooLong(what: "value of 'k'", length: cap + 1, maximum: cap)) {
                try GGUFHeader.parse(bytes)
            }
        }
        var a = GGUFBuilder()
        a.addArray("k", elementType: 0, count: GGUFHeader.maximumArrayCount + 1, elements: [])
        a.padAfterInfos = false
        try withSparseFile(prefix: a.build(), size: Int(cap) + 4096) { bytes in
            #expect(throws: GGUFError.arrayTooLong(key: "k", count: GGUFHeader.maximumArrayCount + 1,
                                                   maximum: GGUFHeader.maximumArrayCount)) {
                try GGUFHeader.parse(bytes)
            }
        }
    }

    private func withSparseFile(prefix: [UInt8], size: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let dir = Fixtures.temporaryDirectory("wconv-gguf-sparse")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/sparse.gguf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(prefix)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
        let mapped = try MappedFile(path: path)
        try body(mapped.bytes)
    }

    @Test func rejectsInvalidUTF8InKeys() {
        var b = Self.validBuilder()
        b.addEntry(keyBytes: [0x6B, 0xFF], type: 4, payload: B.le(UInt32(1)))
        #expect(throws: GGUFError.invalidUTF8(what: "metadata key 1")) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsNameOf64Bytes() throws {
        let ok = String(repeating: "n", count: 63)
        var b = GGUFBuilder()
        b.addTensorInfo(ok, dimensions: [4], type: 0, offset: 0)
        b.data = [UInt8](repeating: 0, count: 16)
        #expect(try GGUFTestHelpers.parse(b).tensors[0].name == ok)

        let long = ok + "n"
        var c = GGUFBuilder()
        c.addTensorInfo(long, dimensions: [4], type: 0, offset: 0)
        c.data = [UInt8](repeating: 0, count: 16)
        #expect(throws: GGUFError.nameTooLong(long)) { try GGUFTestHelpers.parse(c) }
    }

    @Test func rejectsDuplicateTensor() {
        var b = Self.validBuilder()
        b.addTensorInfo("t", dimensions: [4], type: 0, offset: 32)
        b.data = [UInt8](repeating: 0, count: 64)
        #expect(throws: GGUFError.duplicateTensor("t")) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsMoreThanFourDimensions() {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [1, 1, 1, 1, 1], type: 0, offset: 0)
        #expect(throws: GGUFError.tooManyDimensions(name: "t", count: 5)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsNegativeDimension() {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [4, UInt64(bitPattern: -3)], type: 0, offset: 0)
        #expect(throws: GGUFError.negativeDimension(name: "t", index: 1, value: -3)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsOverflowingDimensions() {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [1 << 32, 1 << 32], type: 0, offset: 0)
        #expect(throws: GGUFError.tensorTooLarge(name: "t", dimensions: [1 << 32, 1 << 32])) { try GGUFTestHelpers.parse(b) }
        // Elements fit but bytes do not: 2^62 F32 elements are 2^64 bytes.
        var c = GGUFBuilder()
        c.addTensorInfo("t", dimensions: [1 << 31, 1 << 31], type: 0, offset: 0)
        #expect(throws: GGUFError.tensorTooLarge(name: "t", dimensions: [1 << 31, 1 << 31])) { try GGUFTestHelpers.parse(c) }
    }

    @Test func rejectsAlignmentOfWrongType() {
        var b = Self.validBuilder()
        b.addUInt64("general.alignment", 32)
        #expect(throws: GGUFError.alignmentWrongType(.uint64)) { try GGUFTestHelpers.parse(b) }
    }

    @Test(arguments: [UInt32(0), 48, 3])
    func rejectsAlignmentNotPowerOfTwo(alignment: UInt32) {
        var b = Self.validBuilder()
        b.addUInt32("general.alignment", alignment)
        #expect(throws: GGUFError.alignmentNotPowerOfTwo(Int(alignment))) { try GGUFTestHelpers.parse(b) }
    }

    @Test func honoursCustomAlignment() throws {
        var b = GGUFBuilder()
        b.addUInt32("general.alignment", 64)
        b.alignment = 64
        b.addTensorInfo("a", dimensions: [4], type: 0, offset: 0)
        b.addTensorInfo("b", dimensions: [4], type: 0, offset: 64)
        b.data = [UInt8](repeating: 0, count: 128)
        let h = try GGUFTestHelpers.parse(b)
        #expect(h.alignment == 64)
        #expect(h.dataOffset % 64 == 0)
        #expect(h.tensors.map(\.offset) == [0, 64])
    }

    @Test func rejectsRowNotMultipleOfBlock() {
        var b = GGUFBuilder()
        b.addTensorInfo("w", dimensions: [33, 2], type: GGMLType.q8_0.rawValue, offset: 0)
        #expect(throws: GGUFError.rowNotMultipleOfBlock(name: "w", rowLength: 33, type: .q8_0, blockSize: 32)) {
            try GGUFTestHelpers.parse(b)
        }
    }

    @Test func rejectsUnalignedOffset() {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [4], type: 0, offset: 16)
        b.data = [UInt8](repeating: 0, count: 64)
        #expect(throws: GGUFError.offsetNotAligned(name: "t", offset: 16, alignment: 32)) { try GGUFTestHelpers.parse(b) }
    }

    @Test func rejectsOffsetsThatAreNotCumulative() {
        // Second tensor leaves a gap: ggml wants it right after the first, padded (offset 32).
        var b = GGUFBuilder()
        b.addTensorInfo("a", dimensions: [4], type: 0, offset: 0)
        b.addTensorInfo("b", dimensions: [4], type: 0, offset: 64)
        b.data = [UInt8](repeating: 0, count: 128)
        #expect(throws: GGUFError.offsetsNotCumulative(name: "b", offset: 64, expected: 32)) { try GGUFTestHelpers.parse(b) }
        // Data in the reverse order of the infos.
        var c = GGUFBuilder()
        c.addTensorInfo("a", dimensions: [4], type: 0, offset: 32)
        c.addTensorInfo("b", dimensions: [4], type: 0, offset: 0)
        c.data = [UInt8](repeating: 0, count: 64)
        #expect(throws: GGUFError.offsetsNotCumulative(name: "a", offset: 32, expected: 0)) { try GGUFTestHelpers.parse(c) }
    }

    @Test func rejectsTensorDataPastTheEnd() throws {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [16], type: 0, offset: 0)  // 64 bytes
        b.data = [UInt8](repeating: 0, count: 32)
        let bytes = b.build()
        let dataOffset = bytes.count - 32
        #expect(throws: GGUFError.tensorOutOfBounds(name: "t", fileOffset: UInt64(dataOffset), byteCount: 64, fileSize: bytes.count)) {
            try GGUFHeader.parse(bytes)
        }
        // The same header is fine when the caller says the file is longer than the prefix given.
        #expect(try GGUFHeader.parse(bytes, fileSize: bytes.count + 32).tensors[0].byteCount == 64)
    }

    @Test func rejectsMissingPaddingBeforeData() {
        var b = GGUFBuilder()
        b.addTensorInfo("t", dimensions: [0], type: 0, offset: 0)
        b.padAfterInfos = false
        let bytes = b.build()
        #expect(bytes.count % 32 != 0)
        #expect(throws: GGUFError.truncated(what: "padding before the tensor data", offset: bytes.count)) {
            try GGUFHeader.parse(bytes)
        }
    }

    @Test func rejectsTensorCountTooLarge() {
        var b = Self.validBuilder()
        b.tensorCountOverride = 1 << 60
        let bytes = b.build()
        #expect(throws: GGUFError.tensorCountTooLarge(count: 1 << 60, bytesLeft: bytes.count - 24)) { try GGUFHeader.parse(bytes) }
        // Just over what the bytes could describe: 2 tensor infos need at least 48 bytes.
        var c = GGUFBuilder()
        c.tensorCountOverride = 2
        c.padAfterInfos = false
        c.data = [UInt8](repeating: 0, count: 47)
        #expect(throws: GGUFError.tensorCountTooLarge(count: 2, bytesLeft: 47)) { try GGUFTestHelpers.parse(c) }
    }

    @Test func rejectsKeyValueCountTooLarge() {
        var b = Self.validBuilder()
        b.kvCountOverride = UInt64.max
        let bytes = b.build()
        #expect(throws: GGUFError.keyValueCountTooLarge(count: .max, bytesLeft: bytes.count - 24)) { try GGUFHeader.parse(bytes) }
    }

    @Test func errorsAreClassified() {
        #expect(GGUFError.badMagic(found: []).kind == .malformedInput)
        #expect(GGUFError.unsupportedVersion(1).kind == .unsupported)
        #expect(GGUFError.byteSwapped(version: 0x0300_0000).kind == .unsupported)
        #expect(GGUFError.byteSwapped(version: 0x0300_0000).description.contains("big-endian GGUF is not supported"))
        #expect(GGUFError.tensorOutOfBounds(name: "x", fileOffset: 1024, byteCount: 4_718_592, fileSize: 4_000_000).description
            == "tensor 'x' needs 4718592 bytes at file offset 1024, but the file has 4000000 bytes")
    }
}

@Suite("GGUF file access")
struct GGUFFileAccessTests {
    @Test func bytesOfAForeignTensorInfoThrows() throws {
        let file = try GGUFFile(path: Fixtures.path("vectors/fixtures/tiny-f16.gguf"))
        let huge = GGUFTensorInfo(name: "x", dimensions: [1], type: .f32, offset: .max, byteCount: 4, isKnownType: true)
        #expect(throws: PathError.self) { try file.bytes(of: huge) }
        let past = GGUFTensorInfo(name: "x", dimensions: [1], type: .f32, offset: file.fileSize, byteCount: 4, isKnownType: true)
        #expect(throws: PathError.self) { try file.bytes(of: past) }
    }

    @Test func openingAMalformedFileNamesIt() throws {
        let dir = Fixtures.temporaryDirectory("wconv-gguf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bad.gguf"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("GGUX\u{3}\0\0\0".utf8)))
        do {
            _ = try GGUFFile(path: path)
            Issue.record("expected an error")
        } catch let error as PathError {
            #expect(error.path == path)
            #expect(error.kind == .malformedInput)
            #expect(error.description == "\(path): not a GGUF file: starts with 'GGUX', expected 'GGUF'")
        }
    }
}
