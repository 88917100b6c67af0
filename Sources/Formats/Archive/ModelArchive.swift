#if canImport(Glibc)
import Glibc
#endif
public import TensorCore

/// Settings of ``ModelArchive/pack(_:to:wconvVersion:options:)``.
public struct PackOptions: Sendable {
    public var zstd: ZstdSettings
    /// Threads hashing files that the input's manifest does not already cover.
    public var hashThreads: Int
    public var force: Bool

    public init(zstd: ZstdSettings = ZstdSettings(), hashThreads: Int = activeProcessorCount, force: Bool = false) {
        self.zstd = zstd
        self.hashThreads = max(1, hashThreads)
        self.force = force
    }
}

/// What a pack wrote.
public struct PackReport: Sendable {
    /// Files packed, not counting `wconv-manifest.json`.
    public var files: Int
    public var directories: Int
    /// Sum of the packed files' sizes.
    public var fileBytes: Int
    /// Size of the uncompressed tar stream.
    public var tarBytes: Int
    public var compressedBytes: Int
    public var seconds: Double
    /// The manifest stored as the first member.
    public var manifest: Manifest
    /// Whether the input carried a `wconv-manifest.json` whose provenance was kept.
    public var keptInputManifest: Bool

    /// Uncompressed tar bytes per compressed byte.
    public var ratio: Double { compressedBytes > 0 ? Double(tarBytes) / Double(compressedBytes) : 0 }
    /// Uncompressed megabytes (10⁶ bytes) packed per second.
    public var megabytesPerSecond: Double { seconds > 0 ? Double(tarBytes) / 1e6 / seconds : 0 }
}

/// Settings of ``ModelArchive/unpack(_:to:options:)``.
public struct UnpackOptions: Sendable {
    public var limits: TarLimits
    public var force: Bool
    /// Refuse an archive without a `wconv-manifest.json` (one made by plain `tar`).
    public var requireManifest: Bool

    public init(limits: TarLimits = TarLimits(), force: Bool = false, requireManifest: Bool = false) {
        self.limits = limits
        self.force = force
        self.requireManifest = requireManifest
    }
}

/// What an unpack extracted.
public struct UnpackReport: Sendable {
    /// Files extracted, not counting `wconv-manifest.json`.
    public var files: Int
    public var directories: Int
    public var fileBytes: Int
    public var tarBytes: Int
    public var compressedBytes: Int
    public var seconds: Double
    /// The archive's manifest, every file of which was verified; nil if it had none.
    public var manifest: Manifest?

    public var ratio: Double { compressedBytes > 0 ? Double(tarBytes) / Double(compressedBytes) : 0 }
    public var megabytesPerSecond: Double { seconds > 0 ? Double(tarBytes) / 1e6 / seconds : 0 }
}

/// Release archives: a model directory (or file) as a deterministic tar compressed with zstd,
/// with `wconv-manifest.json` as its first member; and their checked extraction.
///
/// The tar is POSIX pax (ustar headers, PAX records only for paths over 100 bytes or files
/// over 8 GiB): members sorted by the bytes of their paths, directories before their
/// contents, owner 0:0 without names, mtime 0, mode 0644 for files and 0755 for directories,
/// padded to 10240-byte records as GNU tar does. `tar` and `zstd -d` read it.
public enum ModelArchive {
    static let recordSize = 10240
    static let window = 4 << 20
    static let maxManifestBytes = 64 << 20

    private struct Member {
        let path: String
        let isDirectory: Bool
        let size: Int
        let source: String
    }

