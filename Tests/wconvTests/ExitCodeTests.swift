import Foundation
import Testing
import TestSupport

/// The README's exit-code table, one class of failure at a time, run on the built binary: each
/// case asserts the code and the one-line `error: <path>: …` message.
///
/// Classes covered elsewhere, not repeated here: 74 (an input truncated or rewritten while read,
/// FaultInputChangeTests), 73 for a full disk or a file-size limit (FaultDiskFullTests),
/// 130 / 143 (SIGINT / SIGTERM mid-write, FaultSignalTests), 65 / 69 for each file of the
/// malformed corpus (FaultMalformedCorpusTests), 1 for verify thresholds (VerifyCommandTests).
@Suite struct ExitCodeTests {
    static let tiny = Fixtures.path("tiny-llama-spm")

    /// The error line of a failed run: exactly one line, `error: <path>: …`.
    static func expectOneLineError(_ r: CLI.Result, status: Int32, path: String, containing text: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("error: \(path): "), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasSuffix("\n") && r.stderr.split(separator: "\n").count == 1, "not one line: \(r.stderr)",
                sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func success0() throws {
        let out = Fixtures.temporaryDirectory() + "/m.gguf"
        let r = try CLI.run(["convert", Self.tiny, "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("error:"))
    }

    @Test func checksumMismatch1() throws {
        let dir = Fixtures.temporaryDirectory()
        let model = dir + "/model"
        try FileManager.default.copyItem(atPath: Self.tiny, toPath: model)
        #expect(try CLI.run(["checksum", model]).status == 0)
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: model + "/generation_config.json"))
        let r = try CLI.run(["checksum", "--check", model + "/wconv-manifest.json"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("generation_config.json"), "\(r.stderr)")
    }

    @Test func usage64() throws {
        // A parse error: swift-argument-parser's message and the usage (several lines).
        let missing = try CLI.run(["convert", Self.tiny])
        #expect(missing.status == 64)
        #expect(missing.stderr.hasPrefix("Error: Missing expected argument '--output <output>'"), "\(missing.stderr)")
        let unknown = try CLI.run(["quantize", Self.tiny, "-o", "x", "--nf5"])
        #expect(unknown.status == 64)
        // A combination only the command can judge: one line.
        let gguf = Fixtures.temporaryDirectory() + "/m.gguf"
        #expect(try CLI.run(["convert", Self.tiny, "-o", gguf]).status == 0)
        let r = try CLI.run(["convert", gguf, "-o", gguf + ".copy.gguf"])
        #expect(r.status == 64)
        #expect(r.stderr == "error: GGUF → GGUF: use `wconv quantize` to change tensor types\n", "\(r.stderr)")
    }

    @Test func malformedInput65() throws {
        let dir = Fixtures.temporaryDirectory()
        let path = dir + "/cut.safetensors"
        let whole = try Data(contentsOf: URL(fileURLWithPath: Self.tiny + "/model.safetensors"))
        try whole.prefix(100).write(to: URL(fileURLWithPath: path))
        for command in [["inspect", path], ["checksum", path, "--tensors"]] {
            let r = try CLI.run(command)
            Self.expectOneLineError(r, status: 65, path: path, containing: "runs past the end of the file")
        }
    }

    @Test func missingInput66() throws {
        for command in ["inspect", "convert", "quantize", "dequantize"] {
            var args = [command, "/nonexistent/model"]
            if command != "inspect" { args += ["-o", Fixtures.temporaryDirectory() + "/out.gguf"] }
            if command == "quantize" { args += ["--type", "Q8_0"] }
            let r = try CLI.run(args)
            Self.expectOneLineError(r, status: 66, path: "/nonexistent/model", containing: "no such file or directory")
        }
    }

    @Test func unsupported69() throws {
        let dir = Fixtures.temporaryDirectory()
        let model = dir + "/bert"
        try FileManager.default.copyItem(atPath: Self.tiny, toPath: model)
        let config = model + "/config.json"
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "LlamaForCausalLM", with: "BertModel")
        try Data(text.utf8).write(to: URL(fileURLWithPath: config))
        let r = try CLI.run(["convert", model, "-o", dir + "/bert.gguf"])
        Self.expectOneLineError(r, status: 69, path: config, containing: "architecture BertModel has no GGUF description")
        #expect(!FileManager.default.fileExists(atPath: dir + "/bert.gguf"))
    }

    @Test func outputExists73() throws {
        let out = Fixtures.temporaryDirectory() + "/m.gguf"
        #expect(try CLI.run(["convert", Self.tiny, "-o", out]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        let r = try CLI.run(["convert", Self.tiny, "-o", out, "--outtype", "f32"])
        Self.expectOneLineError(r, status: 73, path: out, containing: "already exists (use --force to replace it)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before, "the existing output changed")
        #expect(try CLI.run(["convert", Self.tiny, "-o", out, "--outtype", "f32", "--force"]).status == 0)
    }

    @Test func unwritableDirectory73() throws {
        // A parent that is a file: no directory to write in (permissions would not stop root).
        let dir = Fixtures.temporaryDirectory()
        let file = dir + "/plain"
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for (output, reason) in [(file + "/m.gguf", "Not a directory"), (dir + "/missing/m.gguf", "No such file or directory")] {
            let r = try CLI.run(["convert", Self.tiny, "-o", output])
            Self.expectOneLineError(r, status: 73, path: output, containing: "cannot create: \(reason)")
        }
    }
}
