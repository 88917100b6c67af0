public import ArgumentParser
import Formats
import Pipeline
import TensorCore

extension ConvertOptions.OutType: ExpressibleByArgument {}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model between a Hugging Face directory and GGUF, or between float dtypes.",
        discussion: """
        The output's kind follows its name: a path ending in .gguf is written as GGUF, anything \
        else as a Hugging Face model directory (or a safetensors file, from a safetensors file).

        HF → GGUF follows llama.cpp's convert_hf_to_gguf.py: the same metadata keys, tensor names \
        and order, the Q/K row permutation, norms and 1-D tensors kept F32, the tokenizer as GGUF \
        vocabulary. GGUF → HF is the reverse (config.json, generation_config.json, tokenizer \
        files, model.safetensors sharded past --split-max-size; every family with a GGUF architecture, \
        with --config for the remote-code ones). HF → HF (a model directory to a \
        directory, or a .safetensors file to a file) casts the F32/F16/BF16 tensors to --outtype for \
        any architecture, copies the others, updates config.json's dtype and copies the tokenizer files.

        The output is written under a temporary name and renamed when complete; an existing \
        output is kept unless --force is given. Progress goes to stderr: a bar on a terminal, \
        NDJSON events otherwise; --json prints the result on stdout (docs/cli-json.md).

        Examples:
          wconv convert ./SmolLM2-135M -o smollm2.f16.gguf --outtype f16
          wconv convert smollm2.f16.gguf -o ./smollm2-hf
          wconv convert qwen-7b.gguf -o ./qwen-7b-hf --config ./Qwen-7B/config.json
          wconv convert ./Llama-3-8B -o llama3.gguf --split-max-size 2GB
          wconv convert ./SmolLM2-135M -o ./smollm2-bf16 --outtype bf16
          wconv convert ./SmolLM2-135M -o smollm2.gguf --json --quiet > result.json
        """)

    @Argument(help: "Input: a Hugging Face model directory, a safetensors file or a GGUF file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output path (*.gguf for GGUF, otherwise an HF directory, or a .safetensors file for one).")
    var output: String

    @Option(help: "Float type of the output's matrices: f32, f16, bf16 or auto (the input's 16-bit type; HF → HF needs f32, f16 or bf16).")
    var outtype: ConvertOptions.OutType = .auto

    @Option(help: "Split the output into parts of at most this size (e.g. 2GB, 500MB).")
    var splitMaxSize: String?

    @Option(help: "tokenizer.ggml.pre to record when the BPE pre-tokenizer is not recognised.")
    var vocabPre: String?

    @Option(name: .customLong("config"),
            help: "GGUF → HF: the original checkpoint's config.json, written (dtype updated) instead of one rebuilt from the GGUF. Required for Qwen-7B and Baichuan (remote code); restores Mistral's class and sliding window.")
    var referenceConfig: String?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ResultJSON>

    @OptionGroup(title: "Provenance")
    var provenance: ProvenanceOptions

    @OptionGroup(title: "Plan")
    var plan: DryRunOptions

    func validate() throws {
        if let s = splitMaxSize, SafetensorsShardPlan.parseSize(s) == nil {
            throw ValidationError("--split-max-size must be a size such as 2GB or 500MB.")
        }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
    }

    func run() throws {
        try runCommand {
            var options = ConvertOptions()
            options.outType = outtype
            options.force = force
            options.splitMaxBytes = splitMaxSize.flatMap(SafetensorsShardPlan.parseSize)
            options.vocabPre = vocabPre
            options.hfConfig = referenceConfig
            options.threads = threads
            let progress = ProgressReporter(command: "convert", quiet: reporting.quiet)
            options.progress = progress.handler
            let clock = ContinuousClock()
            let start = clock.now
            let model = try ModelInput.open(path: input)
            if referenceConfig != nil {
                guard case .gguf = model, !output.hasSuffix(".gguf") else {
                    throw Failure(.usage, "--config applies to GGUF → HF only (a .gguf input and a directory output)")
                }
            }
            options.provenance = try provenance.begin("convert", options: recordedOptions, recipe: recipe, inputs: [input] + (referenceConfig.map { [$0] } ?? []), threads: threads,
                                                      dryRun: plan.dryRun)
            if plan.dryRun {
                switch model {
                case .hf(let dir) where output.hasSuffix(".gguf"): DryRun.print(try HFToGGUF.outputPlan(dir, output: output, options: options), output: output, json: reporting.json)
                case .gguf(let gguf) where !output.hasSuffix(".gguf"): DryRun.print(try GGUFToHF.outputPlan(gguf, options: options), output: output, json: reporting.json)
                case .hf where !output.hasSuffix(".gguf"), .safetensors where !output.hasSuffix(".gguf"): DryRun.print(try HFToHF.outputPlan(model, output: output, options: options), output: output, json: reporting.json)
                default: throw Failure(.usage, "convert goes HF → GGUF (output ending in .gguf), GGUF → HF or HF → HF (--outtype)")
                }
                return
            }
            let report: ConvertReport
            switch (model, output.hasSuffix(".gguf")) {
            case (.hf(let dir), true):
                report = try HFToGGUF.convert(dir, to: output, options: options)
            case (.gguf(let model), false):
                report = try GGUFToHF.convert(model, to: output, options: options)
            case (.gguf, true):
                throw Failure(.usage, "GGUF → GGUF: use `wconv quantize` to change tensor types")
            case (.hf, false), (.safetensors, false):
                report = try HFToHF.convert(model, to: output, options: options)
            case (.safetensors, true):
                throw Failure(.usage, "safetensors file → GGUF: give the model directory (config.json + weights)")
            }
            try provenance.finish(options.provenance, output: output, outputs: report.outputs, threads: threads)
            let seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
            progress.finish()
            let types = report.typeCounts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            reporting.printResult(JSONObject([
                ("command", "convert"), ("input", .string(input)), ("outputs", .array(report.outputs.map { .string($0) })),
                ("tensors", .int(Int64(report.tensorCount))), ("bytes", .int(Int64(report.byteCount))),
                ("parameters", .int(Int64(report.parameterCount))),
                ("types", .object(JSONObject(report.typeCounts.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) }))),
                ("seconds", .double(ProgressReporter.rounded(seconds))),
            ]))
            reporting.printSummary("wrote \(report.outputs[0]): \(report.tensorCount) tensors (\(types)), \(report.byteCount) bytes in \(String(format: seconds))s")
        }
    }
}

private func String(format seconds: Double) -> String {
    let r = (seconds * 100).rounded() / 100
    return "\(r)"
}
