import ArgumentParser
import Finetune
import Formats
import Pipeline
import TensorCore

/// `--no-provenance` and `--manifest-tensors`, shared by the commands that write models
/// (convert, quantize, dequantize, qlora-merge, convert-adapter). See docs/manifest.md.
struct ProvenanceOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Record no provenance: nothing inside the output and no manifest beside it.",
        discussion: "The output is then byte-identical to the reference tools' (convert_hf_to_gguf.py, llama-quantize, transformers + bitsandbytes)."))
    var noProvenance = false

    @Flag(help: "Also record the SHA-256 of every output tensor in the manifest.")
    var manifestTensors = false

    func validate() throws {
        if noProvenance && manifestTensors {
            throw ValidationError("--manifest-tensors adds to the manifest, which --no-provenance leaves out; give only one.")
        }
    }

    /// Hashes the inputs and returns what to record, or nil with `--no-provenance`.
    /// - Parameters:
    ///   - options: the command's options as recorded: no paths but base names, no thread
    ///     counts, nothing that differs between machines or runs.
    ///   - dryRun: list the inputs without hashing them (the digests' length is all a plan needs).
    func begin(_ command: String, options: JSONObject, recipe: JSONValue?, inputs: [String], threads: Int,
               dryRun: Bool = false) throws -> Provenance? {
        if noProvenance { return nil }
        return try Provenance.make(wconvVersion: WConvVersion.current, command: ManifestCommand(name: command, options: options),
                                   recipe: recipe, inputs: inputs, threads: threads, hashing: !dryRun)
    }

    /// Writes the manifest of a finished command: inside `output` when it is a directory,
    /// else beside it as `OUTPUT.wconv-manifest.json` (so several files in one directory each
    /// keep theirs). `outputs` are the files written (a directory stands for its files).
    func finish(_ provenance: Provenance?, output: String, outputs: [String], threads: Int) throws {
        guard let provenance else { return }
        let manifestPath = Self.manifestPath(forOutput: output)
        var options = ManifestOptions(threads: threads, force: true)
        if manifestTensors { options.tensorSources = try Self.tensorSources(outputs.isEmpty ? [output] : outputs) }
        try provenance.writeManifest(outputs: outputs.isEmpty ? [output] : outputs, at: manifestPath, options: options)
    }

    static func manifestPath(forOutput output: String) -> String {
        FileSystem.isDirectory(output) ? FileSystem.join(output, Manifest.fileName) : output + "." + Manifest.fileName
    }

    /// The tensors of every weights file among `paths` (directories searched); of a split GGUF
    /// only the first part is opened, which reads the whole set.
    static func tensorSources(_ paths: [String]) throws -> [any TensorSource] {
        var files: [String] = []
        for path in paths {
            if FileSystem.isDirectory(path) {
                files += try FileTree.entries(under: path).filter { !$0.isDirectory }.map { FileSystem.join(path, $0.relativePath) }
            } else {
                files.append(path)
            }
        }
        var sources: [any TensorSource] = []
        var openedGGUF = false
        for file in files {
            if file.hasSuffix(".safetensors") || (file.hasSuffix(".gguf") && !openedGGUF) {
                sources.append(try ModelInput.open(path: file).tensorSource)
                openedGGUF = openedGGUF || file.hasSuffix(".gguf")
            }
        }
        return sources
    }
}

/// Building the recorded options: strings, flags and numbers under their option names, only
/// when given; paths reduced to their base names.
struct RecordedOptions {
    var object = JSONObject()

    mutating func path(_ key: String, _ value: String?) {
        if let value { object[key] = .string(FileSystem.baseName(value.hasSuffix("/") ? String(value.dropLast()) : value)) }
    }

    mutating func string(_ key: String, _ value: String?) {
        if let value { object[key] = .string(value) }
    }

    mutating func int(_ key: String, _ value: Int?) {
        if let value { object[key] = .int(Int64(value)) }
    }

    mutating func flag(_ key: String, _ value: Bool) {
        if value { object[key] = .bool(true) }
    }

    mutating func strings(_ key: String, _ value: [String]) {
        if !value.isEmpty { object[key] = .array(value.map { .string($0) }) }
    }
}

// What each command records. Kept out of the command files so they stay small.

extension Convert {
    var recordedOptions: JSONObject {
        var o = RecordedOptions()
        o.path("input", input)
        o.string("outtype", outtype.rawValue)
        o.string("split_max_size", splitMaxSize)
        o.string("vocab_pre", vocabPre)
        o.path("config", referenceConfig)
        return o.object
    }

    var recipe: JSONValue {
        .object(JSONObject([("method", "convert"), ("outtype", .string(outtype.rawValue))]))
    }
}

