// Scale searches used by the k-quant reference quantizers, ported from ggml `ggml-quants.c`
// (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`, `get_scale_min_k4`).
//
// Bit-exactness depends on doing every float operation in the C order: `w*x[i]*l` is `(w*x[i])*l`,
// `w*l*l` is `(w*l)*l`, integer codes are converted to float where C converts them, and nothing may
// be fused into an FMA (Swift never contracts `a*b + c` on its own). Keep it that way when editing.

/// ggml `GROUP_MAX_EPS`: below this the group is treated as all zero.
let groupMaxEps: Float = 1e-15

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: symmetric scale search for signed codes
/// `l ∈ [-nmax, nmax-1]`, stored in `L` as `l + nmax`. Weights are `qw[i]` or, without them, `x[i]²`.
/// Returns the scale (possibly negative: the sign follows the element of largest magnitude).
@inline(__always)
func makeQXQuants(
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
    var iscale = Float(-nmax) / max
    var sumlx: Float = 0
    var suml2: Float = 0
    for i in 0 ..< n {
        var l = nearestInt(iscale * x[i])
        l = clampCodes(l, -nmax, nmax - 1)
        L[i] = Int8(truncatingIfNeeded: l + nmax)
        let w = qw?[i] ?? x[i] * x[i]
        let fl = Float(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    }
    var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
    var best = scale * sumlx
    for step in -9 ... 9 where step != 0 {
        iscale = -(fnmax + 0.1 * Float(step)) / max
        sumlx = 0
        suml2 = 0
        for i in 0 ..< n {
            var l = nearestInt(iscale * x[i])
            l = clampCodes(l, -nmax, nmax - 1)
            let w = qw?[i] ?? x[i] * x[i]
            let fl = Float(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        }
        if suml2 > 0 && sumlx * sumlx > best * suml2 {
            for i in 0 ..< n {
                let l = nearestInt(iscale * x[i])
                L[i] = Int8(truncatingIfNeeded: nmax + clampCodes(l, -nmax, nmax - 1))
            }
            scale = sumlx / suml2
            best = scale * sumlx
        }
    }
    return scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: like ``makeQXQuants`` with `x²` weights, then up to
/// five passes of coordinate descent on single codes. Codes land in `L` as `l + nmax`.
@inline(__always)
func makeQ3Quants(n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<Int8>) -> Float {
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
    let iscale = Float(-nmax) / max
    var sumlx: Float = 0
    var suml2: Float = 0
    for i in 0 ..< n {
        var l = nearestInt(iscale * x[i])
        l = clampCodes(l, -nmax, nmax - 1)
        L[i] = Int8(truncatingIfNeeded: l)
        let w = x[i] * x[i]
        let fl = Float(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    }
    for _ in 0 ..< 5 {
        var changed = 0
        for i in 0 ..< n {
            let w = x[i] * x[i]
            let li = Float(L[i])
            var slx = sumlx - w * x[i] * li
            if slx > 0 {
                var sl2 = suml2 - w * li * li
                var newL = nearestInt(x[i] * sl2 / slx)
                newL = clampCodes(newL, -nmax, nmax - 1)
                if newL != Int32(L[i]) {
                    let fnew = Float(newL)
                    slx += w * x[i] * fnew
                    sl2 += w * fnew * fnew
                    if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        L[i] = Int8(truncatingIfNeeded: newL)
                        sumlx = slx
                        suml2 = sl2
                        changed += 1
                    }
                }
            }
        }
        if changed == 0 { break }
    }
    for i in 0 ..< n { L[i] = L[i] &+ Int8(truncatingIfNeeded: nmax) }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// `make_qkx2_quants`: affine scale/min search for unsigned codes `0…nmax`. Tries `nstep + 1`
/// candidate inverse scales `(rmin + rdelta·is + nmax)/(max − min)`, solves weighted least squares for
/// scale and min at each, and keeps the lowest weighted error (absolute if `useMAD`, else squared).
/// Returns the scale; `theMin` receives −min (≥ 0).
@inline(__always)
func makeQKX2Quants(
    n: Int, nmax: Int32, x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
    L: UnsafeMutablePointer<UInt8>, theMin: inout Float, Laux: UnsafeMutablePointer<UInt8>,
    rmin: Float, rdelta: Float, nstep: Int, useMAD: Bool
) -> Float {
    var min = x[0]
    var max = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1 ..< n {
        if x[i] < min { min = x[i] }
        if x[i] > max { max = x[i] }
        let w = weights[i]
        sumW += w
        sumX += w * x[i]
    }
    if min > 0 { min = 0 }
    if max == min {
        for i in 0 ..< n { L[i] = 0 }
        theMin = -min
        return 0
    }
    let fnmax = Float(nmax)
    var iscale = fnmax / (max - min)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0 ..< n {
        let l = nearestInt(iscale * (x[i] - min))
        L[i] = UInt8(truncatingIfNeeded: clampCodes(l, 0, nmax))
        var diff = scale * Float(L[i]) + min - x[i]
        diff = useMAD ? abs(diff) : diff * diff
        let w = weights[i]
        bestError += w * diff
    }
    if nstep < 1 {
        theMin = -min
        return scale
    }
    for step in 0 ... nstep {
        iscale = (rmin + rdelta * Float(step) + fnmax) / (max - min)
        var sumL: Float = 0
        var sumL2: Float = 0
        var sumXL: Float = 0
        for i in 0 ..< n {
            var l = nearestInt(iscale * (x[i] - min))
            l = clampCodes(l, 0, nmax)
            Laux[i] = UInt8(truncatingIfNeeded: l)
            let w = weights[i]
            let fl = Float(l)
            sumL += w * fl
            sumL2 += w * fl * fl
            sumXL += w * fl * x[i]
        }
        let D = sumW * sumL2 - sumL * sumL
        if D > 0 {
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var curError: Float = 0
            for i in 0 ..< n {
                var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
                diff = useMAD ? abs(diff) : diff * diff
                let w = weights[i]
                curError += w * diff
            }
            if curError < bestError {
                for i in 0 ..< n { L[i] = Laux[i] }
                bestError = curError
                scale = thisScale
                min = thisMin
            }
        }
    }
    theMin = -min
    return scale
}

/// `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` from the 12 packed bytes of Q4_K/Q5_K.
///
/// ```
/// byte 0-3:  mmSSSSSS  (S = scale j, low 6 bits; mm = top 2 bits of scale j+4)
/// byte 4-7:  mmMMMMMM  (M = min j,   low 6 bits; mm = top 2 bits of min j+4)
/// byte 8-11: MMMMSSSS  (low 4 bits of scale and min j+4)
/// ```
@inline(__always)
func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (sc: UInt8, m: UInt8) {
    if j < 4 {
        return (loadU8(q, j) & 63, loadU8(q, j + 4) & 63)
    }
    let sc = (loadU8(q, j + 4) & 0xF) | ((loadU8(q, j - 4) >> 6) << 4)
    let m = (loadU8(q, j + 4) >> 4) | ((loadU8(q, j) >> 6) << 4)
    return (sc, m)
}

/// Packs 8 six-bit scales and mins into the 12-byte Q4_K/Q5_K layout (inverse of ``scaleMinK4``).
@inline(__always)
func packScaleMinK4(ls: UnsafePointer<UInt8>, lm: UnsafePointer<UInt8>, into q: UnsafeMutableRawPointer) {
    // Same statement order as `quantize_row_q4_K_ref`: bytes 4…7 are written for j < 4 before the
    // j ≥ 4 iterations OR their top bits in.
    let b = q.bindMemory(to: UInt8.self, capacity: 12)
    for j in 0 ..< 8 {
        if j < 4 {
            b[j] = ls[j]
            b[j + 4] = lm[j]
        } else {
            b[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            b[j - 4] |= (ls[j] >> 4) << 6
            b[j] |= (lm[j] >> 4) << 6
        }
    }
}
