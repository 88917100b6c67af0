import Foundation
import Formats
import Testing
import TensorCore
import TestSupport
import Verify

/// Loading `LlamaModel` weights from every input kind: the logits must equal transformers' fp32
/// goldens (made by testdata/scripts/make_fixtures.py and make_verify_goldens.py).
@Suite struct LoadTests {
    struct Golden {
        let tokens: [Int]
        let logits: [Float]
        let vocabulary: Int
        let text: String
    }

    static func golden(_ model: String) throws -> Golden {
        let json = try JSONParser.parse(try Fixtures.data("golden/\(model).tokens.json"))
        let tokens = try TokenList.parse(json)
        let logits = try NPYArray(contentsOf: Fixtures.path("golden/\(model).logits_f32.npy"))
        return Golden(tokens: tokens, logits: logits.floats(), vocabulary: logits.shape[1],
                      text: json["text"]?.stringValue ?? "")
    }

    static func logits(_ path: String, tokens: [Int], threads: Int = 2, adapter: LoRAAdapter? = nil) throws -> [Float] {
        let checkpoint = try LlamaCheckpoint.open(path: path)
        return try checkpoint.model(threads: threads, adapter: adapter).logits(for: tokens)
    }

    /// f32 inputs (and f16/bf16 inputs whose values are exact in the stored type) reproduce the
    /// golden logits to 1e-4 of their range.
    @Test(arguments: [
        ("tiny-llama-spm", "tiny-llama-spm"),               // HF, bf16 weights, untied, default RoPE
        ("tiny-llama-bpe", "tiny-llama-bpe"),               // HF, f16 weights, tied, llama3 RoPE
        ("tiny-llama-spm", "golden/tiny-llama-spm.f32.gguf"),
        ("tiny-llama-bpe", "golden/tiny-llama-bpe.f32.gguf"),   // rope_freqs divisors
        ("tiny-llama-spm", "golden/tiny-llama-spm.bf16.gguf"),  // bf16 weights stored as bf16: exact
        ("tiny-llama-bpe", "golden/tiny-llama-bpe.f16.gguf"),   // f16 weights stored as f16: exact
    ])
    func exactInputsMatchTransformers(model: String, input: String) throws {
        let golden = try Self.golden(model)
        let logits = try Self.logits(Fixtures.path(input), tokens: golden.tokens)
        #expect(logits.count == golden.logits.count)
        let tolerance = 1e-4 * valueRange(golden.logits)
        let worst = maxAbsDifference(logits, golden.logits)
        #expect(worst <= tolerance, "\(input): max |Δlogit| \(worst) > \(tolerance)")
    }

    /// A cast to the other 16-bit type rounds some weights: close, not exact.
    @Test(arguments: [
        ("tiny-llama-spm", "golden/tiny-llama-spm.f16.gguf"),
        ("tiny-llama-bpe", "golden/tiny-llama-bpe.bf16.gguf"),
    ])
    func lossyCastsStayClose(model: String, input: String) throws {
        let golden = try Self.golden(model)
        let logits = try Self.logits(Fixtures.path(input), tokens: golden.tokens)
        let worst = maxAbsDifference(logits, golden.logits)
        #expect(worst <= 2e-2 * valueRange(golden.logits), "\(input): max |Δlogit| \(worst)")
        #expect(worst > 0)
    }

