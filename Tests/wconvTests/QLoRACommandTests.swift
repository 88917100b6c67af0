import Formats
import Foundation
import Testing
import TestSupport

/// `wconv qlora-merge`, `qlora-train` and `convert-adapter` run as a user runs them: outputs,
/// messages and exit codes.
@Suite struct QLoRACommandTests {
    static let adapter = Fixtures.path("golden/lora/tiny-llama-spm-lora")
    static let base = Fixtures.path("tiny-llama-spm")
    static let sample = Fixtures.path("golden/lora/data/sample.jsonl")

    // MARK: qlora-merge

    @Test func mergeWritesAndReports() throws {
        let out = Fixtures.temporaryDirectory() + "/merged"
        let r = try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", out, "--outtype", "f32"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("layer 0") && r.stdout.contains("layer 1"))
        #expect(r.stdout.contains("top-1 agreement 100.00%"))
        #expect(r.stderr.contains("14 LoRA modules merged"))
        #expect(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: out + "/tokenizer.json"))

        // --json: one object on stdout with per-tensor stats and the verification.
        let j = try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", out, "--force", "--json", "--requantize", "nf4"])
        #expect(j.status == 0, "\(j.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        #expect((report?["tensors"] as? [Any])?.count == 14)
        #expect((report?["verification"] as? [String: Any])?["top1_agreement"] != nil)
        // NF4 on the tiny random weights washes the adapter out: the warning names tensors.
        #expect(j.stderr.contains("warning: in 14 tensors"))
    }

