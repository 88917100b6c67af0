import Foundation
import Formats
import Testing
import TensorCore
import TestSupport
import Verify

/// Copies of the shared tiny LLaMA with chosen tensors changed, written as a new HF directory.
enum ModifiedModel {
    /// Writes `vectors/tiny-llama` with every tensor whose name contains `match` multiplied by
    /// `factor` (rounded back to bf16) into a fresh directory; returns its path.
    static func scaled(_ match: String, by factor: Float) throws -> String {
        let source = Fixtures.path("vectors/tiny-llama")
        let dir = Fixtures.temporaryDirectory("wconv-perturbed")
        for file in ["config.json", "tokenizer.model", "generation_config.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir + "/" + file)
        }
        let file = try SafetensorsFile(path: source + "/model.safetensors")
        var tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])] = []
        for t in file.tensors {
            var data = Array(file.bytes(of: t))
            if t.name.contains(match) {
                precondition(t.dtype == .bf16)
                for i in 0 ..< t.elementCount {
                    let bits = UInt16(data[2 * i]) | UInt16(data[2 * i + 1]) << 8
                    let scaled = HalfFloat.bf16Bits(HalfFloat.float(bf16Bits: bits) * factor)
                    data[2 * i] = UInt8(scaled & 0xFF)
                    data[2 * i + 1] = UInt8(scaled >> 8)
                }
            }
            tensors.append((t.spec, data))
        }
        let bytes = try SafetensorsWriter.serialize(tensors, metadata: [("format", "pt")])
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }
}

@Suite struct ReportTests {
    static func options(context: Int = 64, chunks: Int? = 6, thresholds: VerifyThresholds = VerifyThresholds()) -> VerifyOptions {
        var o = VerifyOptions()
        o.contextLength = context
        o.maxChunks = chunks
        o.threads = 2
        o.thresholds = thresholds
        return o
    }

    /// The default text tokenized by the tiny model's SentencePiece tokenizer.
    static func textTokens(_ checkpoint: LlamaCheckpoint) throws -> (tokens: [Int], bos: Int?) {
        let tokenizer = try checkpoint.tokenizer()
        return (tokenizer.encode(EvaluationText.default), tokenizer.prefixTokens.first)
    }

    static let strict = VerifyThresholds(maxMeanKLD: 1e-3, minTop1Agreement: 0.9, maxPerplexityRatio: 1.01)

    @Test func modelAgainstItselfIsIdentical() throws {
        let model = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let (tokens, bos) = try Self.textTokens(model)
        #expect(bos == 1)
        let (report, _) = try ModelVerifier.verify(reference: .model(model), candidate: model, tokens: tokens, bos: bos,
                                                   options: Self.options(thresholds: Self.strict))
        #expect(report.chunkCount == 6)
        #expect(report.logits.count == 6 * 31)   // positions 32 … 62 of each chunk
        #expect(report.logits.meanKLD.value == 0)
        #expect(report.logits.kld.maximum == 0)
        #expect(report.logits.sameTop.value == 1)
        #expect(report.logits.perplexityRatio.value == 1)
        #expect(report.logits.rmsDeltaP.value == 0)
        #expect(report.layers.count == 2 + 2)
        #expect(report.layers.allSatisfy { $0.difference.relativeError == 0 && $0.difference.cosine > 0.999_999 && !$0.diverges })
        #expect(report.firstDivergentLayer == nil)
        #expect(report.tensors.count == 21)
        #expect(report.tensors.allSatisfy { $0.difference?.maxAbsDifference == 0 && $0.difference?.snrDecibels == .infinity })
        #expect(report.passed)
    }

