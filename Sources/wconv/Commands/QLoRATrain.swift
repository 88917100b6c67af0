public import ArgumentParser
import Finetune
import Formats
import Pipeline
import TensorCore
import Verify
#if canImport(Glibc)
import Glibc
#endif

extension LearningRateSchedule.Kind: ExpressibleByArgument {}

/// How the frozen base is held during training.
enum BasePrecision: String, ExpressibleByArgument, CaseIterable {
    /// bitsandbytes NF4 with double quantization (QLoRA); 4-bit checkpoints stay as stored.
    case nf4
    /// float32 (f16/bf16 upcast exactly; 4-bit checkpoints dequantized).
    case f32
}

struct QLoRATrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qlora-train",
        abstract: "Train a LoRA adapter on a frozen (NF4) base model.",
        discussion: """
        BASE is a Hugging Face directory (f32/f16/bf16, or a bitsandbytes NF4 checkpoint) or a \
        GGUF file. With --base-precision nf4 (the default, QLoRA) the projection matrices are \
        held in NF4 with double quantization and dequantized one layer at a time; the adapters \
        (A, B on every targeted projection of every layer) train in float32 with AdamW.

        --data is a JSONL file, one record per line: {"text": …}, Alpaca {"instruction", \
        "input", "output"}, or chat {"messages": [{"role", "content"}, …]} rendered with the \
        model's chat template (ChatML, Llama 2, Llama 3, Alpaca or Vicuna; --template to choose \
        one). The loss is taken on the replies only unless --train-on-prompt; examples are cut to \
        --max-len tokens. A bad line stops with its line number (exit 65).

        The adapter is written to ADAPTER_DIR in PEFT's format (adapter_config.json, \
        adapter_model.safetensors), loadable with peft.PeftModel.from_pretrained and usable with \
        `wconv qlora-merge` and `wconv convert-adapter`. --save-every N writes \
        ADAPTER_DIR/checkpoint-N (adapter, optimizer state, data position); --resume continues \
        from the latest one and reaches the same adapter as an uninterrupted run.

        Progress: one line on a terminal (step, loss, tokens/s, ETA); NDJSON events on stdout \
        when stdout is not a terminal or with --json. --quiet silences stderr (the progress line \
        and the human summary), not the events on stdout.

        Examples:
          wconv qlora-train ./SmolLM2-135M --data chat.jsonl -o ./smol-lora --epochs 2
          wconv qlora-train ./llama-nf4 --data alpaca.jsonl -o ./lora --steps 500 --lr 1e-4 \\
              --schedule cosine --warmup 20 --batch 2 --grad-accum 8 --save-every 100
        """)

    @Argument(help: "The base model: HF directory or GGUF file.")
    var base: String

    @Option(help: "Training data (JSONL).")
    var data: String

    @Option(name: .shortAndLong, help: "Adapter output directory.")
    var output: String

    @Option(help: "LoRA rank r.")
    var rank: Int = 8

    @Option(help: "LoRA alpha (scaling alpha/r).")
    var alpha: Double = 16

    @Option(help: "Dropout on the adapters' input.")
    var dropout: Double = 0.05

    @Flag(help: "rsLoRA scaling alpha/√r.")
    var rslora = false

    @Option(help: "Comma-separated modules to adapt, PEFT's names (`q_proj,v_proj`), `all-linear` (the default: every linear layer of the family's block, all seven for LLaMA) or `peft-default` (PEFT's default targets for the family).")
    var targets: String?

    @Option(help: "Peak learning rate.")
    var lr: Double = 2e-4

    @Option(help: "Learning-rate schedule: constant, linear or cosine.")
    var schedule: LearningRateSchedule.Kind = .constant

    @Option(help: "Linear warmup steps.")
    var warmup: Int = 0

    @Option(help: "Passes over the data (default 1; not with --steps).")
    var epochs: Double?

    @Option(help: "Optimizer steps (instead of --epochs).")
    var steps: Int?

    @Option(help: "Examples per micro-batch.")
    var batch: Int = 1

    @Option(help: "Micro-batches per optimizer step.")
    var gradAccum: Int = 1

    @Option(help: "Clip the global gradient norm (0: off).")
    var maxGradNorm: Double = 1.0

    @Option(help: "AdamW weight decay.")
    var weightDecay: Double = 0

    @Option(help: "Keep at most this many tokens per example (default: min(1024, the model's context)).")
    var maxLen: Int?

    @Option(help: "Seed of the adapter init, data order and dropout.")
    var seed: UInt64 = 42

    @Option(help: "Held-out JSONL data; its loss is reported at every checkpoint and at the end.")
    var evalData: String?

    @Option(help: "Write a checkpoint every N steps (0: none).")
    var saveEvery: Int = 0

    @Flag(help: "Continue from the latest checkpoint in the output directory.")
    var resume = false

    @Flag(help: "Recompute each layer's activations in the backward pass (less memory, ~1/3 more time).")
    var recompute = false

    @Option(help: "How the frozen base is held: nf4 (QLoRA) or f32.")
    var basePrecision: BasePrecision = .nf4

    @Option(help: "Chat template for chat records: \(ChatTemplate.names.joined(separator: ", ")) (default: recognised from the model).")
    var template: String?

    @Flag(help: "Take the loss on prompts too, not only on replies.")
    var trainOnPrompt = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @OptionGroup var reporting: OutputOptions<TrainJSON>

    @Flag(help: "Start over: replace an existing output directory and its checkpoints.")
    var force = false

    func validate() throws {
        if epochs != nil && steps != nil { throw ValidationError("give --epochs or --steps, not both.") }
        if let e = epochs, !(e > 0) { throw ValidationError("--epochs must be positive.") }
        if let s = steps, s < 1 { throw ValidationError("--steps must be at least 1.") }
        if rank < 1 { throw ValidationError("--rank must be at least 1.") }
        if !(dropout >= 0 && dropout < 1) { throw ValidationError("--dropout must be in [0, 1).") }
        if batch < 1 || gradAccum < 1 { throw ValidationError("--batch and --grad-accum must be at least 1.") }
        if warmup < 0 || saveEvery < 0 { throw ValidationError("--warmup and --save-every must be ≥ 0.") }
        if let m = maxLen, m < 2 { throw ValidationError("--max-len must be at least 2.") }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
        if let t = template, ChatTemplate.named(t) == nil {
            throw ValidationError("--template must be one of \(ChatTemplate.names.joined(separator: ", ")).")
        }
        if resume && force { throw ValidationError("--resume continues the run in the output directory; --force would start over.") }
    }

    func run() throws {
        try runCommand {
            let events = EventSink(ndjson: reporting.json || isatty(1) == 0, progressLine: isatty(2) != 0, quiet: reporting.quiet)

            // Output directory: new, or continued with --resume.
            let latest = FileSystem.isDirectory(output) ? Self.latestCheckpoint(in: output) : nil
            if FileSystem.exists(output) && !resume && !force {
                throw PathError(path: output, Failure(.cannotWrite, "already exists (use --resume to continue its run, or --force to start over)"))
            }
            if resume && latest == nil {
                throw PathError(path: output, Failure(.usage, "no checkpoint-N directory to resume from (train with --save-every N)"))
            }

            // Base, tokenizer, chat template.
            let loaded = try Self.loadBase(base, precision: basePrecision, threads: threads)
            let config = loaded.config
            let lora = LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, useRSLoRA: rslora,
                                  targets: try loaded.targetNames.resolve(targets).flatMap { name in
                                      // The family's PEFT names (OPT's `fc1`, GPT-2's `c_proj`) to the trainer's projections.
                                      let t = LoRATarget.targets(peftName: name, family: config.family).map(\.rawValue)
                                      return t.isEmpty ? [name] : t
                                  })
            try lora.validate()
            var dataOptions = DataOptions(template: template.flatMap(ChatTemplate.named), trainOnPrompt: trainOnPrompt,
                                          maxLength: min(maxLen ?? 1024, config.maxPositions))
            dataOptions.maxLength = min(dataOptions.maxLength ?? config.maxPositions, config.maxPositions)
            let encoder = ExampleEncoder(tokenizer: loaded.tokenizer, templateText: loaded.chatTemplate, options: dataOptions)
            let training = try TrainingDataReader.load(path: data, encoder: encoder)
            let evaluation = try evalData.map { try TrainingDataReader.load(path: $0, encoder: encoder) }

            let perStep = batch * gradAccum
            let totalSteps = steps ?? TrainingOptions.steps(epochs: epochs ?? 1, exampleCount: training.examples.count, examplesPerStep: perStep)
            let options = TrainingOptions(
                optimizer: AdamWConfig(learningRate: lr, weightDecay: weightDecay), schedule: schedule, warmupSteps: warmup,
                totalSteps: totalSteps, batchSize: batch, gradientAccumulation: gradAccum,
                maxGradientNorm: maxGradNorm > 0 ? maxGradNorm : nil, seed: seed)
            let initial = try LoRAWeights(zeroBFor: config, lora: lora, seed: seed)
            let model = try LoRAModel(base: loaded.weights, config: config, adapter: initial, threadCount: threads, recompute: recompute)
            let trainer: LoRATrainer
            if resume, let latest {
                trainer = try LoRATrainer.resume(from: latest, model: model, examples: training.examples)
            } else {
                trainer = try LoRATrainer(model: model, options: options, examples: training.examples)
            }
            let baseName = loaded.baseName
            func writeAdapter(into directory: String) throws {
                let adapter = try model.adapter
                let peft = PEFTLoRAConfig(adapter.loraConfig, baseModelNameOrPath: baseName, family: config.family)
                try PEFTAdapterWriter.writeFiles(config: peft, entries: PEFTAdapterWriter.entries(adapter), into: directory)
            }

            events.start(JSONObject([
                ("event", "start"), ("base", .string(base)), ("examples", .int(Int64(training.examples.count))),
                ("tokens", .int(Int64(training.tokenCount))), ("target_tokens", .int(Int64(training.targetCount))),
                ("skipped", .int(Int64(training.skippedCount))), ("truncated", .int(Int64(training.truncatedCount))),
                ("template", training.template.map { .string($0.kind.rawValue) } ?? .null),
                ("steps", .int(Int64(trainer.options.totalSteps))), ("start_step", .int(Int64(trainer.completedSteps))),
                ("trainable_parameters", .int(Int64(model.parameterCount))), ("base_precision", .string(basePrecision.rawValue)),
            ]), human: "training \(model.parameterCount) adapter parameters on \(training.examples.count) examples (\(training.targetCount) target tokens), \(trainer.options.totalSteps) steps"
                + (trainer.completedSteps > 0 ? ", resuming at step \(trainer.completedSteps)" : ""))

            if force && FileSystem.exists(output) {
                // Start over: an empty directory replaces the old one, checkpoints included, so a
                // later --resume cannot pick up a checkpoint of the previous run.
                try AtomicOutput.directory(at: output, force: true).commit()
            }
            if !FileSystem.exists(output) { try Self.makeDirectory(output) }
            let started = monotonicNow()
            let firstStep = trainer.completedSteps
            try trainer.train(evaluation: evaluation?.examples ?? [], evaluateEvery: saveEvery > 0 ? saveEvery : nil) { event in
                switch event {
                case .step(let r):
                    let elapsed = monotonicNow() - started
                    let done = r.step - firstStep
                    let eta = done > 0 ? elapsed / Double(done) * Double(r.totalSteps - r.step) : 0
                    events.step(r, eta: eta)
                    if saveEvery > 0 && r.step % saveEvery == 0 && r.step < r.totalSteps {
                        let path = FileSystem.join(output, "checkpoint-\(r.step)")
                        try trainer.saveCheckpoint(to: path) { try writeAdapter(into: $0) }
                        events.emit(JSONObject([("event", "checkpoint"), ("step", .int(Int64(r.step))), ("path", .string(path))]),
                                    human: "checkpoint \(path)")
                    }
                case .evaluation(let e):
                    events.emit(JSONObject([("event", "eval"), ("step", .int(Int64(e.step))), ("loss", .double(e.loss)),
                                            ("perplexity", .double(e.perplexity)), ("target_tokens", .int(Int64(e.targetTokens)))]),
                                human: "eval at step \(e.step): loss \(fixed4(e.loss)), perplexity \(fixed4(e.perplexity))")
                }
            }
            if saveEvery > 0 {
                let path = FileSystem.join(output, "checkpoint-\(trainer.completedSteps)")
                try trainer.saveCheckpoint(to: path) { try writeAdapter(into: $0) }
            }
            try writeAdapter(into: output)
            events.emit(JSONObject([("event", "done"), ("adapter", .string(output)), ("steps", .int(Int64(trainer.completedSteps))),
                                    ("seconds", .double(monotonicNow() - started))]),
                        human: "wrote \(output) (PEFT LoRA adapter) after \(trainer.completedSteps) steps in \(fixed4(monotonicNow() - started))s")
        }
    }

    struct LoadedBase {
        var config: LlamaConfig
        var weights: any LlamaWeightSource
        var tokenizer: Tokenizer
        var chatTemplate: String?
        /// Recorded as the adapter's base_model_name_or_path.
        var baseName: String
        /// The family's LoRA target names (`--targets` default).
        var targetNames: LoRATargetNames
    }

    static func loadBase(_ path: String, precision: BasePrecision, threads: Int) throws -> LoadedBase {
        let storage: FrozenBase.Storage = precision == .nf4 ? .nf4() : .float32
        let input = try ModelInput.open(path: path)
        switch input {
        case .hf(let directory):
            let frozen = try FrozenBase.load(modelDirectory: directory.path, storage: storage, threadCount: threads)
            let tokenizer = try Tokenizer.load(directory: directory.path)
            return LoadedBase(config: frozen.config, weights: frozen, tokenizer: tokenizer,
                              chatTemplate: try chatTemplate(directory), baseName: path,
                              targetNames: LoRATargetNames.forConfig(directory.config.object) ?? .llama)
        case .gguf(let model):
            let architecture = model.metadata[GGUFKeys.General.architecture]?.stringValue
            if let name = architecture {
                try withPath(path) { try TrainingFamily.check(ggufArchitecture: name) }
            }
            if let name = architecture, !LlamaConfig.ggufArchitectures.contains(name) {
                // The other families: through Verify's family layout, as their HF checkpoints.
                let frozen = try FrozenBase.load(familyGGUF: path, storage: storage, threadCount: threads)
                let tokenizer = try withPath(path) { try Tokenizer(gguf: model.metadata) }
                return LoadedBase(config: frozen.config, weights: frozen, tokenizer: tokenizer,
                                  chatTemplate: model.metadata[GGUFKeys.Tokenizer.chatTemplate]?.stringValue, baseName: path,
                                  targetNames: LoRATargetNames.forGGUF(architecture: name) ?? .llama)
            }
            let merged = try MergeInput(input)
            let source = try MergeWeightSource(input: merged, adapter: nil, threads: threads)
            let frozen = try withPath(path) {
                try FrozenBase(source: source, config: source.config, storage: storage, threadCount: threads)
            }
            let tokenizer = try withPath(path) { try Tokenizer(gguf: model.metadata) }
            return LoadedBase(config: source.config, weights: frozen, tokenizer: tokenizer,
                              chatTemplate: model.metadata[GGUFKeys.Tokenizer.chatTemplate]?.stringValue, baseName: path,
                              targetNames: merged.loraTargets ?? .llama)
        case .safetensors(let c):
            throw PathError(path: c.path, Failure(.usage, "give the model directory (config.json, weights and tokenizer), not a bare safetensors file"))
        }
    }

    /// tokenizer_config.json's `chat_template` (a string, or the `default` of a named list), or
    /// transformers 5's `chat_template.jinja`.
    static func chatTemplate(_ directory: HFModelDirectory) throws -> String? {
        let jinja = directory.path(of: "chat_template.jinja")
        if FileSystem.exists(jinja) { return String(decoding: try FileSystem.readFile(jinja), as: UTF8.self) }
        let configPath = directory.path(of: "tokenizer_config.json")
        guard FileSystem.exists(configPath) else { return nil }
        let config = try withPath(configPath) { try JSONParser.parse(try FileSystem.readFile(configPath)) }
        switch config["chat_template"] {
        case .string(let s)?: return s
        case .array(let list)?:
            return list.first { $0["name"]?.stringValue == "default" }?["template"]?.stringValue
        default: return nil
        }
    }

    /// The `checkpoint-N` subdirectory with the largest N.
    static func latestCheckpoint(in directory: String) -> String? {
        let steps = (FileSystem.contents(ofDirectory: directory) ?? []).compactMap { name -> Int? in
            guard name.hasPrefix("checkpoint-"), let n = Int(name.dropFirst("checkpoint-".count)),
                  FileSystem.isDirectory(FileSystem.join(directory, name)) else { return nil }
            return n
        }
        return steps.max().map { FileSystem.join(directory, "checkpoint-\($0)") }
    }

    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw PathError(path: path, OutputError.cannotCreate(errno: errno))
        }
    }
}

