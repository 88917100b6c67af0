import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// `wconv quantize` / `wconv dequantize` end to end: the built binary, its outputs and exit codes.
@Suite struct QuantizeCommandTests {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The `wconv` executable beside the test bundle (`.build/<config>/wconv`).
    static var binary: String {
        var url = Bundle.main.bundleURL
        for _ in 0 ..< 4 {
            let candidate = url.appendingPathComponent("wconv")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            url.deleteLastPathComponent()
        }
        return Fixtures.repositoryRoot().appendingPathComponent(".build/debug/wconv").path
    }

    static func run(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain both pipes before waiting so a chatty child cannot block on a full pipe.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    static func scratch() -> String { Fixtures.temporaryDirectory("wconv-quantize-cli") }

    static func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test func helpListsTheCommands() throws {
        let r = try Self.run(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("quantize") && r.stdout.contains("dequantize"))
        let q = try Self.run(["quantize", "--help"])
        #expect(q.status == 0)
        for flag in ["--nf4", "--fp4", "--int8", "--type", "--blocksize", "--no-double-quant", "--compute-dtype", "--tensor-type",
                     "--output-tensor-type", "--token-embedding-type", "--leave-output-tensor", "--pure", "--allow-requantize",
                     "--allow-non-finite", "--threads", "--force"] {
            #expect(q.stdout.contains(flag), "\(flag)")
        }
    }

    @Test(arguments: [
        (["--nf4", "--compute-dtype", "f32"], "golden/tiny-llama-spm-nf4", "nf4"),
        (["--fp4", "--no-double-quant", "--compute-dtype", "float32"], "golden/tiny-llama-spm-fp4", "fp4"),
        (["--int8"], "golden/tiny-llama-spm-int8", "int8"),
    ])
    func quantizeWritesWhatTransformersWrites(flags: [String], golden: String, kind: String) throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Byte-identical to transformers + bitsandbytes when no provenance is recorded.
        let r = try Self.run(["quantize", Fixtures.path("tiny-llama-spm"), "-o", dir + "/out", "--no-provenance"] + flags)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        for name in ["model.safetensors", "config.json", "generation_config.json"] {
            #expect(try Self.read(dir + "/out/" + name) == Self.read(Fixtures.path(golden + "/" + name)), "\(name)")
        }
        // The summary: one line per type with tensors, bytes and bits per weight, then the time.
        let line = try #require(r.stderr.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(kind + " ") })
        #expect(line.split(separator: " ").dropFirst().first == "14")
        #expect(r.stderr.contains("bits/weight") && r.stderr.contains("time"))
    }

