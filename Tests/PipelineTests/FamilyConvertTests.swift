import Foundation
import Testing
import Formats
import Pipeline
import TensorCore
import TestSupport

/// HF → GGUF for the model families beyond LLaMA, each checked byte for byte against llama.cpp's
/// converter output (testdata/golden/families, made by testdata/scripts/make_family_fixtures.py;
/// testdata/README.md §8 says how, including the forced `tokenizer.ggml.pre` names).
@Suite struct FamilyConvertTests {
    struct Family: CustomStringConvertible, Sendable {
        let name: String
        let vocabPre: String?
        var description: String { name }
    }

    static let families = [
        Family(name: "mistral", vocabPre: nil),
        Family(name: "qwen2", vocabPre: "qwen2"),
        Family(name: "gpt2", vocabPre: "gpt-2"),
        Family(name: "phi-1_5", vocabPre: "phi-2"),
        Family(name: "falcon-7b", vocabPre: "falcon"),
        Family(name: "falcon-40b", vocabPre: "falcon"),
        Family(name: "mpt", vocabPre: "mpt"),
        Family(name: "qwen-7b", vocabPre: "qwen2"),
        Family(name: "baichuan2-7b", vocabPre: nil),
        Family(name: "baichuan2-13b", vocabPre: nil),
    ]

    /// Every family at every `--outtype` the goldens have: f32, and f16 / bf16 (the converter keeps
    /// norms, 1-D tensors and GPT-2's position embeddings F32).
    @Test(arguments: families, [ConvertOptions.OutType.f32, .f16, .bf16])
    func hfToGGUFEqualsLlamaCppConverterByteForByte(family: Family, outType: ConvertOptions.OutType) throws {
        let dir = try HFModelDirectory(path: Fixtures.path("families/\(family.name)"))
        let out = Fixtures.temporaryDirectory() + "/\(family.name).gguf"
        var options = ConvertOptions()
        options.outType = outType
        options.vocabPre = family.vocabPre
        options.threads = 2
        try HFToGGUF.convert(dir, to: out, options: options)
        let goldenPath = Fixtures.path("golden/families/\(family.name).\(outType.rawValue).gguf")
        let ours = try Data(contentsOf: URL(fileURLWithPath: out))
        let golden = try Data(contentsOf: URL(fileURLWithPath: goldenPath))
        if ours != golden {
            // Say what differs before failing: keys first, then tensors.
            let a = try GGUFFile(path: out), b = try GGUFFile(path: goldenPath)
            #expect(a.metadata.keys == b.metadata.keys)
            for kv in b.metadata.entries { #expect(a.metadata[kv.key] == kv.value, "\(kv.key)") }
            #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
            for t in b.tensors {
                if let mine = a.tensor(named: t.name) {
                    #expect(mine.dimensions == t.dimensions, "\(t.name)")
                    #expect(Array(try a.bytes(of: mine)) == Array(try b.bytes(of: t)), "\(t.name)")
                }
            }
        }
        #expect(ours == golden)
    }

    @Test(arguments: ["persimmon", "opt"])
    func familiesWithoutALlamaCppArchitectureAreRefusedByName(name: String) throws {
        let dir = try HFModelDirectory(path: Fixtures.path("families/\(name)"))
        let out = Fixtures.temporaryDirectory() + "/\(name).gguf"
        do {
            try HFToGGUF.convert(dir, to: out, options: ConvertOptions())
            Issue.record("converted \(name) to GGUF")
        } catch {
            let message = "\(error)"
            #expect(message.contains(name == "opt" ? "OPT" : "Persimmon"), "\(message)")
            #expect(message.contains("safetensors"), "\(message)")
            #expect((error as? any ClassifiedError)?.kind == .unsupported)
        }
        #expect(!FileSystem.exists(out))
    }

    @Test func splitPartsAndRegroupingMoveTheRightRows() {
        // 2 KV groups of (2 query heads, k, v), head_dim 1: rows q0 q1 k0 v0 q2 q3 k1 v1.
        #expect(TensorLayoutChange.fusedQKVRowOrder(rows: 8, heads: 4, kvHeads: 2) == [0, 1, 4, 5, 2, 6, 3, 7])
        // One group (Falcon 7B) is the identity.
        #expect(TensorLayoutChange.fusedQKVRowOrder(rows: 12, heads: 4, kvHeads: 1) == Array(0 ..< 12))
        #expect(TensorLayoutChange.fusedQKVRowOrder(rows: 7, heads: 4, kvHeads: 2) == nil)
    }
}

/// The safetensors paths need no architecture description: bitsandbytes quantization and
/// dequantization run on a family llama.cpp has no name for (Persimmon) and on a class wconv has
/// never heard of.
@Suite struct UnknownArchitectureTests {
    /// tiny-llama-spm's weights under an architecture name no description covers.
    static func unknownArchitectureModel() throws -> String {
        let dir = Fixtures.temporaryDirectory("wconv-unknown-arch")
        let source = Fixtures.path("tiny-llama-spm")
        for name in try FileManager.default.contentsOfDirectory(atPath: source) where name != "config.json" {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: dir + "/" + name)
        }
        let config = try String(contentsOfFile: source + "/config.json", encoding: .utf8)
            .replacingOccurrences(of: "LlamaForCausalLM", with: "SomethingNewForCausalLM")
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        return dir
    }

