import Finetune
import Formats
import Foundation
import TensorCore
import Testing
import TestSupport

/// PEFT ⇄ llama.cpp LoRA GGUF against llama.cpp's own `convert_lora_to_gguf.py` outputs
/// (testdata/golden/lora/*.gguf, from make_lora_goldens.py).
@Suite struct AdapterGGUFTests {
    static func convert(_ adapter: String, base: String, outType: LlamaCppAdapter.OutType) throws -> (Data, LlamaCppAdapter.Report) {
        let out = Fixtures.temporaryDirectory() + "/a.gguf"
        let report = try LlamaCppAdapter.toGGUF(try PEFTAdapter(directory: Fixtures.path(adapter)),
                                                base: try AdapterBaseModel.load(path: Fixtures.path(base)),
                                                output: out, outType: outType)
        return (try Data(contentsOf: URL(fileURLWithPath: out)), report)
    }

    @Test(arguments: [("tiny-llama-spm-lora", "tiny-llama-spm", LlamaCppAdapter.OutType.f32),
                      ("tiny-llama-spm-lora", "tiny-llama-spm", .f16),
                      ("tiny-llama-spm-lora", "tiny-llama-spm", .q8_0),
                      ("tiny-llama-bpe-lora", "tiny-llama-bpe", .f32)])
    func equalsLlamaCppConverter(adapter: String, base: String, outType: LlamaCppAdapter.OutType) throws {
        let (bytes, report) = try Self.convert("golden/lora/\(adapter)", base: base, outType: outType)
        let golden = Data(try Fixtures.data("golden/lora/\(adapter).\(outType.rawValue).gguf"))
        #expect(bytes.count == golden.count)
        #expect(bytes == golden, "first difference at byte \(zip(bytes, golden).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        #expect(report.tensorCount == 28 && report.alpha == 16)
        #expect(report.warnings.isEmpty == (outType != .q8_0))
    }

    @Test func baseFromGGUFGivesTheSameFile() throws {
        // Head counts and architecture read from the llama.cpp-converted base instead of config.json.
        let (bytes, _) = try Self.convert("golden/lora/tiny-llama-spm-lora", base: "golden/tiny-llama-spm.f32.gguf", outType: .f32)
        #expect(bytes == Data(try Fixtures.data("golden/lora/tiny-llama-spm-lora.f32.gguf")))
    }

