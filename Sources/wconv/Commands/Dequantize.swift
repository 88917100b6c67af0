import ArgumentParser
import Formats
import Pipeline
import TensorCore

struct Dequantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dequantize a bitsandbytes model directory or a quantized GGUF back to dense weights.",
        discussion: """
        A bitsandbytes directory (NF4/FP4 with or without double quantization, LLM.int8) becomes \
        a dense Hugging Face directory: each weight gets exactly the values bitsandbytes' own \
        dequantization returns (4-bit weights in the dtype they were quantized from, int8 \
        weights as float32), cast to --outtype; quantization_config is removed from \
        config.json; tokenizer files are copied. A GGUF file becomes a dense model directory.

        Without --outtype, a bitsandbytes model keeps its recorded dtype (config.json "dtype") \
        and a GGUF is written as f32.

        Examples:
          wconv dequantize ./llama-nf4 -o ./llama-bf16
          wconv dequantize ./llama-int8 -o ./llama-f32 --outtype f32
        """)

    @Argument(help: "Input: a bitsandbytes-quantized Hugging Face directory or a GGUF file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output model directory.")
    var output: String

    @Option(help: "Float type of the output tensors: f32, f16 or bf16.")
    var outtype: FloatTypeArgument?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ResultJSON>

    @OptionGroup(title: "Provenance")
    var provenance: ProvenanceOptions

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
    }

    func run() throws {
        try runCommand {
            let progress = ProgressReporter(command: "dequantize", quiet: reporting.quiet)
            let clock = ContinuousClock()
            let start = clock.now
            let model = try ModelInput.open(path: input)
            let recorded = try provenance.begin("dequantize", options: recordedOptions, recipe: recipe, inputs: [input], threads: threads)
            let report: QuantizeReport
            switch model {
            case .gguf(let gguf):
                let outType = outtype?.dtype ?? .f32
                var options = QuantizeOptions(scheme: .ggml(outType == .f16 ? .F16 : outType == .bf16 ? .BF16 : .F32))
                options.threads = threads
                options.force = force
                options.progress = progress.handler
                options.provenance = recorded
                report = try GGUFDequantizer.dequantize(gguf, to: output, outType: outType, options: options)
            case .hf, .safetensors:
                var options = QuantizeOptions(scheme: .bnb(.nf4))
                options.threads = threads
                options.force = force
                options.progress = progress.handler
                options.provenance = recorded
                report = try BNBDequantizer.dequantize(model, to: output, outType: outtype?.dtype, options: options)
            }
            try provenance.finish(recorded, output: output, outputs: report.outputs, threads: threads)
            progress.finish()
            let seconds = QuantizeSummary.seconds(clock.now - start)
            reporting.printResult(QuantizeSummary.json(report, command: "dequantize", input: input, seconds: seconds))
            reporting.printSummary(QuantizeSummary.text(report, seconds: seconds))
        }
    }
}
