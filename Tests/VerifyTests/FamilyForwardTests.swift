import Formats
import Testing
import TensorCore
import TestSupport
import Verify

/// The forward pass on the LLaMA-block families of issue 7 (testdata/README.md §8): Qwen2 (q/k/v
/// biases, GGUF `qwen2` stored unpermuted) and Mistral (sliding window). Goldens are transformers'
/// fp32 logits and hidden states, and llama-cpp-python's logits on llama.cpp's converter output.
@Suite struct FamilyForwardTests {
    struct Golden {
        let tokens: [Int]
        let logits: [Float]
        /// `[layers + 2, T, dim]`: embeddings, the residual after each block, the final norm.
        let hidden: NPYArray
        let llamaCppLogits: [Float]?
    }

    static func golden(_ family: String) throws -> Golden {
        let base = "golden/families/\(family)"
        let json = try JSONParser.parse(try Fixtures.data("\(base).tokens.json"))
        let llamaCpp = FileSystem.exists(Fixtures.path("\(base).llamacpp_logits_f32.npy"))
            ? try NPYArray(contentsOf: Fixtures.path("\(base).llamacpp_logits_f32.npy")).floats() : nil
        return Golden(tokens: try TokenList.parse(json),
                      logits: try NPYArray(contentsOf: Fixtures.path("\(base).logits_f32.npy")).floats(),
                      hidden: try NPYArray(contentsOf: Fixtures.path("\(base).hidden_f32.npy")),
                      llamaCppLogits: llamaCpp)
    }

    static func run(_ input: String, tokens: [Int]) throws -> ForwardResult {
        let model = try LlamaCheckpoint.open(path: Fixtures.path(input)).model(threads: 2)
        let cache = try model.makeCache(capacity: tokens.count)
        return try model.forward(tokens: tokens, startPosition: 0, cache: cache,
                                 options: ForwardOptions(logits: .all, captureHiddenStates: true))
    }

    /// Logits and every hidden state equal transformers' to 1e-4 of their range.
    @Test(arguments: [
        ("qwen2", "families/qwen2"),
        ("qwen2", "golden/families/qwen2.f32.gguf"),
        ("mistral", "families/mistral"),
    ])
    func matchesTransformers(family: String, input: String) throws {
        let golden = try Self.golden(family)
        let result = try Self.run(input, tokens: golden.tokens)
        let logits = Array(result.logits.prefix(result.rowCount * result.vocabularySize))
        #expect(logits.count == golden.logits.count)
        let worst = maxAbsDifference(logits, golden.logits)
        #expect(worst <= 1e-4 * valueRange(golden.logits), "\(input): max |Δlogit| \(worst)")

        let hidden = try #require(result.hiddenStates)
        let states = [hidden.embeddings] + hidden.afterLayer + [hidden.finalNormed]
        let expected = golden.hidden.floats()
        let stride = golden.hidden.shape.dropFirst().reduce(1, *)
        #expect(states.count == golden.hidden.shape[0])
        for (i, state) in states.enumerated() where i < golden.hidden.shape[0] {
            let reference = Array(expected[i * stride ..< (i + 1) * stride])
            let error = maxAbsDifference(state, reference)
            #expect(error <= 1e-4 * valueRange(reference), "\(input): hidden state \(i): max |Δ| \(error)")
        }
    }

    /// llama.cpp's converter drops Mistral's `sliding_window` and llama.cpp attends to the whole
    /// prefix, so the GGUF runs full attention: equal to llama.cpp everywhere, and to
    /// transformers only while the prefix fits in the window (positions 0–7 of window 8).
    @Test func mistralGGUFRunsLlamaCppSemantics() throws {
        let golden = try Self.golden("mistral")
        let result = try Self.run("golden/families/mistral.f32.gguf", tokens: golden.tokens)
        let logits = Array(result.logits.prefix(result.rowCount * result.vocabularySize))
        let llamaCpp = try #require(golden.llamaCppLogits)
        #expect(maxAbsDifference(logits, llamaCpp) <= 1e-4 * valueRange(llamaCpp))
        let vocab = result.vocabularySize, window = 8
        let inside = maxAbsDifference(logits.prefix(window * vocab), golden.logits.prefix(window * vocab))
        #expect(inside <= 1e-4 * valueRange(golden.logits))
        let beyond = maxAbsDifference(logits.dropFirst(window * vocab), golden.logits.dropFirst(window * vocab))
        #expect(beyond > 1e-2 * valueRange(golden.logits), "the window should matter beyond position 8")
    }

    /// Qwen2's GGUF also agrees with llama.cpp's own logits on it.
    @Test func qwen2GGUFMatchesLlamaCpp() throws {
        let golden = try Self.golden("qwen2")
        let result = try Self.run("golden/families/qwen2.f32.gguf", tokens: golden.tokens)
        let llamaCpp = try #require(golden.llamaCppLogits)
        let logits = Array(result.logits.prefix(result.rowCount * result.vocabularySize))
        #expect(maxAbsDifference(logits, llamaCpp) <= 1e-4 * valueRange(llamaCpp))
    }

    /// Feeding Mistral token by token (the cached path) gives the batch's windowed logits.
    @Test func mistralWindowHoldsTokenByToken() throws {
        let golden = try Self.golden("mistral")
        let model = try LlamaCheckpoint.open(path: Fixtures.path("families/mistral")).model(threads: 2)
        #expect(model.config.slidingWindow == 8)
        let cache = try model.makeCache(capacity: golden.tokens.count)
        var logits: [Float] = []
        for (i, token) in golden.tokens.enumerated() {
            let step = try model.forward(tokens: [token], startPosition: i, cache: cache)
            logits += step.row(0)
        }
        #expect(maxAbsDifference(logits, golden.logits) <= 1e-4 * valueRange(golden.logits))
    }

    /// Qwen2's own sliding window (per layer) is refused rather than run wrong.
    @Test func qwen2SlidingWindowIsRefused() throws {
        var object = try #require(try JSONParser.parse(try Fixtures.data("families/qwen2/config.json")).objectValue)
        #expect(try LlamaConfig(hfConfig: object).attentionBias)
        object["use_sliding_window"] = .bool(true)
        #expect(throws: VerifyError.self) { try LlamaConfig(hfConfig: object) }
    }
}
