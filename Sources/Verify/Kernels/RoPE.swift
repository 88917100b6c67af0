#if canImport(Glibc)
import Glibc
#endif

/// Rotary position embedding in transformers' convention ("rotate_half"): within a head of
/// `d` dims, element `i` pairs with `i + d/2` (llama.cpp pairs `2i, 2i+1`, which is why its
/// converter permutes q/k rows; weights here are never permuted).
///
/// The inverse frequencies follow transformers' float32 arithmetic step by step, so the
/// tables match `LlamaRotaryEmbedding.inv_freq` (see `testdata/golden/rope/rope_inv_freq.json`).
public enum RoPE {
    /// `1 / theta ** (arange(0, d, 2) / d)` evaluated as torch does in float32: the exponent is a
    /// float32 quotient, the power is rounded to float32, then the float32 reciprocal.
    ///
    /// The power is computed in Double and rounded once (correctly rounded for all practical
    /// inputs). torch's vectorized `powf` is only faithful to 1 ulp, so about 1 % of entries of
    /// torch's `inv_freq` differ from these by one ulp (measured on the golden cases).
    public static func defaultInverseFrequencies(headDimension d: Int, theta: Double) -> [Float] {
        let base = Double(Float(theta))   // torch casts the Python scalar to the tensor's float32
        return stride(from: 0, to: d - 1, by: 2).map { i in
            let exponent = Float(i) / Float(d)
            let power = Float(pow(base, Double(exponent)))
            return 1 / power
        }
    }

    /// Applies a scaling rule to unscaled inverse frequencies, as transformers'
    /// `_compute_llama3_parameters` / `_compute_linear_scaling_rope_parameters` do in float32.
    public static func scaled(_ inverseFrequencies: [Float], scaling: RopeScaling) -> [Float] {
        switch scaling {
        case .none:
            return inverseFrequencies
        case .linear(let factor):
            let f = Float(factor)
            return inverseFrequencies.map { $0 / f }
        case .divisors(let divisors):
            precondition(divisors.count == inverseFrequencies.count, "RoPE: one divisor per frequency")
            return zip(inverseFrequencies, divisors).map { $0 / $1 }
        case .llama3(let factor, let low, let high, let originalContext):
            let f = Float(factor), lowFactor = Float(low)
            // Python computes these in double; the comparisons with a float32 tensor cast them.
            let lowWavelength = Float(Double(originalContext) / low)
            let highWavelength = Float(Double(originalContext) / high)
            let span = Float(high - low)
            let twoPi = Float(2 * Double.pi)
            let context = Float(originalContext)
            return inverseFrequencies.map { inv in
                // `2π / t` on a tensor is `t.reciprocal() * 2π` in torch, hence two roundings.
                let wavelength = (1 / inv) * twoPi
                let llama = wavelength > lowWavelength ? inv / f : inv
                let smooth = ((1 / wavelength) * context - lowFactor) / span
                let smoothed = (1 - smooth) * llama / f + smooth * llama
                let isMedium = !(wavelength < highWavelength) && !(wavelength > lowWavelength)
                return isMedium ? smoothed : llama
            }
        }
    }

    /// The inverse frequencies of a configuration (`head_dim / 2` values).
    public static func inverseFrequencies(headDimension: Int, theta: Double, scaling: RopeScaling) -> [Float] {
        scaled(defaultInverseFrequencies(headDimension: headDimension, theta: theta), scaling: scaling)
    }

    /// Fills `cos`/`sin` tables `[positions.count, d/2]`: angle = Float(position) · inv_freq
    /// (one float32 product, as torch's `position_ids.float() * inv_freq`), then cos and sin
    /// evaluated in Double and rounded.
    public static func fillTables(
        inverseFrequencies: [Float], positions: Range<Int>,
        cos cosTable: UnsafeMutablePointer<Float>, sin sinTable: UnsafeMutablePointer<Float>
    ) {
        let half = inverseFrequencies.count
        for (row, position) in positions.enumerated() {
            let p = Float(position)
            for i in 0 ..< half {
                let angle = Double(p * inverseFrequencies[i])
                cosTable[row * half + i] = Float(cos(angle))
                sinTable[row * half + i] = Float(sin(angle))
            }
        }
    }

    /// Rotates every head of `rows` rows in place.
    /// - Parameters:
    ///   - x: rows of `heads · headDimension` floats, `rowStride` apart.
    ///   - cos, sin: tables `[rows, rotaryDimensions/2]` from ``fillTables(inverseFrequencies:positions:cos:sin:)``.
    ///   - rotaryDimensions: partial rotary (phi, Persimmon): only the first this many dims of each
    ///     head rotate, pairing `i ↔ i + rotaryDimensions/2`; the rest pass through. Nil: all.
    public static func apply(
        _ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int, headDimension: Int,
        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, rotaryDimensions: Int? = nil
    ) {
        let half = (rotaryDimensions ?? headDimension) / 2
        for r in 0 ..< rows {
            let c = cos + r * half, s = sin + r * half
            for h in 0 ..< heads {
                let v = x + r * rowStride + h * headDimension
                for i in 0 ..< half {
                    let a = v[i], b = v[i + half]
                    // q*cos + rotate_half(q)*sin with rotate_half = [-x2, x1]
                    v[i] = a * c[i] - b * s[i]
                    v[i + half] = b * c[i] + a * s[i]
                }
            }
        }
    }

    /// Scalar reference: rotates one head vector at `position`, computing its own angles.
    public static func reference(_ head: [Float], position: Int, inverseFrequencies: [Float]) -> [Float] {
        let half = head.count / 2
        precondition(inverseFrequencies.count == half, "RoPE: head size does not match the table")
        var out = head
        for i in 0 ..< half {
            let angle = Double(Float(position) * inverseFrequencies[i])
            let c = Float(cos(angle)), s = Float(sin(angle))
            out[i] = head[i] * c + -head[i + half] * s
            out[i + half] = head[i + half] * c + head[i] * s
        }
        return out
    }
}
