// A faster, bit-identical `make_qx_quants` (the Q6_K scale search).
//
// The search tries 19 candidate inverse scales and for each accumulates two sums over the group in
// element order. Those sums are serial chains (their order must not change), but the candidates are
// independent of each other, so here four candidates run side by side in the lanes of a SIMD4: every
// lane performs exactly the scalar operations of its candidate, in the same order, and the candidates
// are then compared one after another as the C loop does. Tests compare it with the literal port in
// GGMLKQuantHelpers.swift on many random groups.
//
// `make_qkx2_quants` (Q2_K, Q4_K, Q5_K) is not done this way: there a winning candidate moves `min`,
// which every later candidate depends on, and wins are frequent enough that running candidates
// speculatively in lanes and restarting after each win measured slower than the scalar loop.

@inline(__always)
private func nearestInt4(_ v: SIMD4<Float>) -> SIMD4<Int32> {
    let bits = unsafeBitCast(v + SIMD4<Float>(repeating: 12582912.0), to: SIMD4<Int32>.self)
    return (bits & 0x007f_ffff) &- 0x0040_0000
}

@inline(__always)
private func clamp4(_ v: SIMD4<Int32>, _ lo: Int32, _ hi: Int32) -> SIMD4<Int32> {
    let h = SIMD4<Int32>(repeating: hi), l = SIMD4<Int32>(repeating: lo)
    let a = v.replacing(with: h, where: v .> h)    // MIN(hi, v)
    return a.replacing(with: l, where: a .< l)     // MAX(lo, ·)
}

/// Exact `Float(v)` for |v| < 2²² (see `toFloat` in GGMLSIMD.swift).
@inline(__always)
private func float4(_ v: SIMD4<Int32>) -> SIMD4<Float> {
    unsafeBitCast(v &+ 0x4B40_0000, to: SIMD4<Float>.self) - SIMD4<Float>(repeating: 12582912.0)
}

/// Bit-identical to ``makeQXQuants(n:nmax:x:L:qw:)`` (`make_qx_quants`, rmse_type 1).
@inline(__always)
func makeQXQuantsFast(
    n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<Int8>, qw: UnsafePointer<Float>?
) -> Float {
    var max: Float = 0
    var amax: Float = 0
    for i in 0 ..< n {
        let ax = abs(x[i])
        if ax > amax {
            amax = ax
            max = x[i]
        }
    }
    if amax < groupMaxEps {
        for i in 0 ..< n { L[i] = 0 }
        return 0
    }
    let fnmax = Float(nmax)
    // Candidates in C order: the starting scale (is = 0), then is = -9 … -1, 1 … 9. Lane c of group g
    // is candidate 4g + c; the 20th lane is padding.
    @inline(__always) func iscale(_ c: Int) -> Float {
        if c == 0 { return Float(-nmax) / max }
        let step = c <= 9 ? c - 10 : c - 9
        return -(fnmax + 0.1 * Float(step)) / max
    }
    var sumlx = (SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>(), SIMD4<Float>())
    var suml2 = sumlx
    @inline(__always) func group(_ g: Int) -> (SIMD4<Float>, SIMD4<Float>) {
        let isv = SIMD4<Float>(iscale(4 * g), iscale(4 * g + 1), iscale(4 * g + 2), g == 4 ? 0 : iscale(4 * g + 3))
        var slx = SIMD4<Float>(), sl2 = SIMD4<Float>()
        for i in 0 ..< n {
            let xi = x[i]
            let l = clamp4(nearestInt4(isv * SIMD4(repeating: xi)), -nmax, nmax - 1)
            let w = qw?[i] ?? xi * xi
            let fl = float4(l)
            slx += SIMD4(repeating: w * xi) * fl
            sl2 += SIMD4(repeating: w) * fl * fl
        }
        return (slx, sl2)
    }
    (sumlx.0, suml2.0) = group(0)
    (sumlx.1, suml2.1) = group(1)
    (sumlx.2, suml2.2) = group(2)
    (sumlx.3, suml2.3) = group(3)
    (sumlx.4, suml2.4) = group(4)
    @inline(__always) func sums(_ c: Int) -> (Float, Float) {
        switch c / 4 {
        case 0: (sumlx.0[c % 4], suml2.0[c % 4])
        case 1: (sumlx.1[c % 4], suml2.1[c % 4])
        case 2: (sumlx.2[c % 4], suml2.2[c % 4])
        case 3: (sumlx.3[c % 4], suml2.3[c % 4])
        default: (sumlx.4[c % 4], suml2.4[c % 4])
        }
    }
    let (lx0, l20) = sums(0)
    var scale: Float = l20 != 0 ? lx0 / l20 : 0
    var best = scale * lx0
    var winner = 0
    for c in 1 ... 18 {
        let (lx, l2) = sums(c)
        if l2 > 0 && lx * lx > best * l2 {
            scale = lx / l2
            best = scale * lx
            winner = c
        }
    }
    let s = iscale(winner)
    for i in 0 ..< n {
        let l = nearestInt(s * x[i])
        L[i] = Int8(truncatingIfNeeded: nmax + clampCodes(l, -nmax, nmax - 1))
    }
    return scale
}
