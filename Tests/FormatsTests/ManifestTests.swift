import Foundation
import Testing
import TestSupport
@testable import Formats
import TensorCore

/// Builds small file trees for the manifest and archive tests.
enum TreeBuilder {
    /// Writes `files` (relative path → bytes) under a new temporary directory and returns it.
    static func make(_ files: [String: [UInt8]], label: String = "wconv-tree") throws -> String {
        let dir = Fixtures.temporaryDirectory(label)
        try write(files, into: dir)
        return dir
    }

    static func write(_ files: [String: [UInt8]], into dir: String) throws {
        for (path, bytes) in files {
            let url = URL(fileURLWithPath: dir).appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
    }

    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// A small model-like tree: JSON files, a binary blob, a nested directory, an empty file.
    static func sample() -> [String: [UInt8]] {
        [
            "config.json": Array("{\"model_type\": \"llama\"}\n".utf8),
            "model.safetensors": random(70_000, seed: 1),
            "tokenizer/vocab.txt": Array("a\nb\nc\n".utf8),
            "tokenizer/empty": [],
        ]
    }

    static func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Runs a command-line tool and returns its standard output.
    static func run(_ tool: String, _ arguments: [String]) throws -> [UInt8] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Array(data)
    }
}

@Suite struct ManifestTests {
    @Test func digestsMatchKnownVectors() throws {
        // FIPS 180-2 examples.
        #expect(SHA256Hashing.hex(of: [UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Hashing.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256Hashing.hex(of: [UInt8](repeating: 0x61, count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func streamedFileDigestEqualsSha256sum() throws {
        // Larger than the hashing window, not a multiple of it, so the windows' seams are crossed.
        let bytes = TreeBuilder.random(SHA256Hashing.window * 2 + 12345, seed: 7)
        let dir = try TreeBuilder.make(["big.bin": bytes])
        let path = dir + "/big.bin"
        let (count, hex) = try SHA256Hashing.hexOfFile(at: path)
        #expect(count == bytes.count)
        #expect(hex == SHA256Hashing.hex(of: bytes))
        let reference = String(decoding: try TreeBuilder.run("/usr/bin/sha256sum", [path]), as: UTF8.self)
        #expect(reference.hasPrefix(hex + " "))
    }