    /// Packs `input` (a directory, or a single file) into `output` (`*.tar.zst`), atomically.
    ///
    /// If `input` is a directory holding a `wconv-manifest.json`, its command, recipe and
    /// inputs are kept and its digests are verified while packing (a file that differs fails
    /// the pack); files it does not list are hashed first and added. Otherwise a manifest of
    /// every file is made. Either way, every file is hashed again as it is streamed, so a file
    /// changed during the pack cannot slip into an archive whose manifest disagrees.
    public static func pack(_ input: String, to output: String, wconvVersion: String,
                            options: PackOptions = PackOptions()) throws -> PackReport {
        let clock = ContinuousClock()
        let start = clock.now
        guard FileSystem.exists(input) else { throw PathError(path: input, FileAccessError.notFound) }
        let root: String
        var members: [Member] = []
        var existing: Manifest?
        if FileSystem.isDirectory(input) {
            root = input
            // An archive written into the directory it packs must not contain itself.
            let inputRoot = try FileTree.canonicalDirectory(input)
            let outputPath = (try? FileTree.canonicalPath(output)) ?? ""
            for e in try FileTree.entries(under: input)
            where e.relativePath != Manifest.fileName && FileSystem.join(inputRoot, e.relativePath) != outputPath {
                members.append(Member(path: e.relativePath, isDirectory: e.isDirectory, size: e.byteCount,
                                      source: FileSystem.join(input, e.relativePath)))
            }
            let manifestPath = FileSystem.join(input, Manifest.fileName)
            if FileSystem.exists(manifestPath) { existing = try Manifest.read(path: manifestPath) }
        } else {
            root = FileSystem.directoryName(input)
            let size = try MappedFile(path: input).count
            members.append(Member(path: FileSystem.baseName(input), isDirectory: false, size: size, source: input))
        }
        let (manifest, trusted) = try manifestFor(members, root: root, existing: existing, wconvVersion: wconvVersion,
                                                  threads: options.hashThreads)
        let digests = Dictionary(manifest.outputs.map { ($0.path, $0.sha256) }, uniquingKeysWith: { a, _ in a })
        let manifestBytes = Array(manifest.serialized().utf8)

        var tarBytes = TarHeader.headerByteCount(path: Manifest.fileName, size: manifestBytes.count)
            + manifestBytes.count + TarHeader.paddingAfter(manifestBytes.count)
        for m in members {
            tarBytes += TarHeader.headerByteCount(path: m.path, size: m.size) + m.size + TarHeader.paddingAfter(m.size)
        }
        tarBytes += 2 * TarHeader.blockSize
        tarBytes += (recordSize - tarBytes % recordSize) % recordSize

        let out = try AtomicOutput.file(at: output, force: options.force)
        let file = try OutputFile(path: out.temporaryPath)
        let zstd = try ZstdCompressor(settings: options.zstd, pledgedSize: tarBytes, sink: file)
        try zstd.write(TarHeader.blocks(path: Manifest.fileName, type: .regular, size: manifestBytes.count))
        try zstd.write(manifestBytes)
        try zstd.write(zeros(TarHeader.paddingAfter(manifestBytes.count)))
        var fileBytes = 0
        for m in members {
            if m.isDirectory {
                try zstd.write(TarHeader.blocks(path: m.path, type: .directory, size: 0))
                continue
            }
            try zstd.write(TarHeader.blocks(path: m.path, type: .regular, size: m.size))
            let digest = try stream(m, into: zstd)
            guard digest == digests[m.path] else {
                let want = digests[m.path] ?? "nothing"
                // A file the input's manifest vouched for was not hashed before: it simply
                // differs from its manifest. One we hashed ourselves changed during the pack.
                throw PathError(path: m.source, trusted.contains(m.path)
                    ? Failure(.checkFailed, "SHA-256 \(digest), but \(Manifest.fileName) says \(want)")
                    : Failure(.ioError, "changed while being packed (SHA-256 \(digest), hashed as \(want) before)"))
            }
            try zstd.write(zeros(TarHeader.paddingAfter(m.size)))
            fileBytes += m.size
        }
        let end = tarBytes - zstd.consumed
        try zstd.write(zeros(end))
        try zstd.finish()
        let compressed = file.offset
        try file.close()
        try out.commit()
        let elapsed = clock.now - start
        return PackReport(files: members.filter { !$0.isDirectory }.count, directories: members.filter(\.isDirectory).count,
                          fileBytes: fileBytes, tarBytes: tarBytes, compressedBytes: compressed,
                          seconds: seconds(elapsed), manifest: manifest, keptInputManifest: existing != nil)
    }