    @Test func backToPEFTGivesThePEFTTensors() throws {
        for (adapter, base) in [("tiny-llama-spm-lora", "tiny-llama-spm"), ("tiny-llama-bpe-lora", "tiny-llama-bpe")] {
            let out = Fixtures.temporaryDirectory() + "/peft"
            let report = try LlamaCppAdapter.toPEFT(gguf: Fixtures.path("golden/lora/\(adapter).f32.gguf"),
                                                    base: try AdapterBaseModel.load(path: Fixtures.path(base)), output: out)
            #expect(report.moduleCount == 14)
            #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/adapter_model.safetensors"))
                == Data(try Fixtures.data("golden/lora/\(adapter)/adapter_model.safetensors")), "\(adapter)")
            let back = try PEFTAdapter(directory: out)
            #expect(back.config.rank == 8 && back.config.alpha == 16 && !back.config.useRSLoRA)
            #expect(back.config.targetModules == .names(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]))
        }
    }

    @Test func qkWithoutBaseNeedsBase() throws {
        #expect(throws: (any Error).self) {
            try LlamaCppAdapter.toPEFT(gguf: Fixtures.path("golden/lora/tiny-llama-spm-lora.f32.gguf"), base: nil,
                                       output: Fixtures.temporaryDirectory() + "/x")
        }
    }

    /// Patterns and rsLoRA have no place in a llama.cpp adapter (one alpha, scale alpha/r): the
    /// converted file must still give llama.cpp the delta PEFT computes.
    @Test func foldsScalingsLlamaCppCannotExpress() throws {
        let source = try PEFTAdapter(directory: Fixtures.path("golden/lora/tiny-llama-spm-lora-patterns"))
        let out = Fixtures.temporaryDirectory() + "/p.gguf"
        let base = try AdapterBaseModel.load(path: Fixtures.path("tiny-llama-spm"))
        let report = try LlamaCppAdapter.toGGUF(source, base: base, output: out)
        #expect(report.warnings.count == 1)
        let contents = try LlamaCppAdapter.read(gguf: out, base: base)
        for entry in contents.entries {
            let original = try #require(source.module(named: entry.module.name))
            let m = try source.matrices(of: original)
            // llama.cpp: alpha / rank with rank = b.ne[0].
            let llamaScale = contents.alpha / Double(entry.module.rank)
            let delta = Self.delta(entry.matrices, rank: entry.module.rank, in: entry.module.inFeatures, out: entry.module.outFeatures, scale: llamaScale)
            let want = Self.delta(m, rank: original.rank, in: original.inFeatures, out: original.outFeatures, scale: original.scaling)
            let err = zip(delta, want).map { abs($0 - $1) }.max() ?? 0
            #expect(err < 1e-6, "\(entry.module.name): \(err)")
        }
    }

    static func delta(_ m: LoRAMatrices, rank: Int, in n: Int, out: Int, scale: Double) -> [Double] {
        var d = [Double](repeating: 0, count: out * n)
        for o in 0 ..< out {
            for i in 0 ..< n {
                var s = 0.0
                for k in 0 ..< rank { s += Double(m.b[o * rank + k]) * Double(m.a[k * n + i]) }
                d[o * n + i] = s * scale
            }
        }
        return d
    }

    @Test func refusesWhatGGUFCannotHold() throws {
        let base = try AdapterBaseModel.load(path: Fixtures.path("tiny-llama-bpe"))  // tied embeddings
        #expect(base.tiedEmbeddings)
        func adapter(_ module: String, a: String = ".lora_A.weight", b: String = ".lora_B.weight", shapeA: [Int], shapeB: [Int]) throws -> PEFTAdapter {
            let dir = try AdapterPEFTTests.adapterDirectory(config: #"{"r": 2, "lora_alpha": 4}"#, tensors: [
                ("base_model.model." + module + a, shapeA, [Float](repeating: 0.5, count: shapeA.reduce(1, *))),
                ("base_model.model." + module + b, shapeB, [Float](repeating: 0.5, count: shapeB.reduce(1, *))),
            ])
            return try PEFTAdapter(directory: dir)
        }
        let cases: [(PEFTAdapter, String)] = [
            (try adapter("lm_head", shapeA: [2, 64], shapeB: [352, 2]), "lm_head"),
            (try adapter("model.embed_tokens", a: ".lora_embedding_A", b: ".lora_embedding_B", shapeA: [2, 352], shapeB: [64, 2]), "embedding"),
            (try adapter("model.layers.0.mlp.experts", shapeA: [2, 64], shapeB: [64, 2]), "no GGUF name"),
        ]
        for (a, what) in cases {
            do {
                try LlamaCppAdapter.toGGUF(a, base: base, output: Fixtures.temporaryDirectory() + "/x.gguf")
                Issue.record("converted \(what)")
            } catch let error as PathError {
                guard case .cannotHold? = error.underlying as? AdapterError else {
                    Issue.record("\(what): \(error)")
                    continue
                }
                #expect(error.kind == .unsupported)
            }
        }
        // Untied base: lm_head is llama.cpp's output.weight, which adapters may target.
        let untied = try AdapterBaseModel.load(path: Fixtures.path("tiny-llama-spm"))
        let head = try adapter("lm_head", shapeA: [2, 64], shapeB: [128, 2])
        let out = Fixtures.temporaryDirectory() + "/h.gguf"
        try LlamaCppAdapter.toGGUF(head, base: untied, output: out)
        let file = try GGUFFile(path: out)
        #expect(file.tensors.map(\.name) == ["output.weight.lora_a", "output.weight.lora_b"])
    }

    @Test func rejectsGGUFsThatAreNotAdapters() throws {
        #expect(throws: (any Error).self) {
            try LlamaCppAdapter.read(gguf: Fixtures.path("golden/tiny-llama-spm.f32.gguf"), base: nil)
        }
    }
}
