import Finetune
import Formats
import Foundation
import Pipeline
import TensorCore
import Testing
import TestSupport
import Verify

/// qlora-merge against the references: PEFT's merge_and_unload on f32 bases, bitsandbytes'
/// dequantization + delta on NF4/int8 bases, llama.cpp's converter for GGUF outputs, PEFT's
/// base + adapter logits for the merged model.
@Suite struct MergeTests {
    static let spmAdapter = "golden/lora/tiny-llama-spm-lora"

    /// Every tensor of a safetensors file (or directory) in float32.
    static func tensors(_ path: String) throws -> [String: [Float]] {
        let input = try MergeInput(path: path)
        var out: [String: [Float]] = [:]
        for t in input.tensors where t.isFloat { out[t.name] = try input.values(of: t, threads: 2) }
        return out
    }

    static func goldenTensors(_ rel: String) throws -> [String: [Float]] {
        let file = try SafetensorsFile(path: Fixtures.path(rel))
        var out: [String: [Float]] = [:]
        for t in file.tensors {
            var v = [Float](repeating: 0, count: t.elementCount)
            v.withUnsafeMutableBufferPointer { DenseFloat.decode(file.bytes(of: t), dtype: t.dtype, into: $0) }
            out[t.name] = v
        }
        return out
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    static func merge(_ base: String, _ adapter: String, outType: DType? = .f32, gguf: Bool = false,
                      configure: (inout MergeOptions) -> Void = { _ in }) throws -> (String, MergeReport) {
        var options = MergeOptions()
        options.outType = outType
        options.threads = 2
        configure(&options)
        let out = Fixtures.temporaryDirectory() + (gguf ? "/merged.gguf" : "/merged")
        let report = try LoRAMerge.merge(base: Fixtures.path(base), adapter: Fixtures.path(adapter), output: out, options: options)
        return (out, report)
    }

    @Test(arguments: [("tiny-llama-spm", "tiny-llama-spm-lora"), ("tiny-llama-spm", "tiny-llama-spm-lora-patterns"),
                      ("tiny-llama-bpe", "tiny-llama-bpe-lora")])
    func f32BaseEqualsPEFTMergeAndUnload(base: String, adapter: String) throws {
        let (out, report) = try Self.merge(base, "golden/lora/\(adapter)")
        let merged = try Self.tensors(out)
        let golden = try Self.goldenTensors("golden/lora/\(adapter).merged_f32.safetensors")
        let original = try Self.tensors(Fixtures.path(base))
        #expect(report.mergedModules == golden.count)
        for (name, values) in merged {
            let want = golden[name] ?? original[name] ?? []
            #expect(values.count == want.count, "\(name)")
            let d = Self.maxDifference(values, want)
            #expect(d <= 1e-6, "\(name): max |ΔW| \(d)")
        }
        // f32 output of a bf16/f16 base: nothing is lost, so the merged model is base + adapter.
        #expect(report.verification?.meanKLD == 0)
        #expect(report.tensors.allSatisfy { $0.outputError == 0 && $0.deltaNorm > 0 })
    }

    @Test(arguments: ["nf4", "int8"])
    func quantizedBaseEqualsDequantizePlusDelta(kind: String) throws {
        let (out, report) = try Self.merge("golden/tiny-llama-spm-\(kind)", Self.spmAdapter)
        let merged = try Self.tensors(out)
        let golden = try Self.goldenTensors("golden/lora/tiny-llama-spm-lora.\(kind)_merged_f32.safetensors")
        #expect(golden.count == 14)
        for (name, want) in golden {
            let d = Self.maxDifference(merged[name] ?? [], want)
            #expect(d <= 1e-6, "\(name): max |ΔW| \(d)")
        }
        #expect(report.warnings.contains { $0.contains("dequantized base") })
        #expect(report.verification?.meanKLD == 0)
        // The output has no quantization_config.
        let config = try JSONParser.parse(try FileSystem.readFile(out + "/config.json"))
        #expect(config["quantization_config"] == nil && config["dtype"]?.stringValue == "float32")
    }

    @Test func mergedModelGivesPEFTAdapterLogits() throws {
        let (out, _) = try Self.merge("tiny-llama-spm", Self.spmAdapter) { $0.verify = false }
        let input = try MergeInput(path: out)
        let model = try LlamaModel(config: try #require(input.config), weights: try MergeWeightSource(input: input, adapter: nil, threads: 2), threadCount: 2)
        let tokens = try JSONParser.parse(try Fixtures.data("golden/tiny-llama-spm.tokens.json"))["tokens"]?.arrayValue?.compactMap(\.intValue) ?? []
        let logits = try model.logits(for: tokens)
        let golden = try NPYArray(contentsOf: Fixtures.path("golden/lora/tiny-llama-spm-lora.adapter_logits_f32.npy"))
        #expect(golden.floats().count == logits.count)
        #expect(Self.maxDifference(logits, golden.floats()) <= 1e-4)
        // The same through base + adapter applied while loading.
        let base = try MergeInput(path: Fixtures.path("tiny-llama-spm"))
        let adapter = try PEFTAdapter(directory: Fixtures.path(Self.spmAdapter))
        let withAdapter = try LlamaModel(config: try #require(base.config), weights: try MergeWeightSource(input: base, adapter: adapter, threads: 2), threadCount: 2)
        #expect(Self.maxDifference(try withAdapter.logits(for: tokens), golden.floats()) <= 1e-4)
    }

    /// A zero adapter changes nothing, so HF → GGUF through a merge is `wconv convert`, i.e.
    /// llama.cpp's converter byte for byte (tensor order, types, Q/K permutation, rope_freqs, metadata).
    @Test(arguments: [("tiny-llama-spm", "f16"), ("tiny-llama-spm", "f32"), ("tiny-llama-bpe", "bf16")])
    func zeroAdapterGGUFEqualsConverter(base: String, outType: String) throws {
        let adapter = try Self.zeroAdapter(like: "golden/lora/\(base)-lora")
        var options = MergeOptions()
        options.outType = DType(rawValue: outType.uppercased())
        options.verify = false
        let out = Fixtures.temporaryDirectory() + "/z.gguf"
        _ = try LoRAMerge.merge(base: Fixtures.path(base), adapter: adapter, output: out, options: options)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(bytes == Data(try Fixtures.data("golden/\(base).\(outType).gguf")))
    }

    /// An adapter with the same modules and every B zero.
    static func zeroAdapter(like source: String) throws -> String {
        let adapter = try PEFTAdapter(directory: Fixtures.path(source))
        let entries = try adapter.modules.map { m in
            var mats = try adapter.matrices(of: m)
            mats.b = [Float](repeating: 0, count: mats.b.count)
            return PEFTAdapterWriter.Entry(module: m, matrices: mats)
        }
        let out = Fixtures.temporaryDirectory() + "/zero"
        try PEFTAdapterWriter.write(config: adapter.config, entries: entries, to: out, force: false)
        return out
    }

    /// A GGUF base: values read with attn_q/attn_k un-permuted, the delta added in HF order, and
    /// the rows permuted back when written; reading the output back gives PEFT's merge.
    @Test func ggufBaseEqualsPEFTMerge() throws {
        let (out, report) = try Self.merge("golden/tiny-llama-spm.f32.gguf", Self.spmAdapter, gguf: true)
        #expect(report.types["F32"]?.tensors == 21)
        let merged = try Self.tensors(out)
        let golden = try Self.goldenTensors("golden/lora/tiny-llama-spm-lora.merged_f32.safetensors")
        for (name, want) in golden {
            let d = Self.maxDifference(merged[name] ?? [], want)
            #expect(d <= 1e-6, "\(name): \(d)")
        }
        #expect(report.verification?.meanKLD == 0)
        // The metadata is the base's, with the file type of the output.
        let file = try GGUFFile(path: out)
        let base = try GGUFFile(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        #expect(file.metadata.keys == base.metadata.keys)
        #expect(file.tensors.map(\.name) == base.tensors.map(\.name))
    }

    @Test func quantizedGGUFBaseAndRequantizedGGUFOutput() throws {
        // A Q8_0 base: the converter's f32 GGUF requantized through a zero-adapter merge.
        var zero = MergeOptions()
        zero.requantize = .ggml(.Q8_0)
        zero.verify = false
        let q8 = Fixtures.temporaryDirectory() + "/base.q8_0.gguf"
        _ = try LoRAMerge.merge(base: Fixtures.path("golden/tiny-llama-spm.f32.gguf"), adapter: try Self.zeroAdapter(like: Self.spmAdapter),
                                output: q8, options: zero)
        #expect(try MergeInput(path: q8).isQuantized)
        var options = MergeOptions()
        options.requantize = .ggml(.Q8_0)
        options.threads = 2
        let out = Fixtures.temporaryDirectory() + "/merged.gguf"
        let report = try LoRAMerge.merge(base: q8, adapter: Fixtures.path(Self.spmAdapter), output: out, options: options)
        #expect(report.types["Q8_0"] != nil && report.types["F32"] != nil)
        // Q8_0 output error is small next to the delta; the verification sees a small KLD.
        #expect(report.tensors.count == 14)
        #expect(report.tensors.allSatisfy { $0.outputError > 0 && $0.outputError < $0.deltaNorm })
        let v = try #require(report.verification)
        #expect(v.meanKLD < 1e-2 && v.top1Agreement > 0.8)
        let file = try GGUFFile(path: out)
        #expect(file.metadata[GGUFKeys.General.fileType]?.intValue == 7)
    }

    /// `--requantize TYPE` (single types and llama-quantize's mixes) equals merging into an f32
    /// GGUF and quantizing that with `wconv quantize --type TYPE` (which equals llama-quantize,
    /// see GGUFQuantizeTests): the same tensor order, per-tensor types, metadata and blocks. The
    /// report's output error is that of each tensor's real type.
    @Test(arguments: [("tiny-llama-256", GGMLFileType.Q4_K_M), ("tiny-llama-256", .Q5_K_M), ("tiny-llama-256", .Q3_K_M),
                      ("tiny-llama-256", .Q6_K), ("tiny-llama-256", .Q4_0), ("tiny-llama-spm", .Q4_K_M), ("tiny-llama-spm", .Q8_0)])
    func requantizeEqualsMergeThenQuantize(base: String, type: GGMLFileType) throws {
        let adapter = base == "tiny-llama-spm" ? Fixtures.path(Self.spmAdapter) : try Self.randomAdapter256()
        var options = MergeOptions()
        options.threads = 2
        options.verify = false
        options.requantize = .ggml(type)
        let dir = Fixtures.temporaryDirectory()
        let report = try LoRAMerge.merge(base: Fixtures.path(base), adapter: adapter, output: dir + "/q.gguf", options: options)
        var dense = options
        dense.requantize = nil
        dense.outType = .f32
        _ = try LoRAMerge.merge(base: Fixtures.path(base), adapter: adapter, output: dir + "/f32.gguf", options: dense)
        var quantize = QuantizeOptions(scheme: .ggml(type))
        quantize.threads = 2
        _ = try GGUFQuantizer.quantize(try ModelInput.open(path: dir + "/f32.gguf"), to: dir + "/ref.gguf", options: quantize)
        let ours = try Data(contentsOf: URL(fileURLWithPath: dir + "/q.gguf"))
        #expect(ours == (try Data(contentsOf: URL(fileURLWithPath: dir + "/ref.gguf"))))

        // ‖W − dequant(q(W))‖ per adapted tensor, recomputed from the two files.
        let merged = try MergeInput(path: dir + "/f32.gguf"), quantized = try MergeInput(path: dir + "/q.gguf")
        #expect(report.tensors.count == 7 * (base == "tiny-llama-spm" ? 2 : 1))
        var types = Set<String>()
        for stat in report.tensors {
            let w = try merged.values(of: try #require(merged.tensor(named: stat.name)), threads: 2)
            let qt = try #require(quantized.tensor(named: stat.name))
            types.insert(qt.storage.description)
            #expect(stat.outputType == qt.storage.description, "\(stat.name)")
            let q = try quantized.values(of: qt, threads: 2)
            let error = zip(w, q).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            #expect(abs(error - stat.outputError) <= 1e-9 + 1e-6 * error, "\(stat.name)")
            #expect(stat.outputError > 0)
        }
        // The mixes give some of the adapted tensors a wider type than the default.
        if type == .Q4_K_M || type == .Q3_K_M, base == "tiny-llama-256" { #expect(types.count > 1, "\(types)") }
    }

    /// A rank-4 adapter with random A and B on all seven projections of tiny-llama-256 (rows of
    /// 256, so the k-quant mixes apply without fallbacks).
    static func randomAdapter256() throws -> String {
        var rng = SplitMix64(seed: 11)
        let r = 4
        let shapes: [(String, Int, Int)] = [("self_attn.q_proj", 256, 256), ("self_attn.k_proj", 256, 64), ("self_attn.v_proj", 256, 64),
                                            ("self_attn.o_proj", 256, 256), ("mlp.gate_proj", 256, 256), ("mlp.up_proj", 256, 256),
                                            ("mlp.down_proj", 256, 256)]
        var tensors: [(String, [Int], [Float])] = []
        for (module, inFeatures, outFeatures) in shapes {
            let prefix = "base_model.model.model.layers.0.\(module)"
            tensors.append((prefix + ".lora_A.weight", [r, inFeatures], (0 ..< r * inFeatures).map { _ in 0.05 * rng.nextFloat() }))
            tensors.append((prefix + ".lora_B.weight", [outFeatures, r], (0 ..< outFeatures * r).map { _ in 0.05 * rng.nextFloat() }))
        }
        let config = #"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}"#
        return try AdapterPEFTTests.adapterDirectory(config: config, tensors: tensors)
    }

    /// --requantize nf4 / int8 with a zero adapter is `wconv quantize`: the transformers +
    /// bitsandbytes checkpoint byte for byte.
    @Test(arguments: [("nf4", BNBScheme.nf4), ("int8", .int8)])
    func zeroAdapterRequantizeEqualsBitsAndBytes(kind: String, scheme: BNBScheme) throws {
        let adapter = try Self.zeroAdapter(like: Self.spmAdapter)
        var options = MergeOptions()
        options.requantize = .bitsAndBytes(scheme)
        options.outType = .bf16
        options.verify = false
        let out = Fixtures.temporaryDirectory() + "/q"
        let report = try LoRAMerge.merge(base: Fixtures.path("tiny-llama-spm"), adapter: adapter, output: out, options: options)
        #expect(report.tensors.count == 14)
        let golden = "golden/tiny-llama-spm-\(kind)"
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")) == Data(try Fixtures.data(golden + "/model.safetensors")))
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/config.json")) == Data(try Fixtures.data(golden + "/config.json")))
    }

    @Test func mergeIntoOriginalUsesTheUnquantizedWeights() throws {
        let (out, report) = try Self.merge("golden/tiny-llama-spm-nf4", Self.spmAdapter) {
            $0.mergeInto = .original
            $0.originalBase = Fixtures.path("tiny-llama-spm")
        }
        // original + delta = PEFT's merge on the f32 original.
        let merged = try Self.tensors(out)
        for (name, want) in try Self.goldenTensors("golden/lora/tiny-llama-spm-lora.merged_f32.safetensors") {
            #expect(Self.maxDifference(merged[name] ?? [], want) <= 1e-6, "\(name)")
        }
        #expect(report.tensors.allSatisfy { ($0.baseQuantizationError ?? 0) > 0 })
        // It is not base + adapter: the NF4 error of the tiny random weights shows.
        #expect((report.verification?.meanKLD ?? 0) > 1e-4)
    }

    @Test func refusals() throws {
        #expect(throws: MergeError.needsOriginalBase) {
            _ = try Self.merge("golden/tiny-llama-spm-nf4", Self.spmAdapter) { $0.mergeInto = .original }
        }
        #expect(throws: MergeError.self) {
            _ = try Self.merge("tiny-llama-spm", Self.spmAdapter, gguf: true) { $0.requantize = .bitsAndBytes(.nf4) }
        }
        #expect(throws: MergeError.self) {
            _ = try Self.merge("golden/tiny-llama-spm.f32.gguf", Self.spmAdapter)  // GGUF base → HF directory
        }
        #expect(throws: (any Error).self) {
            _ = try Self.merge("golden/tiny-llama-spm-nf4", Self.spmAdapter) {
                $0.mergeInto = .original
                $0.originalBase = Fixtures.path("golden/tiny-llama-spm-int8")
            }
        }
        // An adapter module the base does not have.
        let dir = try AdapterPEFTTests.adapterDirectory(config: #"{"r": 2, "lora_alpha": 4}"#, tensors: [
            ("base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight", [2, 64], [Float](repeating: 0, count: 128)),
            ("base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight", [64, 2], [Float](repeating: 0, count: 128)),
        ])
        do {
            _ = try LoRAMerge.merge(base: Fixtures.path("tiny-llama-spm"), adapter: dir, output: Fixtures.temporaryDirectory() + "/x",
                                    options: MergeOptions())
            Issue.record("merged a module the base lacks")
        } catch let error as PathError {
            guard case .moduleNotInBase? = error.underlying as? AdapterError else { Issue.record("\(error)"); return }
        }
    }

    @Test func deltaKernelMatchesReference() {
        var rng = SplitMix64(seed: 7)
        for kind in [LoRAModule.Kind.linear, .embedding] {
            let (r, n, o) = (5, 37, 23)
            let m = LoRAModule(name: "m", kind: kind, rank: r, inFeatures: n, outFeatures: o, alpha: 3, scaling: 0.7)
            let mats = LoRAMatrices(a: (0 ..< r * n).map { _ in rng.nextFloat() }, b: (0 ..< o * r).map { _ in rng.nextFloat() })
            let w = (0 ..< n * o).map { _ in rng.nextFloat() }
            var fast = w, reference = w
            fast.withUnsafeMutableBufferPointer { LoRADelta.add(m, matrices: mats, to: $0) }
            LoRADelta.addReference(m, matrices: mats, to: &reference)
            #expect(Self.maxDifference(fast, reference) < 1e-5)
            // The norm without forming B·A equals the norm of the formed delta.
            var delta = [Float](repeating: 0, count: n * o)
            LoRADelta.addReference(m, matrices: mats, to: &delta)
            let direct = delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(LoRADelta.norm(m, matrices: mats) - direct) < 1e-4 * direct)
        }
    }
}