    /// The manifest to store: the input's own (provenance kept, its files trusted for now and
    /// verified while streaming) completed with digests of the files it does not list.
    /// Returns it with the paths taken on trust from the input's manifest.
    private static func manifestFor(_ members: [Member], root: String, existing: Manifest?, wconvVersion: String,
                                    threads: Int) throws -> (Manifest, Set<String>) {
        let files = members.filter { !$0.isDirectory }
        let byPath = Dictionary(files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var listed: [ManifestFile] = []
        var listedPaths = Set<String>()
        if let existing {
            let manifestPath = FileSystem.join(root, Manifest.fileName)
            for f in existing.outputs {
                guard let m = byPath[f.path] else {
                    throw PathError(path: manifestPath, Failure(.checkFailed,
                        "lists \"\(f.path)\", which is not in the directory (run `wconv checksum --check` to see what changed)"))
                }
                guard m.size == f.byteCount else {
                    throw PathError(path: m.source, Failure(.checkFailed,
                        "\(m.size) bytes, but \(Manifest.fileName) says \(f.byteCount) (the manifest is out of date)"))
                }
                listed.append(f)
                listedPaths.insert(f.path)
            }
        }
        let unlisted = files.filter { !listedPaths.contains($0.path) }.map(\.source)
        let hashed = try Manifest.make(wconvVersion: wconvVersion, command: nil, recipe: nil, inputs: [], outputs: unlisted,
                                       relativeTo: root, options: ManifestOptions(threads: threads)).outputs
        var manifest = Manifest(wconvVersion: existing?.wconvVersion ?? wconvVersion, command: existing?.command,
                                recipe: existing?.recipe, inputs: existing?.inputs ?? [], outputs: listed + hashed)
        manifest.otherMembers = existing?.otherMembers ?? JSONObject()
        manifest.normalize()
        return (manifest, listedPaths)
    }

    /// Streams one file into the compressor a window at a time, hashing it on the way.
    private static func stream(_ m: Member, into zstd: ZstdCompressor) throws -> String {
        let mapped = try MappedFile(path: m.source)
        guard mapped.count == m.size else { throw PathError(path: m.source, FileAccessError.changedWhileOpen) }
        mapped.adviseSequential()
        let hasher = StreamingSHA256()
        var offset = 0
        while offset < mapped.count {
            let end = min(mapped.count, offset + window)
            guard let chunk = mapped.slice(offset ..< end) else { break }
            if let next = mapped.slice(end ..< min(mapped.count, end + window)) { MappedFile.adviseWillNeed(next) }
            hasher.update(chunk)
            try zstd.write(chunk)
            mapped.releasePages(of: chunk)
            offset = end
        }
        try mapped.checkUnchanged()
        return hasher.finalizeHex()
    }

    private static func zeros(_ count: Int) -> [UInt8] { [UInt8](repeating: 0, count: count) }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Extracts `archive` into the directory `directory`, atomically: the files are written
    /// under a temporary name, checked, and the directory appears only when everything
    /// matched. Decompression runs on the calling thread, extraction on a second one. With a manifest in the archive, every member must be listed in it with the
    /// same size and SHA-256, and every listed file must be present.
    public static func unpack(_ archive: String, to directory: String,
                              options: UnpackOptions = UnpackOptions()) throws -> UnpackReport {
        let clock = ContinuousClock()
        let start = clock.now
        let input = try MappedFile(path: archive)
        let out = try AtomicOutput.directory(at: directory, force: options.force)
        let extractor = Extractor(root: out.temporaryPath)
        let reader = TarReader(limits: options.limits) { event in try extractor.handle(event) }
        do {
            let zstd = try ZstdDecompressor()
            // Decompression on this thread, parsing + hashing + writing on another.
            try ByteRelay.run(produce: { push in try zstd.decompress(input, push) },
                              consume: { try reader.consume($0) })
            try reader.finish()
            try extractor.finish(requireManifest: options.requireManifest)
        } catch {
            out.abandon()
            throw PathError(path: archive, error)
        }
        try out.commit()
        return UnpackReport(files: extractor.files, directories: extractor.directories, fileBytes: extractor.fileBytes,
                            tarBytes: reader.position, compressedBytes: input.count,
                            seconds: seconds(clock.now - start), manifest: extractor.manifest)
    }
}

/// Writes the events of a ``TarReader`` under a directory we own, hashing every file, and
/// checks them against the archive's manifest.
final class Extractor {
    let root: String
    /// Paths created so far: true for directories.
    private var kinds: [String: Bool] = [:]
    private var current: (path: String, file: OutputFile?, hasher: StreamingSHA256, size: Int)?
    private var manifestBuffer: [UInt8]?
    private var digests: [String: (size: Int, sha256: String)] = [:]
    private(set) var manifest: Manifest?
    private var expected: [String: ManifestFile] = [:]
    /// Files extracted, not counting the manifest.
    private(set) var files = 0
    private(set) var directories = 0
    private(set) var fileBytes = 0

    init(root: String) { self.root = root }

