import Finetune
import Formats
import Testing
import TestSupport

/// qlora-merge's forward-pass check on the families Verify runs through their own layouts: a
/// model that is not base + adapter is seen (the CLI test QLoRAFamilyCommandTests checks that a
/// correct merge passes).
@Suite struct FamilyMergeVerificationTests {
    @Test(arguments: ["gpt2", "falcon-40b", "mpt"])
    func unmergedBaseIsSeen(family: String) throws {
        let base = try MergeInput(path: Fixtures.path("families/\(family)"))
        #expect(base.config == nil)
        let adapter = try PEFTAdapter(directory: Fixtures.path("golden/families-lora/\(family)"))
        // The base itself stands for a merge that forgot the adapter.
        let v = try MergeVerification.compareFamily(reference: base, adapter: adapter, merged: base.input, text: nil, threads: 2)
        #expect(v.tokenCount >= 2)
        #expect(v.maxLogitDifference > 1e-2)
        #expect(v.meanKLD > 1e-6)
    }
}
