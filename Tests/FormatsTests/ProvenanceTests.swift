import Foundation
import Testing
import TestSupport
@testable import Formats
import TensorCore

/// The provenance record written inside outputs: names, digests, entries, and the manifest that
/// reuses the input digests.
@Suite struct ProvenanceTests {
    static func sample(_ root: String) throws -> Provenance {
        try Provenance.make(wconvVersion: "9.9.9",
                            command: ManifestCommand(name: "quantize", options: JSONObject([("input", "model"), ("nf4", true)])),
                            recipe: .object(JSONObject([("method", "bitsandbytes"), ("blocksize", 64)])),
                            inputs: [root + "/model", root + "/extra.bin"], threads: 2)
    }

    @Test func inputsAreNamedByBaseNameAndHashedWithSwiftCrypto() throws {
        let root = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TreeBuilder.write(TreeBuilder.sample(), into: root + "/model")
        try TreeBuilder.write(["extra.bin": [1, 2, 3]], into: root)
        let p = try Self.sample(root)
        #expect(p.inputs.map(\.name) == ["extra.bin", "model/config.json", "model/model.safetensors", "model/tokenizer/empty",
                                         "model/tokenizer/vocab.txt"])
        for input in p.inputs {
            #expect(input.sha256 == (try TestSHA256.hex(file: root + "/" + input.name)), "\(input.name)")
        }
        #expect(p.inputLines.first == "\(TestSHA256.hex([1, 2, 3] as [UInt8]))  extra.bin")

        // Nothing of the machine in what goes inside an output.
        let everything = p.ggufEntries.map { "\($0.value)" }.joined() + p.safetensorsMetadata.map(\.value).joined()
        #expect(!everything.contains(root))
        #expect(p.commandText == #"{"name": "quantize", "options": {"input": "model", "nf4": true}}"#)
        #expect(p.recipeText == #"{"blocksize": 64, "method": "bitsandbytes"}"#)
        #expect(p.ggufEntries.map(\.key) == ["general.wconv.version", "general.wconv.command", "general.wconv.recipe", "general.wconv.inputs"])
        #expect(Provenance.safetensorsMetadata(p).map(\.key) == ["format", "wconv.version", "wconv.command", "wconv.recipe", "wconv.inputs"])
        #expect(Provenance.safetensorsMetadata(nil).map(\.key) == ["format"])
    }

    @Test func dryRunListsWithoutHashingAndKeepsTheLengths() throws {
        let root = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TreeBuilder.write(TreeBuilder.sample(), into: root + "/model")
        try TreeBuilder.write(["extra.bin": [1, 2, 3]], into: root)
        let real = try Self.sample(root)
        let planned = try Provenance.make(wconvVersion: real.wconvVersion, command: real.command, recipe: real.recipe,
                                          inputs: [root + "/model", root + "/extra.bin"], hashing: false)
        #expect(planned.inputs.map(\.name) == real.inputs.map(\.name))
        #expect(planned.inputs.allSatisfy { $0.sha256 == String(repeating: "0", count: 64) })
        #expect(planned.safetensorsMetadata.map(\.value.utf8.count) == real.safetensorsMetadata.map(\.value.utf8.count))
    }

    @Test func setProvenanceReplacesAnEarlierRecord() throws {
        let root = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TreeBuilder.write(["extra.bin": [1, 2, 3]], into: root)
        try TreeBuilder.write(["a": [0]], into: root + "/model")
        var metadata: GGUFMetadata = ["general.architecture": .string("llama"), "general.wconv.version": .string("0.0.1"),
                                      "general.wconv.command": .string("old"), "general.file_type": .uint32(1)]
        metadata.setProvenance(try Self.sample(root))
        #expect(metadata.keys == ["general.architecture", "general.file_type", "general.wconv.version", "general.wconv.command",
                                  "general.wconv.recipe", "general.wconv.inputs"])
        #expect(metadata["general.wconv.version"]?.stringValue == "9.9.9")
    }

    @Test func manifestReusesTheInputDigests() throws {
        let root = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TreeBuilder.write(TreeBuilder.sample(), into: root + "/model")
        try TreeBuilder.write(["extra.bin": [1, 2, 3], "out/weights.bin": [9, 9]], into: root)
        let p = try Self.sample(root)
        let manifest = try p.writeManifest(outputs: [root + "/out"], at: root + "/out/wconv-manifest.json",
                                           options: ManifestOptions(threads: 1))
        #expect(manifest.inputs.map(\.path) == ["../extra.bin", "../model/config.json", "../model/model.safetensors",
                                                "../model/tokenizer/empty", "../model/tokenizer/vocab.txt"])
        #expect(manifest.outputs.map(\.path) == ["weights.bin"])
        #expect(manifest.command?.name == "quantize")
        let read = try Manifest.read(path: root + "/out/wconv-manifest.json")
        #expect(read.check(relativeTo: root + "/out", includeInputs: true, threads: 1).allSatisfy { $0.status == .ok })
    }
}
