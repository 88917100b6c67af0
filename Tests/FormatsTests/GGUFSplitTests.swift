import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

@Suite("GGUF split models")
struct GGUFSplitTests {
    static let source = "vectors/fixtures/tiny-f16.gguf"

    /// Splits the fixture with `limit` into a fresh directory and returns (source, paths, dir).
    static func split(_ limit: GGUFSplitWriter.Limit, metadataOnlyFirstPart: Bool = false) throws
        -> (GGUFFile, GGUFSplitWriter, [String], String)
    {
        let file = try GGUFFile(path: Fixtures.path(source))
        let writer = try GGUFSplitWriter(metadata: file.metadata, tensors: file.tensors.map(GGUFTensorDescriptor.init),
                                         alignment: file.alignment, limit: limit, metadataOnlyFirstPart: metadataOnlyFirstPart)
        let dir = Fixtures.temporaryDirectory("wconv-gguf-split")
        let paths = try writer.write(prefix: dir + "/tiny", force: false) { i, sink in
            try sink.write(try file.bytes(of: file.tensors[i]))
        }
        return (file, writer, paths, dir)
    }

    @Test func splitBySizeRoundTrips() throws {
        let limit = 200_000
        let (file, writer, paths, dir) = try Self.split(.maxBytes(limit))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = writer.parts.count
        #expect(n > 1)
        #expect(paths == (1 ... n).map { dir + "/tiny-0000\($0)-of-0000\(n).gguf" })

        // gguf-split's rule: a part holds as many tensors as fit within the limit (padded data
        // only), and a new part starts exactly when the next tensor would not fit.
        let padded = file.tensors.map { alignUp($0.byteCount, to: 32) }
        for (p, range) in writer.tensorIndices.enumerated() {
            #expect(!range.isEmpty)
            let bytes = range.reduce(0) { $0 + padded[$1] }
            #expect(bytes <= limit || range.count == 1)
            if p + 1 < n { #expect(bytes + padded[range.upperBound] > limit) }
        }
        #expect(writer.tensorIndices.flatMap { Array($0) } == Array(file.tensors.indices))

        // Every part is a valid GGUF with the split keys; only the first has the model's metadata.
        for (p, path) in paths.enumerated() {
            let part = try GGUFFile(path: path)
            #expect(part.metadata[GGUFKeys.Split.number] == .uint16(UInt16(p)))
            #expect(part.metadata[GGUFKeys.Split.count] == .uint16(UInt16(n)))
            #expect(part.metadata[GGUFKeys.Split.tensorsCount] == .int32(Int32(file.tensors.count)))
            let splitKeys = [GGUFKeys.Split.number, GGUFKeys.Split.tensorsCount, GGUFKeys.Split.count]
            if p == 0 {
                #expect(part.metadata.keys == file.metadata.keys + splitKeys)
                for entry in file.metadata { #expect(part.metadata[entry.key] == entry.value) }
            } else {
                #expect(part.metadata.keys == splitKeys)
            }
        }

        // Reading any part's name opens the whole model, with every tensor's bytes intact.
        for path in [paths[0], paths[n - 1]] {
            let model = try GGUFModel.open(path: path)
            #expect(model.parts.count == n)
            #expect(model.tensors.map(\.name) == file.tensors.map(\.name))
            #expect(model.metadata[GGUFKeys.Llama.blockCount]?.intValue == 2)
            for t in model.tensors {
                let original = try #require(file.tensor(named: t.name))
                #expect(t.info.dimensions == original.dimensions)
                #expect(t.info.type == original.type)
                #expect(Array(try model.bytes(of: t)) == Array(try file.bytes(of: original)))
            }
        }
    }

    @Test func splitByTensorCount() throws {
        let (file, writer, paths, dir) = try Self.split(.maxTensors(8))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(writer.tensorIndices == [0 ..< 8, 8 ..< 16, 16 ..< 21])
        let model = try GGUFModel.open(path: paths[0])
        #expect(model.tensors.map(\.part) == file.tensors.indices.map { $0 / 8 })
    }

    @Test func metadataOnlyFirstPart() throws {
        let (file, writer, paths, dir) = try Self.split(.maxTensors(128), metadataOnlyFirstPart: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(writer.tensorIndices == [0 ..< 0, 0 ..< 21])
        #expect(try GGUFFile(path: paths[0]).tensors.isEmpty)
        #expect(try GGUFModel.open(path: paths[1]).tensors.count == file.tensors.count)
    }

    @Test func refusesLimitSmallerThanTheFirstTensor() throws {
        let file = try GGUFFile(path: Fixtures.path(Self.source))
        #expect(throws: GGUFError.self) {
            try GGUFSplitWriter(metadata: file.metadata, tensors: file.tensors.map(GGUFTensorDescriptor.init), limit: .maxBytes(1000))
        }
        #expect(throws: GGUFError.splitLimitTooSmall("the split limit must be positive")) {
            try GGUFSplitWriter(metadata: file.metadata, tensors: [], limit: .maxTensors(0))
        }
    }

    @Test func singleFileIsAOnePartModel() throws {
        let model = try GGUFModel.open(path: Fixtures.path(Self.source))
        #expect(model.parts.count == 1)
        #expect(model.tensors.count == 21)
        #expect(model.tensors.allSatisfy { $0.part == 0 })
    }

    @Test func missingPartIsReported() throws {
        let (_, _, paths, dir) = try Self.split(.maxTensors(8))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.removeItem(atPath: paths[1])
        do {
            _ = try GGUFModel.open(path: paths[0])
            Issue.record("expected an error")
        } catch let error as PathError {
            #expect(error.path == paths[1])
            #expect(error.kind == .missingInput)
        }
    }

    @Test func partsInTheWrongOrderAreReported() throws {
        let (_, _, paths, dir) = try Self.split(.maxTensors(8))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.moveItem(atPath: paths[1], toPath: dir + "/swap")
        try fm.moveItem(atPath: paths[2], toPath: paths[1])
        try fm.moveItem(atPath: dir + "/swap", toPath: paths[2])
        do {
            _ = try GGUFModel.open(path: paths[0])
            Issue.record("expected an error")
        } catch let error as PathError {
            #expect(error.path == paths[1])
            #expect(error.underlying as? GGUFError == .splitMismatch("file is split part 3 (split.no = 2) but was opened as part 2"))
        }
    }

    @Test func renamedPartIsNotMistakenForAWholeModel() throws {
        let (_, _, paths, dir) = try Self.split(.maxTensors(8))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let renamed = dir + "/renamed.gguf"
        try FileManager.default.moveItem(atPath: paths[0], toPath: renamed)
        #expect(throws: PathError.self) { try GGUFModel.open(path: renamed) }
    }

    @Test func recognizesSplitNames() {
        let name = GGUFSplitName(path: "/m/Llama-3-8B-Q4_K_M-00002-of-00005.gguf")
        #expect(name == GGUFSplitName(prefix: "/m/Llama-3-8B-Q4_K_M", part: 1, count: 5))
        #expect(name?.path(part: 0) == "/m/Llama-3-8B-Q4_K_M-00001-of-00005.gguf")
        #expect(GGUFSplitName(prefix: "x", part: 0, count: 123_456).path(part: 99) == "x-00100-of-123456.gguf")
        for bad in ["model.gguf", "m-0001-of-00005.gguf", "m-00006-of-00005.gguf", "m-00001-of-00005.bin",
                    "-00001-of-00002.gguf", "m-00000-of-00002.gguf", "m00001-of-00002.gguf"] {
            #expect(GGUFSplitName(path: bad) == nil, "\(bad)")
        }
    }
}
