import Formats
import TensorCore
import TestSupport
import Testing

/// A SentencePiece golden as `testdata/scripts/dump_tokenizer_goldens.py` writes it with the `sentencepiece`
/// package.
struct SentencePieceGolden {
    let json: JSONValue

    init(_ name: String) throws {
        json = try JSONParser.parse(try Fixtures.data("golden/tokenizer/sentencepiece-\(name).json"))
    }

    var modelPath: String { json["file"]?.stringValue ?? "" }
    var pieces: [SentencePieceModel.Piece] {
        (json["pieces"]?.arrayValue ?? []).map { p in
            SentencePieceModel.Piece(
                piece: p["piece"]?.stringValue ?? "",
                score: Float(bitPattern: UInt32(p["score_bits"]?.intValue ?? 0)),
                type: SentencePieceModel.PieceType(rawValue: Int32(p["type"]?.intValue ?? 0)) ?? .normal)
        }
    }
}

@Suite struct TokenizerSentencePieceTests {
    @Test(arguments: ["tiny-llama", "bytefallback"])
    func parsesModelsAsTheSentencePieceLibraryDoes(name: String) throws {
        let golden = try SentencePieceGolden(name)
        let model = try SentencePieceModel(parsing: try Fixtures.data(golden.modelPath))
        #expect(model.pieces.count == golden.pieces.count)
        #expect(model.pieces == golden.pieces)

        let ts = try #require(model.trainerSpec)
        let gts = try #require(golden.json["trainer_spec"])
        #expect(ts.modelType.rawValue == Int32(gts["model_type"]?.intValue ?? -1))
        #expect(Int(ts.vocabSize) == gts["vocab_size"]?.intValue)
        #expect(ts.byteFallback == gts["byte_fallback"]?.boolValue)
        #expect(Int(ts.unkID) == gts["unk_id"]?.intValue)
        #expect(Int(ts.bosID) == gts["bos_id"]?.intValue)
        #expect(Int(ts.eosID) == gts["eos_id"]?.intValue)
        #expect(Int(ts.padID) == gts["pad_id"]?.intValue)
        #expect(ts.unkPiece == gts["unk_piece"]?.stringValue)
        #expect(ts.bosPiece == gts["bos_piece"]?.stringValue)
        #expect(ts.eosPiece == gts["eos_piece"]?.stringValue)
        #expect(ts.padPiece == gts["pad_piece"]?.stringValue)
        #expect(ts.splitDigits == gts["split_digits"]?.boolValue)
        #expect(Int(ts.characterCoverage.bitPattern) == gts["character_coverage_bits"]?.intValue)
        #expect(ts.hardVocabLimit == gts["hard_vocab_limit"]?.boolValue)
        #expect(ts.input == gts["input"]?.arrayValue?.compactMap(\.stringValue))
        #expect(ts.modelPrefix == gts["model_prefix"]?.stringValue)
        #expect(ts.userDefinedSymbols == gts["user_defined_symbols"]?.arrayValue?.compactMap(\.stringValue))
        #expect(ts.controlSymbols == gts["control_symbols"]?.arrayValue?.compactMap(\.stringValue))

        let ns = try #require(model.normalizerSpec)
        let gns = try #require(golden.json["normalizer_spec"])
        #expect(ns.name == gns["name"]?.stringValue)
        #expect(ns.precompiledCharsmap.count == gns["precompiled_charsmap_size"]?.intValue)
        #expect(ns.addDummyPrefix == gns["add_dummy_prefix"]?.boolValue)
        #expect(ns.removeExtraWhitespaces == gns["remove_extra_whitespaces"]?.boolValue)
        #expect(ns.escapeWhitespaces == gns["escape_whitespaces"]?.boolValue)
        #expect((model.denormalizerSpec != nil) == golden.json["has_denormalizer_spec"]?.boolValue)
    }

    @Test(arguments: ["tiny-llama", "bytefallback"])
    func writerOutputReadsBackEqual(name: String) throws {
        let golden = try SentencePieceGolden(name)
        let model = try SentencePieceModel(parsing: try Fixtures.data(golden.modelPath))
        let again = try SentencePieceModel(parsing: model.serialized())
        #expect(again == model)
        // Writing is deterministic.
        #expect(again.serialized() == model.serialized())
    }

    @Test func roundTripsNegativeIdsAndSignedZeroScores() throws {
        var spec = SentencePieceModel.TrainerSpec()
        spec.padID = -1
        spec.bosID = -7
        spec.modelType = .bpe
        let model = SentencePieceModel(
            pieces: [.init(piece: "<unk>", score: 0, type: .unknown), .init(piece: "▁a", score: -0.0),
                     .init(piece: "<0x00>", score: .infinity, type: .byte)],
            trainerSpec: spec, normalizerSpec: .init())
        let bytes = model.serialized()
        let back = try SentencePieceModel(parsing: bytes)
        #expect(back == model)
        #expect(back.pieces[1].score.bitPattern == 0x8000_0000)
        #expect(back.trainerSpec?.padID == -1 && back.trainerSpec?.bosID == -7)
    }

    // MARK: Hand-built protobuf bytes

