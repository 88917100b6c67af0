public import ArgumentParser
import Finetune
import Formats
import TensorCore

extension LlamaCppAdapter.OutType: ExpressibleByArgument {}

struct ConvertAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert-adapter",
        abstract: "Convert a LoRA adapter between PEFT's format and llama.cpp's LoRA GGUF.",
        discussion: """
        The direction follows the input: a PEFT adapter directory (adapter_config.json + \
        adapter_model.safetensors) becomes a GGUF file (OUTPUT must end in .gguf); a llama.cpp \
        LoRA GGUF becomes a PEFT adapter directory.

        PEFT → GGUF writes what llama.cpp's convert_lora_to_gguf.py writes: general.type \
        adapter, adapter.type lora, adapter.lora.alpha, <tensor>.lora_a / .lora_b with the rows \
        of lora_b permuted for attn_q and attn_k like the base weights. llama.cpp scales every \
        pair by alpha / rank with one alpha per file; adapters whose scaling is not that \
        (rsLoRA, rank_pattern or alpha_pattern with other ratios) get their lora_b multiplied so \
        llama.cpp computes the same delta, and a note says so. Modules a GGUF adapter cannot \
        hold are refused, never dropped: embedding LoRA, lm_head on a base with tied \
        embeddings, modules the architecture has no GGUF name for.

        --base names the base model (a Hugging Face directory, its config.json, or a GGUF \
        file); its architecture and head counts decide tensor names and the Q/K row order. \
        It is required for PEFT → GGUF unless adapter_config.json's base_model_name_or_path is \
        a local directory, and for GGUF → PEFT when the adapter touches attn_q or attn_k.

        GGUF → PEFT records as base_model_name_or_path (and in README.md's base_model): \
        --base-model-name if given; else the base model the GGUF adapter names (its one \
        general.base_model.0.repo_url on huggingface.co, as convert_lora_to_gguf.py keeps \
        it from the PEFT model card), as ORG/NAME; else the name of the --base directory \
        (of config.json's directory, or of the GGUF file), never its path; else null.

        Examples:
          wconv convert-adapter ./my-lora -o my-lora.gguf --base ./SmolLM2-135M
          wconv convert-adapter my-lora.gguf -o ./my-lora --base ./SmolLM2-135M
          wconv convert-adapter my-lora.gguf -o ./my-lora --base-model-name HuggingFaceTB/SmolLM2-135M
        """)

    @Argument(help: "A PEFT adapter directory or a llama.cpp LoRA GGUF file.")
    var input: String

    @Option(name: .shortAndLong, help: "Output: a .gguf file (from PEFT) or an adapter directory (from GGUF).")
    var output: String

    @Option(help: "The base model: HF directory, config.json or GGUF file.")
    var base: String?

    @Option(help: "GGUF → PEFT: the base_model_name_or_path to record (e.g. a Hugging Face id; default: see above).")
    var baseModelName: String?

    @Option(help: "GGUF tensor type: f32, f16, bf16 or q8_0 (rows that do not fit q8_0 blocks stay f16).")
    var outtype: LlamaCppAdapter.OutType = .f32

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ResultJSON>

    @OptionGroup(title: "Provenance")
    var provenance: ProvenanceOptions

    func validate() throws {
        if FileSystem.isDirectory(input) {
            if baseModelName != nil {
                throw ValidationError("--base-model-name is for GGUF → PEFT; a PEFT adapter's GGUF takes its base from adapter_config.json.")
            }
            guard output.hasSuffix(".gguf") else {
                throw ValidationError("a PEFT adapter converts to a GGUF file: give an output ending in .gguf.")
            }
        } else if output.hasSuffix(".gguf") {
            throw ValidationError("a GGUF adapter converts to a PEFT adapter directory: give an output that does not end in .gguf.")
        }
    }

    func run() throws {
        try runCommand {
            let clock = ContinuousClock()
            let start = clock.now
            let report: LlamaCppAdapter.Report
            let recorded = try provenance.begin("convert-adapter", options: recordedOptions, recipe: recipe,
                                                inputs: inputPaths,
                                                threads: activeProcessorCount)
            if FileSystem.isDirectory(input) {
                let adapter = try PEFTAdapter(directory: input)
                var basePath = base
                if basePath == nil, let named = adapter.config.baseModelNameOrPath, FileSystem.isDirectory(named) {
                    basePath = named
                }
                guard let basePath else {
                    throw Failure(.usage, "pass --base: the adapter's base model (\(adapter.config.baseModelNameOrPath ?? "not recorded")) is not a local directory, and its architecture and head counts are needed")
                }
                report = try LlamaCppAdapter.toGGUF(adapter, base: try AdapterBaseModel.load(path: basePath), output: output,
                                                    outType: outtype, force: force, provenance: recorded)
            } else {
                guard FileSystem.exists(input) else { throw PathError(path: input, FileAccessError.notFound) }
                report = try LlamaCppAdapter.toPEFT(gguf: input, base: try base.map(AdapterBaseModel.load(path:)), output: output,
                                                    baseModelName: try recordedBaseModelName(), force: force, provenance: recorded)
            }
            try provenance.finish(recorded, output: output, outputs: [output], threads: activeProcessorCount)
            for w in report.warnings { reporting.printSummary("note: \(w)") }
            let seconds = ProgressReporter.seconds(clock.now - start)
            reporting.printResult(JSONObject([
                ("command", "convert-adapter"), ("input", .string(input)), ("outputs", .array([.string(report.output)])),
                ("modules", .int(Int64(report.moduleCount))), ("tensors", .int(Int64(report.tensorCount))),
                ("alpha", .double(report.alpha)), ("notes", .array(report.warnings.map { .string($0) })),
                ("seconds", .double(ProgressReporter.rounded(seconds))),
            ]))
            reporting.printSummary("wrote \(report.output): \(report.moduleCount) LoRA modules (\(report.tensorCount) tensors), alpha \(report.alpha), in \((seconds * 100).rounded() / 100)s")
        }
    }
}

extension ConvertAdapter {
    /// What a PEFT adapter made from the GGUF records as its base model: a name a user or
    /// transformers can resolve, never a path of this machine (the adapter is a release artifact).
    func recordedBaseModelName() throws -> String? {
        if let baseModelName { return baseModelName }
        let metadata = try GGUFFile(path: input).metadata
        if let id = Self.huggingFaceID(ofBaseModelIn: metadata) { return id }
        guard let base else { return nil }
        // A config.json stands for its directory; a directory or GGUF file for itself.
        let named = FileSystem.baseName(base) == "config.json" ? FileSystem.directoryName(base) : base
        let name = FileSystem.baseName(named)
        return name.isEmpty || name == "." || name == ".." || name == "/" ? nil : name
    }

    /// `ORG/NAME` of the one base model a GGUF records as `https://huggingface.co/ORG/NAME`
    /// (gguf-py's `general.base_model.0.repo_url`), else nil.
    static func huggingFaceID(ofBaseModelIn metadata: GGUFMetadata) -> String? {
        guard metadata[GGUFKeys.General.baseModelCount]?.intValue == 1,
              let url = metadata["general.base_model.0.repo_url"]?.stringValue else { return nil }
        let prefix = "https://huggingface.co/"
        guard url.hasPrefix(prefix) else { return nil }
        let parts = url.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return nil }
        return parts.joined(separator: "/")
    }
}
