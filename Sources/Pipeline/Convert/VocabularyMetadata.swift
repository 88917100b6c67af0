public import TensorCore
public import Formats

/// The tokenizer part of a conversion: HF tokenizer files ⇄ GGUF `tokenizer.*` keys.
enum VocabularyMetadata {
    /// The `tokenizer.*` entries for an HF directory, in the converter's order.
    static func entries(directory: HFModelDirectory, vocabPre: String?,
                        source: ArchitectureDescription.VocabularySource = .huggingFace) throws -> [GGUFKeyValue] {
        if source == .qwenTiktoken {
            let tokenizerConfig = directory.path(of: "tokenizer_config.json")
            let vocabulary = try QwenTiktokenVocabulary.load(
                directory: directory.path, vocabSize: withPath(directory.path(of: "config.json")) { try directory.config.vocabSize },
                pre: vocabPre, config: directory.config.object,
                tokenizerConfig: FileSystem.exists(tokenizerConfig) ? HFConfig(path: tokenizerConfig).object : nil)
            return vocabulary.metadata().map { GGUFKeyValue($0.key, ggufValue($0.value)) }
        }
        let vocabulary = try withPath(directory.path) {
            let source = try HFTokenizerSource.load(directory: directory.path)
            return try GGUFVocabulary(huggingFace: source, options: HFVocabularyOptions(pre: vocabPre))
        }
        return vocabulary.metadata().map { GGUFKeyValue($0.key, ggufValue($0.value)) }
    }

    /// The vocabulary held in a GGUF's metadata.
    static func vocabulary(from metadata: GGUFMetadata, path: String) throws -> GGUFVocabulary {
        let pairs = metadata.entries.compactMap { kv -> (key: String, value: TokenizerMetadataValue)? in
            guard kv.key.hasPrefix("tokenizer.") else { return nil }
            return tokenizerValue(kv.value).map { (kv.key, $0) }
        }
        return try withPath(path) { try GGUFVocabulary(metadata: pairs) }
    }

    /// The HF tokenizer files that reproduce a GGUF's vocabulary.
    static func tokenizerFiles(from metadata: GGUFMetadata, path: String) throws -> [(String, [UInt8])] {
        let vocabulary = try vocabulary(from: metadata, path: path)
        return try withPath(path) { try vocabulary.huggingFaceFiles().map { ($0.name, $0.contents) } }
    }

    static func ggufValue(_ v: TokenizerMetadataValue) -> GGUFValue {
        switch v {
        case .string(let s): .string(s)
        case .bool(let b): .bool(b)
        case .uint32(let u): .uint32(u)
        case .integer(let i): .int64(i)
        case .stringArray(let a): .array(.string(GGUFStringList(a)))
        case .float32Array(let a): .array(.float32(a))
        case .int32Array(let a): .array(.int32(a))
        }
    }

    static func tokenizerValue(_ v: GGUFValue) -> TokenizerMetadataValue? {
        switch v {
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .uint32(let u): return .uint32(u)
        case .array(let a):
            switch a {
            case .string(let list): return .stringArray(Array(list))
            case .float32(let f): return .float32Array(f)
            case .int32(let i): return .int32Array(i)
            default: return a.integers.map { .int32Array($0.map { Int32(truncatingIfNeeded: $0) }) }
            }
        default:
            return v.intValue.map { .integer(Int64($0)) }
        }
    }
}

extension GGUFVocabulary {
    var bos: Int? { bosTokenID.map(Int.init) }
    var eos: Int? { eosTokenID.map(Int.init) }
    var pad: Int? { paddingTokenID.map(Int.init) }
}
