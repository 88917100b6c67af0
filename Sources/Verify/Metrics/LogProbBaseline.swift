public import TensorCore
import Formats
#if canImport(Glibc)
import Glibc
#endif

/// Errors reading a log-prob baseline file.
public enum BaselineFileError: ClassifiedError, Hashable {
    case badMagic
    case unsupportedVersion(UInt32)
    case badHeader(String)
    /// The file's length does not match what its header declares.
    case sizeMismatch(expected: Int, actual: Int)
    /// An entry holds an impossible token id or log-probability.
    case badEntry(index: Int, reason: String)

    public var kind: ErrorKind {
        if case .unsupportedVersion = self { return .unsupported }
        return .malformedInput
    }

    public var description: String {
        switch self {
        case .badMagic: "not a wconv log-prob baseline (bad magic)"
        case .unsupportedVersion(let v): "baseline format version \(v) is not supported"
        case .badHeader(let what): "bad baseline header: \(what)"
        case .sizeMismatch(let expected, let actual): "baseline should be \(expected) bytes, is \(actual)"
        case .badEntry(let index, let reason): "baseline entry \(index): \(reason)"
        }
    }
}

/// The base model's predictions at each scored position, kept compact: the top-K log-probs
/// with their token ids, the log-prob of the true next token, and the log of the probability
/// mass outside the top K. Scoring a candidate against it needs no second run of the base.
///
/// What it gives, compared with the exact computation from both full logit rows
/// (``LogitMetrics/score(base:candidate:target:baseLogProbabilityFloor:)``):
/// - NLL(base), Δp and top-1 agreement: exact (up to float32 storage of the log-probs).
/// - KLD: the exact KL divergence of the two distributions coarse-grained to K+1 outcomes
///   (the top-K tokens and one "rest" bucket). By the log-sum inequality this never exceeds
///   the full KLD; the shortfall is `R_b · KL(tail_b ‖ tail_q)`, where `R_b` is the base's
///   mass outside the top K and `tail_*` are the two distributions restricted to those tokens
///   and renormalized. With K = vocab the two agree to within 2e-6 relative + 1e-9 absolute
///   (float32 storage of the log-probs; tested). With K < vocab the shortfall is about the
///   fraction of the disagreement that lies outside the top K: on peaked distributions
///   (`R_b` of a few percent) a few percent of the KLD; raise K where tails are heavy.
///
/// Storage per scored token: `12 + 8K` bytes (K = 32: 268 bytes; llama.cpp's uint16 base file
/// needs `2·vocab + 8`, 256 KB per token for a 128k vocabulary).
///
/// File layout (little-endian): `"WCONVKLD"`, u32 version 1, u32 vocab, u32 K,
/// u32 contextLength (0 if unchunked), u64 tokenCount, u64 entryCount, then `tokenCount` i32
/// token ids (the evaluated stream), then per entry: i32 target, f32 target log-prob,
/// f32 tail log-mass (−inf when nothing is outside the top K), K i32 ids, K f32 log-probs
/// (descending).
public struct LogProbBaseline: Sendable, Hashable {
    public static let defaultTopK = 32
    static let magic = Array("WCONVKLD".utf8)
    static let version: UInt32 = 1

    public let vocabularySize: Int
    public let topK: Int
    /// Chunk length the positions were scored with (0: not chunked).
    public var contextLength: Int
    /// The token stream that was evaluated, so a later comparison needs no text.
    public var tokens: [Int32]

    private var targets: [Int32] = []
    private var targetLogProbabilities: [Float] = []
    private var tailLogMasses: [Float] = []
    private var topIDs: [Int32] = []            // [count, K]
    private var topLogProbabilities: [Float] = []  // [count, K]

    /// One scored position.
    public struct Entry: Sendable, Hashable {
        public var target: Int
        public var targetLogProbability: Float
        public var tailLogMass: Float
        public var ids: [Int]
        public var logProbabilities: [Float]
    }

    /// An empty baseline.
    /// - Throws: ``VerifyError/badConfigValue(key:reason:)`` unless `1 ≤ topK ≤ vocabularySize`.
    public init(vocabularySize: Int, topK: Int = LogProbBaseline.defaultTopK, contextLength: Int = 0, tokens: [Int] = []) throws {
        guard vocabularySize > 0, vocabularySize <= Int(Int32.max) else {
            throw VerifyError.badConfigValue(key: "vocab_size", reason: "must be in 1...\(Int32.max)")
        }
        guard topK >= 1, topK <= vocabularySize else {
            throw VerifyError.badConfigValue(key: "top-k", reason: "must be in 1...\(vocabularySize), is \(topK)")
        }
        self.vocabularySize = vocabularySize
        self.topK = topK
        self.contextLength = contextLength
        self.tokens = tokens.map { Int32(truncatingIfNeeded: $0) }
    }

    /// Number of scored positions stored.
    public var count: Int { targets.count }

