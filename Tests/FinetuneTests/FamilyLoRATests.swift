@testable import Finetune
import Formats
import Pipeline
import TensorCore
import Testing
import TestSupport
import Verify

/// QLoRA on the other families: PEFT's target names per family, merges of PEFT adapters made on
/// every tiny family checkpoint (`testdata/golden/families-lora`, `make_family_adapters.py`).
@Suite struct FamilyLoRATests {
    static let families = ["qwen2", "mistral", "gpt2", "opt", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "persimmon",
                           "qwen-7b", "baichuan2-7b", "baichuan2-13b"]

    static func targetsGolden() throws -> JSONObject {
        guard let o = try JSONParser.parse(try Fixtures.data("golden/families-lora/targets.json")).objectValue else {
            throw Failure(.malformedInput, "targets.json is not an object")
        }
        return o
    }

    static func config(_ family: String) throws -> JSONObject {
        try HFModelDirectory(path: Fixtures.path("families/\(family)")).config.object
    }

    /// PEFT's default targets, its `all-linear` selection (leaf names) and the Conv1D layers it
    /// sets `fan_in_fan_out` for, as recorded by the fixture script, equal the family data.
    @Test(arguments: families)
    func targetNamesArePEFTs(family: String) throws {
        let golden = try #require(try Self.targetsGolden()[family]?.objectValue)
        let names = try #require(LoRATargetNames.forConfig(try Self.config(family)))
        let peftDefault = golden["peft_default"]?.arrayValue?.compactMap(\.stringValue)
        #expect(names.peftDefault == peftDefault)
        // all-linear as PEFT expanded it (transformers families), or the remote-code layout's leaves.
        let selected = (golden["all_linear"]?.arrayValue ?? golden["stated_targets"]?.arrayValue ?? []).compactMap(\.stringValue)
        let leaves = Set(selected.map { $0.split(separator: ".").last.map(String.init) ?? $0 })
        #expect(Set(names.allLinear) == leaves)
        #expect(names.allLinear.count == leaves.count)
        let conv1D = Set((golden["fan_in_fan_out_leaves"]?.arrayValue ?? []).compactMap(\.stringValue))
        #expect(names.conv1D == conv1D)
        #expect(try names.resolve(nil) == names.allLinear)
        #expect(try names.resolve("all-linear") == names.allLinear)
        #expect(try names.resolve(" q_proj , v_proj") == ["q_proj", "v_proj"])
        if let peftDefault { #expect(try names.resolve("peft-default") == peftDefault) } else {
            #expect(throws: Failure.self) { try names.resolve("peft-default") }
        }
    }

    /// A family's GGUF (llama.cpp's converter output) names the same targets as its config.json.
    @Test(arguments: families.filter { !["opt", "persimmon"].contains($0) })
    func ggufArchitectureNamesTheSameTargets(family: String) throws {
        guard case .gguf(let model) = try ModelInput.open(path: Fixtures.path("golden/families/\(family).f32.gguf")),
              let name = model.metadata[GGUFKeys.General.architecture]?.stringValue else {
            Issue.record("\(family): no GGUF architecture")
            return
        }
        let fromGGUF = try #require(LoRATargetNames.forGGUF(architecture: name), "\(name)")
        let fromConfig = try #require(LoRATargetNames.forConfig(try Self.config(family)))
        #expect(fromGGUF.modelTypes == fromConfig.modelTypes, "\(family): GGUF \(name)")
    }

    /// The layer index as PEFT finds it (for `layers_to_transform` and the merge report) in every layout.
    @Test func layerIndexOfEveryLayout() {
        #expect(PEFTAdapter.layerIndex(ofModule: "model.layers.3.self_attn.q_proj") == 3)
        #expect(PEFTAdapter.layerIndex(ofModule: "transformer.h.12.attn.c_attn") == 12)
        #expect(PEFTAdapter.layerIndex(ofModule: "transformer.blocks.0.ffn.up_proj") == 0)
        #expect(PEFTAdapter.layerIndex(ofModule: "model.decoder.layers.1.fc1") == 1)
        #expect(PEFTAdapter.layerIndex(ofModule: "model.layers.1.experts.0.w1") == 1)
        #expect(PEFTAdapter.layerIndex(ofModule: "lm_head") == nil)
        #expect(PEFTAdapter.layerIndex(ofModule: "h.0.attn.c_attn") == nil)
    }

