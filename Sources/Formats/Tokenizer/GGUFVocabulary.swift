/// The `tokenizer.*` metadata of a GGUF file, independent of any GGUF reader or writer.
///
/// ``GGUFVocabulary/init(huggingFace:options:)`` builds it from a Hugging Face model directory exactly as
/// llama.cpp's `convert_hf_to_gguf.py` does for LLaMA-family models; ``metadata()`` lists the keys in the
/// order that converter writes them, with their GGUF value types; ``init(metadata:)`` reads them back from a
/// GGUF file's key/value pairs; ``huggingFaceFiles()`` rebuilds Hugging Face tokenizer files.
///
/// Keys and GGUF value types (the order of ``metadata()`` follows ``keyOrder``; this is the converter's order
/// for a model whose tokenizer_config.json sets everything):
///
/// | key | GGUF type | field |
/// |---|---|---|
/// | `tokenizer.ggml.add_space_prefix` | BOOL | ``addSpacePrefix`` — first when it comes from tokenizer_config.json's `add_prefix_space` |
/// | `tokenizer.ggml.model` | STRING | ``model`` |
/// | `tokenizer.ggml.pre` | STRING | ``pre`` |
/// | `tokenizer.ggml.tokens` | ARRAY[STRING] | ``tokens`` |
/// | `tokenizer.ggml.scores` | ARRAY[FLOAT32] | ``scores`` (SentencePiece only) |
/// | `tokenizer.ggml.token_type` | ARRAY[INT32] | ``tokenTypes`` |
/// | `tokenizer.ggml.merges` | ARRAY[STRING] | ``merges`` (BPE only) |
/// | `tokenizer.ggml.{bos,eos,unknown,seperator,padding,mask,eot,eom}_token_id` | UINT32 | ``specialTokenIDs``, in the order they were resolved |
/// | `tokenizer.ggml.add_{bos,eos,sep}_token` | BOOL | ``addSpecialTokens``, in the order they were decided |
/// | `tokenizer.chat_template.<name>` | STRING | ``namedChatTemplates`` |
/// | `tokenizer.chat_templates` | ARRAY[STRING] | names of ``namedChatTemplates`` |
/// | `tokenizer.chat_template` | STRING | ``chatTemplate`` |
/// | `tokenizer.ggml.normalizer.lowercase` | BOOL | ``normalizerLowercase`` |
/// | `tokenizer.ggml.normalizer.strip_accents` | BOOL | ``normalizerStripAccents`` |
///
/// The converter can append a key after these (`add_bos_token` = false for a 49152-token vocabulary,
/// `eot_token_id` = 32010 for a 32016-token one); ``keyOrder`` records that too.
public struct GGUFVocabulary: Sendable, Equatable {
    /// `tokenizer.ggml.model`: `"llama"` (SentencePiece) or `"gpt2"` (byte-level BPE).
    public var model: String
    /// `tokenizer.ggml.pre`: `"default"` for SentencePiece; for BPE a llama.cpp pre-tokenizer name such as
    /// `"llama-bpe"`, `"smollm"`, `"gpt-2"`, `"qwen2"`.
    public var pre: String?
    public var tokens: [String]
    /// SentencePiece only; compared by bit pattern.
    public var scores: [Float]?
    /// One of ``GGUFTokenType`` per token (raw values, so a file's unknown values survive).
    public var tokenTypes: [Int32]
    /// BPE only: `"left right"` strings in rank order.
    public var merges: [String]?
    /// Special token ids by kind.
    public var specialTokenIDs: [GGUFSpecialToken: UInt32]
    /// `tokenizer.ggml.add_{bos,eos,sep}_token`; only those three kinds have keys.
    public var addSpecialTokens: [GGUFSpecialToken: Bool]
    public var addSpacePrefix: Bool?
    /// `tokenizer.chat_template` (the default template).
    public var chatTemplate: String?
    /// `tokenizer.chat_template.<name>` for templates other than the default, in file order.
    public var namedChatTemplates: [NamedChatTemplate]
    public var normalizerLowercase: Bool?
    public var normalizerStripAccents: Bool?
    /// The keys in the order to write them. Keys present in the vocabulary but missing here are written after
    /// these, in the table's order; keys listed here but absent from the vocabulary are ignored.
    public var keyOrder: [String]

    /// A chat template stored under its own name.
    public struct NamedChatTemplate: Sendable, Equatable {
        public var name: String
        public var template: String
        public init(name: String, template: String) {
            self.name = name
            self.template = template
        }
    }