    func handle(_ event: TarEvent) throws {
        switch event {
        case .directory(let path):
            if kinds[path] == false { throw ArchiveError.conflictingPath(path) }
            try makeParents(of: path)
            try makeDirectory(path)
        case .fileStart(let path, let size):
            if let kind = kinds[path] { throw kind ? ArchiveError.conflictingPath(path) : ArchiveError.duplicate(path) }
            try makeParents(of: path)
            kinds[path] = false
            if path == Manifest.fileName {
                guard size <= ModelArchive.maxManifestBytes else { throw ArchiveError.badManifest("larger than 64 MiB") }
                manifestBuffer = []
                current = (path, nil, StreamingSHA256(), size)
                return
            }
            if manifest != nil {
                guard let want = expected[path] else { throw ArchiveError.notInManifest(path) }
                guard want.byteCount == size else { throw ArchiveError.sizeDiffersFromManifest(path: path, size: size, manifest: want.byteCount) }
            }
            try checkSpace(path, size)
            let file = try OutputFile(path: FileSystem.join(root, path))
            current = (path, file, StreamingSHA256(), size)
        case .fileData(let bytes):
            guard let c = current else { return }
            if let file = c.file {
                try file.write(bytes)
                c.hasher.update(bytes)
            } else {
                manifestBuffer?.append(contentsOf: bytes)
            }
        case .fileEnd:
            guard let c = current else { return }
            current = nil
            guard let file = c.file else {
                try finishManifest()
                return
            }
            try file.close()
            files += 1
            fileBytes += c.size
            let digest = c.hasher.finalizeHex()
            digests[c.path] = (c.size, digest)
            if manifest != nil { try verify(c.path) }
        }
    }

    /// Parses the manifest member, writes it out, and checks the files extracted before it.
    private func finishManifest() throws {
        let bytes = manifestBuffer ?? []
        manifestBuffer = nil
        let parsed: Manifest
        do { parsed = try bytes.withUnsafeBytes { try Manifest(bytes: $0) } } catch {
            throw ArchiveError.badManifest("\(error)")
        }
        for f in parsed.outputs {
            guard FileTree.isSafeRelativePath(f.path) else { throw ArchiveError.badManifest("unsafe path \"\(f.path)\"") }
            guard f.path != Manifest.fileName else { throw ArchiveError.badManifest("lists itself") }
        }
        manifest = parsed
        expected = Dictionary(parsed.outputs.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let file = try OutputFile(path: FileSystem.join(root, Manifest.fileName))
        try file.write(bytes)
        try file.close()
        for path in digests.keys.sorted() { try verify(path) }
    }

    private func verify(_ path: String) throws {
        guard let want = expected[path] else { throw ArchiveError.notInManifest(path) }
        guard let got = digests[path] else { return }
        guard got.size == want.byteCount else { throw ArchiveError.sizeDiffersFromManifest(path: path, size: got.size, manifest: want.byteCount) }
        guard got.sha256 == want.sha256 else { throw ArchiveError.digestMismatch(path: path, actual: got.sha256, manifest: want.sha256) }
    }

    /// Called once the stream has ended: every file the manifest lists must have arrived.
    func finish(requireManifest: Bool) throws {
        guard let manifest else {
            if requireManifest { throw ArchiveError.badManifest("the archive has no \(Manifest.fileName)") }
            return
        }
        let missing = manifest.outputs.map(\.path).filter { digests[$0] == nil }
        if !missing.isEmpty { throw ArchiveError.missingFromArchive(missing) }
    }

    private func makeParents(of path: String) throws {
        let parts = path.split(separator: "/")
        var prefix = ""
        for part in parts.dropLast() {
            prefix = prefix.isEmpty ? String(part) : prefix + "/" + part
            if kinds[prefix] == false { throw ArchiveError.conflictingPath(path) }
            if kinds[prefix] == nil { try makeDirectory(prefix) }
        }
    }

    private func makeDirectory(_ path: String) throws {
        guard kinds[path] == nil else { return }
        let full = FileSystem.join(root, path)
        guard mkdir(full, 0o755) == 0 else { throw PathError(path: full, OutputError.cannotCreate(errno: errno)) }
        kinds[path] = true
        directories += 1
    }

    /// Refuses a member larger than the free space left, before writing any of it.
    private func checkSpace(_ path: String, _ size: Int) throws {
        var fs = statvfs()
        guard size > 0, statvfs(root, &fs) == 0 else { return }
        let (free, overflow) = Int(fs.f_bavail).multipliedReportingOverflow(by: Int(fs.f_frsize))
        if !overflow && free < size { throw ArchiveError.notEnoughSpace(path: path, needed: size, available: free) }
    }
}
