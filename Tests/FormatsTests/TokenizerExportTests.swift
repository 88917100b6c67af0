import Foundation
import Formats
import TensorCore
import TestSupport
import Testing

/// Writes a vocabulary's HF files (plus the config.json a caller would write) into a fresh directory.
func writeHuggingFaceDirectory(_ vocabulary: GGUFVocabulary, label: String) throws -> String {
    let dir = Fixtures.temporaryDirectory(label)
    for file in try vocabulary.huggingFaceFiles() {
        try Data(file.contents).write(to: URL(fileURLWithPath: dir + "/" + file.name))
    }
    var config = JSONObject([("architectures", ["LlamaForCausalLM"]), ("model_type", "llama"),
                             ("vocab_size", .int(Int64(vocabulary.tokens.count)))])
    for (key, id) in vocabulary.huggingFaceConfigTokenIDs() { config[key] = .int(Int64(id)) }
    try Data(JSONValue.object(config).serialized(.python(indent: 2, sortKeys: false)).utf8)
        .write(to: URL(fileURLWithPath: dir + "/config.json"))
    return dir
}

/// The Python of the venv the project's helpers build, when it has transformers and sentencepiece.
enum PythonOracle {
    static let python: String? = {
        let env = ProcessInfo.processInfo.environment
        let candidate = env["WCONV_PYTHON"]
            ?? (env["HOME"].map { $0 + "/.cache/wconv/venv/bin/python" } ?? "")
        guard FileManager.default.isExecutableFile(atPath: candidate) else { return nil }
        return run(candidate, ["-c", "import transformers, sentencepiece, tokenizers"]) == 0 ? candidate : nil
    }()

    static var isAvailable: Bool { python != nil }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        } catch {
            return -1
        }
    }
}

@Suite struct TokenizerExportTests {
    /// GGUF → HF → GGUF: the files we write convert back (with the converter's rules, as implemented here)
    /// to the same vocabulary.
    @Test(arguments: ConverterGolden.cases)
    func convertsBackToTheSameVocabulary(name: String) throws {
        let golden = try ConverterGolden(name)
        let original = try GGUFVocabulary(metadata: try golden.entries())
        let dir = try writeHuggingFaceDirectory(original, label: "wconv-tok-\(name)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let back = try GGUFVocabulary(huggingFace: try HFTokenizerSource.load(directory: dir))

        #expect(back.model == original.model && back.pre == original.pre)
        #expect(back.tokens == original.tokens)
        #expect(back.tokenTypes == original.tokenTypes)
        #expect(back.scores?.map(\.bitPattern) == original.scores?.map(\.bitPattern))
        #expect(back.merges == original.merges)
        #expect(back.chatTemplate == original.chatTemplate && back.namedChatTemplates == original.namedChatTemplates)
        #expect(back.addSpacePrefix == original.addSpacePrefix)
        // SentencePiece special ids come back through config.json, which carries bos/eos/pad only.
        var expectedIDs = original.specialTokenIDs
        if original.model == "llama" { expectedIDs[.unknown] = nil }
        #expect(back.specialTokenIDs == expectedIDs)
        // Add flags: the same decisions, with llama.cpp's defaults where the GGUF had none.
        let defaults: (bos: Bool, eos: Bool) = original.model == "llama" ? (true, false) : (false, false)
        #expect((back.addBOS ?? defaults.bos) == (original.addBOS ?? defaults.bos))
        #expect((back.addEOS ?? defaults.eos) == (original.addEOS ?? defaults.eos))
    }

    @Test func byteLevelBPERoundTripIsExactToTheKeyOrder() throws {
        for name in ["bpe-smollm", "bpe-llama3", "bpe-gpt2", "bpe-qwen2"] {
            let original = try GGUFVocabulary(metadata: try ConverterGolden(name).entries())
            let dir = try writeHuggingFaceDirectory(original, label: "wconv-tok-\(name)")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let back = try GGUFVocabulary(huggingFace: try HFTokenizerSource.load(directory: dir))
            expectSameMetadata(back.metadata(), original.metadata())
        }
    }

    @Test func sentencePieceFileCarriesTheVocabulary() throws {
        let original = try GGUFVocabulary(metadata: try ConverterGolden("spm-extras").entries())
        let files = try original.huggingFaceFiles()
        #expect(files.map(\.name) == ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"])
        let model = try SentencePieceModel(parsing: files[0].contents)
        #expect(model.pieces.count == original.tokens.count)
        // User-defined tokens get their `▁` back; the unknown id is the unknown piece even though the converter
        // made `<unk>` a control token.
        #expect(model.pieces[129].piece == "<tool\u{2581}call>" && model.pieces[129].type == .userDefined)
        #expect(model.pieces[0].type == .unknown)
        #expect(model.trainerSpec?.modelType == .bpe)
        #expect(model.trainerSpec?.unkID == 0 && model.trainerSpec?.bosID == 1 && model.trainerSpec?.eosID == 2)
        #expect(model.trainerSpec?.padID == -1)  // the pad id doubles as unk
        #expect(model.trainerSpec?.byteFallback == false)
        #expect(model.normalizerSpec?.name == "identity" && model.normalizerSpec?.addDummyPrefix == false)

        let config = try JSONParser.parse(files[1].contents)
        #expect(config["tokenizer_class"] == nil)
        #expect(config["add_bos_token"] == true && config["add_eos_token"] == false)
        // Only the HF added tokens (score -1000) are listed, not SentencePiece's own control pieces.
        #expect(config["added_tokens_decoder"]?.objectValue?.keys == ["0", "1", "2", "128", "129", "131"])
        #expect(config["added_tokens_decoder"]?["129"]?["content"] == "<tool call>")
        #expect(config["added_tokens_decoder"]?["129"]?["special"] == false)

        let byteModel = try SentencePieceModel(parsing: try GGUFVocabulary(
            metadata: try ConverterGolden("spm-bytefallback").entries()).huggingFaceFiles()[0].contents)
        #expect(byteModel.trainerSpec?.byteFallback == true)
        #expect(byteModel.trainerSpec?.padID == 3)
    }

    @Test func byteLevelFilesRebuildTheLlama3Tokenizer() throws {
        let original = try GGUFVocabulary(metadata: try ConverterGolden("bpe-llama3").entries())
        let files = try original.huggingFaceFiles()
        #expect(files.map(\.name) == ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"])
        let tokenizer = try JSONParser.parse(files[0].contents)
        #expect(tokenizer["model"]?["ignore_merges"] == true)
        #expect(tokenizer["model"]?["merges"]?.arrayValue?.first == ["\u{0120}", "a"])
        #expect(tokenizer["pre_tokenizer"]?["pretokenizers"]?.arrayValue?.first?["pattern"]?["Regex"]?.stringValue
            == BPEPreTokenizer.llama3Pattern)
        #expect(tokenizer["post_processor"]?["processors"]?.arrayValue?.last?["single"]?.arrayValue?.count == 2)
        #expect(tokenizer["added_tokens"]?.arrayValue?.count == 4)
        let config = try JSONParser.parse(files[1].contents)
        #expect(config["chat_template"]?.arrayValue?.map { $0["name"] } == ["default", "tool_use"])
        #expect(config["eos_token"] == "<|eot_id|>")
    }

