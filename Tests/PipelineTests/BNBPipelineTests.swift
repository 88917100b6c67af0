import Formats
import Foundation
@testable import Pipeline
import TensorCore
import TestSupport
import Testing

/// HF → bitsandbytes and back, compared with what transformers 5.24 + bitsandbytes 0.50.2
/// (CPU) wrote for the same models (testdata/golden/tiny-llama-spm-*, vectors/fixtures/*).
@Suite struct BNBPipelineTests {
    struct Case: CustomStringConvertible, Sendable {
        let input: String
        let golden: String
        let scheme: BNBScheme
        let doubleQuant: Bool
        let computeDType: DType
        var description: String { golden }

        var options: QuantizeOptions {
            var o = QuantizeOptions(scheme: .bnb(scheme))
            o.doubleQuant = doubleQuant
            o.computeDType = computeDType
            return o
        }
    }

    /// How each golden was made (testdata/scripts/make_fixtures.py `bnb_checkpoint`, and the
    /// shared spec fixtures): compute dtype float32 for the spm goldens, bfloat16 for the shared one.
    static let cases = [
        Case(input: "tiny-llama-spm", golden: "golden/tiny-llama-spm-nf4", scheme: .nf4, doubleQuant: true, computeDType: .f32),
        Case(input: "tiny-llama-spm", golden: "golden/tiny-llama-spm-fp4", scheme: .fp4, doubleQuant: false, computeDType: .f32),
        Case(input: "tiny-llama-spm", golden: "golden/tiny-llama-spm-int8", scheme: .int8, doubleQuant: true, computeDType: .bf16),
        Case(input: "vectors/tiny-llama", golden: "vectors/fixtures/tiny-llama-nf4", scheme: .nf4, doubleQuant: true, computeDType: .bf16),
        Case(input: "vectors/tiny-llama", golden: "vectors/fixtures/tiny-llama-int8", scheme: .int8, doubleQuant: true, computeDType: .bf16),
    ]

    static func outputPath(_ label: String) -> String {
        Fixtures.temporaryDirectory("wconv-bnb-pipeline") + "/" + label
    }

    // MARK: Quantize

