import Quantize
import TensorCore
import Testing

/// Round-trip error of each quantizer on N(0, 1) data, against the relative RMSE ggml's C reference
/// measured on the same kind of data (REFERENCE §10, 256×4096 N(0,1), no imatrix).
@Suite("ggml round-trip error")
struct GGMLRoundTripTests {
    static let measured: [(GGMLType, Double)] = [
        (.q8_0, 0.0054), (.q6_K, 0.0177), (.q5_K, 0.0361), (.q5_1, 0.0379), (.q5_0, 0.0428),
        (.q4_K, 0.0714), (.q4_1, 0.0782), (.q4_0, 0.0860), (.q3_K, 0.1510), (.q2_K, 0.2969),
    ]

    @Test("relative RMSE is within 10% of ggml's", arguments: measured)
    func relativeRMSE(type: GGMLType, reference: Double) throws {
        let x = GGMLTestData.gaussian(count: 16 * 4096, seed: 2026)
        let q = try GGMLQuantizer.quantize(x, rowLength: 4096, as: type)
        #expect(q.count == x.count / (type.blockSize ?? 1) * (type.typeSize ?? 0))
        let y = try GGMLQuantizer.dequantize(q, type: type, count: x.count)
        var se = 0.0, sx = 0.0, sxx = 0.0
        for i in x.indices {
            let d = Double(y[i]) - Double(x[i])
            se += d * d
            sx += Double(x[i])
            sxx += Double(x[i]) * Double(x[i])
        }
        let n = Double(x.count)
        let sigma = (sxx / n - (sx / n) * (sx / n)).squareRoot()
        let rel = (se / n).squareRoot() / sigma
        #expect(rel <= reference * 1.1, "\(type.name): relative RMSE \(rel), ggml \(reference)")
        #expect(rel >= reference * 0.9, "\(type.name): relative RMSE \(rel), ggml \(reference)")
    }
}
