import Finetune
import Formats
import Foundation
import TensorCore
import Testing
import TestSupport
import Verify

/// PEFT adapter directories: reading PEFT-written adapters (patterns, rsLoRA, regex targets),
/// writing files PEFT writes byte for byte, and clear errors for what is not a plain LoRA.
@Suite struct AdapterPEFTTests {
    static let spm = "golden/lora/tiny-llama-spm-lora"
    static let patterns = "golden/lora/tiny-llama-spm-lora-patterns"

    @Test func readsAPEFTAdapter() throws {
        let adapter = try PEFTAdapter(directory: Fixtures.path(Self.spm))
        #expect(adapter.modules.count == 14)
        #expect(adapter.config.rank == 8 && adapter.config.alpha == 16 && adapter.config.dropout == 0.05)
        #expect(adapter.config.baseModelNameOrPath == "testdata/tiny-llama-spm")
        let q = try #require(adapter.module(named: "model.layers.1.self_attn.q_proj"))
        #expect(q.rank == 8 && q.inFeatures == 64 && q.outFeatures == 64 && q.scaling == 2)
        let k = try #require(adapter.module(named: "model.layers.0.self_attn.k_proj"))
        #expect(k.outFeatures == 32)
        let down = try #require(adapter.module(named: "model.layers.0.mlp.down_proj"))
        #expect(down.inFeatures == 128 && down.outFeatures == 64)
        // Key order: byte order of the names, as safetensors lists them.
        #expect(adapter.modules.first?.name == "model.layers.0.mlp.down_proj")
        let m = try adapter.matrices(of: q)
        #expect(m.a.count == 8 * 64 && m.b.count == 64 * 8)
        #expect(m.b.contains { $0 != 0 })
        #expect(adapter.config.targets(module: "model.layers.3.mlp.up_proj"))
        #expect(!adapter.config.targets(module: "lm_head"))
    }

    @Test func readsRankAndAlphaPatternsAndRSLoRA() throws {
        let adapter = try PEFTAdapter(directory: Fixtures.path(Self.patterns))
        let c = adapter.config
        #expect(c.useRSLoRA && c.rank == 4 && c.alpha == 8)
        #expect(c.targetModules == .pattern(".*\\.(q_proj|k_proj|v_proj|up_proj|down_proj)"))
        #expect(c.targets(module: "model.layers.0.self_attn.q_proj"))
        #expect(!c.targets(module: "model.layers.0.self_attn.o_proj"))
        #expect(adapter.modules.count == 10)
        for m in adapter.modules {
            let expectedRank = m.name.hasSuffix("q_proj") ? 8 : m.name.hasSuffix("down_proj") ? 2 : 4
            let expectedAlpha: Double = m.name == "model.layers.1.self_attn.v_proj" ? 3 : 8
            #expect(m.rank == expectedRank, "\(m.name)")
            #expect(m.alpha == expectedAlpha, "\(m.name)")
            #expect(m.scaling == expectedAlpha / Double(expectedRank).squareRoot(), "\(m.name)")
        }
    }

    @Test func rewritesPEFTFilesByteForByte() throws {
        for dir in [Self.spm, Self.patterns, "golden/lora/tiny-llama-bpe-lora"] {
            let adapter = try PEFTAdapter(directory: Fixtures.path(dir))
            let entries = try adapter.modules.map { PEFTAdapterWriter.Entry(module: $0, matrices: try adapter.matrices(of: $0)) }
            let bytes = try PEFTAdapterWriter.weightsFile(entries)
            #expect(bytes == (try Fixtures.data(dir + "/adapter_model.safetensors")), "\(dir)")
            let config = String(decoding: try Fixtures.data(dir + "/adapter_config.json"), as: UTF8.self)
            #expect(adapter.config.serialized() == config, "\(dir)")
        }
    }

