import Foundation
import Testing
import TensorCore
import TestSupport
import Verify

@Suite struct MetricsTests {
    @Test func identicalLogitsScoreZero() {
        let logits: [Float] = [0.5, -1, 3, 2.25, 3, -7]
        let s = LogitMetrics.score(base: logits[...], candidate: logits[...], target: 3)
        #expect(abs(s.kld) < 1e-15)
        #expect(s.sameTop && s.deltaP == 0 && s.baseNLL == s.candidateNLL)
        #expect(LogitMetrics.argmax(logits) == 2)   // first of the tied maxima
        let summary = LogitComparisonSummary([s, s, s])
        #expect(summary.meanKLD.value < 1e-15 && summary.sameTop == Estimate(1, 0))
        #expect(summary.perplexityRatio.value == 1 && summary.perplexityDifference.value == 0)
    }

    @Test func twoTokenCaseByHand() {
        // base p = (1/2, 1/2); candidate p = (3/4, 1/4).
        let s = LogitMetrics.score(base: [0, 0][...], candidate: [Float(log(3.0)), 0][...], target: 0)
        #expect(abs(s.kld - 0.5 * log(4.0 / 3.0)) < 1e-7)
        #expect(abs(s.baseNLL - log(2.0)) < 1e-12)
        #expect(abs(s.candidateNLL + log(0.75)) < 1e-7)
        #expect(abs(s.deltaP - 0.25) < 1e-7)
        #expect(s.sameTop)
        // The other direction is a different number: KL is not symmetric.
        let r = LogitMetrics.score(base: [Float(log(3.0)), 0][...], candidate: [0, 0][...], target: 1)
        #expect(abs(r.kld - (0.75 * log(1.5) + 0.25 * log(0.5))) < 1e-7)
        #expect(abs(r.deltaP - 0.25) < 1e-7)
        #expect(!LogitMetrics.score(base: [0, 1][...], candidate: [1, 0][...], target: 0).sameTop)
    }

    @Test func exactKLDMatchesDefinitionAndFloorDropsTinyEntries() {
        var rng = SplitMix64(seed: 21)
        let base = (0 ..< 500).map { _ in rng.nextFloat() * 6 }
        let candidate = base.map { $0 + 0.3 * rng.nextFloat() }
        let s = LogitMetrics.score(base: base[...], candidate: candidate[...], target: 17)
        #expect(abs(s.kld - LogitMetrics.kldReference(base: base, candidate: candidate)) < 1e-12)
        #expect(s.kld > 0)

        // base log p of the second entry ≈ −20: llama.cpp's −16 cut drops its term.
        let b: [Float] = [0, -20], c: [Float] = [0, -5]
        let full = LogitMetrics.score(base: b[...], candidate: c[...], target: 0)
        let cut = LogitMetrics.score(base: b[...], candidate: c[...], target: 0, baseLogProbabilityFloor: -16)
        let lpb0 = -log1p(exp(-20.0)), lpq0 = -log1p(exp(-5.0))
        #expect(abs(cut.kld - exp(lpb0) * (lpb0 - lpq0)) < 1e-12)
        #expect(full.kld != cut.kld)
    }

    @Test func summaryFollowsLlamaPerplexityFormulas() {
        let scores = [0.1, 0.2, 0.3, 0.4].enumerated().map { i, k in
            TokenScore(kld: k, baseNLL: 1, candidateNLL: 1 + k, deltaP: Double(i) * 0.1 - 0.1, sameTop: i != 0)
        }
        let s = LogitComparisonSummary(scores)
        #expect(s.count == 4)
        #expect(abs(s.meanKLD.value - 0.25) < 1e-15 && s.meanKLD.uncertainty == 0)   // n ≤ 10: no uncertainty
        #expect(abs(s.kld.median - 0.25) < 1e-15)
        #expect(abs(s.kld.percentile(0.99) - (0.03 * 0.3 + 0.97 * 0.4)) < 1e-12)
        #expect(s.kld.minimum == 0.1 && s.kld.maximum == 0.4)
        #expect(abs(s.candidatePerplexity.value - exp(1.25)) < 1e-12 && abs(s.basePerplexity.value - exp(1.0)) < 1e-12)
        #expect(abs(s.logPerplexityRatio.value - 0.25) < 1e-12)
        #expect(abs(s.perplexityRatio.value - exp(0.25)) < 1e-12)
        #expect(abs(s.meanDeltaP.value - 0.05) < 1e-12)
        #expect(abs(s.rmsDeltaP.value - ((0.01 + 0 + 0.01 + 0.04) / 4).squareRoot()) < 1e-12)
        #expect(s.sameTop.value == 0.75 && abs(s.sameTop.uncertainty - (0.75 * 0.25 / 3).squareRoot()) < 1e-15)

        // Beyond 10 values the standard error appears: 0/1 alternating → sqrt(0.25 / 19).
        let e = Estimate(sum: 10, sumOfSquares: 10, count: 20)
        #expect(e.value == 0.5 && abs(e.uncertainty - (0.25 / 19).squareRoot()) < 1e-15)
        #expect(SortedSample([3, 1, 2, 4]).median == 2.5)
        #expect(SortedSample([5]).percentile(0.999) == 5)
    }

