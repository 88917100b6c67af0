public import ArgumentParser
import Finetune
import Formats
import Pipeline
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

extension MergeOptions.Target: ExpressibleByArgument {}

/// `--requantize` values: a bitsandbytes scheme or a llama-quantize type (`wconv quantize --type`).
struct RequantizeArgument: ExpressibleByArgument {
    let value: MergeOptions.Requantize
    /// The quantized llama-quantize types (the float ones are --outtype's).
    static let ggmlTypes = GGMLFileType.allCases.filter { $0.defaultTensorType.isQuantized }

    init?(argument: String) {
        if let scheme = BNBScheme(rawValue: argument.lowercased()) {
            value = .bitsAndBytes(scheme)
        } else if let t = GGMLFileType(name: argument), Self.ggmlTypes.contains(t) {
            value = .ggml(t)
        } else {
            return nil
        }
    }

    static var allValueStrings: [String] { BNBScheme.allCases.map(\.rawValue) + ggmlTypes.map(\.rawValue) }
}

struct QLoRAMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qlora-merge",
        abstract: "Merge a PEFT LoRA adapter into its base model.",
        discussion: """
        Adds scaling · B·A of every adapted module to the base weight in float32 and writes the \
        merged model: a Hugging Face directory, or GGUF when OUTPUT ends in .gguf. BASE may be \
        any model wconv reads: an HF directory with f32/f16/bf16 weights or bitsandbytes \
        NF4/FP4/int8 weights, or a GGUF file of any type (the delta of attn_q/attn_k is put in \
        llama.cpp's row order; a GGUF base is written as GGUF, which `wconv convert` turns into \
        an HF directory). The model is streamed tensor by tensor.

        What the delta is added to (--merge-into):
          dequantized  (default) the base's weights as stored, dequantized. For a QLoRA \
        adapter these are the weights it was trained against, so the merged model computes \
        exactly base + adapter; it also keeps the base's quantization error, now in dense weights.
          original     the unquantized model the quantized base was made from \
        (--original-base DIR). Its weights are closer to the pre-trained model, but the adapter \
        was fitted to the quantized ones, so the result is not exactly the model that was \
        trained; the report shows the base's quantization error beside each delta, and the \
        verification how far the merged model moved from base + adapter.
        For an unquantized base the two are the same.

        The output's float tensors take --outtype (default: the base's dtype). --requantize \
        quantizes the merged weights in the same pass: nf4, fp4 or int8 (bitsandbytes, HF \
        directory, as transformers saves them) or any `wconv quantize --type` of llama-quantize \
        for a GGUF (Q8_0, Q4_0, Q6_K, the mixes Q4_K_M, Q5_K_M, Q3_K_M, …; Q4_K means Q4_K_M as \
        in llama-quantize): each tensor gets the type llama-quantize would choose, and the file \
        equals the one `--outtype f32` followed by `wconv quantize --type` gives (the dense \
        intermediate is --outtype, f32 by default, never written). Rounding can wash out a small adapter: the report lists \
        per layer ‖ΔW‖, the adapter's change, beside ‖W − dequant(quant(W))‖, what the output \
        encoding changes, and warns where the second is at least half the first.

        Finally the merged model is run on a short text next to base + adapter (float32), and \
        the KL divergence and top-1 agreement of their next-token distributions are reported \
        (--no-verify skips this).

        Examples:
          wconv qlora-merge ./llama-nf4 ./my-lora -o ./merged --outtype bf16
          wconv qlora-merge ./llama-nf4 ./my-lora -o ./merged --merge-into original --original-base ./llama
          wconv qlora-merge ./llama ./my-lora -o merged.Q4_K_M.gguf --requantize Q4_K_M
          wconv qlora-merge llama.Q8_0.gguf ./my-lora -o merged.gguf --outtype f16
        """)

    @Argument(help: "The base model: HF directory (dense or bitsandbytes) or GGUF file.")
    var base: String

    @Argument(help: "The PEFT LoRA adapter directory.")
    var adapter: String

    @Option(name: .shortAndLong, help: "Output: an HF directory, or a .gguf file.")
    var output: String

    @Option(help: "What the delta is added to: dequantized or original (see above).")
    var mergeInto: MergeOptions.Target = .dequantized

    @Option(help: "The unquantized original of a quantized base (with --merge-into original).")
    var originalBase: String?

    @Option(help: "Dtype of the output's float tensors: f32, f16 or bf16 (default: the base's).")
    var outtype: FloatTypeArgument?

    @Option(help: ArgumentHelp("Quantize the merged model: nf4, fp4, int8 (HF) or a llama.cpp type (GGUF).", valueName: "TYPE"))
    var requantize: RequantizeArgument?

    @Option(help: "NF4/FP4 block size (default 64).")
    var blocksize: Int = 64

    @Flag(help: "NF4/FP4: keep the block absmax values as float32 (no double quantization).")
    var noDoubleQuant = false

    @Flag(help: "Skip the forward-pass comparison with base + adapter.")
    var noVerify = false

    @Option(help: "Text for the comparison (default: a short English paragraph).")
    var verifyText: String?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @OptionGroup(title: "Provenance")
    var provenance: ProvenanceOptions

    @OptionGroup(title: "Plan")
    var plan: DryRunOptions

    @OptionGroup var reporting: OutputOptions<MergeJSON>

    func validate() throws {
        if originalBase != nil && mergeInto != .original {
            throw ValidationError("--original-base goes with --merge-into original.")
        }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
        switch requantize?.value {
        case .bitsAndBytes? where output.hasSuffix(".gguf"):
            throw ValidationError("--requantize \(requantizeName) writes a Hugging Face directory: give an output that does not end in .gguf.")
        case .ggml? where !output.hasSuffix(".gguf"):
            throw ValidationError("--requantize \(requantizeName) is a llama.cpp type: give an output ending in .gguf.")
        default: break
        }
    }

    private var requantizeName: String {
        switch requantize?.value {
        case .bitsAndBytes(let s)?: s.rawValue
        case .ggml(let t)?: t.rawValue
        case nil: ""
        }
    }

    func run() throws {
        try runCommand {
            var options = MergeOptions()
            options.mergeInto = mergeInto
            options.originalBase = originalBase
            options.outType = outtype?.dtype
            options.requantize = requantize?.value
            options.blockSize = blocksize
            options.doubleQuant = !noDoubleQuant
            options.verify = !noVerify
            options.verifyText = verifyText
            options.threads = threads
            options.force = force
            options.provenance = try provenance.begin("qlora-merge", options: recordedOptions, recipe: recipe, inputs: inputPaths, threads: threads,
                                                      dryRun: plan.dryRun)
            if plan.dryRun {
                DryRun.print(try LoRAMerge.outputPlan(base: base, adapter: adapter, output: output, options: options), output: output, json: reporting.json)
                return
            }
            let clock = ContinuousClock()
            let start = clock.now
            let progress = ProgressReporter(command: "qlora-merge", quiet: reporting.quiet)
            let report = try LoRAMerge.merge(base: base, adapter: adapter, output: output, options: options) { done, total, what in
                if total > 0 { progress.step(phase: "merging", done: done + 1, total: total, name: what) } else { progress.step(phase: what, done: 0, total: 0) }
            }
            progress.finish()
            try provenance.finish(options.provenance, output: output, outputs: report.outputs, threads: threads)
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            for w in report.warnings where !reporting.quiet { printError("note: \(w)") }
            if reporting.json {
                print(Self.jsonReport(report, seconds: seconds).serialized(.python(indent: 2, sortKeys: false)))
            } else {
                print(Self.table(report))
                let types = report.types.sorted { $0.key < $1.key }.map { "\($0.value.tensors) \($0.key)" }.joined(separator: ", ")
                if !reporting.quiet { printError("wrote \(report.outputs.first ?? output): \(report.mergedModules) LoRA modules merged; \(types); \(report.byteCount) bytes in \(format(seconds))s") }
            }
            if !report.washedOut.isEmpty && !reporting.quiet {
                let names = report.washedOut.prefix(3).map(\.name).joined(separator: ", ")
                printError("warning: in \(report.washedOut.count) tensors the output encoding changes the weights by at least half as much as the adapter does (\(names)\(report.washedOut.count > 3 ? ", …" : "")); a wider --outtype or no --requantize keeps more of the adapter")
            }
        }
    }

    /// Per layer: ‖ΔW‖ and the output encoding's error, summed in quadrature over the layer's tensors.
    static func table(_ report: MergeReport) -> String {
        var rows: [(String, Double, Double, Double?)] = []
        var byLayer: [Int?: (Double, Double, Double?)] = [:]
        var order: [Int?] = []
        for t in report.tensors {
            if byLayer[t.layer] == nil { order.append(t.layer) }
            var e = byLayer[t.layer] ?? (0, 0, nil)
            e.0 += t.deltaNorm * t.deltaNorm
            e.1 += t.outputError * t.outputError
            if let b = t.baseQuantizationError { e.2 = (e.2 ?? 0) + b * b }
            byLayer[t.layer] = e
        }
        for l in order.sorted(by: { ($0 ?? Int.max) < ($1 ?? Int.max) }) {
            guard let e = byLayer[l] else { continue }
            rows.append((l.map { "layer \($0)" } ?? "other", e.0.squareRoot(), e.1.squareRoot(), e.2.map { $0.squareRoot() }))
        }
        let hasBase = rows.contains { $0.3 != nil }
        var lines = ["layer       ‖ΔW‖         ‖W−q(W)‖     ratio" + (hasBase ? "    ‖orig−dequant(base)‖" : "")]
        for r in rows {
            let ratio = r.1 > 0 ? r.2 / r.1 : 0
            var line = r.0.padding(toLength: 12) + sci(r.1).padding(toLength: 13) + sci(r.2).padding(toLength: 13) + fixed(ratio)
            if let b = r.3 { line += "    " + sci(b) }
            lines.append(line)
        }
        if let v = report.verification {
            lines.append("verify: \(v.tokenCount) tokens, KLD mean \(sci(v.meanKLD)) max \(sci(v.maxKLD)), top-1 agreement \(fixed(v.top1Agreement * 100))%, max |Δlogit| \(sci(Double(v.maxLogitDifference)))")
        }
        return lines.joined(separator: "\n")
    }

    static func jsonReport(_ r: MergeReport, seconds: Double) -> JSONValue {
        var o = JSONObject()
        o["outputs"] = .array(r.outputs.map { .string($0) })
        o["merged_modules"] = .int(Int64(r.mergedModules))
        o["bytes"] = .int(Int64(r.byteCount))
        o["seconds"] = .double(seconds)
        o["types"] = .object(JSONObject(r.types.sorted { $0.key < $1.key }.map {
            ($0.key, JSONValue.object(JSONObject([("tensors", .int(Int64($0.value.tensors))), ("bytes", .int(Int64($0.value.bytes)))])))
        }))
        o["tensors"] = .array(r.tensors.map { t in
            var e = JSONObject([("name", .string(t.name)), ("layer", t.layer.map { .int(Int64($0)) } ?? .null),
                                ("delta_norm", .double(t.deltaNorm)), ("weight_norm", .double(t.weightNorm)),
                                ("output_error", .double(t.outputError)), ("type", .string(t.outputType))])
            if let b = t.baseQuantizationError { e["base_quantization_error"] = .double(b) }
            return .object(e)
        })
        if let v = r.verification {
            o["verification"] = .object(JSONObject([
                ("tokens", .int(Int64(v.tokenCount))), ("mean_kld", .double(v.meanKLD)), ("max_kld", .double(v.maxKLD)),
                ("top1_agreement", .double(v.top1Agreement)), ("max_logit_difference", .double(Double(v.maxLogitDifference))),
            ]))
        }
        o["warnings"] = .array(r.warnings.map { .string($0) })
        return .object(o)
    }
}

