import Formats
import Foundation
import TensorCore
import TestSupport
import Testing

/// Reading and planning the bitsandbytes layout (REFERENCE §5.4–5.5) against checkpoints
/// written by transformers 5.24 + bitsandbytes 0.50.2, and every malformed variant by hand.
@Suite struct BNBLayoutTests {
    /// A transformers-written bitsandbytes directory and what it must read as.
    struct Golden: CustomStringConvertible, Sendable {
        let directory: String
        /// The unquantized model it was made from.
        let original: String
        let fourBit: BNB4BitType?
        let doubleQuant: Bool
        let computeDType: DType
        var description: String { directory }
    }

    static let goldens = [
        Golden(directory: "golden/tiny-llama-spm-nf4", original: "tiny-llama-spm", fourBit: .nf4, doubleQuant: true, computeDType: .f32),
        Golden(directory: "golden/tiny-llama-spm-fp4", original: "tiny-llama-spm", fourBit: .fp4, doubleQuant: false, computeDType: .f32),
        Golden(directory: "golden/tiny-llama-spm-int8", original: "tiny-llama-spm", fourBit: nil, doubleQuant: false, computeDType: .f32),
        Golden(directory: "vectors/fixtures/tiny-llama-nf4", original: "vectors/tiny-llama", fourBit: .nf4, doubleQuant: true, computeDType: .bf16),
        Golden(directory: "vectors/fixtures/tiny-llama-int8", original: "vectors/tiny-llama", fourBit: nil, doubleQuant: false, computeDType: .f32),
    ]

    static let projections = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

    static func layout(_ directory: String) throws -> (BNBCheckpointLayout, HFModelDirectory) {
        let dir = try HFModelDirectory(path: Fixtures.path(directory))
        return (try BNBCheckpointLayout(source: CheckpointTensorSource(dir.weights), config: dir.config), dir)
    }

    // MARK: Reading transformers' output

    @Test(arguments: goldens)
    func groupsEveryLinearOfAGoldenCheckpoint(golden: Golden) throws {
        let (layout, _) = try Self.layout(golden.directory)
        let original = try HFModelDirectory(path: Fixtures.path(golden.original))
        #expect(layout.isQuantized)
        #expect(layout.otherQuantMethod == nil)
        #expect(layout.groups.count == original.tensors.count)

        let expected = Set((0 ..< 2).flatMap { l in Self.projections.map { "model.layers.\(l).\($0).weight" } })
        let quantized = layout.groups.filter { $0.quantizationSummary != nil }
        #expect(Set(quantized.map(\.name)) == expected)
        for group in layout.groups {
            // The logical shape is the original weight's.
            #expect(group.shape == original.tensor(named: group.name)?.shape, "\(group.name)")
        }
        let config = try #require(layout.config)
        if let type = golden.fourBit {
            #expect(config.fourBitType == type)
            #expect(config.useDoubleQuant == golden.doubleQuant)
            #expect(config.computeDType == golden.computeDType.torchName)
            #expect(layout.fourBitWeights.count == 14 && layout.int8Weights.isEmpty)
            for w in layout.fourBitWeights {
                #expect(w.state.quantType == type)
                #expect(w.state.blockSize == 64)
                #expect(w.state.dtype == .bf16)
                #expect((w.state.nested != nil) == golden.doubleQuant)
                #expect(w.state.nested.map(\.blockSize) ?? 256 == 256)
                #expect(w.entries.count == (golden.doubleQuant ? 6 : 4))
            }
        } else {
            #expect(config.loadIn8Bit && !config.loadIn4Bit)
            #expect(layout.int8Weights.count == 14 && layout.fourBitWeights.isEmpty)
            for w in layout.int8Weights {
                #expect(w.weightFormat != nil)
                #expect(w.scb.shape == [w.rows])
            }
        }
    }

    @Test func readsTheDoubleQuantOffsetAsFloat32() throws {
        let (layout, _) = try Self.layout("golden/tiny-llama-spm-nf4")
        let w = try #require(layout.fourBitWeights.first { $0.name == "model.layers.0.mlp.down_proj.weight" })
        #expect(w.state.shape == [64, 128])
        #expect(w.state.nested?.offset == Float(0.22917938232421875))
        #expect(w.state.blockCount == 128)
        #expect(w.state.packedByteCount == 4096)
        #expect(w.state.summary == "nf4 block 64 + double quant")
    }

