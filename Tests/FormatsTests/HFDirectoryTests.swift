import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// Hugging Face model directories: config accessors, weight discovery, shards, and the errors.
@Suite struct HFDirectoryTests {
    static let tinyLlama = Fixtures.path("vectors/tiny-llama")
    static let sharded = Fixtures.path("golden/safetensors/tiny-llama-sharded")

    static let expectedShapes: [String: [Int]] = {
        var shapes: [String: [Int]] = [
            "model.embed_tokens.weight": [128, 128], "lm_head.weight": [128, 128], "model.norm.weight": [128],
        ]
        for layer in 0 ..< 2 {
            let p = "model.layers.\(layer)."
            shapes[p + "input_layernorm.weight"] = [128]
            shapes[p + "post_attention_layernorm.weight"] = [128]
            shapes[p + "self_attn.q_proj.weight"] = [128, 128]
            shapes[p + "self_attn.k_proj.weight"] = [64, 128]
            shapes[p + "self_attn.v_proj.weight"] = [64, 128]
            shapes[p + "self_attn.o_proj.weight"] = [128, 128]
            shapes[p + "mlp.gate_proj.weight"] = [256, 128]
            shapes[p + "mlp.up_proj.weight"] = [256, 128]
            shapes[p + "mlp.down_proj.weight"] = [128, 256]
        }
        return shapes
    }()

    @Test func readsTinyLlama() throws {
        let model = try HFModelDirectory(path: Self.tinyLlama)
        let c = model.config
        #expect(try c.architectures == ["LlamaForCausalLM"])
        #expect(try c.architecture == "LlamaForCausalLM")
        #expect(try c.modelType == "llama")
        #expect(try c.vocabSize == 128)
        #expect(try c.hiddenSize == 128)
        #expect(try c.intermediateSize == 256)
        #expect(try c.numHiddenLayers == 2)
        #expect(try c.numAttentionHeads == 4)
        #expect(try c.numKeyValueHeads == 2)
        #expect(try c.headDim == 32)
        #expect(try c.maxPositionEmbeddings == 256)
        #expect(try c.rmsNormEps == 1e-5)
        #expect(try c.ropeTheta == 10000)  // from transformers 5's rope_parameters
        #expect(try c.ropeScaling == nil)  // rope_type "default"
        #expect(try c.tieWordEmbeddings == false)
        #expect(try c.bosTokenId == 1)
        #expect(try c.eosTokenIds == [2])
        #expect(try c.torchDType == .bf16)
        #expect(c.quantizationConfig == nil)

        #expect(model.tokenizerFiles == ["tokenizer.model", "generation_config.json"])
        #expect(model.weights.index == nil)
        #expect(model.tensors.count == 21)
        #expect(Dictionary(uniqueKeysWithValues: model.tensors.map { ($0.name, $0.shape) }) == Self.expectedShapes)
        #expect(model.tensors.allSatisfy { $0.dtype == .bf16 })
        let norm = try #require(model.tensor(named: "model.norm.weight"))
        #expect(model.bytes(of: norm).count == 256)
        #expect(model.shardPath(of: norm) == Self.tinyLlama + "/model.safetensors")
        #expect(model.weights.metadata?.map(\.key) == ["format"])
    }

    @Test func acceptsTheWeightsFilePath() throws {
        let model = try HFModelDirectory(path: Self.tinyLlama + "/model.safetensors")
        #expect(model.path == Self.tinyLlama)
        #expect(model.tensors.count == 21)
    }

    @Test func readsShardedCheckpoint() throws {
        for path in [Self.sharded, Self.sharded + "/model.safetensors.index.json"] {
            let model = try HFModelDirectory(path: path)
            let index = try #require(model.weights.index)
            #expect(model.weights.files.count == 8)
            #expect(model.tensors.count == 21)
            #expect(try model.config.hiddenSize == 16)
            #expect(try model.config.numKeyValueHeads == 1)
            #expect(model.tokenizerFiles == ["generation_config.json"])
            for t in model.tensors {
                #expect(FileSystem.baseName(model.shardPath(of: t)) == index.shard(of: t.name))
                #expect(model.bytes(of: t).count == t.elementCount * 2)
            }
            #expect(model.weights.totalByteCount == 11424)
        }
    }

    // MARK: Errors

