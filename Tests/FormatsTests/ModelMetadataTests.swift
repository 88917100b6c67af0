import Foundation
import Testing
import Formats
import TensorCore
import TestSupport

/// Goldens under testdata/golden/metadata/ come from llama.cpp's converter and gguf-py
/// (testdata/scripts/make_metadata_goldens.py); none is typed by hand.
enum MetadataGolden {
    static func load(_ name: String) throws -> JSONValue {
        try JSONParser.parse(try Fixtures.data("golden/metadata/\(name)"))
    }

    static var convertCases: [String] {
        (FileSystem.contents(ofDirectory: Fixtures.path("golden/metadata/convert")) ?? [])
            .filter { $0.hasSuffix(".json") }
    }

    static func string(_ v: JSONValue?) -> String? { v?.stringValue }

    /// A golden KV entry as a ``MetadataEntry``.
    static func entry(_ v: JSONValue) throws -> MetadataEntry {
        let key = try #require(v["key"]?.stringValue)
        let type = try #require(v["type"]?.stringValue)
        let value = try #require(v["value"])
        func float(_ x: JSONValue) throws -> Float {
            switch x {
            case .string("nan"): return .nan
            case .string("inf"): return .infinity
            case .string("-inf"): return -.infinity
            default: return Float(try #require(x.doubleValue))  // exact: the double of a float32
            }
        }
        switch type {
        case "STRING": return MetadataEntry(key, .string(try #require(value.stringValue)))
        case "UINT32": return MetadataEntry(key, .uint32(UInt32(try #require(value.intValue))))
        case "INT32": return MetadataEntry(key, .int32(Int32(try #require(value.intValue))))
        case "FLOAT32": return MetadataEntry(key, .float32(try float(value)))
        case "BOOL": return MetadataEntry(key, .bool(try #require(value.boolValue as Bool?)))
        case "ARRAY":
            let items = try #require(value.arrayValue)
            switch v["element_type"]?.stringValue {
            case "STRING": return MetadataEntry(key, .stringArray(try items.map { try #require($0.stringValue) }))
            case "INT32": return MetadataEntry(key, .int32Array(try items.map { Int32(try #require($0.intValue)) }))
            case "FLOAT32": return MetadataEntry(key, .float32Array(try items.map(float)))
            case "BOOL": return MetadataEntry(key, .boolArray(try items.map { try #require($0.boolValue as Bool?) }))
            default: throw Failure(.badValue, "unexpected element type in golden \(key)")
            }
        default: throw Failure(.badValue, "unexpected type \(type) in golden \(key)")
        }
    }

    static func tensors(_ v: JSONValue?) throws -> [(name: String, shape: [Int])] {
        try (try #require(v?.arrayValue)).map { pair in
            let items = try #require(pair.arrayValue)
            return (try #require(items.first?.stringValue), try #require(items.last?.arrayValue).map { try #require($0.intValue) })
        }
    }

    static func parameterCount(_ v: JSONValue?) throws -> ParameterCount {
        ParameterCount(total: try #require(v?["total"]?.intValue), shared: try #require(v?["shared"]?.intValue),
                       expert: try #require(v?["expert"]?.intValue), expertCount: try #require(v?["expert_count"]?.intValue))
    }
}

@Suite struct ModelMetadataTests {
    /// Each golden: a synthetic model directory run through the converter's `prepare_metadata`.
    @Test(arguments: MetadataGolden.convertCases)
    func matchesConverterOutput(_ file: String) throws {
        let golden = try MetadataGolden.load("convert/\(file)")
        let root = Fixtures.temporaryDirectory("wconv-metadata")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let directory = root + "/" + (try #require(golden["directory_name"]?.stringValue))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, text) in try #require(golden["files"]?.objectValue) {
            let bytes = Array(try #require(text.stringValue).utf8)
            try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
        }

        let counts = ParameterCount(tensors: try MetadataGolden.tensors(golden["tensors"]))
        #expect(counts == (try MetadataGolden.parameterCount(golden["parameter_count"])))

        var override: JSONObject? = nil
        if let text = golden["metadata_override"]?.stringValue {
            let parsed = try JSONParser.parse(text)
            let object: JSONObject = try #require(parsed.objectValue)
            override = object
        }
        let load = {
            try ModelMetadata.load(directory: directory, parameterCount: counts,
                                   modelName: golden["model_name"]?.stringValue, metadataOverride: override)
        }
        if let error = golden["error"]?.stringValue {
            // The converter dies here; wconv must refuse with a metadata or model card error.
            #expect("converter fails with \(error)") { _ = try load() } throws: { thrown in
                thrown is MetadataError || (thrown as? PathError)?.underlying is ModelCardError
            }
            return
        }
        let metadata = try load()

        // The converter writes general.architecture and general.type first and
        // general.quantization_version last; the metadata block is what lies between.
        let kv = try #require(golden["kv"]?.arrayValue).map(MetadataGolden.entry)
        #expect(kv.first?.key == "general.architecture")
        #expect(kv.dropFirst().first == MetadataEntry("general.type", .string("model")))
        #expect(kv.last?.key == "general.quantization_version")
        let expected = Array(kv.dropFirst(2).dropLast())
        #expect(metadata.entries.map(\.key) == expected.map(\.key))
        #expect(metadata.entries == expected)

        let outputType = ["f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"][golden["outtype"]?.stringValue ?? ""]
        if let name = golden["file_name"]?.stringValue {
            #expect(try metadata.defaultFileName(outputType: try #require(outputType)) == name)
        } else {
            #expect(throws: MetadataError.self) { _ = try metadata.defaultFileName(outputType: outputType ?? "F16") }
        }
    }

    @Test func modelIDComponentsMatchGGUFPy() throws {
        let golden = try MetadataGolden.load("model_ids.json")
        let cases = try #require(golden["components"]?.arrayValue)
        #expect(cases.count > 500)
        for c in cases {
            let id = try #require(c["id"]?.stringValue)
            let total = try #require(c["total_params"]?.intValue)
            let parts = try #require(c["components"]?.arrayValue).map(\.stringValue)
            let expected = ModelNameComponents(fullName: parts[0], organization: parts[1], basename: parts[2],
                                               finetune: parts[3], version: parts[4], sizeLabel: parts[5])
            #expect(ModelNameComponents(modelID: id, totalParameters: total) == expected, "\(id) with \(total) parameters")
        }
        for t in try #require(golden["titles"]?.arrayValue) {
            let text = try #require(t["text"]?.stringValue)
            #expect(ModelNameComponents.title(text) == t["title"]?.stringValue, "title(\(text))")
        }
        #expect(ModelNameComponents(modelID: nil, totalParameters: 0) == ModelNameComponents())
    }

    @Test func sizeLabelsMatchGGUFPy() throws {
        let golden = try MetadataGolden.load("size_labels.json")
        for n in try #require(golden["notation"]?.arrayValue) {
            let count = try #require(n["count"]?.intValue), digits = try #require(n["min_digits"]?.intValue)
            #expect(ParameterCount.roundedNotation(count, minimumDigits: digits) == n["result"]?.stringValue, "\(count), \(digits)")
        }
        for l in try #require(golden["size_label"]?.arrayValue) {
            let counts = ParameterCount(total: try #require(l["total"]?.intValue), shared: try #require(l["shared"]?.intValue),
                                        expert: try #require(l["expert"]?.intValue),
                                        expertCount: try #require(l["expert_count"]?.intValue))
            #expect(counts.sizeLabel == l["result"]?.stringValue)
        }
    }

    @Test func parameterCountsMatchGGUFWriter() throws {
        for c in try #require(try MetadataGolden.load("parameter_counts.json").arrayValue) {
            let counts = ParameterCount(tensors: try MetadataGolden.tensors(c["tensors"]))
            #expect(counts == (try MetadataGolden.parameterCount(c["result"])), "\(c["id"]?.stringValue ?? "")")
        }
    }

    @Test func parameterCountSaturatesOnHostileShapes() {
        let huge = ParameterCount(tensors: [("a.weight", [Int.max, 4]), ("b.weight", [Int.max])])
        #expect(huge.total == .max)
        let emptyExperts = ParameterCount(tensors: [("blk.0.ffn_up_exps.weight", [0, 4, 4])])
        #expect(emptyExperts == ParameterCount(total: 0, shared: 0, expert: 0, expertCount: 0))
        #expect(!huge.sizeLabel.isEmpty)
    }

    @Test func fileNamesMatchGGUFPy() throws {
        let golden = try MetadataGolden.load("file_names.json")
        for n in try #require(golden["naming_convention"]?.arrayValue) {
            let a = try #require(n["args"]?.arrayValue).map(\.stringValue)
            #expect(ModelMetadata.fileNameStem(name: a[0], basename: a[1], finetune: a[2], version: a[3], sizeLabel: a[4],
                                               outputType: a[5], modelType: a[6]) == n["result"]?.stringValue)
        }
        for f in try #require(golden["fill_templated_filename"]?.arrayValue) {
            let template = try #require(f["template"]?.stringValue)
            let outputType = f["output_type"]?.stringValue
            if let result = f["result"]?.stringValue {
                #expect(try ModelMetadata.fillTemplatedFileName(template, outputType: outputType) == result, "\(template)")
            } else {
                #expect(throws: MetadataError.self, "\(template)") {
                    try ModelMetadata.fillTemplatedFileName(template, outputType: outputType)
                }
            }
        }
        // Python also applies format specs and conversions; wconv refuses them rather than guess.
        #expect(throws: MetadataError.self) { try ModelMetadata.fillTemplatedFileName("{ftype:>4}", outputType: "F16") }
        for p in try #require(golden["path_names"]?.arrayValue) {
            #expect(ModelMetadata.pathName(try #require(p["path"]?.stringValue)) == p["name"]?.stringValue)
        }
    }

    @Test func explicitSourcesNeedNoFiles() throws {
        // The pure initializer: card, config and generation config handed over directly.
        let card = try ModelCard.parse(readme: Array("---\nlicense: mit\ntags: [a]\n---\n".utf8))
        let metadata = try ModelMetadata(card: card, config: JSONObject([("_name_or_path", "org/My-Model-7B")]),
                                         generationConfig: try JSONParser.parse(#"{"top_k": 20}"#),
                                         directoryName: "ignored-dir", parameterCount: .zero)
        #expect(metadata.entries == [
            MetadataEntry("general.sampling.top_k", .int32(20)),
            MetadataEntry("general.name", .string("My Model 7B")),
            MetadataEntry("general.organization", .string("Org")),
            MetadataEntry("general.basename", .string("My-Model")),
            MetadataEntry("general.size_label", .string("7B")),
            MetadataEntry("general.license", .string("mit")),
            MetadataEntry("general.tags", .stringArray(["a"])),
        ])
    }

    @Test func rejectsValuesTheConverterCannotWrite() throws {
        func metadata(_ readme: String) throws -> ModelMetadata {
            try ModelMetadata(card: try ModelCard.parse(readme: Array(readme.utf8)), config: JSONObject(),
                              generationConfig: nil, directoryName: "m", parameterCount: .zero)
        }
        #expect(throws: MetadataError(key: "general.version", "expected a string, found float 1.0")) {
            try metadata("---\nversion: 1.0\n---\n")
        }
        #expect(throws: MetadataError.self) { try metadata("---\ntags: [a, 1]\n---\n") }
        #expect(throws: MetadataError.self) { try metadata("---\ntags: [[a]]\n---\n") }
        #expect(throws: MetadataError.self) { try metadata("---\ntags: [3000000000]\n---\n") }
        #expect(throws: MetadataError.self) { try metadata("---\nlicense: [mit, 2]\n---\n") }
        #expect(throws: MetadataError.self) {
            try ModelMetadata(card: ModelCard(), config: JSONObject([("_name_or_path", 3)]), generationConfig: nil,
                              directoryName: "m", parameterCount: .zero)
        }
        #expect(throws: MetadataError.self) {
            try ModelMetadata(card: ModelCard(), config: JSONObject(), generationConfig: try JSONParser.parse("[1]"),
                              directoryName: "m", parameterCount: .zero)
        }
        // Falsy values are skipped instead, as gguf-py's add_string does.
        #expect(try metadata("---\nversion: 0\nlicense: ''\n---\n").entries == [MetadataEntry("general.name", .string("M"))])
    }

    @Test func reportsFilesByPath() throws {
        let root = Fixtures.temporaryDirectory("wconv-metadata")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Data([0x2D, 0x2D, 0x2D, 0x0A, 0xFF, 0x0A]).write(to: URL(fileURLWithPath: root + "/README.md"))
        do {
            _ = try ModelMetadata.load(directory: root, parameterCount: .zero)
            Issue.record("expected an error")
        } catch let error as PathError {
            #expect(error.path == root + "/README.md")
            #expect(error.kind == .malformedInput)
        }
        try FileManager.default.removeItem(atPath: root + "/README.md")
        try Data("[1, 2]".utf8).write(to: URL(fileURLWithPath: root + "/config.json"))
        #expect(throws: PathError.self) { try ModelMetadata.load(directory: root, parameterCount: .zero) }
        // Without config.json the heuristics use the directory name alone.
        try FileManager.default.removeItem(atPath: root + "/config.json")
        let bare = try ModelMetadata.load(directory: root + "/", parameterCount: .zero)
        #expect(bare.entries.first?.key == "general.name")
    }
}