    /// A one-piece model: field 1 (pieces) holding piece "a" with score 1.0.
    static let onePiece: [UInt8] = [0x0A, 0x08, 0x0A, 0x01, 0x61, 0x15, 0x00, 0x00, 0x80, 0x3F]

    @Test func readsAHandBuiltModel() throws {
        let model = try SentencePieceModel(parsing: Self.onePiece)
        #expect(model.pieces == [.init(piece: "a", score: 1, type: .normal)])
        #expect(model.trainerSpec == nil && model.normalizerSpec == nil)
    }

    @Test func skipsUnknownFieldsOfEveryWireType() throws {
        // Field 99 as varint (300), fixed64, length-delimited and fixed32, around the piece; and an unknown
        // field 9 inside the piece.
        let unknown: [UInt8] = [0x98, 0x06, 0xAC, 0x02,                      // 99 varint 300
                                0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,          // 99 fixed64
                                0x9A, 0x06, 0x02, 0xFF, 0xFE,                // 99 bytes (not UTF-8: skipped unread)
                                0x9D, 0x06, 9, 9, 9, 9]                      // 99 fixed32
        let piece: [UInt8] = [0x0A, 0x0C, 0x0A, 0x01, 0x61, 0x48, 0x05, 0x15, 0x00, 0x00, 0x80, 0x3F, 0x18, 0x03]
        let model = try SentencePieceModel(parsing: unknown + piece + unknown)
        #expect(model.pieces == [.init(piece: "a", score: 1, type: .control)])
    }

    @Test func rejectsMalformedProtobuf() {
        func parse(_ bytes: [UInt8]) throws(TokenizerError) { _ = try SentencePieceModel(parsing: bytes) }
        // Length 8 but only 3 bytes follow.
        #expect(throws: TokenizerError.malformedProtobuf("length 8 exceeds the 3 bytes left", offset: 1)) {
            try parse([0x0A, 0x08, 0x0A, 0x01, 0x61])
        }
        // A varint that never ends.
        #expect(throws: TokenizerError.truncatedProtobuf(offset: 0)) { try parse([0x80, 0x80]) }
        // Eleven continuation bytes.
        #expect(throws: TokenizerError.malformedProtobuf("varint overflows 64 bits", offset: 0)) {
            try parse([UInt8](repeating: 0xFF, count: 11))
        }
        // Wire types 6 and 7 do not exist; 3 (groups) is refused.
        #expect(throws: TokenizerError.malformedProtobuf("unknown wire type 7", offset: 0)) { try parse([0x0F]) }
        #expect(throws: TokenizerError.self) { try parse([0x0B, 0x0C]) }
        // Field number 0.
        #expect(throws: TokenizerError.malformedProtobuf("field number 0 out of range", offset: 0)) { try parse([0x00]) }
        // `pieces` sent as a varint.
        #expect(throws: TokenizerError.malformedProtobuf("ModelProto.pieces has wire type 0, expected 2", offset: 0)) {
            try parse([0x08, 0x01])
        }
        // A fixed32 score cut short.
        #expect(throws: TokenizerError.truncatedProtobuf(offset: 6)) { try parse([0x0A, 0x06, 0x0A, 0x01, 0x61, 0x15, 0x00, 0x00]) }
        // A piece that is not UTF-8.
        #expect(throws: TokenizerError.malformedProtobuf("piece 0 is not valid UTF-8", offset: 4)) {
            try parse([0x0A, 0x03, 0x0A, 0x01, 0xFF])
        }
        // Piece type 9 is not a SentencePiece type.
        #expect(throws: TokenizerError.invalidSentencePieceModel("piece 0 has unknown type 9")) {
            try parse([0x0A, 0x05, 0x0A, 0x01, 0x61, 0x18, 0x09])
        }
        // No pieces at all (an empty file, or only a trainer spec).
        #expect(throws: TokenizerError.invalidSentencePieceModel("the model has no pieces")) { try parse([]) }
        #expect(throws: TokenizerError.invalidSentencePieceModel("the model has no pieces")) { try parse([0x12, 0x02, 0x18, 0x02]) }
        // Unknown model type.
        #expect(throws: TokenizerError.invalidSentencePieceModel("unknown model_type 7")) {
            try parse(Self.onePiece + [0x12, 0x02, 0x18, 0x07])
        }
    }

    @Test func everyTruncationOfARealModelFailsCleanly() throws {
        let bytes = try Fixtures.data("tokenizer/spm-bytefallback/tokenizer.model")
        let full = try SentencePieceModel(parsing: bytes)
        for length in 0 ..< bytes.count {
            // A cut at a field boundary is a valid shorter model; anything else must throw, never trap.
            if let model = try? SentencePieceModel(parsing: Array(bytes[..<length])) {
                #expect(model.pieces.count <= full.pieces.count)
            }
        }
    }

    @Test func errorsAreClassifiedAsMalformedInput() {
        #expect(TokenizerError.truncatedProtobuf(offset: 3).kind == .malformedInput)
        #expect(TokenizerError.truncatedProtobuf(offset: 3).description.contains("byte 3"))
        #expect(TokenizerError.unknownPreTokenizer(summary: "x").kind == .unsupported)
        #expect(TokenizerError.missingFile("tokenizer.json").kind == .missingInput)
    }
}