    /// Layer 1's MLP scaled by 1.5: layer 0 stays exact, layer 1 is named, the thresholds fail,
    /// and the tensor table shows exactly the three changed matrices.
    @Test func perturbedLayerIsNamedAndFails() throws {
        let reference = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let broken = try LlamaCheckpoint.open(path: try ModifiedModel.scaled("layers.1.mlp.", by: 1.5))
        let (tokens, bos) = try Self.textTokens(reference)
        let (report, _) = try ModelVerifier.verify(reference: .model(reference), candidate: broken, tokens: tokens, bos: bos,
                                                   options: Self.options(thresholds: Self.strict))
        #expect(report.layers[0].name == "model.embed_tokens" && report.layers[0].difference.relativeError == 0)
        #expect(report.layers[1].name == "model.layers.0" && report.layers[1].difference.relativeError == 0)
        #expect(report.layers[2].difference.relativeError > 0.05)
        #expect(report.firstDivergentLayer?.name == "model.layers.1")
        #expect(report.firstDivergentLayer?.layer == 1)
        #expect(report.logits.meanKLD.value > 1e-3)
        #expect(!report.passed)
        #expect(report.failures.contains { $0.hasPrefix("mean KLD") })
        let changed = report.tensors.filter { $0.difference?.maxAbsDifference != 0 }.map(\.name).sorted()
        #expect(changed == ["model.layers.1.mlp.down_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                            "model.layers.1.mlp.up_proj.weight"])
        let table = report.table()
        #expect(table.contains("first divergent layer: model.layers.1"))
        #expect(table.contains("verdict: FAIL: mean KLD"))
    }

