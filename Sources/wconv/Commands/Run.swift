import ArgumentParser
import Formats
import TensorCore
import Verify
#if canImport(Glibc)
import Glibc
#endif

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

        --json also reports timings: prompt_eval_seconds is the wall time of the one forward \
        call over the prompt (streaming every layer's weights from the file into float32, the \
        layers, the output head for the rows asked for), prompt_eval_cpu_seconds the CPU time \
        of all threads in it; opening the model and loading the tokenizer are not included. \
        `-n 0` evaluates the prompt only.

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

    // The generated text goes on stdout, which --quiet leaves alone; run prints no status lines.
    @OptionGroup var reporting: OutputOptions<RunJSON>

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
            let clock = ContinuousClock()
            let promptStart = clock.now, promptCPUStart = processCPUSeconds()
            var step = try llama.forward(tokens: ids, startPosition: 0, cache: cache,
                                         options: ForwardOptions(logits: logits == nil ? .last : .all))
            let promptSeconds = ReleaseFormat.seconds(clock.now - promptStart), promptCPU = processCPUSeconds() - promptCPUStart
            let generationStart = clock.now
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

            let generationSeconds = ReleaseFormat.seconds(clock.now - generationStart)
            let text = tokenizer?.decode(generated)
            if reporting.json {
                var object = JSONObject()
                object["prompt_tokens"] = .array(ids.map { .int(Int64($0)) })
                object["tokens"] = .array(generated.map { .int(Int64($0)) })
                object["text"] = text.map { .string($0) } ?? .null
                var timings = JSONObject()
                timings["prompt_eval_seconds"] = .double(promptSeconds)
                timings["prompt_eval_cpu_seconds"] = .double(promptCPU)
                timings["prompt_tokens_per_second"] = .double(Double(ids.count) / max(promptSeconds, 1e-9))
                timings["generation_seconds"] = .double(generationSeconds)
                timings["threads"] = .int(Int64(threads))
                object["timings"] = .object(timings)
                print(JSONValue.object(object).serialized(.python(indent: 2, sortKeys: false)))
            } else if let text {
                print(text)
            } else {
                print(generated.map(String.init).joined(separator: " "))
            }
        }
    }
}

/// CPU time (user + system) of every thread of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    func value(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return value(usage.ru_utime) + value(usage.ru_stime)
}

/// `run --json`.
enum RunJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "Print JSON: prompt and generated ids and the generated text." }
}
