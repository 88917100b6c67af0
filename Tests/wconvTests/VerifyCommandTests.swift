import Foundation
import Formats
import Testing
import TensorCore
import TestSupport

/// `wconv verify` as a user runs it: exit codes, table, JSON report, baselines.
@Suite struct VerifyCommandTests {
    static let tiny = Fixtures.path("vectors/tiny-llama")
    static let q8 = Fixtures.path("vectors/fixtures/tiny-q8_0.gguf")
    /// Small runs: 4 chunks of 64 tokens of the bundled text.
    static let quick = ["--ctx", "64", "--chunks", "4", "--threads", "2"]

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// vectors/tiny-llama with layer 1's MLP matrices scaled by 1.5 (bf16), as a new directory.
    static func perturbedModel() throws -> String {
        let dir = Fixtures.temporaryDirectory("wconv-perturbed")
        for file in ["config.json", "tokenizer.model"] {
            try FileManager.default.copyItem(atPath: tiny + "/" + file, toPath: dir + "/" + file)
        }
        let file = try SafetensorsFile(path: tiny + "/model.safetensors")
        var tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])] = []
        for t in file.tensors {
            var data = Array(file.bytes(of: t))
            if t.name.hasPrefix("model.layers.1.mlp.") {
                for i in 0 ..< t.elementCount {
                    let bits = UInt16(data[2 * i]) | UInt16(data[2 * i + 1]) << 8
                    let scaled = HalfFloat.bf16Bits(HalfFloat.float(bf16Bits: bits) * 1.5)
                    data[2 * i] = UInt8(scaled & 0xFF)
                    data[2 * i + 1] = UInt8(scaled >> 8)
                }
            }
            tensors.append((t.spec, data))
        }
        try Data(try SafetensorsWriter.serialize(tensors)).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }

    @Test func modelAgainstItselfPasses() throws {
        let out = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Self.tiny, Self.tiny, "--max-kld", "0", "--min-top1", "1", "--max-ppl-ratio", "1",
                             "--json", out] + Self.quick)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("verdict: PASS"))
        #expect(r.stdout.contains("no layer diverges"))
        let report = try Self.json(out)
        #expect(report["mean_kld"] as? Double == 0)
        #expect(report["max_kld"] as? Double == 0)
        #expect(report["top1_agreement"] as? Double == 1)
        #expect(report["ppl_ratio"] as? Double == 1)
        #expect(report["tokens_scored"] as? Int == 4 * 31)
        #expect(report["passed"] as? Bool == true)
        #expect(report["first_divergent_layer"] is NSNull)
        #expect((report["tensors"] as? [Any])?.count == 21)
        #expect((report["layers"] as? [Any])?.count == 4)
    }

    @Test func perturbedLayerExits1AndIsNamed() throws {
        let broken = try Self.perturbedModel()
        let out = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Self.tiny, broken, "--max-kld", "0.001", "--json", out] + Self.quick)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stdout.contains("first divergent layer: model.layers.1"))
        #expect(r.stdout.contains("verdict: FAIL: mean KLD"))
        #expect(r.stderr.isEmpty)
        let report = try Self.json(out)
        #expect(report["first_divergent_layer"] as? String == "model.layers.1")
        #expect(report["passed"] as? Bool == false)
        let layers = try #require(report["layers"] as? [[String: Any]])
        #expect(layers[1]["relative_error"] as? Double == 0)
        #expect(layers[2]["diverges"] as? Bool == true)
        // Without thresholds the same comparison reports but exits 0.
        #expect(try CLI.run(["verify", Self.tiny, broken] + Self.quick).status == 0)
    }

    /// Different formats: an HF bf16 directory against llama.cpp's Q8_0 GGUF of it.
    /// Qwen2 (q/k/v biases, GGUF `qwen2` stored unpermuted): the HF directory against llama.cpp's
    /// f32 conversion is the same model, biases included.
    @Test func qwen2HFAgainstItsGGUF() throws {
        let out = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Fixtures.path("families/qwen2"), Fixtures.path("golden/families/qwen2.f32.gguf"),
                             "--max-kld", "1e-6", "--min-top1", "1", "--json", out, "--ctx", "24", "--chunks", "8",
                             "--threads", "2"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let report = try Self.json(out)
        let kld = try #require(report["mean_kld"] as? Double)
        #expect(kld < 1e-9)
        let tensors = try #require(report["tensors"] as? [[String: Any]])
        #expect(tensors.count == 27)
        #expect(tensors.contains { $0["name"] as? String == "model.layers.1.self_attn.k_proj.bias" })
        #expect(tensors.allSatisfy { $0["max_abs_diff"] as? Double == 0 })
    }

    @Test func hfAgainstQ8_0GGUF() throws {
        let out = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Self.tiny, Self.q8, "--max-kld", "0.001", "--min-top1", "0.9", "--json", out] + Self.quick)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let report = try Self.json(out)
        let kld = try #require(report["mean_kld"] as? Double)
        #expect(kld > 0 && kld < 1e-4)
        let tensors = try #require(report["tensors"] as? [[String: Any]])
        let k = try #require(tensors.first { $0["name"] as? String == "model.layers.1.self_attn.k_proj.weight" })
        #expect(k["candidate_name"] as? String == "blk.1.attn_k.weight" && k["candidate_type"] as? String == "Q8_0")
        #expect((k["cosine"] as? Double).map { $0 > 0.9999 } == true)   // un-permuted: rows line up
        // The other way round: a GGUF reference, an HF candidate.
        let reversed = try CLI.run(["verify", Self.q8, Self.tiny, "--max-kld", "0.001", "--json", out, "--force"] + Self.quick)
        #expect(reversed.status == 0, "\(reversed.stderr)")
        #expect((try Self.json(out)["tensors"] as? [Any])?.count == 21)
    }

    /// A bitsandbytes NF4 (double quant) checkpoint of the same model: its 14 Linear weights
    /// are compared after bitsandbytes' dequantization; the KLD decides the exit status.
    @Test func hfAgainstBitsandbytesNF4() throws {
        let nf4 = Fixtures.path("vectors/fixtures/tiny-llama-nf4")
        let out = Fixtures.temporaryDirectory() + "/report.json"
        let pass = try CLI.run(["verify", Self.tiny, nf4, "--max-kld", "0.01", "--json", out] + Self.quick)
        #expect(pass.status == 0, "\(pass.stdout)\n\(pass.stderr)")
        let report = try Self.json(out)
        let tensors = try #require(report["tensors"] as? [[String: Any]])
        #expect(tensors.filter { $0["candidate_type"] as? String == "NF4+DQ" }.count == 14)
        #expect(tensors.filter { $0["candidate_type"] as? String == "BF16" }.allSatisfy { $0["max_abs_diff"] as? Double == 0 })
        let kld = try #require(report["mean_kld"] as? Double)
        #expect(kld > 1e-5)
        #expect(try CLI.run(["verify", Self.tiny, nf4, "--max-kld", "1e-5"] + Self.quick).status == 1)
    }

    @Test func baselineRoundTrip() throws {
        let dir = Fixtures.temporaryDirectory()
        let broken = try Self.perturbedModel()
        let kld = dir + "/ref.kld"
        let save = try CLI.run(["verify", Self.tiny, "--save-baseline", kld] + Self.quick)
        #expect(save.status == 0, "\(save.stderr)")
        #expect(save.stdout.contains("124 positions, top 32 of 128, 4 chunks of 64"))
        let good = try CLI.run(["verify", "--baseline", kld, Self.tiny, "--max-kld", "0.001", "--json", dir + "/a.json",
                                "--threads", "2"])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(try Self.json(dir + "/a.json")["mean_kld"] as? Double ?? 1 < 1e-9)
        let otherContext = try CLI.run(["verify", "--baseline", kld, Self.tiny, "--ctx", "128"])
        #expect(otherContext.status == 64)
        #expect(otherContext.stderr.contains("the baseline was scored with --ctx 64, not 128"))
        let bad = try CLI.run(["verify", "--baseline", kld, broken, "--max-kld", "0.001", "--threads", "2"])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("baseline"))
        // Saving alongside a comparison gives the same file.
        let again = try CLI.run(["verify", Self.tiny, broken, "--save-baseline", dir + "/b.kld"] + Self.quick)
        #expect(again.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: kld)) == Data(contentsOf: URL(fileURLWithPath: dir + "/b.kld")))
    }

    @Test func tokensFileAndJSONOnStdout() throws {
        let dir = Fixtures.temporaryDirectory()
        let ids = (0 ..< 200).map { ($0 * 37 + 11) % 128 }
        try Data("{\"tokens\": \(ids)}".utf8).write(to: URL(fileURLWithPath: dir + "/t.json"))
        let r = try CLI.run(["verify", Self.tiny, Self.q8, "--tokens", dir + "/t.json", "--ctx", "64", "--json", "-"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(report["chunks"] as? Int == 3)
        #expect(report["tokens"] as? Int == 200)
    }

    @Test func usageAndInputErrors() throws {
        let dir = Fixtures.temporaryDirectory()
        #expect(try CLI.run(["verify", Self.tiny]).status == 64)
        #expect(try CLI.run(["verify", Self.tiny, Self.tiny, Self.tiny]).status == 64)
        #expect(try CLI.run(["verify", Self.tiny, Self.q8, "--text", "a", "--tokens", "b"]).status == 64)
        #expect(try CLI.run(["verify", Self.tiny, Self.q8, "--min-top1", "97"]).status == 64)
        #expect(try CLI.run(["verify", Self.tiny, Self.q8, "--ctx", "2"]).status == 64)
        #expect(try CLI.run(["verify", "--baseline", "x.kld", Self.q8, "--text", "t.txt"]).status == 64)
        let missing = try CLI.run(["verify", Self.tiny, "/nonexistent/model.gguf"])
        #expect(missing.status == 66)
        #expect(missing.stderr == "error: /nonexistent/model.gguf: no such file or directory\n")
        // A text shorter than one chunk.
        try Data("short text".utf8).write(to: URL(fileURLWithPath: dir + "/short.txt"))
        let short = try CLI.run(["verify", Self.tiny, Self.q8, "--text", dir + "/short.txt"])
        #expect(short.status == 64)
        #expect(short.stderr.contains("fewer than one chunk of 512"))
        // Different vocabularies.
        let vocab = try CLI.run(["verify", Self.tiny, Fixtures.path("tiny-llama-bpe")] + Self.quick)
        #expect(vocab.status == 64)
        #expect(vocab.stderr.contains("vocabularies differ"))
        // An existing report is kept without --force.
        try Data("mine".utf8).write(to: URL(fileURLWithPath: dir + "/r.json"))
        let exists = try CLI.run(["verify", Self.tiny, Self.q8, "--json", dir + "/r.json"] + Self.quick)
        #expect(exists.status == 73)
        #expect(try String(contentsOfFile: dir + "/r.json", encoding: .utf8) == "mine")
        #expect(try CLI.run(["verify", Self.tiny, Self.q8, "--json", dir + "/r.json", "--force"] + Self.quick).status == 0)
        // A file that is not a baseline.
        let notBaseline = try CLI.run(["verify", "--baseline", dir + "/short.txt", Self.q8])
        #expect(notBaseline.status == 65)
        #expect(notBaseline.stderr.contains("not a wconv log-prob baseline"))
    }

    @Test func helpNamesTheThresholdsAndExitStatus() throws {
        let r = try CLI.run(["verify", "--help"])
        #expect(r.status == 0)
        for text in ["--max-kld", "--min-top1", "--max-ppl-ratio", "--save-baseline", "--baseline", "--json",
                     "Exit status: 0 when every threshold given holds"] {
            #expect(r.stdout.contains(text), "\(text)")
        }
        let root = try CLI.run(["--help"])
        #expect(root.stdout.contains("CHECK SUBCOMMANDS") || root.stdout.contains("Check"))
    }

    /// A non-LLaMA family end to end: GPT-2's HF checkpoint (Conv1D weights, learned positions)
    /// against llama.cpp's converter output of it. The GGUF runs llama.cpp's float16-table GELU,
    /// the HF side transformers' tanh GELU, so the KLD is ~1e-7, not 0.
    @Test func gpt2AgainstItsGGUFHasNoDivergence() throws {
        let out = Fixtures.temporaryDirectory() + "/report.json"
        let r = try CLI.run(["verify", Fixtures.path("families/gpt2"), Fixtures.path("golden/families/gpt2.f32.gguf"),
                             "--ctx", "32", "--chunks", "16", "--threads", "2", "--max-kld", "1e-5", "--min-top1", "0.99",
                             "--json", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("no layer diverges"))
        let report = try Self.json(out)
        let kld = try #require(report["mean_kld"] as? Double)
        #expect(kld < 1e-6)
        #expect((report["layers"] as? [Any])?.count == 4)
        #expect(report["first_divergent_layer"] is NSNull)
    }
}