    @Test func comparesWholeLogitMatrices() {
        var rng = SplitMix64(seed: 2)
        let tokens = [3, 1, 4, 1, 5]
        let base = (0 ..< 5 * 6).map { _ in rng.nextFloat() * 3 }
        let candidate = base.map { $0 + 0.1 * rng.nextFloat() }
        var all = LogitComparison()
        all.add(base: base, candidate: candidate, vocabularySize: 6, tokens: tokens)
        #expect(all.count == 4)
        #expect(all.scores[2] == LogitMetrics.score(base: base[12 ..< 18], candidate: candidate[12 ..< 18], target: 1))
        var some = LogitComparison()
        some.add(base: base, candidate: candidate, vocabularySize: 6, tokens: tokens, positions: 2 ..< 4)
        #expect(some.scores == Array(all.scores[2 ..< 4]))
    }

    @Test func chunksScoreTheSecondHalf() throws {
        let tokens = Array(100 ..< 110)
        let chunks = try EvaluationChunks(tokens: tokens, contextLength: 4, bos: 1)
        #expect(chunks.inputs == [[1, 101, 102, 103], [1, 105, 106, 107]])   // partial tail dropped
        #expect(chunks.scoredPositions == 2 ..< 3)
        #expect(chunks.target(chunk: 1, position: 2) == 107)
        let plain = try EvaluationChunks(tokens: tokens, contextLength: 5, bos: nil)
        #expect(plain.inputs == [Array(100 ..< 105), Array(105 ..< 110)])
        #expect(throws: VerifyError.self) { try EvaluationChunks(tokens: tokens, contextLength: 3, bos: nil) }
    }

    @Test func perLayerDifferencesLocateTheFirstBadLayer() throws {
        let a = HiddenStates(tokenCount: 1, width: 2, embeddings: [1, 0], afterLayer: [[1, 1], [2, 2]], finalNormed: [1, 1])
        var b = a
        b.afterLayer[1] = [2, 2.2]
        b.finalNormed = [1, 1.1]
        let d = TensorDifference.perLayer(reference: a, candidate: b)
        #expect(d.map(\.relativeError).prefix(2) == [0, 0])
        #expect(abs(d[2].relativeError - 0.2 / 8.0.squareRoot()) < 1e-7)
        #expect(d[0].cosine == 1)
    }
}

/// The compact top-K baseline against the exact computation.
@Suite struct BaselineTests {
    /// Peaked logits like an LLM's: a Zipf-like spread plus noise.
    static func peakedLogits(vocab: Int, rng: inout SplitMix64) -> [Float] {
        let hot = Int(rng.next() % UInt64(vocab))
        return (0 ..< vocab).map { i in
            let rank = Float((i - hot + vocab) % vocab + 1)
            return -2 * Float(log(Double(rank))) + 0.5 * rng.nextFloat()
        }
    }

    @Test func fullWidthBaselineEqualsExactScores() throws {
        var rng = SplitMix64(seed: 5)
        let vocab = 64
        var baseline = try LogProbBaseline(vocabularySize: vocab, topK: vocab)
        var pairs: [([Float], [Float], Int)] = []
        for _ in 0 ..< 20 {
            let base = Self.peakedLogits(vocab: vocab, rng: &rng)
            let candidate = base.map { $0 + 0.2 * rng.nextFloat() }
            let target = Int(rng.next() % UInt64(vocab))
            baseline.append(logits: base[...], target: target)
            pairs.append((base, candidate, target))
        }
        for (i, (base, candidate, target)) in pairs.enumerated() {
            let exact = LogitMetrics.score(base: base[...], candidate: candidate[...], target: target)
            let compact = baseline.score(i, candidate: candidate[...])
            #expect(baseline.entry(i).tailLogMass == -.infinity)
            #expect(abs(compact.kld - exact.kld) <= 2e-6 * exact.kld + 1e-9)
            #expect(abs(compact.baseNLL - exact.baseNLL) <= 1e-6)
            #expect(abs(compact.deltaP - exact.deltaP) <= 1e-6)
            #expect(compact.sameTop == exact.sameTop && compact.candidateNLL == exact.candidateNLL)
        }
    }

