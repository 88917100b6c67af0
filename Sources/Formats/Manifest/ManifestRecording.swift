public import TensorCore

/// How a manifest is computed.
public struct ManifestOptions: Sendable {
    /// Files (and tensors) hashed at once.
    public var threads: Int
    /// Record absolute paths instead of paths relative to the manifest's directory (they name
    /// the machine's directories, so the manifest is no longer the same on another machine).
    public var absolutePaths: Bool
    /// Sources whose tensors get their own digests, attached to the file each tensor lives in.
    public var tensorSources: [any TensorSource]
    /// Replace an existing manifest file.
    public var force: Bool

    public init(threads: Int = activeProcessorCount, absolutePaths: Bool = false,
                tensorSources: [any TensorSource] = [], force: Bool = false) {
        self.threads = max(1, threads)
        self.absolutePaths = absolutePaths
        self.tensorSources = tensorSources
        self.force = force
    }
}

extension Manifest {
    /// Hashes `inputs` and `outputs` and returns their manifest, with paths relative to
    /// `directory` (where the manifest will live).
    ///
    /// Each path may be a file or a directory; a directory stands for every file below it
    /// (sorted, links to files followed). A file named `excluding` (the manifest itself) is
    /// left out. Files are hashed in parallel, largest first, and tensors of
    /// ``ManifestOptions/tensorSources`` alongside.
    public static func make(
        wconvVersion: String, command: ManifestCommand?, recipe: JSONValue?,
        inputs: [String], outputs: [String], relativeTo directory: String,
        excluding: String? = nil, options: ManifestOptions = ManifestOptions()
    ) throws -> Manifest {
        let base = try FileTree.canonicalDirectory(directory)
        let excluded = try excluding.map { try FileTree.canonicalPath($0) }
        let inputFiles = try expand(inputs, excluding: excluded)
        let outputFiles = try expand(outputs, excluding: excluded)
        let all = inputFiles + outputFiles
        let position = Dictionary(all.enumerated().map { ($1.canonical, $0) }, uniquingKeysWith: { a, _ in a })

        // Tensor jobs: (file index, source, entry) for every tensor stored in a listed file.
        struct TensorJob: @unchecked Sendable {
            // @unchecked: TensorEntry and the source are Sendable; the tuple is only read.
            let file: Int
            let source: any TensorSource
            let entry: TensorEntry
        }
        var tensorJobs: [TensorJob] = []
        for source in options.tensorSources {
            var canonicalOf: [String: String] = [:]
            for entry in source.entries {
                let canonical: String
                if let c = canonicalOf[entry.file] { canonical = c } else {
                    canonical = (try? FileTree.canonicalPath(entry.file)) ?? entry.file
                    canonicalOf[entry.file] = canonical
                }
                if let f = position[canonical] { tensorJobs.append(TensorJob(file: f, source: source, entry: entry)) }
            }
        }

        enum Digest: Sendable { case file(Int, String), tensor(String) }
        let jobCount = all.count + tensorJobs.count
        let sizes = all.map(\.byteCount) + tensorJobs.map(\.entry.byteCount)
        let order = Array(0 ..< jobCount).sorted { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }
        let filePaths = all.map(\.path)
        let jobs = tensorJobs
        let results = runJobs(count: jobCount, threads: options.threads, order: order) { k -> Digest in
            if k < filePaths.count {
                let (n, hex) = try SHA256Hashing.hexOfOutputFile(at: filePaths[k])
                return .file(n, hex)
            }
            let job = jobs[k - filePaths.count]
            let bytes = try job.source.bytes(of: job.entry)
            // A window at a time, releasing pages behind, so a 1 GB embedding is not resident at once.
            let hasher = StreamingSHA256()
            var offset = 0
            while offset < bytes.count {
                let piece = UnsafeRawBufferPointer(rebasing: bytes[offset ..< min(bytes.count, offset + SHA256Hashing.window)])
                hasher.update(piece)
                job.source.releasePages(of: piece)
                offset += piece.count
            }
            return .tensor(hasher.finalizeHex())
        }

        var files: [ManifestFile] = []
        for (i, f) in all.enumerated() {
            guard case .file(let n, let hex) = try results[i].get() else { throw Failure(.internalError, "digest kind") }
            let path = options.absolutePaths ? f.canonical : FileTree.relativePath(from: base, to: f.canonical)
            files.append(ManifestFile(path: path, byteCount: n, sha256: hex))
        }
        for (j, job) in tensorJobs.enumerated() {
            guard case .tensor(let hex) = try results[all.count + j].get() else { throw Failure(.internalError, "digest kind") }
            let t = ManifestTensor(name: job.entry.name, type: job.entry.encoding.description, shape: job.entry.shape,
                                   byteCount: job.entry.byteCount, sha256: hex)
            files[job.file].tensors = (files[job.file].tensors ?? []) + [t]
        }
        var manifest = Manifest(wconvVersion: wconvVersion, command: command, recipe: recipe,
                                inputs: Array(files[..<inputFiles.count]), outputs: Array(files[inputFiles.count...]))
        manifest.normalize()
        return manifest
    }