    @Test func rejectsWhatCannotBeRebuilt() throws {
        var v = try GGUFVocabulary(metadata: try ConverterGolden("bpe-gpt2").entries())
        v.pre = "deepseek-llm"
        #expect(throws: TokenizerError.unsupportedPreTokenizerName("deepseek-llm")) { try v.huggingFaceFiles() }
        v.pre = "gpt-2"
        v.merges = ["nospace"]
        #expect(throws: TokenizerError.invalidMetadata("merge 0 \"nospace\" has no space between its two parts")) {
            try v.huggingFaceFiles()
        }
        v = try GGUFVocabulary(metadata: try ConverterGolden("bpe-gpt2").entries())
        v.tokens[5] = v.tokens[6]
        #expect(throws: TokenizerError.self) { try v.huggingFaceFiles() }
        v.model = "bert"
        #expect(throws: TokenizerError.self) { try v.huggingFaceFiles() }

        var spm = try GGUFVocabulary(metadata: try ConverterGolden("spm-tiny-llama").entries())
        spm.tokenTypes[0] = GGUFTokenType.control.rawValue
        #expect(throws: TokenizerError.self) { try spm.huggingFaceFiles() }  // no unknown token left
        spm.tokenTypes[0] = 9
        spm.specialTokenIDs[.unknown] = 0
        #expect(throws: TokenizerError.invalidMetadata("token 0 has type 9, not one of 1...6")) { try spm.huggingFaceFiles() }
    }

    /// transformers loads the written files and encodes the sample texts to the ids the original HF tokenizer
    /// gave (recorded in the goldens); sentencepiece loads tokenizer.model with the GGUF's pieces. Runs only
    /// where the project's Python venv exists (`WCONV_PYTHON`, or ~/.cache/wconv/venv), all cases in one
    /// Python process.
    @Test(.enabled(if: PythonOracle.isAvailable))
    func transformersLoadsTheWrittenFiles() throws {
        let python = try #require(PythonOracle.python)
        var arguments = [Fixtures.path("scripts/check_hf_tokenizer.py")]
        var directories: [String] = []
        for name in ConverterGolden.cases {
            let original = try GGUFVocabulary(metadata: try ConverterGolden(name).entries())
            let dir = try writeHuggingFaceDirectory(original, label: "wconv-tok-\(name)")
            directories.append(dir)
            arguments += [dir, Fixtures.path("golden/tokenizer/\(name).json")]
        }
        let status = PythonOracle.run(python, arguments)
        // The directories are kept on failure, so the check can be rerun by hand.
        #expect(status == 0, "failed: \(python) \(arguments.joined(separator: " "))")
        if status == 0 {
            for dir in directories { try? FileManager.default.removeItem(atPath: dir) }
        }
    }
}
