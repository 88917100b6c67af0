import Synchronization
import Testing
import TensorCore
import TestSupport

@Suite struct HalfFloatTests {
    @Test func bf16RoundsToNearestEven() {
        // 1 + 2^-8 lies exactly halfway between two bf16 values; the even one (1.0) wins.
        #expect(HalfFloat.bf16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        // 1 + 3·2^-8 is halfway too; now rounding up reaches the even mantissa.
        #expect(HalfFloat.bf16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(HalfFloat.bf16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfFloat.bf16Bits(-2.5) == 0xC020)
    }

    @Test func bf16KeepsNaNAndInfinity() {
        let nan = HalfFloat.bf16Bits(Float(bitPattern: 0x7F80_0001))  // signalling NaN with a low payload
        #expect(HalfFloat.float(bf16Bits: nan).isNaN)
        #expect(nan == 0x7FC0)
        #expect(HalfFloat.bf16Bits(.infinity) == 0x7F80)
        // The largest finite float rounds up to infinity, as in ggml and numpy.
        #expect(HalfFloat.bf16Bits(.greatestFiniteMagnitude) == 0x7F80)
    }

    @Test func f16RoundsToNearestEvenAndSaturatesToInfinity() {
        #expect(HalfFloat.f16Bits(1.0) == 0x3C00)
        // 1 + 2^-11 is halfway between 1 and the next f16; ties go to even (1.0).
        #expect(HalfFloat.f16Bits(1 + 1.0 / 2048) == 0x3C00)
        #expect(HalfFloat.f16Bits(1 + 3.0 / 2048) == 0x3C02)
        #expect(HalfFloat.f16Bits(70000) == 0x7C00)
        #expect(HalfFloat.float(f16Bits: HalfFloat.f16Bits(.nan)).isNaN)
        #expect(HalfFloat.float(f16Bits: 0x0001) == Float(bitPattern: 0x3380_0000))  // smallest subnormal
    }

    @Test func denseConvertRoundTripsWidening() {
        let values: [Float] = [0, -0.0, 1, -1.5, 65504, 1e-7, 3.14159]
        var halves = [UInt8](repeating: 0, count: values.count * 2)
        var back = [UInt8](repeating: 0, count: values.count * 4)
        values.withUnsafeBytes { src in
            halves.withUnsafeMutableBytes { DenseFloat.convert(src, from: .f32, into: $0, as: .f16, count: values.count) }
        }
        halves.withUnsafeBytes { src in
            back.withUnsafeMutableBytes { DenseFloat.convert(src, from: .f16, into: $0, as: .f32, count: values.count) }
        }
        let floats = back.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        for (v, f) in zip(values, floats) { #expect(f == Float(Float16(v))) }
    }
}

@Suite struct TypeTableTests {
    @Test func ggmlLayoutsMatchTheReferenceTable() {
        #expect(GGMLType.q4_0.blockSize == 32 && GGMLType.q4_0.typeSize == 18)
        #expect(GGMLType.q6_K.typeSize == 210)
        #expect(GGMLType.mxfp4.typeSize == 17)
        #expect(GGMLType.q4_K.bitsPerWeight == 4.5)
        #expect(GGMLType(name: "q4_k") == .q4_K)
        #expect(GGMLType(rawValue: 4).isKnown == false)
        #expect(GGMLType(rawValue: 999).name == "type999")
        #expect(GGMLType.q4_K.rowByteCount(elementCount: 512) == 288)
        #expect(GGMLType.q4_K.rowByteCount(elementCount: 100) == nil)
    }

    @Test func dtypeSizes() {
        #expect(DType.f4.byteCount(elementCount: 3) == nil)
        #expect(DType.f4.byteCount(elementCount: 4) == 2)
        #expect(DType.f6E2M3.byteCount(elementCount: 4) == 3)
        #expect(DType.f32.byteCount(elementCount: Int.max / 2) == nil)
        #expect(DType.u64.alignmentRank > DType.f32.alignmentRank)
        #expect(elementCount(of: [Int.max, 2]) == nil)
        #expect(elementCount(of: []) == 1)
    }
}

@Suite struct ByteCursorTests {
    @Test func readsLittleEndianAndStopsAtTheEnd() throws {
        let bytes: [UInt8] = [1, 0, 0, 0, 0xFF, 0xFF]
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            var cursor = ByteCursor(raw)
            #expect(try cursor.readInteger(UInt32.self) == 1)
            #expect(throws: ByteCursor.Truncated(offset: 4, needed: 4, available: 2)) { try cursor.readInteger(UInt32.self) }
            #expect(try cursor.readInteger(Int16.self) == -1)
            #expect(throws: ByteCursor.Truncated.self) { try cursor.readBytes(-1) }
        }
    }
}

