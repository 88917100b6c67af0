import Foundation
import Testing
import Formats
import Pipeline
import TensorCore
import TestSupport

/// HF ⇄ GGUF conversion checked against llama.cpp's converter output (testdata/golden, made by
/// testdata/scripts/make_fixtures.py with convert_hf_to_gguf.py from llama-cpp-python 0.3.36).
@Suite struct ConvertTests {
    static let models = ["tiny-llama-spm", "tiny-llama-bpe"]
    static let outTypes: [ConvertOptions.OutType] = [.f32, .f16, .bf16]

    static func options(_ outType: ConvertOptions.OutType, threads: Int = 2) -> ConvertOptions {
        var o = ConvertOptions()
        o.outType = outType
        o.threads = threads
        return o
    }

    @Test(arguments: models, outTypes)
    func hfToGGUFEqualsLlamaCppConverterByteForByte(model: String, outType: ConvertOptions.OutType) throws {
        let dir = try HFModelDirectory(path: Fixtures.path(model))
        let out = Fixtures.temporaryDirectory() + "/\(model).gguf"
        try HFToGGUF.convert(dir, to: out, options: Self.options(outType))
        let ours = try Data(contentsOf: URL(fileURLWithPath: out))
        let golden = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("golden/\(model).\(outType.rawValue).gguf")))
        if ours != golden {
            // Say what differs before failing: keys first, then tensors.
            let a = try GGUFFile(path: out), b = try GGUFFile(path: Fixtures.path("golden/\(model).\(outType.rawValue).gguf"))
            #expect(a.metadata.keys == b.metadata.keys)
            for kv in b.metadata.entries { #expect(a.metadata[kv.key] == kv.value, "\(kv.key)") }
            #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
            for t in b.tensors {
                if let mine = a.tensor(named: t.name) {
                    #expect(Array(try a.bytes(of: mine)) == Array(try b.bytes(of: t)), "\(t.name)")
                }
            }
        }
        #expect(ours == golden)
    }

    @Test(arguments: models)
    func autoOutTypePicksTheInputsSixteenBitType(model: String) throws {
        let dir = try HFModelDirectory(path: Fixtures.path(model))
        let plan = try HFToGGUF.plan(dir, options: Self.options(.auto))
        // tiny-llama-spm is saved in bf16, tiny-llama-bpe in f16 (see testdata/README.md).
        let expected: GGMLType = model.hasSuffix("spm") ? .bf16 : .f16
        #expect(plan.tensors.first { $0.name == "blk.0.attn_q.weight" }?.type == expected)
        #expect(plan.tensors.first { $0.name == "blk.0.attn_norm.weight" }?.type == .f32)
    }

    @Test func outputIsTheSameForAnyThreadCount() throws {
        let dir = try HFModelDirectory(path: Fixtures.path("tiny-llama-bpe"))
        let tmp = Fixtures.temporaryDirectory()
        try HFToGGUF.convert(dir, to: tmp + "/1.gguf", options: Self.options(.f16, threads: 1))
        try HFToGGUF.convert(dir, to: tmp + "/3.gguf", options: Self.options(.f16, threads: 3))
        #expect(try Data(contentsOf: URL(fileURLWithPath: tmp + "/1.gguf")) == Data(contentsOf: URL(fileURLWithPath: tmp + "/3.gguf")))
    }

    @Test(arguments: models)
    func ggufToHFRestoresTheOriginalTensors(model: String) throws {
        // llama.cpp's f32 GGUF → HF must give back the checkpoint's tensors exactly (bf16 and f16
        // widen to f32 without rounding), with the Q/K permutation undone.
        let gguf = try GGUFModel.open(path: Fixtures.path("golden/\(model).f32.gguf"))
        let out = Fixtures.temporaryDirectory() + "/hf"
        try GGUFToHF.convert(gguf, to: out, options: Self.options(.auto))
        let original = try SafetensorsCheckpoint(path: Fixtures.path(model))
        let restored = try SafetensorsCheckpoint(path: out)
        #expect(Set(restored.tensors.map(\.name)) == Set(original.tensors.map(\.name)))
        for t in original.tensors {
            let r = try #require(restored.tensor(named: t.name))
            #expect(r.shape == t.shape, "\(t.name)")
            #expect(r.dtype == .f32)
            var a = [Float](repeating: 0, count: t.elementCount), b = a
            a.withUnsafeMutableBufferPointer { DenseFloat.decode(original.bytes(of: t), dtype: t.dtype, into: $0) }
            b.withUnsafeMutableBufferPointer { DenseFloat.decode(restored.bytes(of: r), dtype: r.dtype, into: $0) }
            #expect(a == b, "\(t.name)")
        }
        let config = try HFConfig(path: out + "/config.json")
        let originalConfig = try HFConfig(path: Fixtures.path(model) + "/config.json")
        #expect(try config.tieWordEmbeddings == originalConfig.tieWordEmbeddings)
        #expect(try config.ropeScaling == originalConfig.ropeScaling)
        #expect(try config.ropeTheta == originalConfig.ropeTheta)
        #expect(try config.rmsNormEps == originalConfig.rmsNormEps)
        #expect(try config.numKeyValueHeads == originalConfig.numKeyValueHeads)
    }

    @Test(arguments: models)
    func ggufToHFToGGUFKeepsTensorsAndVocabulary(model: String) throws {
        let goldenPath = Fixtures.path("golden/\(model).f16.gguf")
        let tmp = Fixtures.temporaryDirectory()
        try GGUFToHF.convert(try GGUFModel.open(path: goldenPath), to: tmp + "/\(model)", options: Self.options(.auto))
        try HFToGGUF.convert(try HFModelDirectory(path: tmp + "/\(model)"), to: tmp + "/back.gguf", options: Self.options(.f16))
        let a = try GGUFFile(path: tmp + "/back.gguf"), b = try GGUFFile(path: goldenPath)
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        for t in b.tensors {
            let mine = try #require(a.tensor(named: t.name))
            #expect(Array(try a.bytes(of: mine)) == Array(try b.bytes(of: t)), "\(t.name)")
        }
        for kv in b.metadata.entries where kv.key.hasPrefix("tokenizer.ggml.tokens") || kv.key.hasPrefix("tokenizer.ggml.merges")
            || kv.key.hasPrefix("llama.") {
            #expect(a.metadata[kv.key] == kv.value, "\(kv.key)")
        }
    }

    @Test func refusesAnExistingOutputWithoutForceAndLeavesInputsAlone() throws {
        let dir = try HFModelDirectory(path: Fixtures.path("tiny-llama-spm"))
        let out = Fixtures.temporaryDirectory() + "/x.gguf"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: out))
        let error = #expect(throws: PathError.self) { try HFToGGUF.convert(dir, to: out, options: Self.options(.f16)) }
        #expect(error?.kind == .cannotWrite)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "keep me")
        var force = Self.options(.f16)
        force.force = true
        try HFToGGUF.convert(dir, to: out, options: force)
        #expect(try GGUFFile(path: out).tensors.count == 21)
        // No temporary file is left beside the output.
        let names = try FileManager.default.contentsOfDirectory(atPath: (out as NSString).deletingLastPathComponent)
        #expect(names == ["x.gguf"])
    }

    @Test func rejectsAnArchitectureWithoutDescription() throws {
        let tmp = Fixtures.temporaryDirectory()
        let src = Fixtures.path("tiny-llama-spm")
        for name in ["model.safetensors", "tokenizer.model", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: src + "/" + name, toPath: tmp + "/" + name)
        }
        var config = try String(contentsOfFile: src + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "LlamaForCausalLM", with: "MambaForCausalLM")
        try config.write(toFile: tmp + "/config.json", atomically: true, encoding: .utf8)
        let error = #expect(throws: PathError.self) {
            try HFToGGUF.convert(try HFModelDirectory(path: tmp), to: tmp + "/o.gguf", options: Self.options(.f16))
        }
        #expect(error?.kind == .unsupported)
        #expect(error?.description.contains("MambaForCausalLM") == true)
        #expect(!FileManager.default.fileExists(atPath: tmp + "/o.gguf"))
    }

    @Test func splitOutputReadsBackAsOneModel() throws {
        let dir = try HFModelDirectory(path: Fixtures.path("tiny-llama-spm"))
        let tmp = Fixtures.temporaryDirectory()
        var o = Self.options(.f16)
        o.splitMaxBytes = 60_000
        let report = try HFToGGUF.convert(dir, to: tmp + "/m.gguf", options: o)
        #expect(report.outputs.count > 1)
        let split = try GGUFModel.open(path: report.outputs[0])
        let whole = try GGUFFile(path: Fixtures.path("golden/tiny-llama-spm.f16.gguf"))
        #expect(split.tensors.map(\.name) == whole.tensors.map(\.name))
        for t in whole.tensors {
            let s = try #require(split.tensor(named: t.name))
            #expect(Array(try split.bytes(of: s)) == Array(try whole.bytes(of: t)))
        }
    }
}

