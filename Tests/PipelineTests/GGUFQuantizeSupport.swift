import Foundation
import Formats
import Pipeline
import TensorCore
import TestSupport

/// Helpers for the GGUF quantizer tests: the llama-quantize goldens in
/// testdata/golden/quantize (made by testdata/scripts/make_quantize_goldens.py) and SHA-256.
enum QuantizeGoldens {
    /// One golden: what llama-quantize wrote for an input, a type and flags.
    struct Case: Sendable, CustomStringConvertible {
        let id: String
        let input: String
        let type: String
        let flags: [String]
        let fileSHA256: String
        let fileSize: Int
        /// (key, GGUF type name) in file order.
        let keys: [(String, String)]
        /// (name, type, ne, sha256) in file order.
        let tensors: [(name: String, type: String, ne: [Int], sha256: String)]

        var description: String { id }
    }

    static func load(_ id: String) throws -> Case {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("golden/quantize/\(id).json")))
        guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw Failure(.malformedInput, "\(id): not an object") }
        let kv = (o["kv"] as? [[String: Any]] ?? []).map { ($0["key"] as? String ?? "", $0["type"] as? String ?? "") }
        let tensors = (o["tensors"] as? [[String: Any]] ?? []).map {
            (name: $0["name"] as? String ?? "", type: $0["type"] as? String ?? "", ne: $0["ne"] as? [Int] ?? [], sha256: $0["sha256"] as? String ?? "")
        }
        return Case(id: id, input: o["input"] as? String ?? "", type: o["type"] as? String ?? "", flags: o["flags"] as? [String] ?? [],
                    fileSHA256: o["file_sha256"] as? String ?? "", fileSize: o["file_size"] as? Int ?? 0, keys: kv, tensors: tensors)
    }

    /// Every case id (file names without `.json`), the converter summary excluded.
    static var ids: [String] {
        let dir = Fixtures.path("golden/quantize")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") && !$0.hasSuffix(".gguf.json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The options llama-quantize's flags stand for.
    static func options(_ c: Case, threads: Int = 2) throws -> QuantizeOptions {
        guard let fileType = GGMLFileType(name: c.type) else { throw Failure(.usage, "unknown type \(c.type)") }
        var o = QuantizeOptions(scheme: .ggml(fileType))
        o.threads = threads
        var i = 0
        while i < c.flags.count {
            switch c.flags[i] {
            case "--pure": o.pure = true
            case "--leave-output-tensor": o.leaveOutputTensor = true
            case "--allow-requantize": o.allowRequantize = true
            case "--output-tensor-type": i += 1; o.outputTensorType = try QuantizeOptions.parseTensorType(c.flags[i])
            case "--token-embedding-type": i += 1; o.tokenEmbeddingType = try QuantizeOptions.parseTensorType(c.flags[i])
            case "--tensor-type": i += 1; o.tensorTypeOverrides.append(try QuantizeOptions.parseTensorTypeOverride(c.flags[i]))
            default: throw Failure(.usage, "flag \(c.flags[i]) not handled by the test")
            }
            i += 1
        }
        return o
    }

    /// Lowercase hex SHA-256 (FIPS 180-4) of a byte buffer.
    static func sha256(_ message: UnsafeRawBufferPointer) -> String {
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
        // The message is processed in place; only the final one or two blocks are copied for padding.
        var tail = Array(message[(message.count / 64 * 64)...])
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        let bitLength = UInt64(message.count) * 8
        for i in (0 ..< 8).reversed() { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(8 * i))) }
        var w = [UInt32](repeating: 0, count: 64)
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        func block(_ bytes: UnsafeRawBufferPointer) {
            for t in 0 ..< 16 { w[t] = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self)) }
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
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ s0 &+ maj)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
        }
        for start in stride(from: 0, to: message.count / 64 * 64, by: 64) {
            block(UnsafeRawBufferPointer(rebasing: message[start ..< start + 64]))
        }
        tail.withUnsafeBytes { t in
            for start in stride(from: 0, to: t.count, by: 64) { block(UnsafeRawBufferPointer(rebasing: t[start ..< start + 64])) }
        }
        return h.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }

    static func sha256(file path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { sha256($0) }
    }
}
