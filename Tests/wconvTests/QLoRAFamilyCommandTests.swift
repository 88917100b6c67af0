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

    /// OPT, phi-1.5, GPT-2, MPT, Falcon (7B and 40B layouts), Persimmon, Qwen-7B and Baichuan 2 (7B, 13B) train on their f32 and NF4 bases; the adapter carries the
    /// family's names (one fused c_attn / Wqkv module).
    @Test(arguments: [("opt", ["fc1", "fc2", "k_proj", "out_proj", "q_proj", "v_proj"]),
                      ("phi-1_5", ["dense", "fc1", "fc2", "k_proj", "q_proj", "v_proj"]),
                      ("gpt2", ["c_attn", "c_fc", "c_proj"]),
                      ("mpt", ["Wqkv", "down_proj", "out_proj", "up_proj"]),
                      ("falcon-7b", ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"]),
                      ("falcon-40b", ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"]),
                      ("persimmon", ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"]),
                      ("qwen-7b", ["c_attn", "c_proj", "w1", "w2"]),
                      ("baichuan2-7b", ["W_pack", "down_proj", "gate_proj", "o_proj", "up_proj"]),
                      ("baichuan2-13b", ["W_pack", "down_proj", "gate_proj", "o_proj", "up_proj"])])
    func trainsTheBlockFamilies(family: (name: String, targets: [String])) throws {
        let dir = Fixtures.temporaryDirectory()
        // The remote-code fixtures carry no chat template; the sample's chat records take ChatML.
        let template = ["qwen-7b", "baichuan2-7b", "baichuan2-13b"].contains(family.name) ? ["--template", "chatml"] : []
        for precision in ["f32", "nf4"] {
            let r = try CLI.run(["qlora-train", Fixtures.path("families/\(family.name)"), "--data", Self.sample, "-o", dir + "/" + precision,
                                 "--steps", "2", "--threads", "1", "--base-precision", precision, "--quiet"] + template)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Self.adapterTargets(dir + "/" + precision) == family.targets)
        }
        // Resuming from a checkpoint (the adapter read back under the family's names) reaches the same adapter.
        let args = ["qlora-train", Fixtures.path("families/\(family.name)"), "--data", Self.sample, "--steps", "2", "--save-every", "1",
                    "--threads", "1", "--base-precision", "f32", "--quiet"] + template
        #expect(try CLI.run(args + ["-o", dir + "/full"]).status == 0)
        try FileManager.default.createDirectory(atPath: dir + "/part", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/full/checkpoint-1", toPath: dir + "/part/checkpoint-1")
        let resumed = try CLI.run(args + ["-o", dir + "/part", "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/part/adapter_model.safetensors"))
            == Data(contentsOf: URL(fileURLWithPath: dir + "/full/adapter_model.safetensors")))
        let p = try CLI.run(["qlora-train", Fixtures.path("families/\(family.name)"), "--data", Self.sample, "-o", dir + "/peft",
                             "--steps", "1", "--threads", "1", "--targets", "fc1,out_proj,dense", "--quiet"] + template)
        // `fc1,out_proj,dense` mixes the families' names: one is never the family's, refused as a usage error.
        #expect(p.status == 64, "\(p.stderr)")
    }

    /// `qlora-train` on the family's converter GGUF (f32), with an f32 or NF4 frozen base, writes the
    /// adapter it writes on the HF checkpoint, byte for byte: the same weights through the GGUF layout, the same tokens from the
    /// GGUF's tokenizer, the family's own GELU. Baichuan 2's GGUF is refused (unnormalised NormHead).
    @Test(arguments: ["gpt2", "falcon-40b", "falcon-7b", "mpt", "phi-1_5", "qwen-7b"])
    func ggufBaseTrainsAsTheHFBase(family: String) throws {
        let dir = Fixtures.temporaryDirectory()
        // llama.cpp's Falcon converter writes a 2048-token context, the tiny HF config says 64: the
        // longest example is cut at the same length for both.
        let template = (family == "qwen-7b" ? ["--template", "chatml"] : []) + ["--max-len", "64"]
        for precision in ["f32", "nf4"] {
            for (name, base) in [("hf", Fixtures.path("families/\(family)")), ("gguf", Fixtures.path("golden/families/\(family).f32.gguf"))] {
                let r = try CLI.run(["qlora-train", base, "--data", Self.sample, "-o", dir + "/\(name)-\(precision)",
                                     "--steps", "2", "--threads", "1", "--base-precision", precision, "--quiet"] + template)
                #expect(r.status == 0, "\(name): \(r.stderr)")
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/gguf-\(precision)/adapter_model.safetensors"))
                == Data(contentsOf: URL(fileURLWithPath: dir + "/hf-\(precision)/adapter_model.safetensors")), "\(family) \(precision)")
            #expect(try Self.adapterTargets(dir + "/gguf-\(precision)") == Self.adapterTargets(dir + "/hf-\(precision)"))
        }
    }

    @Test func baichuanGGUFBaseIsRefused() throws {
        let dir = Fixtures.temporaryDirectory()
        let r = try CLI.run(["qlora-train", Fixtures.path("golden/families/baichuan2-7b.f32.gguf"), "--data", Self.sample,
                             "-o", dir + "/out", "--steps", "1", "--threads", "1", "--template", "chatml", "--quiet"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("NormHead"), "\(r.stderr)")
    }

    @Test func mergeAndConvertAdapterOfAFusedFamily() throws {
        let dir = Fixtures.temporaryDirectory()
        let merged = try CLI.run(["qlora-merge", Fixtures.path("families/gpt2"), Fixtures.path("golden/families-lora/gpt2"), "-o", dir + "/m",
                                  "--outtype", "f32"])
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(!merged.stderr.contains("not verified"), "\(merged.stderr)")
        for family in ["falcon-40b", "baichuan2-7b"] {
            let out = dir + "/\(family).gguf"
            let r = try CLI.run(["convert-adapter", Fixtures.path("golden/families-lora/\(family)"), "-o", out,
                                 "--base", Fixtures.path("families/\(family)"), "--no-provenance"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(try Fixtures.data("golden/families-lora/\(family).f32.gguf")))
        }
    }

    /// qlora-merge verifies every family by a forward pass (merged vs base + adapter applied on the
    /// fly): merging the golden PEFT adapter to f32 leaves nothing between the two.
    @Test(arguments: ["gpt2", "opt", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "persimmon", "baichuan2-7b",
                      "baichuan2-13b", "qwen-7b", "qwen2", "mistral"])
    func mergeIsVerifiedOnEveryFamily(family: String) throws {
        let dir = Fixtures.temporaryDirectory()
        let r = try CLI.run(["qlora-merge", Fixtures.path("families/\(family)"), Fixtures.path("golden/families-lora/\(family)"),
                             "-o", dir + "/m", "--outtype", "f32", "--threads", "2", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let v = try #require(report["verification"] as? [String: Any], "\(family): no verification in \(r.stdout)")
        let warnings = report["warnings"] as? [String] ?? []
        #expect(!warnings.contains { $0.contains("not verified") }, "\(warnings)")
        #expect((v["tokens"] as? Int ?? 0) >= 2)
        #expect(v["top1_agreement"] as? Double == 1)
        let diff = v["max_logit_difference"] as? Double ?? .infinity
        print("\(family): qlora-merge verification max |Δlogit| \(diff), mean KLD \(v["mean_kld"] ?? "?")")
        #expect(diff <= 1e-4)
    }

    /// A merged GGUF of a family whose converter regroups tensors is byte for byte the GGUF of
    /// `wconv convert` on the merged HF directory (same `--outtype`), and is verified by a forward
    /// pass on the GGUF.
    @Test(arguments: [("gpt2", "f32"), ("falcon-40b", "f16"), ("falcon-7b", "f32"), ("mpt", "f32"), ("phi-1_5", "bf16"),
                      ("baichuan2-7b", "f32"), ("qwen-7b", "f16")])
    func mergedGGUFEqualsMergeThenConvert(family: String, outtype: String) throws {
        let dir = Fixtures.temporaryDirectory()
        let base = Fixtures.path("families/\(family)"), adapter = Fixtures.path("golden/families-lora/\(family)")
        let direct = try CLI.run(["qlora-merge", base, adapter, "-o", dir + "/direct.gguf", "--outtype", outtype, "--no-provenance",
                                  "--threads", "2", "--json", "--quiet"])
        #expect(direct.status == 0, "\(direct.stderr)")
        // The merged directory is named as the base (the converter's general.name comes from it).
        let hf = try CLI.run(["qlora-merge", base, adapter, "-o", dir + "/\(family)", "--outtype", outtype, "--no-provenance",
                              "--threads", "2", "--quiet"])
        #expect(hf.status == 0, "\(hf.stderr)")
        let convert = try CLI.run(["convert", dir + "/\(family)", "-o", dir + "/converted.gguf", "--outtype", outtype, "--no-provenance", "--quiet"])
        #expect(convert.status == 0, "\(convert.stderr)")
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/direct.gguf"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/converted.gguf"))
        #expect(a.count > 0 && a == b)
        // Only the output is left beside it (the scratch HF directory is gone).
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["converted.gguf", "direct.gguf", family].sorted())
        let report = try #require(try JSONSerialization.jsonObject(with: Data(direct.stdout.utf8)) as? [String: Any])
        let v = try #require(report["verification"] as? [String: Any], "\(direct.stdout)")
        print("\(family) merged GGUF (\(outtype)): verification \(v)")
        #expect((v["tokens"] as? Int ?? 0) >= 2)
        if !family.hasPrefix("baichuan") {
            // The GGUF forward pass against HF base + adapter: llama.cpp's metadata (f32 eps) and the
            // output type move the logits a little, not the top token.
            #expect(v["top1_agreement"] as? Double == 1)
            #expect((v["mean_kld"] as? Double ?? 1) < 1e-3)
        } else {
            // llama.cpp's Baichuan 2 has no NormHead: the report says why the check differs.
            #expect((report["warnings"] as? [String] ?? []).contains { $0.contains("NormHead") }, "\(report)")
        }
    }

    /// No GGUF exists for OPT and Persimmon (llama.cpp has no architecture); a requantizing GGUF
    /// merge of a regrouped family says to quantize afterwards.
    @Test func ggufMergeRefusals() throws {
        let dir = Fixtures.temporaryDirectory()
        let opt = try CLI.run(["qlora-merge", Fixtures.path("families/opt"), Fixtures.path("golden/families-lora/opt"), "-o", dir + "/o.gguf"])
        #expect(opt.status != 0)
        #expect(opt.stderr.contains("no architecture"), "\(opt.stderr)")
        let q = try CLI.run(["qlora-merge", Fixtures.path("families/gpt2"), Fixtures.path("golden/families-lora/gpt2"), "-o", dir + "/g.gguf",
                             "--requantize", "Q8_0"])
        #expect(q.status != 0)
        #expect(q.stderr.contains("wconv quantize"), "\(q.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
