import ArgumentParser
import Formats
import TensorCore
import Verify
#if canImport(Glibc)
import Glibc
#endif

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare a converted or quantized model with its reference: KL divergence, top-1, perplexity, per layer and per tensor.",
        discussion: """
        REF and CAND may be in different formats (an HF directory against a GGUF file, say): \
        tensor names are mapped and llama.cpp's Q/K row permutation undone before anything is \
        compared.

        The text (--text, or the bundled default of about 5k tokens) is tokenized with the \
        reference's tokenizer and scored as llama-perplexity --kl-divergence does: chunks of \
        --ctx tokens, each starting with BOS if the model adds one, the second half of each \
        chunk scored. Reported: mean/median/99 %/max KL divergence, top-1 agreement, perplexity \
        of each model and their ratio, Δp; the hidden states after every layer (the first layer \
        whose relative error exceeds --layer-tolerance is named as the first divergence); and \
        RMSE, max |Δ|, cosine and SNR of every tensor both inputs have.

        Exit status: 0 when every threshold given holds (or none is given), 1 when one is broken.
        --json writes the full report (schema in docs/verify.md; - for stdout). --record adds \
        the summary to the candidate's wconv-manifest.json (docs/manifest.md).

        --save-baseline FILE stores the reference's top-K log-probabilities (a few MB); \
        --baseline FILE then scores a candidate against them without running the reference \
        (the KLD is computed over the top K tokens plus one bucket for the rest).

        Examples:
          wconv verify ./SmolLM2-135M smollm2.q8_0.gguf --max-kld 0.01 --min-top1 0.95
          wconv verify ./Llama-3-8B --save-baseline llama3.kld
          wconv verify --baseline llama3.kld llama3.q4_k_m.gguf --json report.json
          wconv verify ./SmolLM2-135M smollm2.q8_0.gguf --max-kld 0.01 --record
        """)

    @Argument(help: ArgumentHelp("REF CAND, or CAND alone with --baseline, or REF alone with --save-baseline.",
                                 valueName: "model"))
    var models: [String] = []

    @Option(help: "Text file to score (default: the bundled evaluation text).")
    var text: String?

    @Option(help: "JSON file of token ids to score (an array, or an object with a \"tokens\" array).")
    var tokens: String?

    @Option(help: "Tokens per chunk (llama-perplexity's n_ctx; default 512, a baseline's own with --baseline).")
    var ctx: Int?

    @Option(help: "Score at most this many chunks.")
    var chunks: Int?

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int = activeProcessorCount

    @OptionGroup(title: "Thresholds")
    var thresholds: ThresholdOptions

    @Option(help: "Relative error of the hidden states above which a layer counts as diverging.")
    var layerTolerance: Double = VerifyOptions.defaultLayerTolerance

    @Option(help: "Write the full report as JSON to this file (- for stdout, instead of the table).")
    var json: String?

    @Option(help: "Store the reference's top-K log-probabilities in this file.")
    var saveBaseline: String?

    @Option(help: "Score against a baseline stored by --save-baseline instead of running a reference.")
    var baseline: String?

    @Option(help: "Log-probabilities kept per position by --save-baseline.")
    var topK: Int = LogProbBaseline.defaultTopK

    @Flag(help: "Skip the per-tensor comparison.")
    var noTensors = false

    @Flag(help: "Skip the per-layer comparison of hidden states.")
    var noLayers = false

    @Flag(help: ArgumentHelp(
        "Add the result to the candidate's wconv-manifest.json (beside a file, inside a directory).",
        discussion: "The manifest must exist (exit 66 before anything is evaluated otherwise); the entry is written whether the thresholds hold or not, and replaces an earlier one for the same reference. Schema in docs/manifest.md."))
    var record = false

    @Flag(help: "Replace existing --json and --save-baseline outputs.")
    var force = false

    @Flag(name: .shortAndLong, help: "No progress on stderr (errors are still printed).")
    var quiet = false

    func validate() throws {
        switch (models.count, baseline != nil, saveBaseline != nil) {
        case (2, _, _): break
        case (1, true, false), (1, false, true): break
        case (1, false, false): throw ValidationError("Give REF and CAND (or CAND with --baseline, or REF with --save-baseline).")
        case (1, true, true): throw ValidationError("--baseline and --save-baseline cannot be combined.")
        default: throw ValidationError("Give at most two models: REF and CAND.")
        }
        if text != nil && tokens != nil { throw ValidationError("Give either --text or --tokens, not both.") }
        if baseline != nil && (text != nil || tokens != nil) {
            throw ValidationError("--baseline carries its own tokens; drop --text / --tokens.")
        }
        if let ctx, ctx < 4 { throw ValidationError("--ctx must be at least 4.") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1.") }
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
        if topK < 1 { throw ValidationError("--top-k must be at least 1.") }
        if record && models.count == 1 && baseline == nil {
            throw ValidationError("--record adds to the candidate's manifest; give a candidate (REF CAND or --baseline FILE CAND).")
        }
        if !(layerTolerance >= 0) { throw ValidationError("--layer-tolerance must be a non-negative number.") }
    }

    func run() throws {
        try runCommand {
            let options = verifyOptions
            let reporter = ProgressReporter(command: "verify", quiet: quiet)
            let progress: VerifyProgress? = reporter.mode == .silent ? nil : { phase, done, total in
                reporter.step(phase: phase, done: done, total: total)
            }

            // Outputs are checked up front, so an hour of evaluation is not lost to an existing file.
            for path in [json, saveBaseline].compactMap({ $0 }) where path != "-" && FileSystem.exists(path) && !force {
                throw PathError(path: path, Failure(.cannotWrite, "exists; pass --force to replace it"))
            }
            // Likewise the manifest --record adds to (and the reference's digests it records).
            let recorder = record ? try VerifyRecord(command: self) : nil

            let report: VerifyReport
            if let baselinePath = baseline {
                let stored = try LogProbBaseline(contentsOf: baselinePath)
                if let ctx, ctx != stored.contextLength {
                    throw Failure(.usage, "the baseline was scored with --ctx \(stored.contextLength), not \(ctx)")
                }
                let candidate = try LlamaCheckpoint.open(path: models[models.count - 1])
                let reference = models.count == 2 ? try LlamaCheckpoint.open(path: models[0]) : nil
                report = try ModelVerifier.verify(
                    reference: .baseline(stored, path: baselinePath, checkpoint: reference), candidate: candidate,
                    tokens: [], bos: nil, options: options, progress: progress).report
            } else {
                let reference = try LlamaCheckpoint.open(path: models[0])
                let (ids, bos) = try evaluationTokens(reference)
                if models.count == 1 {
                    // REF --save-baseline FILE: record only.
                    let stored = try ModelVerifier.makeBaseline(reference: reference, tokens: ids, bos: bos, options: options, progress: progress)
                    reporter.finish()
                    try stored.write(to: saveBaseline ?? "", force: force)
                    print("wrote \(saveBaseline ?? ""): \(stored.count) positions, top \(stored.topK) of \(stored.vocabularySize), "
                          + "\(stored.tokens.count / max(1, stored.contextLength)) chunks of \(stored.contextLength)")
                    return
                }
                let candidate = try LlamaCheckpoint.open(path: models[1])
                let result = try ModelVerifier.verify(
                    reference: .model(reference), candidate: candidate, tokens: ids, bos: bos, options: options,
                    saveBaseline: saveBaseline != nil, progress: progress)
                report = result.report
                if let path = saveBaseline, let stored = result.baseline { try stored.write(to: path, force: force) }
            }
            reporter.finish()

            if let path = json {
                let text = report.json().serialized(.python(indent: 2, sortKeys: false)) + "\n"
                if path == "-" {
                    print(text, terminator: "")
                } else {
                    try writeText(text, to: path, force: force)
                    print(report.table())
                }
            } else {
                print(report.table())
            }
            // Recorded whether the gate holds or not: a failed verification is part of the history too.
            try recorder?.write(report)
            if !report.passed { throw ExitCode(ExitStatus.checkFailed.rawValue) }
        }
    }

    /// What the flags ask of ``ModelVerifier``.
    var verifyOptions: VerifyOptions {
        var options = VerifyOptions()
        options.contextLength = ctx ?? options.contextLength
        options.threads = threads
        options.thresholds = thresholds.values
        options.compareTensors = !noTensors
        options.compareLayers = !noLayers
        options.layerTolerance = layerTolerance
        options.baselineTopK = topK
        options.maxChunks = chunks
        return options
    }

    /// The ids to score and the BOS that starts each chunk (when the tokenizer adds one).
    func evaluationTokens(_ reference: LlamaCheckpoint) throws -> ([Int], Int?) {
        // Without a tokenizer, a token file still works (no BOS substitution then).
        let tokenizer: Tokenizer?
        do { tokenizer = try reference.tokenizer() } catch where tokens != nil { tokenizer = nil }
        let bos = tokenizer?.prefixTokens.first
        if let tokens { return (try TokenList.read(path: tokens), bos) }
        guard let tokenizer else { throw Failure(.internalError, "no tokenizer") }
        let body = try text.map { path in
            String(decoding: try withPath(path) { try FileSystem.readFile(path) }, as: UTF8.self)
        } ?? EvaluationText.default
        return (tokenizer.encode(body, addSpecialTokens: true), bos)
    }
}

