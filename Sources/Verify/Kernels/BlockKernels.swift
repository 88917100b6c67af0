#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// LayerNorm as torch computes it in float32: `y = (x − mean) · rsqrt(var + eps) · w + b`, with
/// the biased variance; `w` and `b` optional (MPT's `no_bias`, elementwise-free norms).
public enum LayerNorm {
    /// Normalizes `rows` rows of `dim` floats from `x` into `y` (may alias `x`). Mean and
    /// variance are summed in Float over 8 lanes.
    public static func apply(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
        into y: UnsafeMutablePointer<Float>, rows: Int, dim: Int, epsilon: Float
    ) {
        for r in 0 ..< rows {
            let xr = x + r * dim, yr = y + r * dim
            var acc = SIMD8<Float>()
            var i = 0
            let raw = UnsafeRawPointer(xr)
            while i + 8 <= dim {
                acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                i += 8
            }
            var sum = acc.sum()
            while i < dim { sum += xr[i]; i += 1 }
            let mean = sum / Float(dim)
            var sq: Float = 0
            for j in 0 ..< dim {
                let d = xr[j] - mean
                sq += d * d
            }
            let rstd = 1 / (sq / Float(dim) + epsilon).squareRoot()
            for j in 0 ..< dim {
                var v = (xr[j] - mean) * rstd
                if let weight { v *= weight[j] }
                if let bias { v += bias[j] }
                yr[j] = v
            }
        }
    }

    /// ``apply(_:weight:bias:into:rows:dim:epsilon:)`` with rows split over `threads` workers;
    /// empty `weight`/`bias` arrays mean none.
    public static func apply(
        _ x: UnsafePointer<Float>, weight: [Float], bias: [Float], into y: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, epsilon: Float, threads: Int
    ) {
        weight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                nonisolated(unsafe) let (xs, ys, ws, bs) = (x, y, w.isEmpty ? nil : w.baseAddress, b.isEmpty ? nil : b.baseAddress)
                parallelChunks(count: rows, threads: threads, minimumChunk: 64) { range in
                    apply(xs + range.lowerBound * dim, weight: ws, bias: bs, into: ys + range.lowerBound * dim,
                          rows: range.count, dim: dim, epsilon: epsilon)
                }
            }
        }
    }

    /// Scalar reference: one row, mean and variance in Double.
    public static func reference(_ x: [Float], weight: [Float]?, bias: [Float]?, epsilon: Float) -> [Float] {
        let n = Double(x.count)
        let mean = x.reduce(0.0) { $0 + Double($1) } / n
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        let rstd = 1 / (variance + Double(epsilon)).squareRoot()
        return x.indices.map { i in
            var v = (Double(x[i]) - mean) * rstd
            if let weight { v *= Double(weight[i]) }
            if let bias { v += Double(bias[i]) }
            return Float(v)
        }
    }
}

extension BlockDescription.Activation {
    /// The activation in place over `count` elements, in float32 as torch evaluates it.
    public func apply(_ x: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .geluExact:
            let invSqrt2: Float = 0.70710678118654752440
            for i in 0 ..< count { x[i] = x[i] * 0.5 * (1 + erff(x[i] * invSqrt2)) }
        case .geluTanh:
            let c: Float = 0.79788456080286535588   // sqrt(2/π)
            for i in 0 ..< count {
                let v = x[i]
                x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * (v * v * v))))
            }
        case .geluGGML:
            let table = GGMLGELU.table
            for i in 0 ..< count {
                let v = x[i]
                x[i] = v <= -10 ? 0 : v >= 10 ? v : table[Int(HalfFloat.f16Bits(v))]
            }
        case .relu:
            for i in 0 ..< count where !(x[i] > 0) { x[i] = 0 }
        case .squaredReLU:
            for i in 0 ..< count {
                let r = max(x[i], 0)
                x[i] = r * r
            }
        }
    }

    /// Scalar reference: the formula in Double, rounded once.
    public func reference(_ x: [Float]) -> [Float] {
        x.map { f in
            let v = Double(f)
            switch self {
            case .geluExact: return Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
            case .geluTanh: return Float(0.5 * v * (1 + tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v))))
            case .geluGGML:
                guard f > -10 else { return 0 }
                guard f < 10 else { return f }
                let h = Double(HalfFloat.float(f16Bits: HalfFloat.f16Bits(f)))
                let g = 0.5 * h * (1 + tanh((2 / Double.pi).squareRoot() * h * (1 + 0.044715 * h * h)))
                return HalfFloat.float(f16Bits: HalfFloat.f16Bits(Float(g)))
            case .relu: return Float(max(v, 0))
            case .squaredReLU: return Float(max(v, 0) * max(v, 0))
            }
        }
    }
}

/// ALiBi slopes as MPT (transformers' `build_mpt_alibi_tensor`), Baichuan 13B and llama.cpp
/// compute them: for n heads and max bias b, with n' the largest power of two ≤ n, heads
/// `h < n'` get `2^(−b·(h+1)/n')` and the rest every other slope of 2n' heads,
/// `2^(−b·(2(h−n')+1)/(2n'))`. The score of query i and key j gets `slope_h · (j − i)`.
public enum ALiBi {
    /// One slope per head, each computed in Double and rounded to float32.
    public static func slopes(heads n: Int, maxBias b: Double) -> [Float] {
        guard n > 0 else { return [] }
        var base = 1
        while base * 2 <= n { base *= 2 }
        return (0 ..< n).map { h in
            let exponent = h < base ? b * Double(h + 1) / Double(base) : b * Double(2 * (h - base) + 1) / Double(2 * base)
            return Float(pow(2, -exponent))
        }
    }

    /// Scalar reference: Baichuan's recursive form (the geometric sequence `start · start^i` with
    /// `start = 2^(−2^−(log2 n − 3))` for b = 8, generalized to `2^(−b/n)`), then for a head
    /// count that is not a power of two the slopes of 2n' taken at even indices.
    public static func reference(heads n: Int, maxBias b: Double) -> [Float] {
        func powerOfTwo(_ k: Int) -> [Double] {
            let start = pow(2, -b / Double(k))
            return (0 ..< k).map { start * pow(start, Double($0)) }
        }
        var base = 1
        while base * 2 <= n { base *= 2 }
        if base == n { return powerOfTwo(n).map { Float($0) } }
        let extra = powerOfTwo(2 * base).enumerated().filter { $0.offset % 2 == 0 }.map(\.element).prefix(n - base)
        return (powerOfTwo(base) + extra).map { Float($0) }
    }
}

/// llama.cpp's `ggml_table_gelu_f16`: for every float16 bit pattern, ggml's tanh GELU of its
/// value in float32, rounded to float16 (and widened back here).
enum GGMLGELU {
    static let table: [Float] = (0 ... UInt16.max).map { bits in
        let x = HalfFloat.float(f16Bits: bits)
        let sqrt2OverPi: Float = 0.79788456080286535588, a: Float = 0.044715
        let g = 0.5 * x * (1 + tanhf(sqrt2OverPi * x * (1 + a * x * x)))
        return HalfFloat.float(f16Bits: HalfFloat.f16Bits(g))
    }
}