    /// GGUF bases training does not read are refused by name: Baichuan 2's (its GGUF head is not the
    /// NormHead PEFT trains against) and architectures without a block description.
    @Test(arguments: ["baichuan", "bloom"])
    func trainingRefusesOtherGGUFBlocksByName(architecture: String) throws {
        #expect(throws: TrainingError.self) { try TrainingFamily.check(ggufArchitecture: architecture) }
        for trained in ["llama", "qwen2", "gpt2", "falcon", "mpt", "phi2", "qwen"] {
            #expect(throws: Never.self) { try TrainingFamily.check(ggufArchitecture: trained) }
        }
    }
}

/// qlora-merge on every family's HF base against PEFT's merge_and_unload (f32 bases) and
/// bitsandbytes' dequantization + delta (NF4 bases made by `wconv quantize --nf4`).
@Suite struct FamilyMergeTests {
    static let nf4Families = ["qwen2", "mistral", "opt", "phi-1_5", "mpt", "persimmon"]

    static func check(_ family: String, merged out: String, golden: String, report: MergeReport) throws -> Float {
        let merged = try MergeTests.tensors(out)
        let want = try MergeTests.goldenTensors("golden/families-lora/\(golden)")
        let original = try MergeTests.tensors(Fixtures.path("families/\(family)"))
        #expect(report.mergedModules == want.count)
        #expect(Set(report.tensors.map(\.name)) == Set(want.keys))
        var worst: Float = 0
        for (name, values) in merged {
            guard let expected = want[name] ?? original[name] else { Issue.record("\(family): \(name) not in the base"); continue }
            #expect(values.count == expected.count, "\(name)")
            let d = MergeTests.maxDifference(values, expected)
            if want[name] != nil { worst = max(worst, d) }
            #expect(d <= 1e-6, "\(family) \(name): max |ΔW| \(d)")
        }
        return worst
    }

    @Test(arguments: FamilyLoRATests.families)
    func f32BaseEqualsPEFTMergeAndUnload(family: String) throws {
        let (out, report) = try MergeTests.merge("families/\(family)", "golden/families-lora/\(family)")
        let worst = try Self.check(family, merged: out, golden: "\(family).merged_f32.safetensors", report: report)
        print("\(family) f32 merge: max |ΔW| \(worst) over \(report.mergedModules) modules")
        // The forward pass checks every family (the others through Verify's family layouts).
        #expect(report.verification?.meanKLD == 0)
        #expect(report.verification?.top1Agreement == 1)
        #expect(!report.warnings.contains { $0.contains("not verified") })
    }

