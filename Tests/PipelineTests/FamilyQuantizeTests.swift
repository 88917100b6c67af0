import Foundation
import Testing
import Pipeline
import Formats
import TensorCore
import TestSupport

/// wconv's GGUF quantizer on every family's converter GGUF (testdata/golden/families/<name>.f32.gguf)
/// against llama-quantize (goldens in testdata/golden/quantize/families, made by the `families` step
/// of testdata/scripts/make_quantize_goldens.py): the same file, byte for byte, for each type.
@Suite struct FamilyQuantizeTests {
    static let ids = QuantizeGoldens.familyIds.filter { (try? QuantizeGoldens.load($0))?.refusal == nil }
    static let refusedIds = QuantizeGoldens.familyIds.filter { (try? QuantizeGoldens.load($0))?.refusal != nil }

    @Test func everyFamilyAndTypeHasAGolden() {
        #expect(QuantizeGoldens.familyIds.count == 100)
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
    }
}