    @Test func relativePaths() {
        #expect(FileTree.relativePath(from: "/a/b", to: "/a/b/c.txt") == "c.txt")
        #expect(FileTree.relativePath(from: "/a/b", to: "/a/c/d") == "../c/d")
        #expect(FileTree.relativePath(from: "/a/b/c", to: "/x") == "../../../x")
        #expect(FileTree.relativePath(from: "/", to: "/x/y") == "x/y")
        #expect(FileTree.relativePath(from: "/a", to: "/a") == ".")
        #expect(FileTree.isSafeRelativePath("a/b.txt"))
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a/./b", "a/", ".", "a\u{0}b"] {
            #expect(!FileTree.isSafeRelativePath(bad), "\(bad)")
        }
    }

    @Test func sameFilesGiveTheSameBytesAnywhereAndOnAnyThreadCount() throws {
        let a = try TreeBuilder.make(TreeBuilder.sample())
        let b = try TreeBuilder.make(TreeBuilder.sample())
        let ma = try Manifest.make(wconvVersion: "9.9.9", command: ManifestCommand(name: "quantize", options: JSONObject([("type", "Q4_K_M"), ("blocksize", 64)])),
                                   recipe: .object(JSONObject([("method", "ggml"), ("rules", .object(JSONObject([("output.weight", "Q6_K")])))])),
                                   inputs: [], outputs: [a], relativeTo: a, options: ManifestOptions(threads: 1))
        let mb = try Manifest.make(wconvVersion: "9.9.9", command: ManifestCommand(name: "quantize", options: JSONObject([("blocksize", 64), ("type", "Q4_K_M")])),
                                   recipe: .object(JSONObject([("rules", .object(JSONObject([("output.weight", "Q6_K")]))), ("method", "ggml")])),
                                   inputs: [], outputs: [b], relativeTo: b, options: ManifestOptions(threads: 4))
        #expect(ma.serialized() == mb.serialized())
        let text = ma.serialized()
        #expect(!text.contains(a) && !text.contains(FileManager.default.temporaryDirectory.path))
        #expect(text.hasSuffix("}\n"))
        // Sorted keys at every level, files sorted by path.
        #expect(ma.outputs.map(\.path) == ["config.json", "model.safetensors", "tokenizer/empty", "tokenizer/vocab.txt"])
        let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(keys == ["command", "format", "format_version", "inputs", "outputs", "recipe", "wconv_version"])
        // Parses back to the same value.
        let parsed = try Array(text.utf8).withUnsafeBytes { try Manifest(bytes: $0) }
        #expect(parsed.serialized() == text)
        #expect(ma.outputs.first { $0.path == "tokenizer/empty" }?.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func recordWritesBesideOutputsWithInputsRelativeAndExcludesItself() throws {
        let parent = Fixtures.temporaryDirectory("wconv-record")
        try TreeBuilder.write(["in/model.safetensors": TreeBuilder.random(5000, seed: 2), "in/config.json": Array("{}".utf8)], into: parent)
        try TreeBuilder.write(TreeBuilder.sample(), into: parent + "/out")
        let manifestPath = parent + "/out/" + Manifest.fileName
        let m = try Manifest.record(wconvVersion: "0.1.0", command: ManifestCommand(name: "convert"), recipe: nil,
                                    inputs: [parent + "/in"], outputs: [parent + "/out"], at: manifestPath)
        #expect(m.inputs.map(\.path) == ["../in/config.json", "../in/model.safetensors"])
        #expect(!m.outputs.contains { $0.path == Manifest.fileName })
        #expect(try Manifest.read(path: manifestPath) == m)
        // A second record refuses to overwrite without force.
        #expect(throws: PathError.self) {
            try Manifest.record(wconvVersion: "0.1.0", command: nil, recipe: nil, inputs: [], outputs: [parent + "/out"], at: manifestPath)
        }
        // Checking finds everything, including the inputs through their relative paths.
        let results = m.check(relativeTo: parent + "/out", includeInputs: true, threads: 2)
        #expect(results.count == 6)
        #expect(results.allSatisfy { $0.isOK })
        // Absolute paths only when asked.
        let abs = try Manifest.make(wconvVersion: "0.1.0", command: nil, recipe: nil, inputs: [], outputs: [parent + "/in/config.json"],
                                    relativeTo: parent, options: ManifestOptions(absolutePaths: true))
        #expect(abs.outputs[0].path.hasPrefix("/") && abs.outputs[0].path.hasSuffix("/in/config.json"))
    }

    @Test func checkNamesMismatchesMissingFilesAndSizeChanges() throws {
        let dir = try TreeBuilder.make(TreeBuilder.sample())
        let m = try Manifest.record(wconvVersion: "0.1.0", command: nil, recipe: nil, inputs: [], outputs: [dir],
                                    at: dir + "/" + Manifest.fileName)
        var blob = try TreeBuilder.read(dir + "/model.safetensors")
        blob[1000] ^= 1
        try Data(blob).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try FileManager.default.removeItem(atPath: dir + "/tokenizer/vocab.txt")
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let results = m.check(relativeTo: dir)
        let byPath = Dictionary(uniqueKeysWithValues: results.map { ($0.path, $0) })
        #expect(byPath["model.safetensors"]?.status == .mismatch)
        #expect(byPath["model.safetensors"]?.message.contains("model.safetensors: SHA-256 mismatch") == true)
        #expect(byPath["tokenizer/vocab.txt"]?.status == .missing)
        #expect(byPath["tokenizer/vocab.txt"]?.message.contains("vocab.txt: missing") == true)
        #expect(byPath["config.json"]?.status == .sizeMismatch)
        #expect(byPath["tokenizer/empty"]?.status == .ok)
    }

    @Test func tensorDigestsAndTheTensorsThatDiffer() throws {
        let dir = Fixtures.temporaryDirectory("wconv-tensors")
        let source = Fixtures.path("tiny-llama-spm")
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: dir + "/" + name)
        }
        let model = try ModelInput.open(path: dir)
        let tensorSource = model.tensorSource
        let m = try Manifest.record(wconvVersion: "0.1.0", command: nil, recipe: nil, inputs: [], outputs: [dir],
                                    at: dir + "/" + Manifest.fileName, options: ManifestOptions(tensorSources: [tensorSource]))
        let weights = try #require(m.outputs.first { $0.path == "model.safetensors" })
        let tensors = try #require(weights.tensors)
        #expect(tensors.count == tensorSource.entries.count)
        #expect(tensors.map(\.name) == tensorSource.entries.map(\.name).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        for entry in tensorSource.entries {
            let t = try #require(tensors.first { $0.name == entry.name })
            #expect(t.sha256 == SHA256Hashing.hex(of: try tensorSource.bytes(of: entry)))
            #expect(t.byteCount == entry.byteCount && t.shape == entry.shape && t.type == entry.encoding.description)
        }
        #expect(m.outputs.filter { $0.path != "model.safetensors" }.allSatisfy { $0.tensors == nil })

        // Change one byte inside one tensor: the check names that tensor.
        let victim = tensorSource.entries[3]
        var bytes = try TreeBuilder.read(dir + "/model.safetensors")
        bytes[victim.fileOffset + 1] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let result = try #require(m.check(relativeTo: dir).first { $0.path == "model.safetensors" })
        #expect(result.status == .mismatch)
        #expect(result.differingTensors == [victim.name])
        #expect(result.message.contains(victim.name))
    }

    @Test func malformedManifestsAreRefused() throws {
        func parse(_ text: String) throws -> Manifest {
            try Array(text.utf8).withUnsafeBytes { try Manifest(bytes: $0) }
        }
        let good = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        #expect(throws: ManifestError.notAManifest) { try parse("{\"format\": \"other\"}") }
        #expect(throws: ManifestError.unsupportedVersion(2)) {
            try parse("{\"format\": \"wconv-manifest\", \"format_version\": 2, \"wconv_version\": \"9\"}")
        }
        let head = "{\"format\": \"wconv-manifest\", \"format_version\": 1, \"wconv_version\": \"0.1.0\", "
        #expect(throws: ManifestError.self) { try parse(head + "\"outputs\": [{\"path\": \"a\", \"bytes\": 1, \"sha256\": \"ABC\"}]}") }
        #expect(throws: ManifestError.self) { try parse(head + "\"outputs\": [{\"path\": \"a\", \"bytes\": -1, \"sha256\": \"\(good)\"}]}") }
        #expect(throws: ManifestError.duplicatePath("a")) {
            try parse(head + "\"outputs\": [{\"path\": \"a\", \"bytes\": 1, \"sha256\": \"\(good)\"}, {\"path\": \"a\", \"bytes\": 1, \"sha256\": \"\(good)\"}]}")
        }
        #expect(throws: (any Error).self) { try parse(head) }   // truncated JSON
        let ok = try parse(head + "\"outputs\": [{\"path\": \"a\", \"bytes\": 1, \"sha256\": \"\(good)\"}]}")
        #expect(ok.outputs == [ManifestFile(path: "a", byteCount: 1, sha256: good)])
        #expect(ok.command == nil && ok.recipe == nil && ok.inputs.isEmpty)
        #expect(ManifestError.unsupportedVersion(2).kind == .unsupported)
        #expect(ManifestError.notAManifest.kind == .malformedInput)
    }

    @Test func symlinksToFilesAreFollowedAndSpecialFilesRefused() throws {
        let dir = try TreeBuilder.make(["real/blob": Array("payload".utf8)])
        try FileManager.default.createDirectory(atPath: dir + "/snapshot", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/snapshot/model.bin", withDestinationPath: "../real/blob")
        let m = try Manifest.make(wconvVersion: "0", command: nil, recipe: nil, inputs: [], outputs: [dir + "/snapshot"], relativeTo: dir + "/snapshot")
        #expect(m.outputs.map(\.path) == ["model.bin"])
        #expect(m.outputs[0].sha256 == SHA256Hashing.hex(of: Array("payload".utf8)))
        try FileManager.default.createSymbolicLink(atPath: dir + "/snapshot/loop", withDestinationPath: "../real")
        #expect(throws: PathError.self) {
            _ = try Manifest.make(wconvVersion: "0", command: nil, recipe: nil, inputs: [], outputs: [dir + "/snapshot"], relativeTo: dir)
        }
    }
}
