@testable import Finetune
import Quantize
import Testing
import TestSupport

/// The tiled 4-bit products equal the products with the whole matrix dequantized, bit for bit,
/// for any thread count (tiles cover whole dot products).
@Suite struct FourBitProductTests {
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in Float(Double(rng.next() % 2_000_001) / 1_000_000 - 1) }
    }

    /// Several tiles each way; 201 columns put row starts on odd elements (a low nibble first).
    /// 128 rows, as in training: every tile's product is then above the size (1M multiply-adds)
    /// below which OpenBLAS switches to its small-matrix kernels, whose sums are ordered otherwise.
    @Test(arguments: [[640, 256], [700, 201], [96, 64]])
    func tiledEqualsWhole(shape: [Int]) throws {
        let (m, n, rows) = (shape[0], shape[1], 128)
        let weights = Self.values(m * n, seed: 1)
        let tensor = try weights.withUnsafeBufferPointer { try BNB4BitTensor.quantize($0, shape: [m, n]) }
        let dense = tensor.dequantized()
        let x = Self.values(rows * n, seed: 2), dY = Self.values(rows * m, seed: 3)
        let y0 = Self.values(rows * m, seed: 4), dx0 = Self.values(rows * n, seed: 5)
        for accumulate in [false, true] {
            var expectedY = y0, expectedDX = dx0
            BLAS.gemm(transB: true, m: rows, n: m, k: n, x, lda: n, dense, ldb: n, beta: accumulate ? 1 : 0, &expectedY, ldc: m)
            BLAS.gemm(m: rows, n: n, k: m, dY, lda: m, dense, ldb: n, beta: accumulate ? 1 : 0, &expectedDX, ldc: n)
            for threads in [1, 2, 3] {
                let product = FourBitProduct()
                var y = y0, dx = dx0
                product.forward(tensor, x: x, rows: rows, y: &y, accumulate: accumulate, threads: threads)
                product.backward(tensor, dY: dY, rows: rows, dx: &dx, accumulate: accumulate, threads: threads)
                let (sameY, sameDX) = (y == expectedY, dx == expectedDX)
                #expect(sameY, "\(shape) forward, \(threads) threads, accumulate \(accumulate)")
                #expect(sameDX, "\(shape) backward, \(threads) threads, accumulate \(accumulate)")
            }
        }
    }

    @Test func tilesAreEvenAndCoverTheMatrix() {
        for (length, other, threads) in [(1536, 576, 2), (576, 1536, 2), (192, 576, 2), (576, 576, 3), (40, 10, 2)] {
            let tile = FourBitProduct.tileLength(length, other: other, threads: threads)
            #expect(tile >= min(length, 64) && tile <= length)
            #expect(tile == length || tile % 16 == 0)
        }
        // SmolLM2's MLP matrices: an even number of tiles of at most about 512 KB.
        let tile = FourBitProduct.tileLength(1536, other: 576, threads: 2)
        #expect((1536 + tile - 1) / tile % 2 == 0 && tile * 576 <= FourBitProduct.tileFloats + 16 * 576)
    }
}
