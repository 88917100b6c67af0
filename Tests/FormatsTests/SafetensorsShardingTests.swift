import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// Shard splitting and the index file, against huggingface_hub's splitter and a checkpoint that
/// transformers' `save_pretrained` sharded (testdata/golden/safetensors).
@Suite struct SafetensorsShardingTests {
    struct Cases: Decodable {
        struct Case: Decodable {
            struct Tensor: Decodable {
                let name: String
                let dtype: String
                let shape: [Int]
            }
            let layout: String
            let max_shard_size: Int
            let tensors: [Tensor]
            let shards: [ShardEntry]
            let total_size: Int
            let index_json: String?
        }
        /// `[file name, [tensor names]]`.
        struct ShardEntry: Decodable {
            let file: String
            let names: [String]
            init(from decoder: any Decoder) throws {
                var c = try decoder.unkeyedContainer()
                file = try c.decode(String.self)
                names = try c.decode([String].self)
            }
        }
        /// `[text, bytes]`.
        struct SizeEntry: Decodable {
            let text: String
            let bytes: Int
            init(from decoder: any Decoder) throws {
                var c = try decoder.unkeyedContainer()
                text = try c.decode(String.self)
                bytes = try c.decode(Int.self)
            }
        }
        let cases: [Case]
        let parse_size: [SizeEntry]
    }

    struct ShardedManifest: Decodable {
        let max_shard_size: Int
        let state_dict_order: [String]
        let total_parameters: Int
        let files: [String]
    }

    static let golden = Fixtures.path("golden/safetensors")
    static let cases: Cases? = try? ST.decode(Cases.self, golden + "/sharding_cases.json")

    @Test func splitsLikeHuggingfaceHub() throws {
        let cases = try #require(Self.cases)
        #expect(cases.cases.count == 20)
        for c in cases.cases {
            let specs = try c.tensors.map { SafetensorsTensorSpec(name: $0.name, dtype: try #require(DType(rawValue: $0.dtype)), shape: $0.shape) }
            let plan = try SafetensorsShardPlan(specs, maxShardSize: c.max_shard_size)
            let label = "\(c.layout) @ \(c.max_shard_size)"
            #expect(plan.shards.map(\.fileName) == c.shards.map(\.file), "\(label)")
            #expect(plan.shards.map { $0.tensors.map(\.name) } == c.shards.map(\.names), "\(label)")
            #expect(plan.totalSize == c.total_size, "\(label)")
            #expect(plan.isSharded == (c.index_json != nil), "\(label)")
            if let expected = c.index_json {
                #expect(plan.indexJSON() == expected, "\(label)")
            }
        }
    }

    @Test func parsesSizesLikeHuggingfaceHub() throws {
        let cases = try #require(Self.cases)
        for entry in cases.parse_size {
            #expect(SafetensorsShardPlan.parseSize(entry.text) == entry.bytes, "\(entry.text)")
        }
        #expect(SafetensorsShardPlan.parseSize("123") == 123)
        #expect(SafetensorsShardPlan.parseSize("5G") == nil)
        #expect(SafetensorsShardPlan.parseSize("GB") == nil)
        #expect(SafetensorsShardPlan.parseSize("xGB") == nil)
    }

    @Test func rejectsNonPositiveLimitAndDuplicates() {
        let a = SafetensorsTensorSpec(name: "a", dtype: .f32, shape: [1])
        #expect(throws: SafetensorsWriteError.invalidShardSize(0)) { try SafetensorsShardPlan([a], maxShardSize: 0) }
        #expect(throws: SafetensorsWriteError.duplicateName("a")) { try SafetensorsShardPlan([a, a], maxShardSize: 100) }
    }

    @Test func emptyCheckpointIsOneEmptyFile() throws {
        let plan = try SafetensorsShardPlan([], maxShardSize: 10)
        #expect(plan.shards.map(\.fileName) == ["model.safetensors"])
        #expect(!plan.isSharded)
    }

    /// Re-shards the checkpoint transformers wrote, from the state-dict order it used, and
    /// compares every file byte for byte.
    @Test func reproducesSavePretrainedShards() throws {
        let dir = Self.golden + "/tiny-llama-sharded"
        let manifest = try ST.decode(ShardedManifest.self, Self.golden + "/tiny-llama-sharded.json")
        let source = try SafetensorsCheckpoint(path: dir)
        let specs = try manifest.state_dict_order.map { try #require(source.tensor(named: $0)).tensor.spec }
        let plan = try SafetensorsShardPlan(specs, maxShardSize: manifest.max_shard_size)
        #expect(plan.shards.count == 8)

        let out = Fixtures.temporaryDirectory("st-shards")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let written = try plan.write(into: out, totalParameters: manifest.total_parameters) { tensor, file in
            try file.write(try source.bytes(named: tensor.name))
        }
        #expect(written == manifest.files.filter { $0.hasSuffix(".safetensors") || $0.hasSuffix(".index.json") })
        for name in written {
            #expect(ST.difference(try ST.read(out + "/" + name), try ST.read(dir + "/" + name)) == "", "\(name)")
        }
    }

    @Test func readsIndex() throws {
        let index = try SafetensorsIndex(path: Self.golden + "/tiny-llama-sharded/model.safetensors.index.json")
        #expect(index.weightMap.count == 21)
        #expect(index.shardFiles == (1 ... 8).map { "model-0000\($0)-of-00008.safetensors" })
        #expect(index.shard(of: "lm_head.weight") == "model-00008-of-00008.safetensors")
        #expect(index.metadata?["total_size"] == .int(11424))
    }

    @Test func rejectsBadIndexes() {
        func parse(_ text: String) throws(SafetensorsIndexError) -> SafetensorsIndex {
            let bytes = Array(text.utf8)
            let result: Result<SafetensorsIndex, SafetensorsIndexError> = bytes.withUnsafeBytes { raw in
                do throws(SafetensorsIndexError) { return .success(try SafetensorsIndex.parse(raw)) } catch { return .failure(error) }
            }
            return try result.get()
        }
        #expect(throws: SafetensorsIndexError.notAnObject) { try parse("[]") }
        #expect(throws: SafetensorsIndexError.missingWeightMap) { try parse(#"{"metadata":{}}"#) }
        #expect(throws: SafetensorsIndexError.invalidWeightMapEntry(tensor: "a")) { try parse(#"{"weight_map":{"a":1}}"#) }
        for bad in ["../x.safetensors", "/abs.safetensors", "a/../../b", "", "a//b"] {
            #expect(throws: SafetensorsIndexError.invalidShardFileName(bad)) { try parse(#"{"weight_map":{"a":"\#(bad)"}}"#) }
        }
        #expect(throws: SafetensorsIndexError.invalidJSON(.duplicateKey("a"))) { try parse(#"{"weight_map":{"a":"x","a":"y"}}"#) }
    }
}
