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
        let u = try CLI.run(["unpack", archive, "-o", Fixtures.temporaryDirectory() + "/x"])
        #expect(u.status == 0, "\(u.stderr)")
        // The GGUF, its provenance manifest (written beside it by quantize) and verify.json.
        #expect(FileManager.default.fileExists(atPath: out + "/release/tiny-llama-256.Q8_0.gguf.wconv-manifest.json"))
        #expect(u.stderr.contains("all 3 verified"))
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
