import ArgumentParser
import Formats
import TensorCore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's metadata, tensors, types and size.",
        discussion: """
        PATH is a GGUF file (the first part of a split set opens all parts), a safetensors file or \
        shard index, or a Hugging Face model directory. Only headers are read.

        Examples:
          wconv inspect model.gguf
          wconv inspect ./Llama-3.2-1B --json > summary.json
        """)

    @Argument(help: "Model file or directory.")
    var path: String

    // inspect writes nothing on stderr but errors; --quiet is here so every command takes it.
    @OptionGroup var reporting: OutputOptions<InspectJSON>

    @Option(help: "With --json: how many elements of each metadata array to include (-1: all).")
    var arrayLimit = 16

    func run() throws {
        try runCommand {
            let summary = ModelSummary(try ModelInput.open(path: path))
            print(reporting.json ? InspectReport.json(summary, arrayLimit: arrayLimit < 0 ? .max : arrayLimit).serialized(.python(indent: 2, sortKeys: false))
                       : InspectReport.text(summary))
        }
    }
}

/// Renderings of a ``ModelSummary``.
enum InspectReport {
    static func json(_ s: ModelSummary, arrayLimit: Int) -> JSONValue {
        var root = JSONObject()
        root["path"] = .string(s.path)
        root["format"] = .string(s.format.rawValue)
        if let v = s.version { root["version"] = .int(Int64(v)) }
        if let a = s.alignment { root["alignment"] = .int(Int64(a)) }
        root["files"] = .array(s.files.map { .string($0) })
        if let meta = s.ggufMetadata {
            var m = JSONObject()
            for kv in meta.entries {
                var entry = JSONObject()
                entry["type"] = .string(kv.value.type.description)
                if let a = kv.value.arrayValue {
                    entry["element_type"] = .string(a.elementType.description)
                    entry["count"] = .int(Int64(a.count))
                }
                entry["value"] = kv.value.jsonValue(arrayLimit: arrayLimit)
                m[kv.key] = .object(entry)
            }
            root["metadata"] = .object(m)
        }
        if let meta = s.safetensorsMetadata {
            root["safetensors_metadata"] = .object(JSONObject(meta.map { ($0.key, .string($0.value)) }))
        }
        if let config = s.config { root["config"] = .object(config) }
        let quantization = s.bnb?.quantizationByTensor ?? [:]
        root["tensors"] = .array(s.tensors.map { t in
            var object = JSONObject([
                ("name", .string(t.name)),
                ("type", .string(t.encoding.description)),
                ("shape", .array(t.shape.map { .int(Int64($0)) })),
                ("bytes", .int(Int64(t.byteCount))),
                ("offset", .int(Int64(t.fileOffset))),
                ("file", .string(t.file)),
            ])
            if let q = quantization[t.name] { object["quantization"] = .string(q) }
            return .object(object)
        })
        root["types"] = .array(s.typeTotals.map { total in
            .object(JSONObject([
                ("type", .string(total.type)),
                ("tensors", .int(Int64(total.tensorCount))),
                ("bytes", .int(Int64(total.byteCount))),
                ("parameters", .int(Int64(total.elementCount))),
                ("bits_per_weight", .double(rounded(total.bitsPerWeight))),
            ]))
        })
        if let bnb = s.bnb {
            var q = JSONObject()
            q["method"] = "bitsandbytes"
            if let config = bnb.config { q["config"] = .string(config.summary) }
            if let error = bnb.error { q["error"] = .string(error) }
            q["kinds"] = .array(bnb.kindTotals.map { total in
                .object(JSONObject([
                    ("quantization", .string(total.quantization)),
                    ("weights", .int(Int64(total.weightCount))),
                    ("bytes", .int(Int64(total.byteCount))),
                    ("parameters", .int(Int64(total.parameterCount))),
                    ("bits_per_weight", .double(rounded(total.bitsPerWeight))),
                ]))
            })
            root["quantization"] = .object(q)
        }
        root["tensor_count"] = .int(Int64(s.tensors.count))
        // Weights, not stored elements: a bitsandbytes weight counts its original shape.
        root["parameters"] = .int(Int64(s.weightParameterCount))
        root["total_bytes"] = .int(Int64(s.totalByteCount))
        root["bits_per_weight"] = .double(rounded(s.weightBitsPerWeight))
        return .object(root)
    }