private func format(_ seconds: Double) -> String { "\((seconds * 100).rounded() / 100)" }

/// `1.23e-04`-style text.
func sci(_ v: Double) -> String {
    guard v.isFinite, v != 0 else { return v == 0 ? "0" : "\(v)" }
    var exponent = Int(log10(abs(v)).rounded(.down))
    var mantissa = v / pow(10, Double(exponent))
    if abs((mantissa * 100).rounded()) >= 1000 { mantissa /= 10; exponent += 1 }
    return fixed(mantissa) + "e" + (exponent < 0 ? "-" : "+") + (abs(exponent) < 10 ? "0" : "") + String(abs(exponent))
}

/// Two decimals.
func fixed(_ v: Double) -> String {
    let cents = Int((abs(v) * 100).rounded())
    let frac = cents % 100
    return (v < 0 && cents > 0 ? "-" : "") + String(cents / 100) + "." + (frac < 10 ? "0" : "") + String(frac)
}

/// Writes to standard error without a newline.
func printErrorRaw(_ text: String) {
    _ = text.withCString { write(2, $0, strlen($0)) }
}

extension String {
    func padding(toLength n: Int, with pad: Character = " ") -> String {
        count >= n ? self : self + String(repeating: pad, count: n - count)
    }
}

/// A one-line progress display on a terminal's stderr (carriage return, no scrolling).
final class ProgressLine {
    let enabled: Bool
    private var last = ContinuousClock.now
    private var shown = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ text: String, force: Bool = false) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard force || now - last > .milliseconds(100) || !shown else { return }
        last = now
        shown = true
        printErrorRaw("\r\u{1B}[K" + String(text.prefix(120)))
    }

    func finish() {
        if enabled && shown { printErrorRaw("\r\u{1B}[K") }
    }
}

/// `qlora-merge --json`.
enum MergeJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "Print the report as JSON on stdout." }
}