    public init(model: String, pre: String? = nil, tokens: [String], scores: [Float]? = nil, tokenTypes: [Int32],
                merges: [String]? = nil, specialTokenIDs: [GGUFSpecialToken: UInt32] = [:],
                addSpecialTokens: [GGUFSpecialToken: Bool] = [:], addSpacePrefix: Bool? = nil,
                chatTemplate: String? = nil, namedChatTemplates: [NamedChatTemplate] = [],
                normalizerLowercase: Bool? = nil, normalizerStripAccents: Bool? = nil, keyOrder: [String] = []) {
        self.model = model
        self.pre = pre
        self.tokens = tokens
        self.scores = scores
        self.tokenTypes = tokenTypes
        self.merges = merges
        self.specialTokenIDs = specialTokenIDs
        self.addSpecialTokens = addSpecialTokens
        self.addSpacePrefix = addSpacePrefix
        self.chatTemplate = chatTemplate
        self.namedChatTemplates = namedChatTemplates
        self.normalizerLowercase = normalizerLowercase
        self.normalizerStripAccents = normalizerStripAccents
        self.keyOrder = keyOrder
    }

    public var bosTokenID: UInt32? { specialTokenIDs[.bos] }
    public var eosTokenID: UInt32? { specialTokenIDs[.eos] }
    public var unknownTokenID: UInt32? { specialTokenIDs[.unknown] }
    public var paddingTokenID: UInt32? { specialTokenIDs[.padding] }
    public var separatorTokenID: UInt32? { specialTokenIDs[.separator] }
    public var eotTokenID: UInt32? { specialTokenIDs[.eot] }
    public var addBOS: Bool? { addSpecialTokens[.bos] }
    public var addEOS: Bool? { addSpecialTokens[.eos] }

    /// Equal content written in the same key order; scores compare by bit pattern.
    public static func == (a: GGUFVocabulary, b: GGUFVocabulary) -> Bool {
        a.model == b.model && a.pre == b.pre && a.tokens == b.tokens
            && a.scores?.map(\.bitPattern) == b.scores?.map(\.bitPattern) && a.tokenTypes == b.tokenTypes
            && a.merges == b.merges && a.specialTokenIDs == b.specialTokenIDs
            && a.addSpecialTokens == b.addSpecialTokens && a.addSpacePrefix == b.addSpacePrefix
            && a.chatTemplate == b.chatTemplate && a.namedChatTemplates == b.namedChatTemplates
            && a.normalizerLowercase == b.normalizerLowercase && a.normalizerStripAccents == b.normalizerStripAccents
            && a.metadataKeys() == b.metadataKeys()
    }
}

/// `tokenizer.ggml.token_type` values (gguf-py `TokenType`, the same numbers as SentencePiece piece types).
public enum GGUFTokenType: Int32, Sendable, CaseIterable {
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// The special-token kinds the converter writes ids for; raw values are the words in the GGUF keys
/// (including gguf-py's spelling `seperator`).
public enum GGUFSpecialToken: String, Sendable, CaseIterable, Hashable {
    case bos
    case eos
    case unknown
    case separator = "seperator"
    case padding
    case mask
    case eot
    case eom

    /// `tokenizer.ggml.<kind>_token_id`.
    public var idKey: String { "tokenizer.ggml.\(rawValue)_token_id" }

    /// `tokenizer.ggml.add_<kind>_token`, for the three kinds that have one.
    public var addKey: String? {
        switch self {
        case .bos: "tokenizer.ggml.add_bos_token"
        case .eos: "tokenizer.ggml.add_eos_token"
        case .separator: "tokenizer.ggml.add_sep_token"
        default: nil
        }
    }

    /// The kind for a Hugging Face / SpecialVocab type name (`bos`, `unk`, `sep`, `pad`, ...).
    init?(huggingFaceType: String) {
        switch huggingFaceType {
        case "bos": self = .bos
        case "eos": self = .eos
        case "unk": self = .unknown
        case "sep": self = .separator
        case "pad": self = .padding
        case "mask": self = .mask
        case "eot": self = .eot
        case "eom": self = .eom
        default: return nil
        }
    }
}

/// A GGUF metadata value of one of the types tokenizer keys use. Each case names its GGUF value type.
public enum TokenizerMetadataValue: Sendable, Equatable {
    /// STRING (type 8).
    case string(String)
    /// BOOL (type 7).
    case bool(Bool)
    /// UINT32 (type 4): token ids.
    case uint32(UInt32)
    /// Any other GGUF integer type, as a reader may find one; never produced by ``GGUFVocabulary/metadata()``.
    case integer(Int64)
    /// ARRAY (type 9) of STRING.
    case stringArray([String])
    /// ARRAY of FLOAT32 (type 6); compared by bit pattern.
    case float32Array([Float])
    /// ARRAY of INT32 (type 5).
    case int32Array([Int32])