    /// The HF bf16 model against llama.cpp's Q8_0 conversion of it (names mapped, Q/K
    /// un-permuted): small KLD, and no tensor or layer looks broken.
    @Test func q8_0AgainstReferenceIsClose() throws {
        let reference = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let q8 = try LlamaCheckpoint.open(path: Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"))
        let (tokens, bos) = try Self.textTokens(reference)
        let (report, _) = try ModelVerifier.verify(reference: .model(reference), candidate: q8, tokens: tokens, bos: bos,
                                                   options: Self.options(thresholds: Self.strict))
        #expect(report.logits.meanKLD.value > 0 && report.logits.meanKLD.value < 1e-4)
        #expect(report.logits.sameTop.value > 0.9)
        #expect(report.firstDivergentLayer == nil)
        #expect(report.passed)
        let quantized = report.tensors.filter { $0.candidateType == "Q8_0" }
        #expect(quantized.count == 16)   // 14 matrices, embeddings, head; norms stay F32
        #expect(quantized.allSatisfy { ($0.difference?.snrDecibels ?? 0) > 40 && ($0.difference?.cosine ?? 0) > 0.9999 })
        #expect(report.tensors.filter { $0.candidateType == "F32" }.allSatisfy { $0.difference?.maxAbsDifference == 0 })
        #expect(report.tensorsOnlyInReference.isEmpty && report.tensorsOnlyInCandidate.isEmpty)
    }

    /// A baseline stored during a run and read back gives the same verdict: identical top-1,
    /// perplexities and Δp, and a KLD never above the exact one (equal to it with K = vocab).
    @Test(arguments: [128, LogProbBaseline.defaultTopK])
    func baselineRoundTripKeepsTheVerdict(topK: Int) throws {
        let reference = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let broken = try LlamaCheckpoint.open(path: try ModifiedModel.scaled("layers.1.mlp.", by: 1.5))
        let (tokens, bos) = try Self.textTokens(reference)
        var options = Self.options(thresholds: Self.strict)
        options.baselineTopK = topK
        let (live, stored) = try ModelVerifier.verify(reference: .model(reference), candidate: broken, tokens: tokens, bos: bos,
                                                      options: options, saveBaseline: true)
        let baseline = try #require(stored)
        #expect(baseline.count == live.logits.count && baseline.topK == topK)
        let path = Fixtures.temporaryDirectory("wconv-baseline") + "/ref.kld"
        try baseline.write(to: path)
        let reread = try LogProbBaseline(contentsOf: path)
        for (candidate, expectPass) in [(reference, true), (broken, false)] {
            let (fromBaseline, _) = try ModelVerifier.verify(
                reference: .baseline(reread, path: path, checkpoint: nil), candidate: candidate, tokens: [], bos: nil,
                options: options)
            #expect(fromBaseline.passed == expectPass)
            #expect(fromBaseline.layers.isEmpty && fromBaseline.tensors.isEmpty)
            #expect(fromBaseline.baselinePath == path)
            #expect(fromBaseline.logits.count == live.logits.count)
            if expectPass {
                #expect(fromBaseline.logits.meanKLD.value < 1e-9)
                #expect(fromBaseline.logits.sameTop.value == 1)
                continue
            }
            let s = fromBaseline.logits, l = live.logits
            #expect(s.sameTop.value == l.sameTop.value)
            #expect(abs(s.candidatePerplexity.value - l.candidatePerplexity.value) <= 1e-9 * l.candidatePerplexity.value)
            #expect(abs(s.basePerplexity.value - l.basePerplexity.value) <= 1e-5 * l.basePerplexity.value)
            #expect(abs(s.rmsDeltaP.value - l.rmsDeltaP.value) <= 1e-5 * l.rmsDeltaP.value)
            #expect(s.meanKLD.value <= l.meanKLD.value * (1 + 1e-5))
            if topK == 128 {
                #expect(abs(s.meanKLD.value - l.meanKLD.value) <= 1e-5 * l.meanKLD.value)
            }
            // The failures the live run reports, bar the coarse-grained KLD, are reported again.
            #expect(fromBaseline.failures.filter { !$0.hasPrefix("mean KLD") } == live.failures.filter { !$0.hasPrefix("mean KLD") })
        }
    }

    /// A baseline recorded on its own (REF --save-baseline) equals the one recorded alongside a
    /// candidate.
    @Test func standaloneBaselineEqualsRecordedOne() throws {
        let reference = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let (tokens, bos) = try Self.textTokens(reference)
        let options = Self.options(chunks: 2)
        let alone = try ModelVerifier.makeBaseline(reference: reference, tokens: tokens, bos: bos, options: options)
        let (_, together) = try ModelVerifier.verify(reference: .model(reference), candidate: reference, tokens: tokens, bos: bos,
                                                     options: options, saveBaseline: true)
        #expect(alone.serialized() == together?.serialized())
        #expect(alone.contextLength == 64 && alone.tokens.count == 128)
        #expect(alone.tokens[0] == 1 && alone.tokens[64] == 1)   // BOS at each chunk start
    }

    @Test func baselineMustFitTheCandidate() throws {
        let tiny = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let bpe = try LlamaCheckpoint.open(path: Fixtures.path("tiny-llama-bpe"))
        let (tokens, bos) = try Self.textTokens(tiny)
        let baseline = try ModelVerifier.makeBaseline(reference: tiny, tokens: tokens, bos: bos, options: Self.options(chunks: 1))
        #expect(throws: VerifyRunError.vocabularyMismatch(reference: 128, candidate: 352)) {
            try ModelVerifier.verify(reference: .baseline(baseline, path: "b", checkpoint: nil), candidate: bpe, tokens: [], bos: nil,
                                     options: Self.options())
        }
        #expect(throws: VerifyRunError.vocabularyMismatch(reference: 128, candidate: 352)) {
            try ModelVerifier.verify(reference: .model(tiny), candidate: bpe, tokens: tokens, bos: bos, options: Self.options())
        }
        #expect(throws: VerifyRunError.tooFewTokens(count: 10, contextLength: 64)) {
            try ModelVerifier.verify(reference: .model(tiny), candidate: tiny, tokens: Array(tokens.prefix(10)), bos: bos,
                                     options: Self.options())
        }
    }

    @Test func jsonHasEveryDocumentedField() throws {
        let reference = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let q8 = try LlamaCheckpoint.open(path: Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"))
        let (tokens, bos) = try Self.textTokens(reference)
        let (report, _) = try ModelVerifier.verify(reference: .model(reference), candidate: q8, tokens: tokens, bos: bos,
                                                   options: Self.options(chunks: 2, thresholds: Self.strict))
        let text = report.json().serialized(.python(indent: 2, sortKeys: false))
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        for key in ["mean_kld", "median_kld", "p99_kld", "max_kld", "top1_agreement", "ppl_ref", "ppl_cand", "ppl_ratio",
                    "rms_delta_p", "tokens_scored", "layers", "tensors", "first_divergent_layer", "passed", "failures",
                    "thresholds", "context_length", "chunks"] {
            #expect(parsed[key] != nil, "missing \(key)")
        }
        #expect(parsed["tokens_scored"] as? Int == 62)
        #expect((parsed["top1_agreement"] as? Double).map { $0 > 0 && $0 <= 1 } == true)
        let layers = try #require(parsed["layers"] as? [[String: Any]])
        #expect(layers.map { $0["name"] as? String } == ["model.embed_tokens", "model.layers.0", "model.layers.1", "model.norm"])
        #expect(layers.allSatisfy { $0["cosine"] is Double && $0["relative_error"] is Double })
        let tensors = try #require(parsed["tensors"] as? [[String: Any]])
        #expect(tensors.count == 21)
        let q = try #require(tensors.first { $0["name"] as? String == "model.layers.0.self_attn.q_proj.weight" })
        #expect(q["candidate_name"] as? String == "blk.0.attn_q.weight")
        for key in ["rmse", "max_abs_diff", "cosine", "snr_db"] { #expect(q[key] is Double, "\(key)") }
        // Identical tensors have an infinite SNR: written as null (strict JSON).
        let norm = try #require(tensors.first { $0["name"] as? String == "model.norm.weight" })
        #expect(norm["snr_db"] is NSNull)
        #expect(parsed["passed"] as? Bool == true)
    }

    @Test func accumulatorMatchesWholeBufferDifference() {
        var rng = SplitMix64(seed: 5)
        let a = (0 ..< 1000).map { _ in rng.nextFloat() }
        let b = a.map { $0 + rng.nextFloat() * 0.01 }
        var acc = DifferenceAccumulator()
        for start in stride(from: 0, to: 1000, by: 137) {
            let end = min(1000, start + 137)
            acc.add(reference: Array(a[start ..< end]), candidate: Array(b[start ..< end]))
        }
        #expect(acc.count == 1000)
        #expect(acc.result == TensorDifference(reference: a, candidate: b))
        // Merging partials: same statistics up to summation order.
        var left = DifferenceAccumulator(), right = DifferenceAccumulator()
        left.add(reference: Array(a[..<500]), candidate: Array(b[..<500]))
        right.add(reference: Array(a[500...]), candidate: Array(b[500...]))
        left.merge(right)
        let whole = TensorDifference(reference: a, candidate: b)
        #expect(abs(left.result.rmse - whole.rmse) <= 1e-12)
        #expect(left.result.maxAbsDifference == whole.maxAbsDifference)
        #expect(abs(left.result.cosine - whole.cosine) <= 1e-12)
    }

    /// Per-tensor results do not depend on the thread count (fixed blocks, ordered merge).
    @Test func tensorComparisonIsDeterministic() throws {
        let reference = try LlamaCheckpoint.open(path: Fixtures.path("vectors/tiny-llama"))
        let q8 = try LlamaCheckpoint.open(path: Fixtures.path("vectors/fixtures/tiny-q8_0.gguf"))
        let one = try TensorComparer.compare(reference: reference, candidate: q8, threads: 1).tensors
        let three = try TensorComparer.compare(reference: reference, candidate: q8, threads: 3).tensors
        #expect(one == three)
        // And equal to a whole-tensor computation.
        let t = try #require(reference.tensors["model.layers.0.self_attn.k_proj.weight"])
        let u = try #require(q8.tensors["model.layers.0.self_attn.k_proj.weight"])
        let whole = TensorDifference(reference: try t.decodeAll(from: reference.source, threads: 1),
                                     candidate: try u.decodeAll(from: q8.source, threads: 1))
        let streamed = try #require(one.first { $0.name == t.name }?.difference)
        #expect(abs(streamed.rmse - whole.rmse) <= 1e-12 && streamed.maxAbsDifference == whole.maxAbsDifference)
    }

    @Test func thresholdsAndFormatting() {
        let t = VerifyThresholds(maxMeanKLD: 0.01, minTop1Agreement: 0.95, maxPerplexityRatio: 1.02)
        #expect(!t.isEmpty && VerifyThresholds().isEmpty)
        var scores: [TokenScore] = []
        for i in 0 ..< 20 {
            scores.append(TokenScore(kld: 0.02, baseNLL: 1, candidateNLL: 1.1, deltaP: -0.01, sameTop: i < 18))
        }
        let failures = t.failures(of: LogitComparisonSummary(scores))
        #expect(failures.count == 3)
        #expect(failures[0] == "mean KLD 0.02 > --max-kld 0.01")
        #expect(failures[1] == "top-1 agreement 0.9 < --min-top1 0.95")
        #expect(failures[2] == "PPL ratio 1.105 > --max-ppl-ratio 1.02")
    }

    @Test func bundledTextIsTheTestdataFile() throws {
        let file = String(decoding: try Fixtures.data("eval/default.txt"), as: UTF8.self)
        #expect(EvaluationText.default == file)
        #expect(file.split { $0 == " " || $0 == "\n" }.count > 3000)
    }
}
