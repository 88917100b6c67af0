import ArgumentParser
import Formats
import TensorCore

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract a .tar.zst made by `wconv pack` (or tar + zstd) and verify it.",
        discussion: """
        Decompresses and extracts in one streaming pass into a temporary directory beside the \
        output, which is renamed into place only when everything checked out; on any error \
        nothing is left behind.

        Refused: absolute paths and '..', links, devices and FIFOs, sparse files, damaged \
        headers (checksums), truncated streams, members beyond --max-size. With a \
        wconv-manifest.json in the archive every file must be listed in it with the same size \
        and SHA-256, and every listed file must be present (exit 1 otherwise). An archive \
        without a manifest is extracted with a warning unless --require-manifest.

        Examples:
          wconv unpack smollm2-nf4.tar.zst -o ./smollm2-nf4
          wconv unpack release.tar.zst -o ./model --require-manifest --max-size 50GB
        """)

    @Argument(help: "The archive (.tar.zst).")
    var archive: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(help: "Largest total size of the extracted files (e.g. 50GB; default 4 TiB).")
    var maxSize: String?

    @Flag(help: "Fail if the archive carries no wconv-manifest.json.")
    var requireManifest = false

    @Flag(help: "Replace the output directory if it exists.")
    var force = false

    @OptionGroup var reporting: OutputOptions<ReleaseJSON>

    func validate() throws {
        if let s = maxSize, (SafetensorsShardPlan.parseSize(s) ?? 0) <= 0 {
            throw ValidationError("--max-size must be a size such as 50GB or 500MB.")
        }
    }

    func run() throws {
        try runCommand {
            var limits = TarLimits()
            if let s = maxSize, let n = SafetensorsShardPlan.parseSize(s) { limits.maxTotalBytes = n }
            let report = try ModelArchive.unpack(archive, to: output,
                                                 options: UnpackOptions(limits: limits, force: force,
                                                                        requireManifest: requireManifest))
            let verified = report.manifest.map { "all \($0.outputs.count) verified against \(Manifest.fileName)" }
                ?? "no \(Manifest.fileName) in the archive: structure checked, contents not verified"
            printSummary(quiet: reporting.quiet, "unpacked \(report.files) files (\(ReleaseFormat.megabytes(report.fileBytes))) into \(output): "
                + "\(verified); ratio \(ReleaseFormat.fixed(report.ratio, 3)), "
                + "\(ReleaseFormat.fixed(report.seconds, 2)) s, \(ReleaseFormat.fixed(report.megabytesPerSecond, 1)) MB/s")
            if reporting.json {
                print(JSONValue.object(JSONObject([
                    ("directory", .string(output)),
                    ("files", .int(Int64(report.files))),
                    ("directories", .int(Int64(report.directories))),
                    ("file_bytes", .int(Int64(report.fileBytes))),
                    ("tar_bytes", .int(Int64(report.tarBytes))),
                    ("compressed_bytes", .int(Int64(report.compressedBytes))),
                    ("ratio", .double(ReleaseFormat.rounded(report.ratio, 4))),
                    ("seconds", .double(ReleaseFormat.rounded(report.seconds, 3))),
                    ("mb_per_second", .double(ReleaseFormat.rounded(report.megabytesPerSecond, 1))),
                    ("verified", .bool(report.manifest != nil)),
                ])).serialized(.python(indent: 2, sortKeys: true)))
            }
        }
    }
}