    public static func == (a: TokenizerMetadataValue, b: TokenizerMetadataValue) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): x == y
        case (.bool(let x), .bool(let y)): x == y
        case (.uint32(let x), .uint32(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.stringArray(let x), .stringArray(let y)): x == y
        case (.float32Array(let x), .float32Array(let y)): x.map(\.bitPattern) == y.map(\.bitPattern)
        case (.int32Array(let x), .int32Array(let y)): x == y
        default: false
        }
    }
}

/// GGUF key names for the tokenizer metadata (gguf-py `Keys.Tokenizer`).
public enum GGUFTokenizerKey {
    public static let model = "tokenizer.ggml.model"
    public static let pre = "tokenizer.ggml.pre"
    public static let tokens = "tokenizer.ggml.tokens"
    public static let scores = "tokenizer.ggml.scores"
    public static let tokenType = "tokenizer.ggml.token_type"
    public static let merges = "tokenizer.ggml.merges"
    public static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
    public static let chatTemplate = "tokenizer.chat_template"
    public static let chatTemplates = "tokenizer.chat_templates"
    public static let normalizerLowercase = "tokenizer.ggml.normalizer.lowercase"
    public static let normalizerStripAccents = "tokenizer.ggml.normalizer.strip_accents"
    /// `tokenizer.chat_template.<name>`.
    public static func chatTemplate(named name: String) -> String { "tokenizer.chat_template.\(name)" }
}

extension GGUFVocabulary {
    /// Every key this vocabulary writes, in the default order (the converter's, for one source of each).
    private func canonicalEntries() -> [(key: String, value: TokenizerMetadataValue)] {
        typealias K = GGUFTokenizerKey
        var out: [(key: String, value: TokenizerMetadataValue)] = []
        if let addSpacePrefix { out.append((K.addSpacePrefix, .bool(addSpacePrefix))) }
        out.append((K.model, .string(model)))
        if let pre { out.append((K.pre, .string(pre))) }
        // gguf-py skips empty arrays, so an empty list never becomes a key.
        if !tokens.isEmpty { out.append((K.tokens, .stringArray(tokens))) }
        if let scores, !scores.isEmpty { out.append((K.scores, .float32Array(scores))) }
        if !tokenTypes.isEmpty { out.append((K.tokenType, .int32Array(tokenTypes))) }
        if let merges, !merges.isEmpty { out.append((K.merges, .stringArray(merges))) }
        for kind in GGUFSpecialToken.allCases {
            if let id = specialTokenIDs[kind] { out.append((kind.idKey, .uint32(id))) }
        }
        for kind in GGUFSpecialToken.allCases {
            if let key = kind.addKey, let value = addSpecialTokens[kind] { out.append((key, .bool(value))) }
        }
        for named in namedChatTemplates {
            out.append((K.chatTemplate(named: named.name), .string(named.template)))
        }
        if !namedChatTemplates.isEmpty {
            out.append((K.chatTemplates, .stringArray(namedChatTemplates.map(\.name))))
        }
        if let chatTemplate { out.append((K.chatTemplate, .string(chatTemplate))) }
        if let normalizerLowercase { out.append((K.normalizerLowercase, .bool(normalizerLowercase))) }
        if let normalizerStripAccents { out.append((K.normalizerStripAccents, .bool(normalizerStripAccents))) }
        return out
    }

    /// The `tokenizer.*` key/value pairs to write, in order, with the GGUF value types listed on the type.
    public func metadata() -> [(key: String, value: TokenizerMetadataValue)] {
        let entries = canonicalEntries()
        var byKey: [String: TokenizerMetadataValue] = [:]
        for entry in entries { byKey[entry.key] = entry.value }
        var out: [(key: String, value: TokenizerMetadataValue)] = []
        var written = Set<String>()
        for key in keyOrder where !written.contains(key) {
            if let value = byKey[key] {
                out.append((key, value))
                written.insert(key)
            }
        }
        for entry in entries where !written.contains(entry.key) {
            out.append(entry)
            written.insert(entry.key)
        }
        return out
    }

