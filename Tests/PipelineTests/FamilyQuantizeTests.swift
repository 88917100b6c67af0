import Foundation
import Testing
import Pipeline
import Formats
import TensorCore
import TestSupport

/// wconv's GGUF quantizer on every family's converter GGUF (testdata/golden/families/<name>.f32.gguf)
/// against llama-quantize (goldens in testdata/golden/quantize/families, made by the `families` step
/// of testdata/scripts/make_quantize_goldens.py): the same file, byte for byte, for each type.
/// llama-quantize refuses Qwen-7B's converter file (its qwen loader wants
/// `qwen.attention.layer_norm_rms_epsilon`, the converter writes `layer_norm_epsilon`); wconv reads
/// only what the type rules need and quantizes it, to the tensors llama-quantize writes once the
/// missing key is supplied with `--override-kv`.
@Suite struct FamilyQuantizeTests {
    static let ids = QuantizeGoldens.familyIds.filter { (try? QuantizeGoldens.load($0))?.refusal == nil }
    static let refusedIds = QuantizeGoldens.familyIds.filter { (try? QuantizeGoldens.load($0))?.refusal != nil }

    @Test func everyFamilyAndTypeHasAGolden() {
        #expect(QuantizeGoldens.familyIds.count == 160)
    }

    @Test(arguments: ids)
    func familyGGUFGivesLlamaQuantizesFile(id: String) throws {
        let c = try QuantizeGoldens.load(id)
        let out = Fixtures.temporaryDirectory("wconv-family-quantize") + "/out.gguf"
        var options = try QuantizeGoldens.options(c)
        options.provenance = nil
        let report = try GGUFQuantizer.quantize(try ModelInput.open(path: Fixtures.path("golden/\(c.input).gguf")), to: out, options: options)
        try GGUFQuantizeTests.expectMatches(out, c)
        #expect(report.tensors.map(\.type) == c.tensors.map(\.type))
        #expect(!report.warnings.contains { $0.contains("loader requires") })
    }

    @Test func llamaQuantizeRefusesOnlyQwen7B() throws {
        #expect(Set(Self.refusedIds.map { $0.split(separator: ".")[0] }) == ["families/qwen-7b"])
        for id in Self.refusedIds {
            #expect(try QuantizeGoldens.load(id).refusal?.contains("qwen.attention.layer_norm_rms_epsilon") == true)
        }
    }

    @Test(arguments: refusedIds)
    func refusedFamilyGivesTheTensorsLlamaQuantizeWritesWithTheKeySupplied(id: String) throws {
        let c = try QuantizeGoldens.load(id)
        #expect(!c.tensors.isEmpty, "\(id): no run with the missing key supplied")
        let out = Fixtures.temporaryDirectory("wconv-family-quantize") + "/out.gguf"
        let input = Fixtures.path("golden/\(c.input).gguf")
        let report = try GGUFQuantizer.quantize(try ModelInput.open(path: input), to: out, options: try QuantizeGoldens.options(c))
        // The output would not load in llama.cpp as it is: wconv says so.
        #expect(report.warnings.contains { $0.contains("qwen.attention.layer_norm_rms_epsilon, which llama.cpp's qwen loader requires") })
        let file = try GGUFFile(path: out)
        #expect(file.tensors.map(\.name) == c.tensors.map(\.name))
        #expect(file.tensors.map(\.type.name) == c.tensors.map(\.type))
        for (info, g) in zip(file.tensors, c.tensors) {
            #expect(info.dimensions == g.ne, "\(id): \(info.name) ne")
            #expect(TestSHA256.hex(try file.bytes(of: info)) == g.sha256, "\(id): \(info.name) bytes")
        }
        // The keys: the input's, as llama-quantize writes them, without the supplied one (wconv
        // adds no key the input lacks).
        let supplied = "qwen.attention.layer_norm_rms_epsilon"
        #expect(file.metadata.entries.map { "\($0.key):\($0.value.type)" } == c.keys.filter { $0.0 != supplied }.map { "\($0.0):\($0.1)" })
        #expect(file.metadata[supplied] == nil)
    }
}