    @Test(arguments: goldens)
    func quantizationConfigRoundTrips(golden: Golden) throws {
        let dir = try HFModelDirectory(path: Fixtures.path(golden.directory))
        let block = try #require(dir.config.quantizationConfig)
        let parsed = try BNBQuantizationConfig(block)
        #expect(parsed.json == block)
        let built = golden.fourBit.map { BNBQuantizationConfig.fourBit($0, doubleQuant: golden.doubleQuant, computeDType: golden.computeDType) }
            ?? .int8()
        #expect(built == parsed)
        #expect(built.json == block)
    }

    // MARK: Writing what transformers writes (names, dtypes, shapes, config; no numbers)

    /// The whole safetensors header of the golden file, planned from the unquantized model
    /// alone (plus each quant_state's JSON length, which depends on the offset).
    @Test(arguments: goldens)
    func plannedHeaderEqualsTransformers(golden: Golden) throws {
        let original = try HFModelDirectory(path: Fixtures.path(golden.original))
        let goldenDir = try HFModelDirectory(path: Fixtures.path(golden.directory))
        var specs: [SafetensorsTensorSpec] = []
        var quantizedCount = 0
        for t in original.tensors {
            guard BNBWriteLayout.isQuantizedLinear(name: t.name, shape: t.shape, dtype: t.dtype) else {
                specs.append(t.tensor.spec)
                continue
            }
            quantizedCount += 1
            if let type = golden.fourBit {
                let stateName = t.name + BNBWriteLayout.quantStateSuffix(type)
                let jsonLength = try #require(goldenDir.tensor(named: stateName)).shape[0]
                specs += BNBWriteLayout.fourBitSpecs(weight: t.name, shape: t.shape, type: type, blockSize: 64,
                                                     doubleQuant: golden.doubleQuant, quantStateByteCount: jsonLength)
            } else {
                specs += BNBWriteLayout.int8Specs(module: BNBWriteLayout.moduleName(ofWeight: t.name), rows: t.shape[0], columns: t.shape[1])
            }
        }
        #expect(quantizedCount == 14)
        let layout = try SafetensorsLayout(specs, metadata: [("format", "pt")])
        let goldenBytes = try Fixtures.data(golden.directory + "/model.safetensors")
        #expect(layout.header == Array(goldenBytes.prefix(layout.header.count)))
        #expect(layout.fileByteCount == goldenBytes.count)
    }

    @Test(arguments: goldens)
    func configTextEqualsTransformers(golden: Golden) throws {
        let original = try HFConfig(path: Fixtures.path(golden.original + "/config.json"))
        let quantization = golden.fourBit.map { BNBQuantizationConfig.fourBit($0, doubleQuant: golden.doubleQuant, computeDType: golden.computeDType) }
            ?? .int8()
        let text = BNBWriteLayout.configText(BNBWriteLayout.quantizedConfig(original.object, quantization: quantization, dtype: .bf16))
        let expected = String(decoding: try Fixtures.data(golden.directory + "/config.json"), as: UTF8.self)
        #expect(text == expected)
        // And back: removing the block gives the original file.
        let back = BNBWriteLayout.configText(BNBWriteLayout.dequantizedConfig(try HFConfig(json: text).object, dtype: .bf16))
        #expect(back == String(decoding: try Fixtures.data(golden.original + "/config.json"), as: UTF8.self))
    }

