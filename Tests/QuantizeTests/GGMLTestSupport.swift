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

    /// Lowercase hex SHA-256 (FIPS 180-4), small and slow, for comparing against reference hashes.
    static func sha256Hex(_ message: [UInt8]) -> String {
        let k: [UInt32] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
            0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
            0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
            0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
            0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
            0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
            0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
        ]
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bitLength = UInt64(message.count) * 8
        for i in (0 ..< 8).reversed() { data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(8 * i))) }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for t in 0 ..< 16 {
                let b = chunk + 4 * t
                w[t] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for t in 16 ..< 64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0 ..< 64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[t] &+ w[t]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
            h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
        }
        return h.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }
}
