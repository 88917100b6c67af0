import Foundation
import Quantize
import TensorCore
import TestSupport
import Testing

/// Bit-exactness on 131072 elements per type against SHA-256 hashes of ggml's own C reference
/// (`testdata/vectors/ggml_c_goldens.json`, made by `testdata/scripts/make_ggml_c_goldens.py`).
@Suite("ggml codecs against the C reference on a large input")
struct GGMLLargeGoldenTests {
    struct Goldens {
        let seed: UInt64, rows: Int, cols: Int, inputHash: String
        let quantize: [String: (bytes: Int, hash: String, dequantHash: String)]
        let randomDequant: [String: String]
    }

    static func goldens() throws -> Goldens {
        let json = try JSONSerialization.jsonObject(with: Data(GGMLTestData.bytes("ggml_c_goldens.json")))
        let root = try #require(json as? [String: Any])
        let input = try #require(root["input"] as? [String: Any])
        let quantize = try #require(root["quantize"] as? [String: [String: Any]])
        let random = try #require(root["random_dequant"] as? [String: String])
        var q: [String: (Int, String, String)] = [:]
        for (name, entry) in quantize {
            q[name] = (try #require(entry["bytes"] as? Int), try #require(entry["sha256"] as? String),
                       try #require(entry["sha256_dequant_f32le"] as? String))
        }
        return Goldens(
            seed: try #require((input["seed"] as? NSNumber)?.uint64Value), rows: try #require(input["rows"] as? Int),
            cols: try #require(input["cols"] as? Int), inputHash: try #require(input["sha256_f32le"] as? String),
            quantize: q, randomDequant: random)
    }

    @Test("the SHA-256 helper matches known digests")
    func sha256KnownAnswers() {
        #expect(TestSHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(TestSHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("the large input is rebuilt bit for bit")
    func inputReproduced() throws {
        let g = try Self.goldens()
        let x = GGMLTestData.largeInput(seed: g.seed, rows: g.rows, cols: g.cols)
        #expect(TestSHA256.hex(GGMLTestData.littleEndianBytes(x)) == g.inputHash)
    }

    @Test("quantize and dequantize hash like ggml's C", arguments: GGMLTestData.referenceTypes)
    func matchesC(type: GGMLType) throws {
        let g = try Self.goldens()
        let expected = try #require(g.quantize[type.name])
        let x = GGMLTestData.largeInput(seed: g.seed, rows: g.rows, cols: g.cols)
        let q = try GGMLQuantizer.quantize(x, rowLength: g.cols, as: type)
        #expect(q.count == expected.bytes)
        #expect(TestSHA256.hex(q) == expected.hash, "\(type.name) quantized bytes")
        let y = try GGMLQuantizer.dequantize(q, type: type, count: x.count)
        #expect(TestSHA256.hex(GGMLTestData.littleEndianBytes(y)) == expected.dequantHash, "\(type.name) dequantized")
    }

    @Test("random-block dequantization hashes like ggml's C", arguments: GGMLTestData.randomGoldenTypes)
    func randomBlocksMatchC(type: GGMLType) throws {
        let g = try Self.goldens()
        let expected = try #require(g.randomDequant[type.name])
        let codec = try #require(GGMLCodecs.codec(for: type))
        let bytes = try GGMLTestData.bytes("\(type.name).random.bin")
        let y = try GGMLQuantizer.dequantize(bytes, type: type, count: bytes.count / codec.typeSize * codec.blockSize)
        #expect(TestSHA256.hex(GGMLTestData.littleEndianBytes(y)) == expected, "\(type.name)")
    }
}
