import Dispatch
import Quantize
import TensorCore

/// The base products of a projection whose frozen weight `W` `[out, in]` is stored in 4 bits,
/// dequantized one tile at a time just before that tile's product.
///
/// Dequantizing a whole matrix (3.5 MB for SmolLM2's MLP) wrote it out of the core's cache and
/// BLAS read it back: the dequantizer stalled on its stores (13% of the NF4 step's CPU samples).
/// A tile of ``tileFloats`` stays in the core's L2 cache between being written and being packed
/// by BLAS. Tiles cover whole rows of `W` for `X·Wᵀ` (a block of output columns) and whole
/// columns of `W` for `dY·W` (a block of input-gradient columns), so every output element is
/// still one dot product over the full inner dimension, computed as with the whole matrix:
/// the results are the same bits. Each worker has its own tile buffer.
final class FourBitProduct {
    /// Floats per tile (512 KB: half the L2 cache of the cores this was measured on).
    static let tileFloats = 1 << 17

    private var buffers: [FloatBuffer] = []

    /// `y (+)= x · Wᵀ`: `x` `[rows, in]`, `y` `[rows, out]`.
    func forward(_ w: BNB4BitTensor, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>, accumulate: Bool,
                 threads: Int) {
        let (m, n) = (w.shape[0], w.shape[1])
        let tileRows = Self.tileLength(m, other: n, threads: threads)
        nonisolated(unsafe) let (x, y) = (x, y)
        run(w, tiles: (m + tileRows - 1) / tileRows, tileFloats: tileRows * n, threads: threads) { tile, d, buffer in
            let r0 = tile * tileRows, r1 = min(m, r0 + tileRows)
            d.dequantize(elements: r0 * n ..< r1 * n, into: buffer)
            BLAS.gemm(transB: true, m: rows, n: r1 - r0, k: n, x, lda: n, buffer, ldb: n, beta: accumulate ? 1 : 0, y + r0,
                      ldc: m)
        }
    }

    /// `dx (+)= dY · W`: `dY` `[rows, out]`, `dx` `[rows, in]`.
    func backward(_ w: BNB4BitTensor, dY: UnsafePointer<Float>, rows: Int, dx: UnsafeMutablePointer<Float>,
                  accumulate: Bool, threads: Int) {
        let (m, n) = (w.shape[0], w.shape[1])
        let tileColumns = Self.tileLength(n, other: m, threads: threads)
        nonisolated(unsafe) let (dY, dx) = (dY, dx)
        run(w, tiles: (n + tileColumns - 1) / tileColumns, tileFloats: m * tileColumns, threads: threads) { tile, d, buffer in
            let c0 = tile * tileColumns, c1 = min(n, c0 + tileColumns), width = c1 - c0
            for j in 0 ..< m { d.dequantize(elements: j * n + c0 ..< j * n + c1, into: buffer + j * width) }
            BLAS.gemm(m: rows, n: width, k: m, dY, lda: m, buffer, ldb: width, beta: accumulate ? 1 : 0, dx + c0, ldc: n)
        }
    }

    /// Tile length along a dimension of `length` when the other has `other`: about
    /// ``tileFloats`` per tile, a tile count that is a multiple of `threads` (so the workers are
    /// evenly loaded), lengths multiples of 16 and at least 64.
    static func tileLength(_ length: Int, other: Int, threads: Int) -> Int {
        let workers = max(1, threads)
        var tiles = max(1, (length * other + tileFloats - 1) / tileFloats)
        tiles = (tiles + workers - 1) / workers * workers
        let tile = ((length + tiles - 1) / tiles + 15) & ~15
        return min(length, max(64, tile))
    }

    /// Calls `body(tile, dequantizer, buffer)` for every tile; each worker takes a run of neighbouring
    /// tiles (the packed bytes of neighbouring column tiles share cache lines).
    private func run(_ w: BNB4BitTensor, tiles: Int, tileFloats: Int, threads: Int,
                     _ body: @Sendable (Int, TileDequantizer, UnsafeMutablePointer<Float>) -> Void) {
        let workers = max(1, min(threads, tiles))
        while buffers.count < workers { buffers.append(FloatBuffer()) }
        for b in buffers.prefix(workers) { b.reserve(tileFloats) }
        let absmax = w.blockAbsmax()
        w.packed.withUnsafeBufferPointer { packed in
            absmax.withUnsafeBufferPointer { scales in
                let d = TileDequantizer(dequantizer: FourBit.BlockDequantizer(kind: w.kind), packed: packed.baseAddress!,
                                        absmax: scales.baseAddress!, blockSize: w.blockSize)
                nonisolated(unsafe) let outputs = buffers.prefix(workers).map(\.pointer)
                if workers == 1 {
                    for tile in 0 ..< tiles { body(tile, d, outputs[0]) }
                    return
                }
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    for tile in tiles * worker / workers ..< tiles * (worker + 1) / workers { body(tile, d, outputs[worker]) }
                }
            }
        }
    }
}

/// One tensor's dequantizer with its operands bound.
private struct TileDequantizer: @unchecked Sendable {
    let dequantizer: FourBit.BlockDequantizer
    let packed: UnsafePointer<UInt8>
    let absmax: UnsafePointer<Float>
    let blockSize: Int

    func dequantize(elements: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        dequantizer.dequantize(packed: packed, absmax: absmax, blockSize: blockSize, elements: elements, into: out)
    }
}
