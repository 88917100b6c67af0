import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Quantize

/// Properties of the bitsandbytes codecs that do not need the reference: fast path == scalar
/// reference, thread invariance, error ceilings (REFERENCE §10), argument validation.
@Suite struct BNBKernelTests {
    /// Seeded data with varied block scales, the odd value exactly 0, ±inf-free.
    static func randomData(count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { i in
            let scale = Float(sign: .plus, exponent: (i / 97) % 7 - 3, significand: 1)
            return i % 53 == 0 ? 0 : rng.nextFloat() * scale
        }
    }

    static func gaussian(count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var out: [Float] = []
        out.reserveCapacity(count)
        while out.count < count {
            let u1 = (Double(rng.next() >> 11) + 1) / 9_007_199_254_740_992   // (0, 1]: log is finite
            let u2 = Double(rng.next() >> 11) / 9_007_199_254_740_992
            let r = (-2 * Foundation.log(u1)).squareRoot()
            out.append(Float(r * cos(2 * .pi * u2)))
            out.append(Float(r * sin(2 * .pi * u2)))
        }
        return Array(out.prefix(count))
    }

    static func quantize(_ x: [Float], kind: FourBit.Kind, blockSize: Int, threads: Int?) throws -> ([UInt8], [Float]) {
        var packed = [UInt8](repeating: 0, count: FourBit.packedByteCount(elementCount: x.count))
        // A bad block size must be rejected by the kernel, so size the outputs without dividing by it.
        var absmax = [Float](repeating: 0, count: blockSize > 0 ? FourBit.blockCount(elementCount: x.count, blockSize: blockSize) : 0)
        try x.withUnsafeBufferPointer { xs in
            try packed.withUnsafeMutableBytes { p in
                try absmax.withUnsafeMutableBufferPointer { a in
                    if let threads {
                        try FourBit.quantize(xs, kind: kind, blockSize: blockSize, into: p, absmax: a, threads: threads)
                    } else {
                        try FourBit.quantizeScalar(xs, kind: kind, blockSize: blockSize, into: p, absmax: a)
                    }
                }
            }
        }
        return (packed, absmax)
    }

    @Test(arguments: FourBit.Kind.allCases)
    func simdEqualsScalarForEveryBlockSizeAndLength(kind: FourBit.Kind) throws {
        for blockSize in FourBit.validBlockSizes {
            for count in [1, 2, 7, 31, blockSize - 1, blockSize, blockSize + 1, 3 * blockSize + 17, 5000] {
                let x = Self.randomData(count: count, seed: UInt64(count * 7919 + blockSize))
                let reference = try Self.quantize(x, kind: kind, blockSize: blockSize, threads: nil)
                let fast = try Self.quantize(x, kind: kind, blockSize: blockSize, threads: 1)
                #expect(fast.0 == reference.0, "\(kind) bs \(blockSize) n \(count): \(firstDifference(fast.0, reference.0))")
                #expect(sameFloats(fast.1, reference.1), "\(kind) bs \(blockSize) n \(count)")
            }
        }
    }

    @Test func sameBytesForAnyThreadCount() throws {
        let x = Self.randomData(count: 64 * 1500 + 33, seed: 42)
        for kind in FourBit.Kind.allCases {
            let one = try Self.quantize(x, kind: kind, blockSize: 64, threads: 1)
            for threads in [2, 3, 8] {
                let many = try Self.quantize(x, kind: kind, blockSize: 64, threads: threads)
                #expect(many.0 == one.0 && sameFloats(many.1, one.1), "\(kind) threads \(threads)")
            }
            let tensor = try BNB4BitTensor(kind: kind, blockSize: 64, dtype: .f32, shape: [x.count], packed: one.0, absmax: .plain(one.1))
            let d1 = tensor.dequantized(threads: 1)
            #expect(sameFloats(tensor.dequantized(threads: 4), d1))
        }
        var cb1 = [Int8](repeating: 0, count: 300 * 129), cb4 = cb1
        var s1 = [Float](repeating: 0, count: 300), s4 = s1
        let w = Self.randomData(count: 300 * 129, seed: 9)
        try w.withUnsafeBufferPointer { ws in
            try cb1.withUnsafeMutableBufferPointer { c in
                try s1.withUnsafeMutableBufferPointer { try Int8Rowwise.quantize(ws, rows: 300, columns: 129, cb: c, scb: $0, threads: 1) }
            }
            try cb4.withUnsafeMutableBufferPointer { c in
                try s4.withUnsafeMutableBufferPointer { try Int8Rowwise.quantize(ws, rows: 300, columns: 129, cb: c, scb: $0, threads: 4) }
            }
        }
        #expect(cb1 == cb4 && s1 == s4)
    }

