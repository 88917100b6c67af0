import Foundation
import Quantize
import TensorCore
import Testing

/// Bit-exactness of the ggml codecs against ggml's C reference (via the committed vectors) and gguf-py.
@Suite("ggml codecs against the reference vectors")
struct GGMLReferenceVectorTests {
    @Test("quantizing the 4×256 input gives ggml's bytes", arguments: GGMLTestData.referenceTypes)
    func quantizeMatchesC(type: GGMLType) throws {
        let input = try GGMLTestData.input()
        let expected = try GGMLTestData.bytes("\(type.name).bin")
        let actual = try GGMLQuantizer.quantize(input, rowLength: 256, as: type, threads: 1)
        let diff = GGMLTestData.firstDifference(actual, expected, typeSize: type.typeSize ?? 1)
        #expect(diff == nil, "\(type.name): \(diff ?? "")")
    }

    @Test("dequantizing ggml's bytes gives ggml's floats", arguments: GGMLTestData.referenceTypes)
    func dequantizeMatchesC(type: GGMLType) throws {
        let bytes = try GGMLTestData.bytes("\(type.name).bin")
        let expected = try GGMLTestData.floats("\(type.name).dequant.f32le.bin")
        let actual = try GGMLQuantizer.dequantize(bytes, type: type, count: 1024, threads: 1)
        let diff = GGMLTestData.firstDifference(actual, expected, blockSize: type.blockSize ?? 1)
        #expect(diff == nil, "\(type.name): \(diff ?? "")")
    }

    @Test("random blocks dequantize as gguf-py does (fast and reference paths)",
          arguments: GGMLTestData.randomGoldenTypes)
    func randomBlocksMatchGGUFPy(type: GGMLType) throws {
        let codec = try #require(GGMLCodecs.codec(for: type))
        let bytes = try GGMLTestData.bytes("\(type.name).random.bin")
        let expected = try GGMLTestData.floats("\(type.name).random.dequant.f32le.bin")
        for fast in [false, true] {
            let actual = GGMLTestData.dequantize(codec, bytes, fast: fast)
            let diff = GGMLTestData.firstDifference(actual, expected, blockSize: codec.blockSize)
            #expect(diff == nil, "\(type.name) \(fast ? "fast" : "reference"): \(diff ?? "")")
        }
    }

    @Test("first blocks match the hex quoted in REFERENCE §13")
    func firstBlockHex() throws {
        let input = try GGMLTestData.input()
        func hex(_ type: GGMLType, _ n: Int) throws -> String {
            try GGMLQuantizer.quantize(input, rowLength: 256, as: type, threads: 1).prefix(n)
                .map { String(format: "%02x", $0) }.joined()
        }
        #expect(try hex(.q8_0, 34) == "de1f28cd2e9a04fd1bdec1df55abcb254b7f4ef70a21bf35387dd3f2363eab824a89")
        #expect(try hex(.q4_0, 18) == "ceaf359b756ec858460abc9a534ddbf633f0")
    }
}

@Suite("ggml codec fast paths and threading")
struct GGMLFastPathTests {
    @Test("fast dequantizer equals the scalar reference on random bytes", arguments: GGMLTestData.allCodecTypes)
    func fastEqualsReference(type: GGMLType) throws {
        let codec = try #require(GGMLCodecs.codec(for: type))
        let blocks = max(1, 4096 / codec.blockSize)
        let bytes = GGMLTestData.randomBytes(count: blocks * codec.typeSize, seed: UInt64(type.rawValue) &+ 77)
        let reference = GGMLTestData.dequantize(codec, bytes, fast: false)
        let fast = GGMLTestData.dequantize(codec, bytes, fast: true)
        let diff = GGMLTestData.firstDifference(fast, reference, blockSize: codec.blockSize, nanEqual: true)
        #expect(diff == nil, "\(type.name): \(diff ?? "")")
    }

    @Test("quantized bytes do not depend on the thread count", arguments: GGMLTestData.quantizerTypes)
    func quantizeThreadInvariant(type: GGMLType) throws {
        let x = GGMLTestData.gaussian(count: 64 * 1024, seed: 5)
        let one = try GGMLQuantizer.quantize(x, rowLength: 1024, as: type, threads: 1)
        let four = try GGMLQuantizer.quantize(x, rowLength: 1024, as: type, threads: 4)
        #expect(one == four)
        let y1 = try GGMLQuantizer.dequantize(one, type: type, count: x.count, threads: 1)
        let y4 = try GGMLQuantizer.dequantize(one, type: type, count: x.count, threads: 4)
        #expect(y1.map(\.bitPattern) == y4.map(\.bitPattern))
    }