/// `--max-kld`, `--min-top1`, `--max-ppl-ratio`: the release gate of `verify`, as one option
/// group (parsed, validated and turned into ``VerifyThresholds`` in one place, so a command that
/// gates on a verification offers the same flags with the same checks).
struct ThresholdOptions: ParsableArguments {
    @Option(help: "Fail (exit 1) when the mean KL divergence exceeds this.")
    var maxKld: Double?

    @Option(help: "Fail (exit 1) when the top-1 agreement (0…1) is below this.")
    var minTop1: Double?

    @Option(help: "Fail (exit 1) when PPL(CAND) / PPL(REF) exceeds this.")
    var maxPplRatio: Double?

    func validate() throws {
        if let maxKld, !(maxKld >= 0) { throw ValidationError("--max-kld must be a non-negative number.") }
        if let minTop1, !(0 ... 1).contains(minTop1) { throw ValidationError("--min-top1 is a fraction between 0 and 1.") }
        if let maxPplRatio, !(maxPplRatio > 0) { throw ValidationError("--max-ppl-ratio must be positive.") }
    }

    /// The thresholds given (nil: not checked).
    var values: VerifyThresholds {
        VerifyThresholds(maxMeanKLD: maxKld, minTop1Agreement: minTop1, maxPerplexityRatio: maxPplRatio)
    }
}

/// Writes `text` to `path` atomically.
func writeText(_ text: String, to path: String, force: Bool) throws {
    let output = try AtomicOutput.file(at: path, force: force)
    let file = try OutputFile(path: output.temporaryPath)
    try file.write(Array(text.utf8))
    try file.close()
    try output.commit()
}
