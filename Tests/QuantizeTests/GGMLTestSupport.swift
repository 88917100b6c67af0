import Foundation
import Quantize
import TensorCore
import TestSupport

/// Shared helpers for the ggml codec tests.
enum GGMLTestData {
    /// The ten types ggml's C reference produced vectors for (testdata/vectors/<TYPE>.bin).
    static let referenceTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    /// Types with a random-block dequantization golden (testdata/vectors/<TYPE>.random*.bin).
    static let randomGoldenTypes: [GGMLType] = referenceTypes + [
        .iq4_nl, .iq4_xs, .mxfp4, .tq1_0, .tq2_0, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m,
    ]

    /// Every type with a codec, and every type that can be quantized.
    static let allCodecTypes: [GGMLType] = GGMLCodecs.all.map { $0.ggmlType }
    static let quantizerTypes: [GGMLType] = GGMLCodecs.quantizers.map { $0.ggmlType }

    static func bytes(_ name: String) throws -> [UInt8] {
        try Fixtures.data("vectors/\(name)")
    }

    static func floats(_ name: String) throws -> [Float] {
        let b = try bytes(name)
        return b.withUnsafeBytes { raw in
            (0 ..< b.count / 4).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
        }
    }

    /// The 4×256 input of the reference vectors.
    static func input() throws -> [Float] { try floats("input_4x256_f32le.bin") }

    /// Seeded standard-normal floats (Box–Muller over SplitMix64).
    static func gaussian(count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var out = [Float]()
        out.reserveCapacity(count)
        while out.count < count {
            let u1 = (Double(rng.next() >> 11) + 1) / 9007199254740993.0
            let u2 = Double(rng.next() >> 11) / 9007199254740992.0
            let r = (-2 * log(u1)).squareRoot()
            out.append(Float(r * cos(2 * .pi * u2)))
            if out.count < count { out.append(Float(r * sin(2 * .pi * u2))) }
        }
        return out
    }

    /// Random block bytes; fp16 scale fields may be anything, so callers compare NaN-tolerantly.
    static func randomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// Describes where two float arrays differ bitwise, or nil if they are identical
    /// (two NaNs count as equal when `nanEqual`).
    static func firstDifference(_ a: [Float], _ b: [Float], blockSize: Int, nanEqual: Bool = false) -> String? {
        guard a.count == b.count else { return "count \(a.count) vs \(b.count)" }
        var bad = 0
        var first: Int?
        for i in a.indices where a[i].bitPattern != b[i].bitPattern && !(nanEqual && a[i].isNaN && b[i].isNaN) {
            bad += 1
            if first == nil { first = i }
        }
        guard let first else { return nil }
        return "\(bad) of \(a.count) elements differ; first at \(first) (block \(first / blockSize)): \(a[first]) vs \(b[first])"
    }

    /// Describes where two byte arrays differ, block by block, or nil if identical.
    static func firstDifference(_ a: [UInt8], _ b: [UInt8], typeSize: Int) -> String? {
        guard a.count == b.count else { return "size \(a.count) vs \(b.count)" }
        let blocks = a.count / typeSize
        var badBlocks: [Int] = []
        for blk in 0 ..< blocks where a[blk * typeSize ..< (blk + 1) * typeSize] != b[blk * typeSize ..< (blk + 1) * typeSize] {
            badBlocks.append(blk)
        }
        guard let first = badBlocks.first else { return nil }
        let range = first * typeSize ..< (first + 1) * typeSize
        let bytes = range.filter { a[$0] != b[$0] }.map { "@\($0 - range.lowerBound): \(a[$0]) vs \(b[$0])" }
        return "\(badBlocks.count) of \(blocks) blocks differ; first block \(first): \(bytes.prefix(8).joined(separator: ", "))"
    }

    /// Runs a codec's reference or fast dequantizer over whole blocks.
    static func dequantize(_ codec: any GGMLBlockCodec.Type, _ bytes: [UInt8], fast: Bool) -> [Float] {
        let blocks = bytes.count / codec.typeSize
        var out = [Float](repeating: 0, count: blocks * codec.blockSize)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress, blocks > 0 else { return }
                if fast {
                    codec.dequantizeBlocksFast(s, count: blocks, into: d)
                } else {
                    codec.dequantizeBlocksReference(s, count: blocks, into: d)
                }
            }
        }
        return out
    }

    /// The large input of `ggml_c_goldens.json`, rebuilt exactly as `make_ggml_c_goldens.py`
    /// (`large_input`) builds it: every step is exact or a single IEEE float operation.
    static func largeInput(seed: UInt64, rows: Int, cols: Int) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var x = [Float](repeating: 0, count: rows * cols)
        for r in 0 ..< rows {
            let scale = Float(sign: .plus, exponent: r % 7 - 3, significand: 1)
            for i in 0 ..< cols {
                var v = (rng.nextFloat() + rng.nextFloat()) * scale
                if (r * cols + i) % 101 == 7 { v = v * 8 }
                x[r * cols + i] = v
            }
        }
        for i in 0 ..< 256 { x[5 * cols + i] = 0 }
        for i in 256 ..< 512 { x[6 * cols + i] = 0.75 }
        for i in 0 ..< cols { x[7 * cols + i] *= Float(sign: .plus, exponent: -20, significand: 1) }
        return x
    }

    static func littleEndianBytes(_ floats: [Float]) -> [UInt8] {
        floats.withUnsafeBytes { Array($0) }
    }
}