    /// `wconv quantize --nf4` of the family's fixture, then its adapter merged into it (f32 output).
    static func mergeIntoNF4(_ family: String) throws -> (nf4: String, merged: String, report: MergeReport) {
        let nf4 = Fixtures.temporaryDirectory() + "/nf4"
        var q = QuantizeOptions(scheme: .bnb(.nf4))
        q.threads = 2
        _ = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path("families/\(family)")), to: nf4, options: q)
        var options = MergeOptions()
        options.outType = .f32
        options.threads = 2
        let out = Fixtures.temporaryDirectory() + "/merged"
        let report = try LoRAMerge.merge(base: nf4, adapter: Fixtures.path("golden/families-lora/\(family)"), output: out, options: options)
        return (nf4, out, report)
    }

    @Test(arguments: nf4Families)
    func nf4BaseEqualsDequantizePlusDelta(family: String) throws {
        let (_, out, report) = try Self.mergeIntoNF4(family)
        #expect(report.warnings.contains { $0.contains("dequantized base") })
        #expect(report.tensors.allSatisfy { $0.name.hasSuffix(".weight") })
        let worst = try Self.check(family, merged: out, golden: "\(family).nf4_merged_f32.safetensors", report: report)
        print("\(family) NF4 merge: max |ΔW| \(worst)")
    }

    /// A GPT-2 NF4 base holds its Conv1D weights as transformers' transposed Linear4bit ([out, in]):
    /// the delta goes in untransposed. Reference: the NF4 weights dequantized plus PEFT's delta,
    /// taken from PEFT's f32 merge (merged − base, transposed back to [out, in]).
    @Test func gpt2NF4BaseTakesTheLinearDelta() throws {
        let (nf4, out, report) = try Self.mergeIntoNF4("gpt2")
        #expect(report.mergedModules == 8)
        let merged = try MergeTests.tensors(out), dequantized = try MergeTests.tensors(nf4)
        let golden = try MergeTests.goldenTensors("golden/families-lora/gpt2.merged_f32.safetensors")
        let original = try MergeTests.tensors(Fixtures.path("families/gpt2"))
        let base = try MergeInput(path: nf4)
        for (name, peftMerged) in golden {
            let t = try #require(base.tensor(named: name))
            let (outRows, inColumns) = (t.shape[0], t.shape[1])
            let w = try #require(original[name])
            // PEFT's delta is [in, out]; the NF4 weight is [out, in].
            var expected = try #require(dequantized[name])
            for o in 0 ..< outRows { for i in 0 ..< inColumns { expected[o * inColumns + i] += peftMerged[i * outRows + o] - w[i * outRows + o] } }
            let d = MergeTests.maxDifference(try #require(merged[name]), expected)
            #expect(d <= 1e-5, "\(name): max |ΔW| \(d)")
        }
    }

    /// GGUF output of the regrouped families goes through the family's converter layout
    /// (QLoRAFamilyCommandTests checks the bytes); OPT has no GGUF at all, and says so.
    @Test func ggufOutputOfOtherFamilies() throws {
        let (_, report) = try MergeTests.merge("families/gpt2", "golden/families-lora/gpt2", gguf: true)
        #expect(report.verification?.top1Agreement == 1)
        #expect(throws: MergeError.self) {
            _ = try MergeTests.merge("families/opt", "golden/families-lora/opt", gguf: true)
        }
    }
}

/// convert-adapter PEFT → llama.cpp LoRA GGUF on every family llama.cpp supports, against
/// `convert_lora_to_gguf.py` (testdata/golden/families-lora/<name>.f32.gguf).
@Suite struct FamilyAdapterGGUFTests {
    static func convert(_ family: String) throws -> (bytes: [UInt8], path: String, report: LlamaCppAdapter.Report) {
        let out = Fixtures.temporaryDirectory() + "/a.gguf"
        let report = try LlamaCppAdapter.toGGUF(try PEFTAdapter(directory: Fixtures.path("golden/families-lora/\(family)")),
                                                base: try AdapterBaseModel.load(path: Fixtures.path("families/\(family)")),
                                                output: out, outType: .f32)
        return (Array(try FileSystem.readFile(out)), out, report)
    }

    @Test(arguments: ["qwen2", "mistral", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "qwen-7b", "baichuan2-7b", "baichuan2-13b"])
    func equalsLlamaCppConverter(family: String) throws {
        let (bytes, _, report) = try Self.convert(family)
        let golden = try Fixtures.data("golden/families-lora/\(family).f32.gguf")
        #expect(bytes.count == golden.count)
        #expect(bytes == golden, "\(family): first difference at byte \(zip(bytes, golden).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        #expect(report.alpha == 8)
    }

