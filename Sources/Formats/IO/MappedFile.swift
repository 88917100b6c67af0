#if canImport(Glibc)
import Glibc
#endif
public import TensorCore
import Synchronization

/// Why a file could not be opened or mapped.
public enum FileAccessError: ClassifiedError, Hashable {
    case notFound
    case isDirectory
    case notRegularFile
    case cannotOpen(errno: Int32)
    case cannotMap(errno: Int32)
    case changedWhileOpen

    public var kind: ErrorKind {
        switch self {
        case .notFound: .missingInput
        case .isDirectory, .notRegularFile: .usage
        case .cannotOpen: .missingInput
        case .cannotMap, .changedWhileOpen: .ioError
        }
    }

    public var description: String {
        switch self {
        case .notFound: "no such file or directory"
        case .isDirectory: "is a directory, expected a file"
        case .notRegularFile: "not a regular file"
        case .cannotOpen(let e): "cannot open: \(String(cString: strerror(e)))"
        case .cannotMap(let e): "cannot map into memory: \(String(cString: strerror(e)))"
        case .changedWhileOpen: "file changed while being read (truncated, extended or rewritten in place)"
        }
    }
}

/// A read-only memory mapping of a whole file.
///
/// This is the only place wconv maps files. Readers get the bytes as an
/// `UnsafeRawBufferPointer` that lives as long as the `MappedFile`; they check every range
/// against ``count`` (through ``slice(_:)`` or a `ByteCursor`) before reading it. The mapping is
/// `PROT_READ` and `MAP_PRIVATE`, so an input can never be modified through it.
public final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is immutable after init and unmapped only in deinit.
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?
    /// Kept open so ``checkUnchanged()`` looks at the mapped file itself, even if the path has
    /// since been replaced.
    private let descriptor: Int32
    /// Modification time when mapped: an in-place rewrite of the same size changes it.
    private let modified: timespec

    public var count: Int { bytes.count }

    /// Maps the file at `path`.
    /// - Throws: ``PathError`` wrapping a ``FileAccessError``.
    public init(path: String) throws {
        self.path = path
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw PathError(path: path, errno == ENOENT || errno == ENOTDIR ? FileAccessError.notFound : FileAccessError.cannotOpen(errno: errno))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw PathError(path: path, FileAccessError.isDirectory) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw PathError(path: path, FileAccessError.notRegularFile) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PathError(path: path, FileAccessError.cannotOpen(errno: errno)) }
        var st2 = stat()
        guard fstat(fd, &st2) == 0 else {
            let e = errno
            close(fd)
            throw PathError(path: path, FileAccessError.cannotOpen(errno: e))
        }
        descriptor = fd
        modified = st2.st_mtim
        let size = Int(st2.st_size)
        if size == 0 {
            // mmap of zero bytes fails; an empty file is still a valid (if useless) input.
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            let e = errno
            close(fd)
            throw PathError(path: path, FileAccessError.cannotMap(errno: e))
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        MappedRegions.add(start: UInt(bitPattern: p), count: size, path: path)
    }

    deinit {
        if let base {
            MappedRegions.remove(start: UInt(bitPattern: base))
            munmap(base, bytes.count)
        }
        close(descriptor)
    }

    /// The bytes in `range`, or nil if the range is not inside the file.
    public func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    /// Tells the kernel the file will be read front to back once (fewer page-cache stalls on
    /// large sequential conversions).
    public func adviseSequential() {
        if let base { _ = madvise(base, bytes.count, MADV_SEQUENTIAL) }
    }

    /// Drops the pages holding `range` (a view this file returned) from the process's resident
    /// set once a pipeline is done with them, so streaming a model keeps RSS at a few tensors.
    /// The data stays in the page cache and reads back unchanged if touched again (the mapping
    /// is read-only and file-backed, so MADV_DONTNEED cannot lose anything). Views not inside
    /// this mapping are ignored.
    public func releasePages(of range: UnsafeRawBufferPointer) {
        guard let base, let start = range.baseAddress, range.count > 0,
              start >= UnsafeRawPointer(base), start + range.count <= UnsafeRawPointer(base) + bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Only whole pages inside the range: neighbouring tensors may share its edge pages.
        let first = alignUp(Int(bitPattern: start), to: page)
        let last = (Int(bitPattern: start) + range.count) / page * page
        if last > first { _ = madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, MADV_DONTNEED) }
    }

    /// Starts asynchronous read-ahead of the pages under a view of a mapped file.
    public static func adviseWillNeed(_ range: UnsafeRawBufferPointer) {
        guard let start = range.baseAddress, range.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = Int(bitPattern: start) / page * page
        let end = Int(bitPattern: start) + range.count
        _ = madvise(UnsafeMutableRawPointer(bitPattern: first), end - first, MADV_WILLNEED)
    }

    /// Throws if the mapped file no longer has the size and modification time it had when mapped
    /// (truncated, extended or rewritten in place while we read it): bytes already read may then
    /// be a mix of old and new contents, and pages past a truncation fault with SIGBUS. A file
    /// replaced by rename is fine: the mapping keeps the old one.
    public func checkUnchanged() throws {
        var st = stat()
        guard fstat(descriptor, &st) == 0, Int(st.st_size) == bytes.count,
              st.st_mtim.tv_sec == modified.tv_sec, st.st_mtim.tv_nsec == modified.tv_nsec
        else {
            throw PathError(path: path, FileAccessError.changedWhileOpen)
        }
    }

    /// The path of the mapped file whose pages hold `address`, if any: lets the command line
    /// name the input when reading a mapping faults (SIGBUS after a truncation).
    public static func path(containing address: UInt) -> String? {
        MappedRegions.path(containing: address)
    }
}

/// Every live mapping's address range and path.
private enum MappedRegions {
    private static let regions = Mutex<[(start: UInt, end: UInt, path: String)]>([])

    static func add(start: UInt, count: Int, path: String) {
        regions.withLock { $0.append((start, start + UInt(count), path)) }
    }

    static func remove(start: UInt) {
        regions.withLock { list in list.removeAll { $0.start == start } }
    }

    static func path(containing address: UInt) -> String? {
        regions.withLock { list in list.first { $0.start <= address && address < $0.end }?.path }
    }
}
