#if canImport(Glibc)
import Glibc
#endif
public import TensorCore

/// The outcome of checking one recorded file against the disk.
public struct ManifestCheckResult: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// Same size and digest.
        case ok
        /// The digest differs.
        case mismatch
        /// The size differs (the digest was not computed).
        case sizeMismatch = "size_mismatch"
        /// The file does not exist.
        case missing
        /// The file exists but could not be read.
        case unreadable
    }

    /// `input` or `output`.
    public var role: String
    /// As recorded in the manifest.
    public var path: String
    /// Where it was looked for.
    public var resolvedPath: String
    public var status: Status
    public var expectedBytes: Int
    public var actualBytes: Int?
    public var expectedSHA256: String
    public var actualSHA256: String?
    /// For a mismatching model file whose tensors were recorded: the tensors whose digests
    /// differ, are missing or are new (nil when not determined).
    public var differingTensors: [String]?
    /// Why an unreadable file could not be read.
    public var detail: String?

    public var isOK: Bool { status == .ok }

    /// One line for a person: `<path>: <what is wrong>`.
    public var message: String {
        switch status {
        case .ok: return "\(resolvedPath): OK"
        case .missing: return "\(resolvedPath): missing (listed in the manifest)"
        case .sizeMismatch:
            return "\(resolvedPath): size mismatch: \(actualBytes ?? 0) bytes, manifest says \(expectedBytes)"
        case .mismatch:
            var text = "\(resolvedPath): SHA-256 mismatch: \(actualSHA256 ?? "?"), manifest says \(expectedSHA256)"
            if let t = differingTensors, !t.isEmpty {
                let shown = t.prefix(5).joined(separator: ", ")
                text += " (tensors differing: \(shown)\(t.count > 5 ? ", … \(t.count) in all" : ""))"
            }
            return text
        case .unreadable: return "\(resolvedPath): cannot be read: \(detail ?? "unknown error")"
        }
    }
}

extension Manifest {
    /// Checks every output (and, with `includeInputs`, every input) against the files on disk.
    /// Relative paths are resolved against `directory`, the manifest's own directory.
    ///
    /// Never throws for a file problem: each file gets a ``ManifestCheckResult``, in manifest
    /// order (outputs first, then inputs).
    public func check(relativeTo directory: String, includeInputs: Bool = false,
                      threads: Int = activeProcessorCount) -> [ManifestCheckResult] {
        let files = outputs.map { ("output", $0) } + (includeInputs ? inputs.map { ("input", $0) } : [])
        let order = Array(files.indices).sorted { files[$0].1.byteCount > files[$1].1.byteCount }
        let results = runJobs(count: files.count, threads: threads, order: order) { i -> ManifestCheckResult in
            let (role, file) = files[i]
            let resolved = file.path.hasPrefix("/") ? file.path : FileSystem.join(directory, file.path)
            return Manifest.check(file, role: role, at: resolved)
        }
        return results.enumerated().map { i, r in
            (try? r.get()) ?? ManifestCheckResult(
                role: files[i].0, path: files[i].1.path, resolvedPath: files[i].1.path, status: .unreadable,
                expectedBytes: files[i].1.byteCount, expectedSHA256: files[i].1.sha256, detail: "internal error")
        }
    }

    static func check(_ file: ManifestFile, role: String, at path: String) -> ManifestCheckResult {
        var result = ManifestCheckResult(role: role, path: file.path, resolvedPath: path, status: .ok,
                                         expectedBytes: file.byteCount, expectedSHA256: file.sha256)
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR {
                result.status = .missing
            } else {
                result.status = .unreadable
                result.detail = String(cString: strerror(errno))
            }
            return result
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            result.status = .unreadable
            result.detail = "not a regular file"
            return result
        }
        result.actualBytes = Int(st.st_size)
        guard Int(st.st_size) == file.byteCount else {
            result.status = .sizeMismatch
            return result
        }
        do {
            let (_, hex) = try SHA256Hashing.hexOfFile(at: path)
            result.actualSHA256 = hex
            if hex != file.sha256 {
                result.status = .mismatch
                if let tensors = file.tensors { result.differingTensors = differingTensors(tensors, in: path) }
            }
        } catch let error as PathError {
            result.status = .unreadable
            result.detail = "\(error.underlying)"
        } catch {
            result.status = .unreadable
            result.detail = "\(error)"
        }
        return result
    }

    /// Names of the recorded tensors whose bytes differ in the model file at `path` (also those
    /// missing from it or new in it); nil if the file cannot be read as a model any more.
    static func differingTensors(_ recorded: [ManifestTensor], in path: String) -> [String]? {
        guard let input = try? ModelInput.open(path: path) else { return nil }
        let source = input.tensorSource
        guard let canonical = try? FileTree.canonicalPath(path) else { return nil }
        var current: [String: String] = [:]
        for entry in source.entries where (try? FileTree.canonicalPath(entry.file)) == canonical {
            guard let bytes = try? source.bytes(of: entry) else { return nil }
            current[entry.name] = SHA256Hashing.hex(of: bytes)
        }
        var differing: [String] = []
        for t in recorded where current.removeValue(forKey: t.name) != t.sha256 { differing.append(t.name) }
        differing += current.keys
        return differing.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}