    /// The keys of ``metadata()`` in order.
    public func metadataKeys() -> [String] { metadata().map(\.key) }

    /// Reads the tokenizer keys of a GGUF file. Keys that do not start with `tokenizer.`, and tokenizer keys
    /// this type does not model (e.g. `tokenizer.ggml.precompiled_charsmap`), are ignored. Integers of any GGUF
    /// integer type are accepted for token ids (pass them as ``TokenizerMetadataValue/integer(_:)``).
    ///
    /// - Throws: ``TokenizerError/invalidMetadata(_:)`` when `tokenizer.ggml.model` or the token list is missing,
    ///   a key has the wrong type, array lengths disagree, or a special token id is out of range.
    public init(metadata: [(key: String, value: TokenizerMetadataValue)]) throws(TokenizerError) {
        typealias K = GGUFTokenizerKey
        var values: [String: TokenizerMetadataValue] = [:]
        var order: [String] = []
        for (key, value) in metadata where key.hasPrefix("tokenizer.") {
            if values.updateValue(value, forKey: key) == nil { order.append(key) }
        }
        func string(_ key: String) throws(TokenizerError) -> String? {
            guard let value = values[key] else { return nil }
            guard case .string(let s) = value else { throw .invalidMetadata("\(key) must be a string") }
            return s
        }
        func bool(_ key: String) throws(TokenizerError) -> Bool? {
            guard let value = values[key] else { return nil }
            guard case .bool(let b) = value else { throw .invalidMetadata("\(key) must be a bool") }
            return b
        }
        func strings(_ key: String) throws(TokenizerError) -> [String]? {
            guard let value = values[key] else { return nil }
            guard case .stringArray(let a) = value else { throw .invalidMetadata("\(key) must be an array of strings") }
            return a
        }
        guard let model = try string(K.model) else { throw .invalidMetadata("\(K.model) is missing") }
        guard let tokens = try strings(K.tokens) else { throw .invalidMetadata("\(K.tokens) is missing") }
        var scores: [Float]?
        if let value = values[K.scores] {
            guard case .float32Array(let s) = value else { throw .invalidMetadata("\(K.scores) must be an array of float32") }
            guard s.count == tokens.count else {
                throw .invalidMetadata("\(K.scores) has \(s.count) entries for \(tokens.count) tokens")
            }
            scores = s
        }
        var types: [Int32]
        if let value = values[K.tokenType] {
            guard case .int32Array(let t) = value else { throw .invalidMetadata("\(K.tokenType) must be an array of int32") }
            guard t.count == tokens.count else {
                throw .invalidMetadata("\(K.tokenType) has \(t.count) entries for \(tokens.count) tokens")
            }
            types = t
        } else {
            // llama.cpp treats a missing type array as all-normal.
            types = Array(repeating: GGUFTokenType.normal.rawValue, count: tokens.count)
        }
        var ids: [GGUFSpecialToken: UInt32] = [:]
        var adds: [GGUFSpecialToken: Bool] = [:]
        for kind in GGUFSpecialToken.allCases {
            if let value = values[kind.idKey] {
                let id: UInt32
                switch value {
                case .uint32(let v): id = v
                case .integer(let v):
                    guard let v32 = UInt32(exactly: v) else { throw .invalidMetadata("\(kind.idKey) = \(v) is not a token id") }
                    id = v32
                default: throw .invalidMetadata("\(kind.idKey) must be an integer")
                }
                guard Int(id) < tokens.count else {
                    throw .invalidMetadata("\(kind.idKey) = \(id) is past the \(tokens.count) tokens")
                }
                ids[kind] = id
            }
            if let key = kind.addKey, let value = try bool(key) { adds[kind] = value }
        }
        var named: [NamedChatTemplate] = []
        let prefix = K.chatTemplate + "."
        for key in order where key.hasPrefix(prefix) {
            if let template = try string(key) {
                named.append(NamedChatTemplate(name: String(key.dropFirst(prefix.count)), template: template))
            }
        }
        self.init(model: model, pre: try string(K.pre), tokens: tokens, scores: scores, tokenTypes: types,
                  merges: try strings(K.merges), specialTokenIDs: ids, addSpecialTokens: adds,
                  addSpacePrefix: try bool(K.addSpacePrefix), chatTemplate: try string(K.chatTemplate),
                  namedChatTemplates: named, normalizerLowercase: try bool(K.normalizerLowercase),
                  normalizerStripAccents: try bool(K.normalizerStripAccents), keyOrder: order)
    }
}