    @Test(arguments: cases)
    func quantizedDirectoryIsByteIdenticalToTransformers(c: Case) throws {
        let out = Self.outputPath("q")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        let report = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path(c.input)), to: out, options: c.options)

        let golden = Fixtures.path(c.golden)
        for name in ["model.safetensors", "config.json", "generation_config.json"] {
            let ours = try BNBTest.read(out + "/" + name)
            let theirs = try BNBTest.read(golden + "/" + name)
            #expect(ours == theirs, "\(name): \(BNBTest.difference(ours, theirs))")
        }
        // Tokenizer files are copied unchanged (transformers' model save_pretrained writes none).
        let input = try HFModelDirectory(path: Fixtures.path(c.input))
        for name in input.tokenizerFiles {
            #expect(try BNBTest.read(out + "/" + name) == BNBTest.read(input.path(of: name)), "\(name)")
        }
        let kind = c.scheme.rawValue
        #expect(report.totals[kind]?.tensorCount == 14)
        let params = input.tensors.filter { BNBWriteLayout.isQuantizedLinear(name: $0.name, shape: $0.shape, dtype: $0.dtype) }
            .reduce(0) { $0 + $1.elementCount }
        #expect(report.totals[kind]?.parameterCount == params)
        #expect(report.totals["BF16"]?.tensorCount == input.tensors.count - 14)
        #expect(report.byteCount == (try BNBTest.tensors(out + "/model.safetensors")).values.reduce(0) { $0 + $1.bytes.count })
        #expect(report.warnings.isEmpty)
        #expect(report.outputs == [out, out + "/model.safetensors"])
    }

    @Test func threadCountDoesNotChangeTheBytes() throws {
        let base = Self.outputPath("t")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(base)) }
        var outputs: [[UInt8]] = []
        for threads in [1, 3] {
            var options = QuantizeOptions(scheme: .bnb(.nf4))
            options.threads = threads
            options.blockSize = 128
            let out = base + "\(threads)"
            _ = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path("vectors/tiny-llama")), to: out, options: options)
            outputs.append(try BNBTest.read(out + "/model.safetensors"))
        }
        #expect(outputs[0] == outputs[1])
    }

    /// The first pass's absmax (which fixes the double-quant offset and so the JSON length)
    /// must equal what the kernel stores, including NaN blocks and a short, tiny last block.
    @Test func plannedAbsmaxMatchesTheKernel() throws {
        var x = BNBTest.values(64 * 37 + 5, seed: 7, scale: 3)
        x[130] = .nan
        for i in 64 * 37 ..< x.count { x[i] = 1e-39 }
        for blockSize in [32, 64, 256] {
            let planned = x.withUnsafeBufferPointer { BNBQuantizer.blockAbsmax($0, blockSize: blockSize) }
            let kernel = try BNBQuantizer.kernelBlockAbsmax(x, blockSize: blockSize)
            #expect(planned.map(\.bitPattern) == kernel.map(\.bitPattern), "block size \(blockSize)")
        }
    }

    @Test func requantizingNeedsTheFlag() throws {
        let out = Self.outputPath("rq")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        let input = try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm-nf4"))
        var options = QuantizeOptions(scheme: .bnb(.nf4))
        #expect {
            _ = try BNBQuantizer.quantize(input, to: out, options: options)
        } throws: { ($0 as? any ClassifiedError)?.kind == .badValue && "\($0)".contains("--allow-requantize") }
        #expect(!FileSystem.exists(out))

        options.allowRequantize = true
        options.computeDType = .f32
        let report = try BNBQuantizer.quantize(input, to: out, options: options)
        #expect(report.warnings.count == 1)
        #expect(report.totals["nf4"]?.tensorCount == 14)
        // Same entries as a direct quantization (the values differ by the second rounding).
        let ours = try BNBTest.tensors(out + "/model.safetensors")
        let golden = try BNBTest.tensors(Fixtures.path("golden/tiny-llama-spm-nf4/model.safetensors"))
        #expect(Set(ours.keys) == Set(golden.keys))
        let readable = try HFModelDirectory(path: out)
        #expect(try BNBCheckpointLayout(source: CheckpointTensorSource(readable.weights), config: readable.config).fourBitWeights.count == 14)
    }

    @Test func int8RequantizedFromNF4() throws {
        let out = Self.outputPath("rq8")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        var options = QuantizeOptions(scheme: .bnb(.int8))
        options.allowRequantize = true
        let report = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm-nf4")), to: out, options: options)
        #expect(report.totals["int8"]?.tensorCount == 14)
        let dir = try HFModelDirectory(path: out)
        let layout = try BNBCheckpointLayout(source: CheckpointTensorSource(dir.weights), config: dir.config)
        #expect(layout.int8Weights.count == 14)
        #expect(layout.config?.loadIn8Bit == true)
    }

    @Test func nonFiniteWeightsAreRefusedByName() throws {
        var q = BNBTest.values(8 * 64, seed: 1)
        q[70] = .nan
        let dir = try BNBTest.modelDirectory([
            ("model.layers.0.self_attn.q_proj.weight", [8, 64], q),
            ("model.norm.weight", [64], [Float](repeating: 1, count: 64)),
        ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for scheme in BNBScheme.allCases {
            for doubleQuant in [true, false] {
                var options = QuantizeOptions(scheme: .bnb(scheme))
                options.doubleQuant = doubleQuant
                #expect {
                    _ = try BNBQuantizer.quantize(try ModelInput.open(path: dir), to: dir + "/out", options: options)
                } throws: { error in
                    guard let e = (error as? PathError)?.underlying as? TranscodeError,
                          case .nonFiniteValue(let tensor, let index, let value) = e else { return false }
                    return tensor == "model.layers.0.self_attn.q_proj.weight" && index == 70 && value.isNaN && e.kind == .badValue
                }
                #expect(!FileSystem.exists(dir + "/out"))
            }
        }
        // Allowed: written, and read back (the NaN block's absmax and offset are NaN, as bitsandbytes makes them).
        for doubleQuant in [true, false] {
            var options = QuantizeOptions(scheme: .bnb(.nf4))
            options.allowNonFinite = true
            options.doubleQuant = doubleQuant
            options.force = true
            _ = try BNBQuantizer.quantize(try ModelInput.open(path: dir), to: dir + "/out", options: options)
            let out = try HFModelDirectory(path: dir + "/out")
            let layout = try BNBCheckpointLayout(source: CheckpointTensorSource(out.weights), config: out.config)
            #expect(layout.fourBitWeights.count == 1)
        }
    }

    @Test func int8RefusesValuesBeyondFloat16() throws {
        var q = BNBTest.values(4 * 16, seed: 2)
        q[5] = 70000
        let dir = try BNBTest.modelDirectory([("model.layers.0.mlp.up_proj.weight", [4, 16], q)])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect {
            _ = try BNBQuantizer.quantize(try ModelInput.open(path: dir), to: dir + "/out", options: QuantizeOptions(scheme: .bnb(.int8)))
        } throws: { ($0 as? any ClassifiedError)?.kind == .badValue && "\($0)".contains("model.layers.0.mlp.up_proj.weight") }
        var options = QuantizeOptions(scheme: .bnb(.int8))
        options.allowNonFinite = true
        _ = try BNBQuantizer.quantize(try ModelInput.open(path: dir), to: dir + "/out", options: options)
        // The overflowing row stores zeros with an infinite scale, as bitsandbytes does.
        let t = try BNBTest.tensors(dir + "/out/model.safetensors")
        #expect(t["model.layers.0.mlp.up_proj.weight"]?.bytes.prefix(16).allSatisfy { $0 == 0 } == true)
        #expect(BNBTest.floats(t["model.layers.0.mlp.up_proj.SCB"]?.bytes ?? [], dtype: .f32).first == .infinity)
    }

    @Test func inputsThatCannotBeQuantized() throws {
        let out = Self.outputPath("bad")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        // GGUF: the bitsandbytes path needs an HF directory.
        let gguf = try ModelInput.open(path: Fixtures.path("vectors/fixtures/tiny-f16.gguf"))
        #expect { _ = try BNBQuantizer.quantize(gguf, to: out, options: QuantizeOptions(scheme: .bnb(.nf4))) }
            throws: { ($0 as? any ClassifiedError)?.kind == .unsupported }
        // A GGUF scheme is not this quantizer's.
        let hf = try ModelInput.open(path: Fixtures.path("vectors/tiny-llama"))
        #expect { _ = try BNBQuantizer.quantize(hf, to: out, options: QuantizeOptions(scheme: .ggml(.Q4_K_M))) }
            throws: { ($0 as? any ClassifiedError)?.kind == .usage }
        // An invalid block size.
        var options = QuantizeOptions(scheme: .bnb(.nf4))
        options.blockSize = 48
        #expect { _ = try BNBQuantizer.quantize(hf, to: out, options: options) } throws: { ($0 as? any ClassifiedError)?.kind == .usage }
        // Nothing to quantize.
        let dir = try BNBTest.modelDirectory([("model.embed_tokens.weight", [4, 8], BNBTest.values(32, seed: 3))])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect { _ = try BNBQuantizer.quantize(try ModelInput.open(path: dir), to: out, options: QuantizeOptions(scheme: .bnb(.nf4))) }
            throws: { ($0 as? any ClassifiedError)?.kind == .unsupported }
        // Another quantization method.
        let gptq = try BNBTest.modelDirectory([("model.layers.0.mlp.up_proj.weight", [4, 64], BNBTest.values(256, seed: 4))],
                                               extraConfig: #", "quantization_config": {"quant_method": "gptq"}"#)
        defer { try? FileManager.default.removeItem(atPath: gptq) }
        #expect { _ = try BNBQuantizer.quantize(try ModelInput.open(path: gptq), to: out, options: QuantizeOptions(scheme: .bnb(.nf4))) }
            throws: { ($0 as? any ClassifiedError)?.kind == .unsupported && "\($0)".contains("gptq") }
        #expect(!FileSystem.exists(out))
    }

    @Test func safetensorsFileInsideADirectoryIsItsDirectory() throws {
        let out = Self.outputPath("st")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        var options = QuantizeOptions(scheme: .bnb(.nf4))
        options.computeDType = .f32
        _ = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path("tiny-llama-spm/model.safetensors")), to: out, options: options)
        #expect(try BNBTest.read(out + "/model.safetensors") == BNBTest.read(Fixtures.path("golden/tiny-llama-spm-nf4/model.safetensors")))
    }

    @Test func existingOutputNeedsForce() throws {
        let out = Self.outputPath("exists")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: out + "/marker"))
        let input = try ModelInput.open(path: Fixtures.path("vectors/tiny-llama"))
        var options = QuantizeOptions(scheme: .bnb(.int8))
        #expect { _ = try BNBQuantizer.quantize(input, to: out, options: options) } throws: { ($0 as? any ClassifiedError)?.kind == .cannotWrite }
        #expect(FileSystem.exists(out + "/marker"))
        options.force = true
        _ = try BNBQuantizer.quantize(input, to: out, options: options)
        #expect(!FileSystem.exists(out + "/marker"))
        #expect(try BNBTest.read(out + "/model.safetensors") == BNBTest.read(Fixtures.path("vectors/fixtures/tiny-llama-int8/model.safetensors")))
    }

    // MARK: Dequantize

    /// NF4 + double quant → f32 equals bitsandbytes' `dequantize_4bit(...).float()` bit for bit
    /// (the stored offset is used, so nothing depends on a reduction order here).
    @Test func dequantizedNF4EqualsBitsandbytes() throws {
        let out = Self.outputPath("dq")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        let report = try BNBDequantizer.dequantize(try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm-nf4")), to: out,
                                                   outType: .f32, options: QuantizeOptions(scheme: .bnb(.nf4)))
        let ours = try BNBTest.tensors(out + "/model.safetensors")
        let golden = try BNBTest.tensors(Fixtures.path("golden/tiny-llama-spm-nf4.dequant_f32.safetensors"))
        #expect(golden.count == 14)
        for (name, g) in golden {
            let o = try #require(ours[name])
            #expect(o.dtype == .f32 && o.shape == g.shape, "\(name)")
            #expect(o.bytes == g.bytes, "\(name): \(BNBTest.difference(o.bytes, g.bytes))")
        }
        // Plain tensors are the original bf16 values, widened.
        let original = try BNBTest.tensors(Fixtures.path("tiny-llama-spm/model.safetensors"))
        for (name, t) in original where golden[name] == nil {
            #expect(ours[name]?.bytes == BNBTest.littleEndian(BNBTest.floats(t.bytes, dtype: t.dtype)), "\(name)")
        }
        #expect(ours.count == original.count)
        #expect(report.totals["F32"]?.tensorCount == 21)
        // config.json: the original's keys, dtype float32, no quantization_config.
        let config = try HFConfig(path: out + "/config.json")
        #expect(config.quantizationConfig == nil)
        #expect(try config.torchDType == .f32)
        #expect(try BNBTest.read(out + "/generation_config.json") == BNBTest.read(Fixtures.path("tiny-llama-spm/generation_config.json")))
    }

    /// FP4 and int8 against the sha256 bitsandbytes' dequantization has in `<golden>.dequant.json`.
    @Test(arguments: ["fp4", "int8", "nf4"])
    func dequantizedValuesMatchTheGoldenHashes(kind: String) throws {
        let out = Self.outputPath("dq-" + kind)
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        _ = try BNBDequantizer.dequantize(try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm-\(kind)")), to: out,
                                          outType: .f32, options: QuantizeOptions(scheme: .bnb(.nf4)))
        let ours = try BNBTest.tensors(out + "/model.safetensors")
        let json = try JSONSerialization.jsonObject(with: Data(Fixtures.data("golden/tiny-llama-spm-\(kind).dequant.json"))) as? [String: Any]
        let tensors = try #require(json?["tensors"] as? [String: [String: Any]])
        #expect(tensors.count == 14)
        for (name, expected) in tensors {
            let o = try #require(ours[name])
            #expect(o.shape == expected["shape"] as? [Int], "\(name)")
            #expect(TestSHA256.hex(o.bytes) == expected["sha256_f32le"] as? String, "\(name)")
            let first8 = (expected["first8"] as? [Double])?.map { Float($0) }
            #expect(Array(BNBTest.floats(o.bytes, dtype: .f32).prefix(8)) == first8, "\(name)")
        }
    }

    @Test func dequantizeKeepsTheRecordedDTypeByDefault() throws {
        let out = Self.outputPath("dq-default")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        _ = try BNBDequantizer.dequantize(try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm-nf4")), to: out,
                                          outType: nil, options: QuantizeOptions(scheme: .bnb(.nf4)))
        let ours = try BNBTest.tensors(out + "/model.safetensors")
        let golden = try BNBTest.tensors(Fixtures.path("golden/tiny-llama-spm-nf4.dequant_f32.safetensors"))
        let original = try BNBTest.tensors(Fixtures.path("tiny-llama-spm/model.safetensors"))
        #expect(ours.values.allSatisfy { $0.dtype == .bf16 })
        for (name, g) in golden {
            // bitsandbytes' values are bf16 already, so the bf16 file holds them exactly.
            #expect(BNBTest.floats(ours[name]?.bytes ?? [], dtype: .bf16) == BNBTest.floats(g.bytes, dtype: .f32), "\(name)")
        }
        for (name, t) in original where golden[name] == nil { #expect(ours[name]?.bytes == t.bytes, "\(name)") }
        // The round trip through our own NF4 output gives the same values as through transformers'.
        let config = String(decoding: try BNBTest.read(out + "/config.json"), as: UTF8.self)
        #expect(config == String(decoding: try BNBTest.read(Fixtures.path("tiny-llama-spm/config.json")), as: UTF8.self))
    }

    @Test func dequantizeRefusesPlainAndMalformedModels() throws {
        let out = Self.outputPath("dq-bad")
        defer { try? FileManager.default.removeItem(atPath: FileSystem.directoryName(out)) }
        let plain = try ModelInput.open(path: Fixtures.path("vectors/tiny-llama"))
        #expect { _ = try BNBDequantizer.dequantize(plain, to: out, outType: .f32, options: QuantizeOptions(scheme: .bnb(.nf4))) }
            throws: { ($0 as? any ClassifiedError)?.kind == .usage }

        // Copy the NF4 golden without one absmax.
        let golden = try BNBTest.tensors(Fixtures.path("golden/tiny-llama-spm-nf4/model.safetensors"))
        let dir = Fixtures.temporaryDirectory("wconv-bnb-broken")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Fixtures.path("golden/tiny-llama-spm-nf4/config.json"), toPath: dir + "/config.json")
        let missing = "model.layers.1.mlp.up_proj.weight.absmax"
        let bytes = try SafetensorsWriter.serialize(golden.filter { $0.key != missing }.map {
            (SafetensorsTensorSpec(name: $0.key, dtype: $0.value.dtype, shape: $0.value.shape), $0.value.bytes)
        }, metadata: [("format", "pt")])
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        #expect {
            _ = try BNBDequantizer.dequantize(try ModelInput.open(path: dir), to: out, outType: .f32, options: QuantizeOptions(scheme: .bnb(.nf4)))
        } throws: { error in
            (error as? any ClassifiedError)?.kind == .malformedInput && "\(error)".contains(missing)
        }
        #expect(!FileSystem.exists(out))
    }
}
