import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// One test per check of the safetensors reader, on hand-built bytes (the reference's own test
/// style). Which of these the reference accepts is also checked against safetensors 0.8.0 itself
/// in `SafetensorsGoldenTests.readerAgreesWithReference`.
@Suite struct SafetensorsReaderTests {
    // MARK: Header length

    @Test func rejectsFileShorterThanTheLength() {
        #expect(throws: SafetensorsError.headerTooSmall(fileSize: 7)) { try ST.parse([1, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: SafetensorsError.headerTooSmall(fileSize: 0)) { try ST.parse([]) }
    }

    @Test func rejectsHeaderOverTheLimit() {
        #expect(throws: SafetensorsError.headerTooLarge(headerSize: 100_000_001)) { try ST.parse(ST.bytes("{}", n: 100_000_001)) }
        #expect(throws: SafetensorsError.headerTooLarge(headerSize: UInt64.max)) { try ST.parse(ST.bytes("{}", n: UInt64.max)) }
        // Exactly the limit is allowed, so a short file then fails on the length.
        #expect(throws: SafetensorsError.invalidHeaderLength(headerSize: 100_000_000, fileSize: 10)) {
            try ST.parse(ST.bytes("{}", n: 100_000_000))
        }
    }

    @Test func rejectsLengthPastTheEnd() {
        #expect(throws: SafetensorsError.invalidHeaderLength(headerSize: 3, fileSize: 10)) { try ST.parse(ST.bytes("{}", n: 3)) }
    }

    // MARK: Header text

    @Test func rejectsHeaderThatIsNotUTF8() {
        var bytes = ST.bytes(#"{"x":1}"#)
        bytes[10] = 0xFF
        #expect(throws: SafetensorsError.headerNotUTF8) { try ST.parse(bytes) }
    }

    @Test func rejectsTruncatedJSON() {
        #expect {
            try ST.parse(ST.bytes("{"))
        } throws: { error in
            if case .invalidHeaderJSON = error as? SafetensorsError { return true }
            return false
        }
    }

    @Test func rejectsNULPadding() {
        // Writers pad with spaces; the reference rejects NUL bytes as trailing characters.
        #expect {
            try ST.parse(ST.bytes("{}\0\0\0\0\0\0"))
        } throws: { error in
            if case .invalidHeaderJSON = error as? SafetensorsError { return true }
            return false
        }
    }

    @Test func acceptsLeadingAndTrailingWhitespace() throws {
        let bytes = ST.bytes("  \n{" + ST.entry("a", "U8", [2], 0, 2) + "}\t  ", data: [7, 8])
        let header = try ST.parse(bytes)
        #expect(header.tensors.map(\.name) == ["a"])
        #expect(header.dataStart == bytes.count - 2)
    }

    @Test func rejectsHeaderThatIsNotAnObject() {
        #expect(throws: SafetensorsError.headerNotObject) { try ST.parse(ST.bytes("[]")) }
        #expect(throws: SafetensorsError.headerNotObject) { try ST.parse(ST.bytes("\"x\"")) }
    }

    // MARK: Metadata

    @Test func readsMetadataInFileOrder() throws {
        let header = try ST.parse(ST.bytes(#"{"__metadata__":{"format":"pt","b":"2","a":"1"}}"#))
        #expect(header.metadata?.map(\.key) == ["format", "b", "a"])
        #expect(header.metadata?.map(\.value) == ["pt", "2", "1"])
        #expect(header.tensors.isEmpty)
    }

    @Test func acceptsNullMetadata() throws {
        // serde reads `null` as an absent Option.
        let header = try ST.parse(ST.bytes(#"{"__metadata__":null}"#))
        #expect(header.metadata == nil)
    }

    @Test func rejectsNonStringMetadata() {
        #expect(throws: SafetensorsError.metadataNotStrings(key: "a")) { try ST.parse(ST.bytes(#"{"__metadata__":{"ok":"x","a":1}}"#)) }
        #expect(throws: SafetensorsError.metadataNotStrings(key: nil)) { try ST.parse(ST.bytes(#"{"__metadata__":[]}"#)) }
        #expect(throws: SafetensorsError.metadataNotStrings(key: nil)) { try ST.parse(ST.bytes(#"{"__metadata__":"pt"}"#)) }
    }

    // MARK: Tensor entries

    @Test func rejectsMalformedEntries() {
        let cases: [(String, String)] = [
            (#"{"a":"x"}"#, "entry is not an object"),
            (#"{"a":{"shape":[1],"data_offsets":[0,1]}}"#, "missing \"dtype\""),
            (#"{"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}}"#, "\"dtype\" is not a string"),
            (#"{"a":{"dtype":"U8","data_offsets":[0,1]}}"#, "missing \"shape\""),
            (#"{"a":{"dtype":"U8","shape":[1]}}"#, "missing \"data_offsets\""),
            (#"{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}"#, "\"shape\" is not an array of non-negative integers"),
            (#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, "\"shape\" is not an array of non-negative integers"),
            (#"{"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}"#, "\"shape\" is not an array of non-negative integers"),
            (#"{"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}"#, "\"shape\" is not an array of non-negative integers"),
            (#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#, "\"data_offsets\" is not a pair of non-negative integers"),
            (#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#, "\"data_offsets\" is not a pair of non-negative integers"),
            (#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}}"#, "\"data_offsets\" is not a pair of non-negative integers"),
        ]
        for (header, reason) in cases {
            #expect(throws: SafetensorsError.invalidTensorEntry(name: "a", reason: reason), "\(header)") {
                try ST.parse(ST.bytes(header, data: [0]))
            }
        }
    }

    @Test func ignoresUnknownEntryFields() throws {
        let header = try ST.parse(ST.bytes(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"x":[1]}}}"#, data: [5]))
        #expect(header.tensors.first?.shape == [1])
    }

    @Test func rejectsUnknownDType() {
        #expect(throws: SafetensorsError.unknownDType(name: "a", dtype: "F128")) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "F128", [1], 0, 1) + "}", data: [0]))
        }
        // Names are case-sensitive, as serde's variant names are.
        #expect(throws: SafetensorsError.unknownDType(name: "a", dtype: "u8")) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "u8", [1], 0, 1) + "}", data: [0]))
        }
    }

    @Test func rejectsDuplicateNames() {
        let header = "{" + ST.entry("a", "U8", [1], 0, 1) + "," + ST.entry("a", "U8", [1], 1, 2) + "}"
        #expect(throws: SafetensorsError.duplicateName("a")) { try ST.parse(ST.bytes(header, data: [0, 0])) }
        // Escaped spellings of one name are the same name.
        let escaped = "{" + ST.entry("ab", "U8", [1], 0, 1) + "," + ST.entry(#"\u0061b"#, "U8", [1], 1, 2) + "}"
        #expect(throws: SafetensorsError.duplicateName("ab")) { try ST.parse(ST.bytes(escaped, data: [0, 0])) }
    }

    @Test func reportsDuplicateFieldsAsJSONErrors() {
        let header = #"{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}"#
        #expect(throws: SafetensorsError.invalidHeaderJSON(.duplicateKey("dtype"))) { try ST.parse(ST.bytes(header, data: [0])) }
    }

    // MARK: Offsets and sizes

    @Test func sortsTensorsByOffsetNotJSONOrder() throws {
        let header = "{" + ST.entry("second", "U8", [1], 2, 3) + "," + ST.entry("first", "I16", [1], 0, 2) + "}"
        let parsed = try ST.parse(ST.bytes(header, data: [1, 2, 3]))
        #expect(parsed.tensors.map(\.name) == ["first", "second"])
        #expect(parsed.tensor(named: "second")?.dataOffsets == 2 ..< 3)
    }

    @Test func rejectsGap() {
        let header = "{" + ST.entry("a", "U8", [1], 0, 1) + "," + ST.entry("b", "U8", [1], 2, 3) + "}"
        #expect(throws: SafetensorsError.invalidOffset(name: "b", begin: 2, end: 3, expectedBegin: 1)) {
            try ST.parse(ST.bytes(header, data: [0, 0, 0]))
        }
    }

    @Test func rejectsOverlap() {
        let header = "{" + ST.entry("a", "U8", [2], 0, 2) + "," + ST.entry("b", "U8", [1], 1, 2) + "}"
        #expect(throws: SafetensorsError.invalidOffset(name: "b", begin: 1, end: 2, expectedBegin: 2)) {
            try ST.parse(ST.bytes(header, data: [0, 0]))
        }
    }

    @Test func rejectsFirstTensorNotAtZero() {
        #expect(throws: SafetensorsError.invalidOffset(name: "a", begin: 1, end: 2, expectedBegin: 0)) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "U8", [1], 1, 2) + "}", data: [0, 0]))
        }
    }

    @Test func rejectsEndBeforeBegin() {
        #expect(throws: SafetensorsError.invalidOffset(name: "a", begin: 1, end: 0, expectedBegin: 1)) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "U8", [0], 1, 0) + "}"))
        }
    }

    @Test func rejectsElementCountOverflow() {
        #expect(throws: SafetensorsError.sizeOverflow(name: "a")) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "F32", [4_611_686_018_427_387_904, 4], 0, 0) + "}"))
        }
    }

    @Test func rejectsBitCountOverflow() {
        // 2^61 elements fit in Int, 2^61 × 32 bits do not.
        #expect(throws: SafetensorsError.sizeOverflow(name: "a")) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "F32", [2_305_843_009_213_693_952], 0, 0) + "}"))
        }
    }

    @Test func rejectsSizeThatDoesNotMatchShape() {
        #expect(throws: SafetensorsError.tensorInvalidInfo(name: "a", expectedByteCount: 8, actualByteCount: 4)) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "F32", [2], 0, 4) + "}", data: [0, 0, 0, 0]))
        }
    }

    @Test func rejectsTrailingBytes() {
        let bytes = ST.bytes("{" + ST.entry("a", "U8", [1], 0, 1) + "}", data: [0, 0, 0])
        #expect(throws: SafetensorsError.incompleteBuffer(expectedFileSize: bytes.count - 2, fileSize: bytes.count)) {
            try ST.parse(bytes)
        }
    }

    @Test func rejectsDataShorterThanTheTensors() {
        let bytes = ST.bytes("{" + ST.entry("a", "U8", [2], 0, 2) + "}", data: [0])
        #expect(throws: SafetensorsError.incompleteBuffer(expectedFileSize: bytes.count + 1, fileSize: bytes.count)) {
            try ST.parse(bytes)
        }
    }

    @Test func rejectsOffsetsThatOverflowTheFileSize() {
        // Eight consistent tensors of 2^60 - 1 bytes end just below Int.max; adding the header
        // length overflows.
        let size = Int.max / 8
        let header = "{" + (0 ..< 8).map { ST.entry("t\($0)", "U8", [size], $0 * size, ($0 + 1) * size) }.joined(separator: ",") + "}"
        let bytes = ST.bytes(header)
        #expect(throws: SafetensorsError.incompleteBuffer(expectedFileSize: Int.max, fileSize: bytes.count)) {
            try ST.parse(bytes)
        }
    }

    // MARK: Accepted shapes and dtypes

    @Test func acceptsScalarsAndEmptyTensors() throws {
        let header = "{" + [
            ST.entry("scalar", "F32", [], 0, 4),
            ST.entry("empty", "F16", [0, 3], 4, 4),
            ST.entry("also_empty", "I8", [5, 0], 4, 4),
            ST.entry("last", "U8", [1], 4, 5),
            ST.entry("empty_at_end", "U8", [0], 5, 5),
        ].joined(separator: ",") + "}"
        let parsed = try ST.parse(ST.bytes(header, data: [0, 0, 128, 63, 9]))
        #expect(parsed.tensors.map(\.name) == ["scalar", "empty", "also_empty", "last", "empty_at_end"])
        #expect(parsed.tensor(named: "scalar")?.elementCount == 1)
        #expect(parsed.tensor(named: "scalar")?.shape == [])
        #expect(parsed.tensor(named: "empty")?.elementCount == 0)
        #expect(parsed.tensor(named: "empty")?.byteCount == 0)
    }

    @Test(arguments: DType.allCases)
    func acceptsEveryDType(_ dtype: DType) throws {
        // 8 elements fill whole bytes for every width, sub-byte ones included.
        let byteCount = dtype.bitCount
        let header = "{" + ST.entry("t", dtype.rawValue, [2, 4], 0, byteCount) + "}"
        let parsed = try ST.parse(ST.bytes(header, data: [UInt8](repeating: 1, count: byteCount)))
        #expect(parsed.tensors.first?.dtype == dtype)
        #expect(parsed.tensors.first?.byteCount == byteCount)
    }

    @Test func acceptsFP8Variants() throws {
        let names = ["F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"]
        let header = "{" + names.enumerated().map { ST.entry($1, $1, [3], 3 * $0, 3 * $0 + 3) }.joined(separator: ",") + "}"
        let parsed = try ST.parse(ST.bytes(header, data: [UInt8](repeating: 0x38, count: 15)))
        #expect(parsed.tensors.map(\.dtype) == [.f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ])
    }

    @Test func sizesSubByteTypesInBits() throws {
        // F4: 6 elements = 3 bytes. F6: 4 elements = 3 bytes.
        let header = "{" + ST.entry("f4", "F4", [2, 3], 0, 3) + "," + ST.entry("f6", "F6_E2M3", [4], 3, 6) + "}"
        let parsed = try ST.parse(ST.bytes(header, data: [0, 0, 0, 0, 0, 0]))
        #expect(parsed.tensors.map(\.byteCount) == [3, 3])
        #expect(throws: SafetensorsError.misalignedSlice(name: "a", dtype: .f4, elementCount: 3)) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "F4", [3], 0, 1) + "}", data: [0]))
        }
        #expect(throws: SafetensorsError.misalignedSlice(name: "a", dtype: .f6E3M2, elementCount: 2)) {
            try ST.parse(ST.bytes("{" + ST.entry("a", "F6_E3M2", [2], 0, 1) + "}", data: [0]))
        }
    }

    // MARK: Files

    @Test func fileViewsTensorBytesInPlace() throws {
        let dir = Fixtures.temporaryDirectory("st-reader")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/two.safetensors"
        let header = #"{"__metadata__":{"format":"pt"},"# + ST.entry("w", "F32", [2], 0, 8) + "," + ST.entry("b", "U8", [3], 8, 11) + "}"
        try ST.write(ST.bytes(header, data: [0, 0, 128, 63, 0, 0, 0, 64, 7, 8, 9]), to: path)
        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.map(\.name) == ["w", "b"])
        #expect(file.metadata?.first?.value == "pt")
        let w = try #require(file.tensor(named: "w"))
        #expect(Array(file.bytes(of: w)) == [0, 0, 128, 63, 0, 0, 0, 64])
        #expect(Array(try file.bytes(named: "b")) == [7, 8, 9])
        #expect(throws: SafetensorsError.tensorNotFound("nope")) {
            do { _ = try file.bytes(named: "nope") } catch { throw ST.underlying(error) }
        }
    }

    @Test func fileErrorsNameThePath() throws {
        let dir = Fixtures.temporaryDirectory("st-reader")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bad.safetensors"
        try ST.write(ST.bytes("{" + ST.entry("a", "U8", [1], 0, 1) + "}", data: [0, 0]), to: path)
        let error = try #require(ST.thrown { _ = try SafetensorsFile(path: path) } as? PathError)
        #expect(error.path == path)
        #expect(error.kind == .malformedInput)
        let size = try ST.read(path).count
        #expect(ST.underlying(error) as? SafetensorsError == .incompleteBuffer(expectedFileSize: size - 1, fileSize: size))
        #expect(error.description == "\(path): 1 trailing byte after the last tensor (file is \(size) bytes, tensors end at \(size - 1))")

        let missing = try #require(ST.thrown { _ = try SafetensorsFile(path: dir + "/none.safetensors") } as? PathError)
        #expect(missing.kind == .missingInput)
    }

    @Test func descriptionsAreOneLineWithoutPath() {
        let errors: [SafetensorsError] = [
            .headerTooSmall(fileSize: 3), .headerTooLarge(headerSize: 1 << 40), .invalidHeaderLength(headerSize: 9, fileSize: 8),
            .headerNotUTF8, .invalidHeaderJSON(.syntax("unexpected end", offset: 3)), .headerNotObject,
            .metadataNotStrings(key: "k"), .metadataNotStrings(key: nil), .invalidTensorEntry(name: "t", reason: "missing \"shape\""),
            .unknownDType(name: "t", dtype: "X"), .duplicateName("t"),
            .invalidOffset(name: "t", begin: 4, end: 8, expectedBegin: 2), .invalidOffset(name: "t", begin: 4, end: 2, expectedBegin: 4),
            .sizeOverflow(name: "t"), .misalignedSlice(name: "t", dtype: .f4, elementCount: 3),
            .tensorInvalidInfo(name: "t", expectedByteCount: 8, actualByteCount: 4),
            .incompleteBuffer(expectedFileSize: 10, fileSize: 12), .incompleteBuffer(expectedFileSize: 12, fileSize: 10),
            .tensorNotFound("t"),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("\n"))
        }
        #expect(Set(errors.map(\.description)).count == errors.count)
    }
}
