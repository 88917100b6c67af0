import Formats
import TensorCore
import Testing
import TestSupport
import Verify

/// RoPE tables against transformers (testdata/golden/rope/rope_inv_freq.json, made by
/// testdata/scripts/make_rope_goldens.py with transformers 5.24 / torch 2.13).
@Suite struct RoPETests {
    struct Case {
        var name: String
        var headDimension: Int
        var theta: Double
        var scaling: RopeScaling
        var defaultInverseFrequencies: [Float]
        var inverseFrequencies: [Float]
        var cos: [Float]   // [positions, hd/2]
        var sin: [Float]
    }

    static func load() throws -> (positions: [Int], cases: [Case]) {
        let json = try JSONParser.parse(try Fixtures.data("golden/rope/rope_inv_freq.json"))
        func floats(_ v: JSONValue?) throws -> [Float] {
            guard let a = v?.arrayValue else { throw Failure(.malformedInput, "missing array") }
            return try a.map {
                guard let bits = $0.intValue, let u = UInt32(exactly: bits) else { throw Failure(.malformedInput, "bad bits") }
                return Float(bitPattern: u)
            }
        }
        let positions = json["positions"]?.arrayValue?.compactMap(\.intValue) ?? []
        let cases = try (json["cases"]?.arrayValue ?? []).map { c -> Case in
            let rope = try #require(c["rope_parameters"]?.objectValue)
            // The same parser the model uses for config.json reads the parameters.
            var config = JSONObject()
            config["vocab_size"] = 8; config["hidden_size"] = .int(Int64(4 * (c["head_dim"]?.intValue ?? 0)))
            config["intermediate_size"] = 8; config["num_hidden_layers"] = 1; config["num_attention_heads"] = 4
            config["head_dim"] = c["head_dim"]; config["rope_parameters"] = .object(rope)
            let parsed = try LlamaConfig(hfConfig: config)
            return Case(
                name: c["name"]?.stringValue ?? "?", headDimension: parsed.headDimension, theta: parsed.ropeTheta,
                scaling: parsed.ropeScaling, defaultInverseFrequencies: try floats(c["default_inv_freq_bits"]),
                inverseFrequencies: try floats(c["inv_freq_bits"]), cos: try floats(c["cos_bits"]),
                sin: try floats(c["sin_bits"]))
        }
        return (positions, cases)
    }

    static func ulps(_ a: Float, _ b: Float) -> Int {
        abs(Int(Int32(bitPattern: a.bitPattern)) - Int(Int32(bitPattern: b.bitPattern)))
    }

    @Test func goldenFileCoversEveryScalingKind() throws {
        let (positions, cases) = try Self.load()
        #expect(cases.count == 8)
        #expect(positions.count == 9)
        #expect(cases.contains { if case .llama3 = $0.scaling { true } else { false } })
        #expect(cases.contains { if case .linear = $0.scaling { true } else { false } })
    }

    /// Unscaled frequencies: torch's vectorized float32 pow is faithful to 1 ulp but not
    /// correctly rounded; ours is, so allow one ulp and require most entries to be identical.
    @Test func defaultInverseFrequenciesWithinOneUlpOfTorch() throws {
        var identical = 0, total = 0
        for c in try Self.load().cases {
            let ours = RoPE.defaultInverseFrequencies(headDimension: c.headDimension, theta: c.theta)
            #expect(ours.count == c.defaultInverseFrequencies.count)
            for (a, b) in zip(ours, c.defaultInverseFrequencies) {
                #expect(Self.ulps(a, b) <= 1, "\(c.name): \(a) vs \(b)")
                identical += a == b ? 1 : 0
                total += 1
            }
        }
        #expect(Double(identical) >= 0.97 * Double(total))
    }

    /// The llama3 / linear rescaling repeats transformers' float32 steps exactly: given torch's
    /// own unscaled frequencies, the result is bit-identical.
    @Test func scalingIsBitExactOnTorchInputs() throws {
        for c in try Self.load().cases {
            let scaled = RoPE.scaled(c.defaultInverseFrequencies, scaling: c.scaling)
            #expect(scaled.map(\.bitPattern) == c.inverseFrequencies.map(\.bitPattern), "\(c.name)")
        }
    }

    /// llama.cpp's converter stores llama3 scaling as per-frequency divisors (`rope_freqs`,
    /// REFERENCE §3.5); dividing by them reproduces transformers' frequencies to float32
    /// rounding.
    @Test func ggufDivisorsReproduceLlama3Scaling() throws {
        let c = try #require(try Self.load().cases.first { $0.name == "llama3-llama3.1-8b" })
        // The converter's formula, in Double as numpy does it.
        let divisors = c.defaultInverseFrequencies.map { inv -> Float in
            let wavelength = 2 * Double.pi / Double(inv)
            if wavelength < 8192.0 / 4 { return 1 }
            if wavelength > 8192.0 / 1 { return 8 }
            let smooth = (8192 / wavelength - 1) / (4 - 1)
            return Float(1 / ((1 - smooth) / 8 + smooth))
        }
        let viaDivisors = RoPE.scaled(c.defaultInverseFrequencies, scaling: .divisors(divisors))
        for (a, b) in zip(viaDivisors, c.inverseFrequencies) { #expect(Self.ulps(a, b) <= 2) }
        var config = try TinyLlama.config()
        config.ropeScaling = .divisors([1, 2])
        #expect(throws: VerifyError.self) { try config.validate() }
    }

    @Test func llama3ScalingTouchesOnlyLowAndMiddleFrequencies() throws {
        let c = try #require(try Self.load().cases.first { $0.name == "llama3-llama3.1-8b" })
        let base = c.defaultInverseFrequencies, scaled = c.inverseFrequencies
        #expect(scaled.first == base.first)                 // highest frequency unchanged
        #expect(scaled.last == base.last! / 8)              // lowest divided by factor
        #expect(zip(base, scaled).contains { $1 != $0 && $1 != $0 / 8 })   // a smoothed band exists
    }

    /// cos/sin of transformers' tables from the golden inv_freq (isolates the angle product and
    /// the trigonometry from the pow): within 1 ulp, plus the angle's own rounding at large
    /// positions (|Δ| ≤ 2e-6 absolute).
    @Test func cosineAndSineTablesMatchTorch() throws {
        let (positions, cases) = try Self.load()
        for c in cases {
            let half = c.headDimension / 2
            var cos = [Float](repeating: 0, count: positions.count * half), sin = cos
            // fillTables takes a contiguous range; evaluate each golden position separately.
            for (row, p) in positions.enumerated() {
                cos.withUnsafeMutableBufferPointer { cp in
                    sin.withUnsafeMutableBufferPointer { sp in
                        RoPE.fillTables(inverseFrequencies: c.inverseFrequencies, positions: p ..< p + 1,
                                        cos: cp.baseAddress! + row * half, sin: sp.baseAddress! + row * half)
                    }
                }
            }
            #expect(maxAbsDifference(cos, c.cos) <= 2e-7, "\(c.name)")
            #expect(maxAbsDifference(sin, c.sin) <= 2e-7, "\(c.name)")
        }
    }
}