    @Test func newConfigHasEveryPEFTField() throws {
        let ours = PEFTLoRAConfig(rank: 8, alpha: 16, dropout: 0.05,
                                  targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                  baseModelNameOrPath: "testdata/tiny-llama-spm")
        let peft = try JSONParser.parse(try Fixtures.data(Self.spm + "/adapter_config.json"))
        guard case .object(var theirs) = peft, case .object(var mine) = try JSONParser.parse(ours.serialized()) else {
            Issue.record("not objects")
            return
        }
        // PEFT writes target_modules from a Python set, in hash order: compare as sets.
        let t1 = Set((theirs["target_modules"]?.arrayValue ?? []).compactMap(\.stringValue))
        let t2 = Set((mine["target_modules"]?.arrayValue ?? []).compactMap(\.stringValue))
        #expect(t1 == t2)
        theirs.remove("target_modules")
        mine.remove("target_modules")
        #expect(theirs == mine)
        // sorted keys, two-space indent, no trailing newline
        #expect(ours.serialized().hasPrefix("{\n  \"alora_invocation_tokens\": null,\n"))
        #expect(ours.serialized().hasSuffix("}"))
    }

    @Test func loraWeightsRoundTrip() throws {
        let config = try LlamaConfig(hfConfig: try #require(try JSONParser.parse(try Fixtures.data("tiny-llama-spm/config.json")).objectValue))
        let adapter = try PEFTAdapter(directory: Fixtures.path(Self.spm))
        let weights = try adapter.loraWeights(modelConfig: config)
        #expect(weights.keys.count == 14 && weights.loraConfig.rank == 8 && weights.scaling == 2)
        let out = Fixtures.temporaryDirectory() + "/adapter"
        try PEFTAdapterWriter.write(weights, baseModel: "testdata/tiny-llama-spm", to: out, force: false)
        let back = try PEFTAdapter(directory: out)
        #expect(try back.loraWeights(modelConfig: config) == weights)
        // Same tensors, same bytes as PEFT's own file.
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/adapter_model.safetensors"))
            == Data(try Fixtures.data(Self.spm + "/adapter_model.safetensors")))
        #expect(FileManager.default.fileExists(atPath: out + "/README.md"))
        // An existing directory is kept without force.
        #expect(throws: (any Error).self) { try PEFTAdapterWriter.write(weights, baseModel: nil, to: out, force: false) }
        // Patterns cannot become uniform training weights.
        #expect(throws: AdapterError.self) { try PEFTAdapter(directory: Fixtures.path(Self.patterns)).loraWeights(modelConfig: config) }
    }

    // MARK: - Errors