    @Test func int8SIMDEqualsScalar() throws {
        for (rows, columns) in [(1, 1), (3, 7), (5, 8), (17, 100), (64, 257)] {
            var w = Self.randomData(count: rows * columns, seed: UInt64(rows * 1000 + columns))
            if rows > 2 { for j in 0 ..< columns { w[columns + j] = 0 } }   // a zero row
            for viaFloat16 in [false, true] {
                var cbA = [Int8](repeating: 0, count: rows * columns), cbB = cbA
                var sA = [Float](repeating: 0, count: rows), sB = sA
                try w.withUnsafeBufferPointer { ws in
                    try cbA.withUnsafeMutableBufferPointer { c in
                        try sA.withUnsafeMutableBufferPointer {
                            try Int8Rowwise.quantize(ws, rows: rows, columns: columns, viaFloat16: viaFloat16, cb: c, scb: $0, threads: 2)
                        }
                    }
                    try cbB.withUnsafeMutableBufferPointer { c in
                        try sB.withUnsafeMutableBufferPointer {
                            try Int8Rowwise.quantizeScalar(ws, rows: rows, columns: columns, viaFloat16: viaFloat16, cb: c, scb: $0)
                        }
                    }
                }
                #expect(cbA == cbB && sA == sB, "\(rows)x\(columns) f16 \(viaFloat16)")
            }
        }
    }

