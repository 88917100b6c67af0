import Foundation
import Testing
import TestSupport

/// `wconv inspect` and `wconv convert` run as a user runs them: exit codes and messages.
@Suite struct ConvertCommandTests {
    @Test func convertsAndInspects() throws {
        let dir = Fixtures.temporaryDirectory()
        let out = dir + "/m.gguf"
        let r = try CLI.run(["convert", Fixtures.path("tiny-llama-spm"), "-o", out, "--outtype", "f16"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("21 tensors"))
        let inspect = try CLI.run(["inspect", out, "--json"])
        #expect(inspect.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(json?["format"] as? String == "gguf")
        #expect(json?["tensor_count"] as? Int == 21)
        let metadata = json?["metadata"] as? [String: Any]
        let arch = metadata?["general.architecture"] as? [String: Any]
        #expect(arch?["value"] as? String == "llama")
    }

    @Test func missingInputExits66WithOneLine() throws {
        let r = try CLI.run(["inspect", "/nonexistent/model.gguf"])
        #expect(r.status == 66)
        #expect(r.stderr == "error: /nonexistent/model.gguf: no such file or directory\n")
    }

    @Test func malformedInputExits65() throws {
        let dir = Fixtures.temporaryDirectory()
        let path = dir + "/bad.gguf"
        // A GGUF magic followed by a version ggml removed.
        try Data([0x47, 0x47, 0x55, 0x46, 1, 0, 0, 0]).write(to: URL(fileURLWithPath: path))
        let r = try CLI.run(["inspect", path])
        #expect(r.status == 69 || r.status == 65)
        #expect(r.stderr.hasPrefix("error: \(path): "))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test func existingOutputExits73AndIsKept() throws {
        let dir = Fixtures.temporaryDirectory()
        let out = dir + "/m.gguf"
        try Data("mine".utf8).write(to: URL(fileURLWithPath: out))
        let r = try CLI.run(["convert", Fixtures.path("tiny-llama-spm"), "-o", out])
        #expect(r.status == 73)
        #expect(r.stderr.contains("--force"))
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "mine")
    }

    @Test func badUsageExits64() throws {
        #expect(try CLI.run(["convert", Fixtures.path("tiny-llama-spm")]).status == 64)
        #expect(try CLI.run(["convert", Fixtures.path("tiny-llama-spm"), "-o", "x.gguf", "--outtype", "q9"]).status == 64)
        #expect(try CLI.run(["convert", Fixtures.path("tiny-llama-spm"), "-o", "x.gguf", "--split-max-size", "lots"]).status == 64)
    }

    @Test func hfToHFCastsAnyArchitectureWithProvenance() throws {
        let out = Fixtures.temporaryDirectory() + "/opt-bf16"
        let r = try CLI.run(["convert", Fixtures.path("families/opt"), "-o", out, "--outtype", "bf16", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect((json?["types"] as? [String: Any])?["BF16"] as? Int == 36)
        #expect(FileManager.default.fileExists(atPath: out + "/wconv-manifest.json"))
        #expect(FileManager.default.fileExists(atPath: out + "/tokenizer.json"))
        // HF → HF has no "auto": the output dtype must be named.
        #expect(try CLI.run(["convert", Fixtures.path("families/opt"), "-o", out + "2"]).status == 64)
        // A safetensors file converts to a file; --dry-run names it and writes nothing.
        let file = Fixtures.temporaryDirectory() + "/m.f32.safetensors"
        let plan = try CLI.run(["convert", Fixtures.path("tiny-llama-spm/model.safetensors"), "-o", file, "--outtype", "f32", "--dry-run"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("m.f32.safetensors  364176 bytes"))
        #expect(!FileManager.default.fileExists(atPath: file))
    }
}
