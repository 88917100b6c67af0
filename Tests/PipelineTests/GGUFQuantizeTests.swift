import Foundation
import Testing
@testable import Pipeline
import Formats
import TensorCore
import TestSupport

/// wconv's GGUF quantizer against llama.cpp's `llama-quantize` (goldens in
/// testdata/golden/quantize, see testdata/scripts/make_quantize_goldens.py): the same file, byte
/// for byte, for every file type and option the goldens cover, from a GGUF or straight from the
/// Hugging Face directory.
@Suite struct GGUFQuantizeTests {
    typealias Case = QuantizeGoldens.Case

    static let ids = QuantizeGoldens.ids
    /// Cases whose input is a converter f32 file of a model directory in testdata (for the wide
    /// model, a few: its k-quant cases are the slow ones in a debug build and the GGUF path
    /// already covers them all).
    static let hfIds = ids.filter {
        guard let c = try? QuantizeGoldens.load($0), c.input.hasSuffix(".f32") else { return false }
        return !c.input.hasPrefix("tiny-llama-256")
            || ["tiny-llama-256.Q4_K_M", "tiny-llama-256.Q2_K", "tiny-llama-256.Q8_0", "tiny-llama-256.Q4_K_M.tensor-type"].contains(c.id)
    }

    // MARK: Inputs

    /// The GGUF a case reads: a committed converter golden, wconv's own conversion of
    /// tiny-llama-256 (checked against the converter's hash first), or the output of another case
    /// (checked against that case's golden first), so every input is the reference's bytes.
    static func inputPath(_ c: Case, scratch: String) throws -> String {
        if c.input.hasPrefix("requant:") {
            let previous = try QuantizeGoldens.load(String(c.input.dropFirst(8)))
            let path = scratch + "/\(previous.id).gguf"
            try GGUFQuantizer.quantize(try ModelInput.open(path: try inputPath(previous, scratch: scratch)), to: path,
                                       options: try QuantizeGoldens.options(previous))
            #expect(try TestSHA256.hex(file: path) == previous.fileSHA256, "input \(previous.id) is not llama-quantize's")
            return path
        }
        if c.input == "tiny-llama-256.f32" { return try wideF32(scratch: scratch) }
        return Fixtures.path("golden/\(c.input).gguf")
    }

