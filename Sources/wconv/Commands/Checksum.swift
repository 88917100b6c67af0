import ArgumentParser
import Formats
import TensorCore

struct Checksum: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write or check a wconv-manifest.json: the SHA-256 of every file.",
        discussion: """
        Without --check, hashes PATH (a file, or every file below a directory) and writes a \
        manifest: by default wconv-manifest.json inside the directory, or beside the file. \
        Paths in it are relative to the manifest's directory; keys are sorted and nothing \
        machine-specific is recorded, so the same files give the same manifest anywhere. \
        The schema is in docs/manifest.md.

        With --check, PATH is a manifest (or a directory holding wconv-manifest.json): every \
        file it lists is hashed again; each missing or differing file is named on stderr and \
        the exit status is 1 if any, 0 if all match.

        Examples:
          wconv checksum ./smollm2-nf4
          wconv checksum model.gguf --tensors -o model.manifest.json
          wconv checksum --check ./smollm2-nf4/wconv-manifest.json
          wconv checksum --check ./smollm2-nf4 --json > check.json
        """)

    @Argument(help: "File or directory to hash; with --check, the manifest to verify (or its directory).")
    var path: String

    @Option(name: .shortAndLong, help: "Where to write the manifest ('-' for standard output).")
    var output: String?

    @Flag(help: "Verify the files a manifest lists instead of writing one.")
    var check = false

    @Flag(help: "Also record the SHA-256 of every tensor (PATH must be a model wconv reads).")
    var tensors = false

    @Flag(help: "With --check: verify the recorded inputs too (a missing input then fails).")
    var inputs = false

    @Flag(help: "Record absolute paths instead of paths relative to the manifest.")
    var absolutePaths = false

    @Option(help: "Files hashed at once (default: all cores).")
    var threads: Int = activeProcessorCount

    @Flag(help: "Replace an existing manifest.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ReleaseJSON>

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
        if check && (output != nil || tensors || absolutePaths || force) {
            throw ValidationError("--check verifies a manifest; --output, --tensors, --absolute-paths and --force write one.")
        }
        if !check && inputs { throw ValidationError("--inputs goes with --check.") }
    }

    func run() throws {
        try runCommand {
            if check { try verify() } else { try write() }
        }
    }

    private func write() throws {
        let clock = ContinuousClock()
        let start = clock.now
        guard FileSystem.exists(path) else { throw PathError(path: path, FileAccessError.notFound) }
        let toStdout = output == "-"
        let manifestPath = toStdout ? nil : (output ?? Manifest.defaultPath(forOutput: path))
        var options = ManifestOptions(threads: threads, absolutePaths: absolutePaths, force: force)
        if tensors { options.tensorSources = [try ModelInput.open(path: path).tensorSource] }
        if let manifestPath, !force, FileSystem.exists(manifestPath) {
            throw PathError(path: manifestPath, OutputError.exists)
        }
        let directory = manifestPath.map(FileSystem.directoryName) ?? "."
        let manifest = try Manifest.make(wconvVersion: WConvVersion.current, command: nil, recipe: nil,
                                         inputs: [], outputs: [path], relativeTo: directory,
                                         excluding: manifestPath, options: options)
        if let manifestPath {
            try manifest.write(to: manifestPath, force: force)
        } else {
            print(manifest.serialized(), terminator: "")
        }
        let seconds = ReleaseFormat.seconds(clock.now - start)
        let bytes = manifest.outputs.reduce(0) { $0 + $1.byteCount }
        let tensorCount = manifest.outputs.reduce(0) { $0 + ($1.tensors?.count ?? 0) }
        printSummary(quiet: reporting.quiet, "wrote \(manifestPath ?? "manifest to standard output"): \(manifest.outputs.count) files"
            + (tensors ? ", \(tensorCount) tensors" : "")
            + ", \(ReleaseFormat.megabytes(bytes)) hashed in \(ReleaseFormat.fixed(seconds, 2)) s"
            + " (\(ReleaseFormat.fixed(seconds > 0 ? Double(bytes) / 1e6 / seconds : 0, 0)) MB/s)")
        if reporting.json && !toStdout {
            let summary = JSONObject([
                ("manifest", .string(manifestPath ?? "-")),
                ("files", .int(Int64(manifest.outputs.count))),
                ("bytes", .int(Int64(bytes))),
                ("tensors", .int(Int64(tensorCount))),
                ("seconds", .double(ReleaseFormat.rounded(seconds, 3))),
            ])
            print(JSONValue.object(summary).serialized(.python(indent: 2, sortKeys: true)))
        }
    }

    private func verify() throws {
        let manifestPath = FileSystem.isDirectory(path) ? FileSystem.join(path, Manifest.fileName) : path
        let manifest = try Manifest.read(path: manifestPath)
        let results = manifest.check(relativeTo: FileSystem.directoryName(manifestPath), includeInputs: inputs,
                                     threads: threads)
        let failures = results.filter { !$0.isOK }
        for r in failures { printError("error: \(r.message)") }
        if reporting.json {
            let files: [JSONValue] = results.map { r in
                var o = JSONObject()
                o["path"] = .string(r.path)
                o["role"] = .string(r.role)
                o["status"] = .string(r.status.rawValue)
                o["bytes"] = .int(Int64(r.expectedBytes))
                o["sha256"] = .string(r.expectedSHA256)
                o["actual_bytes"] = r.actualBytes.map { .int(Int64($0)) } ?? .null
                o["actual_sha256"] = r.actualSHA256.map { .string($0) } ?? .null
                if let t = r.differingTensors { o["differing_tensors"] = .array(t.map { .string($0) }) }
                if let d = r.detail { o["detail"] = .string(d) }
                return .object(o)
            }
            let report = JSONObject([
                ("manifest", .string(manifestPath)),
                ("ok", .bool(failures.isEmpty)),
                ("checked", .int(Int64(results.count))),
                ("failed", .int(Int64(failures.count))),
                ("files", .array(files)),
            ])
            print(JSONValue.object(report).serialized(.python(indent: 2, sortKeys: true)))
        }
        if !failures.isEmpty {
            throw Failure(.checkFailed, "\(manifestPath): \(failures.count) of \(results.count) files do not match")
        }
        printSummary(quiet: reporting.quiet, "\(manifestPath): all \(results.count) files match")
    }
}

/// Number formatting shared by the release commands (checksum, pack, unpack).
enum ReleaseFormat {
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func rounded(_ x: Double, _ places: Int) -> Double {
        var scale = 1.0
        for _ in 0 ..< places { scale *= 10 }
        return (x * scale).rounded() / scale
    }

    /// `x` with exactly `places` decimals.
    static func fixed(_ x: Double, _ places: Int) -> String {
        guard x.isFinite else { return "\(x)" }
        var scale = 1
        for _ in 0 ..< places { scale *= 10 }
        let n = Int((x * Double(scale)).rounded())
        let whole = String(abs(n) / scale)
        let sign = n < 0 ? "-" : ""
        guard places > 0 else { return sign + whole }
        let frac = String(abs(n) % scale)
        return sign + whole + "." + String(repeating: "0", count: places - frac.count) + frac
    }

    /// Bytes in megabytes (10⁶), one decimal.
    static func megabytes(_ bytes: Int) -> String { fixed(Double(bytes) / 1e6, 1) + " MB" }
}
