#if canImport(Glibc)
import Glibc
#endif
public import TensorCore

/// Why a file tree could not be listed.
public enum FileTreeError: ClassifiedError, Hashable {
    case notRegularFile
    case symlinkToDirectory
    case cannotList(errno: Int32)
    case unrepresentableName

    public var kind: ErrorKind {
        switch self {
        case .notRegularFile, .symlinkToDirectory, .unrepresentableName: .unsupported
        case .cannotList: .missingInput
        }
    }

    public var description: String {
        switch self {
        case .notRegularFile: "not a regular file or directory (devices, sockets and pipes are not packed or hashed)"
        case .symlinkToDirectory: "symbolic link to a directory (only links to regular files are followed)"
        case .cannotList(let e): "cannot list directory: \(String(cString: strerror(e)))"
        case .unrepresentableName: "file name is not valid UTF-8"
        }
    }
}

/// One entry of a listed tree.
public struct FileTreeEntry: Sendable, Hashable {
    /// Path relative to the root, `/`-separated, no `.` or `..` components.
    public let relativePath: String
    public let isDirectory: Bool
    /// File size in bytes (0 for directories).
    public let byteCount: Int
}

/// Directory walking and path arithmetic shared by manifests and archives.
public enum FileTree {
    /// Every file and directory below `root` (not `root` itself), sorted by the bytes of their
    /// relative paths so the order never depends on the file system or the locale.
    ///
    /// Symbolic links to regular files are followed (a Hugging Face cache snapshot is made of
    /// them); links to directories, devices, sockets and pipes are refused. Temporary outputs of
    /// an interrupted wconv (`.NAME.wconv-tmp-PID`) are skipped.
    public static func entries(under root: String) throws -> [FileTreeEntry] {
        var out: [FileTreeEntry] = []
        try walk(root: root, prefix: "", into: &out)
        out.sort { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        return out
    }

    private static func walk(root: String, prefix: String, into out: inout [FileTreeEntry]) throws {
        let dirPath = prefix.isEmpty ? root : FileSystem.join(root, prefix)
        guard let names = FileSystem.contents(ofDirectory: dirPath) else {
            throw PathError(path: dirPath, FileTreeError.cannotList(errno: errno))
        }
        for name in names where !isTemporaryOutput(name) {
            let rel = prefix.isEmpty ? name : prefix + "/" + name
            let full = FileSystem.join(root, rel)
            var st = stat()
            guard lstat(full, &st) == 0 else {
                // readdir gave a name lstat cannot find: bytes that are not UTF-8 were repaired.
                throw PathError(path: full, FileTreeError.unrepresentableName)
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                out.append(FileTreeEntry(relativePath: rel, isDirectory: true, byteCount: 0))
                try walk(root: root, prefix: rel, into: &out)
            case S_IFREG:
                out.append(FileTreeEntry(relativePath: rel, isDirectory: false, byteCount: Int(st.st_size)))
            case S_IFLNK:
                var target = stat()
                guard stat(full, &target) == 0 else { throw PathError(path: full, FileAccessError.notFound) }
                switch target.st_mode & S_IFMT {
                case S_IFREG: out.append(FileTreeEntry(relativePath: rel, isDirectory: false, byteCount: Int(target.st_size)))
                case S_IFDIR: throw PathError(path: full, FileTreeError.symlinkToDirectory)
                default: throw PathError(path: full, FileTreeError.notRegularFile)
                }
            default:
                throw PathError(path: full, FileTreeError.notRegularFile)
            }
        }
    }

    /// Whether `name` is an output wconv is still writing (or left by a killed run).
    static func isTemporaryOutput(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(".wconv-tmp-")
    }

    /// The absolute, symlink-free path of an existing directory.
    public static func canonicalDirectory(_ path: String) throws -> String {
        guard let resolved = realpath(path, nil) else {
            throw PathError(path: path, errno == ENOENT ? FileAccessError.notFound : FileAccessError.cannotOpen(errno: errno))
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The absolute path of `path` with its directory resolved but its last component kept
    /// (a link to a file keeps its own name, not its target's).
    public static func canonicalPath(_ path: String) throws -> String {
        if FileSystem.isDirectory(path) { return try canonicalDirectory(path) }
        let dir = try canonicalDirectory(FileSystem.directoryName(path))
        return FileSystem.join(dir, FileSystem.baseName(path))
    }

    /// The path of `target` as seen from `directory` (both absolute, normalised): `../` for
    /// every component of `directory` not shared with `target`, then the rest of `target`.
    public static func relativePath(from directory: String, to target: String) -> String {
        let base = directory.split(separator: "/", omittingEmptySubsequences: true)
        let path = target.split(separator: "/", omittingEmptySubsequences: true)
        var common = 0
        while common < base.count, common < path.count, base[common] == path[common] { common += 1 }
        let up = Array(repeating: "..", count: base.count - common)
        let rest = path[common...].map(String.init)
        let parts = up + rest
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }

    /// Whether `path` is relative, non-empty and free of `..`, empty and `.` components, and NUL:
    /// safe to create under a directory we own.
    public static func isSafeRelativePath(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.utf8.contains(0) else { return false }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component == "." || component == ".." { return false }
        }
        return true
    }
}