extension Quantize {
    var recordedOptions: JSONObject {
        var o = RecordedOptions()
        o.path("input", input)
        o.flag("nf4", nf4)
        o.flag("fp4", fp4)
        o.flag("int8", int8)
        o.string("type", fileType)
        o.int("blocksize", blocksize)
        o.flag("no_double_quant", noDoubleQuant)
        o.string("compute_dtype", computeDtype?.rawValue)
        o.strings("tensor_type", tensorType)
        o.string("output_tensor_type", outputTensorType)
        o.string("token_embedding_type", tokenEmbeddingType)
        o.flag("leave_output_tensor", leaveOutputTensor)
        o.flag("pure", pure)
        o.flag("allow_requantize", allowRequantize)
        o.flag("allow_non_finite", allowNonFinite)
        return o.object
    }
}

extension QuantizeOptions {
    /// The quantization recipe: the method and every setting that changes the numbers.
    var recipe: JSONValue {
        var r = JSONObject()
        switch scheme {
        case .bnb(let s):
            r["method"] = "bitsandbytes"
            r["quant_type"] = .string(s.rawValue)
            if s != .int8 {
                r["blocksize"] = .int(Int64(blockSize))
                r["double_quant"] = .bool(doubleQuant)
                r["compute_dtype"] = .string(computeDType.rawValue)
            }
        case .ggml(let t):
            r["method"] = "llama-quantize"
            r["type"] = .string(t.canonical.rawValue)
            if !tensorTypeOverrides.isEmpty {
                r["tensor_type"] = .array(tensorTypeOverrides.map { .string("\($0.pattern)=\($0.type.name)") })
            }
            if let t = outputTensorType { r["output_tensor_type"] = .string(t.name) }
            if let t = tokenEmbeddingType { r["token_embedding_type"] = .string(t.name) }
            r["leave_output_tensor"] = .bool(leaveOutputTensor)
            r["pure"] = .bool(pure)
        }
        r["allow_requantize"] = .bool(allowRequantize)
        return .object(r)
    }
}

extension Dequantize {
    var recordedOptions: JSONObject {
        var o = RecordedOptions()
        o.path("input", input)
        o.string("outtype", outtype?.rawValue)
        return o.object
    }

    var recipe: JSONValue {
        .object(JSONObject([("method", "dequantize"), ("outtype", outtype.map { .string($0.rawValue) } ?? .null)]))
    }
}

extension QLoRAMerge {
    var recordedOptions: JSONObject {
        var o = RecordedOptions()
        o.path("base", base)
        o.path("adapter", adapter)
        o.string("merge_into", mergeInto.rawValue)
        o.path("original_base", originalBase)
        o.string("outtype", outtype?.rawValue)
        o.string("requantize", requantize.map { _ in requantizeRecipeName })
        o.int("blocksize", blocksize)
        o.flag("no_double_quant", noDoubleQuant)
        return o.object
    }

    var requantizeRecipeName: String {
        switch requantize?.value {
        case .bitsAndBytes(let s)?: s.rawValue
        case .ggml(let t)?: t.rawValue
        case nil: "none"
        }
    }

    var recipe: JSONValue {
        var r = JSONObject([("method", "lora-merge"), ("merge_into", .string(mergeInto.rawValue)),
                            ("outtype", outtype.map { .string($0.rawValue) } ?? .null),
                            ("requantize", requantize == nil ? .null : .string(requantizeRecipeName))])
        if case .bitsAndBytes(let s)? = requantize?.value, s != .int8 {
            r["blocksize"] = .int(Int64(blocksize))
            r["double_quant"] = .bool(!noDoubleQuant)
        }
        return .object(r)
    }

    /// Every file the merge reads.
    var inputPaths: [String] { [base, adapter] + (originalBase.map { [$0] } ?? []) }
}

extension ConvertAdapter {
    var recordedOptions: JSONObject {
        var o = RecordedOptions()
        o.path("input", input)
        o.path("base", base)
        o.string("base_model_name", baseModelName)
        o.string("outtype", output.hasSuffix(".gguf") ? outtype.rawValue : nil)
        return o.object
    }

    /// The adapter, and of the base only what is read: its config.json (or GGUF file).
    var inputPaths: [String] {
        [input] + (base.map { FileSystem.isDirectory($0) ? [FileSystem.join($0, "config.json")] : [$0] } ?? [])
    }

    var recipe: JSONValue {
        .object(JSONObject([("method", "convert-adapter"), ("outtype", output.hasSuffix(".gguf") ? .string(outtype.rawValue) : "f32")]))
    }
}