    @Test func quantizedLinearRule() {
        #expect(BNBWriteLayout.isQuantizedLinear(name: "model.layers.3.self_attn.q_proj.weight", shape: [8, 8], dtype: .bf16))
        #expect(BNBWriteLayout.isQuantizedLinear(name: "model.layers.0.mlp.down_proj.weight", shape: [8, 16], dtype: .f32))
        #expect(!BNBWriteLayout.isQuantizedLinear(name: "lm_head.weight", shape: [8, 8], dtype: .bf16))
        #expect(!BNBWriteLayout.isQuantizedLinear(name: "model.embed_tokens.weight", shape: [8, 8], dtype: .bf16))
        #expect(!BNBWriteLayout.isQuantizedLinear(name: "model.layers.0.input_layernorm.weight", shape: [8], dtype: .bf16))
        #expect(!BNBWriteLayout.isQuantizedLinear(name: "model.layers.0.self_attn.q_proj.bias", shape: [8], dtype: .bf16))
        #expect(!BNBWriteLayout.isQuantizedLinear(name: "model.layers.0.self_attn.q_proj.weight", shape: [8, 8], dtype: .i8))
        #expect(!BNBWriteLayout.isQuantizedLinear(name: "model.layers.0.mlp.experts.weight", shape: [2, 8, 8], dtype: .bf16))
    }

    @Test func summaryCountsWeightsNotPackedBytes() throws {
        let summary = ModelSummary(try ModelInput.open(path: Fixtures.path("golden/tiny-llama-spm-nf4")))
        let bnb = try #require(summary.bnb)
        #expect(bnb.error == nil)
        #expect(bnb.weights.count == 14)
        #expect(bnb.kindTotals.map(\.quantization) == ["nf4 block 64 + double quant"])
        #expect(bnb.quantizationByTensor["model.layers.0.mlp.up_proj.weight"] == "nf4 block 64 + double quant")
        #expect(bnb.quantizationByTensor["model.layers.0.mlp.up_proj.weight.absmax"] == "state of model.layers.0.mlp.up_proj.weight")
        // Same parameters as the unquantized model: 2 × (4·64·64 + 2·32·64 + 3·128·64) + 2·128·64 + 5·64.
        let plain = ModelSummary(try ModelInput.open(path: Fixtures.path("tiny-llama-spm")))
        #expect(summary.weightParameterCount == plain.parameterCount)
        #expect(summary.weightParameterCount == 90432)
        #expect(abs(summary.weightBitsPerWeight - Double(summary.totalByteCount * 8) / 90432) < 1e-12)
        #expect(plain.bnb == nil)
    }

    // MARK: quant_state JSON

    static func parseState(_ text: String) throws(BNBFormatError) -> BNBQuantState {
        let bytes = Array(text.utf8)
        let result: Result<BNBQuantState, BNBFormatError> = bytes.withUnsafeBytes { raw in
            do throws(BNBFormatError) { return .success(try BNBQuantState.parse(raw, tensor: "w.quant_state.bitsandbytes__nf4")) }
            catch { return .failure(error) }
        }
        return try result.get()
    }

    @Test func parsesBitsandbytesQuantStateJSON() throws {
        let s = try Self.parseState(#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [128, 128], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.05148506164550781}"#)
        #expect(s == BNBQuantState(quantType: .nf4, blockSize: 64, dtype: .bf16, shape: [128, 128],
                                   nested: .init(blockSize: 256, offset: 0.05148506164550781)))
        let plain = try Self.parseState(#"{"quant_type": "fp4", "blocksize": 128, "dtype": "float16", "shape": [3, 5]}"#)
        #expect(plain.nested == nil && plain.blockCount == 1 && plain.packedByteCount == 8)
    }