    @Test(arguments: ["persimmon", "unknown"])
    func bitsandbytesQuantizeAndDequantizeNeedNoDescription(model: String) throws {
        let input = model == "unknown" ? try Self.unknownArchitectureModel() : Fixtures.path("families/\(model)")
        let hf = try HFModelDirectory(path: input)
        #expect(ArchitectureDescription.forHF(architecture: try #require(try hf.config.architecture)) == nil)

        let tmp = Fixtures.temporaryDirectory("wconv-unknown-arch-out")
        var options = QuantizeOptions(scheme: .bnb(.nf4))
        options.threads = 2
        let report = try BNBQuantizer.quantize(try ModelInput.open(path: input), to: tmp + "/nf4", options: options)
        #expect((report.totals["nf4"]?.tensorCount ?? 0) > 0)

        _ = try BNBDequantizer.dequantize(try ModelInput.open(path: tmp + "/nf4"), to: tmp + "/f32", outType: .f32, options: options)
        let original = try SafetensorsCheckpoint(path: input)
        let restored = try SafetensorsCheckpoint(path: tmp + "/f32")
        #expect(restored.tensors.map(\.name).sorted() == original.tensors.map(\.name).sorted())
        for t in original.tensors {
            let r = try #require(restored.tensor(named: t.name))
            #expect(r.shape == t.shape, "\(t.name)")
            #expect(r.dtype == .f32, "\(t.name)")
        }
        let config = try HFConfig(path: tmp + "/f32/config.json")
        #expect(try config.architecture == hf.config.architecture)
    }

    @Test func ggufOutputNamesWhatIsMissing() throws {
        let dir = try HFModelDirectory(path: try Self.unknownArchitectureModel())
        #expect {
            try HFToGGUF.convert(dir, to: Fixtures.temporaryDirectory() + "/x.gguf", options: ConvertOptions())
        } throws: { error in
            "\(error)".contains("SomethingNewForCausalLM") && (error as? any ClassifiedError)?.kind == .unsupported
        }
    }
}