    /// Hashes the inputs and outputs of a command and writes `wconv-manifest.json` (or the
    /// file at `manifestPath`) atomically; what commands call to leave provenance beside their
    /// outputs.
    ///
    /// Call it before committing an `AtomicOutput` directory, with `manifestPath` inside its
    /// ``AtomicOutput/temporaryPath``: the relative paths are the same once it is renamed, and
    /// the manifest appears together with the files. For a single-file output, call it after
    /// the output's `commit()`, since files are recorded under the names they have now.
    ///
    /// ```swift
    /// try Manifest.record(wconvVersion: WConvVersion.current,
    ///                     command: ManifestCommand(name: "quantize", options: JSONObject([("type", "Q4_K_M")])),
    ///                     recipe: .object(JSONObject([("method", "ggml"), ("type", "Q4_K_M")])),
    ///                     inputs: [inputDirectory], outputs: [output.temporaryPath],
    ///                     at: output.path(of: Manifest.fileName))
    /// ```
    @discardableResult
    public static func record(
        wconvVersion: String, command: ManifestCommand?, recipe: JSONValue?,
        inputs: [String], outputs: [String], at manifestPath: String,
        options: ManifestOptions = ManifestOptions()
    ) throws -> Manifest {
        let manifest = try make(wconvVersion: wconvVersion, command: command, recipe: recipe,
                                inputs: inputs, outputs: outputs,
                                relativeTo: FileSystem.directoryName(manifestPath),
                                excluding: manifestPath, options: options)
        try manifest.write(to: manifestPath, force: options.force)
        return manifest
    }

    /// The manifest path for an output: inside it for a directory, beside it for a file.
    public static func defaultPath(forOutput output: String) -> String {
        FileSystem.isDirectory(output) ? FileSystem.join(output, fileName)
            : FileSystem.join(FileSystem.directoryName(output), fileName)
    }

    /// Writes ``serialized()`` to `path` atomically (temporary name, fsync, rename).
    public func write(to path: String, force: Bool) throws {
        let output = try AtomicOutput.file(at: path, force: force)
        let file = try OutputFile(path: output.temporaryPath)
        try file.write(Array(serialized().utf8))
        try file.close()
        try output.commit()
    }

    struct ListedFile {
        /// As given (relative to the working directory, or absolute).
        let path: String
        /// Absolute, directories resolved.
        let canonical: String
        let byteCount: Int
    }

    /// Files named by `paths`, directories expanded; each once, in the order given.
    static func expand(_ paths: [String], excluding: String?) throws -> [ListedFile] {
        var out: [ListedFile] = []
        var seen = Set<String>()
        if let excluding { seen.insert(excluding) }
        for path in paths {
            guard FileSystem.exists(path) else { throw PathError(path: path, FileAccessError.notFound) }
            if FileSystem.isDirectory(path) {
                let root = try FileTree.canonicalDirectory(path)
                for entry in try FileTree.entries(under: path) where !entry.isDirectory {
                    let canonical = FileSystem.join(root, entry.relativePath)
                    if seen.insert(canonical).inserted {
                        out.append(ListedFile(path: FileSystem.join(path, entry.relativePath), canonical: canonical,
                                              byteCount: entry.byteCount))
                    }
                }
            } else {
                let canonical = try FileTree.canonicalPath(path)
                if seen.insert(canonical).inserted {
                    out.append(ListedFile(path: path, canonical: canonical, byteCount: FileSystem.fileSize(path) ?? 0))
                }
            }
        }
        return out
    }
}
