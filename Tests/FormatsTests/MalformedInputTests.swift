import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

/// Regression tests for what fuzzing the readers found, and the library side of the
/// testdata/malformed/ corpus: every stored safetensors and GGUF case is opened the way `inspect`
/// opens it and must fail with its expected message (or succeed, for the controls), never trap.
@Suite("Malformed inputs: fuzz findings and the malformed corpus")
struct MalformedInputTests {
    // MARK: Fuzz findings

    /// Found by the gguf fuzz target: an unknown ggml type bounds nothing about its dimensions, so
    /// a tensor could claim 2^62 elements in 32 bytes; `inspect` then overflowed adding up
    /// parameters (a trap). The reader now refuses more than 8 elements per byte for such types.
    @Test func unknownTypeCannotClaimMoreThanEightElementsPerByte() {
        var b = GGUFBuilder()
        b.addString("general.architecture", "llama")
        b.addTensorInfo("a", dimensions: [1 << 31, 1 << 31], type: 99, offset: 0)
        b.addTensorInfo("b", dimensions: [1 << 31, 1 << 31], type: 99, offset: 32)
        b.data = [UInt8](repeating: 0, count: 64)
        #expect(throws: GGUFError.tooManyElementsForBytes(name: "a", type: GGMLType(rawValue: 99), elementCount: 1 << 62, byteCount: 32)) {
            try GGUFHeader.parse(b.build())
        }
    }

    /// The limit is exactly 8 elements per byte: 256 elements fit the 32 bytes of a padded slot,
    /// 257 do not; the last tensor of an unknown type spans to the end of the file.
    @Test func unknownTypeLimitIsEightElementsPerByte() throws {
        func header(_ elements: UInt64, data: Int) throws -> GGUFHeader {
            var b = GGUFBuilder()
            b.addTensorInfo("a", dimensions: [elements], type: 99, offset: 0)
            b.data = [UInt8](repeating: 0, count: data)
            return try GGUFHeader.parse(b.build())
        }
        #expect(try header(256, data: 32).tensors[0].byteCount == 32)
        #expect(throws: GGUFError.tooManyElementsForBytes(name: "a", type: GGMLType(rawValue: 99), elementCount: 257, byteCount: 32)) {
            try header(257, data: 32)
        }
        // An empty tensor of an unknown type is fine with no bytes at all.
        #expect(try header(0, data: 0).tensors[0].byteCount == 0)
    }

    /// The same file through the whole `inspect` path (open, summarize, total up) must now fail
    /// cleanly; a plausible unknown-type tensor still reads as opaque bytes.
    @Test func inspectOfUnknownTypesDoesNotOverflow() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var huge = GGUFBuilder()
        huge.addTensorInfo("a", dimensions: [UInt64(Int64.max)], type: 99, offset: 0)
        huge.addTensorInfo("b", dimensions: [UInt64(Int64.max)], type: 99, offset: 32)
        huge.data = [UInt8](repeating: 0, count: 64)
        let hugePath = dir + "/huge.gguf"
        try Data(huge.build()).write(to: URL(fileURLWithPath: hugePath))
        #expect(throws: (any Error).self) { _ = ModelSummary(try ModelInput.open(path: hugePath)) }

        var plausible = GGUFBuilder()
        plausible.addTensorInfo("a", dimensions: [64], type: 99, offset: 0)
        plausible.addTensorInfo("b", dimensions: [4], type: 0, offset: 32)
        plausible.data = [UInt8](repeating: 0, count: 48)
        let plausiblePath = dir + "/plausible.gguf"
        try Data(plausible.build()).write(to: URL(fileURLWithPath: plausiblePath))
        let summary = ModelSummary(try ModelInput.open(path: plausiblePath))
        #expect(summary.parameterCount == 68)
        #expect(summary.typeTotals.map(\.type).sorted() == ["F32", "type99"])
    }

    /// Found by the config fuzz target (serialize + parse must give the value back): json-c
    /// cannot tell that a document which is a bare number or literal has ended, so "1", "true"
    /// and "-0.5" were refused as "unexpected end of document" unless whitespace followed, and
    /// "null" was refused always (json-c returns no object for it).
    @Test(arguments: [("1", JSONValue.int(1)), ("-0.5", .double(-0.5)), ("1e5", .double(1e5)), ("true", .bool(true)),
                      ("false", .bool(false)), ("null", .null), (" null ", .null), ("1\n", .int(1)), ("\"s\"", .string("s"))])
    func bareScalarDocumentsParse(_ text: String, _ value: JSONValue) throws {
        #expect(try JSONParser.parse(text) == value)
        #expect(try JSONParser.parse(value.serialized()) == value)
    }

    /// Documents that really end early still fail, with the same message as before.
    @Test(arguments: ["tru", "[1", "{\"a\": 1", "\"ab", "-", "1e", "   "])
    func unfinishedDocumentsFail(_ text: String) {
        #expect(throws: JSONError.syntax("unexpected end of document", offset: text.utf8.count)) { try JSONParser.parse(text) }
    }

    /// Found reviewing the bnb-quant-state target's invariants: a quant-state shape whose element
    /// count is near Int.max made `blockCount` and `packedByteCount` overflow (a trap in
    /// BNBCheckpointLayout before the shapes were compared). They are now computed without
    /// intermediate overflow.
    @Test(arguments: [Int.max, Int.max - 1, Int.max - 62, 1 << 62])
    func quantStateCountsDoNotOverflow(elements: Int) throws {
        let json = #"{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [\#(elements)], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}"#
        let state = try Array(json.utf8).withUnsafeBytes { try BNBQuantState.parse($0, tensor: "w") }
        #expect(state.elementCount == elements)
        #expect(state.blockCount == elements / 64 + (elements % 64 == 0 ? 0 : 1))
        #expect(state.packedByteCount == elements / 2 + elements % 2)
        let blocks = state.blockCount
        #expect(state.nestedBlockCount == blocks / 256 + (blocks % 256 == 0 ? 0 : 1))
    }

    /// A checkpoint whose quant state claims Int.max elements is reported as a shape mismatch of
    /// its packed piece, not a crash (inspect reports layout errors; dequantize fails with them).
    @Test func checkpointWithHugeQuantStateIsRejected() throws {
        let path = Fixtures.path("malformed/bnb/state-huge-shape/model.safetensors")
        let input = try ModelInput.open(path: path)
        let summary = try #require(BNBSummary(input))
        let error = try #require(summary.error)
        #expect(error.contains("has shape [2048, 1], expected [4611686018427387904, 1]"), "\(error)")
    }

    // MARK: Inputs changed while mapped

    enum Change: String, CaseIterable, Sendable { case truncate, extend, rewriteSameSize, replaceByRename, none }

    /// `checkUnchanged` looks at the mapped file itself: its size and modification time. A file
    /// replaced by rename is not a change (the mapping still reads the old file, consistently).
    @Test(arguments: Change.allCases)
    func mappedFileNoticesChanges(_ change: Change) throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/input.bin"
        try Data(repeating: 7, count: 8192).write(to: URL(fileURLWithPath: path))
        let file = try MappedFile(path: path)
        // Modification times have the kernel's tick granularity: let one pass.
        usleep(20_000)
        switch change {
        case .truncate: #expect(truncate(path, 4096) == 0)
        case .extend:
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data([1]))
            try handle.close()
        case .rewriteSameSize:
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seek(toOffset: 100)
            try handle.write(contentsOf: Data([1, 2, 3]))
            try handle.close()
        case .replaceByRename:
            try Data(repeating: 9, count: 100).write(to: URL(fileURLWithPath: dir + "/new.bin"))
            #expect(rename(dir + "/new.bin", path) == 0)
        case .none:
            break
        }
        if change == .none || change == .replaceByRename {
            try file.checkUnchanged()
            #expect(file.bytes[0] == 7)
        } else {
            #expect(throws: PathError.self) { try file.checkUnchanged() }
            do { try file.checkUnchanged() } catch {
                #expect("\(error)" == "\(path): file changed while being read (truncated, extended or rewritten in place)")
                #expect((error as? PathError)?.kind == .ioError)
            }
        }
    }

    /// The command line's SIGBUS handler names the input from the fault address.
    @Test func mappedRegionsAreFoundByAddress() throws {
        let path = Fixtures.path("golden/safetensors/mixed.safetensors")
        let file = try MappedFile(path: path)
        let base = UInt(bitPattern: file.bytes.baseAddress)
        #expect(MappedFile.path(containing: base) == path)
        #expect(MappedFile.path(containing: base + UInt(file.count) - 1) == path)
        #expect(MappedFile.path(containing: base + UInt(file.count)) == nil)
        #expect(MappedFile.path(containing: 0) == nil)
    }

    /// Released mappings are forgotten.
    @Test func releasedMappingsAreForgotten() throws {
        var base: UInt = 0
        do {
            let file = try MappedFile(path: Fixtures.path("golden/safetensors/mixed.safetensors"))
            base = UInt(bitPattern: file.bytes.baseAddress)
            #expect(MappedFile.path(containing: base) != nil)
        }
        #expect(MappedFile.path(containing: base) == nil)
    }

    // MARK: The corpus

    struct Case: Decodable, CustomTestStringConvertible {
        let path: String
        let command: [String]
        let exit: Int
        let error: String
        let what: String
        let base: String?
        let input: String?
        let derive: JSONAny?
        var testDescription: String { path }
    }

    /// Only whether a key is there matters here.
    struct JSONAny: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    static let corpus: [Case] = {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: Fixtures.path("malformed/expected.json"))),
              let root = try? JSONDecoder().decode([String: [Case]].self, from: data) else { return [] }
        return root["cases"] ?? []
    }()

    /// The stored single-file cases `inspect` runs on (safetensors, GGUF, shard indexes).
    static let fileCases = corpus.filter { $0.command == ["inspect"] && $0.base == nil && $0.input == nil && $0.derive == nil }

    @Test func corpusIsPresent() {
        #expect(Self.corpus.count > 60)
        #expect(Self.fileCases.count > 40)
    }

    @Test(arguments: fileCases)
    func corpusFileFailsAsExpected(_ item: Case) throws {
        let path = Fixtures.path("malformed/" + item.path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        var thrown: (any Error)?
        do {
            let summary = ModelSummary(try ModelInput.open(path: path))
            _ = summary.typeTotals
            _ = summary.weightParameterCount
        } catch {
            thrown = error
        }
        if item.exit == 0 {
            #expect(thrown == nil, "\(item.path): \(String(describing: thrown))")
        } else {
            let error = try #require(thrown, "\(item.path) was accepted")
            let message = "\(error)"
            #expect(message.contains(item.error), "\(item.path): \(message)")
            #expect(!message.contains("\n"), "\(item.path): message is not one line")
            let kind = (error as? any ClassifiedError)?.kind
            let expectedKinds: [ErrorKind] = switch item.exit {
            case 65: [.malformedInput, .badValue]
            case 66: [.missingInput]
            case 69: [.unsupported]
            default: []
            }
            #expect(kind.map { expectedKinds.contains($0) } == true, "\(item.path): kind \(String(describing: kind))")
        }
        // Reading never writes.
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }
}
