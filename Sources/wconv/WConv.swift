import ArgumentParser
import TensorCore

@main
struct WConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wconv",
        abstract: "Convert, quantize, verify and fine-tune the weights of open language models.",
        discussion: """
        Reads safetensors files, Hugging Face model directories and GGUF files; writes them \
        byte-compatible with the Python references (safetensors, gguf-py, llama.cpp, transformers).

        Exit codes: \(ExitStatus.summary)
        """,
        version: WConvVersion.current,
        groupedSubcommands: [
            CommandGroup(name: "Inspect", subcommands: [Inspect.self, Tokenize.self]),
            CommandGroup(name: "Transform", subcommands: [Convert.self, Quantize.self, Dequantize.self]),
            CommandGroup(name: "Check", subcommands: [VerifyCommand.self, Run.self]),
            CommandGroup(name: "Train", subcommands: [QLoRATrain.self, QLoRAMerge.self, ConvertAdapter.self]),
            CommandGroup(name: "Release", subcommands: [Checksum.self, Pack.self, Unpack.self]),
        ]
    )
}

/// The version printed by `--version` and recorded in outputs.
enum WConvVersion {
    static let current = "0.1.0"
}
