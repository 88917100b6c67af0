#if canImport(Glibc)
import Glibc
#endif

/// The gradient of rotary embedding. RoPE rotates each pair `(xᵢ, xᵢ₊d/2)` by the angle of its
/// position, an orthogonal map; its gradient is the inverse rotation of the incoming gradient.
enum RoPEBackward {
    /// Rotates the gradient of every head of `rows` rows back in place:
    /// `(da, db) → (da·cos + db·sin, −da·sin + db·cos)`.
    /// With `rotaryDimensions` (partial rotary: phi, Persimmon) only the first that many values
    /// of each head were rotated; the rest passed through, so their gradient is left as is.
    /// - Parameters: as ``RoPE/apply(_:rows:rowStride:heads:headDimension:cos:sin:rotaryDimensions:)``.
    static func apply(
        _ dx: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int, headDimension: Int,
        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, rotaryDimensions: Int? = nil
    ) {
        let half = (rotaryDimensions ?? headDimension) / 2
        for r in 0 ..< rows {
            let c = cos + r * half, s = sin + r * half
            for h in 0 ..< heads {
                let v = dx + r * rowStride + h * headDimension
                for i in 0 ..< half {
                    let a = v[i], b = v[i + half]
                    v[i] = a * c[i] + b * s[i]
                    v[i + half] = b * c[i] - a * s[i]
                }
            }
        }
    }

    /// Scalar reference forward in Double: rotates one head vector by `angles` (`d/2` values).
    static func referenceForward(_ head: [Double], angles: [Double]) -> [Double] {
        let half = head.count / 2
        var out = head
        for i in 0 ..< half {
            let c = Glibc.cos(angles[i]), s = Glibc.sin(angles[i])
            out[i] = head[i] * c - head[i + half] * s
            out[i + half] = head[i + half] * c + head[i] * s
        }
        return out
    }

    /// Scalar reference gradient in Double: `∂L/∂head` given `∂L/∂rotated`.
    static func reference(_ dy: [Double], angles: [Double]) -> [Double] {
        referenceForward(dy, angles: angles.map { -$0 })
    }
}
