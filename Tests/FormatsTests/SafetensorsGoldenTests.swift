import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// wconv's safetensors reader and writer against files and verdicts produced by the reference
/// `safetensors` 0.8.0 package (testdata/golden/safetensors, made by
/// testdata/scripts/make_safetensors_goldens.py).
@Suite struct SafetensorsGoldenTests {
    struct WriterCase: Decodable {
        struct Tensor: Decodable {
            let name: String
            let dtype: String
            let shape: [Int]
            let data_hex: String
        }
        let file: String
        let metadata: [[String]]?
        let tensors: [Tensor]
    }

    struct ReaderCase: Decodable {
        let `case`: String
        let accepted: Bool
        let hex: String
        let tensors: [[TensorTriple]]?
        let reference_error: String?
    }

    /// `[name, dtype, shape]` from the reference's verdict.
    enum TensorTriple: Decodable, Hashable {
        case text(String)
        case shape([Int])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else { self = .shape(try c.decode([Int].self)) }
        }
    }

    static let directory = Fixtures.path("golden/safetensors")
    static let writerCases: [WriterCase] = (try? ST.decode([WriterCase].self, directory + "/writer_cases.json")) ?? []
    static let readerCases: [ReaderCase] = (try? ST.decode([ReaderCase].self, directory + "/reader_cases.json")) ?? []

    @Test func goldenCaseListsAreThere() {
        #expect(Self.writerCases.count == 6)
        #expect(Self.readerCases.count >= 40)
    }

    static func inputs(_ c: WriterCase) throws -> [(spec: SafetensorsTensorSpec, data: [UInt8])] {
        try c.tensors.map { t in
            let dtype = try #require(DType(rawValue: t.dtype))
            return (SafetensorsTensorSpec(name: t.name, dtype: dtype, shape: t.shape), ST.hex(t.data_hex))
        }
    }

    @Test(arguments: writerCases.map(\.file))
    func writerMatchesReferenceBytes(_ file: String) throws {
        let c = try #require(Self.writerCases.first { $0.file == file })
        let expected = try ST.read(Self.directory + "/" + file)
        let metadata = c.metadata.map { $0.map { (key: $0[0], value: $0[1]) } }
        let inputs = try Self.inputs(c)

        // In memory.
        let bytes = try SafetensorsWriter.serialize(inputs, metadata: metadata)
        #expect(ST.difference(bytes, expected) == "")

        // Streamed to a file, tensor by tensor, from descriptors first.
        let dir = Fixtures.temporaryDirectory("st-golden")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let layout = try SafetensorsLayout(inputs.map(\.spec), metadata: metadata)
        #expect(layout.fileByteCount == expected.count)
        let data = Dictionary(uniqueKeysWithValues: inputs.map { ($0.spec.name, $0.data) })
        try SafetensorsWriter.write(layout, toPath: dir + "/out.safetensors") { tensor, out in
            try out.write(data[tensor.name] ?? [])
        }
        #expect(ST.difference(try ST.read(dir + "/out.safetensors"), expected) == "")
    }

    @Test(arguments: writerCases.map(\.file))
    func readerReadsReferenceFiles(_ file: String) throws {
        let c = try #require(Self.writerCases.first { $0.file == file })
        let st = try SafetensorsFile(path: Self.directory + "/" + file)
        #expect(st.tensors.count == c.tensors.count)
        for t in c.tensors {
            let found = try #require(st.tensor(named: t.name))
            #expect(found.dtype.rawValue == t.dtype)
            #expect(found.shape == t.shape)
            #expect(Array(st.bytes(of: found)) == ST.hex(t.data_hex))
        }
        #expect(st.metadata?.map { [$0.key, $0.value] } == c.metadata)
    }

    @Test func writerOrdersByDTypeRankThenNameBytes() throws {
        let c = try #require(Self.writerCases.first { $0.file == "mixed.safetensors" })
        let layout = try SafetensorsLayout(try Self.inputs(c).map(\.spec))
        #expect(layout.tensors.map(\.name) == [
            "ids",  // I64
            "a", "b", "empty", "scale",  // F32
            "norm",  // BF16
            "Model.bias", "model.layers.10.weight", "model.layers.2.weight",  // F16, byte order
            "codes",  // U8
            "mask",  // BOOL
        ])
    }

    @Test func readerAgreesWithReference() throws {
        for c in Self.readerCases {
            let bytes = ST.hex(c.hex)
            let result = Result { () throws(SafetensorsError) -> SafetensorsHeader in try ST.parse(bytes) }
            switch result {
            case .success(let header):
                #expect(c.accepted, "\(c.case): wconv accepts what the reference rejects (\(c.reference_error ?? ""))")
                let expected = Set((c.tensors ?? []).map { $0 })
                let actual = Set(header.tensors.map { [TensorTriple.text($0.name), .text($0.dtype.rawValue), .shape($0.shape)] })
                #expect(actual == expected, "\(c.case)")
            case .failure(let error):
                #expect(!c.accepted, "\(c.case): wconv rejects what the reference accepts: \(error)")
            }
        }
    }

    /// The shared tiny LLaMA was written by transformers 5.24 `save_pretrained`; re-writing its
    /// tensors, given in a different order, must give the same file byte for byte.
    @Test func rewritesTransformersFileByteForByte() throws {
        let path = Fixtures.path("vectors/tiny-llama/model.safetensors")
        let original = try SafetensorsFile(path: path)
        var specs = original.tensors.map { SafetensorsTensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        var rng = SplitMix64(seed: 7)
        specs.shuffle(using: &rng)
        let layout = try SafetensorsLayout(specs, metadata: original.metadata)
        let dir = Fixtures.temporaryDirectory("st-golden")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SafetensorsWriter.write(layout, toPath: dir + "/model.safetensors") { tensor, out in
            try out.write(try original.bytes(named: tensor.name))
        }
        #expect(ST.difference(try ST.read(dir + "/model.safetensors"), try ST.read(path)) == "")
    }
}
