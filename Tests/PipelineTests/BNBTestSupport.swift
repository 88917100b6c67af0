import Formats
import Foundation
import TensorCore
import TestSupport

/// Helpers for the bitsandbytes pipeline tests (namespaced to avoid clashes in the target).
enum BNBTest {
    static func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Where two byte strings first differ, or "" when equal (short failure messages).
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> String {
        if a == b { return "" }
        let i = (0 ..< min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        return "sizes \(a.count) vs \(b.count), first difference at byte \(i)"
    }

    /// The tensors of a safetensors file (or directory's model.safetensors) as name → (dtype, shape, bytes).
    static func tensors(_ path: String) throws -> [String: (dtype: DType, shape: [Int], bytes: [UInt8])] {
        let checkpoint = try SafetensorsCheckpoint(path: path)
        var out: [String: (DType, [Int], [UInt8])] = [:]
        for t in checkpoint.tensors { out[t.name] = (t.dtype, t.shape, Array(checkpoint.bytes(of: t))) }
        return out
    }

    static func floats(_ bytes: [UInt8], dtype: DType) -> [Float] {
        var out = [Float](repeating: 0, count: bytes.count * 8 / dtype.bitCount)
        bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { DenseFloat.decode(raw, dtype: dtype, into: $0) } }
        return out
    }

    static func littleEndian(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in
            let b = v.bitPattern
            return [UInt8(truncatingIfNeeded: b), UInt8(truncatingIfNeeded: b >> 8), UInt8(truncatingIfNeeded: b >> 16), UInt8(truncatingIfNeeded: b >> 24)]
        }
    }

    /// A small model directory: config.json (LLaMA-like, `dtype` float32) and model.safetensors
    /// holding the given float32 tensors.
    static func modelDirectory(_ tensors: [(name: String, shape: [Int], values: [Float])], extraConfig: String = "") throws -> String {
        let dir = Fixtures.temporaryDirectory("wconv-bnb-model")
        let config = #"{"architectures": ["LlamaForCausalLM"], "dtype": "float32", "model_type": "llama"\#(extraConfig)}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let bytes = try SafetensorsWriter.serialize(tensors.map {
            (SafetensorsTensorSpec(name: $0.name, dtype: .f32, shape: $0.shape), littleEndian($0.values))
        }, metadata: [("format", "pt")])
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }

    /// Seeded values in [-scale, scale).
    static func values(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in rng.nextFloat() * scale }
    }

    /// Hex of the SHA-256 of `bytes` (FIPS 180-4), to check the goldens' `sha256_f32le` fields;
    /// Foundation on Linux has no hash functions.
    static func sha256(_ bytes: [UInt8]) -> String {
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
        var message = bytes
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        let bitLength = UInt64(bytes.count) * 8
        for i in (0 ..< 8).reversed() { message.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: message.count, by: 64) {
            for i in 0 ..< 16 {
                w[i] = (0 ..< 4).reduce(0) { $0 << 8 | UInt32(message[chunk + 4 * i + $1]) }
            }
            for i in 16 ..< 64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0 ..< 64 {
                let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        return h.map { word in
            let s = String(word, radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }
}
