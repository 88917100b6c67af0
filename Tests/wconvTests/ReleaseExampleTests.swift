import Foundation
import Testing
import TestSupport

/// scripts/release-example.sh (README "In a release pipeline") on the tiny model, with the
/// built binary: the release passes its gate and produces a checked archive; an impossible
/// threshold stops it with exit 1 before anything is packed.
@Suite struct ReleaseExampleTests {
    static func runScript(_ out: String, maxKLD: String) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Fixtures.repositoryRoot().appendingPathComponent("scripts/release-example.sh").path,
                             Fixtures.path("tiny-llama-256"), out, "Q8_0"]
        var environment = ProcessInfo.processInfo.environment
        environment["WCONV"] = CLI.binary
        environment["CTX"] = "64"
        environment["MAX_KLD"] = maxKLD
        environment["VERIFY_ARGS"] = "--chunks 4 --no-tensors"
        process.environment = environment
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func releasePassesTheGate() throws {
        let out = Fixtures.temporaryDirectory() + "/release"
        let r = try Self.runScript(out, maxKLD: "0.5")
        #expect(r.status == 0, "\(r.stderr)")
        let archive = out + "/tiny-llama-256.Q8_0.tar.zst"
        #expect(FileManager.default.fileExists(atPath: archive))
        #expect(FileManager.default.fileExists(atPath: out + "/release/wconv-manifest.json"))
        let verify = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/release/verify.json"))) as? [String: Any]
        #expect(verify?["passed"] as? Bool == true)
        // The archive is what unpack accepts.
        let unpacked = Fixtures.temporaryDirectory() + "/x"
        let u = try CLI.run(["unpack", archive, "-o", unpacked])
        #expect(u.status == 0, "\(u.stderr)")
        // The GGUF, its provenance manifest (written beside it by quantize) and verify.json.
        #expect(FileManager.default.fileExists(atPath: out + "/release/tiny-llama-256.Q8_0.gguf.wconv-manifest.json"))
        #expect(u.stderr.contains("all 3 verified"))
        // verify --record put the gate's result in the GGUF's manifest, which the archive carries.
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            unpacked + "/tiny-llama-256.Q8_0.gguf.wconv-manifest.json"))) as? [String: Any]
        let entries = manifest?["verify"] as? [[String: Any]]
        #expect(entries?.count == 1)
        let summary = entries?.first?["summary"] as? [String: Any]
        #expect(summary?["passed"] as? Bool == true)
        #expect(summary?["mean_kld"] as? Double == verify?["mean_kld"] as? Double)
    }

    @Test func failedGateStopsWithExit1() throws {
        let out = Fixtures.temporaryDirectory() + "/release"
        let r = try Self.runScript(out, maxKLD: "1e-12")
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("release: verify failed with exit 1 (check failed (the gate)); nothing released"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/tiny-llama-256.Q8_0.tar.zst"))
        #expect(!FileManager.default.fileExists(atPath: out + "/release/wconv-manifest.json"))
    }
}
