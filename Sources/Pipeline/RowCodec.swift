public import TensorCore
public import Formats
import Quantize

/// Decoding a row of any supported encoding to `Float`, and encoding `Float` back.
///
/// Dense floats go through ``DenseFloat``; the ggml block types through the Quantize module.
public enum RowCodec {
    public static func canDecode(_ e: TensorEncoding) -> Bool {
        switch e {
        case .dense(let d): d.isConvertibleFloat
        case .ggml(let g): g.denseEquivalent?.isConvertibleFloat ?? GGMLQuantizer.supportsDequantize(g)
        }
    }

    public static func canEncode(_ e: TensorEncoding) -> Bool {
        switch e {
        case .dense(let d): d.isConvertibleFloat
        case .ggml(let g): g.denseEquivalent?.isConvertibleFloat ?? GGMLQuantizer.supportsQuantize(g)
        }
    }

    /// Decodes one row of `row.count` elements.
    public static func decode(_ bytes: UnsafeRawBufferPointer, _ e: TensorEncoding, into row: UnsafeMutableBufferPointer<Float>) {
        if let d = e.denseType, d.isConvertibleFloat {
            DenseFloat.decode(bytes, dtype: d, into: row)
            return
        }
        if case .ggml(let g) = e {
            // Sizes were checked by RowTranscoder, so this cannot fail.
            try! GGMLQuantizer.dequantize(bytes, type: g, count: row.count, into: row, threads: 1)
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
        if case .ggml(let g) = e {
            try! GGMLQuantizer.quantize(row, rowLength: row.count, as: g, into: bytes, threads: 1)
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
