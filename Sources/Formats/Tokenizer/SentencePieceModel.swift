/// A SentencePiece `tokenizer.model`: the parts of `sentencepiece.ModelProto` (sentencepiece_model.proto,
/// proto2) that conversion needs.
///
/// Field numbers used (all others are skipped when reading):
/// - `ModelProto`: 1 `pieces` (repeated message), 2 `trainer_spec`, 3 `normalizer_spec`, 5 `denormalizer_spec`.
/// - `SentencePiece`: 1 `piece` (string), 2 `score` (float, fixed32), 3 `type` (enum, default NORMAL).
/// - `TrainerSpec`: 1 `input` (repeated), 2 `model_prefix`, 3 `model_type`, 4 `vocab_size`, 10
///   `character_coverage`, 25 `split_digits`, 30 `control_symbols`, 31 `user_defined_symbols`, 35 `byte_fallback`,
///   33 `hard_vocab_limit`, 40–43 `unk_id`/`bos_id`/`eos_id`/`pad_id`, 44 `unk_surface`, 45–48 the four pieces.
/// - `NormalizerSpec`: 1 `name`, 2 `precompiled_charsmap` (bytes), 3 `add_dummy_prefix`, 4
///   `remove_extra_whitespaces`, 5 `escape_whitespaces`, 6 `normalization_rule_tsv`.
///
/// Absent fields take their proto2 defaults, as the C++ library reads them.
public struct SentencePieceModel: Sendable, Equatable {
    /// `ModelProto.SentencePiece.Type`. The raw values are also GGUF's `tokenizer.ggml.token_type` values.
    public enum PieceType: Int32, Sendable, CaseIterable {
        case normal = 1
        case unknown = 2
        case control = 3
        case userDefined = 4
        case unused = 5
        case byte = 6
    }

    /// `TrainerSpec.ModelType`.
    public enum ModelType: Int32, Sendable, CaseIterable {
        case unigram = 1
        case bpe = 2
        case word = 3
        case char = 4
    }

    /// One vocabulary entry.
    public struct Piece: Sendable, Equatable {
        public var piece: String
        public var score: Float
        public var type: PieceType

        public init(piece: String, score: Float, type: PieceType = .normal) {
            self.piece = piece
            self.score = score
            self.type = type
        }

        /// Compares scores by bit pattern, so `-0.0` and `0.0` differ as they do in the file.
        public static func == (a: Piece, b: Piece) -> Bool {
            a.piece == b.piece && a.score.bitPattern == b.score.bitPattern && a.type == b.type
        }
    }

    /// `TrainerSpec`: how the model was trained. The ids and `byte_fallback` matter at load time.
    public struct TrainerSpec: Sendable, Equatable {
        public var input: [String] = []
        public var modelPrefix: String = ""
        public var modelType: ModelType = .unigram
        public var vocabSize: Int32 = 8000
        public var characterCoverage: Float = 0.9995
        public var splitDigits: Bool = false
        public var controlSymbols: [String] = []
        public var userDefinedSymbols: [String] = []
        public var byteFallback: Bool = false
        public var hardVocabLimit: Bool = true
        public var unkID: Int32 = 0
        public var bosID: Int32 = 1
        public var eosID: Int32 = 2
        public var padID: Int32 = -1
        public var unkSurface: String = " \u{2047} "
        public var unkPiece: String = "<unk>"
        public var bosPiece: String = "<s>"
        public var eosPiece: String = "</s>"
        public var padPiece: String = "<pad>"

        public init() {}

        public static func == (a: TrainerSpec, b: TrainerSpec) -> Bool {
            a.input == b.input && a.modelPrefix == b.modelPrefix && a.modelType == b.modelType
                && a.vocabSize == b.vocabSize && a.characterCoverage.bitPattern == b.characterCoverage.bitPattern
                && a.splitDigits == b.splitDigits && a.controlSymbols == b.controlSymbols
                && a.userDefinedSymbols == b.userDefinedSymbols && a.byteFallback == b.byteFallback
                && a.hardVocabLimit == b.hardVocabLimit && a.unkID == b.unkID && a.bosID == b.bosID
                && a.eosID == b.eosID && a.padID == b.padID && a.unkSurface == b.unkSurface
                && a.unkPiece == b.unkPiece && a.bosPiece == b.bosPiece && a.eosPiece == b.eosPiece
                && a.padPiece == b.padPiece
        }
    }

    /// `NormalizerSpec`: text normalization before segmentation.
    public struct NormalizerSpec: Sendable, Equatable {
        public var name: String = ""
        public var precompiledCharsmap: [UInt8] = []
        public var addDummyPrefix: Bool = true
        public var removeExtraWhitespaces: Bool = true
        public var escapeWhitespaces: Bool = true
        public var normalizationRuleTSV: String = ""

        public init() {}
    }

    public var pieces: [Piece]
    /// nil when the file has no `trainer_spec` (the defaults then apply).
    public var trainerSpec: TrainerSpec?
    public var normalizerSpec: NormalizerSpec?
    public var denormalizerSpec: NormalizerSpec?

