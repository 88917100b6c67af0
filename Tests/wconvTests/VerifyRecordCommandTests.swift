import Foundation
import Testing
import TestSupport

/// `wconv verify --record`: the result added to the candidate's wconv-manifest.json.
@Suite struct VerifyRecordCommandTests {
    static let model = Fixtures.path("tiny-llama-256")
    static let quick = ["--ctx", "64", "--chunks", "2", "--threads", "2", "--no-tensors", "--no-layers"]

    static func object(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// tiny-llama-256 quantized to Q8_0 with its manifest beside it; returns the GGUF's path.
    static func quantized() throws -> String {
        let gguf = Fixtures.temporaryDirectory("wconv-verify-record") + "/tiny.Q8_0.gguf"
        let q = try CLI.run(["quantize", model, "-o", gguf, "--type", "Q8_0", "--quiet"])
        try #require(q.status == 0, "\(q.stderr)")
        return gguf
    }

    @Test func entryEqualsTheReportAndTheManifestStillChecks() throws {
        let gguf = try Self.quantized()
        let manifest = gguf + ".wconv-manifest.json"
        let before = try String(contentsOfFile: manifest, encoding: .utf8)
        let report = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Self.model, gguf, "--max-kld", "0.5", "--json", report, "--record"] + Self.quick)
        #expect(r.status == 0, "\(r.stderr)")

        let full = try Self.object(report)
        let entries = try #require(try Self.object(manifest)["verify"] as? [[String: Any]])
        #expect(entries.count == 1)
        let entry = entries[0]
        let summary = try #require(entry["summary"] as? [String: Any])
        for key in ["mean_kld", "median_kld", "p99_kld", "max_kld", "top1_agreement", "ppl_ref", "ppl_cand", "ppl_ratio",
                    "tokens_scored", "passed"] {
            #expect(summary[key] != nil && (summary[key] as? NSObject) == (full[key] as? NSObject), "\(key)")
        }
        #expect(summary.count == 10)
        let options = try #require(entry["options"] as? [String: Any])
        #expect(options["ctx"] as? Int == 64)
        #expect(options["chunks"] as? Int == 2)
        #expect(options["text"] as? String == "bundled")
        #expect((options["thresholds"] as? NSObject) == (full["thresholds"] as? NSObject))
        #expect(entry["wconv_version"] as? String != nil)
        let reference = try #require(entry["reference"] as? [String: Any])
        #expect(reference["name"] as? String == "tiny-llama-256")
        #expect(reference["kind"] as? String == "model")
        let files = try #require(reference["files"] as? [[String: Any]])
        #expect(files.map { $0["path"] as? String } == ["config.json", "generation_config.json", "model.safetensors",
                                                          "tokenizer.json", "tokenizer_config.json"].map { "tiny-llama-256/" + $0 })
        let weights = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/model.safetensors"))
        #expect(files[2]["bytes"] as? Int == weights.count)
        #expect((files[2]["sha256"] as? String)?.count == 64)

        // Everything else is byte-identical: removing the entry gives back the file quantize wrote.
        let after = try String(contentsOfFile: manifest, encoding: .utf8)
        let start = try #require(after.range(of: "  \"verify\": ["))
        let end = try #require(after.range(of: "\n  ],\n", range: start.upperBound ..< after.endIndex))
        #expect(after.replacingCharacters(in: start.lowerBound ..< end.upperBound, with: "") == before)

        let check = try CLI.run(["checksum", "--check", manifest])
        #expect(check.status == 0, "\(check.stderr)")

        // A second run against the same reference replaces its entry.
        let again = try CLI.run(["verify", Self.model, gguf, "--record"] + Self.quick)
        #expect(again.status == 0, "\(again.stderr)")
        let replaced = try #require(try Self.object(manifest)["verify"] as? [[String: Any]])
        #expect(replaced.count == 1)
        #expect((replaced[0]["options"] as? [String: Any])?["thresholds"] as? [String: NSNull] != nil)
    }

    @Test func failingThresholdsStillRecordAndExit1() throws {
        let gguf = try Self.quantized()
        let r = try CLI.run(["verify", Self.model, gguf, "--max-kld", "1e-12", "--record"] + Self.quick)
        #expect(r.status == 1, "\(r.stderr)")
        let entries = try #require(try Self.object(gguf + ".wconv-manifest.json")["verify"] as? [[String: Any]])
        #expect((entries.first?["summary"] as? [String: Any])?["passed"] as? Bool == false)
        #expect(try CLI.run(["checksum", "--check", gguf + ".wconv-manifest.json"]).status == 0)
    }

    @Test func missingManifestFailsBeforeEvaluating() throws {
        let gguf = try Self.quantized()
        try FileManager.default.removeItem(atPath: gguf + ".wconv-manifest.json")
        // A --json report would be written after the evaluation: its absence shows none ran.
        let report = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Self.model, gguf, "--json", report, "--record"] + Self.quick)
        #expect(r.status == 66)
        #expect(r.stderr.contains(gguf + ".wconv-manifest.json"), "\(r.stderr)")
        #expect(r.stderr.contains("no manifest"))
        #expect(!r.stderr.contains("\"phase\""), "no evaluation progress: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: report))
        #expect(!FileManager.default.fileExists(atPath: gguf + ".wconv-manifest.json"))
    }

    /// A directory candidate records in DIR/wconv-manifest.json, and `pack` keeps the entry in
    /// the archive's manifest.
    @Test func directoryCandidateAndPackKeepTheEntry() throws {
        let scratch = Fixtures.temporaryDirectory("wconv-verify-record")
        let dir = scratch + "/copy"
        try FileManager.default.copyItem(atPath: Self.model, toPath: dir)
        let c = try CLI.run(["checksum", dir])
        try #require(c.status == 0, "\(c.stderr)")
        let r = try CLI.run(["verify", Self.model, dir, "--max-kld", "0", "--record"] + Self.quick)
        #expect(r.status == 0, "\(r.stderr)")
        let recorded = try #require(try Self.object(dir + "/wconv-manifest.json")["verify"] as? [[String: Any]])
        #expect((recorded.first?["summary"] as? [String: Any])?["mean_kld"] as? Double == 0)
        #expect(try CLI.run(["checksum", "--check", dir]).status == 0)

        let p = try CLI.run(["pack", dir, "-o", scratch + "/copy.tar.zst"])
        #expect(p.status == 0, "\(p.stderr)")
        let u = try CLI.run(["unpack", scratch + "/copy.tar.zst", "-o", scratch + "/out"])
        #expect(u.status == 0, "\(u.stderr)")
        let unpacked = try #require(try Self.object(scratch + "/out/wconv-manifest.json")["verify"] as? [[String: Any]])
        #expect((unpacked as NSArray) == (recorded as NSArray))
    }

    @Test func recordNeedsACandidate() throws {
        let r = try CLI.run(["verify", Self.model, "--save-baseline", Fixtures.temporaryDirectory() + "/b.kld", "--record"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--record"))
    }
}
