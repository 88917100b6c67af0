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

    /// Families whose block the training pass does not run are refused by name before any weight is read.
    @Test(arguments: ["gpt2", "opt", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "persimmon", "qwen-7b", "baichuan2-7b", "baichuan2-13b"])
    func trainingRefusesOtherBlocksByName(family: String) throws {
        do {
            _ = try FrozenBase.load(modelDirectory: Fixtures.path("families/\(family)"), storage: .float32)
            Issue.record("\(family) was loaded for training")
        } catch let error as PathError {
            guard case .familyNotTrainable(let name, let missing) = error.underlying as? TrainingError else {
                Issue.record("\(family): \(error)"); return
            }
            let architecture = try Self.config(family)["architectures"]?.arrayValue?.first?.stringValue ?? "?"
            #expect(name.contains(architecture) && !missing.isEmpty)
            #expect(error.kind == .unsupported)
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
        // The forward pass checks LLaMA, Mistral and Qwen2; the others say why they are not checked.
        if ["qwen2", "mistral"].contains(family) {
            #expect(report.verification?.meanKLD == 0)
        } else {
            #expect(report.verification == nil)
            #expect(report.warnings.contains { $0.contains("forward pass does not run") })
        }
    }

    @Test(arguments: nf4Families)
    func nf4BaseEqualsDequantizePlusDelta(family: String) throws {
        let nf4 = Fixtures.temporaryDirectory() + "/nf4"
        var q = QuantizeOptions(scheme: .bnb(.nf4))
        q.threads = 2
        _ = try BNBQuantizer.quantize(try ModelInput.open(path: Fixtures.path("families/\(family)")), to: nf4, options: q)
        var options = MergeOptions()
        options.outType = .f32
        options.threads = 2
        let out = Fixtures.temporaryDirectory() + "/merged"
        let report = try LoRAMerge.merge(base: nf4, adapter: Fixtures.path("golden/families-lora/\(family)"), output: out, options: options)
        #expect(report.warnings.contains { $0.contains("dequantized base") })
        #expect(report.tensors.allSatisfy { $0.name.hasSuffix(".weight") })
        let worst = try Self.check(family, merged: out, golden: "\(family).nf4_merged_f32.safetensors", report: report)
        print("\(family) NF4 merge: max |ΔW| \(worst)")
    }

    /// GGUF output needs the family's converter layout; the merge says so instead of writing a wrong file.
    @Test func ggufOutputOfOtherFamiliesIsRefused() throws {
        #expect(throws: MergeError.self) {
            _ = try MergeTests.merge("families/gpt2", "golden/families-lora/gpt2", gguf: true)
        }
    }
}