@Suite struct ParallelTests {
    @Test func visitsEveryIndexOnceForAnyThreadCount() {
        for threads in [1, 2, 3, 8] {
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: 1000)
            hits.initialize(repeating: 0)
            defer { hits.deallocate() }
            nonisolated(unsafe) let h = hits
            parallelChunks(count: 1000, threads: threads) { range in
                for i in range { h[i] += 1 }
            }
            #expect(hits.allSatisfy { $0 == 1 })
        }
    }

    /// Column blocks cover every column once, in order, each start after the first a multiple of 16.
    @Test(arguments: [(64, 1), (100, 2), (129, 2), (576, 3), (49_152, 2), (1000, 7)])
    func columnBlocksTileTheColumns(columns: Int, blocks: Int) {
        let found = Mutex<[Range<Int>]>([])
        parallelColumnBlocks(columns: columns, blocks: blocks) { r in found.withLock { $0.append(r) } }
        let ranges = found.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
        #expect(ranges.count == blocks)
        #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == columns)
        for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
        #expect(ranges.allSatisfy { $0.lowerBound % 16 == 0 && !$0.isEmpty })
    }
}

@Suite struct HalfFloatSIMDTests {
    /// Every f16 value, the midpoints between neighbours (the rounding ties), values just either
    /// side of them, subnormals, overflow and a million random bit patterns.
    static func probeValues() -> [Float] {
        var values: [Float] = []
        for h in 0 ..< 0x7C00 as Range<UInt16> {
            let a = Float(Float16(bitPattern: h)), b = Float(Float16(bitPattern: h + 1))
            let mid = (a + b) / 2
            values += [a, -a, mid, -mid, mid.nextUp, mid.nextDown, -mid.nextUp]
        }
        values += [.infinity, -.infinity, 65504, 65520, 65519.99, 1e-8, -1e-8, 6e-8, 2.9e-8, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        var rng = SplitMix64(seed: 7)
        for _ in 0 ..< 1_000_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        return values
    }

    @Test func f16EncodeEqualsFloat16Init() {
        let values = Self.probeValues()
        var i = 0
        while i + 8 <= values.count {
            let v = SIMD8<Float>(values[i ..< i + 8])
            let fast = HalfFloatSIMD.f16Bits(v)
            for lane in 0 ..< 8 {
                if v[lane].isNaN {
                    #expect(Float(Float16(bitPattern: UInt16(fast[lane]))).isNaN)
                } else if UInt16(fast[lane]) != Float16(v[lane]).bitPattern {
                    Issue.record("f16(\(v[lane])) = \(fast[lane]), expected \(Float16(v[lane]).bitPattern)")
                    return
                }
            }
            i += 8
        }
    }

    @Test func f16DecodeIsExactForEveryPattern() {
        for base in stride(from: 0, to: 65536, by: 8) {
            let h = SIMD8<UInt32>((0 ..< 8).map { UInt32(base + $0) })
            let fast = HalfFloatSIMD.float(f16Bits: h)
            for lane in 0 ..< 8 {
                let expected = Float(Float16(bitPattern: UInt16(h[lane])))
                #expect(fast[lane].bitPattern == expected.bitPattern || (fast[lane].isNaN && expected.isNaN))
            }
        }
    }

    @Test func bf16EncodeEqualsScalar() {
        let values = Self.probeValues()
        var i = 0
        while i + 8 <= values.count {
            let v = SIMD8<Float>(values[i ..< i + 8])
            let fast = HalfFloatSIMD.bf16Bits(v)
            for lane in 0 ..< 8 where UInt16(fast[lane]) != HalfFloat.bf16Bits(v[lane]) {
                Issue.record("bf16(\(v[lane]))")
                return
            }
            i += 8
        }
    }
}
