public import TensorCore

/// Writes PEFT LoRA adapter directories that `peft.PeftModel.from_pretrained` loads:
/// `adapter_config.json` (``PEFTLoRAConfig/serialized()``), `adapter_model.safetensors` (keys
/// `base_model.model.<module>.lora_A.weight` `[r, in]` / `.lora_B.weight` `[out, r]`, F32,
/// metadata `{"format":"pt"}`, laid out as the `safetensors` package writes), and a `README.md`
/// whose front matter names the base model as PEFT's model card does (llama.cpp's adapter
/// converter reads it for `general.base_model.*`).
public enum PEFTAdapterWriter {
    /// One module to write.
    public struct Entry: Sendable {
        public var module: LoRAModule
        public var matrices: LoRAMatrices
        public init(module: LoRAModule, matrices: LoRAMatrices) {
            self.module = module
            self.matrices = matrices
        }
    }

    /// The bytes of `adapter_model.safetensors` for `entries` in `dtype` (f32 unless asked).
    /// - Throws: ``AdapterError/badShape(tensor:shape:expected:)`` when a matrix's element
    ///   count disagrees with its module's shape.
    /// - Parameter metadata: the file's `__metadata__` (PEFT writes `{"format": "pt"}`).
    public static func weightsFile(_ entries: [Entry], dtype: DType = .f32,
                                   metadata: [(key: String, value: String)] = [("format", "pt")]) throws -> [UInt8] {
        var tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])] = []
        for e in entries {
            let m = e.module
            guard e.matrices.a.count == m.rank * m.inFeatures else {
                throw AdapterError.badShape(tensor: m.keyA, shape: [e.matrices.a.count], expected: "\(m.shapeA)")
            }
            guard e.matrices.b.count == m.outFeatures * m.rank else {
                throw AdapterError.badShape(tensor: m.keyB, shape: [e.matrices.b.count], expected: "\(m.shapeB)")
            }
            tensors.append((SafetensorsTensorSpec(name: m.keyA, dtype: dtype, shape: m.shapeA), encode(e.matrices.a, dtype)))
            tensors.append((SafetensorsTensorSpec(name: m.keyB, dtype: dtype, shape: m.shapeB), encode(e.matrices.b, dtype)))
        }
        return try SafetensorsWriter.serialize(tensors, metadata: metadata)
    }

    /// Writes an adapter directory atomically (under a temporary name, renamed when complete).
    /// - Parameters:
    ///   - force: replace an existing directory.
    ///   - metadata: `__metadata__` of adapter_model.safetensors.
    /// - Throws: ``OutputError`` when the directory exists without `force` or cannot be written.
    public static func write(config: PEFTLoRAConfig, entries: [Entry], to directory: String, force: Bool,
                             dtype: DType = .f32, metadata: [(key: String, value: String)] = [("format", "pt")]) throws {
        let weights = try weightsFile(entries, dtype: dtype, metadata: metadata)
        let out = try AtomicOutput.directory(at: directory, force: force)
        do {
            try writeFile(Array(config.serialized().utf8), to: out.path(of: PEFTAdapter.configFileName))
            try writeFile(weights, to: out.path(of: PEFTAdapter.weightsFileName))
            try writeFile(Array(modelCard(baseModel: config.baseModelNameOrPath).utf8), to: out.path(of: "README.md"))
            try out.commit()
        } catch {
            out.abandon()
            throw error
        }
    }

    /// Writes the adapter's three files into an existing directory (training output, checkpoint),
    /// each replaced atomically; other files there are left alone.
    public static func writeFiles(config: PEFTLoRAConfig, entries: [Entry], into directory: String, dtype: DType = .f32) throws {
        let files: [(String, [UInt8])] = [
            (PEFTAdapter.configFileName, Array(config.serialized().utf8)),
            (PEFTAdapter.weightsFileName, try weightsFile(entries, dtype: dtype)),
            ("README.md", Array(modelCard(baseModel: config.baseModelNameOrPath).utf8)),
        ]
        for (name, bytes) in files {
            let out = try AtomicOutput.file(at: FileSystem.join(directory, name), force: true)
            do {
                try writeFile(bytes, to: out.temporaryPath)
                try out.commit()
            } catch {
                out.abandon()
                throw error
            }
        }
    }

    /// The front matter PEFT's `create_or_update_model_card` writes, without its empty template.
    public static func modelCard(baseModel: String?) -> String {
        var lines = ["---"]
        if let baseModel { lines.append("base_model: \(yamlScalar(baseModel))") }
        lines.append("library_name: peft")
        lines.append("pipeline_tag: text-generation")
        lines.append("tags:")
        if let baseModel { lines.append("- \(yamlScalar("base_model:adapter:" + baseModel))") }
        lines += ["- lora", "- transformers", "---", "", "# LoRA adapter", "",
                  "Trained with wconv (PEFT LoRA format).", ""]
        return lines.joined(separator: "\n")
    }

    /// A YAML plain scalar when safe, else a double-quoted one.
    static func yamlScalar(_ s: String) -> String {
        let plain = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
            (c.value >= 0x30 && c.value <= 0x39) || (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A)
                || "._-/:+".unicodeScalars.contains(c)
        } && !s.hasPrefix("-") && !s.hasSuffix(":")
        if plain { return s }
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    static func encode(_ values: [Float], _ dtype: DType) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * dtype.bitCount / 8)
        values.withUnsafeBufferPointer { v in
            bytes.withUnsafeMutableBytes { DenseFloat.encode(v, as: dtype, into: $0) }
        }
        return bytes
    }

    static func writeFile(_ bytes: [UInt8], to path: String) throws {
        let file = try OutputFile(path: path)
        try file.write(bytes)
        try file.close()
    }
}