    @Test func mergeExitCodes() throws {
        let dir = Fixtures.temporaryDirectory()
        // 64: usage
        #expect(try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", dir + "/x.gguf", "--requantize", "nf4"]).status == 64)
        #expect(try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", dir + "/x", "--requantize", "Q4_K"]).status == 64)
        #expect(try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", dir + "/x", "--original-base", Self.base]).status == 64)
        #expect(try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", dir + "/x", "--requantize", "q9_9"]).status == 64)
        let noOriginal = try CLI.run(["qlora-merge", Fixtures.path("golden/tiny-llama-spm-nf4"), Self.adapter, "-o", dir + "/x",
                                      "--merge-into", "original"])
        #expect(noOriginal.status == 64)
        #expect(noOriginal.stderr.contains("--original-base"))
        // 66: missing input
        #expect(try CLI.run(["qlora-merge", dir + "/none", Self.adapter, "-o", dir + "/x"]).status == 66)
        #expect(try CLI.run(["qlora-merge", Self.base, dir, "-o", dir + "/x"]).status == 66)
        // 65: a malformed adapter config
        let bad = dir + "/bad"
        try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.adapter + "/adapter_model.safetensors", toPath: bad + "/adapter_model.safetensors")
        try Data("{\"r\": \"eight\"}".utf8).write(to: URL(fileURLWithPath: bad + "/adapter_config.json"))
        let r65 = try CLI.run(["qlora-merge", Self.base, bad, "-o", dir + "/x"])
        #expect(r65.status == 65)
        #expect(r65.stderr == "error: \(bad)/adapter_config.json: \"r\" is not a positive integer\n")
        // 73: output exists
        try Data("keep".utf8).write(to: URL(fileURLWithPath: dir + "/exists.gguf"))
        let r73 = try CLI.run(["qlora-merge", Self.base, Self.adapter, "-o", dir + "/exists.gguf", "--no-verify"])
        #expect(r73.status == 73)
        #expect(try String(contentsOfFile: dir + "/exists.gguf", encoding: .utf8) == "keep")
    }

    // MARK: convert-adapter

    @Test func convertAdapterBothWays() throws {
        let dir = Fixtures.temporaryDirectory()
        let r = try CLI.run(["convert-adapter", Self.adapter, "-o", dir + "/a.gguf", "--base", Self.base, "--no-provenance"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/a.gguf")) == Data(try Fixtures.data("golden/lora/tiny-llama-spm-lora.f32.gguf")))
        let back = try CLI.run(["convert-adapter", dir + "/a.gguf", "-o", dir + "/peft", "--base", Self.base, "--no-provenance"])
        #expect(back.status == 0, "\(back.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/peft/adapter_model.safetensors"))
            == Data(try Fixtures.data("golden/lora/tiny-llama-spm-lora/adapter_model.safetensors")))
        // Usage: wrong output kind, missing head counts.
        #expect(try CLI.run(["convert-adapter", Self.adapter, "-o", dir + "/a-dir"]).status == 64)
        let noBase = try CLI.run(["convert-adapter", dir + "/a.gguf", "-o", dir + "/peft2"])
        #expect(noBase.status == 64)
        #expect(noBase.stderr.contains("pass --base"))
        // Not an adapter: 65.
        #expect(try CLI.run(["convert-adapter", Fixtures.path("golden/tiny-llama-spm.f32.gguf"), "-o", dir + "/p3"]).status == 65)
    }

    /// GGUF → PEFT records a base model name, never the path --base was given as: the adapter
    /// is a release artifact. The name comes from --base-model-name, else the GGUF's recorded
    /// base model (a Hugging Face id), else --base's directory name.
    @Test func convertAdapterRecordsABaseModelNameNotAPath() throws {
        let dir = Fixtures.temporaryDirectory()
        func recorded(_ peft: String) throws -> (config: Any?, card: String) {
            let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: peft + "/adapter_config.json"))) as? [String: Any])
            let card = try String(contentsOfFile: peft + "/README.md", encoding: .utf8)
            for file in ["adapter_config.json", "README.md"] {
                let text = try String(contentsOfFile: peft + "/" + file, encoding: .utf8)
                #expect(!text.contains(Fixtures.repositoryRoot().path) && !text.contains(dir), "\(file) holds a machine path")
            }
            return (config["base_model_name_or_path"] is NSNull ? nil : config["base_model_name_or_path"], card)
        }
        func convert(_ args: [String]) throws {
            let r = try CLI.run(["convert-adapter"] + args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
        }
        // convert_lora_to_gguf.py's file names its base (from the PEFT card): that id comes back.
        let golden = Fixtures.path("golden/lora/tiny-llama-spm-lora.f32.gguf")
        try convert([golden, "-o", dir + "/from-gguf", "--base", Self.base])
        let fromGGUF = try recorded(dir + "/from-gguf")
        #expect(fromGGUF.config as? String == "testdata/tiny-llama-spm")
        #expect(fromGGUF.card.contains("base_model: testdata/tiny-llama-spm\n"))
        // An explicit name wins.
        try convert([golden, "-o", dir + "/named", "--base", Self.base, "--base-model-name", "HuggingFaceTB/SmolLM2-135M"])
        let named = try recorded(dir + "/named")
        #expect(named.config as? String == "HuggingFaceTB/SmolLM2-135M")
        #expect(named.card.contains("base_model: HuggingFaceTB/SmolLM2-135M\n"))
        // A GGUF adapter naming no base: --base's directory name (given as the directory or its config.json).
        let bare = dir + "/bare-lora"
        try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: Self.adapter + "/adapter_model.safetensors", toPath: bare + "/adapter_model.safetensors")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.adapter + "/adapter_config.json"))) as? [String: Any])
        config["base_model_name_or_path"] = NSNull()
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: bare + "/adapter_config.json"))
        try convert([bare, "-o", dir + "/bare.gguf", "--base", Self.base])
        #expect(try GGUFFile(path: dir + "/bare.gguf").metadata["general.base_model.count"] == nil)
        for base in [Self.base, Self.base + "/config.json"] {
            try convert([dir + "/bare.gguf", "-o", dir + "/bare-peft", "--base", base, "--force"])
            let fromBase = try recorded(dir + "/bare-peft")
            #expect(fromBase.config as? String == "tiny-llama-spm", "\(base)")
            #expect(fromBase.card.contains("base_model: tiny-llama-spm\n"))
        }
        // The name is GGUF → PEFT's alone: PEFT → GGUF reads the base from adapter_config.json.
        let wrongWay = try CLI.run(["convert-adapter", Self.adapter, "-o", dir + "/x.gguf", "--base", Self.base, "--base-model-name", "x/y"])
        #expect(wrongWay.status == 64 && wrongWay.stderr.contains("--base-model-name"), "\(wrongWay.stderr)")
    }

    // MARK: qlora-train

    @Test func trainEmitsEventsAndResumes() throws {
        let dir = Fixtures.temporaryDirectory()
        let full = dir + "/full"
        let r = try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", full, "--steps", "4", "--save-every", "2",
                             "--lr", "1e-3", "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let events = r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(events.count == r.stdout.split(separator: "\n").count)
        #expect(events.compactMap { $0["event"] as? String } == ["start", "step", "step", "checkpoint", "step", "step", "done"])
        #expect(events.first?["template"] as? String == "llama2")
        #expect(FileManager.default.fileExists(atPath: full + "/adapter_model.safetensors"))
        #expect(FileManager.default.fileExists(atPath: full + "/checkpoint-2/trainer_state.json"))

        // Interrupted after step 2: resuming reaches the same adapter.
        let part = dir + "/part"
        try FileManager.default.createDirectory(atPath: part, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: full + "/checkpoint-2", toPath: part + "/checkpoint-2")
        let resumed = try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", part, "--steps", "4", "--save-every", "2",
                                   "--lr", "1e-3", "--threads", "1", "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: part + "/adapter_model.safetensors"))
            == Data(contentsOf: URL(fileURLWithPath: full + "/adapter_model.safetensors")))

        // The trained adapter merges.
        let m = try CLI.run(["qlora-merge", Self.base, full, "-o", dir + "/merged.gguf", "--outtype", "f16"])
        #expect(m.status == 0, "\(m.stderr)")
    }

    @Test func trainExitCodes() throws {
        let dir = Fixtures.temporaryDirectory()
        // 65 with the line number
        let data = dir + "/bad.jsonl"
        try Data("{\"text\": \"fine\"}\n{\"messages\": 3}\n".utf8).write(to: URL(fileURLWithPath: data))
        let r = try CLI.run(["qlora-train", Self.base, "--data", data, "-o", dir + "/a", "--steps", "1"])
        #expect(r.status == 65)
        #expect(r.stderr == "error: \(data): line 2: \"messages\" is not an array\n")
        // 64
        #expect(try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", dir + "/b", "--steps", "2", "--epochs", "1"]).status == 64)
        #expect(try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", dir + "/b", "--targets", "q_proj,w_proj"]).status == 64)
        #expect(try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", dir + "/b", "--template", "mistral"]).status == 64)
        #expect(try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", dir + "/b", "--resume"]).status == 64)
        // 66
        #expect(try CLI.run(["qlora-train", Self.base, "--data", dir + "/none.jsonl", "-o", dir + "/c"]).status == 66)
        // 73: existing output without --resume / --force
        try FileManager.default.createDirectory(atPath: dir + "/d", withIntermediateDirectories: true)
        #expect(try CLI.run(["qlora-train", Self.base, "--data", Self.sample, "-o", dir + "/d", "--steps", "1"]).status == 73)
    }

    @Test func helpListsTheTrainCommands() throws {
        let r = try CLI.run(["--help"])
        #expect(r.stdout.contains("qlora-train") && r.stdout.contains("qlora-merge") && r.stdout.contains("convert-adapter"))
        let merge = try CLI.run(["qlora-merge", "--help"])
        #expect(merge.stdout.contains("--merge-into") && merge.stdout.contains("dequantized") && merge.stdout.contains("original"))
    }
}