/// Which weights `quantize --nf4` turns into 4-bit ones, per family: the Linear weights that
/// transformers 5.24.0 + bitsandbytes 0.50.2 replace with `Linear4bit` when loading the fixture
/// with `BitsAndBytesConfig(load_in_4bit=True)` on the CPU (listed by module name from that run).
@Suite struct FamilyBNBTests {
    static let transformersQuantizes: [String: [String]] = [
        "opt": ["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj", "fc1", "fc2"].map { "model.decoder.layers.{bid}.\($0)" },
        "mpt": ["attn.Wqkv", "attn.out_proj", "ffn.up_proj", "ffn.down_proj"].map { "transformer.blocks.{bid}.\($0)" },
        "phi-1_5": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.dense", "mlp.fc1", "mlp.fc2"].map { "model.layers.{bid}.\($0)" },
        "persimmon": ["self_attn.query_key_value", "self_attn.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"].map { "model.layers.{bid}.\($0)" },
        // Conv1D layers, quantized transposed (testdata/golden/families/bnb-manifest.json lists them).
        "gpt2": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"].map { "transformer.h.{bid}.\($0)" },
        // Remote code (no transformers run possible offline): every nn.Linear of modeling_qwen.py's
        // QWenBlock; lm_head is left out as transformers leaves the output head.
        "qwen-7b": ["attn.c_attn", "attn.c_proj", "mlp.w1", "mlp.w2", "mlp.c_proj"].map { "transformer.h.{bid}.\($0)" },
        // transformers quantizes no Falcon layer (FalconLinear is not nn.Linear by type).
        "falcon-7b": [],
    ]

    @Test(arguments: ["opt", "mpt", "phi-1_5", "persimmon", "gpt2", "qwen-7b", "falcon-7b"])
    func quantizesTheWeightsTransformersQuantizes(family: String) throws {
        let input = try HFModelDirectory(path: Fixtures.path("families/\(family)"))
        let expected = Set(try #require(Self.transformersQuantizes[family]).flatMap { m in
            (0 ..< 2).map { m.replacingOccurrences(of: "{bid}", with: String($0)) + ".weight" }
        })
        let architecture = try input.config.architecture
        let chosen = Set(input.tensors.filter {
            BNBWriteLayout.isQuantizedLinear(name: $0.name, shape: $0.shape, dtype: $0.dtype, architecture: architecture)
        }.map(\.name))
        #expect(chosen == expected)
        if expected.isEmpty { return }

        let out = Fixtures.temporaryDirectory("wconv-family-bnb") + "/nf4"
        var options = QuantizeOptions(scheme: .bnb(.nf4))
        options.threads = 2
        let report = try BNBQuantizer.quantize(try ModelInput.open(path: input.path), to: out, options: options)
        #expect(report.totals["nf4"]?.tensorCount == expected.count)
    }

    /// GPT-2 quantized by transformers 5.24 + bitsandbytes 0.50.2 itself (testdata/scripts/
    /// make_family_bnb_goldens.py): the Conv1D weights transposed to [out, in] before quantizing,
    /// quant_state shapes [out, in], int8 weights [out, in]; equal byte for byte.
    @Test(arguments: [BNBScheme.nf4, .int8])
    func gpt2IsByteIdenticalToTransformers(scheme: BNBScheme) throws {
        let out = Fixtures.temporaryDirectory("wconv-family-bnb") + "/gpt2"
        var options = QuantizeOptions(scheme: .bnb(scheme))
        options.threads = 2
        options.computeDType = .f32
        _ = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path("families/gpt2")), to: out, options: options)
        let golden = Fixtures.path("golden/families/gpt2-\(scheme.rawValue)")
        for name in ["model.safetensors", "config.json", "generation_config.json"] {
            let ours = try BNBTest.read(out + "/" + name), theirs = try BNBTest.read(golden + "/" + name)
            #expect(ours == theirs, "\(name): \(BNBTest.difference(ours, theirs))")
        }
    }
}