    @Test func simdFloat16RoundingMatchesFloat16Conversion() {
        var rng = SplitMix64(seed: 77)
        var values: [Float] = [0, -0.0, 1, 65504, 65519.99, 65520, 65536, -65520, 1e-8, 2.98e-8, 2.9802322e-8, 5.96e-8,
                               6.1035156e-5, 6.1e-5, -6.1e-5, 1.0009766, 1.0004883, 1.0014648, .infinity, -.infinity,
                               .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for _ in 0 ..< 200_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for e in -30 ... 17 {   // dense near every float16 binade boundary, including ties
            for k in -40 ... 40 { values.append(Float(sign: .plus, exponent: e, significand: 1) * (1 + Float(k) / 4096)) }
        }
        while values.count % 8 != 0 { values.append(0.5) }
        var mismatches = 0
        for i in stride(from: 0, to: values.count, by: 8) {
            let v = SIMD8<Float>(values[i ..< i + 8])
            let r = Int8Rowwise.roundedToFloat16(v)
            for k in 0 ..< 8 {
                let expected = Float(Float16(v[k]))
                if !(r[k].bitPattern == expected.bitPattern || (r[k].isNaN && expected.isNaN)) {
                    mismatches += 1
                    if mismatches < 5 { Issue.record("\(v[k]) (\(String(v[k].bitPattern, radix: 16))): \(r[k]) vs \(expected)") }
                }
            }
        }
        #expect(mismatches == 0)
    }

    /// REFERENCE §10 (256×4096 N(0,1), measured with bnb): NF4 bs64 0.0920, NF4+DQ 0.0920, FP4 0.1220,
    /// int8 row-wise 0.0087. Here 64×4096 samples; ceilings leave room for sampling noise only.
    @Test func roundTripErrorCeilings() throws {
        let rows = 64, columns = 4096
        let x = Self.gaussian(count: rows * columns, seed: 2305)
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
        let sigma = (x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(x.count)).squareRoot()
        func relativeRMSE(_ y: [Float]) -> Double {
            (zip(x, y).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(x.count)).squareRoot() / sigma
        }
        for (kind, dq, ceiling) in [(FourBit.Kind.nf4, false, 0.0930), (.nf4, true, 0.0930), (.fp4, false, 0.1235), (.fp4, true, 0.1235)] {
            let t = try x.withUnsafeBufferPointer {
                try BNB4BitTensor.quantize($0, shape: [rows, columns], kind: kind, blockSize: 64, doubleQuant: dq, threads: 2)
            }
            let e = relativeRMSE(t.dequantized(threads: 2))
            #expect(e < ceiling && e > ceiling - 0.004, "\(kind) dq \(dq): relative RMSE \(e)")
            if dq {
                // Reconstructed absmax stays within one nested grid step of the true absmax.
                let plain = try x.withUnsafeBufferPointer {
                    try BNB4BitTensor.quantize($0, shape: [rows, columns], kind: kind, blockSize: 64, doubleQuant: false)
                }.blockAbsmax()
                guard case .doubleQuantized(let state) = t.absmax else { continue }
                for (b, (r, a)) in zip(state.decompressed(), plain).enumerated() {
                    let nested = state.nestedAbsmax[b / 256]
                    #expect(abs(r - a) <= nested * 0.05 + 1e-6, "block \(b): \(r) vs \(a)")
                }
            }
        }
        var cb = [Int8](repeating: 0, count: x.count)
        var scb = [Float](repeating: 0, count: rows)
        var y = [Float](repeating: 0, count: x.count)
        try x.withUnsafeBufferPointer { xs in
            try cb.withUnsafeMutableBufferPointer { c in
                try scb.withUnsafeMutableBufferPointer { try Int8Rowwise.quantize(xs, rows: rows, columns: columns, cb: c, scb: $0, threads: 2) }
            }
        }
        try cb.withUnsafeBufferPointer { c in
            try scb.withUnsafeBufferPointer { s in
                try y.withUnsafeMutableBufferPointer { try Int8Rowwise.dequantize(cb: c, scb: s, rows: rows, columns: columns, into: $0) }
            }
        }
        let e = relativeRMSE(y)
        #expect(e < 0.0090 && e > 0.0080, "int8 relative RMSE \(e)")
    }

    @Test func packingPutsTheFirstElementInTheHighNibble() throws {
        let (packed, absmax) = try Self.quantize([1.0, -1.0, 0.0], kind: .nf4, blockSize: 64, threads: 1)
        // 1.0 → 15, -1.0 → 0, 0.0 → 7, padding → code of 0.0 (7); short block stores its absmax.
        #expect(packed == [0xF0, 0x77])
        #expect(absmax == [1.0])
    }

    @Test func invalidBlockSizesThrow() throws {
        let x: [Float] = [1, 2, 3, 4]
        for bad in [0, -64, 16, 48, 100, 8192] {
            #expect(throws: BNBError.invalidBlockSize(bad)) { _ = try Self.quantize(x, kind: .nf4, blockSize: bad, threads: 1) }
            #expect(throws: BNBError.invalidBlockSize(bad)) { _ = try Self.quantize(x, kind: .fp4, blockSize: bad, threads: nil) }
            #expect(throws: BNBError.invalidBlockSize(bad)) {
                _ = try BNB4BitTensor(kind: .nf4, blockSize: bad, dtype: .f32, shape: [4], packed: [0, 0], absmax: .plain([1]))
            }
        }
        #expect(BNBError.invalidBlockSize(3).kind == .unsupported)
        #expect(throws: BNBError.invalidNestedBlockSize(0)) {
            var q = [UInt8](repeating: 0, count: 4), a = [Float]()
            try x.withUnsafeBufferPointer { xs in
                try q.withUnsafeMutableBufferPointer { qs in
                    try a.withUnsafeMutableBufferPointer { try Blockwise8.quantize(xs, blockSize: 0, codes: qs, absmax: $0) }
                }
            }
        }
    }

    @Test func missizedBuffersAndPartsThrow() throws {
        let x: [Float] = Array(repeating: 0.5, count: 65)
        var packed = [UInt8](repeating: 0, count: 32)   // needs 33
        var absmax = [Float](repeating: 0, count: 2)
        #expect(throws: BNBError.sizeMismatch(what: "packed 4-bit buffer", expected: 33, actual: 32)) {
            try x.withUnsafeBufferPointer { xs in
                try packed.withUnsafeMutableBytes { p in
                    try absmax.withUnsafeMutableBufferPointer { try FourBit.quantize(xs, kind: .nf4, into: p, absmax: $0) }
                }
            }
        }
        #expect(throws: BNBError.sizeMismatch(what: "absmax", expected: 2, actual: 1)) {
            _ = try BNB4BitTensor(kind: .nf4, blockSize: 64, dtype: .bf16, shape: [5, 13], packed: Array(repeating: 0, count: 33), absmax: .plain([1]))
        }
        #expect(throws: BNBError.self) {
            _ = try BNB4BitTensor(kind: .nf4, blockSize: 64, dtype: .bf16, shape: [-1, 4], packed: [], absmax: .plain([]))
        }
        #expect(throws: BNBError.self) {
            _ = try BNB4BitTensor(kind: .nf4, blockSize: 64, dtype: .i8, shape: [2], packed: [0], absmax: .plain([1]))
        }
        #expect(throws: BNBError.sizeMismatch(what: "nested_absmax", expected: 2, actual: 1)) {
            _ = try DoubleQuantizedAbsmax(codes: Array(repeating: 0, count: 257), nestedAbsmax: [1], offset: 0)
        }
        var descending = BNBCodes.dynamicSigned
        descending.swapAt(3, 4)
        #expect(throws: BNBError.self) { _ = try BlockwiseCodebook(code: descending) }
        #expect(throws: BNBError.self) { _ = try BlockwiseCodebook(code: [0, 1]) }
        var w: [Float] = [1, 2, 3]
        var cb = [Int8](repeating: 0, count: 3), scb = [Float](repeating: 0, count: 2)
        #expect(throws: BNBError.self) {
            try w.withUnsafeMutableBufferPointer { ws in
                try cb.withUnsafeMutableBufferPointer { c in
                    try scb.withUnsafeMutableBufferPointer { try Int8Rowwise.quantize(UnsafeBufferPointer(ws), rows: 1, columns: 3, cb: c, scb: $0) }
                }
            }
        }
    }

    @Test func emptyTensorQuantizesToNothing() throws {
        let t = try [Float]().withUnsafeBufferPointer {
            try BNB4BitTensor.quantize($0, shape: [0, 64], kind: .nf4, doubleQuant: false)
        }
        #expect(t.packed.isEmpty && t.blockAbsmax().isEmpty && t.dequantized().isEmpty)
    }

    @Test func safetensorsEntriesHaveTransformersLayout() throws {
        let x = Self.randomData(count: 128 * 128, seed: 5)
        let t = try x.withUnsafeBufferPointer { try BNB4BitTensor.quantize($0, shape: [128, 128], dtype: .bf16) }
        let entries = t.safetensorsEntries()
        #expect(entries.map(\.suffix) == ["", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map",
                                          ".quant_state.bitsandbytes__nf4"])
        #expect(entries.map(\.dtype) == [.u8, .u8, .f32, .f32, .f32, .u8])
        #expect(entries.map(\.shape).prefix(5) == [[8192, 1], [256], [16], [1], [256]])
        for e in entries { #expect(e.dtype.byteCount(elementCount: e.shape.reduce(1, *)) == e.bytes.count) }
        let json = String(decoding: entries[5].bytes, as: UTF8.self)
        let prefix = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [128, 128], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": "
        #expect(json.hasPrefix(prefix) && json.hasSuffix("}"))
        guard case .doubleQuantized(let dq) = t.absmax else { Issue.record("expected double quantization"); return }
        // The printed offset reads back as the float32 offset widened to Double.
        #expect(Double(json.dropFirst(prefix.count).dropLast()) == Double(dq.offset))
        let plain = try x.withUnsafeBufferPointer { try BNB4BitTensor.quantize($0, shape: [128, 128], kind: .fp4, doubleQuant: false) }
        #expect(plain.safetensorsEntries().map(\.suffix) == ["", ".absmax", ".quant_map", ".quant_state.bitsandbytes__fp4"])
        #expect(plain.quantStateJSON == "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [128, 128]}")
    }
}
