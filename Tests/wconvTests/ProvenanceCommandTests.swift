import Foundation
import Formats
import Testing
import TestSupport

/// Provenance inside and beside outputs (`general.wconv.*`, `__metadata__`, the manifest), and
/// reproducible outputs: the same bytes for any thread count and on every run.
@Suite struct ProvenanceCommandTests {
    static let spm = Fixtures.path("tiny-llama-spm")
    static let adapter = Fixtures.path("golden/lora/tiny-llama-spm-lora")

    /// Every file below `root` (or `root` itself), relative path → bytes.
    static func files(_ root: String) throws -> [String: Data] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir) else { return [:] }
        if !isDir.boolValue { return [(root as NSString).lastPathComponent: try Data(contentsOf: URL(fileURLWithPath: root))] }
        var out: [String: Data] = [:]
        guard let walk = FileManager.default.enumerator(atPath: root) else { return [:] }
        for case let rel as String in walk {
            var d: ObjCBool = false
            let full = root + "/" + rel
            if FileManager.default.fileExists(atPath: full, isDirectory: &d), !d.boolValue {
                out[rel] = try Data(contentsOf: URL(fileURLWithPath: full))
            }
        }
        return out
    }

    /// The recorded `sha256sum` lines of the files of `directory` (named `base/relative`).
    static func expectedInputLines(_ directory: String) throws -> [String] {
        let base = (directory as NSString).lastPathComponent
        return try files(directory).keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map {
            "\(try TestSHA256.hex(file: directory + "/" + $0))  \(base)/\($0)"
        }
    }

    @Test func ggufCarriesProvenanceAndManifestSitsBeside() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.gguf"
        let r = try CLI.run(["convert", Self.spm, "-o", out, "--outtype", "f16", "--manifest-tensors"])
        #expect(r.status == 0, "\(r.stderr)")
        guard case .gguf(let model) = try ModelInput.open(path: out) else { Issue.record("not a GGUF"); return }
        let meta = model.metadata
        #expect(meta["general.wconv.version"]?.stringValue == "0.1.0")
        let command = try #require(meta["general.wconv.command"]?.stringValue)
        #expect(command == #"{"name": "convert", "options": {"input": "tiny-llama-spm", "outtype": "f16"}}"#)
        #expect(meta["general.wconv.recipe"]?.stringValue == #"{"method": "convert", "outtype": "f16"}"#)
        guard case .array(.string(let lines))? = meta["general.wconv.inputs"] else { Issue.record("no inputs"); return }
        #expect(Array(lines) == (try Self.expectedInputLines(Self.spm)))
        // No path of this machine anywhere in the file.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(bytes.range(of: Data(Fixtures.repositoryRoot().path.utf8)) == nil)
        #expect(bytes.range(of: Data(dir.utf8)) == nil)

        // The manifest beside it: the output's and every input's digest, tensors on request.
        let manifest = try Manifest.read(path: out + ".wconv-manifest.json")
        #expect(manifest.command?.name == "convert")
        #expect(manifest.outputs.map(\.path) == ["m.gguf"])
        #expect(manifest.outputs.first?.sha256 == (try TestSHA256.hex(file: out)))
        #expect(manifest.outputs.first?.tensors?.count == 21)
        #expect(manifest.inputs.count == 7)
        for input in manifest.inputs {
            #expect(input.sha256 == (try TestSHA256.hex(file: dir + "/" + input.path)), "\(input.path)")
        }
        let check = try CLI.run(["checksum", "--check", out + ".wconv-manifest.json", "--inputs"])
        #expect(check.status == 0, "\(check.stderr)")
    }

    @Test func safetensorsCarryProvenanceInMetadata() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["quantize", Self.spm, "-o", dir + "/nf4", "--nf4", "--threads", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let file = try SafetensorsFile(path: dir + "/nf4/model.safetensors")
        let meta = Dictionary(uniqueKeysWithValues: (file.metadata ?? []).map { ($0.key, $0.value) })
        #expect(meta["format"] == "pt")
        #expect(meta["wconv.version"] == "0.1.0")
        #expect(meta["wconv.command"] == #"{"name": "quantize", "options": {"input": "tiny-llama-spm", "nf4": true}}"#)
        #expect(meta["wconv.recipe"]?.contains(#""quant_type": "nf4""#) == true)
        #expect(meta["wconv.recipe"]?.contains(#""blocksize": 64"#) == true)
        #expect(meta["wconv.inputs"] == (try Self.expectedInputLines(Self.spm)).joined(separator: "\n"))
        let manifest = try Manifest.read(path: dir + "/nf4/wconv-manifest.json")
        #expect(Set(manifest.outputs.map(\.path)) == Set(try Self.files(dir + "/nf4").keys.filter { $0 != "wconv-manifest.json" }))
        #expect(manifest.recipe?.objectValue?["quant_type"] == .string("nf4"))
        #expect(try CLI.run(["checksum", "--check", dir + "/nf4"]).status == 0)
    }

    @Test func noProvenanceWritesNothingExtra() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["convert", Self.spm, "-o", dir + "/m.gguf", "--outtype", "f32", "--no-provenance"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/m.gguf")) == Data(try Fixtures.data("golden/tiny-llama-spm.f32.gguf")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["m.gguf"])
        let both = try CLI.run(["convert", Self.spm, "-o", dir + "/x.gguf", "--no-provenance", "--manifest-tensors"])
        #expect(both.status == 64)
    }

    /// Each command, with an output name: run at --threads 1 and 2, twice each, in sibling
    /// directories; every output file (the manifest too) must be the same bytes.
    static let reproducible: [(label: String, arguments: [String], output: String, threaded: Bool)] = [
        ("convert HF→GGUF", ["convert", spm, "--outtype", "f16"], "m.gguf", true),
        ("convert GGUF→HF", ["convert", Fixtures.path("golden/tiny-llama-spm.f32.gguf"), "--outtype", "bf16"], "hf", true),
        ("quantize nf4", ["quantize", spm, "--nf4"], "nf4", true),
        ("quantize int8", ["quantize", spm, "--int8"], "int8", true),
        ("quantize Q4_K_M", ["quantize", Fixtures.path("tiny-llama-256"), "--type", "Q4_K_M"], "q.gguf", true),
        ("dequantize bnb", ["dequantize", Fixtures.path("golden/tiny-llama-spm-nf4"), "--outtype", "f32"], "deq", true),
        ("dequantize GGUF", ["dequantize", Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"), "--outtype", "f16"], "deq.gguf", true),
        ("qlora-merge", ["qlora-merge", spm, adapter, "--no-verify", "--outtype", "f32"], "merged", true),
        ("qlora-merge nf4", ["qlora-merge", spm, adapter, "--no-verify", "--requantize", "nf4"], "merged-nf4", true),
        ("convert-adapter", ["convert-adapter", adapter, "--base", spm], "a.gguf", false),
    ]

    @Test(arguments: 0 ..< reproducible.count)
    func sameBytesForAnyThreadCountAndRun(_ index: Int) throws {
        let (label, arguments, output, threaded) = Self.reproducible[index]
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first: [String: Data]?
        for (run, threads) in [(0, 1), (1, 1), (2, 2), (3, 2)] {
            let out = "\(dir)/run\(run)/\(output)"
            try FileManager.default.createDirectory(atPath: "\(dir)/run\(run)", withIntermediateDirectories: true)
            let r = try CLI.run(arguments + ["-o", out] + (threaded ? ["--threads", String(threads)] : []))
            #expect(r.status == 0, "\(label): \(r.stderr)")
            var files = try Self.files(out)
            let manifest = out + ".wconv-manifest.json"
            if FileManager.default.fileExists(atPath: manifest) { files["(manifest)"] = try Data(contentsOf: URL(fileURLWithPath: manifest)) }
            #expect(files.keys.contains { $0.hasSuffix("wconv-manifest.json") || $0 == "(manifest)" }, "\(label): no manifest")
            if let first {
                #expect(files.keys.sorted() == first.keys.sorted(), "\(label) run \(run)")
                for (name, bytes) in files { #expect(bytes == first[name], "\(label) run \(run) (threads \(threads)): \(name) differs") }
            } else {
                first = files
            }
        }
    }
}