    public init(pieces: [Piece], trainerSpec: TrainerSpec? = nil, normalizerSpec: NormalizerSpec? = nil,
                denormalizerSpec: NormalizerSpec? = nil) {
        self.pieces = pieces
        self.trainerSpec = trainerSpec
        self.normalizerSpec = normalizerSpec
        self.denormalizerSpec = denormalizerSpec
    }

    /// Parses a serialized `ModelProto`.
    ///
    /// - Throws: ``TokenizerError/truncatedProtobuf(offset:)`` or ``TokenizerError/malformedProtobuf(_:offset:)``
    ///   for bytes that are not a protobuf; ``TokenizerError/invalidSentencePieceModel(_:)`` when there are no
    ///   pieces or a piece has a type outside 1...6.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(TokenizerError) {
        var reader = ProtobufReader(bytes)
        var pieces: [Piece] = []
        var trainer: TrainerSpec?
        var normalizer: NormalizerSpec?
        var denormalizer: NormalizerSpec?
        while !reader.isAtEnd {
            let tagPosition = reader.position
            let (field, wire) = try reader.readTag()
            switch field {
            case 1:
                try reader.expect(wire, is: .lengthDelimited, field: "ModelProto.pieces", at: tagPosition)
                var message = try reader.readMessage()
                pieces.append(try Self.readPiece(&message, index: pieces.count))
            case 2:
                try reader.expect(wire, is: .lengthDelimited, field: "ModelProto.trainer_spec", at: tagPosition)
                var message = try reader.readMessage()
                // proto2 merges repeated occurrences of a singular message field; so do we.
                var spec = trainer ?? TrainerSpec()
                try Self.readTrainerSpec(&message, into: &spec)
                trainer = spec
            case 3, 5:
                let name = field == 3 ? "ModelProto.normalizer_spec" : "ModelProto.denormalizer_spec"
                try reader.expect(wire, is: .lengthDelimited, field: name, at: tagPosition)
                var message = try reader.readMessage()
                var spec = (field == 3 ? normalizer : denormalizer) ?? NormalizerSpec()
                try Self.readNormalizerSpec(&message, into: &spec)
                if field == 3 { normalizer = spec } else { denormalizer = spec }
            default:
                try reader.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw .invalidSentencePieceModel("the model has no pieces") }
        self.init(pieces: pieces, trainerSpec: trainer, normalizerSpec: normalizer, denormalizerSpec: denormalizer)
    }