    static func text(_ s: ModelSummary) -> String {
        var out: [String] = []
        var head = "\(s.path): "
        switch s.format {
        case .gguf: head += "GGUF v\(s.version ?? 0), alignment \(s.alignment ?? 32)"
        case .hfDirectory: head += "Hugging Face model directory"
        case .safetensors: head += "safetensors"
        }
        if s.files.count > 1 { head += ", \(s.files.count) files" }
        out.append(head)
        if let meta = s.ggufMetadata, !meta.entries.isEmpty {
            out.append("")
            out.append("metadata (\(meta.entries.count) keys):")
            let width = meta.entries.map(\.key.count).max() ?? 0
            for kv in meta.entries {
                out.append("  " + pad(kv.key, width) + "  " + pad(kv.value.type.description, 7) + "  " + kv.value.summary())
            }
        }
        if let config = s.config {
            out.append("")
            out.append("config.json:")
            let width = config.keys.map(\.count).max() ?? 0
            for m in config {
                var text = m.value.serialized(.compact)
                if text.count > 80 { text = String(text.prefix(79)) + "…" }
                out.append("  " + pad(m.key, width) + "  " + text)
            }
        }
        out.append("")
        out.append("tensors (\(s.tensors.count)):")
        let nameWidth = min(60, s.tensors.map(\.name.count).max() ?? 0)
        out.append("  " + pad("name", nameWidth) + "  " + pad("type", 7) + "  " + pad("shape", 16) + "  " + lpad("bytes", 12) + "  " + lpad("offset", 12))
        let quantization = s.bnb?.quantizationByTensor ?? [:]
        for t in s.tensors {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            out.append("  " + pad(t.name, nameWidth) + "  " + pad(t.encoding.description, 7) + "  " + pad(shape, 16)
                + "  " + lpad(String(t.byteCount), 12) + "  " + lpad(String(t.fileOffset), 12)
                + (quantization[t.name].map { "  " + $0 } ?? ""))
        }
        out.append("")
        out.append("types:")
        for total in s.typeTotals {
            out.append("  " + pad(total.type, 7) + "  " + lpad("\(total.tensorCount) tensors", 12) + "  "
                + lpad(byteString(total.byteCount), 10) + "  " + String(format2(total.bitsPerWeight)) + " bits/weight")
        }
        if let bnb = s.bnb {
            out.append("")
            out.append("bitsandbytes" + (bnb.config.map { " (\($0.summary))" } ?? "") + ":")
            if let error = bnb.error { out.append("  layout error: \(error)") }
            for total in bnb.kindTotals {
                out.append("  " + total.quantization + "  " + lpad("\(total.weightCount) weights", 12) + "  "
                    + lpad(byteString(total.byteCount), 10) + "  " + format2(total.bitsPerWeight) + " bits/weight")
            }
        }
        out.append("")
        out.append("total: \(s.weightParameterCount) parameters, \(byteString(s.totalByteCount)) of tensor data, \(format2(s.weightBitsPerWeight)) bits per weight")
        return out.joined(separator: "\n")
    }

    static func rounded(_ x: Double) -> Double { (x * 10000).rounded() / 10000 }

    static func format2(_ x: Double) -> String {
        let r = (x * 100).rounded() / 100
        var s = String(r)
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < 2 { s += String(repeating: "0", count: 2 - decimals) }
        }
        return s
    }

    static func byteString(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : format2(value) + " " + units[unit]
    }

    static func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
    static func lpad(_ s: String, _ width: Int) -> String { s.count >= width ? s : String(repeating: " ", count: width - s.count) + s }
}

/// `inspect --json`.
enum InspectJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "Print the summary as JSON (schema in the README)." }
}