    /// wconv's f32 conversion of tiny-llama-256, made once per test run, and whether it is
    /// byte-identical to llama.cpp's converter output (its hash is in the goldens).
    static let wideConversion: Result<String, Failure> = {
        do {
            let path = Fixtures.temporaryDirectory("wconv-quantize-wide") + "/tiny-llama-256.f32.gguf"
            var o = ConvertOptions()
            o.outType = .f32
            try HFToGGUF.convert(try HFModelDirectory(path: Fixtures.path("tiny-llama-256")), to: path, options: o)
            let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("golden/quantize/tiny-llama-256.f32.gguf.json")))
            let golden = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["file_sha256"] as? String
            guard try TestSHA256.hex(file: path) == golden else {
                return .failure(Failure(.checkFailed, "wconv's f32 conversion of tiny-llama-256 differs from llama.cpp's"))
            }
            return .success(path)
        } catch {
            return .failure(Failure(.internalError, "\(error)"))
        }
    }()

    static func wideF32(scratch _: String) throws -> String { try wideConversion.get() }

    /// Compares a written file with a golden: whole-file hash, and on a mismatch, what differs.
    static func expectMatches(_ path: String, _ c: Case, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let file = try GGUFFile(path: path)
        // Types first: the clearest message when a rule is wrong.
        #expect(file.tensors.map(\.name) == c.tensors.map(\.name), "\(c.id): tensor order", sourceLocation: sourceLocation)
        #expect(file.tensors.map(\.type.name) == c.tensors.map(\.type), "\(c.id): tensor types", sourceLocation: sourceLocation)
        let sha = try TestSHA256.hex(file: path)
        guard sha != c.fileSHA256 else { return }
        #expect(file.metadata.entries.map { "\($0.key):\($0.value.type)" } == c.keys.map { "\($0.0):\($0.1)" },
                "\(c.id): keys", sourceLocation: sourceLocation)
        for (info, g) in zip(file.tensors, c.tensors) {
            #expect(info.dimensions == g.ne, "\(c.id): \(info.name) ne", sourceLocation: sourceLocation)
            #expect(TestSHA256.hex(try file.bytes(of: info)) == g.sha256, "\(c.id): \(info.name) bytes", sourceLocation: sourceLocation)
        }
        #expect(file.fileSize == c.fileSize, sourceLocation: sourceLocation)
        Issue.record("\(c.id): file SHA-256 \(sha) != llama-quantize's \(c.fileSHA256)", sourceLocation: sourceLocation)
    }

    // MARK: Byte-identical to llama-quantize

    @Test(arguments: ids)
    func ggufInputGivesLlamaQuantizesFile(id: String) throws {
        let c = try QuantizeGoldens.load(id)
        let scratch = Fixtures.temporaryDirectory("wconv-quantize")
        let out = scratch + "/out.gguf"
        let report = try GGUFQuantizer.quantize(try ModelInput.open(path: try Self.inputPath(c, scratch: scratch)), to: out,
                                                options: try QuantizeGoldens.options(c))
        try Self.expectMatches(out, c)
        #expect(report.tensors.map(\.type) == c.tensors.map(\.type))
        #expect(report.byteCount == report.tensors.reduce(0) { $0 + $1.byteCount })
        #expect(report.outputs == [out])
    }

    @Test(arguments: hfIds)
    func hfDirectoryGivesWhatConverterPlusLlamaQuantizeGive(id: String) throws {
        // One pass from safetensors: the same file as convert_hf_to_gguf.py --outtype f32 followed
        // by llama-quantize.
        let c = try QuantizeGoldens.load(id)
        let model = String(c.input.dropLast(4))
        let out = Fixtures.temporaryDirectory("wconv-quantize") + "/out.gguf"
        try GGUFQuantizer.quantize(try ModelInput.open(path: Fixtures.path(model)), to: out, options: try QuantizeGoldens.options(c))
        try Self.expectMatches(out, c)
    }

    @Test(arguments: [("tiny-llama-spm", ConvertOptions.OutType.bf16, "tiny-llama-spm.bf16-in.Q4_0"),
                      ("tiny-llama-bpe", .f16, "tiny-llama-bpe.f16-in.Q8_0")])
    func hfDirectoryWithSixteenBitIntermediate(model: String, outType: ConvertOptions.OutType, id: String) throws {
        let c = try QuantizeGoldens.load(id)
        var o = try QuantizeGoldens.options(c)
        o.hfOutType = outType
        let out = Fixtures.temporaryDirectory("wconv-quantize") + "/out.gguf"
        try GGUFQuantizer.quantize(try ModelInput.open(path: Fixtures.path(model)), to: out, options: o)
        try Self.expectMatches(out, c)
    }

    @Test func roundingThroughABF16IntermediateEqualsQuantizingTheConvertersBF16File() throws {
        // tiny-llama-bpe is f16: a bf16 intermediate rounds its weights, exactly as the
        // converter's bf16 GGUF does.
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        var o = QuantizeOptions(scheme: .ggml(.Q4_0))
        o.hfOutType = .bf16
        try GGUFQuantizer.quantize(try ModelInput.open(path: Fixtures.path("tiny-llama-bpe")), to: tmp + "/hf.gguf", options: o)
        try GGUFQuantizer.quantize(try ModelInput.open(path: Fixtures.path("golden/tiny-llama-bpe.bf16.gguf")), to: tmp + "/gguf.gguf", options: o)
        #expect(try Data(contentsOf: URL(fileURLWithPath: tmp + "/hf.gguf")) == Data(contentsOf: URL(fileURLWithPath: tmp + "/gguf.gguf")))
        o.hfOutType = .f32
        try GGUFQuantizer.quantize(try ModelInput.open(path: Fixtures.path("tiny-llama-bpe")), to: tmp + "/f32.gguf", options: o)
        #expect(try Data(contentsOf: URL(fileURLWithPath: tmp + "/hf.gguf")) != Data(contentsOf: URL(fileURLWithPath: tmp + "/f32.gguf")))
    }

    @Test func splitInputGivesOneFileWithoutSplitKeys() throws {
        // llama-quantize reads a gguf-split set as one model and drops split.* from the output.
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        let whole = try GGUFFile(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        let splitter = try GGUFSplitWriter(metadata: whole.metadata, tensors: whole.tensors.map(GGUFTensorDescriptor.init), limit: .maxTensors(8))
        let parts = try splitter.write(prefix: tmp + "/spm", force: false) { i, sink in try sink.write(try whole.bytes(of: whole.tensors[i])) }
        #expect(parts.count == 3)
        let c = try QuantizeGoldens.load("tiny-llama-spm.Q8_0")
        try GGUFQuantizer.quantize(try ModelInput.open(path: parts[1]), to: tmp + "/out.gguf", options: try QuantizeGoldens.options(c))
        try Self.expectMatches(tmp + "/out.gguf", c)
    }

    @Test(arguments: [GGMLFileType.Q4_K_M, .Q3_K_M, .Q5_0])
    func sameBytesForAnyThreadCount(fileType: GGMLFileType) throws {
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        let dir = try ModelInput.open(path: Fixtures.path("tiny-llama-256"))
        var outputs: [Data] = []
        for threads in [1, 2, 5] {
            var o = QuantizeOptions(scheme: .ggml(fileType))
            o.threads = threads
            try GGUFQuantizer.quantize(dir, to: tmp + "/\(threads).gguf", options: o)
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: tmp + "/\(threads).gguf")))
        }
        #expect(outputs[0] == outputs[1] && outputs[1] == outputs[2])
    }

    // MARK: Dequantize

    @Test(arguments: [("tiny-llama-256.Q4_K_M.requant.F16", DType.f16), ("tiny-llama-256.Q4_K_M.requant.F32", .f32),
                      ("tiny-llama-spm.Q4_K_M.requant.BF16", .bf16)])
    func dequantizeToGGUFEqualsLlamaQuantizeWithAllowRequantize(id: String, outType: DType) throws {
        let c = try QuantizeGoldens.load(id)
        let scratch = Fixtures.temporaryDirectory("wconv-quantize")
        let model = try GGUFModel.open(path: try Self.inputPath(c, scratch: scratch))
        let out = scratch + "/dequantized.gguf"
        let report = try GGUFDequantizer.dequantize(model, to: out, outType: outType, options: QuantizeOptions(scheme: .ggml(.F32)))
        try Self.expectMatches(out, c)
        #expect(report.warnings.isEmpty)
    }

    @Test func dequantizeToAModelDirectoryGoesThroughGGUFToHF() throws {
        let scratch = Fixtures.temporaryDirectory("wconv-quantize")
        let c = try QuantizeGoldens.load("tiny-llama-256.Q4_K_M.requant.F32")
        let quantized = try GGUFModel.open(path: try Self.inputPath(c, scratch: scratch))
        let report = try GGUFDequantizer.dequantize(quantized, to: scratch + "/hf", outType: .f32, options: QuantizeOptions(scheme: .ggml(.F32)))
        try GGUFDequantizer.dequantize(quantized, to: scratch + "/f32.gguf", outType: .f32, options: QuantizeOptions(scheme: .ggml(.F32)))
        #expect(report.outputs.first == scratch + "/hf")
        let hf = try SafetensorsCheckpoint(path: scratch + "/hf")
        let gguf = try GGUFFile(path: scratch + "/f32.gguf")
        // ffn_down has no row permutation: the same floats in both outputs.
        let a = try #require(hf.tensor(named: "model.layers.0.mlp.down_proj.weight"))
        let b = try #require(gguf.tensor(named: "blk.0.ffn_down.weight"))
        #expect(a.dtype == .f32)
        #expect(Array(hf.bytes(of: a)) == Array(try gguf.bytes(of: b)))
        #expect(FileManager.default.fileExists(atPath: scratch + "/hf/config.json"))
    }

    @Test func dequantizeRefusesNonFloatTypes() throws {
        let model = try GGUFModel.open(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        #expect(throws: GGUFQuantizeError.notAFloatType(.i8)) {
            try GGUFDequantizer.dequantize(model, to: Fixtures.temporaryDirectory() + "/x.gguf", outType: .i8, options: QuantizeOptions(scheme: .ggml(.F32)))
        }
    }

    // MARK: Errors

    /// A copy of `golden` with `value` at element `index` of tensor `name`.
    static func poked(_ golden: String, tensor name: String, index: Int, value: Float, into path: String) throws {
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: golden)))
        let file = try GGUFFile(path: golden)
        let info = try #require(file.tensor(named: name))
        #expect(info.type == .f32)
        let offset = file.header.fileOffset(of: info) + 4 * index
        withUnsafeBytes(of: value.bitPattern.littleEndian) { for i in 0 ..< 4 { bytes[offset + i] = $0[i] } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test(arguments: [("blk.0.attn_q.weight", 70, Float.nan), ("blk.0.ffn_down.weight", 3, -.infinity), ("output_norm.weight", 5, .infinity)])
    func nonFiniteWeightsAreRefusedNamingTheTensor(tensor: String, index: Int, value: Float) throws {
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        try Self.poked(Fixtures.path("golden/tiny-llama-spm.f32.gguf"), tensor: tensor, index: index, value: value, into: tmp + "/in.gguf")
        let model = try ModelInput.open(path: tmp + "/in.gguf")
        let rowLength = try #require(try GGUFFile(path: tmp + "/in.gguf").tensor(named: tensor)).dimensions[0]
        do {
            try GGUFQuantizer.quantize(model, to: tmp + "/out.gguf", options: QuantizeOptions(scheme: .ggml(.Q8_0)))
            Issue.record("no error")
        } catch let error as PathError {
            #expect(error.path == tmp + "/out.gguf")
            guard case let .nonFinite(t, row, column, v) = error.underlying as? GGUFQuantizeValueError else { Issue.record("\(error)"); return }
            #expect(t == tensor && row == index / rowLength && column == index % rowLength)
            #expect(v.isNaN == value.isNaN && (v.isNaN || v == value))
            #expect(error.kind == .badValue)
            #expect("\(error)".contains(tensor))
        }
        #expect(!FileManager.default.fileExists(atPath: tmp + "/out.gguf"), "a failed run leaves no output")
    }

    @Test(arguments: [GGMLFileType.Q8_0, .Q4_0, .Q4_1, .Q5_0, .Q5_1, .Q2_K, .Q3_K_S, .Q3_K_M, .Q4_K_M, .Q5_K_M, .Q6_K, .F16, .BF16])
    func nonFiniteWeightsAreKeptWhenAllowed(fileType: GGMLFileType) throws {
        // Every codec must survive NaN and infinities (no trap), as ggml's do.
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        // The wide model's layer matrices only (k-quant rows), to keep the debug build quick.
        let full = try GGUFFile(path: try Self.wideF32(scratch: tmp))
        let kept = full.tensors.filter { $0.name.hasPrefix("blk.") }
        let writer = try GGUFWriter(metadata: full.metadata, tensors: kept.map(GGUFTensorDescriptor.init))
        try writer.write(toPath: tmp + "/wide.gguf", force: false) { i, sink in try sink.write(try full.bytes(of: kept[i])) }
        let wide = tmp + "/wide.gguf"
        try Self.poked(wide, tensor: "blk.0.attn_q.weight", index: 300, value: .nan, into: tmp + "/a.gguf")
        try Self.poked(tmp + "/a.gguf", tensor: "blk.0.ffn_up.weight", index: 7, value: .infinity, into: tmp + "/b.gguf")
        try Self.poked(tmp + "/b.gguf", tensor: "blk.0.ffn_down.weight", index: 600, value: -.infinity, into: tmp + "/in.gguf")
        var o = QuantizeOptions(scheme: .ggml(fileType))
        o.allowNonFinite = true
        try GGUFQuantizer.quantize(try ModelInput.open(path: tmp + "/in.gguf"), to: tmp + "/out.gguf", options: o)
        #expect(try GGUFFile(path: tmp + "/out.gguf").tensors.count == kept.count)
    }

    @Test func finiteValuesTooLargeForF16AreRefused() throws {
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        try Self.poked(Fixtures.path("golden/tiny-llama-spm.f32.gguf"), tensor: "blk.1.attn_k.weight", index: 65, value: 70000, into: tmp + "/in.gguf")
        let error = #expect(throws: PathError.self) {
            try GGUFQuantizer.quantize(try ModelInput.open(path: tmp + "/in.gguf"), to: tmp + "/out.gguf", options: QuantizeOptions(scheme: .ggml(.F16)))
        }
        #expect(error?.underlying as? GGUFQuantizeValueError == .overflowsF16(tensor: "blk.1.attn_k.weight", row: 1, column: 1, value: 70000))
        // 65519 still rounds to the largest finite half.
        try Self.poked(Fixtures.path("golden/tiny-llama-spm.f32.gguf"), tensor: "blk.1.attn_k.weight", index: 65, value: 65519, into: tmp + "/ok.gguf")
        try GGUFQuantizer.quantize(try ModelInput.open(path: tmp + "/ok.gguf"), to: tmp + "/ok-out.gguf", options: QuantizeOptions(scheme: .ggml(.F16)))
    }

    @Test func requantizingNeedsTheFlagAndWarns() throws {
        let scratch = Fixtures.temporaryDirectory("wconv-quantize")
        let c = try QuantizeGoldens.load("tiny-llama-256.Q4_K_M.requant.Q4_0")
        let input = try ModelInput.open(path: try Self.inputPath(c, scratch: scratch))
        var o = QuantizeOptions(scheme: .ggml(.Q4_0))
        do {
            try GGUFQuantizer.quantize(input, to: scratch + "/out.gguf", options: o)
            Issue.record("no error")
        } catch let error as PathError {
            #expect(error.underlying as? GGUFQuantizeError == .requantizeDisabled(tensor: "token_embd.weight", type: .q4_K))
            #expect(error.kind == .unsupported)
        }
        o.allowRequantize = true
        let report = try GGUFQuantizer.quantize(input, to: scratch + "/out.gguf", options: o)
        try Self.expectMatches(scratch + "/out.gguf", c)
        #expect(report.warnings.contains { $0.contains("requantized 8 already-quantized tensors (6 Q4_K, 2 Q6_K)") })
    }

    @Test func requantizingToTheSameTypesCopiesWithoutTheFlag() throws {
        // llama-quantize converts only tensors whose type changes: Q4_K_M → Q4_K_M is a copy.
        let scratch = Fixtures.temporaryDirectory("wconv-quantize")
        let c = try QuantizeGoldens.load("tiny-llama-256.Q4_K_M")
        let first = try Self.inputPath(QuantizeGoldens.load("tiny-llama-256.Q4_K_M.requant.F16"), scratch: scratch)
        _ = c
        try GGUFQuantizer.quantize(try ModelInput.open(path: first), to: scratch + "/again.gguf", options: QuantizeOptions(scheme: .ggml(.Q4_K_M)))
        let a = try GGUFFile(path: first), b = try GGUFFile(path: scratch + "/again.gguf")
        for (x, y) in zip(a.tensors, b.tensors) { #expect(Array(try a.bytes(of: x)) == Array(try b.bytes(of: y)), "\(x.name)") }
    }

    @Test func badTensorTypePatternIsAUsageError() throws {
        var o = QuantizeOptions(scheme: .ggml(.Q4_0))
        o.tensorTypeOverrides = [("attn_(q", .q8_0)]
        let input = try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        do {
            _ = try GGUFQuantizer.plan(input, options: o)
            Issue.record("no error")
        } catch let error as GGUFQuantizeRuleError {
            guard case .badPattern(let p, _) = error else { Issue.record("\(error)"); return }
            #expect(p == "attn_(q")
            #expect(error.kind == .usage)
        }
    }

    @Test func tensorTypeArgumentsParseAsLlamaQuantizeParsesThem() throws {
        let parsed = try QuantizeOptions.parseTensorTypeOverride(#"BLK\.0\.ATTN_Q=Q8_0"#)
        #expect(parsed.pattern == #"blk\.0\.attn_q"# && parsed.type == .q8_0)
        #expect(throws: QuantizeOptionError.unknownType("b=q4_k"), "split at the first '='") { try QuantizeOptions.parseTensorTypeOverride("a=b=q4_k") }
        #expect(throws: QuantizeOptionError.unknownType("q9_9")) { try QuantizeOptions.parseTensorTypeOverride("attn_q=q9_9") }
        #expect(throws: QuantizeOptionError.malformedTensorType("attn_q")) { try QuantizeOptions.parseTensorTypeOverride("attn_q") }
        #expect(throws: QuantizeOptionError.missingTensorName("=q8_0")) { try QuantizeOptions.parseTensorTypeOverride("=q8_0") }
        #expect(throws: QuantizeOptionError.missingType("attn_q=")) { try QuantizeOptions.parseTensorTypeOverride("attn_q=") }
        #expect(throws: QuantizeOptionError.unknownType("nope")) { try QuantizeOptions.parseTensorType("nope") }
        #expect(GGMLFileType(name: "q4_k_m") == .Q4_K_M)
        #expect(GGMLFileType(name: "15") == .Q4_K_M)
        #expect(GGMLFileType(name: "Q4_K_X") == nil)
        #expect(GGMLFileType.Q4_K.canonical == .Q4_K_M && GGMLFileType.Q4_K.llamaFileType == 15)
    }

    @Test func typesWconvCannotWriteAreRefused() throws {
        let input = try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        var o = QuantizeOptions(scheme: .ggml(.Q8_0))
        o.tensorTypeOverrides = [("attn_q", .iq4_nl)]
        #expect(throws: GGUFQuantizeRuleError.cannotQuantize(tensor: "blk.0.attn_q.weight", type: .iq4_nl)) {
            try GGUFQuantizer.plan(input, options: o)
        }
        o = QuantizeOptions(scheme: .ggml(.Q8_0))
        o.outputTensorType = .q4_K
        #expect(throws: GGUFQuantizeRuleError.typeDoesNotFitRows(tensor: "output.weight", type: .q4_K, rowLength: 64)) {
            try GGUFQuantizer.plan(input, options: o)
        }
        #expect(throws: GGUFQuantizeError.notAGGMLScheme) { try GGUFQuantizer.plan(input, options: QuantizeOptions(scheme: .bnb(.nf4))) }
    }

    @Test func bareSafetensorsFileIsRefused() throws {
        let input = try ModelInput.open(path: Fixtures.path("tiny-llama-spm/model.safetensors"))
        #expect(throws: PathError.self) { try GGUFQuantizer.plan(input, options: QuantizeOptions(scheme: .ggml(.Q8_0))) }
    }

    @Test func existingOutputNeedsForce() throws {
        let tmp = Fixtures.temporaryDirectory("wconv-quantize")
        let input = try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm.f32.gguf"))
        var o = QuantizeOptions(scheme: .ggml(.Q8_0))
        try GGUFQuantizer.quantize(input, to: tmp + "/out.gguf", options: o)
        #expect(throws: (any Error).self) { try GGUFQuantizer.quantize(input, to: tmp + "/out.gguf", options: o) }
        o.force = true
        try GGUFQuantizer.quantize(input, to: tmp + "/out.gguf", options: o)
    }

    // MARK: Rules

    @Test func useMoreBitsMatchesTheReferenceLayersFor32() {
        let layers = (0 ..< 32).filter { GGUFTensorTypeRules.useMoreBits($0, 32) }
        #expect(layers == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
    }

    @Test func outputOrderPutsGlobalTensorsFirstThenBlocksNumerically() {
        let names = ["blk.10.attn_q.weight", "token_embd.weight", "blk.2.ffn_up.weight", "output.weight", "blk.2.attn_k.weight", "blk.x.y"]
        #expect(names.sorted(by: GGUFTensorTypeRules.outputOrder)
            == ["blk.x.y", "output.weight", "token_embd.weight", "blk.2.attn_k.weight", "blk.2.ffn_up.weight", "blk.10.attn_q.weight"])
        #expect(GGUFTensorTypeRules.blockNumber("blk.17.ffn_down.weight") == 17)
        #expect(GGUFTensorTypeRules.blockNumber("blk. -3.x") == -3)
        #expect(GGUFTensorTypeRules.blockNumber("output.weight") == nil)
    }

    /// Types a synthetic 32-layer LLaMA (rows of 4096) gets.
    static func types(_ fileType: GGMLFileType, layers: Int = 32, heads: Int = 32, kvHeads: Int = 8, tied: Bool = false,
                      configure: (inout QuantizeOptions) -> Void = { _ in }) throws -> [String: GGMLType] {
        var names = ["token_embd.weight", "output_norm.weight"] + (tied ? [] : ["output.weight"])
        for i in 0 ..< layers {
            for t in ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"] {
                names.append("blk.\(i).\(t).weight")
            }
        }
        names.sort(by: GGUFTensorTypeRules.outputOrder)
        var o = QuantizeOptions(scheme: .ggml(fileType))
        configure(&o)
        var rules = try GGUFTensorTypeRules(fileType: fileType, options: o, facts: GGUFQuantModelFacts(
            architecture: "llama", layerCount: layers, headCount: heads, headCountKV: kvHeads, expertCount: 0), names: names)
        var result: [String: GGMLType] = [:]
        for n in names {
            let dims = n.contains("_norm") ? [4096] : [4096, 4096]
            result[n] = try rules.decide(name: n, dimensions: dims, currentType: .f16).type
        }
        return result
    }

    @Test func q4KMMixOnA32LayerModel() throws {
        let t = try Self.types(.Q4_K_M)
        let more = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        for i in 0 ..< 32 {
            #expect(t["blk.\(i).attn_v.weight"] == (more.contains(i) ? .q6_K : .q4_K), "layer \(i)")
            #expect(t["blk.\(i).ffn_down.weight"] == (more.contains(i) ? .q6_K : .q4_K), "layer \(i)")
            #expect(t["blk.\(i).attn_q.weight"] == .q4_K)
            #expect(t["blk.\(i).attn_norm.weight"] == .f16, "norms are copied")
        }
        #expect(t["output.weight"] == .q6_K)
        #expect(t["token_embd.weight"] == .q4_K)
        #expect(try Self.types(.Q4_K_M, tied: true)["token_embd.weight"] == .q6_K, "tied embeddings take the output rule")
        #expect(try Self.types(.Q4_0)["output.weight"] == .q6_K)
        #expect(try Self.types(.Q8_0)["output.weight"] == .q8_0)
    }

    @Test func otherMixes() throws {
        let q2 = try Self.types(.Q2_K)
        #expect(q2["blk.0.attn_v.weight"] == .q4_K, "GQA 4: attn_v Q4_K")
        #expect(try Self.types(.Q2_K, kvHeads: 32)["blk.0.attn_v.weight"] == .q3_K)
        #expect(q2["blk.5.ffn_down.weight"] == .q3_K && q2["blk.5.attn_output.weight"] == .q3_K && q2["blk.5.ffn_up.weight"] == .q2_K)
        let q3m = try Self.types(.Q3_K_M)
        #expect(q3m["blk.0.attn_v.weight"] == .q5_K && q3m["blk.1.attn_v.weight"] == .q5_K && q3m["blk.2.attn_v.weight"] == .q4_K)
        #expect(q3m["blk.1.ffn_down.weight"] == .q5_K && q3m["blk.2.ffn_down.weight"] == .q4_K)
        #expect(q3m["blk.7.attn_output.weight"] == .q4_K && q3m["blk.7.attn_q.weight"] == .q3_K)
        let q3l = try Self.types(.Q3_K_L)
        #expect(q3l["blk.7.attn_v.weight"] == .q5_K && q3l["blk.7.ffn_down.weight"] == .q5_K && q3l["blk.7.attn_output.weight"] == .q5_K)
        let q4s = try Self.types(.Q4_K_S)
        #expect(q4s["blk.3.attn_v.weight"] == .q5_K && q4s["blk.4.attn_v.weight"] == .q4_K)
        #expect(q4s["blk.3.ffn_down.weight"] == .q5_K && q4s["blk.4.ffn_down.weight"] == .q4_K)
        let q5m = try Self.types(.Q5_K_M)
        #expect(q5m["blk.0.attn_v.weight"] == .q6_K && q5m["blk.4.attn_v.weight"] == .q5_K)
        #expect(try Self.types(.Q6_K).values.allSatisfy { $0 == .q6_K || $0 == .f16 })
        // 70B (80 layers, GQA): attn_v Q4_K → Q5_K.
        #expect(try Self.types(.Q4_K_M, layers: 80)["blk.11.attn_v.weight"] == .q5_K)
        #expect(try Self.types(.Q4_K_M, layers: 80)["blk.4.attn_v.weight"] == .q6_K, "use_more_bits wins")
        #expect(try Self.types(.Q4_K_M, layers: 80, kvHeads: 32)["blk.11.attn_v.weight"] == .q4_K, "65B: no bump")
        let pure = try Self.types(.Q4_K_M) { $0.pure = true }
        #expect(pure["output.weight"] == .q4_K && pure["blk.0.attn_v.weight"] == .q4_K)
        let leave = try Self.types(.Q4_K_M) { $0.leaveOutputTensor = true }
        #expect(leave["output.weight"] == .f16)
        let f16 = try Self.types(.F16) { $0.tensorTypeOverrides = [("attn_q", .q8_0)] }
        #expect(f16["blk.0.attn_q.weight"] == .f16, "overrides apply only to quantized file types")
    }

    @Test func fallbackWhenRowsDoNotFitTheBlock() throws {
        var o = QuantizeOptions(scheme: .ggml(.Q4_K_M))
        o.tensorTypeOverrides = [("ffn_up", .q4_0), ("ffn_gate", .q2_K), ("attn_q", .q5_K)]
        var rules = try GGUFTensorTypeRules(fileType: .Q4_K_M, options: o, facts: GGUFQuantModelFacts(
            architecture: "llama", layerCount: 1, headCount: 1, headCountKV: 1, expertCount: 0),
            names: ["blk.0.attn_k.weight", "blk.0.attn_q.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight"])
        #expect(try rules.decide(name: "blk.0.attn_k.weight", dimensions: [96, 8], currentType: .f32) == GGUFTypeDecision(type: .q5_0, fallbackFrom: .q4_K))
        #expect(try rules.decide(name: "blk.0.attn_q.weight", dimensions: [96, 8], currentType: .f32) == GGUFTypeDecision(type: .q5_1, fallbackFrom: .q5_K))
        #expect(try rules.decide(name: "blk.0.ffn_gate.weight", dimensions: [40, 8], currentType: .f32) == GGUFTypeDecision(type: .f16, fallbackFrom: .q2_K))
        #expect(try rules.decide(name: "blk.0.ffn_up.weight", dimensions: [40, 8], currentType: .f32) == GGUFTypeDecision(type: .f16, fallbackFrom: .q4_0))
        #expect(rules.fallbackCount == 4)
    }
}

@Suite struct GGUFRowQuantizerTests {
    @Test(arguments: [false, true])
    func valueCheckMatchesItsScalarReference(f16Target: Bool) {
        var rng = SplitMix64(seed: 7)
        let specials: [Float] = [.nan, .infinity, -.infinity, 65519, 65520, -65520, 70000, .greatestFiniteMagnitude, -0.0, 1e-40]
        for trial in 0 ..< 400 {
            let count = Int(rng.next() % 70)
            var values = (0 ..< count).map { _ in rng.nextFloat() * 1000 }
            if count > 0 && trial % 2 == 0 {
                values[Int(rng.next() % UInt64(count))] = specials[Int(rng.next() % UInt64(specials.count))]
            }
            values.withUnsafeBufferPointer { v in
                let limit = f16Target ? Float(65520).bitPattern : Float.infinity.bitPattern
                #expect(GGUFRowQuantizer.firstOutOfRange(v, limit: limit) == GGUFRowQuantizer.firstOutOfRangeScalar(v, f16Target: f16Target))
            }
        }
    }
}