/// GGUF → HF for the families beyond LLaMA.
@Suite struct FamilyGGUFToHFTests {
    @Test func qwen2GoldenGivesBackTheCheckpointsTensors() throws {
        // llama.cpp's f32 GGUF → HF must give back the fixture's f16 tensors exactly (widened to f32).
        let gguf = try GGUFModel.open(path: Fixtures.path("golden/families/qwen2.f32.gguf"))
        let out = Fixtures.temporaryDirectory() + "/hf"
        var options = ConvertOptions()
        options.threads = 2
        try GGUFToHF.convert(gguf, to: out, options: options)
        let original = try SafetensorsCheckpoint(path: Fixtures.path("families/qwen2"))
        let restored = try SafetensorsCheckpoint(path: out)
        #expect(Set(restored.tensors.map(\.name)) == Set(original.tensors.map(\.name)))
        for t in original.tensors {
            let r = try #require(restored.tensor(named: t.name))
            #expect(r.shape == t.shape, "\(t.name)")
            var a = [Float](repeating: 0, count: t.elementCount), b = a
            a.withUnsafeMutableBufferPointer { DenseFloat.decode(original.bytes(of: t), dtype: t.dtype, into: $0) }
            b.withUnsafeMutableBufferPointer { DenseFloat.decode(restored.bytes(of: r), dtype: r.dtype, into: $0) }
            #expect(a == b, "\(t.name)")
        }
        let config = try HFConfig(path: out + "/config.json")
        #expect(try config.architecture == "Qwen2ForCausalLM")
        #expect(try config.numKeyValueHeads == 2)
        #expect(try config.tieWordEmbeddings == false)

        // And back: the same GGUF tensors as the converter's.
        var back = ConvertOptions()
        back.outType = .f32
        back.vocabPre = "qwen2"
        back.threads = 2
        try HFToGGUF.convert(try HFModelDirectory(path: out), to: out + ".gguf", options: back)
        let a = try GGUFFile(path: out + ".gguf"), b = try GGUFFile(path: Fixtures.path("golden/families/qwen2.f32.gguf"))
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        for t in b.tensors {
            let mine = try #require(a.tensor(named: t.name))
            #expect(Array(try a.bytes(of: mine)) == Array(try b.bytes(of: t)), "\(t.name)")
        }
    }

    struct Family: CustomStringConvertible, Sendable {
        let name: String
        /// The fixture's dtype, so that the HF output can be compared byte for byte.
        let outType: ConvertOptions.OutType
        /// Pass the fixture's own config.json (`--config`): required for remote-code families.
        var reference = false
        let hfClass: String
        var description: String { name }
    }

    static let families = [
        Family(name: "mistral", outType: .f16, hfClass: "LlamaForCausalLM"),
        Family(name: "gpt2", outType: .f16, hfClass: "GPT2LMHeadModel"),
        Family(name: "phi-1_5", outType: .f16, hfClass: "PhiForCausalLM"),
        Family(name: "falcon-7b", outType: .f16, hfClass: "FalconForCausalLM"),
        Family(name: "falcon-40b", outType: .f16, hfClass: "FalconForCausalLM"),
        Family(name: "mpt", outType: .f16, hfClass: "MptForCausalLM"),
        Family(name: "qwen-7b", outType: .f32, reference: true, hfClass: "QWenLMHeadModel"),
        Family(name: "baichuan2-7b", outType: .f32, reference: true, hfClass: "BaichuanForCausalLM"),
        Family(name: "baichuan2-13b", outType: .f32, reference: true, hfClass: "BaichuanForCausalLM"),
    ]

    /// The converter's f32 GGUF back to HF in the fixture's dtype gives the fixture's
    /// model.safetensors byte for byte: names, dtypes, shapes and data, with GPT-2's Conv1D
    /// transposes, Falcon's QKV regrouping (both layouts), Baichuan's W_pack split and the Q/K
    /// permutations undone (the f16 → f32 widening is exact, so this direction is lossless).
    /// From the converter's f32 file, and from its f16 file for the F16 fixtures (also lossless there).
    static let cases: [(Family, ConvertOptions.OutType)] = families.map { ($0, .f32) } + families.filter { $0.outType == .f16 }.map { ($0, .f16) }

