@testable import Quantize
import TestSupport
import Testing

/// The SIMD scale search must reproduce the literal port of `make_qx_quants` bit for bit:
/// same scale, same codes.
@Suite("ggml k-quant scale searches")
struct GGMLScaleSearchTests {
    /// Groups of varied shape: uniform, skewed positive, skewed negative, sparse spikes, constant,
    /// all-zero, tiny, and values on a coarse grid (which makes rounding ties common).
    static func groups(count: Int, n: Int, seed: UInt64) -> [[Float]] {
        var rng = SplitMix64(seed: seed)
        var out: [[Float]] = []
        for g in 0 ..< count {
            var x = (0 ..< n).map { _ in rng.nextFloat() }
            switch g % 8 {
            case 1: x = x.map { abs($0) * 3 + 0.01 }
            case 2: x = x.map { -abs($0) * 0.2 }
            case 3: x = x.map { rng.next() % 7 == 0 ? $0 * 40 : $0 * 0.1 }
            case 4: x = [Float](repeating: Float(rng.nextFloat()), count: n)
            case 5: x = [Float](repeating: 0, count: n)
            case 6: x = x.map { $0 * 1e-7 }
            case 7: x = x.map { ($0 * 8).rounded() / 4 }
            default: break
            }
            out.append(x)
        }
        return out
    }

    @Test("make_qx_quants: SIMD search equals the literal port", arguments: [(16, Int32(32)), (16, Int32(4)), (32, Int32(8))])
    func qxQuants(n: Int, nmax: Int32) {
        var mismatches = 0
        for x in Self.groups(count: 1500, n: n, seed: UInt64(n) * 131 + UInt64(nmax)) {
            var l1 = [Int8](repeating: 0, count: n), l2 = [Int8](repeating: 0, count: n)
            let (s1, s2) = x.withUnsafeBufferPointer { xp in
                (l1.withUnsafeMutableBufferPointer { makeQXQuants(n: n, nmax: nmax, x: xp.baseAddress!, L: $0.baseAddress!, qw: nil) },
                 l2.withUnsafeMutableBufferPointer { makeQXQuantsFast(n: n, nmax: nmax, x: xp.baseAddress!, L: $0.baseAddress!, qw: nil) })
            }
            if s1.bitPattern != s2.bitPattern || l1 != l2 { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }
}
