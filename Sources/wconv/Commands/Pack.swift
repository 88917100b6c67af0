import ArgumentParser
import Formats
import TensorCore

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pack a model directory or file into a .tar.zst with its manifest.",
        discussion: """
        Writes a POSIX tar compressed with zstd. The first member is wconv-manifest.json (the \
        SHA-256 of every file; an existing manifest in the directory keeps its command, recipe \
        and inputs and is verified while packing), then every file and directory sorted by \
        path. Owners, times and modes are fixed, so the same input gives the same archive \
        bytes, whatever --threads. `tar` and `zstd -d` read it; `wconv unpack` checks it.

        The output is written under a temporary name and renamed when complete.

        Examples:
          wconv pack ./smollm2-nf4 -o smollm2-nf4.tar.zst
          wconv pack ./Llama-3-8B -o llama3.tar.zst --level 10 --long
          zstd -dc smollm2-nf4.tar.zst | tar -t
        """)

    @Argument(help: "The model directory (or a single file) to pack.")
    var input: String

    @Option(name: .shortAndLong, help: "The archive to write (conventionally *.tar.zst).")
    var output: String

    @Option(help: "zstd compression level (1 fast … 19 strong; 20–22 need much memory; negative: faster).")
    var level: Int = 3

    @Option(help: "Compression and hashing threads (default: all cores). The archive is the same for any count.")
    var threads: Int = activeProcessorCount

    @Flag(help: "Long-distance matching with a 128 MiB window (as `zstd --long`): finds repeats far apart.")
    var long = false

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ReleaseJSON>

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1.") }
        let range = ZstdSettings.levelRange
        if !range.contains(level) { throw ValidationError("--level must be between \(range.lowerBound) and \(range.upperBound).") }
    }

    func run() throws {
        try runCommand {
            let options = PackOptions(zstd: ZstdSettings(level: level, threads: threads, longDistanceMatching: long),
                                      hashThreads: threads, force: force)
            let report = try ModelArchive.pack(input, to: output, wconvVersion: WConvVersion.current, options: options)
            printSummary(quiet: reporting.quiet, "packed \(report.files) files (\(ReleaseFormat.megabytes(report.fileBytes))) into \(output): "
                + "\(ReleaseFormat.megabytes(report.compressedBytes)), ratio \(ReleaseFormat.fixed(report.ratio, 3)), "
                + "\(ReleaseFormat.fixed(report.seconds, 2)) s, \(ReleaseFormat.fixed(report.megabytesPerSecond, 1)) MB/s"
                + (report.keptInputManifest ? "; verified against the input's \(Manifest.fileName)" : ""))
            if reporting.json {
                print(JSONValue.object(JSONObject([
                    ("archive", .string(output)),
                    ("files", .int(Int64(report.files))),
                    ("directories", .int(Int64(report.directories))),
                    ("file_bytes", .int(Int64(report.fileBytes))),
                    ("tar_bytes", .int(Int64(report.tarBytes))),
                    ("compressed_bytes", .int(Int64(report.compressedBytes))),
                    ("ratio", .double(ReleaseFormat.rounded(report.ratio, 4))),
                    ("seconds", .double(ReleaseFormat.rounded(report.seconds, 3))),
                    ("mb_per_second", .double(ReleaseFormat.rounded(report.megabytesPerSecond, 1))),
                    ("kept_input_manifest", .bool(report.keptInputManifest)),
                ])).serialized(.python(indent: 2, sortKeys: true)))
            }
        }
    }
}