/// Where training progress goes: NDJSON lines on stdout (the result, so --quiet keeps them), or
/// a progress line and human lines on stderr (silenced by --quiet). Events carry `event` and
/// `command` first, like ProgressReporter's; step events are not throttled (each is a loss value
/// a consumer keeps), the terminal line is, like the progress bar (the last step always shows).
final class EventSink {
    let ndjson: Bool
    let quiet: Bool
    let progress: ProgressLine

    init(ndjson: Bool, progressLine: Bool, quiet: Bool = false) {
        self.ndjson = ndjson
        self.quiet = quiet
        progress = ProgressLine(enabled: progressLine && !ndjson && !quiet)
    }

    func start(_ object: JSONObject, human: String) { emit(object, human: human) }

    func emit(_ object: JSONObject, human: String) {
        if ndjson {
            print(Self.event(object))
        } else if !quiet {
            progress.finish()
            printError(human)
        }
    }

    /// `object` as one compact line with `command` after `event`.
    static func event(_ object: JSONObject) -> String {
        var fields: [(String, JSONValue)] = []
        for (key, value) in object {
            fields.append((key, value))
            if key == "event" { fields.append(("command", "qlora-train")) }
        }
        return JSONValue.object(JSONObject(fields)).serialized(.compact)
    }

    func step(_ r: StepReport, eta: Double) {
        if ndjson {
            print(Self.event(JSONObject([
                ("event", "step"), ("step", .int(Int64(r.step))), ("total_steps", .int(Int64(r.totalSteps))),
                ("loss", .double(r.loss)), ("lr", .double(r.learningRate)), ("grad_norm", .double(r.gradientNorm)),
                ("tokens", .int(Int64(r.tokens))), ("tokens_per_second", .double(r.tokensPerSecond)),
                ("epoch", .double(r.epoch)), ("seconds", .double(r.seconds)), ("cpu_seconds", .double(r.cpuSeconds)),
                ("eta_seconds", .double(eta)),
            ])))
        } else {
            progress.update("step \(r.step)/\(r.totalSteps)  loss \(fixed4(r.loss))  lr \(sci(r.learningRate))  "
                + "\(Int(r.tokensPerSecond.rounded())) tok/s  ETA \(ProgressReporter.duration(eta))", force: r.step == r.totalSteps)
        }
    }
}

private func fixed4(_ v: Double) -> String {
    guard v.isFinite else { return "\(v)" }
    let scaled = Int((abs(v) * 10000).rounded())
    let frac = String(scaled % 10000)
    return (v < 0 ? "-" : "") + String(scaled / 10000) + "." + String(repeating: "0", count: 4 - frac.count) + frac
}

private func monotonicNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// `qlora-train --json`.
enum TrainJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "NDJSON events on stdout even on a terminal." }
}