    @Test("the row API's dequantization equals the reference kernel", arguments: GGMLTestData.referenceTypes)
    func rowAPIUsesExactKernel(type: GGMLType) throws {
        let codec = try #require(GGMLCodecs.codec(for: type))
        let x = GGMLTestData.gaussian(count: 8192, seed: 11)
        let q = try GGMLQuantizer.quantize(x, rowLength: 2048, as: type, threads: 2)
        let viaAPI = try GGMLQuantizer.dequantize(q, type: type, count: x.count, threads: 3)
        let reference = GGMLTestData.dequantize(codec, q, fast: false)
        #expect(viaAPI.map(\.bitPattern) == reference.map(\.bitPattern))
    }
}

@Suite("ggml codec registry and dense codecs")
struct GGMLRegistryTests {
    @Test("every codec's block layout agrees with the GGMLType table")
    func layoutsAgree() {
        for codec in GGMLCodecs.all {
            #expect(codec.blockSize == codec.ggmlType.blockSize, "\(codec.ggmlType.name)")
            #expect(codec.typeSize == codec.ggmlType.typeSize, "\(codec.ggmlType.name)")
        }
        #expect(Set(GGMLTestData.allCodecTypes).count == GGMLCodecs.all.count)
    }

    @Test("support queries")
    func supportQueries() {
        for type in GGMLTestData.referenceTypes + [.f32, .f16, .bf16] {
            #expect(GGMLQuantizer.supportsQuantize(type), "\(type.name)")
            #expect(GGMLQuantizer.supportsDequantize(type), "\(type.name)")
        }
        for type in [GGMLType.iq4_nl, .iq4_xs, .mxfp4, .tq1_0, .tq2_0, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m] {
            #expect(!GGMLQuantizer.supportsQuantize(type), "\(type.name)")
            #expect(GGMLQuantizer.supportsDequantize(type), "\(type.name)")
        }
        for type in [GGMLType.q8_1, .q8_K, .nvfp4, .q1_0, .i32, GGMLType(rawValue: 4), GGMLType(rawValue: 999)] {
            #expect(!GGMLQuantizer.supportsQuantize(type), "\(type.name)")
            #expect(!GGMLQuantizer.supportsDequantize(type), "\(type.name)")
        }
    }

    @Test("dense types round-trip through HalfFloat's conversions")
    func denseCodecs() throws {
        let x: [Float] = [0, -0, 1, -2.5, 65504, 1e-8, .infinity, 3.14159265, -1e30, 0.1, 7, 8, 9, 10, 11, 12, 13]
        let f32 = try GGMLQuantizer.quantize(x, rowLength: x.count, as: .f32)
        #expect(try GGMLQuantizer.dequantize(f32, type: .f32, count: x.count).map(\.bitPattern) == x.map(\.bitPattern))
        let f16 = try GGMLQuantizer.quantize(x, rowLength: x.count, as: .f16)
        let f16Back = try GGMLQuantizer.dequantize(f16, type: .f16, count: x.count)
        #expect(f16Back.map(\.bitPattern) == x.map { Float(Float16($0)).bitPattern })
        let bf16 = try GGMLQuantizer.quantize(x, rowLength: x.count, as: .bf16)
        let bf16Back = try GGMLQuantizer.dequantize(bf16, type: .bf16, count: x.count)
        #expect(bf16Back.map(\.bitPattern) == x.map { HalfFloat.float(bf16Bits: HalfFloat.bf16Bits($0)).bitPattern })
    }
}