    /// A scratch model directory: the sharded golden's files, optionally edited.
    static func scratchCopy() throws -> String {
        let dir = Fixtures.temporaryDirectory("hf-dir")
        for name in FileSystem.contents(ofDirectory: sharded) ?? [] {
            try FileManager.default.copyItem(atPath: sharded + "/" + name, toPath: dir + "/" + name)
        }
        return dir
    }

    @Test func reportsMissingConfig() throws {
        let dir = try Self.scratchCopy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        let error = try #require(ST.thrown { _ = try HFModelDirectory(path: dir) } as? PathError)
        #expect(error.path == dir)
        #expect(error.underlying as? HFModelError == .missingConfig)
        #expect(error.kind == .missingInput)
    }

    @Test func reportsMissingWeights() throws {
        let dir = Fixtures.temporaryDirectory("hf-dir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.tinyLlama + "/config.json", toPath: dir + "/config.json")
        try ST.write([0], to: dir + "/pytorch_model.bin")
        let error = try #require(ST.thrown { _ = try HFModelDirectory(path: dir) } as? PathError)
        #expect(error.underlying as? HFModelError == .noWeights(otherWeights: ["pytorch_model.bin"]))
        #expect(error.description.hasSuffix("(other weight files there: pytorch_model.bin)"))

        let none = try #require(ST.thrown { _ = try HFModelDirectory(path: dir + "/nothing") } as? PathError)
        #expect(none.underlying as? FileAccessError == .notFound)
    }

    @Test func reportsMissingShardFile() throws {
        let dir = try Self.scratchCopy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shard = dir + "/model-00003-of-00008.safetensors"
        try FileManager.default.removeItem(atPath: shard)
        let error = try #require(ST.thrown { _ = try HFModelDirectory(path: dir) } as? PathError)
        #expect(error.path == shard)
        #expect(error.underlying as? FileAccessError == .notFound)
    }

    /// Rewrites the index with `edit` applied to its weight map.
    static func editIndex(_ dir: String, _ edit: (inout [String: String]) -> Void) throws {
        let path = dir + "/model.safetensors.index.json"
        var json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var map = try #require(json["weight_map"] as? [String: String])
        edit(&map)
        json["weight_map"] = map
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    @Test func reportsTensorMissingFromItsShard() throws {
        let dir = try Self.scratchCopy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.editIndex(dir) { $0["model.extra.weight"] = "model-00002-of-00008.safetensors" }
        let error = try #require(ST.thrown { _ = try SafetensorsCheckpoint(path: dir) } as? PathError)
        #expect(error.path == dir + "/model-00002-of-00008.safetensors")
        #expect(error.underlying as? SafetensorsIndexError == .missingTensor(name: "model.extra.weight"))
    }

    @Test func reportsTensorMissingFromTheIndex() throws {
        let dir = try Self.scratchCopy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.editIndex(dir) { $0["model.norm.weight"] = nil }
        let error = try #require(ST.thrown { _ = try SafetensorsCheckpoint(path: dir) } as? PathError)
        let holder = try #require(try SafetensorsIndex(path: Self.sharded + "/model.safetensors.index.json").shard(of: "model.norm.weight"))
        #expect(error.path == dir + "/" + holder)
        #expect(error.underlying as? SafetensorsIndexError == .unlistedTensor(name: "model.norm.weight"))
    }

    @Test func reportsTensorInTwoShards() throws {
        let dir = try Self.scratchCopy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Put a copy of lm_head into shard 1 as well (shard 8 holds it per the index).
        let shard1 = dir + "/model-00001-of-00008.safetensors"
        let original = try SafetensorsFile(path: shard1)
        let lmHead = try SafetensorsFile(path: dir + "/model-00008-of-00008.safetensors")
        var tensors = original.tensors.map { (spec: $0.spec, data: Array(original.bytes(of: $0))) }
        let head = try #require(lmHead.tensor(named: "lm_head.weight"))
        tensors.append((head.spec, Array(lmHead.bytes(of: head))))
        try ST.write(try SafetensorsWriter.serialize(tensors, metadata: [("format", "pt")]), to: shard1)

        let error = try #require(ST.thrown { _ = try HFModelDirectory(path: dir) } as? PathError)
        #expect(error.path == shard1)
        #expect(error.underlying as? SafetensorsIndexError
            == .tensorInOtherShard(name: "lm_head.weight", indexedShard: "model-00008-of-00008.safetensors"))
        #expect(error.kind == .malformedInput)
    }

    @Test func reportsCorruptShardWithItsPath() throws {
        let dir = try Self.scratchCopy()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let shard = dir + "/model-00005-of-00008.safetensors"
        var bytes = try ST.read(shard)
        bytes.append(0)
        try ST.write(bytes, to: shard)
        let error = try #require(ST.thrown { _ = try HFModelDirectory(path: dir) } as? PathError)
        #expect(error.path == shard)
        #expect(error.underlying as? SafetensorsError == .incompleteBuffer(expectedFileSize: bytes.count - 1, fileSize: bytes.count))
    }

    // MARK: Config

    @Test func readsTransformers4RopeScalingAndDType() throws {
        let config = try HFConfig(json: """
        {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_attention_heads": 32,
         "rope_theta": 500000.0, "torch_dtype": "bfloat16", "eos_token_id": [128001, 128008, 128009],
         "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192, "rope_type": "llama3"},
         "tie_word_embeddings": true}
        """)
        #expect(try config.ropeTheta == 500000)
        #expect(try config.ropeScaling == HFRopeScaling(type: "llama3", factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4,
                                                        originalMaxPositionEmbeddings: 8192))
        #expect(try config.torchDType == .bf16)
        #expect(try config.eosTokenIds == [128001, 128008, 128009])
        #expect(try config.eosTokenId == 128001)
        #expect(try config.tieWordEmbeddings)
        #expect(try config.numKeyValueHeads == 32)  // defaults to the attention heads
        #expect(try config.headDim == nil)
        #expect(try config.bosTokenId == nil)
    }

    @Test func readsTransformers5RopeParameters() throws {
        let config = try HFConfig(json: """
        {"dtype": "float16", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
         "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
         "rope_scaling": null}
        """)
        #expect(try config.ropeTheta == 500000)
        #expect(try config.ropeScaling?.type == "llama3")
        #expect(try config.ropeScaling?.factor == 32)
        #expect(try config.torchDType == .f16)
        // The older `type` spelling of rope_scaling.
        let old = try HFConfig(json: #"{"rope_scaling": {"type": "linear", "factor": 2}}"#)
        #expect(try old.ropeScaling == HFRopeScaling(type: "linear", factor: 2, lowFrequencyFactor: nil, highFrequencyFactor: nil, originalMaxPositionEmbeddings: nil))
        #expect(try old.ropeTheta == nil)
    }

    @Test func reportsMissingAndMistypedConfigValues() throws {
        let config = try HFConfig(json: #"{"hidden_size": "128", "vocab_size": null, "tie_word_embeddings": 1, "dtype": "float8"}"#)
        #expect(throws: HFConfigError.missingKey("num_hidden_layers")) { _ = try config.numHiddenLayers }
        #expect(throws: HFConfigError.missingKey("vocab_size")) { _ = try config.vocabSize }
        #expect(throws: HFConfigError.wrongType(key: "hidden_size", expected: "an integer")) { _ = try config.hiddenSize }
        #expect(throws: HFConfigError.wrongType(key: "tie_word_embeddings", expected: "a boolean")) { _ = try config.tieWordEmbeddings }
        #expect(throws: HFConfigError.invalidValue(key: "dtype", reason: "unknown dtype \"float8\"")) { _ = try config.torchDType }
        #expect(throws: HFConfigError.missingKey("rope_scaling.rope_type")) {
            _ = try HFConfig(json: #"{"rope_scaling": {"factor": 2}}"#).ropeScaling
        }
        #expect(throws: HFConfigError.notAnObject) { _ = try HFConfig(json: "[1]") }
    }

    @Test func configErrorsFromAFileNameIt() throws {
        let dir = Fixtures.temporaryDirectory("hf-config")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ST.write(Array(#"{"hidden_size": 8}"#.utf8), to: dir + "/config.json")
        let config = try HFConfig(path: dir + "/config.json")
        let error = try #require(ST.thrown { _ = try config.vocabSize } as? PathError)
        #expect(error.path == dir + "/config.json")
        #expect(error.underlying as? HFConfigError == .missingKey("vocab_size"))

        try ST.write(Array("{oops".utf8), to: dir + "/config.json")
        let parse = try #require(ST.thrown { _ = try HFConfig(path: dir + "/config.json") } as? PathError)
        #expect(parse.underlying is JSONError)
    }
}
