import Foundation
@testable import Finetune
import Formats
import TensorCore
import Testing
import TestSupport
import Verify

/// One training step on the non-LLaMA blocks against PyTorch + PEFT (`make_qlora_goldens.py
/// families`): the loss and every adapter gradient, the adapter under the family's own PEFT names.
@Suite struct BlockGoldenStepTests {
    /// The PEFT adapter writer names the modules as the goldens do (`model.decoder.layers.0.fc1`).
    @Test(arguments: cases)
    func adapterNamesAreTheFamilys(_ c: Case) throws {
        let step = try QLoRAGolden.json()["steps"]?.objectValue?[c.name]?.objectValue
        let base = try FrozenBase.load(modelDirectory: Fixtures.path(step?["model"]?.stringValue ?? "?"), storage: .float32)
        let adapter = try Self.adapter(c, try QLoRAGolden.tensors("step_\(c.name).safetensors"), config: base.config)
        let names = Set(PEFTAdapterWriter.entries(adapter).map { "base_model.model." + $0.module.name })
        #expect(names == Set((0 ..< base.config.layerCount).flatMap { l in c.leaves.values.map { c.prefix + "\(l)." + $0 } }))
    }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        /// PEFT module path of layer `l` and target: prefix and the leaf of each ``LoRATarget``.
        var prefix: String
        var leaves: [LoRATarget: String]
        var description: String { name }
    }

    static let cases = [
        // OPT: LayerNorm with bias, ReLU, learned positions (offset 2), biases on every projection.
        Case(name: "opt_f32", prefix: "base_model.model.model.decoder.layers.",
             leaves: [.query: "self_attn.q_proj", .key: "self_attn.k_proj", .value: "self_attn.v_proj",
                      .output: "self_attn.out_proj", .up: "fc1", .down: "fc2"]),
        // phi-1.5: parallel block over one LayerNorm, partial rotary (half of each head),
        // GELU tanh, biases on every projection and on the head.
        Case(name: "phi_f32", prefix: "base_model.model.model.layers.",
             leaves: [.query: "self_attn.q_proj", .key: "self_attn.k_proj", .value: "self_attn.v_proj",
                      .output: "self_attn.dense", .up: "mlp.fc1", .down: "mlp.fc2"]),
        // GPT-2: LayerNorm with bias, GELU tanh, learned positions, Conv1D projections; one pair on
        // the fused c_attn (q | k | v rows of B).
        Case(name: "gpt2_f32", prefix: "base_model.model.transformer.h.",
             leaves: [.query: "attn.c_attn", .output: "attn.c_proj", .up: "mlp.c_fc", .down: "mlp.c_proj"]),
        // MPT: ALiBi, LayerNorm without bias, exact GELU, no biases; one pair on the fused Wqkv.
        Case(name: "mpt_f32", prefix: "base_model.model.transformer.blocks.",
             leaves: [.query: "attn.Wqkv", .output: "attn.out_proj", .up: "ffn.up_proj", .down: "ffn.down_proj"]),
        // Falcon 7B: multi-query, parallel block over one LayerNorm, exact GELU, rotary, no biases;
        // one pair on the fused query_key_value.
        Case(name: "falcon_f32", prefix: "base_model.model.transformer.h.",
             leaves: [.query: "self_attention.query_key_value", .output: "self_attention.dense",
                      .up: "mlp.dense_h_to_4h", .down: "mlp.dense_4h_to_h"]),
        // Persimmon: q/k LayerNorms, squared ReLU, partial rotary, biases; query_key_value rows per
        // head q, k, v (reordered like Falcon 40B's).
        Case(name: "persimmon_f32", prefix: "base_model.model.model.layers.",
             leaves: [.query: "self_attn.query_key_value", .output: "self_attn.dense",
                      .up: "mlp.dense_h_to_4h", .down: "mlp.dense_4h_to_h"]),
        // Falcon 40B: two norms, query_key_value rows interleaved by KV group (B reordered to
        // q | k | v for training and back for the gradients).
        Case(name: "falcon40b_f32", prefix: "base_model.model.transformer.h.",
             leaves: [.query: "self_attention.query_key_value", .output: "self_attention.dense",
                      .up: "mlp.dense_h_to_4h", .down: "mlp.dense_4h_to_h"]),
        // Qwen-7B (remote code; PEFT on a torch module of the published layout): RMSNorm, rotary,
        // one pair on the fused, biased c_attn; MLP c_proj(w1(x) · silu(w2(x))), w2 the gate.
        Case(name: "qwen7b_f32", prefix: "base_model.model.transformer.h.",
             leaves: [.query: "attn.c_attn", .output: "attn.c_proj", .gate: "mlp.w2", .up: "mlp.w1", .down: "mlp.c_proj"]),
        // Baichuan 2 7B (RoPE) and 13B (ALiBi): one pair on the fused W_pack, SwiGLU; the NormHead
        // is the frozen head with normalised rows.
        Case(name: "baichuan2_7b_f32", prefix: "base_model.model.model.layers.",
             leaves: [.query: "self_attn.W_pack", .output: "self_attn.o_proj",
                      .gate: "mlp.gate_proj", .up: "mlp.up_proj", .down: "mlp.down_proj"]),
        Case(name: "baichuan2_13b_f32", prefix: "base_model.model.model.layers.",
             leaves: [.query: "self_attn.W_pack", .output: "self_attn.o_proj",
                      .gate: "mlp.gate_proj", .up: "mlp.up_proj", .down: "mlp.down_proj"]),
    ]

    static func adapter(_ c: Case, _ tensors: [String: [Float]], config: LlamaConfig, suffix: String = "") throws -> LoRAWeights {
        var pairs: [LoRAKey: LoRAPair] = [:]
        for l in 0 ..< config.layerCount {
            for (t, leaf) in c.leaves {
                let name = c.prefix + "\(l)." + leaf
                guard let a = tensors[name + ".lora_A.weight" + suffix], let b = tensors[name + ".lora_B.weight" + suffix] else {
                    throw Failure(.missingInput, "no golden tensors for \(name)\(suffix)")
                }
                let (n, m) = t.adapterFeatures(config)
                pairs[LoRAKey(layer: l, target: t)] = try LoRAPair(rank: 8, inFeatures: n, outFeatures: m, a: a, b: b)
            }
        }
        let lora = LoRAConfig(rank: 8, alpha: 16, dropout: 0, useRSLoRA: false,
                              targets: c.leaves.keys.sorted().map(\.rawValue))
        return try LoRAWeights(modelConfig: config, loraConfig: lora, pairs: pairs)
    }

    @Test(arguments: cases)
    func lossAndEveryGradientMatchPEFT(_ c: Case) throws {
        let step = try QLoRAGolden.step(c.name)
        // What qlora-train trains on: the base read through Verify's family layout.
        let base = try FrozenBase.load(modelDirectory: Fixtures.path(step.model), storage: .float32)
        let config = base.config
        let tensors = try QLoRAGolden.tensors("step_\(c.name).safetensors")
        let adapter = try Self.adapter(c, tensors, config: config)
        let expected = try Self.adapter(c, tensors, config: config, suffix: ".grad")
        let expectedLoss = step.loss
        for recompute in [false, true] {
            let model = try LoRAModel(base: base, config: config, adapter: adapter, threadCount: 2, recompute: recompute)
            let (loss, gradients) = try model.lossAndGradients(examples: [step.example])
            let worst = QLoRAGolden.expectMatchesPEFT(loss: loss, gradients: gradients, expectedLoss: expectedLoss, expected: expected)
            print("\(c.name) recompute=\(recompute): loss \(loss) (PEFT \(expectedLoss)), worst relative gradient difference \(worst)")
        }
    }

    /// The golden steps whose family has a converter GGUF that training reads.
    static let ggufCases = cases.filter { ["gpt2_f32", "mpt_f32", "falcon_f32", "falcon40b_f32", "phi_f32", "qwen7b_f32"].contains($0.name) }

    /// `qlora-train` on the family's f32 GGUF (`golden/families/<family>.f32.gguf`, llama.cpp's
    /// converter) trains as on its HF checkpoint: the frozen weights read through the GGUF layout are
    /// the HF ones bit for bit, so the loss and every adapter gradient of the golden step are equal,
    /// and within PEFT's to 1e-4.
    @Test(arguments: ggufCases)
    func ggufBaseStepEqualsHFBase(_ c: Case) throws {
        let step = try QLoRAGolden.step(c.name)
        let modelPath = step.model, expectedLoss = step.loss, example = step.example
        let family = modelPath.split(separator: "/").last.map(String.init) ?? modelPath
        let hf = try FrozenBase.load(modelDirectory: Fixtures.path(modelPath), storage: .float32)
        let gguf = try FrozenBase.load(familyGGUF: Fixtures.path("golden/families/\(family).f32.gguf"), storage: .float32)
        #expect(gguf.config.family == hf.config.family)
        #expect(gguf.config.block == hf.config.block)
        let tensors = try QLoRAGolden.tensors("step_\(c.name).safetensors")
        let adapter = try Self.adapter(c, tensors, config: hf.config)
        let expected = try Self.adapter(c, tensors, config: hf.config, suffix: ".grad")
        let (hfLoss, hfGradients) = try LoRAModel(base: hf, config: hf.config, adapter: adapter, threadCount: 2)
            .lossAndGradients(examples: [example])
        // The GGUF's configuration keeps its own float32 epsilon and context length: the same
        // matrices, made for it.
        let ggufAdapter = try Self.adapter(c, tensors, config: gguf.config)
        let (loss, gradients) = try LoRAModel(base: gguf, config: gguf.config, adapter: ggufAdapter, threadCount: 2)
            .lossAndGradients(examples: [example])
        #expect(abs(loss - expectedLoss) <= 1e-4 * abs(expectedLoss), "loss \(loss) vs PEFT \(expectedLoss)")
        var worst: Float = 0, worstPEFT: Float = 0
        for key in adapter.keys {
            guard let g = gradients[key], let h = hfGradients[key], let e = expected[key] else { Issue.record("missing \(key)"); continue }
            let d = max(relativeDifference(g.a, h.a), relativeDifference(g.b, h.b))
            worst = max(worst, d)
            worstPEFT = max(worstPEFT, relativeDifference(g.a, e.a), relativeDifference(g.b, e.b))
            #expect(d <= 1e-6, "\(key): GGUF vs HF relative gradient difference \(d)")
        }
        print("\(c.name) GGUF base: loss \(loss) (HF base \(hfLoss), PEFT \(expectedLoss)); GGUF vs HF gradients \(worst), vs PEFT \(worstPEFT)")
        #expect(abs(loss - hfLoss) <= 1e-6 * abs(hfLoss))
        #expect(worstPEFT <= 1e-4)
    }

    /// Baichuan 2's NormHead: the frozen head is used with its rows normalised, so a checkpoint whose
    /// head rows are scaled by arbitrary factors trains exactly as the golden (whose stored rows are
    /// already unit length); without the normalisation the loss would move by the scale.
    @Test func normHeadTrainsOnTheNormalisedRows() throws {
        let step = try QLoRAGolden.step("baichuan2_7b_f32")
        let source = Fixtures.path("families/baichuan2-7b"), dir = Fixtures.temporaryDirectory()
        for name in try FileManager.default.contentsOfDirectory(atPath: source) where name != "model.safetensors" {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: dir + "/" + name)
        }
        let file = try SafetensorsFile(path: source + "/model.safetensors")
        let specs = try file.tensors.map { t -> (SafetensorsTensorSpec, [UInt8]) in
            guard t.dtype == .f32 else { throw Failure(.malformedInput, "\(t.name) is not F32") }
            var values = (0 ..< t.elementCount).map {
                Float(bitPattern: UInt32(littleEndian: file.bytes(of: t).loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
            if t.name == "lm_head.weight", let width = t.shape.last {
                for i in values.indices { values[i] *= Float(1 + (i / width) % 7) * 0.75 }
            }
            return (SafetensorsTensorSpec(name: t.name, dtype: .f32, shape: t.shape),
                    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } })
        }
        try Data(try SafetensorsWriter.serialize(specs, metadata: [("format", "pt")])).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let c = try #require(Self.cases.first { $0.name == "baichuan2_7b_f32" })
        let base = try FrozenBase.load(modelDirectory: dir, storage: .float32)
        let tensors = try QLoRAGolden.tensors("step_baichuan2_7b_f32.safetensors")
        let expected = try Self.adapter(c, tensors, config: base.config, suffix: ".grad")
        let model = try LoRAModel(base: base, config: base.config, adapter: try Self.adapter(c, tensors, config: base.config), threadCount: 1)
        let (loss, gradients) = try model.lossAndGradients(examples: [step.example])
        QLoRAGolden.expectMatchesPEFT(loss: loss, gradients: gradients, expectedLoss: step.loss, expected: expected)
    }

}
