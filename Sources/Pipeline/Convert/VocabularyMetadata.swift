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
            return vocabulary.metadata().map { GGUFKeyValue($0.key, $0.value.ggufValue) }
        }
        let vocabulary = try withPath(directory.path) {
            let source = try HFTokenizerSource.load(directory: directory.path)
            return try GGUFVocabulary(huggingFace: source, options: HFVocabularyOptions(pre: vocabPre))
        }
        return vocabulary.metadata().map { GGUFKeyValue($0.key, $0.value.ggufValue) }
    }

    /// The vocabulary held in a GGUF's metadata.
    static func vocabulary(from metadata: GGUFMetadata, path: String) throws -> GGUFVocabulary {
        try withPath(path) { try GGUFVocabulary(gguf: metadata) }
    }

    /// The HF tokenizer files that reproduce a GGUF's vocabulary.
    static func tokenizerFiles(from metadata: GGUFMetadata, path: String) throws -> [(String, [UInt8])] {
        let vocabulary = try vocabulary(from: metadata, path: path)
        return try withPath(path) { try vocabulary.huggingFaceFiles().map { ($0.name, $0.contents) } }
    }
}

extension GGUFVocabulary {
    var bos: Int? { bosTokenID.map(Int.init) }
    var eos: Int? { eosTokenID.map(Int.init) }
    var pad: Int? { paddingTokenID.map(Int.init) }
}