    /// An adapter directory with `config` and tensors `(name, shape, values)`.
    static func adapterDirectory(config: String, tensors: [(String, [Int], [Float])]) throws -> String {
        let dir = Fixtures.temporaryDirectory()
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        let bytes = try SafetensorsWriter.serialize(tensors.map { name, shape, values in
            (SafetensorsTensorSpec(name: name, dtype: .f32, shape: shape), values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } })
        }, metadata: [("format", "pt")])
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/adapter_model.safetensors"))
        return dir
    }

    static let plainConfig = #"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#
    static let prefix = "base_model.model.model.layers.0.self_attn.q_proj"

    func expectAdapterError(_ dir: String, _ expected: AdapterError, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try PEFTAdapter(directory: dir)
            Issue.record("no error", sourceLocation: sourceLocation)
        } catch let error as PathError {
            #expect(error.underlying as? AdapterError == expected, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func refusesWhatIsNotPlainLoRA() throws {
        let a = (Self.prefix + ".lora_A.weight", [2, 4], [Float](repeating: 0.5, count: 8))
        let b = (Self.prefix + ".lora_B.weight", [4, 2], [Float](repeating: 0.25, count: 8))
        // DoRA, LoRA bias, another PEFT method (fan_in_fan_out is read: PEFT applies it to Conv1D
        // layers only, FamilyMergeTests merge GPT-2's).
        for (config, variant) in [
            (#"{"r": 2, "use_dora": true}"#, "DoRA (use_dora: true): its merge rescales each column"),
            (#"{"r": 2, "lora_bias": true}"#, "LoRA bias (lora_bias: true)"),
        ] {
            expectAdapterError(try Self.adapterDirectory(config: config, tensors: [a, b]), .unsupportedVariant(variant))
        }
        expectAdapterError(try Self.adapterDirectory(config: #"{"peft_type": "IA3", "r": 2}"#, tensors: [a, b]), .notLoRA(peftType: "IA3"))
        expectAdapterError(try Self.adapterDirectory(config: #"{"lora_alpha": 4}"#, tensors: [a, b]), .badConfigField(key: "r", reason: "is missing"))
        expectAdapterError(try Self.adapterDirectory(config: #"{"r": 2, "rank_pattern": {"(": 4}}"#, tensors: [a, b]),
                           .badPattern(key: "rank_pattern", pattern: "("))
        // Found by the peft-adapter-config fuzz target: nested repetition backtracks exponentially
        // (this config hung the merge), so it is refused at load.
        expectAdapterError(try Self.adapterDirectory(config: #"{"r": 2, "alpha_pattern": {"la(.*)*1.sef_alttn.v_proj": 3}}"#, tensors: [a, b]),
                           .riskyPattern(key: "alpha_pattern", pattern: "la(.*)*1.sef_alttn.v_proj",
                                         reason: "a repeated group holds a repetition or alternation (matching could take exponential time)"))
        expectAdapterError(try Self.adapterDirectory(config: #"{"r": 2, "target_modules": "(a|aa)*b"}"#, tensors: [a, b]),
                           .riskyPattern(key: "target_modules", pattern: "(a|aa)*b",
                                         reason: "a repeated group holds a repetition or alternation (matching could take exponential time)"))
        // Tensors: unpaired, wrong rank, not LoRA, no prefix, DoRA magnitude.
        expectAdapterError(try Self.adapterDirectory(config: Self.plainConfig, tensors: [a]),
                           .unpairedTensor(module: "model.layers.0.self_attn.q_proj", missing: "lora_B.weight"))
        expectAdapterError(try Self.adapterDirectory(config: #"{"r": 3}"#, tensors: [a, b]),
                           .badShape(tensor: a.0, shape: [2, 4], expected: "rank 3 as adapter_config.json gives for model.layers.0.self_attn.q_proj"))
        let full = ("base_model.model.lm_head.weight", [2, 2], [Float](repeating: 0, count: 4))
        expectAdapterError(try Self.adapterDirectory(config: Self.plainConfig, tensors: [a, b, full]),
                           .unexpectedTensor(name: full.0, reason: "a full weight (modules_to_save or an extra trained layer), not a LoRA matrix; only lora_A/lora_B pairs are supported"))
        let magnitude = (Self.prefix + ".lora_magnitude_vector", [4], [Float](repeating: 1, count: 4))
        expectAdapterError(try Self.adapterDirectory(config: Self.plainConfig, tensors: [a, b, magnitude]),
                           .unexpectedTensor(name: magnitude.0, reason: "a DoRA magnitude vector; DoRA adapters are not supported"))
        let bare = ("model.layers.0.self_attn.q_proj.lora_A.weight", [2, 4], [Float](repeating: 0, count: 8))
        expectAdapterError(try Self.adapterDirectory(config: Self.plainConfig, tensors: [bare]),
                           .unexpectedTensor(name: bare.0, reason: "PEFT adapter keys start with \"base_model.model.\""))
        // Missing files.
        let empty = Fixtures.temporaryDirectory()
        expectAdapterError(empty, .missingFile("adapter_config.json"))
    }

    @Test func nonFiniteMatricesAreReportedWhenRead() throws {
        var values = [Float](repeating: 0.5, count: 8)
        values[5] = .nan
        let dir = try Self.adapterDirectory(config: Self.plainConfig, tensors: [
            (Self.prefix + ".lora_A.weight", [2, 4], values), (Self.prefix + ".lora_B.weight", [4, 2], [Float](repeating: 0, count: 8)),
        ])
        let adapter = try PEFTAdapter(directory: dir)
        #expect(throws: (any Error).self) { try adapter.matrices(of: adapter.modules[0]) }
    }
}
