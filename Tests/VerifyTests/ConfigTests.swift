import Formats
import Testing
import Verify

@Suite struct ConfigTests {
    static func parse(_ text: String) throws -> LlamaConfig {
        guard let object = try JSONParser.parse(text).objectValue else { throw VerifyError.missingConfigKey("{}") }
        return try LlamaConfig(hfConfig: object)
    }

    @Test func readsTinyLlamaTransformers5Config() throws {
        let c = try TinyLlama.config()
        #expect(c == LlamaConfig(
            vocabularySize: 128, hiddenSize: 128, intermediateSize: 256, layerCount: 2, headCount: 4, kvHeadCount: 2,
            headDimension: 32, rmsNormEpsilon: 1e-5, ropeTheta: 10000, ropeScaling: .none, tiedEmbeddings: false,
            maxPositions: 256))
        #expect(c.queryDimension == 128 && c.kvDimension == 64)
    }

    /// Llama 3.1's config.json as written by transformers 4.x (rope_theta + rope_scaling).
    @Test func readsTransformers4Llama3Scaling() throws {
        let c = try Self.parse("""
            {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "hidden_act": "silu", "hidden_size": 4096,
             "intermediate_size": 14336, "max_position_embeddings": 131072, "num_attention_heads": 32,
             "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
             "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "rope_theta": 500000.0, "tie_word_embeddings": false, "vocab_size": 128256}
            """)
        #expect(c.headDimension == 128 && c.kvHeadCount == 8 && c.ropeTheta == 500000)
        #expect(c.ropeScaling == .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContextLength: 8192))
    }

    /// SmolLM2-135M (4.x keys, tied, no head_dim) and the transformers 5 spelling of llama3.
    @Test func readsSmolLM2AndTransformers5Llama3() throws {
        let smol = try Self.parse("""
            {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_hidden_layers": 30,
             "num_key_value_heads": 3, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 100000,
             "tie_word_embeddings": true, "vocab_size": 49152, "max_position_embeddings": 8192, "head_dim": null}
            """)
        #expect(smol.headDimension == 64 && smol.tiedEmbeddings && smol.ropeTheta == 100000 && smol.ropeScaling == .none)
        let l32 = try Self.parse("""
            {"hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32, "num_hidden_layers": 16,
             "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "tie_word_embeddings": true,
             "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
            """)
        #expect(l32.ropeScaling == .llama3(factor: 32, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContextLength: 8192))
        #expect(l32.rmsNormEpsilon == 1e-6 && l32.maxPositions == 2048)   // transformers' defaults
        let linear = try Self.parse("""
            {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 1,
             "vocab_size": 10, "rope_scaling": {"type": "linear", "factor": 2}}
            """)
        #expect(linear.ropeScaling == .linear(factor: 2) && linear.kvHeadCount == 4 && linear.ropeTheta == 10000)
    }

    @Test func rejectsWhatTheForwardPassCannotRun() throws {
        let base = #""hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": 10"#
        #expect(throws: VerifyError.missingConfigKey("vocab_size")) {
            try Self.parse(#"{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 1}"#)
        }
        #expect(throws: VerifyError.unsupportedConfig("attention_bias")) { try Self.parse("{\(base), \"attention_bias\": true}") }
        #expect(throws: VerifyError.unsupportedConfig("rope_type yarn")) {
            try Self.parse("{\(base), \"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4}}")
        }
        #expect(throws: VerifyError.unsupportedConfig("rope_type dynamic")) {
            try Self.parse("{\(base), \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4}}")
        }
        #expect(throws: VerifyError.self) { try Self.parse("{\(base), \"hidden_act\": \"gelu\"}") }
        #expect(throws: VerifyError.badConfigValue(key: "vocab_size", reason: "not an integer")) {
            try Self.parse(#"{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 1, "vocab_size": "x"}"#)
        }
        #expect(throws: VerifyError.self) { try Self.parse("{\(base), \"num_key_value_heads\": 3}") }
        #expect(throws: VerifyError.self) { try Self.parse("{\(base), \"head_dim\": 7}") }
        #expect(throws: VerifyError.missingConfigKey("rope_parameters.low_freq_factor")) {
            try Self.parse("{\(base), \"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}}")
        }
        #expect(throws: VerifyError.self) {
            try Self.parse("{\(base), \"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}}")
        }
        #expect(throws: VerifyError.self) { try Self.parse(#"{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 0, "num_hidden_layers": 1, "vocab_size": 10}"#) }
    }
}
