import Foundation
import Testing
import TensorCore
import TestSupport
import Verify

/// `.npy` reading and writing against files made by numpy.save
/// (testdata/scripts/make_npy_goldens.py and the tiny-llama references).
@Suite struct NPYTests {
    static let goldens = [
        "golden/npy/f32_vector.npy", "golden/npy/f32_scalar.npy", "golden/npy/f32_empty.npy",
        "golden/npy/f32_cube.npy", "golden/npy/i64_matrix.npy", "golden/npy/f16_vector.npy",
        "golden/npy/f64_vector.npy", "golden/npy/u8_vector.npy",
        "vectors/tiny-llama/ref_logits_f32.npy", "vectors/tiny-llama/ref_hidden_states_f32.npy",
    ]

    @Test(arguments: goldens)
    func writerReproducesNumpyBytes(path: String) throws {
        let bytes = try Fixtures.data(path)
        let array = try bytes.withUnsafeBytes { try NPYArray(npy: $0) }
        #expect(array.serialized() == bytes)
    }

    @Test func readsValuesAndShapes() throws {
        let v = try NPYArray(contentsOf: Fixtures.path("golden/npy/f32_vector.npy"))
        #expect(v.shape == [5] && v.elementType == .float32)
        #expect(v.floats().map(\.bitPattern) == ([1.5, -2.0, 0.1, 3.0e38, -0.0] as [Float]).map(\.bitPattern))
        let scalar = try NPYArray(contentsOf: Fixtures.path("golden/npy/f32_scalar.npy"))
        #expect(scalar.shape == [] && scalar.floats() == [7.25])
        let empty = try NPYArray(contentsOf: Fixtures.path("golden/npy/f32_empty.npy"))
        #expect(empty.shape == [0, 3] && empty.floats().isEmpty)
        let cube = try NPYArray(contentsOf: Fixtures.path("golden/npy/f32_cube.npy"))
        #expect(cube.shape == [2, 3, 4] && cube.floats() == (0 ..< 24).map(Float.init))
        let ints = try NPYArray(contentsOf: Fixtures.path("golden/npy/i64_matrix.npy"))
        #expect(ints.shape == [2, 3] && ints.doubles() == [1, -2, 3, 1_099_511_627_776, 0, -8_589_934_592])
        #expect(try NPYArray(contentsOf: Fixtures.path("golden/npy/f16_vector.npy")).floats() == [1, 0.5, -65504])
        #expect(try NPYArray(contentsOf: Fixtures.path("golden/npy/f64_vector.npy")).doubles() == [0.1, 1e-300])
        #expect(try NPYArray(contentsOf: Fixtures.path("golden/npy/u8_vector.npy")).doubles() == [0, 255, 7])
        let logits = try NPYArray(contentsOf: Fixtures.path("vectors/tiny-llama/ref_logits_f32.npy"))
        #expect(logits.shape == [8, 128] && logits.floats().prefix(2) == [-0.10583551973104477, -0.03491595759987831])
    }

    @Test func writesFilesAtomically() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = NPYArray(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        try a.write(to: dir + "/a.npy")
        #expect(try NPYArray(contentsOf: dir + "/a.npy") == a)
        #expect(throws: (any Error).self) { try a.write(to: dir + "/a.npy") }   // exists, no force
        try NPYArray(integers: [7], shape: [1]).write(to: dir + "/a.npy", force: true)
        #expect(try NPYArray(contentsOf: dir + "/a.npy").doubles() == [7])
    }

    @Test func rejectsMalformedFiles() throws {
        let good = NPYArray(floats: [1, 2], shape: [2]).serialized()
        func parse(_ b: [UInt8]) throws { _ = try b.withUnsafeBytes { try NPYArray(npy: $0) } }
        func withHeader(_ h: String, data: Int = 8) -> [UInt8] {
            var text = Array(h.utf8)
            text += [UInt8](repeating: 0x20, count: (64 - (10 + text.count + 1) % 64) % 64) + [0x0A]
            return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(text.count & 0xFF), UInt8(text.count >> 8)] + text
                + [UInt8](repeating: 0, count: data)
        }
        #expect(throws: NPYError.badMagic) { try parse(Array("NUMPY!".utf8) + good.dropFirst(6)) }
        #expect(throws: NPYError.sizeMismatch(expected: 8, actual: 7)) { try parse(Array(good.dropLast())) }
        #expect(throws: NPYError.self) { try parse(Array(good.prefix(30))) }
        var v9 = good
        v9[6] = 9
        #expect(throws: NPYError.unsupportedVersion(major: 9, minor: 0)) { try parse(v9) }
        #expect(throws: NPYError.unsupportedDType(">f4")) {
            try parse(withHeader("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"))
        }
        #expect(throws: NPYError.unsupportedDType("<c8")) {
            try parse(withHeader("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", data: 16))
        }
        #expect(throws: NPYError.fortranOrder) {
            try parse(withHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data: 16))
        }
        #expect(throws: NPYError.self) {
            try parse(withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }"))
        }
        #expect(throws: NPYError.self) { try parse(withHeader("{'descr': '<f4', 'shape': (2,), }")) }
        #expect(throws: NPYError.self) { try parse(withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }")) }
        // Key order does not matter to the reader.
        try parse(withHeader("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}"))
    }
}
