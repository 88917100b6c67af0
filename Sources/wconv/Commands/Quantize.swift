import ArgumentParser
import Formats
import Pipeline
import TensorCore

/// A float dtype named as on the command line and in transformers (`f32`/`float32`, …).
enum FloatTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case f32, f16, bf16

    init?(argument: String) {
        switch argument.lowercased() {
        case "f32", "float32", "fp32": self = .f32
        case "f16", "float16", "fp16", "half": self = .f16
        case "bf16", "bfloat16": self = .bf16
        default: return nil
        }
    }

    var dtype: DType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        }
    }
}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model: bitsandbytes NF4/FP4/int8 (HF directory) or llama.cpp block types (GGUF).",
        discussion: """
        bitsandbytes (--nf4, --fp4, --int8): INPUT is a Hugging Face model directory with f32, \
        f16 or bf16 weights; OUTPUT is a new directory laid out byte for byte as transformers + \
        bitsandbytes save it, loadable with from_pretrained. Every Linear weight inside \
        model.layers (2-D .weight tensors: q/k/v/o and gate/up/down projections for LLaMA) is \
        quantized; embeddings, norms, biases and lm_head are copied. config.json gains \
        quantization_config; tokenizer files and generation_config.json are copied.

        GGUF (--type): as llama-quantize, with its tensor-type rules and overrides.

        NaN or infinite weights are refused unless --allow-non-finite; an already quantized \
        input is refused unless --allow-requantize (it is then dequantized first). The output \
        is written under a temporary name and renamed when complete; an existing output is kept \
        unless --force. A summary (per type: tensors, bytes, bits per weight; time) goes to stderr \
        with the progress (a bar on a terminal, NDJSON events otherwise); --json prints the \
        result on stdout (docs/cli-json.md).

        Examples:
          wconv quantize ./Llama-3.2-1B -o ./llama-nf4 --nf4
          wconv quantize ./Llama-3.2-1B -o ./llama-nf4-fp32 --nf4 --compute-dtype f32
          wconv quantize ./Llama-3.2-1B -o ./llama-int8 --int8
          wconv quantize llama.f16.gguf -o llama.Q4_K_M.gguf --type Q4_K_M
          wconv quantize llama.f16.gguf -o llama.Q8_0.gguf --type Q8_0 --json -q > result.json
        """)

    @Argument(help: "Input: a Hugging Face model directory (bitsandbytes) or a GGUF file (--type).")
    var input: String

    @Option(name: .shortAndLong, help: "Output: a directory (bitsandbytes) or a .gguf file (--type).")
    var output: String

    @Flag(help: "bitsandbytes NF4 (4-bit NormalFloat), QLoRA's format.")
    var nf4 = false

    @Flag(help: "bitsandbytes FP4 (4-bit float, E2M1).")
    var fp4 = false

    @Flag(help: "bitsandbytes LLM.int8 (row-wise int8 with per-row scales).")
    var int8 = false

    @Option(name: .customLong("type"), help: ArgumentHelp(
        "llama.cpp file type (GGUF output).",
        discussion: "One of \(GGMLFileType.allCases.map(\.rawValue).joined(separator: ", ")).",
        valueName: "T"))
    var fileType: String?

    @Option(help: "NF4/FP4 block size: 32, 64, 128, 256, 512, 1024, 2048 or 4096 (default: 64).")
    var blocksize: Int?

    @Flag(help: "NF4/FP4: keep the block absmax values as float32 (no double quantization).")
    var noDoubleQuant = false

    @Option(help: "NF4/FP4: bnb_4bit_compute_dtype recorded in config.json: f32, f16 or bf16 (default: bf16).")
    var computeDtype: FloatTypeArgument?

    @Option(help: ArgumentHelp("--type: give tensors whose name matches REGEX this type (repeatable; first match wins).",
                               valueName: "REGEX=TYPE"))
    var tensorType: [String] = []

    @Option(help: ArgumentHelp("--type: type of the output tensor (output.weight).", valueName: "TYPE"))
    var outputTensorType: String?

    @Option(help: ArgumentHelp("--type: type of the token embedding (token_embd.weight).", valueName: "TYPE"))
    var tokenEmbeddingType: String?

    @Flag(help: "--type: leave output.weight unquantized.")
    var leaveOutputTensor = false

    @Flag(help: "--type: quantize every tensor to the type itself, without the mixture rules.")
    var pure = false

    @Flag(help: "Accept an already quantized input (it is dequantized first; the error adds up).")
    var allowRequantize = false

    @Flag(help: "Accept NaN or infinite weights instead of refusing the input.")
    var allowNonFinite = false

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ResultJSON>

    @OptionGroup(title: "Provenance")
    var provenance: ProvenanceOptions

    @OptionGroup(title: "Plan")
    var plan: DryRunOptions

    /// The scheme the flags select (validate() ensures exactly one).
    var scheme: QuantizeOptions.Scheme? {
        if nf4 { return .bnb(.nf4) }
        if fp4 { return .bnb(.fp4) }
        if int8 { return .bnb(.int8) }
        if let fileType, let t = GGMLFileType(name: fileType) { return .ggml(t) }
        return nil
    }

    func validate() throws {
        let chosen = [nf4, fp4, int8, fileType != nil].filter { $0 }.count
        if chosen == 0 { throw ValidationError("Choose a format: give one of --nf4, --fp4, --int8 or --type T.") }
        if chosen > 1 { throw ValidationError("Give only one of --nf4, --fp4, --int8 and --type.") }
        if let fileType, GGMLFileType(name: fileType) == nil {
            throw ValidationError("--type must be one of \(GGMLFileType.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(fileType)').")
        }
        let fourBit = nf4 || fp4
        if !fourBit {
            if blocksize != nil { throw ValidationError("--blocksize applies only to --nf4 and --fp4; remove it.") }
            if noDoubleQuant { throw ValidationError("--no-double-quant applies only to --nf4 and --fp4; remove it.") }
            if computeDtype != nil { throw ValidationError("--compute-dtype applies only to --nf4 and --fp4; remove it.") }
        } else if let blocksize, ![32, 64, 128, 256, 512, 1024, 2048, 4096].contains(blocksize) {
            throw ValidationError("--blocksize must be one of 32, 64, 128, 256, 512, 1024, 2048, 4096 (got \(blocksize)).")
        }
        if fileType == nil {
            let ggufOnly = [(!tensorType.isEmpty, "--tensor-type"), (outputTensorType != nil, "--output-tensor-type"),
                            (tokenEmbeddingType != nil, "--token-embedding-type"), (leaveOutputTensor, "--leave-output-tensor"),
                            (pure, "--pure")]
            if let (_, name) = ggufOnly.first(where: { $0.0 }) {
                throw ValidationError("\(name) applies only to GGUF quantization (--type); remove it or use --type.")
            }
        }
        for spec in tensorType {
            // llama-quantize's rule: split at the first '=', the pattern is matched lower-cased.
            if let eq = spec.firstIndex(of: "="), GGMLType(name: String(spec[spec.index(after: eq)...])) == nil {
                throw ValidationError("--tensor-type \(spec): '\(spec[spec.index(after: eq)...])' is not a ggml type name such as Q4_K or Q6_K.")
            }
            let parsed: (pattern: String, type: GGMLType)
            do { parsed = try QuantizeOptions.parseTensorTypeOverride(spec) } catch {
                throw ValidationError("--tensor-type takes REGEX=TYPE with a ggml type such as Q6_K, e.g. --tensor-type 'attn_v=Q6_K' (got '\(spec)': \(error)).")
            }
            if (try? Regex(parsed.pattern)) == nil { throw ValidationError("--tensor-type \(spec): '\(parsed.pattern)' is not a valid regular expression.") }
        }
        for (name, value) in [("--output-tensor-type", outputTensorType), ("--token-embedding-type", tokenEmbeddingType)] {
            if let value, GGMLType(name: value) == nil {
                throw ValidationError("\(name) must be a ggml type name such as Q6_K or F16 (got '\(value)').")
            }
        }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
    }

    func run() throws {
        try runCommand {
            guard let scheme else { throw Failure(.usage, "no quantization format chosen") }
            var options = QuantizeOptions(scheme: scheme)
            options.blockSize = blocksize ?? 64
            options.doubleQuant = !noDoubleQuant
            options.computeDType = computeDtype?.dtype ?? .bf16
            options.tensorTypeOverrides = try tensorType.map(QuantizeOptions.parseTensorTypeOverride)
            options.outputTensorType = outputTensorType.flatMap { GGMLType(name: $0) }
            options.tokenEmbeddingType = tokenEmbeddingType.flatMap { GGMLType(name: $0) }
            options.leaveOutputTensor = leaveOutputTensor
            options.pure = pure
            options.allowRequantize = allowRequantize
            options.allowNonFinite = allowNonFinite
            options.threads = threads
            options.force = force
            let progress = ProgressReporter(command: "quantize", quiet: reporting.quiet)
            options.progress = progress.handler

            let clock = ContinuousClock()
            let start = clock.now
            let model = try ModelInput.open(path: input)
            options.provenance = try provenance.begin("quantize", options: recordedOptions, recipe: options.recipe, inputs: [input], threads: threads,
                                                      dryRun: plan.dryRun)
            if plan.dryRun {
                let outputPlan = switch scheme {
                case .bnb: try BNBQuantizer.outputPlan(model, options: options)
                case .ggml: try GGUFQuantizer.outputPlan(try GGUFQuantizer.plan(model, options: options), output: output, threads: threads)
                }
                DryRun.print(outputPlan, output: output, json: reporting.json)
                return
            }
            let report: QuantizeReport
            switch scheme {
            case .bnb: report = try BNBQuantizer.quantize(model, to: output, options: options)
            case .ggml: report = try GGUFQuantizer.quantize(model, to: output, options: options)
            }
            try provenance.finish(options.provenance, output: output, outputs: report.outputs, threads: threads)
            progress.finish()
            let seconds = QuantizeSummary.seconds(clock.now - start)
            reporting.printResult(QuantizeSummary.json(report, command: "quantize", input: input, seconds: seconds))
            reporting.printSummary(QuantizeSummary.text(report, seconds: seconds))
        }
    }
}