    /// The shared tiny LLaMA (REFERENCE §7.4): HF bf16, llama.cpp's F16 and Q8_0 conversions.
    @Test func sharedTinyModelInEveryFormat() throws {
        let reference = try TinyLlama.referenceLogits().floats()
        let range = valueRange(reference)
        let hf = try Self.logits(Fixtures.path("vectors/tiny-llama"), tokens: TinyLlama.tokens)
        #expect(maxAbsDifference(hf, reference) <= 1e-4 * range)
        let f16 = try Self.logits(Fixtures.path("vectors/fixtures/tiny-f16.gguf"), tokens: TinyLlama.tokens)
        #expect(maxAbsDifference(f16, reference) <= 5e-3 * range)
        let q8 = try Self.logits(Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"), tokens: TinyLlama.tokens)
        let q8Error = maxAbsDifference(q8, reference)
        #expect(q8Error > 0 && q8Error <= 3e-2 * range, "Q8_0: max |Δlogit| \(q8Error), range \(range)")
        var comparison = LogitComparison()
        comparison.add(base: reference, candidate: q8, vocabularySize: 128, tokens: TinyLlama.tokens)
        #expect(comparison.summary.meanKLD.value < 1e-3)
    }

    /// Q/K rows of a GGUF read back in HF order: every tensor of the f32 GGUF equals the HF
    /// directory's (bf16 widens exactly).
    @Test(arguments: ["tiny-llama-spm", "tiny-llama-bpe"])
    func ggufTensorsReadBackInHFLayout(model: String) throws {
        let hf = try LlamaCheckpoint.open(path: Fixtures.path(model))
        let gguf = try LlamaCheckpoint.open(path: Fixtures.path("golden/\(model).f32.gguf"))
        #expect(hf.config.vocabularySize == gguf.config.vocabularySize)
        #expect(hf.config.tiedEmbeddings == gguf.config.tiedEmbeddings)
        #expect(hf.tensors.tensors.count == gguf.tensors.tensors.count)
        var permuted = 0
        for t in hf.tensors.tensors {
            let g = try #require(gguf.tensors[t.name], "\(t.name) missing from the GGUF")
            #expect(g.shape == t.shape)
            if g.permutation != nil { permuted += 1 }
            let a = try t.decodeAll(from: hf.source, threads: 2)
            let b = try g.decodeAll(from: gguf.source, threads: 2)
            #expect(a == b, "\(t.name) (\(g.entry.name))")
        }
        #expect(permuted == 2 * hf.config.layerCount)
    }

    @Test func ggufConfigurationMatchesConfigJSON() throws {
        for model in ["tiny-llama-spm", "tiny-llama-bpe"] {
            let hf = try LlamaCheckpoint.open(path: Fixtures.path(model)).config
            let gguf = try LlamaCheckpoint.open(path: Fixtures.path("golden/\(model).f32.gguf")).config
            #expect(gguf.hiddenSize == hf.hiddenSize && gguf.layerCount == hf.layerCount)
            #expect(gguf.headCount == hf.headCount && gguf.kvHeadCount == hf.kvHeadCount)
            #expect(gguf.headDimension == hf.headDimension && gguf.intermediateSize == hf.intermediateSize)
            #expect(gguf.maxPositions == hf.maxPositions && gguf.ropeTheta == hf.ropeTheta)
            #expect(Float(gguf.rmsNormEpsilon) == Float(hf.rmsNormEpsilon))
            // The divisors reproduce transformers' llama3 frequencies to float32 rounding.
            let a = RoPE.inverseFrequencies(headDimension: hf.headDimension, theta: hf.ropeTheta, scaling: hf.ropeScaling)
            let b = RoPE.inverseFrequencies(headDimension: gguf.headDimension, theta: gguf.ropeTheta, scaling: gguf.ropeScaling)
            for (x, y) in zip(a, b) { #expect(abs(x - y) <= 2e-7 * x, "\(model): \(a) vs \(b)") }
            if model == "tiny-llama-bpe" {
                guard case .divisors(let d) = gguf.ropeScaling else {
                    Issue.record("expected rope_freqs divisors, got \(gguf.ropeScaling)")
                    continue
                }
                #expect(d.count == 8)
            }
        }
    }

    /// The tokenizer comes from the same input: HF files or GGUF metadata give the golden ids.
    @Test(arguments: ["tiny-llama-spm", "tiny-llama-bpe"])
    func tokenizerFromEitherFormat(model: String) throws {
        let golden = try Self.golden(model)
        for path in [Fixtures.path(model), Fixtures.path("golden/\(model).f32.gguf")] {
            let tokenizer = try LlamaCheckpoint.open(path: path).tokenizer()
            #expect(tokenizer.encode(golden.text) == golden.tokens, "\(path)")
        }
    }

    /// Layers are decoded into the buffers the model hands over: the same storage every call.
    @Test func layersDecodeIntoTheGivenBuffers() throws {
        let checkpoint = try LlamaCheckpoint.open(path: Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"))
        let weights = checkpoint.weights(threads: 2)
        var layer = LlamaLayerWeights(config: checkpoint.config)
        let before = layer.gate.withUnsafeBufferPointer { $0.baseAddress }
        try weights.loadLayer(1, into: &layer)
        #expect(layer.gate.withUnsafeBufferPointer { $0.baseAddress } == before)
        try layer.checkSizes(layer: 1, config: checkpoint.config)
        // Row 3 of the embedding equals row 3 of the whole decoded matrix (the tied-head path).
        var row = [Float](repeating: 0, count: checkpoint.config.hiddenSize)
        try row.withUnsafeMutableBufferPointer { try weights.embeddingRow(3, into: $0) }
        let dim = checkpoint.config.hiddenSize
        let table = checkpoint.tensors["model.embed_tokens.weight"]
        let all = try #require(table).decodeAll(from: checkpoint.source, threads: 1)
        #expect(row == Array(all[3 * dim ..< 4 * dim]))
    }

    // MARK: - bitsandbytes

    /// transformers + bitsandbytes checkpoints (NF4 with double quant, FP4, int8): logits equal
    /// those of the fp32 model with every Linear replaced by bitsandbytes' own dequantization
    /// (testdata/scripts/make_fixtures.py, step bnb).
    @Test(arguments: ["nf4", "fp4", "int8"])
    func bitsandbytesCheckpointsMatchDequantizedReference(kind: String) throws {
        let golden = try Self.golden("tiny-llama-spm")
        let expected = try NPYArray(contentsOf: Fixtures.path("golden/tiny-llama-spm-\(kind).dequant_logits_f32.npy")).floats()
        let checkpoint = try LlamaCheckpoint.open(path: Fixtures.path("golden/tiny-llama-spm-\(kind)"))
        let quantized = checkpoint.tensors.tensors.filter { !$0.supportsRowRanges }
        #expect(quantized.count == 14)
        #expect(quantized.allSatisfy { $0.typeName == (kind == "nf4" ? "NF4+DQ" : kind.uppercased()) })
        let logits = try checkpoint.model(threads: 2).logits(for: golden.tokens)
        let worst = maxAbsDifference(logits, expected)
        #expect(worst <= 1e-4 * valueRange(expected), "\(kind): max |Δlogit| \(worst)")
    }

    /// The shared NF4 fixture (REFERENCE §7.4), alone and with the shared adapter merged in fp32.
    @Test func sharedNF4FixtureWithAndWithoutAdapter() throws {
        let nf4 = Fixtures.path("vectors/fixtures/tiny-llama-nf4")
        let plain = try NPYArray(contentsOf: Fixtures.path("vectors/tiny-llama/ref_logits_nf4dq_dequant_f32.npy")).floats()
        let logits = try Self.logits(nf4, tokens: TinyLlama.tokens)
        #expect(maxAbsDifference(logits, plain) <= 1e-4 * valueRange(plain))
        let merged = try NPYArray(contentsOf: Fixtures.path("vectors/tiny-llama/ref_logits_nf4dq_plus_lora_merged_f32.npy")).floats()
        let adapter = try LoRAAdapter(directory: Fixtures.path("vectors/fixtures/tiny-adapter"))
        let withAdapter = try Self.logits(nf4, tokens: TinyLlama.tokens, adapter: adapter)
        #expect(maxAbsDifference(withAdapter, merged) <= 1e-4 * valueRange(merged))
    }

    // MARK: - LoRA

    /// PEFT's forward with the adapter (unmerged) against W + s·B·A applied while loading.
    @Test func loraAdapterMatchesPEFT() throws {
        let adapter = try LoRAAdapter(directory: Fixtures.path("vectors/fixtures/tiny-adapter"))
        #expect(adapter.deltas.count == 14)
        #expect(adapter.deltas.values.allSatisfy { $0.scale == 2 && $0.rank == 8 })
        let golden = try NPYArray(contentsOf: Fixtures.path("golden/verify/tiny-llama.lora_logits_f32.npy")).floats()
        let logits = try Self.logits(Fixtures.path("vectors/tiny-llama"), tokens: TinyLlama.tokens, adapter: adapter)
        let worst = maxAbsDifference(logits, golden)
        #expect(worst <= 1e-4 * valueRange(golden), "max |Δlogit| \(worst)")
        // And not the base model's logits.
        #expect(maxAbsDifference(logits, try TinyLlama.referenceLogits().floats()) > 1e-2)
        // The same adapter on the GGUF base (q/k updates land after the un-permutation).
        let viaGGUF = try Self.logits(Fixtures.path("vectors/fixtures/tiny-f16.gguf"), tokens: TinyLlama.tokens, adapter: adapter)
        #expect(maxAbsDifference(viaGGUF, golden) <= 5e-3 * valueRange(golden))
    }

    @Test func loraBLASMatchesScalarReference() throws {
        var rng = SplitMix64(seed: 11)
        let (out, inF, r) = (24, 40, 5)
        let delta = LoRAAdapter.Delta(
            module: "model.layers.0.mlp.up_proj", rank: r, inFeatures: inF, outFeatures: out, scale: 0.75,
            a: (0 ..< r * inF).map { _ in rng.nextFloat() }, b: (0 ..< out * r).map { _ in rng.nextFloat() })
        let base = (0 ..< out * inF).map { _ in rng.nextFloat() }
        var expected = base
        LoRAAdapter.applyReference(delta, to: &expected)
        var fast = base
        let adapter = LoRAAdapter(deltas: ["model.layers.0.mlp.up_proj.weight": delta])
        try fast.withUnsafeMutableBufferPointer { try adapter.apply(to: $0, weightName: "model.layers.0.mlp.up_proj.weight") }
        #expect(maxAbsDifference(fast, expected) <= 1e-5)
        // Other names are untouched.
        var other = base
        try other.withUnsafeMutableBufferPointer { try adapter.apply(to: $0, weightName: "model.layers.0.mlp.down_proj.weight") }
        #expect(other == base)
    }

    @Test func loraConfigurationVariants() throws {
        let dir = Fixtures.temporaryDirectory("wconv-lora")
        let source = Fixtures.path("vectors/fixtures/tiny-adapter")
        try FileManager.default.copyItem(atPath: source + "/adapter_model.safetensors", toPath: dir + "/adapter_model.safetensors")
        func write(_ config: String) throws {
            try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        }
        // rsLoRA: alpha / sqrt(r); alpha_pattern overrides one module family.
        try write(#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": true, "target_modules": "model\\.layers\\.\\d+\\.(self_attn|mlp)\\.\\w+_proj", "alpha_pattern": {"down_proj": 4}}"#)
        let rs = try LoRAAdapter(directory: dir)
        #expect(rs.deltas["model.layers.0.self_attn.q_proj.weight"]?.scale == Float(16 / 8.0.squareRoot()))
        #expect(rs.deltas["model.layers.1.mlp.down_proj.weight"]?.scale == Float(4 / 8.0.squareRoot()))
        // target_modules that leave out modules the file has.
        try write(#"{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}"#)
        #expect(throws: PathError.self) { try LoRAAdapter(directory: dir) }
        do {
            _ = try LoRAAdapter(directory: dir)
        } catch let error as PathError {
            #expect(error.kind == .malformedInput)
            #expect("\(error)".contains("target_modules does not select"))
        }
        try write(#"{"r": 8, "lora_alpha": 16, "use_dora": true}"#)
        #expect(throws: PathError.self) { try LoRAAdapter(directory: dir) }
        try write(#"{"r": 4, "lora_alpha": 16}"#)
        do {
            _ = try LoRAAdapter(directory: dir)
            Issue.record("a rank that disagrees with the file was accepted")
        } catch let error as PathError {
            #expect("\(error)".contains("expected rank 4 as adapter_config.json gives"))
        }
        try write(#"{"lora_alpha": 16}"#)
        #expect(throws: PathError.self) { try LoRAAdapter(directory: dir) }
    }

    /// An adapter made for another model shape is refused before anything runs.
    @Test func loraShapeMustFitTheBase() throws {
        let adapter = try LoRAAdapter(directory: Fixtures.path("vectors/fixtures/tiny-adapter"))
        let other = try LlamaCheckpoint.open(path: Fixtures.path("tiny-llama-spm"))   // hidden 64, not 128
        #expect(throws: PathError.self) { try other.model(threads: 1, adapter: adapter) }
    }

    // MARK: - Errors

    @Test func bareSafetensorsNeedsItsDirectory() throws {
        do {
            _ = try LlamaCheckpoint(try ModelInput.open(path: Fixtures.path("vectors/fixtures/tiny-adapter/adapter_model.safetensors")))
            Issue.record("a bare safetensors file was accepted")
        } catch let error as PathError {
            #expect(error.kind == .unsupported)
            #expect("\(error)".contains("pass the model directory"))
        }
    }

    @Test func ggufWithoutRequiredMetadataIsRejected() throws {
        let metadata = GGUFMetadata([GGUFKeyValue(GGUFKeys.General.architecture, .string("llama")),
                                     GGUFKeyValue("llama.embedding_length", .uint32(64))])
        #expect(throws: ModelLoadError.missingMetadata("llama.attention.head_count")) {
            try LlamaConfig(gguf: metadata, tensors: [], ropeDivisors: nil)
        }
        let falcon = GGUFMetadata([GGUFKeyValue(GGUFKeys.General.architecture, .string("falcon"))])
        #expect(throws: ModelLoadError.missingMetadata("falcon.embedding_length")) {
            try LlamaConfig(gguf: falcon, tensors: [], ropeDivisors: nil)
        }
        let other = GGUFMetadata([GGUFKeyValue(GGUFKeys.General.architecture, .string("bloom"))])
        #expect(throws: ModelLoadError.unsupportedArchitecture("bloom")) {
            try LlamaConfig(gguf: other, tensors: [], ropeDivisors: nil)
        }
    }

    /// A tensor whose shape disagrees with the configuration is named when it is read.
    @Test func wrongTensorShapeIsNamed() throws {
        let dir = Fixtures.temporaryDirectory("wconv-shape")
        let source = Fixtures.path("vectors/tiny-llama")
        for file in ["model.safetensors", "tokenizer.model"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir + "/" + file)
        }
        // Claim a wider MLP than the weights have.
        var config = try String(contentsOfFile: source + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "\"intermediate_size\": 256", with: "\"intermediate_size\": 512")
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let checkpoint = try LlamaCheckpoint.open(path: dir)
        do {
            _ = try checkpoint.model(threads: 1).logits(for: [1, 2])
            Issue.record("a mis-shaped tensor was accepted")
        } catch let error as PathError {
            #expect(error.kind == .malformedInput)
            #expect("\(error)".contains("model.layers.0.mlp.gate_proj.weight' has shape [256, 128], the configuration needs [512, 128]"))
        }
    }

    /// Stored tensors that cannot be read as the configuration needs are refused with their name.
    @Test func tensorLayoutErrors() throws {
        func entry(_ encoding: TensorEncoding, _ shape: [Int], bytes: Int) -> TensorEntry {
            TensorEntry(name: "blk.0.attn_q.weight", encoding: encoding, shape: shape, byteCount: bytes, file: "m.gguf",
                        fileOffset: 0, index: 0)
        }
        #expect(throws: ModelLoadError.undecodableType(name: "blk.0.attn_q.weight", type: "I32")) {
            try ModelTensor(name: "q", entry: entry(.ggml(.i32), [4, 8], bytes: 128), permutation: nil)
        }
        #expect(throws: ModelLoadError.self) {   // 48 is not a multiple of Q8_0's 32
            try ModelTensor(name: "q", entry: entry(.ggml(.q8_0), [2, 48], bytes: 1000), permutation: nil)
        }
        #expect(throws: ModelLoadError.self) {   // 2 rows of 34 bytes do not fit 60
            try ModelTensor(name: "q", entry: entry(.ggml(.q8_0), [2, 32], bytes: 60), permutation: nil)
        }
        #expect(throws: ModelLoadError.permutationDoesNotFit(name: "blk.0.attn_q.weight", rows: 6, heads: 4)) {
            try ModelTensor(name: "q", entry: entry(.ggml(.f32), [6, 8], bytes: 192), permutation: .toHF(heads: 4))
        }
        let ok = try ModelTensor(name: "q", entry: entry(.ggml(.q8_0), [8, 64], bytes: 8 * 68), permutation: .toHF(heads: 2))
        #expect(ok.rowLength == 64 && ok.rowCount == 8 && ok.rowByteCount == 68 && ok.supportsRowRanges)
    }

    @Test func tokenFilesInBothForms() throws {
        #expect(try TokenList.parse(JSONParser.parse(Array("[1, 2, 3]".utf8))) == [1, 2, 3])
        #expect(try TokenList.parse(JSONParser.parse(Array(#"{"tokens": [4], "text": "x"}"#.utf8))) == [4])
        #expect(throws: Failure.self) { try TokenList.parse(JSONParser.parse(Array("[1, -2]".utf8))) }
        #expect(throws: Failure.self) { try TokenList.parse(JSONParser.parse(Array(#"{"ids": [1]}"#.utf8))) }
    }
}
