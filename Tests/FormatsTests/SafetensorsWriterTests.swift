import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

@Suite struct SafetensorsWriterTests {
    /// A random shape whose element count fills whole bytes for `dtype` (F4 needs an even count,
    /// F6 a multiple of 4).
    static func randomShape(for dtype: DType, using rng: inout SplitMix64) -> [Int] {
        while true {
            let rank = Int(rng.next() % 4)
            let shape = (0 ..< rank).map { _ in Int(rng.next() % 5) }
            if let count = elementCount(of: shape), dtype.byteCount(elementCount: count) != nil { return shape }
        }
    }

    /// safetensors' proptest, in Swift: random dtypes, shapes (scalars and empty tensors
    /// included), names and metadata, written tensor by tensor and read back.
    @Test(arguments: 0 ..< 20)
    func roundTripsRandomTensors(_ seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &* 0x9E37_79B9 &+ 1)
        let count = Int(rng.next() % 8)
        var tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])] = []
        for i in 0 ..< count {
            let dtype = DType.allCases[Int(rng.next() % UInt64(DType.allCases.count))]
            let shape = Self.randomShape(for: dtype, using: &rng)
            let elements = try #require(elementCount(of: shape))
            let byteCount = try #require(dtype.byteCount(elementCount: elements))
            let data = (0 ..< byteCount).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let name = "layer.\(rng.next() % 1000).t\(i)"
            tensors.append((SafetensorsTensorSpec(name: name, dtype: dtype, shape: shape), data))
        }
        let metadata: [(key: String, value: String)]? = rng.next() % 2 == 0 ? nil : [("format", "pt"), ("seed", "\(seed)")]

        let layout = try SafetensorsLayout(tensors.map(\.spec), metadata: metadata)
        #expect(layout.header.count % 8 == 0)
        #expect(layout.dataStart == layout.header.count)
        let sorted = tensors.map(\.spec).sorted(by: SafetensorsLayout.referenceOrder)
        #expect(layout.tensors.map(\.name) == sorted.map(\.name))

        let dir = Fixtures.temporaryDirectory("st-roundtrip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/rt.safetensors"
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.spec.name, $0.data) })
        try SafetensorsWriter.write(layout, toPath: path) { tensor, file in
            // Exercise the zero-copy path for half of the tensors.
            let data = byName[tensor.name] ?? []
            if tensor.byteCount % 2 == 0 {
                try file.withWritableBuffer(capacity: data.count) { buffer in
                    buffer.copyBytes(from: data)
                    return data.count
                }
            } else {
                try file.write(data)
            }
        }

        let file = try SafetensorsFile(path: path)
        #expect(file.fileSize == layout.fileByteCount)
        #expect(file.tensors == layout.tensors)
        for (spec, data) in tensors {
            let t = try #require(file.tensor(named: spec.name))
            #expect(t.dtype == spec.dtype)
            #expect(t.shape == spec.shape)
            #expect(Array(file.bytes(of: t)) == data)
        }
        #expect(file.metadata?.map(\.key) == metadata?.map(\.key))
        #expect(file.metadata?.map(\.value) == metadata?.map(\.value))
        // The in-memory writer gives the same bytes.
        #expect(ST.difference(try SafetensorsWriter.serialize(tensors, metadata: metadata), try ST.read(path)) == "")
    }

    @Test func checksEachTensorsByteCount() throws {
        let layout = try SafetensorsLayout([SafetensorsTensorSpec(name: "w", dtype: .f32, shape: [2])])
        let dir = Fixtures.temporaryDirectory("st-writer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/short.safetensors"
        let error = ST.thrown {
            try SafetensorsWriter.write(layout, toPath: path) { _, file in try file.write([1, 2, 3]) }
        }
        let pathError = try #require(error as? PathError)
        #expect(pathError.path == path)
        #expect(pathError.underlying as? SafetensorsWriteError == .wrongByteCount(name: "w", expected: 8, written: 3))

        #expect(throws: SafetensorsWriteError.wrongByteCount(name: "w", expected: 8, written: 9)) {
            try SafetensorsWriter.serialize([(layout.tensors[0].spec, [UInt8](repeating: 0, count: 9))])
        }
    }

    @Test func rejectsBadDescriptors() {
        func spec(_ name: String, _ dtype: DType = .f32, _ shape: [Int] = [1]) -> SafetensorsTensorSpec {
            SafetensorsTensorSpec(name: name, dtype: dtype, shape: shape)
        }
        #expect(throws: SafetensorsWriteError.duplicateName("a")) { try SafetensorsLayout([spec("a"), spec("b"), spec("a", .u8)]) }
        #expect(throws: SafetensorsWriteError.reservedName) { try SafetensorsLayout([spec("__metadata__")]) }
        #expect(throws: SafetensorsWriteError.invalidShape(name: "a", shape: [2, -1])) { try SafetensorsLayout([spec("a", .f32, [2, -1])]) }
        #expect(throws: SafetensorsWriteError.sizeOverflow(name: "a")) { try SafetensorsLayout([spec("a", .f32, [1 << 62, 4])]) }
        #expect(throws: SafetensorsWriteError.sizeOverflow(name: "a")) { try SafetensorsLayout([spec("a", .f64, [1 << 60])]) }
        #expect(throws: SafetensorsWriteError.misalignedSize(name: "a", dtype: .f4, elementCount: 3)) { try SafetensorsLayout([spec("a", .f4, [3])]) }
        #expect(throws: SafetensorsWriteError.duplicateMetadataKey("k")) {
            try SafetensorsLayout([spec("a")], metadata: [("k", "1"), ("k", "2")])
        }
    }

    @Test func padsHeaderWithSpacesToMultipleOf8() throws {
        // Names of growing length walk the JSON length through every remainder mod 8.
        for n in 1 ... 16 {
            let layout = try SafetensorsLayout([SafetensorsTensorSpec(name: String(repeating: "x", count: n), dtype: .u8, shape: [1])])
            let length = Int(layout.header[0 ..< 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            #expect(length == layout.header.count - 8)
            #expect(length % 8 == 0)
            let json = String(decoding: layout.header[8...], as: UTF8.self)
            let trimmed = json.replacingOccurrences(of: " ", with: "")
            #expect(json.hasPrefix(trimmed))  // only trailing spaces were added
            #expect(json.count - trimmed.count < 8)
        }
    }
}