    /// Parses a serialized `ModelProto` held in an array.
    public init(parsing bytes: [UInt8]) throws(TokenizerError) {
        let result: Result<SentencePieceModel, TokenizerError> = bytes.withUnsafeBytes { raw in
            do throws(TokenizerError) { return .success(try SentencePieceModel(parsing: raw)) } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    private static func readPiece(_ reader: inout ProtobufReader, index: Int) throws(TokenizerError) -> Piece {
        var piece = Piece(piece: "", score: 0, type: .normal)
        while !reader.isAtEnd {
            let tagPosition = reader.position
            let (field, wire) = try reader.readTag()
            switch field {
            case 1:
                try reader.expect(wire, is: .lengthDelimited, field: "SentencePiece.piece", at: tagPosition)
                piece.piece = try reader.readString("piece \(index)")
            case 2:
                try reader.expect(wire, is: .fixed32, field: "SentencePiece.score", at: tagPosition)
                piece.score = try reader.readFloat()
            case 3:
                try reader.expect(wire, is: .varint, field: "SentencePiece.type", at: tagPosition)
                let raw = try reader.readInt32()
                guard let type = PieceType(rawValue: raw) else {
                    throw .invalidSentencePieceModel("piece \(index) has unknown type \(raw)")
                }
                piece.type = type
            default:
                try reader.skip(wire)
            }
        }
        return piece
    }

    private static func readTrainerSpec(_ reader: inout ProtobufReader, into spec: inout TrainerSpec)
        throws(TokenizerError)
    {
        while !reader.isAtEnd {
            let tagPosition = reader.position
            let (field, wire) = try reader.readTag()
            // Field number, the wire type its declaration implies, and its name (for errors).
            func check(_ expected: ProtobufWireType, _ name: String) throws(TokenizerError) {
                try reader.expect(wire, is: expected, field: "TrainerSpec.\(name)", at: tagPosition)
            }
            switch field {
            case 1: try check(.lengthDelimited, "input"); spec.input.append(try reader.readString("input"))
            case 2: try check(.lengthDelimited, "model_prefix"); spec.modelPrefix = try reader.readString("model_prefix")
            case 3:
                try check(.varint, "model_type")
                let raw = try reader.readInt32()
                guard let type = ModelType(rawValue: raw) else {
                    throw .invalidSentencePieceModel("unknown model_type \(raw)")
                }
                spec.modelType = type
            case 4: try check(.varint, "vocab_size"); spec.vocabSize = try reader.readInt32()
            case 10: try check(.fixed32, "character_coverage"); spec.characterCoverage = try reader.readFloat()
            case 25: try check(.varint, "split_digits"); spec.splitDigits = try reader.readBool()
            case 30:
                try check(.lengthDelimited, "control_symbols")
                spec.controlSymbols.append(try reader.readString("control_symbols"))
            case 31:
                try check(.lengthDelimited, "user_defined_symbols")
                spec.userDefinedSymbols.append(try reader.readString("user_defined_symbols"))
            case 33: try check(.varint, "hard_vocab_limit"); spec.hardVocabLimit = try reader.readBool()
            case 35: try check(.varint, "byte_fallback"); spec.byteFallback = try reader.readBool()
            case 40: try check(.varint, "unk_id"); spec.unkID = try reader.readInt32()
            case 41: try check(.varint, "bos_id"); spec.bosID = try reader.readInt32()
            case 42: try check(.varint, "eos_id"); spec.eosID = try reader.readInt32()
            case 43: try check(.varint, "pad_id"); spec.padID = try reader.readInt32()
            case 44: try check(.lengthDelimited, "unk_surface"); spec.unkSurface = try reader.readString("unk_surface")
            case 45: try check(.lengthDelimited, "unk_piece"); spec.unkPiece = try reader.readString("unk_piece")
            case 46: try check(.lengthDelimited, "bos_piece"); spec.bosPiece = try reader.readString("bos_piece")
            case 47: try check(.lengthDelimited, "eos_piece"); spec.eosPiece = try reader.readString("eos_piece")
            case 48: try check(.lengthDelimited, "pad_piece"); spec.padPiece = try reader.readString("pad_piece")
            default: try reader.skip(wire)
            }
        }
    }

    private static func readNormalizerSpec(_ reader: inout ProtobufReader, into spec: inout NormalizerSpec)
        throws(TokenizerError)
    {
        while !reader.isAtEnd {
            let tagPosition = reader.position
            let (field, wire) = try reader.readTag()
            func check(_ expected: ProtobufWireType, _ name: String) throws(TokenizerError) {
                try reader.expect(wire, is: expected, field: "NormalizerSpec.\(name)", at: tagPosition)
            }
            switch field {
            case 1: try check(.lengthDelimited, "name"); spec.name = try reader.readString("normalizer name")
            case 2:
                try check(.lengthDelimited, "precompiled_charsmap")
                spec.precompiledCharsmap = Array(try reader.readLengthDelimited().bytes)
            case 3: try check(.varint, "add_dummy_prefix"); spec.addDummyPrefix = try reader.readBool()
            case 4: try check(.varint, "remove_extra_whitespaces"); spec.removeExtraWhitespaces = try reader.readBool()
            case 5: try check(.varint, "escape_whitespaces"); spec.escapeWhitespaces = try reader.readBool()
            case 6:
                try check(.lengthDelimited, "normalization_rule_tsv")
                spec.normalizationRuleTSV = try reader.readString("normalization_rule_tsv")
            default: try reader.skip(wire)
            }
        }
    }

    /// The model as protobuf bytes, fields in field-number order as the C++ library writes them.
    ///
    /// Every modelled field of a present spec is written, defaults included, so the file does not depend on
    /// a reader's idea of the defaults. A piece's type is written only when it is not NORMAL.
    public func serialized() -> [UInt8] {
        var writer = ProtobufWriter()
        for piece in pieces {
            writer.writeMessage(1) { w in
                w.writeString(1, piece.piece)
                w.writeFloat(2, piece.score)
                if piece.type != .normal { w.writeInt32(3, piece.type.rawValue) }
            }
        }
        if let spec = trainerSpec {
            writer.writeMessage(2) { w in
                for input in spec.input { w.writeString(1, input) }
                w.writeString(2, spec.modelPrefix)
                w.writeInt32(3, spec.modelType.rawValue)
                w.writeInt32(4, spec.vocabSize)
                w.writeFloat(10, spec.characterCoverage)
                w.writeBool(25, spec.splitDigits)
                for symbol in spec.controlSymbols { w.writeString(30, symbol) }
                for symbol in spec.userDefinedSymbols { w.writeString(31, symbol) }
                w.writeBool(33, spec.hardVocabLimit)
                w.writeBool(35, spec.byteFallback)
                w.writeInt32(40, spec.unkID)
                w.writeInt32(41, spec.bosID)
                w.writeInt32(42, spec.eosID)
                w.writeInt32(43, spec.padID)
                w.writeString(44, spec.unkSurface)
                w.writeString(45, spec.unkPiece)
                w.writeString(46, spec.bosPiece)
                w.writeString(47, spec.eosPiece)
                w.writeString(48, spec.padPiece)
            }
        }
        for (field, spec) in [(UInt32(3), normalizerSpec), (5, denormalizerSpec)] {
            guard let spec else { continue }
            writer.writeMessage(field) { w in
                w.writeString(1, spec.name)
                w.writeBytes(2, spec.precompiledCharsmap)
                w.writeBool(3, spec.addDummyPrefix)
                w.writeBool(4, spec.removeExtraWhitespaces)
                w.writeBool(5, spec.escapeWhitespaces)
                w.writeString(6, spec.normalizationRuleTSV)
            }
        }
        return writer.bytes
    }
}