    /// GPT-2: the converter transposes the LoRA pair along with the Conv1D weight, which swaps A
    /// and B (`lora_a` = Bᵀ, `lora_b` = Aᵀ): llama.cpp refuses that file for c_attn / c_fc and applies
    /// Aᵀ·Bᵀ to the square c_proj. wconv writes A and B as llama.cpp applies them to the transposed
    /// weight; everything else (metadata, names, order) is the converter's.
    @Test func gpt2WritesThePairLlamaCppApplies() throws {
        let (_, path, _) = try Self.convert("gpt2")
        let ours = try GGUFModel.open(path: path), golden = try GGUFModel.open(path: Fixtures.path("golden/families-lora/gpt2.f32.gguf"))
        #expect(ours.metadata == golden.metadata)
        let oursSource = GGUFTensorSource(ours), goldenSource = GGUFTensorSource(golden)
        #expect(oursSource.entries.map(\.name) == goldenSource.entries.map(\.name))
        func values(_ s: GGUFTensorSource, _ name: String) throws -> (shape: [Int], values: [Float]) {
            let e = try #require(s.entry(named: name))
            return (e.shape, try LlamaCppAdapter.decode(e, from: s))
        }
        func transposed(_ v: [Float], rows: Int, columns: Int) -> [Float] {
            (0 ..< columns * rows).map { i in v[(i % rows) * columns + i / rows] }
        }
        for e in oursSource.entries where e.name.hasSuffix(".lora_a") {
            let stem = String(e.name.dropLast(".lora_a".count))
            let (aShape, a) = try values(oursSource, stem + ".lora_a"), (bShape, b) = try values(oursSource, stem + ".lora_b")
            let (gaShape, ga) = try values(goldenSource, stem + ".lora_a"), (gbShape, gb) = try values(goldenSource, stem + ".lora_b")
            // numpy shapes: ours A [r, in], B [out, r]; the converter's lora_a = Bᵀ [r, out], lora_b = Aᵀ [in, r].
            #expect(gaShape == [bShape[1], bShape[0]] && gbShape == [aShape[1], aShape[0]], "\(stem)")
            #expect(ga == transposed(b, rows: bShape[0], columns: bShape[1]), "\(stem) lora_a")
            #expect(gb == transposed(a, rows: aShape[0], columns: aShape[1]), "\(stem) lora_b")
        }
    }

    /// GGUF → PEFT undoes every transform the converter applied (Q/K permutations, Falcon's
    /// regrouping, Baichuan's split: three pairs sharing A become W_pack again): the PEFT file
    /// written back equals PEFT's own, byte for byte.
    @Test(arguments: ["qwen2", "mistral", "gpt2", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "qwen-7b", "baichuan2-7b", "baichuan2-13b"])
    func backToPEFTGivesThePEFTTensors(family: String) throws {
        let (_, gguf, report) = try Self.convert(family)
        let out = Fixtures.temporaryDirectory() + "/peft"
        let back = try LlamaCppAdapter.toPEFT(gguf: gguf, base: try AdapterBaseModel.load(path: Fixtures.path("families/\(family)")), output: out)
        let original = try PEFTAdapter(directory: Fixtures.path("golden/families-lora/\(family)"))
        #expect(back.moduleCount == original.modules.count && report.moduleCount == original.modules.count)
        #expect(try FileSystem.readFile(out + "/adapter_model.safetensors")
            == FileSystem.readFile(Fixtures.path("golden/families-lora/\(family)/adapter_model.safetensors")), "\(family)")
        let config = try PEFTAdapter(directory: out).config
        #expect(config.rank == 4 && config.alpha == 8)
    }
}

/// GGUF output of merges for the families the forward pass runs.
@Suite struct FamilyMergeGGUFTests {
    /// Qwen2's merged GGUF holds the converter's tensors of the merged weights, and the check by
    /// the forward pass agrees; Mistral's GGUF has no sliding window (as llama.cpp's), so the
    /// check runs within the window, where both compute the same.
    @Test(arguments: ["qwen2", "mistral"])
    func mergedGGUFIsVerified(family: String) throws {
        let (out, report) = try MergeTests.merge("families/\(family)", "golden/families-lora/\(family)", gguf: true)
        let verification = try #require(report.verification)
        #expect(verification.maxKLD < 1e-9 && verification.top1Agreement == 1, "\(family): \(verification)")
        #expect(verification.tokenCount == (family == "mistral" ? 8 : 64))
        let merged = try MergeTests.tensors(out)
        let golden = try MergeTests.goldenTensors("golden/families-lora/\(family).merged_f32.safetensors")
        for (name, values) in golden {
            #expect(MergeTests.maxDifference(try #require(merged[name]), values) <= 1e-6, "\(family) \(name)")
        }
    }
}
