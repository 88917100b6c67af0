import ArgumentParser
import Formats
import Pipeline
#if canImport(Glibc)
import Glibc
#endif

/// `--json` and `--quiet`, the one declaration every command but `verify` (whose `--json` takes a
/// file) includes as an option group. `Help` gives the command's own `--json` help where what it
/// prints differs; the flags, their names and the `--quiet` help are the same everywhere. The
/// schemas of the JSON results are in docs/cli-json.md.
struct OutputOptions<Help: JSONFlagHelp>: ParsableArguments {
    @Flag(help: Help.json)
    var json = false

    @Flag(name: .shortAndLong, help: quietHelp)
    var quiet = false

    /// Prints `result` on stdout when --json was given.
    func printResult(_ result: JSONObject) {
        if json { print(JSONValue.object(result).serialized(.python(indent: 2, sortKeys: false))) }
    }

    /// Prints a human summary on stderr unless --quiet.
    func printSummary(_ text: String) {
        wconv.printSummary(quiet: quiet, text)
    }
}

/// Prints a human summary on stderr unless `quiet` (for commands with a `--quiet` flag of their own).
func printSummary(quiet: Bool, _ text: String) {
    if !quiet { printError(text) }
}

/// The help of a command's `--json` flag (see `OutputOptions`).
protocol JSONFlagHelp {
    static var json: ArgumentHelp { get }
}

/// `--json` of the commands that write a model (convert, quantize, dequantize, convert-adapter).
enum ResultJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "Print the result as one JSON object on stdout (schema: docs/cli-json.md)." }
}

/// `--json` of checksum, pack and unpack, whose results are described with the manifest.
enum ReleaseJSON: JSONFlagHelp {
    static var json: ArgumentHelp { "Print the result as JSON on standard output (schema in docs/manifest.md)." }
}

/// The help of every `--quiet` flag.
let quietHelp = ArgumentHelp("No progress and no summary on stderr (errors are still printed).")

/// Shows a pipeline's progress on stderr: NDJSON events when stderr is not a terminal, a
/// progress bar with rate and ETA when it is, nothing with --quiet. Events are throttled to at
/// most ten a second (the last tensor always reports); see docs/cli-json.md "Progress events".
final class ProgressReporter: @unchecked Sendable {
    enum Mode { case silent, events, bar }

    let mode: Mode
    let command: String
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    // Touched only by the pipeline's writing thread (one call at a time), then by finish().
    private var lastShown: ContinuousClock.Instant?
    private var barShown = false
    private var last: PipelineProgress?

    init(command: String, quiet: Bool, terminal: Bool = isatty(2) != 0) {
        self.command = command
        mode = quiet ? .silent : terminal ? .bar : .events
        start = clock.now
    }

    /// The handler to give the pipeline (nil when silent).
    var handler: PipelineProgressHandler? {
        guard mode != .silent else { return nil }
        return { @Sendable [self] progress in update(progress) }
    }

    var elapsed: Double { Self.seconds(clock.now - start) }

    func update(_ p: PipelineProgress) {
        last = p
        let now = clock.now
        if let lastShown, now - lastShown < .milliseconds(100), p.tensorsDone < p.tensorCount { return }
        lastShown = now
        let elapsed = Self.seconds(now - start)
        // ETA from the byte rate so far: tensors differ in size by orders of magnitude.
        let eta = p.bytesDone > 0 ? elapsed * Double(p.bytesTotal - p.bytesDone) / Double(p.bytesDone) : nil
        switch mode {
        case .silent:
            return
        case .events:
            emit([("event", "progress"), ("command", .string(command)),
                  ("tensor", .int(Int64(p.tensorsDone))), ("tensors", .int(Int64(p.tensorCount))),
                  ("name", .string(p.tensorName)),
                  ("bytes", .int(Int64(p.bytesDone))), ("total_bytes", .int(Int64(p.bytesTotal))),
                  ("elapsed_seconds", .double(Self.rounded(elapsed))), ("eta_seconds", eta.map { .double(Self.rounded($0)) } ?? .null)])
        case .bar:
            let fraction = p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : Double(p.tensorsDone) / Double(max(1, p.tensorCount))
            let width = 24
            let filled = min(width, Int(fraction * Double(width)))
            let rate = elapsed > 0 ? Double(p.bytesDone) / elapsed / 1e6 : 0
            var line = "\r\u{1B}[K[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            line += "\(p.tensorsDone)/\(p.tensorCount) tensors  \(fixed(Double(p.bytesDone) / 1e6))/\(fixed(Double(p.bytesTotal) / 1e6)) MB"
            line += "  \(fixed(rate)) MB/s"
            if let eta { line += "  ETA \(Self.duration(eta))" }
            printErrorRaw(line)
            barShown = true
        }
    }

    /// Progress counted in steps of a phase (verify's chunks, qlora-merge's tensors), for work
    /// that is not a pipeline writing tensors: the same throttling, `phase`/`done`/`total` fields.
    func step(phase: String, done: Int, total: Int, name: String? = nil) {
        let now = clock.now
        if let lastShown, now - lastShown < .milliseconds(100), done < total { return }
        lastShown = now
        let elapsed = Self.seconds(now - start)
        let eta = done > 0 && total >= done ? elapsed * Double(total - done) / Double(done) : nil
        switch mode {
        case .silent:
            return
        case .events:
            var fields: [(String, JSONValue)] = [("event", "progress"), ("command", .string(command)), ("phase", .string(phase)),
                                                 ("done", .int(Int64(done))), ("total", .int(Int64(total)))]
            if let name { fields.append(("name", .string(name))) }
            fields += [("elapsed_seconds", .double(Self.rounded(elapsed))), ("eta_seconds", eta.map { .double(Self.rounded($0)) } ?? .null)]
            emit(fields)
        case .bar:
            var line = "\r\u{1B}[K\(phase) \(done)/\(total)"
            if let name { line += " \(name)" }
            if let eta { line += "  ETA \(Self.duration(eta))" }
            printErrorRaw(String(line.prefix(120)))
            barShown = true
        }
    }

    /// Ends the display: the "done" event (with `fields` added) or the bar cleared.
    func finish(_ fields: [(String, JSONValue)] = []) {
        switch mode {
        case .silent:
            return
        case .events:
            var object: [(String, JSONValue)] = [("event", "done"), ("command", .string(command))]
            if let last {
                object += [("tensors", .int(Int64(last.tensorCount))), ("bytes", .int(Int64(last.bytesDone)))]
            }
            object += fields
            object.append(("elapsed_seconds", .double(Self.rounded(elapsed))))
            emit(object)
        case .bar:
            if barShown { printErrorRaw("\r\u{1B}[K") }
        }
    }

    private func emit(_ fields: [(String, JSONValue)]) {
        printError(JSONValue.object(JSONObject(fields)).serialized(.compact))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Milliseconds are enough for timings.
    static func rounded(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        if s >= 60 { return "\(s / 60)m\(s % 60)s" }
        return "\(s)s"
    }
}