@Suite struct RowPermutationTests {
    @Test func inverseUndoesForward() {
        for heads in [1, 2, 4, 8] {
            let rows = heads * 16
            let forward = RowPermutation.toGGUF(heads: heads), back = RowPermutation.toHF(heads: heads)
            for r in 0 ..< rows {
                let mid = forward.sourceRow(of: r, rowCount: rows)!
                #expect(back.sourceRow(of: mid, rowCount: rows).map { forward.sourceRow(of: $0, rowCount: rows) } != nil)
            }
            // Applying toGGUF then toHF is the identity on row indices.
            let original = Array(0 ..< rows)
            let permuted = (0 ..< rows).map { original[forward.sourceRow(of: $0, rowCount: rows)!] }
            let restored = (0 ..< rows).map { permuted[back.sourceRow(of: $0, rowCount: rows)!] }
            #expect(restored == original)
        }
    }

    @Test func matchesTheConvertersReshapeSwapaxes() {
        // numpy: w.reshape(n_head, 2, rows//n_head//2).swapaxes(1, 2).reshape(rows) on arange(8), 2 heads.
        let p = RowPermutation.toGGUF(heads: 2)
        #expect((0 ..< 8).map { p.sourceRow(of: $0, rowCount: 8)! } == [0, 2, 1, 3, 4, 6, 5, 7])
        #expect(RowPermutation.toGGUF(heads: 3).isValid(rowCount: 8) == false)
    }
}
