import Foundation
import Testing
import TensorCore
import TestSupport
@testable import Formats

/// Shared helpers of the GGUF tests.
enum GGUFTestHelpers {
    /// Parses hand-built bytes.
    static func parse(_ builder: GGUFBuilder) throws(GGUFError) -> GGUFHeader {
        try GGUFHeader.parse(builder.build())
    }

    /// FNV-1a 64 of some bytes, as 16 hex digits (the hash `dump_gguf.py` records per tensor).
    static func fnv1a64(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// A golden JSON written by `testdata/scripts/dump_gguf.py`.
    static func golden(_ name: String) throws -> JSONValue {
        try JSONParser.parse(try Fixtures.data("golden/gguf/\(name).json"))
    }

    /// Writes a plan to a fresh temporary file with the given tensor data and returns the bytes.
    static func written(_ writer: GGUFWriter, data: [[UInt8]]) throws -> [UInt8] {
        let dir = Fixtures.temporaryDirectory("wconv-gguf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.gguf"
        do {
            try writer.write(toPath: path, force: false) { i, sink in try sink.write(data[i]) }
        } catch let error as PathError {
            throw error.underlying  // so tests can match the GGUFError itself
        }
        return try Fixtures.dataAt(path)
    }

    /// Checks one metadata value against its golden entry (type, element type and value).
    static func expect(_ value: GGUFValue?, matches entry: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) {
        let key = entry["key"]?.stringValue ?? "?"
        guard let value else {
            Issue.record("missing key \(key)", sourceLocation: sourceLocation)
            return
        }
        #expect(value.type.description == entry["type"]?.stringValue, "type of \(key)", sourceLocation: sourceLocation)
        guard let expected = entry["value"] else {
            Issue.record("golden entry \(key) has no value", sourceLocation: sourceLocation)
            return
        }
        if case .array(let array) = value {
            #expect(array.elementType.description == entry["element_type"]?.stringValue, "element type of \(key)",
                    sourceLocation: sourceLocation)
            let items = expected.arrayValue ?? []
            #expect(array.count == items.count, "count of \(key)", sourceLocation: sourceLocation)
            let elements = elementValues(array)
            for (i, (got, want)) in zip(elements, items).enumerated() {
                #expect(scalarMatches(got, want), "\(key)[\(i)]: \(got) vs \(want)", sourceLocation: sourceLocation)
            }
        } else {
            #expect(scalarMatches(value, expected), "\(key): \(value) vs \(expected)", sourceLocation: sourceLocation)
        }
    }

    /// The elements of an array as scalar values, to compare one by one.
    static func elementValues(_ array: GGUFArray) -> [GGUFValue] {
        switch array {
        case .uint8(let a): a.map(GGUFValue.uint8)
        case .int8(let a): a.map(GGUFValue.int8)
        case .uint16(let a): a.map(GGUFValue.uint16)
        case .int16(let a): a.map(GGUFValue.int16)
        case .uint32(let a): a.map(GGUFValue.uint32)
        case .int32(let a): a.map(GGUFValue.int32)
        case .float32(let a): a.map(GGUFValue.float32)
        case .bool(let a): a.map(GGUFValue.bool)
        case .string(let a): a.map(GGUFValue.string)
        case .uint64(let a): a.map(GGUFValue.uint64)
        case .int64(let a): a.map(GGUFValue.int64)
        case .float64(let a): a.map(GGUFValue.float64)
        }
    }

    /// Whether a scalar equals a golden JSON value exactly (UINT64 is a decimal string there).
    static func scalarMatches(_ value: GGUFValue, _ json: JSONValue) -> Bool {
        switch value {
        case .uint64(let v): return json.stringValue == String(v)
        case .float32(let v): return json.doubleValue.map { $0 == Double(v) } ?? false
        case .float64(let v): return json.doubleValue.map { $0.bitPattern == v.bitPattern } ?? false
        case .bool(let v): return json.boolValue == v
        case .string(let v): return json.stringValue == v
        case .array: return false
        default:
            guard case .int(let want) = json, let got = value.intValue else { return false }
            return Int64(got) == want
        }
    }

    /// Checks a parsed file against its golden dump: header numbers, metadata in order, tensors.
    static func expect(_ file: GGUFFile, matches golden: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(file.fileSize == golden["file_size"]?.intValue, sourceLocation: sourceLocation)
        #expect(Int(file.version) == golden["version"]?.intValue, sourceLocation: sourceLocation)
        #expect(file.tensors.count == golden["tensor_count"]?.intValue, sourceLocation: sourceLocation)
        #expect(file.metadata.count == golden["kv_count"]?.intValue, sourceLocation: sourceLocation)
        #expect(file.alignment == golden["alignment"]?.intValue, sourceLocation: sourceLocation)
        #expect(file.dataOffset == golden["data_offset"]?.intValue, sourceLocation: sourceLocation)

        let entries = golden["metadata"]?.arrayValue ?? []
        #expect(file.metadata.keys == entries.map { $0["key"]?.stringValue ?? "" }, "metadata keys in file order",
                sourceLocation: sourceLocation)
        for entry in entries {
            expect(file.metadata[entry["key"]?.stringValue ?? ""], matches: entry, sourceLocation: sourceLocation)
        }

        let tensors = golden["tensors"]?.arrayValue ?? []
        #expect(file.tensors.map(\.name) == tensors.map { $0["name"]?.stringValue ?? "" }, sourceLocation: sourceLocation)
        for (info, want) in zip(file.tensors, tensors) {
            #expect(Int(info.type.rawValue) == want["type"]?.intValue, "type of \(info.name)", sourceLocation: sourceLocation)
            #expect(info.type.name == want["type_name"]?.stringValue, sourceLocation: sourceLocation)
            #expect(info.dimensions == (want["ne"]?.arrayValue ?? []).compactMap(\.intValue), "ne of \(info.name)",
                    sourceLocation: sourceLocation)
            #expect(info.shape == info.dimensions.reversed(), sourceLocation: sourceLocation)
            #expect(info.offset == want["offset"]?.intValue, "offset of \(info.name)", sourceLocation: sourceLocation)
            #expect(info.byteCount == want["n_bytes"]?.intValue, "n_bytes of \(info.name)", sourceLocation: sourceLocation)
            #expect(info.isKnownType, sourceLocation: sourceLocation)
            #expect(fnv1a64(try file.bytes(of: info)) == want["fnv1a64"]?.stringValue, "data of \(info.name)",
                    sourceLocation: sourceLocation)
        }
    }
}

extension Fixtures {
    /// The bytes of a file at an absolute path.
    static func dataAt(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