    @Test(arguments: cases)
    func goldenGGUFGivesBackTheCheckpointByteForByte(family: Family, from: ConvertOptions.OutType) throws {
        let gguf = try GGUFModel.open(path: Fixtures.path("golden/families/\(family.name).\(from.rawValue).gguf"))
        let out = Fixtures.temporaryDirectory() + "/hf"
        var options = ConvertOptions()
        options.threads = 2
        options.outType = family.outType
        if family.reference { options.hfConfig = Fixtures.path("families/\(family.name)/config.json") }
        _ = try GGUFToHF.convert(gguf, to: out, options: options)
        let ours = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        let original = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("families/\(family.name)/model.safetensors")))
        if ours != original {
            let a = try SafetensorsCheckpoint(path: out), b = try SafetensorsCheckpoint(path: Fixtures.path("families/\(family.name)"))
            #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
            for t in b.tensors {
                guard let mine = a.tensor(named: t.name) else { continue }
                #expect(mine.shape == t.shape, "\(t.name)")
                #expect(Array(a.bytes(of: mine)) == Array(b.bytes(of: t)), "\(t.name)")
            }
        }
        #expect(ours == original)
        let config = try HFConfig(path: out + "/config.json")
        #expect(try config.architecture == family.hfClass)
        #expect(try config.torchDType == family.outType.dtype)
    }

    @Test func mistralComesBackAsMistralWithItsConfig() throws {
        // The GGUF is `llama` with no window: without --config the class is LlamaForCausalLM
        // (full attention, as llama.cpp runs it); the original config restores the window.
        let gguf = try GGUFModel.open(path: Fixtures.path("golden/families/mistral.f32.gguf"))
        let out = Fixtures.temporaryDirectory() + "/hf"
        var options = ConvertOptions()
        options.threads = 2
        options.hfConfig = Fixtures.path("families/mistral/config.json")
        _ = try GGUFToHF.convert(gguf, to: out, options: options)
        let config = try HFConfig(path: out + "/config.json")
        #expect(try config.architecture == "MistralForCausalLM")
        #expect(config.object["sliding_window"]?.intValue == 8)
        #expect(config.object["dtype"]?.stringValue == "float32")
    }

    @Test(arguments: ["qwen-7b", "baichuan2-7b"])
    func remoteCodeFamiliesNeedTheirConfig(name: String) throws {
        let gguf = try GGUFModel.open(path: Fixtures.path("golden/families/\(name).f32.gguf"))
        let out = Fixtures.temporaryDirectory() + "/hf"
        #expect {
            try GGUFToHF.convert(gguf, to: out, options: ConvertOptions())
        } throws: { error in
            "\(error)".contains("--config") && (error as? any ClassifiedError)?.kind == .unsupported
        }
        #expect(!FileSystem.exists(out))
        // --dry-run refuses as the run would.
        #expect { try GGUFToHF.outputPlan(gguf, options: ConvertOptions()) } throws: { "\($0)".contains("--config") }
    }

    @Test func aConfigOfAnotherFamilyOrSizeIsRefused() throws {
        let gguf = try GGUFModel.open(path: Fixtures.path("golden/families/baichuan2-7b.f32.gguf"))
        var options = ConvertOptions()
        options.hfConfig = Fixtures.path("families/qwen-7b/config.json")
        #expect {
            try GGUFToHF.convert(gguf, to: Fixtures.temporaryDirectory() + "/hf", options: options)
        } throws: { error in
            "\(error)".contains("QWenLMHeadModel") && (error as? any ClassifiedError)?.kind == .badValue
        }
        // Same class, other width.
        let dir = Fixtures.temporaryDirectory()
        let text = try String(contentsOfFile: Fixtures.path("families/baichuan2-7b/config.json"), encoding: .utf8)
            .replacingOccurrences(of: "\"hidden_size\": 64", with: "\"hidden_size\": 128")
        try text.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        options.hfConfig = dir + "/config.json"
        #expect {
            try GGUFToHF.convert(gguf, to: Fixtures.temporaryDirectory() + "/hf", options: options)
        } throws: { error in
            "\(error)".contains("hidden_size") && (error as? any ClassifiedError)?.kind == .badValue
        }
    }
}
