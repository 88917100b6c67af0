import Foundation
import Formats
import Testing
import TensorCore
import TestSupport
import Verify

/// The forward pass on the families of issue 7 (testdata/README.md §8): the LLaMA-block ones, Qwen2
/// (q/k/v biases, GGUF `qwen2` stored unpermuted) and Mistral (sliding window), and the other
/// blocks: GPT-2, OPT, phi-1.5, Falcon 7B/40B, MPT, Baichuan 2 7B/13B, Qwen-7B, Persimmon. Goldens
/// are transformers' fp32 logits and hidden states (the fixture script's reference forward for the
/// remote-code families), and llama-cpp-python's logits on llama.cpp's converter output.
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
        ("gpt2", "families/gpt2"),
        ("opt", "families/opt"),
        ("phi-1_5", "families/phi-1_5"),
        ("falcon-7b", "families/falcon-7b"),
        ("falcon-40b", "families/falcon-40b"),
        ("mpt", "families/mpt"),
        ("baichuan2-7b", "families/baichuan2-7b"),
        ("baichuan2-13b", "families/baichuan2-13b"),
        ("qwen-7b", "families/qwen-7b"),
        ("qwen-7b", "golden/families/qwen-7b.f32.gguf"),
        ("persimmon", "families/persimmon"),
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

    /// Each family's GGUF (llama.cpp's converter output) agrees with llama.cpp's own logits on it.
    @Test(arguments: ["qwen2", "gpt2", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "baichuan2-7b", "baichuan2-13b", "qwen-7b"])
    func ggufMatchesLlamaCpp(family: String) throws {
        let golden = try Self.golden(family)
        let result = try Self.run("golden/families/\(family).f32.gguf", tokens: golden.tokens)
        let llamaCpp = try #require(golden.llamaCppLogits)
        let logits = Array(result.logits.prefix(result.rowCount * result.vocabularySize))
        let worst = maxAbsDifference(logits, llamaCpp)
        #expect(worst <= 1e-4 * valueRange(llamaCpp), "\(family): max |Δlogit| \(worst)")
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

    /// The cached path (one token per call: the vector attention loop, positions from the
    /// start offset) gives the batch's logits for learned positions, ALiBi, partial rotary and
    /// a parallel block.
    @Test(arguments: ["gpt2", "opt", "mpt", "persimmon", "falcon-40b", "baichuan2-13b"])
    func tokenByTokenMatchesTransformers(family: String) throws {
        let golden = try Self.golden(family)
        let model = try LlamaCheckpoint.open(path: Fixtures.path("families/\(family)")).model(threads: 2)
        let cache = try model.makeCache(capacity: golden.tokens.count)
        var logits: [Float] = []
        for (i, token) in golden.tokens.enumerated() {
            logits += try model.forward(tokens: [token], startPosition: i, cache: cache).row(0)
        }
        #expect(maxAbsDifference(logits, golden.logits) <= 1e-4 * valueRange(golden.logits))
    }

    /// Learned position tables end: a context beyond them is refused, not read out of bounds.
    @Test func learnedPositionsBeyondTheTableAreRefused() throws {
        let model = try LlamaCheckpoint.open(path: Fixtures.path("families/gpt2")).model(threads: 1)
        let cache = try model.makeCache(capacity: 80)
        #expect(throws: VerifyError.contextOverflow(needed: 65, capacity: 64)) {
            try model.forward(tokens: Array(repeating: 5, count: 65), startPosition: 0, cache: cache)
        }
    }

    /// A family checkpoint whose tensors disagree with its config is refused naming the stored
    /// tensor: OPT claiming a narrower MLP than `fc1` has; GPT-2 claiming a layer it lacks.
    @Test func familyTensorMismatchesAreNamed() throws {
        for (family, edit, message) in [
            ("opt", ("\"ffn_dim\": 256", "\"ffn_dim\": 128"), "model.decoder.layers.0.fc1.weight"),
            ("gpt2", ("\"n_layer\": 2", "\"n_layer\": 3"), "no tensor 'transformer.h.2.attn.c_attn."),
        ] {
            let dir = Fixtures.temporaryDirectory("wconv-family-\(family)")
            let source = Fixtures.path("families/\(family)")
            try FileManager.default.copyItem(atPath: source + "/model.safetensors", toPath: dir + "/model.safetensors")
            let config = try String(contentsOfFile: source + "/config.json", encoding: .utf8)
            #expect(config.contains(edit.0))
            try Data(config.replacingOccurrences(of: edit.0, with: edit.1).utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
            do {
                _ = try LlamaCheckpoint.open(path: dir).model(threads: 1).logits(for: [1, 2, 3])
                Issue.record("\(family): a mismatched checkpoint was accepted")
            } catch let error as PathError {
                #expect(error.kind == .malformedInput)
                #expect("\(error)".contains(message), "\(error)")
            }
        }
    }

    /// Qwen2's own sliding window (per layer) is refused rather than run wrong.
    @Test func qwen2SlidingWindowIsRefused() throws {
        var object = try #require(try JSONParser.parse(try Fixtures.data("families/qwen2/config.json")).objectValue)
        #expect(try LlamaConfig(hfConfig: object).attentionBias)
        object["use_sliding_window"] = .bool(true)
        #expect(throws: VerifyError.self) { try LlamaConfig(hfConfig: object) }
    }
}