    @Test(arguments: [
        ([], "Choose a format"),
        (["--nf4", "--int8"], "only one of"),
        (["--type", "Q9_9"], "--type must be one of"),
        (["--int8", "--blocksize", "128"], "--blocksize applies only to --nf4 and --fp4"),
        (["--int8", "--no-double-quant"], "--no-double-quant applies only"),
        (["--int8", "--compute-dtype", "f16"], "--compute-dtype applies only"),
        (["--int8", "--compute-dtype", "bf16"], "--compute-dtype applies only"),
        (["--fp4", "--blocksize", "64", "--int8"], "only one of"),
        (["--int8", "--blocksize", "64"], "--blocksize applies only"),
        (["--nf4", "--blocksize", "48"], "--blocksize must be one of"),
        (["--nf4", "--pure"], "--pure applies only to GGUF quantization"),
        (["--fp4", "--tensor-type", "attn_v=Q6_K"], "--tensor-type applies only"),
        (["--type", "Q4_K_M", "--tensor-type", "attn_v"], "REGEX=TYPE"),
        (["--type", "Q4_K_M", "--tensor-type", "attn_v=Q9"], "not a ggml type"),
        (["--type", "Q4_K_M", "--tensor-type", "attn_v(=Q6_K"], "not a valid regular expression"),
        (["--type", "Q4_K_M", "--output-tensor-type", "X"], "--output-tensor-type must be"),
        (["--nf4", "--compute-dtype", "f64"], "compute-dtype"),
        (["--nf4", "--threads", "0"], "--threads must be at least 1"),
        (["--nf4", "--bogus"], "bogus"),
    ])
    func badFlagsExit64(flags: [String], message: String) throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.run(["quantize", Fixtures.path("tiny-llama-spm"), "-o", dir + "/out"] + flags)
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
    }

    @Test func missingInputExits66() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.run(["quantize", dir + "/no-such-model", "-o", dir + "/out", "--nf4"])
        #expect(r.status == 66, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains("no-such-model"))
        let d = try Self.run(["dequantize", dir + "/no-such-model", "-o", dir + "/out"])
        #expect(d.status == 66, "\(d.stderr)")
    }

    @Test func existingOutputExits73UnlessForced() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        let r = try Self.run(["quantize", Fixtures.path("tiny-llama-spm"), "-o", dir + "/out", "--int8"])
        #expect(r.status == 73, "\(r.stderr)")
        #expect(r.stderr.contains("--force"))
        let forced = try Self.run(["quantize", Fixtures.path("tiny-llama-spm"), "-o", dir + "/out", "--int8", "--force", "--no-provenance"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try Self.read(dir + "/out/model.safetensors") == Self.read(Fixtures.path("golden/tiny-llama-spm-int8/model.safetensors")))
    }

    /// A copy of the NF4 golden whose first quant_state JSON is cut short.
    static func brokenCheckpoint(in dir: String) throws -> String {
        let model = dir + "/broken"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("golden/tiny-llama-spm-nf4/config.json"), toPath: model + "/config.json")
        let checkpoint = try SafetensorsCheckpoint(path: Fixtures.path("golden/tiny-llama-spm-nf4/model.safetensors"))
        let tensors = checkpoint.tensors.map { t -> (spec: SafetensorsTensorSpec, data: [UInt8]) in
            var data = Array(checkpoint.bytes(of: t))
            var shape = t.shape
            if t.name == "model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4" {
                data = Array(data.prefix(20))
                shape = [20]
            }
            return (SafetensorsTensorSpec(name: t.name, dtype: t.dtype, shape: shape), data)
        }
        try Data(try SafetensorsWriter.serialize(tensors, metadata: [("format", "pt")])).write(to: URL(fileURLWithPath: model + "/model.safetensors"))
        return model
    }

    @Test func malformedAndRefusedInputsExit65() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broken = try Self.brokenCheckpoint(in: dir)
        let d = try Self.run(["dequantize", broken, "-o", dir + "/out"])
        #expect(d.status == 65, "\(d.stderr)")
        #expect(d.stderr.contains("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4"))
        let q = try Self.run(["quantize", broken, "-o", dir + "/out", "--nf4", "--allow-requantize"])
        #expect(q.status == 65, "\(q.stderr)")

        // Already quantized without --allow-requantize.
        let rq = try Self.run(["quantize", Fixtures.path("golden/tiny-llama-spm-nf4"), "-o", dir + "/out", "--nf4"])
        #expect(rq.status == 65, "\(rq.stderr)")
        #expect(rq.stderr.contains("--allow-requantize"))
        let ok = try Self.run(["quantize", Fixtures.path("golden/tiny-llama-spm-nf4"), "-o", dir + "/out", "--int8", "--allow-requantize"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stderr.contains("warning: requantizing"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/out/broken"))
    }

    @Test func ggufQuantizeAndDequantizeRun() throws {
        // Byte-for-byte agreement with llama-quantize is checked in PipelineTests (GGUFQuantizeTests).
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.run(["quantize", Fixtures.path("vectors/fixtures/tiny-f16.gguf"), "-o", dir + "/out.gguf", "--type", "q4_k_m"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/out.gguf"))
        let requant = try Self.run(["quantize", Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"), "-o", dir + "/re.gguf", "--type", "q4_0"])
        #expect(requant.status == 69 && requant.stderr.contains("--allow-requantize"), "\(requant.stderr)")
        let d = try Self.run(["dequantize", Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"), "-o", dir + "/out"])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/out/config.json"))
        // The bitsandbytes formats need an HF directory.
        let b = try Self.run(["quantize", Fixtures.path("vectors/fixtures/tiny-f16.gguf"), "-o", dir + "/out", "--nf4"])
        #expect(b.status == 69, "\(b.stderr)")
    }

    @Test func dequantizeWritesBitsandbytesValues() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.run(["dequantize", Fixtures.path("golden/tiny-llama-spm-nf4"), "-o", dir + "/out", "--outtype", "f32"])
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try SafetensorsCheckpoint(path: dir + "/out/model.safetensors")
        let golden = try SafetensorsCheckpoint(path: Fixtures.path("golden/tiny-llama-spm-nf4.dequant_f32.safetensors"))
        for t in golden.tensors {
            let o = try #require(ours.tensor(named: t.name))
            #expect(Array(ours.bytes(of: o)) == Array(golden.bytes(of: t)), "\(t.name)")
        }
        #expect(ours.tensors.allSatisfy { $0.dtype == .f32 })
        let config = try HFConfig(path: dir + "/out/config.json")
        #expect(config.quantizationConfig == nil)

        // A dense model has nothing to dequantize.
        let plain = try Self.run(["dequantize", Fixtures.path("tiny-llama-spm"), "-o", dir + "/plain"])
        #expect(plain.status == 64, "\(plain.stderr)")
        let badType = try Self.run(["dequantize", Fixtures.path("golden/tiny-llama-spm-nf4"), "-o", dir + "/x", "--outtype", "q8"])
        #expect(badType.status == 64)
    }

    @Test func inspectShowsBitsandbytesWeights() throws {
        let r = try Self.run(["inspect", Fixtures.path("golden/tiny-llama-spm-nf4")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("nf4 block 64 + double quant"))
        #expect(r.stdout.contains("bitsandbytes (nf4 + double quant (compute float32))"))
        #expect(r.stdout.contains("total: 90432 parameters"))
        let j = try Self.run(["inspect", "--json", Fixtures.path("golden/tiny-llama-spm-fp4")])
        let root = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any]
        #expect(root?["parameters"] as? Int == 90432)
        let tensors = root?["tensors"] as? [[String: Any]] ?? []
        let weight = tensors.first { $0["name"] as? String == "model.layers.0.mlp.up_proj.weight" }
        #expect(weight?["quantization"] as? String == "fp4 block 64")
        let quantization = root?["quantization"] as? [String: Any]
        let kinds = quantization?["kinds"] as? [[String: Any]]
        #expect(kinds?.first?["weights"] as? Int == 14)
    }
}