/// The end-of-run summary of `quantize` and `dequantize`, for stderr.
enum QuantizeSummary {
    static func text(_ report: QuantizeReport, seconds: Double) -> String {
        var lines: [String] = []
        for warning in report.warnings { lines.append("warning: \(warning)") }
        lines.append("wrote \(report.outputs.first ?? "output")")
        let totals = report.totals.values.sorted { ($0.byteCount, $1.type) > ($1.byteCount, $0.type) }
        let width = max(4, totals.map(\.type.count).max() ?? 0)
        lines.append("  " + pad("type", width) + "  " + lpad("tensors", 7) + "  " + lpad("bytes", 14) + "  " + lpad("bits/weight", 11))
        for t in totals {
            lines.append("  " + pad(t.type, width) + "  " + lpad(String(t.tensorCount), 7) + "  " + lpad(String(t.byteCount), 14)
                + "  " + lpad(InspectReport.format2(t.bitsPerWeight), 11))
        }
        lines.append("  " + pad("all", width) + "  " + lpad(String(totals.reduce(0) { $0 + $1.tensorCount }), 7) + "  "
            + lpad(String(report.byteCount), 14) + "  " + lpad(InspectReport.format2(report.bitsPerWeight), 11))
        lines.append("  time \(InspectReport.format2(seconds)) s")
        return lines.joined(separator: "\n")
    }

