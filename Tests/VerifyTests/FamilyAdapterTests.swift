import Foundation
import Formats
import Testing
import TensorCore
import TestSupport
import Verify

/// PEFT adapters applied on the fly on every family (issue 7): the base checkpoint plus the adapter
/// of testdata/golden/families-lora must give the logits of PEFT's `merge_and_unload()` weights
/// (`<family>.merged_f32.safetensors`) put in place of the base's. Covers GPT-2's Conv1D
/// (`fan_in_fan_out`) and the fused q|k|v modules (`c_attn`, `query_key_value`, `Wqkv`, `W_pack`).
@Suite struct FamilyAdapterTests {
    static let families = ["qwen2", "mistral", "gpt2", "opt", "phi-1_5", "falcon-7b", "falcon-40b", "mpt",
                           "baichuan2-7b", "baichuan2-13b", "qwen-7b", "persimmon"]

    /// `families/<family>` with the merged weights replacing the base's (float32), in a fresh directory.
    static func mergedCheckpoint(_ family: String) throws -> String {
        let source = Fixtures.path("families/\(family)")
        let dir = Fixtures.temporaryDirectory("wconv-merged-\(family)")
        for file in try FileManager.default.contentsOfDirectory(atPath: source) where file != "model.safetensors" {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir + "/" + file)
        }
        let base = try SafetensorsFile(path: source + "/model.safetensors")
        let merged = try SafetensorsFile(path: Fixtures.path("golden/families-lora/\(family).merged_f32.safetensors"))
        var tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])] = []
        for t in base.tensors {
            if let m = merged.tensor(named: t.name) {
                #expect(m.shape == t.shape)
                tensors.append((m.spec, Array(merged.bytes(of: m))))
            } else {
                tensors.append((t.spec, Array(base.bytes(of: t))))
            }
        }
        #expect(merged.tensors.allSatisfy { base.tensor(named: $0.name) != nil })
        try Data(try SafetensorsWriter.serialize(tensors, metadata: [("format", "pt")]))
            .write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }

    static func logits(_ path: String, tokens: [Int], adapter: LoRAAdapter? = nil) throws -> [Float] {
        try LlamaCheckpoint.open(path: path).model(threads: 2, adapter: adapter).logits(for: tokens)
    }

    static func tokens(_ family: String) throws -> [Int] {
        try TokenList.parse(try JSONParser.parse(try Fixtures.data("golden/families/\(family).tokens.json")))
    }

    @Test(arguments: families)
    func adapterOnTheFlyEqualsPEFTMerge(family: String) throws {
        let tokens = try Self.tokens(family)
        let adapter = try LoRAAdapter(directory: Fixtures.path("golden/families-lora/\(family)"))
        let onTheFly = try Self.logits(Fixtures.path("families/\(family)"), tokens: tokens, adapter: adapter)
        let merged = try Self.logits(try Self.mergedCheckpoint(family), tokens: tokens)
        let base = try Self.logits(Fixtures.path("families/\(family)"), tokens: tokens)
        let err = maxAbsDifference(onTheFly, merged)
        let moved = maxAbsDifference(base, merged)
        print("\(family): adapter on the fly vs PEFT merge: max |Δlogit| \(err) (the adapter moves them \(moved))")
        #expect(moved > 1e-2, "the adapter barely changes \(family)'s logits")
        #expect(err <= 1e-4)
    }

    /// A family's GGUF keeps llama.cpp's names, which a PEFT adapter does not address: refused
    /// with a clear error rather than silently ignored.
    @Test func refusedOnFamilyGGUF() throws {
        let adapter = try LoRAAdapter(directory: Fixtures.path("golden/families-lora/gpt2"))
        let checkpoint = try LlamaCheckpoint.open(path: Fixtures.path("golden/families/gpt2.f32.gguf"))
        do {
            _ = try checkpoint.model(threads: 1, adapter: adapter)
            Issue.record("an HF adapter was accepted on a GPT-2 GGUF")
        } catch {
            #expect("\(error)".contains("GGUF"))
        }
    }

    /// An adapter made for another family names weights this one does not have.
    @Test func refusedOnAnotherFamily() throws {
        let adapter = try LoRAAdapter(directory: Fixtures.path("golden/families-lora/opt"))
        let checkpoint = try LlamaCheckpoint.open(path: Fixtures.path("families/gpt2"))
        do {
            _ = try checkpoint.model(threads: 1, adapter: adapter)
            Issue.record("OPT's adapter was accepted on GPT-2")
        } catch {
            #expect("\(error)".contains("model.decoder.layers.0"))
        }
    }
}