    @Test(arguments: [
        ("not json", "invalid"),
        ("[1, 2]", "invalid"),
        (#"{"blocksize": 64, "dtype": "bfloat16", "shape": [2, 2]}"#, "invalid"),
        (#"{"quant_type": "nf4", "blocksize": 0, "dtype": "bfloat16", "shape": [2, 2]}"#, "invalid"),
        (#"{"quant_type": "nf4", "blocksize": "64", "dtype": "bfloat16", "shape": [2, 2]}"#, "invalid"),
        (#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2, -2]}"#, "invalid"),
        (#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": "2x2"}"#, "invalid"),
        (#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2, 2], "nested_offset": 0.5}"#, "invalid"),
        (#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2, 2], "blocksize": 32}"#, "invalid"),
        (#"{"quant_type": "int4", "blocksize": 64, "dtype": "bfloat16", "shape": [2, 2]}"#, "unknown"),
        (#"{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [2, 2]}"#, "unsupported"),
        (#"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2, 2], "nested_blocksize": 256, "nested_dtype": "float16", "nested_offset": 0.5}"#, "unsupported"),
    ])
    func rejectsMalformedQuantState(text: String, expected: String) {
        #expect {
            _ = try Self.parseState(text)
        } throws: { error in
            switch (error as? BNBFormatError, expected) {
            case (.invalidQuantState?, "invalid"), (.unknownQuantType?, "unknown"), (.unsupportedValue?, "unsupported"): true
            default: false
            }
        }
    }

    // MARK: Hand-built malformed checkpoints

    /// One tensor of a hand-built checkpoint.
    struct Piece {
        var name: String
        var dtype: DType
        var shape: [Int]
        var bytes: [UInt8]
    }

    static let weight = "model.layers.0.mlp.up_proj.weight"

    /// A valid NF4 weight of shape [4, 64] (256 elements, 4 blocks), all zeros, as pieces.
    static func fourBitPieces(doubleQuant: Bool = true, json: String? = nil, key: String = "nf4") -> [Piece] {
        let state = json ?? (doubleQuant
            ? #"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}"#
            : #"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4, 64]}"#)
        var pieces = [
            Piece(name: weight, dtype: .u8, shape: [128, 1], bytes: .init(repeating: 0x77, count: 128)),
            Piece(name: weight + ".absmax", dtype: doubleQuant ? .u8 : .f32, shape: [4], bytes: .init(repeating: 0, count: doubleQuant ? 4 : 16)),
            Piece(name: weight + ".quant_map", dtype: .f32, shape: [16], bytes: .init(repeating: 0, count: 64)),
        ]
        if doubleQuant {
            pieces.append(Piece(name: weight + ".nested_absmax", dtype: .f32, shape: [1], bytes: .init(repeating: 0, count: 4)))
            pieces.append(Piece(name: weight + ".nested_quant_map", dtype: .f32, shape: [256], bytes: .init(repeating: 0, count: 1024)))
        }
        pieces.append(Piece(name: weight + ".quant_state.bitsandbytes__" + key, dtype: .u8, shape: [state.utf8.count], bytes: Array(state.utf8)))
        pieces.append(Piece(name: "model.norm.weight", dtype: .bf16, shape: [4], bytes: .init(repeating: 0, count: 8)))
        return pieces
    }

    static let int8Module = "model.layers.0.self_attn.q_proj"

    static func int8Pieces(format: UInt8 = 0) -> [Piece] {
        [
            Piece(name: int8Module + ".weight", dtype: .i8, shape: [2, 4], bytes: .init(repeating: 1, count: 8)),
            Piece(name: int8Module + ".SCB", dtype: .f32, shape: [2], bytes: .init(repeating: 0, count: 8)),
            Piece(name: int8Module + ".weight_format", dtype: .u8, shape: [], bytes: [format]),
        ]
    }

    static let config4Bit = #"{"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true, "load_in_8bit": false, "bnb_4bit_quant_type": "nf4"}}"#
    static let config8Bit = #"{"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": false, "load_in_8bit": true}}"#

    static func read(_ pieces: [Piece], config: String? = nil) throws -> BNBCheckpointLayout {
        let bytes = try SafetensorsWriter.serialize(pieces.map { (SafetensorsTensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), $0.bytes) },
                                                    metadata: [("format", "pt")])
        let dir = Fixtures.temporaryDirectory("wconv-bnb-layout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/model.safetensors"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let checkpoint = try SafetensorsCheckpoint(path: path)
        return try BNBCheckpointLayout(source: CheckpointTensorSource(checkpoint), config: try config.map { try HFConfig(json: $0) })
    }

    /// The ``BNBFormatError`` `body` throws (unwrapping the ``PathError``), or nil.
    static func formatError(_ body: () throws -> Void) -> BNBFormatError? {
        do {
            try body()
            return nil
        } catch let error as PathError {
            return error.underlying as? BNBFormatError
        } catch {
            return error as? BNBFormatError
        }
    }

    @Test func handBuiltCheckpointsReadBack() throws {
        let fourBit = try Self.read(Self.fourBitPieces(), config: Self.config4Bit)
        #expect(fourBit.fourBitWeights.map(\.name) == [Self.weight])
        #expect(fourBit.groups.map(\.name).sorted() == ["model.layers.0.mlp.up_proj.weight", "model.norm.weight"])
        let plain = try Self.read(Self.fourBitPieces(doubleQuant: false))
        #expect(plain.fourBitWeights.first?.state.nested == nil)
        #expect(plain.config == nil)
        let int8 = try Self.read(Self.int8Pieces(), config: Self.config8Bit)
        #expect(int8.int8Weights.map(\.name) == [Self.int8Module + ".weight"])
        #expect(int8.int8Weights.first?.rows == 2 && int8.int8Weights.first?.columns == 4)
    }

    @Test(arguments: [".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ""])
    func missingFourBitPieceIsNamed(suffix: String) {
        let pieces = Self.fourBitPieces().filter { $0.name != Self.weight + suffix }
        let error = Self.formatError { _ = try Self.read(pieces) }
        #expect(error == .missingPiece(weight: Self.weight, piece: Self.weight + suffix))
    }

    @Test func wrongShapesAndDTypesAreRejected() {
        var pieces = Self.fourBitPieces()
        pieces[1].shape = [5]
        pieces[1].bytes = .init(repeating: 0, count: 5)
        #expect(Self.formatError { _ = try Self.read(pieces) } == .wrongShape(tensor: Self.weight + ".absmax", expected: [4], actual: [5]))

        pieces = Self.fourBitPieces()
        pieces[0].shape = [64, 2]
        #expect(Self.formatError { _ = try Self.read(pieces) } == .wrongShape(tensor: Self.weight, expected: [128, 1], actual: [64, 2]))

        // Without double quantization absmax must be F32.
        pieces = Self.fourBitPieces(doubleQuant: false)
        pieces[1] = Piece(name: Self.weight + ".absmax", dtype: .u8, shape: [4], bytes: [0, 0, 0, 0])
        #expect(Self.formatError { _ = try Self.read(pieces) } == .wrongDType(tensor: Self.weight + ".absmax", expected: [.f32], actual: "U8"))

        pieces = Self.fourBitPieces()
        pieces[2] = Piece(name: Self.weight + ".quant_map", dtype: .f32, shape: [15], bytes: .init(repeating: 0, count: 60))
        #expect(Self.formatError { _ = try Self.read(pieces) } == .wrongShape(tensor: Self.weight + ".quant_map", expected: [16], actual: [15]))
    }

    @Test func badQuantStateIsRejected() {
        let broken = Self.fourBitPieces(json: #"{"quant_type": "nf4", "blocksize": 64,"#)
        guard case .invalidQuantState(let tensor, _)? = Self.formatError({ _ = try Self.read(broken) }) else {
            Issue.record("expected invalidQuantState")
            return
        }
        #expect(tensor == Self.weight + ".quant_state.bitsandbytes__nf4")

        let mismatch = Self.fourBitPieces(json: #"{"quant_type": "fp4", "blocksize": 64, "dtype": "bfloat16", "shape": [4, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}"#)
        #expect(Self.formatError { _ = try Self.read(mismatch) }
            == .quantTypeMismatch(tensor: Self.weight + ".quant_state.bitsandbytes__nf4", key: "nf4", json: "fp4"))

        let unknownKey = Self.fourBitPieces(key: "int4")
        #expect(Self.formatError { _ = try Self.read(unknownKey) }
            == .unknownQuantType(tensor: Self.weight + ".quant_state.bitsandbytes__int4", name: "int4"))

        // The JSON's shape decides the sizes: 300 elements need 150 packed bytes, not 128.
        let shape = Self.fourBitPieces(json: #"{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [3, 100], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}"#)
        #expect(Self.formatError { _ = try Self.read(shape) } == .wrongShape(tensor: Self.weight, expected: [150, 1], actual: [128, 1]))

        // Nested pieces without nested keys.
        var extra = Self.fourBitPieces(doubleQuant: false)
        extra.append(Piece(name: Self.weight + ".nested_absmax", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0]))
        guard case .invalidQuantState? = Self.formatError({ _ = try Self.read(extra) }) else {
            Issue.record("expected invalidQuantState for a stray nested_absmax")
            return
        }
    }

    @Test func orphanPiecesAreRejected() {
        // absmax and quant_map without a quant_state entry.
        let pieces = Self.fourBitPieces().filter { !$0.name.contains("quant_state") }
        guard case .orphanPiece(_, let expected)? = Self.formatError({ _ = try Self.read(pieces) }) else {
            Issue.record("expected orphanPiece")
            return
        }
        #expect(expected == Self.weight + ".quant_state.bitsandbytes__nf4")

        let format = Self.int8Pieces().filter { $0.name.hasSuffix(".weight_format") }
        #expect(Self.formatError { _ = try Self.read(format) }
            == .orphanPiece(tensor: Self.int8Module + ".weight_format", expected: Self.int8Module + ".SCB"))
    }

    @Test func int8ErrorsAreNamed() {
        // An int8 checkpoint whose weight lost its SCB.
        let noSCB = Self.int8Pieces().filter { !$0.name.hasSuffix(".SCB") && !$0.name.hasSuffix(".weight_format") }
        #expect(Self.formatError { _ = try Self.read(noSCB, config: Self.config8Bit) }
            == .missingPiece(weight: Self.int8Module + ".weight", piece: Self.int8Module + ".SCB"))

        var scb = Self.int8Pieces()
        scb[1] = Piece(name: Self.int8Module + ".SCB", dtype: .f32, shape: [3], bytes: .init(repeating: 0, count: 12))
        #expect(Self.formatError { _ = try Self.read(scb) } == .wrongShape(tensor: Self.int8Module + ".SCB", expected: [2], actual: [3]))

        var dtype = Self.int8Pieces()
        dtype[0] = Piece(name: Self.int8Module + ".weight", dtype: .u8, shape: [2, 4], bytes: .init(repeating: 0, count: 8))
        #expect(Self.formatError { _ = try Self.read(dtype) } == .wrongDType(tensor: Self.int8Module + ".weight", expected: [.i8], actual: "U8"))

        let col32 = Self.int8Pieces(format: 1)
        let error = Self.formatError { _ = try Self.read(col32) }
        #expect(error == .unsupportedWeightFormat(tensor: Self.int8Module + ".weight_format", value: 1))
        #expect(error?.kind == .unsupported)
    }

    @Test func configMustAgreeWithTheWeights() {
        guard case .invalidConfig? = Self.formatError({ _ = try Self.read(Self.int8Pieces(), config: Self.config4Bit) }) else {
            Issue.record("4-bit config with int8 weights")
            return
        }
        guard case .invalidConfig? = Self.formatError({ _ = try Self.read(Self.fourBitPieces(), config: Self.config8Bit) }) else {
            Issue.record("8-bit config with 4-bit weights")
            return
        }
        let plain = [Piece(name: "model.norm.weight", dtype: .bf16, shape: [4], bytes: .init(repeating: 0, count: 8))]
        guard case .invalidConfig? = Self.formatError({ _ = try Self.read(plain, config: Self.config4Bit) }) else {
            Issue.record("bitsandbytes config without quantized weights")
            return
        }
        let both = #"{"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true, "load_in_8bit": true}}"#
        guard case .invalidConfig? = Self.formatError({ _ = try Self.read(Self.fourBitPieces(), config: both) }) else {
            Issue.record("both 4-bit and 8-bit")
            return
        }
        let badType = #"{"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": "yes"}}"#
        guard case .invalidConfig? = Self.formatError({ _ = try Self.read(Self.fourBitPieces(), config: badType) }) else {
            Issue.record("mistyped load_in_4bit")
            return
        }
    }

    @Test func otherQuantMethodsAreReportedNotRead() throws {
        let gptq = #"{"quantization_config": {"quant_method": "gptq", "bits": 4}}"#
        let layout = try Self.read([Piece(name: "model.norm.weight", dtype: .bf16, shape: [4], bytes: .init(repeating: 0, count: 8))], config: gptq)
        #expect(layout.otherQuantMethod == "gptq")
        #expect(!layout.isQuantized)
    }
}