    /// The `--json` result of `quantize` and `dequantize` (docs/cli-json.md).
    static func json(_ report: QuantizeReport, command: String, input: String, seconds: Double) -> JSONObject {
        let totals = report.totals.values.sorted { ($0.byteCount, $1.type) > ($1.byteCount, $0.type) }
        return JSONObject([
            ("command", .string(command)), ("input", .string(input)), ("outputs", .array(report.outputs.map { .string($0) })),
            ("tensors", .int(Int64(totals.reduce(0) { $0 + $1.tensorCount }))), ("bytes", .int(Int64(report.byteCount))),
            ("parameters", .int(Int64(report.parameterCount))), ("bits_per_weight", .double(ProgressReporter.rounded(report.bitsPerWeight))),
            ("types", .array(totals.map { t in
                .object(JSONObject([("type", .string(t.type)), ("tensors", .int(Int64(t.tensorCount))), ("bytes", .int(Int64(t.byteCount))),
                                    ("parameters", .int(Int64(t.parameterCount))),
                                    ("bits_per_weight", .double(ProgressReporter.rounded(t.bitsPerWeight)))]))
            })),
            ("warnings", .array(report.warnings.map { .string($0) })),
            ("seconds", .double(ProgressReporter.rounded(seconds))),
        ])
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func pad(_ s: String, _ width: Int) -> String { InspectReport.pad(s, width) }
    static func lpad(_ s: String, _ width: Int) -> String { InspectReport.lpad(s, width) }
}
