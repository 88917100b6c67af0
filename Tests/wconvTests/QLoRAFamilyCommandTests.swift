import Foundation
import Testing
import TestSupport

/// qlora-train, qlora-merge and convert-adapter on the other families (FamilyLoRATests in
/// FinetuneTests compare the library's results with PEFT, bitsandbytes and llama.cpp).
@Suite struct QLoRAFamilyCommandTests {
    static let sample = Fixtures.path("golden/lora/data/sample.jsonl")

    static func adapterTargets(_ dir: String) throws -> [String] {
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json")))
        return ((config as? [String: Any])?["target_modules"] as? [String] ?? []).sorted()
    }

    /// Qwen2 and Mistral train; `--targets` defaults to the family's linear layers and takes
    /// `peft-default` (PEFT's q_proj, v_proj).
    @Test(arguments: ["qwen2", "mistral"])
    func trainsQwen2AndMistral(family: String) throws {
        let dir = Fixtures.temporaryDirectory()
        let base = Fixtures.path("families/\(family)")
        let r = try CLI.run(["qlora-train", base, "--data", Self.sample, "-o", dir + "/all", "--steps", "1", "--threads", "1", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.adapterTargets(dir + "/all") == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"])
        let p = try CLI.run(["qlora-train", base, "--data", Self.sample, "-o", dir + "/peft", "--steps", "1", "--threads", "1",
                             "--targets", "peft-default", "--quiet"])
        #expect(p.status == 0, "\(p.stderr)")
        #expect(try Self.adapterTargets(dir + "/peft") == ["q_proj", "v_proj"])
    }

    /// OPT, phi-1.5, GPT-2, MPT and Falcon 7B train on their f32 and NF4 bases; the adapter carries the
    /// family's names (one fused c_attn / Wqkv module).
    @Test(arguments: [("opt", ["fc1", "fc2", "k_proj", "out_proj", "q_proj", "v_proj"]),
                      ("phi-1_5", ["dense", "fc1", "fc2", "k_proj", "q_proj", "v_proj"]),
                      ("gpt2", ["c_attn", "c_fc", "c_proj"]),
                      ("mpt", ["Wqkv", "down_proj", "out_proj", "up_proj"]),
                      ("falcon-7b", ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"])])
    func trainsTheBlockFamilies(family: (name: String, targets: [String])) throws {
        let dir = Fixtures.temporaryDirectory()
        for precision in ["f32", "nf4"] {
            let r = try CLI.run(["qlora-train", Fixtures.path("families/\(family.name)"), "--data", Self.sample, "-o", dir + "/" + precision,
                                 "--steps", "2", "--threads", "1", "--base-precision", precision, "--quiet"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.adapterTargets(dir + "/" + precision) == family.targets)
        }
        // Resuming from a checkpoint (the adapter read back under the family's names) reaches the same adapter.
        let args = ["qlora-train", Fixtures.path("families/\(family.name)"), "--data", Self.sample, "--steps", "2", "--save-every", "1",
                    "--threads", "1", "--base-precision", "f32", "--quiet"]
        #expect(try CLI.run(args + ["-o", dir + "/full"]).status == 0)
        try FileManager.default.createDirectory(atPath: dir + "/part", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/full/checkpoint-1", toPath: dir + "/part/checkpoint-1")
        let resumed = try CLI.run(args + ["-o", dir + "/part", "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/part/adapter_model.safetensors"))
            == Data(contentsOf: URL(fileURLWithPath: dir + "/full/adapter_model.safetensors")))
        let p = try CLI.run(["qlora-train", Fixtures.path("families/\(family.name)"), "--data", Self.sample, "-o", dir + "/peft",
                             "--steps", "1", "--threads", "1", "--targets", "fc1,out_proj,dense", "--quiet"])
        // `fc1,out_proj,dense` mixes the families' names: one is never the family's, refused as a usage error.
        #expect(p.status == 64, "\(p.stderr)")
    }

    @Test func otherBlocksAreRefusedByName() throws {
        let r = try CLI.run(["qlora-train", Fixtures.path("families/persimmon"), "--data", Self.sample, "-o", Fixtures.temporaryDirectory() + "/a"])
        #expect(r.status == 69)
        #expect(r.stderr.contains("Persimmon") && r.stderr.contains("LayerNorm"), "\(r.stderr)")
    }

    @Test func mergeAndConvertAdapterOfAFusedFamily() throws {
        let dir = Fixtures.temporaryDirectory()
        let merged = try CLI.run(["qlora-merge", Fixtures.path("families/gpt2"), Fixtures.path("golden/families-lora/gpt2"), "-o", dir + "/m",
                                  "--outtype", "f32"])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stderr.contains("forward pass does not run"))
        for family in ["falcon-40b", "baichuan2-7b"] {
            let out = dir + "/\(family).gguf"
            let r = try CLI.run(["convert-adapter", Fixtures.path("golden/families-lora/\(family)"), "-o", out,
                                 "--base", Fixtures.path("families/\(family)"), "--no-provenance"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(try Fixtures.data("golden/families-lora/\(family).f32.gguf")))
        }
    }
}
