public import TensorCore
public import Formats

/// Decoding a row of any supported encoding to `Float`, and encoding `Float` back.
///
/// Dense floats go through ``DenseFloat``; the ggml block types through the Quantize module.
public enum RowCodec {
    public static func canDecode(_ e: TensorEncoding) -> Bool {
        switch e {
        case .dense(let d): d.isConvertibleFloat
        case .ggml(let g): g.denseEquivalent?.isConvertibleFloat ?? false
        }
    }

    public static func canEncode(_ e: TensorEncoding) -> Bool {
        switch e {
        case .dense(let d): d.isConvertibleFloat
        case .ggml(let g): g.denseEquivalent?.isConvertibleFloat ?? false
        }
    }

    /// Decodes one row of `row.count` elements.
    public static func decode(_ bytes: UnsafeRawBufferPointer, _ e: TensorEncoding, into row: UnsafeMutableBufferPointer<Float>) {
        if let d = e.denseType, d.isConvertibleFloat {
            DenseFloat.decode(bytes, dtype: d, into: row)
            return
        }
        preconditionFailure("RowCodec.decode: \(e) not supported (checked by canDecode)")
    }

    /// Encodes one row.
    public static func encode(_ row: UnsafeBufferPointer<Float>, _ e: TensorEncoding, into bytes: UnsafeMutableRawBufferPointer) {
        if let d = e.denseType, d.isConvertibleFloat {
            DenseFloat.encode(row, as: d, into: bytes)
            return
        }
        preconditionFailure("RowCodec.encode: \(e) not supported (checked by canEncode)")
    }

    /// Runs `body` with a scratch row of `count` floats (stack for small rows, heap otherwise).
    static func withScratch(count: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, count)) { buffer in
            body(UnsafeMutableBufferPointer(rebasing: buffer[0 ..< count]))
        }
    }
}
