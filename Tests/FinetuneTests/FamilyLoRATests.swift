@testable import Finetune
import Formats
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
