import Foundation
import Testing
import Formats
import Pipeline
import TensorCore
import TestSupport

/// HF → HF dtype conversion against what transformers' `from_pretrained(dtype=…).save_pretrained`
/// writes (testdata/golden/hf-dtype.json: SHA-256 and size of each reference file, made by
/// testdata/scripts/make_hf_dtype_goldens.py).
@Suite struct HFDTypeConvertTests {
    static func golden(_ key: String) throws -> [String: (sha256: String, size: Int)] {
        let bytes = try FileSystem.readFile(Fixtures.path("golden/hf-dtype.json"))
        guard case .object(let all) = try bytes.withUnsafeBytes({ try JSONParser.parse($0) }),
              case .object(let files)? = all[key] else { throw Failure(.missingInput, "no golden case \(key)") }
        var out: [String: (String, Int)] = [:]
        for (name, value) in files {
            guard case .object(let o) = value, let sha = o["sha256"]?.stringValue, let size = o["size"]?.intValue else { continue }
            out[name] = (sha, size)
        }
        return out
    }

    static func options(_ outType: ConvertOptions.OutType, split: Int? = nil) -> ConvertOptions {
        var o = ConvertOptions()
        o.outType = outType
        o.splitMaxBytes = split
        o.threads = 2
        return o
    }

    static func expectMatches(_ directory: String, _ key: String) throws {
        let expected = try golden(key)
        #expect(!expected.isEmpty)
        for (name, want) in expected {
            let got = try SHA256Hashing.hexOfFile(at: FileSystem.join(directory, name))
            #expect(got.byteCount == want.size, "\(key) \(name)")
            #expect(got.sha256 == want.sha256, "\(key) \(name)")
        }
    }

    @Test(arguments: ["families/persimmon", "families/opt"], [ConvertOptions.OutType.f32, .bf16])
    func directoryEqualsTransformers(fixture: String, outType: ConvertOptions.OutType) throws {
        let out = Fixtures.temporaryDirectory() + "/out"
        let report = try HFToHF.convert(try ModelInput.open(path: Fixtures.path(fixture)), to: out, options: Self.options(outType))
        try Self.expectMatches(out, "\(fixture):\(outType.rawValue)")
        #expect(report.typeCounts == [outType.dtype!.rawValue: report.tensorCount])
        // Companion files come along unchanged.
        for name in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            #expect(try FileSystem.readFile(FileSystem.join(out, name)) == FileSystem.readFile(Fixtures.path("\(fixture)/\(name)")))
        }
    }

    @Test func safetensorsFileToFile() throws {
        let out = Fixtures.temporaryDirectory() + "/m.f16.safetensors"
        let input = try ModelInput.open(path: Fixtures.path("tiny-llama-spm/model.safetensors"))
        _ = try HFToHF.convert(input, to: out, options: Self.options(.f16))
        let want = try Self.golden("tiny-llama-spm/model.safetensors:f16")["model.safetensors"]
        let got = try SHA256Hashing.hexOfFile(at: out)
        #expect(got.sha256 == want?.sha256)
    }

    @Test func shardedEqualsTransformers() throws {
        let out = Fixtures.temporaryDirectory() + "/out"
        let report = try HFToHF.convert(try ModelInput.open(path: Fixtures.path("tiny-llama-spm")), to: out,
                                        options: Self.options(.f16, split: 40_000))
        try Self.expectMatches(out, "tiny-llama-spm:f16:40KB")
        #expect(report.outputs.contains { $0.hasSuffix("model.safetensors.index.json") })
    }

    @Test func roundTripF32BF16F32EqualsTorch() throws {
        let dir = Fixtures.temporaryDirectory()
        var path = Fixtures.path("families/persimmon")
        for (i, t) in [ConvertOptions.OutType.f32, .bf16, .f32].enumerated() {
            let next = dir + "/step\(i)"
            _ = try HFToHF.convert(try ModelInput.open(path: path), to: next, options: Self.options(t))
            path = next
        }
        try Self.expectMatches(path, "families/persimmon:f32:bf16:f32")
    }

    /// No architecture description is needed: a made-up class converts the same.
    @Test func unknownArchitectureConverts() throws {
        let dir = Fixtures.temporaryDirectory()
        let input = dir + "/unknown"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("families/persimmon/model.safetensors"), toPath: input + "/model.safetensors")
        let config = try String(contentsOfFile: Fixtures.path("families/persimmon/config.json"), encoding: .utf8)
            .replacingOccurrences(of: "PersimmonForCausalLM", with: "MadeUpForCausalLM")
            .replacingOccurrences(of: "\"persimmon\"", with: "\"made-up\"")
        try config.write(toFile: input + "/config.json", atomically: true, encoding: .utf8)
        _ = try HFToHF.convert(try ModelInput.open(path: input), to: dir + "/out", options: Self.options(.bf16))
        let want = try Self.golden("families/persimmon:bf16")["model.safetensors"]
        #expect(try SHA256Hashing.hexOfFile(at: dir + "/out/model.safetensors").sha256 == want?.sha256)
        let written = try String(contentsOfFile: dir + "/out/config.json", encoding: .utf8)
        #expect(written.contains("\"dtype\": \"bfloat16\"") && written.contains("MadeUpForCausalLM"))
    }

    @Test func torchDTypeBecomesDType() throws {
        let dir = Fixtures.temporaryDirectory()
        let input = dir + "/in"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("families/opt/model.safetensors"), toPath: input + "/model.safetensors")
        let config = try String(contentsOfFile: Fixtures.path("families/opt/config.json"), encoding: .utf8)
            .replacingOccurrences(of: "\"dtype\"", with: "\"torch_dtype\"")
        try config.write(toFile: input + "/config.json", atomically: true, encoding: .utf8)
        _ = try HFToHF.convert(try ModelInput.open(path: input), to: dir + "/out", options: Self.options(.f32))
        // transformers 5 reads torch_dtype and saves only dtype; here the result is the reference's config.
        try Self.expectMatches(dir + "/out", "families/opt:f32")
    }

    @Test func autoOutTypeIsAUsageError() throws {
        let out = Fixtures.temporaryDirectory() + "/out"
        #expect(throws: Failure.self) {
            try HFToHF.convert(try ModelInput.open(path: Fixtures.path("families/opt")), to: out, options: Self.options(.auto))
        }
    }
}