    /// Stored position `i`.
    public func entry(_ i: Int) -> Entry {
        let r = i * topK ..< (i + 1) * topK
        return Entry(target: Int(targets[i]), targetLogProbability: targetLogProbabilities[i],
                     tailLogMass: tailLogMasses[i], ids: topIDs[r].map(Int.init),
                     logProbabilities: Array(topLogProbabilities[r]))
    }

    /// Records the base model's logits at one scored position.
    /// - Parameters:
    ///   - logits: `[vocab]` base logits.
    ///   - target: the token that follows.
    public mutating func append(logits: UnsafeBufferPointer<Float>, target: Int) {
        precondition(logits.count == vocabularySize && target >= 0 && target < vocabularySize,
                     "LogProbBaseline: logits or target do not match the vocabulary")
        let lse = LogitMetrics.logSumExp(logits)
        let top = Self.topIndices(logits, k: topK)
        for i in top {
            topIDs.append(Int32(i))
            topLogProbabilities.append(Float(Double(logits[i]) - lse))
        }
        targets.append(Int32(target))
        targetLogProbabilities.append(Float(Double(logits[target]) - lse))
        tailLogMasses.append(Float(Self.logMass(logits, excluding: top.sorted(), shift: lse)))
    }

    /// Array-slice form of ``append(logits:target:)``.
    public mutating func append(logits: ArraySlice<Float>, target: Int) {
        logits.withUnsafeBufferPointer { append(logits: $0, target: target) }
    }

    /// Scores candidate logits against stored position `index` (see the type's notes on KLD).
    public func score(_ index: Int, candidate: UnsafeBufferPointer<Float>) -> TokenScore {
        precondition(candidate.count == vocabularySize, "LogProbBaseline: candidate logits do not match the vocabulary")
        let lse = LogitMetrics.logSumExp(candidate)
        let r = index * topK ..< (index + 1) * topK
        // Renormalize the stored (float32-rounded) base distribution: the rounding errors then
        // enter the KLD only weighted by the log-ratio, not on their own (for identical
        // models the result stays ~0 instead of ~1e-7).
        var mass = exp(Double(tailLogMasses[index]))
        for k in r { mass += exp(Double(topLogProbabilities[k])) }
        let logMass = log(mass)
        var kld = 0.0
        for k in r {
            let lpBase = Double(topLogProbabilities[k]) - logMass
            let lpCandidate = Double(candidate[Int(topIDs[k])]) - lse
            kld += exp(lpBase) * (lpBase - lpCandidate)
        }
        let tailBase = Double(tailLogMasses[index]) - logMass
        if tailBase > -.infinity {
            let tailCandidate = Self.logMass(candidate, excluding: topIDs[r].map(Int.init).sorted(), shift: lse)
            kld += exp(tailBase) * (tailBase - tailCandidate)
        }
        let target = Int(targets[index])
        let baseNLL = -Double(targetLogProbabilities[index])
        let candidateNLL = lse - Double(candidate[target])
        return TokenScore(kld: kld, baseNLL: baseNLL, candidateNLL: candidateNLL,
                          deltaP: exp(-candidateNLL) - exp(-baseNLL),
                          sameTop: LogitMetrics.argmax(candidate) == Int(topIDs[r.lowerBound]))
    }

    /// Array-slice form of ``score(_:candidate:)``.
    public func score(_ index: Int, candidate: ArraySlice<Float>) -> TokenScore {
        candidate.withUnsafeBufferPointer { score(index, candidate: $0) }
    }