    /// With K = 32 of 2000 the estimate is a lower bound whose shortfall is exactly
    /// R_b · KL(tail_b ‖ tail_q), and small for peaked distributions.
    @Test func topKBaselineIsATightLowerBound() throws {
        var rng = SplitMix64(seed: 9)
        let vocab = 2000, k = 32
        var baseline = try LogProbBaseline(vocabularySize: vocab, topK: k)
        var worstRelativeGap = 0.0
        for i in 0 ..< 30 {
            let base = Self.peakedLogits(vocab: vocab, rng: &rng)
            let candidate = base.map { $0 + 0.1 * rng.nextFloat() }
            baseline.append(logits: base[...], target: i)
            let exact = LogitMetrics.score(base: base[...], candidate: candidate[...], target: i)
            let compact = baseline.score(i, candidate: candidate[...])
            #expect(compact.kld <= exact.kld + 1e-7)
            // The shortfall from the definition, over the tokens outside the stored top K.
            let entry = baseline.entry(i)
            let top = Set(entry.ids)
            let pb = LogitMetrics.logSoftmax(base), pq = LogitMetrics.logSoftmax(candidate)
            let rest = (0 ..< vocab).filter { !top.contains($0) }
            let rb = rest.reduce(0.0) { $0 + exp(pb[$1]) }, rq = rest.reduce(0.0) { $0 + exp(pq[$1]) }
            let tailKL = rest.reduce(0.0) { $0 + exp(pb[$1]) / rb * ((pb[$1] - log(rb)) - (pq[$1] - log(rq))) }
            #expect(abs((exact.kld - compact.kld) - rb * tailKL) <= 1e-5 * exact.kld + 1e-9)
            #expect(abs(Double(entry.tailLogMass) - log(rb)) < 1e-5)
            worstRelativeGap = max(worstRelativeGap, (exact.kld - compact.kld) / exact.kld)
            #expect(abs(compact.deltaP - exact.deltaP) <= 1e-6 && compact.sameTop == exact.sameTop)
        }
        #expect(worstRelativeGap < 0.1, "worst relative KLD shortfall \(worstRelativeGap)")
    }

    @Test func identicalModelsScoreZeroAgainstABaseline() throws {
        var rng = SplitMix64(seed: 11)
        var baseline = try LogProbBaseline(vocabularySize: 300, topK: 16)
        for t in 0 ..< 10 {
            let logits = Self.peakedLogits(vocab: 300, rng: &rng)
            baseline.append(logits: logits[...], target: t)
            let s = baseline.score(t, candidate: logits[...])
            #expect(abs(s.kld) < 1e-12 && abs(s.deltaP) < 1e-6 && s.sameTop)
        }
    }

    @Test func topIndicesBreakTiesByLowerIndex() throws {
        var baseline = try LogProbBaseline(vocabularySize: 6, topK: 3)
        baseline.append(logits: [1, 5, 5, 0, 5, 2][...], target: 0)
        #expect(baseline.entry(0).ids == [1, 2, 4])
        #expect(baseline.score(0, candidate: [0, 1, 1, 0, 1, 0][...]).sameTop)
    }

    @Test func fileRoundTripsAndRejectsDamage() throws {
        var rng = SplitMix64(seed: 3)
        var baseline = try LogProbBaseline(vocabularySize: 50, topK: 4, contextLength: 8, tokens: [1, 2, 3])
        for t in 0 ..< 5 { baseline.append(logits: Self.peakedLogits(vocab: 50, rng: &rng)[...], target: t) }
        let bytes = baseline.serialized()
        #expect(bytes.count == 40 + 3 * 4 + 5 * (12 + 8 * 4))
        let back = try bytes.withUnsafeBytes { try LogProbBaseline(serialized: $0) }
        #expect(back == baseline)

        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try baseline.write(to: dir + "/base.kld")
        #expect(try LogProbBaseline(contentsOf: dir + "/base.kld") == baseline)

        func parse(_ b: [UInt8]) throws { _ = try b.withUnsafeBytes { try LogProbBaseline(serialized: $0) } }
        #expect(throws: BaselineFileError.badMagic) { try parse([UInt8](repeating: 0, count: 40)) }
        #expect(throws: BaselineFileError.sizeMismatch(expected: bytes.count, actual: bytes.count - 1)) {
            try parse(Array(bytes.dropLast()))
        }
        #expect(throws: BaselineFileError.self) { try parse(Array(bytes.prefix(20))) }
        var badVersion = bytes
        badVersion[8] = 9
        #expect(throws: BaselineFileError.unsupportedVersion(9)) { try parse(badVersion) }
        var badID = bytes
        let firstID = 40 + 12 + 12   // header, 3 tokens, target + two floats
        badID[firstID ..< firstID + 4] = [50, 0, 0, 0]
        #expect(throws: BaselineFileError.badEntry(index: 0, reason: "token id 50 outside the vocabulary")) { try parse(badID) }
        var hugeCount = bytes
        hugeCount[32 ..< 40] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]
        #expect(throws: BaselineFileError.self) { try parse(hugeCount) }
    }
}
