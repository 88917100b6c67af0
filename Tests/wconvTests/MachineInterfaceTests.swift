import Foundation
import Testing
import TestSupport

/// The machine interface of the commands that write models (docs/cli-json.md): the `--json`
/// result on stdout, NDJSON progress events on a non-terminal stderr, `--quiet`; and the
/// generated documentation: shell completions and `--help` examples.
@Suite struct MachineInterfaceTests {
    static let tiny = Fixtures.path("tiny-llama-spm")

    static func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// The progress events of a run: each a JSON object; increasing tensor counts; "done" last.
    static func checkEvents(_ events: [String], command: String, tensors: Int) throws {
        let parsed = try events.map(object)
        #expect(parsed.allSatisfy { $0["command"] as? String == command })
        let progress = parsed.filter { $0["event"] as? String == "progress" }
        #expect(!progress.isEmpty)
        let counts = progress.compactMap { $0["tensor"] as? Int }
        #expect(counts == counts.sorted() && counts.last == tensors, "\(counts)")
        for p in progress {
            #expect(p["tensors"] as? Int == tensors)
            let bytes = try #require(p["bytes"] as? Int), total = try #require(p["total_bytes"] as? Int)
            #expect(bytes > 0 && bytes <= total)
            #expect(p["elapsed_seconds"] is Double && p["name"] is String)
        }
        #expect(progress.last?["bytes"] as? Int == progress.last?["total_bytes"] as? Int)
        let done = try #require(parsed.last)
        #expect(done["event"] as? String == "done")
        #expect(done["tensors"] as? Int == tensors)
        #expect(parsed.filter { $0["event"] as? String == "done" }.count == 1)
    }