@Suite("ggml quantizer input checks")
struct GGMLQuantizerErrorTests {
    @Test("unsupported types are refused with a classified error")
    func unsupportedTypes() {
        #expect(throws: GGMLQuantizeError.unsupportedType(.iq2_xxs, .quantize)) {
            try GGMLQuantizer.quantize([Float](repeating: 0, count: 256), rowLength: 256, as: .iq2_xxs)
        }
        #expect(throws: GGMLQuantizeError.unsupportedType(.q8_K, .dequantize)) {
            try GGMLQuantizer.dequantize([UInt8](repeating: 0, count: 292), type: .q8_K, count: 256)
        }
        #expect(throws: GGMLQuantizeError.unsupportedType(GGMLType(rawValue: 77), .dequantize)) {
            try GGMLQuantizer.dequantize([UInt8](), type: GGMLType(rawValue: 77), count: 0)
        }
        #expect(GGMLQuantizeError.unsupportedType(.iq2_xxs, .quantize).kind == .unsupported)
    }

    @Test("rows must be whole blocks and whole rows")
    func alignment() {
        #expect(throws: GGMLQuantizeError.rowNotBlockAligned(type: .q4_K, rowLength: 128, blockSize: 256)) {
            try GGMLQuantizer.quantize([Float](repeating: 0, count: 256), rowLength: 128, as: .q4_K)
        }
        #expect(throws: GGMLQuantizeError.rowNotBlockAligned(type: .q8_0, rowLength: 0, blockSize: 32)) {
            try GGMLQuantizer.quantize([Float](repeating: 0, count: 64), rowLength: 0, as: .q8_0)
        }
        #expect(throws: GGMLQuantizeError.partialRow(elementCount: 96, rowLength: 64)) {
            try GGMLQuantizer.quantize([Float](repeating: 0, count: 96), rowLength: 64, as: .q8_0)
        }
        #expect(throws: GGMLQuantizeError.countNotBlockAligned(type: .q6_K, count: 100, blockSize: 256)) {
            try GGMLQuantizer.dequantize([UInt8](repeating: 0, count: 210), type: .q6_K, count: 100)
        }
    }

    @Test("buffer sizes are checked before any work")
    func bufferSizes() throws {
        let x = [Float](repeating: 1, count: 64)
        var small = [UInt8](repeating: 0, count: 67)
        #expect(throws: GGMLQuantizeError.bufferSizeMismatch(what: "Q8_0 output buffer", expected: 68, actual: 67)) {
            try x.withUnsafeBufferPointer { src in
                try small.withUnsafeMutableBytes { dst in
                    try GGMLQuantizer.quantize(src, rowLength: 64, as: .q8_0, into: dst)
                }
            }
        }
        #expect(throws: GGMLQuantizeError.bufferSizeMismatch(what: "Q4_0 input", expected: 36, actual: 35)) {
            try GGMLQuantizer.dequantize([UInt8](repeating: 0, count: 35), type: .q4_0, count: 64)
        }
        var out = [Float](repeating: 0, count: 63)
        let bytes = [UInt8](repeating: 0, count: 36)
        #expect(throws: GGMLQuantizeError.bufferSizeMismatch(what: "float output buffer", expected: 64, actual: 63)) {
            try bytes.withUnsafeBytes { src in
                try out.withUnsafeMutableBufferPointer { dst in
                    try GGMLQuantizer.dequantize(src, type: .q4_0, count: 64, into: dst)
                }
            }
        }
    }

    @Test("non-finite weights quantize without trapping")
    func nonFiniteInput() throws {
        var x = GGMLTestData.gaussian(count: 512, seed: 3)
        x[3] = .nan
        x[300] = .infinity
        x[301] = -.infinity
        for codec in GGMLCodecs.quantizers {
            let q = try GGMLQuantizer.quantize(x, rowLength: 512, as: codec.ggmlType, threads: 1)
            _ = try GGMLQuantizer.dequantize(q, type: codec.ggmlType, count: 512, threads: 1)
        }
    }

    @Test("empty tensors are fine")
    func empty() throws {
        #expect(try GGMLQuantizer.quantize([], rowLength: 256, as: .q4_K).isEmpty)
        #expect(try GGMLQuantizer.dequantize([], type: .q4_K, count: 0).isEmpty)
    }
}

@Suite("ggml quantizer hostile sizes")
struct GGMLHostileSizeTests {
    @Test("a huge element count with a small buffer is refused before allocating")
    func hugeCount() {
        #expect(throws: GGMLQuantizeError.bufferSizeMismatch(what: "Q4_K input", expected: (1 << 50) / 256 * 144, actual: 144)) {
            try GGMLQuantizer.dequantize([UInt8](repeating: 0, count: 144), type: .q4_K, count: 1 << 50)
        }
        #expect(throws: GGMLQuantizeError.self) {
            try GGMLQuantizer.dequantize([UInt8](repeating: 0, count: 144), type: .q4_K, count: Int.max / 256 * 256)
        }
    }
}
