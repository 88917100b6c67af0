import Foundation
import Formats
import Testing
import TestSupport

/// `wconv run`: greedy continuations and prompt logits against transformers.
@Suite struct RunCommandTests {
    /// Float32 data of a little-endian `<f4` .npy file (no Verify dependency in this target).
    static func npyFloats(_ path: String) throws -> (shape: [Int], values: [Float]) {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        try #require(bytes.count > 10 && bytes[0] == 0x93 && bytes[6] == 1)
        // Version 1.0: magic, 2 version bytes, u16 header length, header, data.
        let length = Int(bytes[8]) | Int(bytes[9]) << 8
        let headerBytes = bytes[10 ..< 10 + length]
        let header = String(decoding: headerBytes, as: UTF8.self)
        #expect(header.contains("'descr': '<f4'"))
        let shapeText = header.split(separator: "(")[1].split(separator: ")")[0]
        let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let data = bytes[(10 + length)...]
        let values = stride(from: data.startIndex, to: data.endIndex, by: 4).map { i in
            Float(bitPattern: UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24)
        }
        return (shape, values)
    }

    static func greedyGolden(_ model: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("golden/verify/greedy.json")))
        let all = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(all[model] as? [String: Any])
    }

    /// The prompt tokenized by the model's tokenizer, then 16 greedy tokens, equal to
    /// transformers' `generate(do_sample=False)`, from the HF directory and from the f32 GGUF.
    @Test(arguments: ["tiny-llama-spm", "tiny-llama-bpe"])
    func greedyContinuationMatchesTransformers(model: String) throws {
        let golden = try Self.greedyGolden(model)
        let text = try #require(golden["text"] as? String)
        for path in [Fixtures.path(model), Fixtures.path("golden/\(model).f32.gguf")] {
            let r = try CLI.run(["run", path, "--prompt", text, "-n", "16", "--json", "--ignore-eos", "--threads", "2"])
            #expect(r.status == 0, "\(r.stderr)")
            let out = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(out["prompt_tokens"] as? [Int] == golden["prompt_tokens"] as? [Int], "\(path)")
            #expect(out["tokens"] as? [Int] == golden["generated"] as? [Int], "\(path)")
            if model == "tiny-llama-spm" { #expect(out["text"] as? String == golden["generated_text"] as? String) }
            // Timings of the prompt's forward call (what bench/verify_bench.py reads).
            let timings = try #require(out["timings"] as? [String: Any])
            let evalSeconds = try #require(timings["prompt_eval_seconds"] as? Double)
            #expect(evalSeconds > 0 && (timings["prompt_eval_cpu_seconds"] as? Double ?? -1) >= 0)
            #expect(timings["threads"] as? Int == 2)
        }
    }

    @Test func plainOutputIsTheContinuationText() throws {
        let golden = try Self.greedyGolden("tiny-llama-spm")
        let r = try CLI.run(["run", Fixtures.path("tiny-llama-spm"), "--prompt", "the quick brown fox jumps over the lazy dog",
                             "-n", "16", "--keep-weights"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (golden["generated_text"] as? String ?? "") + "\n")
    }

    /// --logits writes [positions, vocab] float32 equal to transformers' fp32 logits.
    @Test(arguments: ["tiny-llama-spm", "tiny-llama-bpe"])
    func promptLogitsMatchTransformers(model: String) throws {
        let out = Fixtures.temporaryDirectory() + "/logits.npy"
        let r = try CLI.run(["run", Fixtures.path(model), "--tokens", Fixtures.path("golden/\(model).tokens.json"),
                             "-n", "0", "--logits", out])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try Self.npyFloats(out)
        let golden = try Self.npyFloats(Fixtures.path("golden/\(model).logits_f32.npy"))
        #expect(ours.shape == golden.shape)
        let range = (golden.values.max() ?? 0) - (golden.values.min() ?? 0)
        let worst = zip(ours.values, golden.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * range, "max |Δlogit| \(worst)")
        // An existing file is kept without --force.
        let again = try CLI.run(["run", Fixtures.path(model), "--tokens", Fixtures.path("golden/\(model).tokens.json"),
                                 "-n", "0", "--logits", out])
        #expect(again.status == 73)
    }

    /// GGUFs written by `wconv convert` (f32 exact; f16 for the f16 model exact too) load back
    /// with the golden logits: the writer's Q/K permutation and rope_freqs meet the loader's.
    /// The other families' blocks through the command: prompt logits equal transformers' goldens.
    @Test(arguments: ["families/persimmon", "families/mpt", "families/opt"])
    func familyPromptLogitsMatchTransformers(model: String) throws {
        let family = String(model.dropFirst("families/".count))
        let out = Fixtures.temporaryDirectory() + "/logits.npy"
        let r = try CLI.run(["run", Fixtures.path(model), "--tokens", Fixtures.path("golden/families/\(family).tokens.json"),
                             "-n", "4", "--ignore-eos", "--logits", out, "--threads", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try Self.npyFloats(out)
        let golden = try Self.npyFloats(Fixtures.path("golden/families/\(family).logits_f32.npy"))
        #expect(ours.shape == golden.shape)
        let range = (golden.values.max() ?? 0) - (golden.values.min() ?? 0)
        let worst = zip(ours.values, golden.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * range, "\(model): max |Δlogit| \(worst)")
    }

    @Test(arguments: [("tiny-llama-bpe", "f32"), ("tiny-llama-bpe", "f16"), ("tiny-llama-spm", "f32"), ("tiny-llama-spm", "bf16")])
    func convertedGGUFReproducesGoldenLogits(model: String, outtype: String) throws {
        let dir = Fixtures.temporaryDirectory()
        let gguf = dir + "/m.gguf"
        let convert = try CLI.run(["convert", Fixtures.path(model), "-o", gguf, "--outtype", outtype])
        #expect(convert.status == 0, "\(convert.stderr)")
        let r = try CLI.run(["run", gguf, "--tokens", Fixtures.path("golden/\(model).tokens.json"), "-n", "0",
                             "--logits", dir + "/l.npy"])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try Self.npyFloats(dir + "/l.npy")
        let golden = try Self.npyFloats(Fixtures.path("golden/\(model).logits_f32.npy"))
        let range = (golden.values.max() ?? 0) - (golden.values.min() ?? 0)
        let worst = zip(ours.values, golden.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * range, "\(model) \(outtype): max |Δlogit| \(worst)")
    }

    /// --adapter: PEFT's logits of the shared tiny model with the shared adapter (made by
    /// testdata/scripts/make_verify_goldens.py).
    @Test func adapterLogitsMatchPEFT() throws {
        let dir = Fixtures.temporaryDirectory()
        try Data("[1, 5, 17, 42, 99, 3, 64, 127]".utf8).write(to: URL(fileURLWithPath: dir + "/t.json"))
        let r = try CLI.run(["run", Fixtures.path("vectors/tiny-llama"), "--tokens", dir + "/t.json", "-n", "2",
                             "--adapter", Fixtures.path("vectors/fixtures/tiny-adapter"), "--logits", dir + "/l.npy", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try Self.npyFloats(dir + "/l.npy")
        let golden = try Self.npyFloats(Fixtures.path("golden/verify/tiny-llama.lora_logits_f32.npy"))
        let range = (golden.values.max() ?? 0) - (golden.values.min() ?? 0)
        let worst = zip(ours.values, golden.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * range, "max |Δlogit| \(worst)")
        let bad = try CLI.run(["run", Fixtures.path("tiny-llama-spm"), "--tokens", dir + "/t.json",
                               "--adapter", Fixtures.path("vectors/fixtures/tiny-adapter")])
        #expect(bad.status == 65)
        #expect(bad.stderr.contains("B·A is"))
    }

    @Test func usageErrors() throws {
        #expect(try CLI.run(["run", Fixtures.path("tiny-llama-spm")]).status == 64)
        #expect(try CLI.run(["run", Fixtures.path("tiny-llama-spm"), "--prompt", "a", "--tokens", "b.json"]).status == 64)
        #expect(try CLI.run(["run", Fixtures.path("tiny-llama-spm"), "--prompt", "a", "-n", "-1"]).status == 64)
        let dir = Fixtures.temporaryDirectory()
        try Data("[1, 500]".utf8).write(to: URL(fileURLWithPath: dir + "/t.json"))
        let outOfRange = try CLI.run(["run", Fixtures.path("tiny-llama-spm"), "--tokens", dir + "/t.json"])
        #expect(outOfRange.status == 64)
        #expect(outOfRange.stderr.contains("token id 500 is outside the vocabulary"))
    }
}
