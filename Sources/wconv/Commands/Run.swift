import ArgumentParser
import Formats
import TensorCore
import Verify

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt greedily with a model (a smoke test of a converted model).",
        discussion: """
        MODEL is a Hugging Face directory or a GGUF file of any type wconv reads. The prompt is \
        tokenized with the model's own tokenizer (BOS added as the model asks) and evaluated in \
        one batch; then the most likely next token is appended -n times with the KV cache. \
        Generation stops early at the end-of-sequence token unless --ignore-eos is given.

        --logits writes the float32 logits of every prompt position as a .npy array \
        [positions, vocab]. --adapter applies a PEFT LoRA adapter (adapter_config.json + \
        adapter_model.safetensors) to the weights as they are loaded: W + (alpha/r)·B·A.

        Examples:
          wconv run smollm2.q8_0.gguf --prompt "The capital of France is" -n 16
          wconv run ./tiny-llama --tokens prompt.json -n 0 --logits logits.npy
          wconv run ./Llama-2-7b --adapter ./my-lora --prompt "Hello"
        """)

    @Argument(help: "Model: a Hugging Face directory or a GGUF file.")
    var model: String

    @Option(help: "Prompt text.")
    var prompt: String?

    @Option(help: "JSON file of prompt token ids (an array, or an object with a \"tokens\" array).")
    var tokens: String?

    @Option(name: .short, help: "Tokens to generate.")
    var n = 32

    @Option(help: "Write the logits of every prompt position to this .npy file.")
    var logits: String?

    @Option(help: "PEFT LoRA adapter directory to apply.")
    var adapter: String?

    @Flag(help: "Print JSON: prompt and generated ids and the generated text.")
    var json = false

    @Flag(help: "Keep generating after the end-of-sequence token.")
    var ignoreEos = false

    @Flag(help: "Keep every decoded layer in memory (faster generation, the whole model in float32).")
    var keepWeights = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @Flag(help: "Replace an existing --logits file.")
    var force = false

    func validate() throws {
        if (prompt == nil) == (tokens == nil) { throw ValidationError("Give either --prompt or --tokens.") }
        if n < 0 { throw ValidationError("-n must not be negative.") }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
    }

    func run() throws {
        try runCommand {
            if let path = logits, FileSystem.exists(path), !force {
                throw PathError(path: path, Failure(.cannotWrite, "exists; pass --force to replace it"))
            }
            let checkpoint = try LlamaCheckpoint.open(path: model)
            let tokenizer: Tokenizer?
            let ids: [Int]
            if let prompt {
                let t = try checkpoint.tokenizer()
                tokenizer = t
                ids = t.encode(prompt, addSpecialTokens: true)
            } else {
                tokenizer = try? checkpoint.tokenizer()
                ids = try TokenList.read(path: tokens ?? "")
            }
            guard !ids.isEmpty else { throw Failure(.usage, "the prompt has no tokens") }
            let lora = try adapter.map { try LoRAAdapter(directory: $0) }
            let llama = try checkpoint.model(threads: threads, adapter: lora, keepLayersResident: keepWeights)
            let vocab = checkpoint.config.vocabularySize
            let eos = ignoreEos ? nil : tokenizer?.vocabulary.eosTokenID.map { Int($0) }

            let cache = try llama.makeCache(capacity: ids.count + max(n, 1))
            var step = try llama.forward(tokens: ids, startPosition: 0, cache: cache,
                                         options: ForwardOptions(logits: logits == nil ? .last : .all))
            if let path = logits {
                try NPYArray(floats: step.logits, shape: [ids.count, vocab]).write(to: path, force: force)
            }
            var generated: [Int] = []
            var last = step.row(step.rowCount - 1)
            while generated.count < n {
                let next = LogitMetrics.argmax(last)
                generated.append(next)
                if next == eos || generated.count == n { break }
                step = try llama.forward(tokens: [next], startPosition: cache.count, cache: cache, options: ForwardOptions(logits: .last))
                last = step.row(0)
            }

            let text = tokenizer?.decode(generated)
            if json {
                var object = JSONObject()
                object["prompt_tokens"] = .array(ids.map { .int(Int64($0)) })
                object["tokens"] = .array(generated.map { .int(Int64($0)) })
                object["text"] = text.map { .string($0) } ?? .null
                print(JSONValue.object(object).serialized(.python(indent: 2, sortKeys: false)))
            } else if let text {
                print(text)
            } else {
                print(generated.map(String.init).joined(separator: " "))
            }
        }
    }
}
