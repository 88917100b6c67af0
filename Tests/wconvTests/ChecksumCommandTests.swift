import Foundation
import Testing
import TestSupport

/// `wconv checksum` as a user runs it: files written, mismatches named, exit codes.
@Suite struct ChecksumCommandTests {
    /// A copy of the tiny fixture model in a fresh directory.
    static func modelCopy() throws -> String {
        let dir = Fixtures.temporaryDirectory("wconv-checksum") + "/model"
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama-spm"), toPath: dir)
        return dir
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func writesADeterministicManifestAndChecksIt() throws {
        let a = try Self.modelCopy(), b = try Self.modelCopy()
        let ra = try CLI.run(["checksum", a])
        #expect(ra.status == 0, "\(ra.stderr)")
        #expect(ra.stderr.contains("wrote \(a)/wconv-manifest.json: 7 files"))
        #expect(try CLI.run(["checksum", b, "--threads", "1"]).status == 0)
        let text = try Self.read(a + "/wconv-manifest.json")
        #expect(text == (try Self.read(b + "/wconv-manifest.json")))
        #expect(!text.contains(a) && !text.contains(FileManager.default.temporaryDirectory.path))
        // The digests are sha256sum's.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [a + "/model.safetensors"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let sum = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        p.waitUntilExit()
        #expect(text.contains("\"sha256\": \"\(sum)\""))

        let check = try CLI.run(["checksum", "--check", a + "/wconv-manifest.json"])
        #expect(check.status == 0)
        #expect(check.stderr.contains("all 7 files match"))
        // A directory stands for its wconv-manifest.json.
        #expect(try CLI.run(["checksum", "--check", a]).status == 0)
    }

    @Test func mismatchAndMissingFilesAreNamedAndExit1() throws {
        let dir = try Self.modelCopy()
        #expect(try CLI.run(["checksum", dir]).status == 0)
        var weights = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")))
        weights[weights.count - 3] ^= 0x10
        try Data(weights).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try FileManager.default.removeItem(atPath: dir + "/tokenizer.json")
        let r = try CLI.run(["checksum", "--check", dir + "/wconv-manifest.json", "--json"])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("error: \(dir)/model.safetensors: SHA-256 mismatch") })
        #expect(lines.contains("error: \(dir)/tokenizer.json: missing (listed in the manifest)"))
        #expect(lines.last == "error: \(dir)/wconv-manifest.json: 2 of 7 files do not match")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["ok"] as? Bool == false)
        #expect(json["failed"] as? Int == 2 && json["checked"] as? Int == 7)
        let files = try #require(json["files"] as? [[String: Any]])
        let status = Dictionary(uniqueKeysWithValues: files.map { ($0["path"] as! String, $0["status"] as! String) })
        #expect(status["model.safetensors"] == "mismatch")
        #expect(status["tokenizer.json"] == "missing")
        #expect(status["config.json"] == "ok")
    }

    @Test func tensorDigestsNameTheChangedTensor() throws {
        let dir = try Self.modelCopy()
        let r = try CLI.run(["checksum", dir, "--tensors"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("21 tensors"))
        let manifest = try Self.read(dir + "/wconv-manifest.json")
        #expect(manifest.contains("\"name\": \"model.embed_tokens.weight\""))
        // Flip a byte at the very end of the file: the last tensor in file order changes.
        var weights = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")))
        weights[weights.count - 1] ^= 0x01
        try Data(weights).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let check = try CLI.run(["checksum", "--check", dir])
        #expect(check.status == 1)
        #expect(check.stderr.contains("(tensors differing: "))
    }

    @Test func exitCodes() throws {
        let dir = try Self.modelCopy()
        #expect(try CLI.run(["checksum", dir + "/nope"]).status == 66)
        #expect(try CLI.run(["checksum", "--check", dir + "/nope.json"]).status == 66)
        #expect(try CLI.run(["checksum", dir]).status == 0)
        let again = try CLI.run(["checksum", dir])
        #expect(again.status == 73)
        #expect(again.stderr.contains("--force"))
        #expect(try CLI.run(["checksum", dir, "--force"]).status == 0)
        #expect(try CLI.run(["checksum", "--check", dir, "--tensors"]).status == 64)
        #expect(try CLI.run(["checksum", dir, "--inputs"]).status == 64)
        #expect(try CLI.run(["checksum", dir, "--threads", "0"]).status == 64)
        // Not a manifest: malformed input.
        let bad = try CLI.run(["checksum", "--check", dir + "/config.json"])
        #expect(bad.status == 65)
        #expect(bad.stderr.hasPrefix("error: \(dir)/config.json: not a wconv manifest"))
        // To standard output, paths relative to the working directory.
        let out = try CLI.run(["checksum", dir + "/config.json", "-o", "-"])
        #expect(out.status == 0)
        #expect(out.stdout.contains("\"format\": \"wconv-manifest\""))
    }
}
