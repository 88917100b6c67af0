import ArgumentParser
import Formats
import Pipeline
import TensorCore

/// `--dry-run`, for convert, quantize and qlora-merge.
struct DryRunOptions: ParsableArguments {
    @Flag(help: "Print the plan (per tensor: source and target type, shape, bytes; output size; peak memory) and write nothing.")
    var dryRun = false
}

/// `--dry-run`: prints the plan of a command instead of running it (schema in docs/dry-run.md).
enum DryRun {
    static func print(_ plan: OutputPlan, output: String, json: Bool) {
        if json {
            var o = plan.json.objectValue ?? JSONObject()
            o["output"] = .string(output)
            Swift.print(JSONValue.object(o).serialized(.python(indent: 2, sortKeys: true)))
            return
        }
        Swift.print(text(plan, output: output))
    }

    static func text(_ plan: OutputPlan, output: String) -> String {
        let rows = plan.tensors.map { t in
            [t.name, t.sourceType, t.type, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", String(t.byteCount)]
        }
        let header = ["tensor", "source", "type", "shape", "bytes"]
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, c in i == r.count - 1 ? InspectReport.lpad(c, widths[i]) : InspectReport.pad(c, widths[i]) }
                .joined(separator: "  ")
        }
        var lines = ["plan for \(output) (\(plan.format), \(plan.tensors.count) tensors):", "  " + line(header)]
        lines += rows.map { "  " + line($0) }
        lines.append("files:")
        for f in plan.files { lines.append("  \(f.path)  \(f.byteCount) bytes") }
        for w in plan.warnings { lines.append("warning: \(w)") }
        lines.append("output \(plan.outputBytes) bytes (tensor data \(plan.tensorBytes)); predicted peak memory "
            + "\(megabytes(plan.peakMemoryBytes)) MB working + at most \(megabytes(plan.peakInputBytes)) MB of mapped input; nothing written (--dry-run)")
        return lines.joined(separator: "\n")
    }

    static func megabytes(_ bytes: Int) -> String {
        let tenths = (Double(bytes) / 1e5).rounded(.up)
        return "\(Int(tenths) / 10).\(Int(tenths) % 10)"
    }
}