    /// The `k` largest entries, largest first, lower index first among equals (so entry 0 is
    /// llama.cpp's argmax). One pass with a small sorted list: O(vocab + k·insertions).
    static func topIndices(_ x: UnsafeBufferPointer<Float>, k: Int) -> [Int] {
        var top: [Int] = []
        top.reserveCapacity(k + 1)
        // `a` ranks before `b`: larger value, or equal value and smaller index.
        func before(_ a: Int, _ b: Int) -> Bool { x[a] > x[b] || (x[a] == x[b] && a < b) }
        for i in 0 ..< x.count {
            if top.count == k {
                guard let last = top.last, before(i, last) else { continue }
                top.removeLast()
            }
            var lo = 0, hi = top.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if before(top[mid], i) { lo = mid + 1 } else { hi = mid }
            }
            top.insert(i, at: lo)
        }
        return top
    }

    /// log Σ_{i ∉ excluded} exp(x_i − shift), summed directly (no 1 − Σtop cancellation).
    /// `excluded` must be sorted ascending.
    static func logMass(_ x: UnsafeBufferPointer<Float>, excluding excluded: [Int], shift: Double) -> Double {
        var m = -Double.infinity
        var e = 0
        for i in 0 ..< x.count {
            if e < excluded.count && excluded[e] == i { e += 1; continue }
            m = max(m, Double(x[i]))
        }
        guard m > -.infinity else { return -.infinity }
        var sum = 0.0
        e = 0
        for i in 0 ..< x.count {
            if e < excluded.count && excluded[e] == i { e += 1; continue }
            sum += exp(Double(x[i]) - m)
        }
        return m + log(sum) - shift
    }

    // MARK: - File format

    /// The file bytes (layout in the type's notes).
    public func serialized() -> [UInt8] {
        var w = ByteWriter(capacity: 40 + tokens.count * 4 + count * (12 + 8 * topK))
        w.write(bytes: Self.magic)
        w.write(Self.version)
        w.write(UInt32(vocabularySize))
        w.write(UInt32(topK))
        w.write(UInt32(clamping: contextLength))
        w.write(UInt64(tokens.count))
        w.write(UInt64(count))
        for t in tokens { w.write(t) }
        for i in 0 ..< count {
            w.write(targets[i])
            w.write(targetLogProbabilities[i])
            w.write(tailLogMasses[i])
            for k in i * topK ..< (i + 1) * topK { w.write(topIDs[k]) }
            for k in i * topK ..< (i + 1) * topK { w.write(topLogProbabilities[k]) }
        }
        return w.bytes
    }

    /// Parses and validates file bytes.
    /// - Throws: ``BaselineFileError``.
    public init(serialized bytes: UnsafeRawBufferPointer) throws {
        var c = ByteCursor(bytes)
        do {
            guard Array(try c.readBytes(8)) == Self.magic else { throw BaselineFileError.badMagic }
            let version = try c.readInteger(UInt32.self)
            guard version == Self.version else { throw BaselineFileError.unsupportedVersion(version) }
            let vocab = Int(try c.readInteger(UInt32.self))
            let k = Int(try c.readInteger(UInt32.self))
            let context = Int(try c.readInteger(UInt32.self))
            let tokenCount = try c.readInteger(UInt64.self)
            let entryCount = try c.readInteger(UInt64.self)
            guard vocab >= 1, vocab <= Int(Int32.max), k >= 1, k <= vocab else {
                throw BaselineFileError.badHeader("vocab \(vocab), top-k \(k)")
            }
            // Sizes in checked arithmetic before anything is read.
            let entrySize = 12 + 8 * k
            guard tokenCount <= UInt64(Int.max / 8), entryCount <= UInt64(Int.max / 8) else {
                throw BaselineFileError.badHeader("counts \(tokenCount), \(entryCount)")
            }
            let (entryBytes, o1) = Int(entryCount).multipliedReportingOverflow(by: entrySize)
            let (expected, o2) = (40 + 4 * Int(tokenCount)).addingReportingOverflow(entryBytes)
            guard !o1, !o2, expected == bytes.count else {
                throw BaselineFileError.sizeMismatch(expected: o1 || o2 ? Int.max : expected, actual: bytes.count)
            }
            try self.init(vocabularySize: vocab, topK: k, contextLength: context)
            tokens.reserveCapacity(Int(tokenCount))
            for _ in 0 ..< Int(tokenCount) { tokens.append(try c.readInteger(Int32.self)) }
            for i in 0 ..< Int(entryCount) {
                let target = try c.readInteger(Int32.self)
                guard target >= 0, Int(target) < vocab else {
                    throw BaselineFileError.badEntry(index: i, reason: "target \(target) outside the vocabulary")
                }
                let targetLP = try c.readFloat()
                let tail = try c.readFloat()
                guard targetLP <= 0, tail <= 0, !targetLP.isNaN, !tail.isNaN, targetLP > -.infinity else {
                    throw BaselineFileError.badEntry(index: i, reason: "log-probabilities must be ≤ 0")
                }
                targets.append(target)
                targetLogProbabilities.append(targetLP)
                tailLogMasses.append(tail)
                for _ in 0 ..< k {
                    let id = try c.readInteger(Int32.self)
                    guard id >= 0, Int(id) < vocab else {
                        throw BaselineFileError.badEntry(index: i, reason: "token id \(id) outside the vocabulary")
                    }
                    topIDs.append(id)
                }
                for _ in 0 ..< k {
                    let lp = try c.readFloat()
                    guard lp <= 0, lp > -.infinity else {
                        throw BaselineFileError.badEntry(index: i, reason: "top log-probability \(lp)")
                    }
                    topLogProbabilities.append(lp)
                }
            }
        } catch let e as ByteCursor.Truncated {
            throw BaselineFileError.sizeMismatch(expected: e.offset + e.needed, actual: bytes.count)
        }
    }

    /// Writes the baseline atomically to `path`.
    /// - Throws: `PathError` wrapping an output error.
    public func write(to path: String, force: Bool = false) throws {
        let output = try AtomicOutput.file(at: path, force: force)
        let file = try OutputFile(path: output.temporaryPath)
        try file.write(serialized())
        try file.close()
        try output.commit()
    }

    /// Reads and validates a baseline file.
    /// - Throws: `PathError` wrapping ``BaselineFileError`` or a file-access error.
    public init(contentsOf path: String) throws {
        let file = try MappedFile(path: path)
        self = try withPath(path) { try LogProbBaseline(serialized: file.bytes) }
    }
}