    @Test func convertJSONAndEvents() throws {
        let out = Fixtures.temporaryDirectory() + "/m.gguf"
        let r = try CLI.run(["convert", Self.tiny, "-o", out, "--outtype", "f16", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let result = try Self.object(r.stdout)
        #expect(result["command"] as? String == "convert")
        #expect(result["outputs"] as? [String] == [out])
        #expect(result["tensors"] as? Int == 21)
        #expect(result["types"] as? [String: Int] == ["F16": 16, "F32": 5])
        let size = try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int ?? 0
        let bytes = try #require(result["bytes"] as? Int)
        #expect(bytes > 0 && bytes < size)
        #expect(result["seconds"] is Double)
        try Self.checkEvents(r.events, command: "convert", tensors: 21)
        #expect(r.stderr.contains("wrote \(out)"))
    }

    @Test func quantizeAndDequantizeJSON() throws {
        let dir = Fixtures.temporaryDirectory()
        let q = try CLI.run(["quantize", Fixtures.path("tiny-llama-256"), "-o", dir + "/q.gguf", "--type", "Q4_K_M", "--json"])
        #expect(q.status == 0, "\(q.stderr)")
        let result = try Self.object(q.stdout)
        #expect(result["command"] as? String == "quantize")
        let types = try #require(result["types"] as? [[String: Any]])
        #expect(Set(types.compactMap { $0["type"] as? String }) == ["Q4_K", "Q6_K", "F32"])
        #expect(types.reduce(0) { $0 + ($1["tensors"] as? Int ?? 0) } == result["tensors"] as? Int)
        #expect(types.reduce(0) { $0 + ($1["bytes"] as? Int ?? 0) } == result["bytes"] as? Int)
        #expect(result["bits_per_weight"] is Double && result["warnings"] is [Any])
        try Self.checkEvents(q.events, command: "quantize", tensors: result["tensors"] as? Int ?? -1)

        let nf4 = try CLI.run(["quantize", Self.tiny, "-o", dir + "/nf4", "--nf4", "--json"])
        #expect(nf4.status == 0, "\(nf4.stderr)")
        #expect(try Self.object(nf4.stdout)["outputs"] as? [String] == [dir + "/nf4", dir + "/nf4/model.safetensors"])
        #expect(!nf4.events.isEmpty)

        let d = try CLI.run(["dequantize", dir + "/nf4", "-o", dir + "/dq", "--json"])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(try Self.object(d.stdout)["command"] as? String == "dequantize")
        try Self.checkEvents(d.events, command: "dequantize", tensors: 21)
    }

    @Test func quietSilencesProgressAndSummary() throws {
        let dir = Fixtures.temporaryDirectory()
        for args in [["convert", Self.tiny, "-o", dir + "/a.gguf", "--quiet"],
                     ["quantize", Self.tiny, "-o", dir + "/b.gguf", "--type", "Q8_0", "-q", "--json"],
                     ["checksum", dir + "/a.gguf", "-q"], ["checksum", "--check", dir + "/wconv-manifest.json", "-q"],
                     ["pack", dir + "/a.gguf", "-o", dir + "/a.tar.zst", "-q"], ["unpack", dir + "/a.tar.zst", "-o", dir + "/x", "-q"]] {
            let raw = try Fault.run(CLI.binary, args)
            #expect(raw.status == 0)
            #expect(raw.stderr.isEmpty && raw.events.isEmpty, "\(args): \(raw.stderr)\(raw.events)")
        }
        // Errors still print.
        let r = try CLI.run(["convert", Self.tiny, "-o", dir + "/a.gguf", "--quiet", "--json"])
        #expect(r.status == 73 && r.stderr.hasPrefix("error: \(dir)/a.gguf: already exists"))
        #expect(r.stdout.isEmpty)
    }

    /// The commands that print their result on stdout take --quiet too: stderr stays empty, the
    /// result is still there (qlora-train's NDJSON events on a non-terminal stdout included).
    @Test func quietOnResultCommands() throws {
        let dir = Fixtures.temporaryDirectory()
        let cases: [(args: [String], stdout: (String) -> Bool)] = [
            (["inspect", Self.tiny, "--quiet"], { !$0.isEmpty }),
            (["inspect", Self.tiny, "-q", "--json"], { (try? Self.object($0)) != nil }),
            (["tokenize", Self.tiny, "the quick", "-q"], { out in
                let ids = out.split(whereSeparator: \.isWhitespace)
                return !ids.isEmpty && ids.allSatisfy { Int($0) != nil }
            }),
            (["run", Self.tiny, "--prompt", "the quick", "-n", "2", "--threads", "1", "--quiet"], { !$0.isEmpty }),
            (["qlora-train", Self.tiny, "--data", Fixtures.path("golden/lora/data/sample.jsonl"), "-o", dir + "/lora",
              "--steps", "2", "--threads", "1", "--quiet"], { out in
                let events = out.split(separator: "\n").compactMap { try? Self.object(String($0)) }
                return events.compactMap { $0["event"] as? String } == ["start", "step", "step", "done"]
                    && events.allSatisfy { $0["command"] as? String == "qlora-train" }
            }),
        ]
        for c in cases {
            let raw = try Fault.run(CLI.binary, c.args)
            #expect(raw.status == 0, "\(c.args): \(raw.stderr)")
            #expect(raw.stderr.isEmpty && raw.events.isEmpty, "\(c.args): \(raw.stderr)\(raw.events)")
            #expect(c.stdout(raw.stdout), "\(c.args): \(raw.stdout)")
        }
        // Errors still print.
        let r = try CLI.run(["inspect", dir + "/missing.gguf", "-q"])
        #expect(r.status == 66 && r.stderr.hasPrefix("error: \(dir)/missing.gguf"), "\(r.stderr)")
    }

    /// On a terminal, progress is a redrawn line on stderr, which `--quiet` must remove: run with
    /// stderr (and stdout) on pseudo-terminals, the line is there without the flag and nothing at
    /// all is written on stderr with it. qlora-train shows its line only when stdout is a
    /// terminal too (otherwise stdout gets NDJSON events and stderr nothing).
    @Test func quietSilencesTerminalProgress() throws {
        let dir = Fixtures.temporaryDirectory()
        let runs: [(args: [String], output: String, progress: String)] = [
            (["qlora-train", Self.tiny, "--data", Fixtures.path("golden/lora/data/sample.jsonl"), "--steps", "2", "--threads", "1"],
             "adapter", "step 2/2  loss "),
            (["convert", Self.tiny, "--outtype", "f16"], "model.gguf", "21/21 tensors"),
        ]
        for run in runs {
            let loud = try Terminal.run(CLI.binary, run.args + ["-o", dir + "/loud-" + run.output])
            #expect(loud.status == 0, "\(run.args): \(loud.stderr)")
            #expect(loud.stderr.contains(run.progress) && loud.stderr.contains("\r\u{1B}[K"), "\(run.args): \(loud.stderr.debugDescription)")
            let quiet = try Terminal.run(CLI.binary, run.args + ["-o", dir + "/quiet-" + run.output, "--quiet"])
            #expect(quiet.status == 0, "\(run.args): \(quiet.stderr)")
            #expect(quiet.stderr.isEmpty, "\(run.args) --quiet: \(quiet.stderr.debugDescription)")
        }
    }

    @Test func verifyAndMergeReportPhases() throws {
        let r = try CLI.run(["verify", Self.tiny, Self.tiny, "--ctx", "16", "--chunks", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let events = try r.events.map(Self.object)
        #expect(events.last?["event"] as? String == "done")
        let phases = Set(events.compactMap { $0["phase"] as? String })
        #expect(phases.isSubset(of: ["tensors", "chunks"]) && !phases.isEmpty, "\(phases)")
        for e in events where e["event"] as? String == "progress" {
            let done = try #require(e["done"] as? Int), total = try #require(e["total"] as? Int)
            #expect(done >= 0 && done <= total)
        }
        let quiet = try Fault.run(CLI.binary, ["qlora-merge", Self.tiny, Fixtures.path("golden/lora/tiny-llama-spm-lora"),
                                               "-o", Fixtures.temporaryDirectory() + "/merged", "--quiet"])
        #expect(quiet.status == 0)
        #expect(quiet.stderr.isEmpty && quiet.events.isEmpty, "\(quiet.stderr)\(quiet.events)")
    }

    @Test func convertAdapterJSON() throws {
        let out = Fixtures.temporaryDirectory() + "/a.gguf"
        let r = try CLI.run(["convert-adapter", Fixtures.path("golden/lora/tiny-llama-spm-lora"), "-o", out, "--base", Self.tiny, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let result = try Self.object(r.stdout)
        #expect(result["command"] as? String == "convert-adapter")
        #expect(result["outputs"] as? [String] == [out])
        #expect(result["modules"] as? Int == 14 && result["tensors"] as? Int == 28)
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScripts(_ shell: String) throws {
        let r = try CLI.run(["--generate-completion-script", shell])
        #expect(r.status == 0, "\(r.stderr)")
        for command in ["convert", "quantize", "qlora-merge", "checksum", "unpack"] {
            #expect(r.stdout.contains(command), "\(shell) completion lacks \(command)")
        }
    }

    /// docs/man/wconv.1 is generated (scripts/docs.sh man) and committed: it must list every
    /// command and long option the binary has, or it is stale.
    @Test func manPageIsCurrent() throws {
        let man = try String(contentsOfFile: Fixtures.repositoryRoot().appendingPathComponent("docs/man/wconv.1").path, encoding: .utf8)
        let options = Set(man.split(separator: "\n").filter { $0.hasPrefix(".It Fl") }.flatMap { line in
            line.split(separator: " ").filter { $0.hasPrefix("-") }.map { String($0.dropFirst()) }
        })
        let r = try CLI.run(["--experimental-dump-help"])
        let root = try #require(try Self.object(r.stdout)["command"] as? [String: Any])
        let commands = try #require(root["subcommands"] as? [[String: Any]])
        #expect(commands.count >= 13)
        for command in commands {
            let name = try #require(command["commandName"] as? String)
            guard name != "help" else { continue }
            #expect(man.contains(".It Em \(name)\n"), "man page lacks \(name): run scripts/docs.sh man")
            for argument in command["arguments"] as? [[String: Any]] ?? [] {
                for n in argument["names"] as? [[String: Any]] ?? [] where n["kind"] as? String == "long" {
                    let option = try #require(n["name"] as? String)
                    #expect(options.contains(option), "man page lacks \(name) --\(option): run scripts/docs.sh man")
                }
            }
        }
    }

    @Test(arguments: ["inspect", "tokenize", "convert", "quantize", "dequantize", "verify", "run", "qlora-train",
                      "qlora-merge", "convert-adapter", "checksum", "pack", "unpack"])
    func helpHasExamples(_ command: String) throws {
        let r = try CLI.run(["help", command])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Examples:\n  wconv \(command) "), "\(command) --help has no examples")
    }
}
