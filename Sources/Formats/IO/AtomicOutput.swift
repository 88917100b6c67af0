#if canImport(Glibc)
import Glibc
#endif
public import TensorCore
import Synchronization
import Dispatch
import Crypto

/// Why an output could not be written.
public enum OutputError: ClassifiedError, Hashable {
    case exists
    case cannotCreate(errno: Int32)
    case writeFailed(errno: Int32)
    case renameFailed(errno: Int32)

    public var kind: ErrorKind { .cannotWrite }

    public var description: String {
        switch self {
        case .exists: "already exists (use --force to replace it)"
        case .cannotCreate(let e): "cannot create: \(String(cString: strerror(e)))"
        case .writeFailed(let e):
            e == EFBIG ? "write failed: file too large for this file system or the process's file-size limit"
                : "write failed: \(String(cString: strerror(e)))"
        case .renameFailed(let e): "cannot move the finished output into place: \(String(cString: strerror(e)))"
        }
    }
}

/// The temporary paths of outputs being written, so an interrupted run can remove them.
///
/// The command line's signal handler calls ``removeAll()``; nothing else should need it.
public enum TemporaryOutputs {
    private static let paths = Mutex<Set<String>>([])

    static func register(_ path: String) { paths.withLock { _ = $0.insert(path) } }
    static func unregister(_ path: String) { paths.withLock { _ = $0.remove(path) } }

    /// Deletes every registered temporary file or directory (used on SIGINT/SIGTERM).
    public static func removeAll() {
        let all = paths.withLock { p in
            defer { p.removeAll() }
            return p
        }
        for path in all { removeTree(path) }
    }
}

/// Removes a file or a directory tree; errors are ignored (used for cleanup only).
func removeTree(_ path: String) {
    if FileSystem.isDirectory(path) {
        for name in FileSystem.contents(ofDirectory: path) ?? [] { removeTree(FileSystem.join(path, name)) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// An output written under a temporary name beside its destination and moved into place only
/// when complete, so a failure or an interruption never leaves a partial result.
///
/// Use ``file(at:force:)`` for a single file, ``directory(at:force:)`` for an HF model directory
/// (its files are then written inside ``temporaryPath`` with plain ``OutputFile``s).
public final class AtomicOutput {
    public let destination: String
    /// Where the output is being written until ``commit()``.
    public let temporaryPath: String
    public let isDirectory: Bool
    private var finished = false

    private init(destination: String, isDirectory: Bool, force: Bool) throws {
        if FileSystem.exists(destination) && !force {
            throw PathError(path: destination, OutputError.exists)
        }
        self.destination = destination
        self.isDirectory = isDirectory
        let dir = FileSystem.directoryName(destination)
        let name = FileSystem.baseName(destination)
        // Checked here so the error names the output, not its temporary file.
        if !FileSystem.isDirectory(dir) {
            throw PathError(path: destination, OutputError.cannotCreate(errno: FileSystem.exists(dir) ? ENOTDIR : ENOENT))
        }
        temporaryPath = FileSystem.join(dir, ".\(name).wconv-tmp-\(getpid())")
        removeTree(temporaryPath)
        TemporaryOutputs.register(temporaryPath)
        if isDirectory {
            guard mkdir(temporaryPath, 0o755) == 0 else {
                TemporaryOutputs.unregister(temporaryPath)
                throw PathError(path: destination, OutputError.cannotCreate(errno: errno))
            }
        }
    }

    /// Starts a single-file output at `path`.
    public static func file(at path: String, force: Bool) throws -> AtomicOutput {
        try AtomicOutput(destination: path, isDirectory: false, force: force)
    }

    /// Starts a directory output at `path`.
    public static func directory(at path: String, force: Bool) throws -> AtomicOutput {
        try AtomicOutput(destination: path, isDirectory: true, force: force)
    }

    /// Path of `name` inside a directory output, while it is being written.
    public func path(of name: String) -> String { FileSystem.join(temporaryPath, name) }

    /// Moves the finished output into place, replacing an existing destination (checked at start).
    public func commit() throws {
        precondition(!finished, "AtomicOutput committed twice")
        if isDirectory && FileSystem.exists(destination) {
            // rename(2) cannot replace a non-empty directory: move the old one aside first.
            let aside = temporaryPath + "-old"
            removeTree(aside)
            guard rename(destination, aside) == 0 else {
                throw PathError(path: destination, OutputError.renameFailed(errno: errno))
            }
            guard rename(temporaryPath, destination) == 0 else {
                let e = errno
                _ = rename(aside, destination)
                throw PathError(path: destination, OutputError.renameFailed(errno: e))
            }
            removeTree(aside)
        } else {
            guard rename(temporaryPath, destination) == 0 else {
                throw PathError(path: destination, OutputError.renameFailed(errno: errno))
            }
        }
        TemporaryOutputs.unregister(temporaryPath)
        finished = true
    }

    /// Deletes the partial output (called automatically if never committed).
    public func abandon() {
        guard !finished else { return }
        removeTree(temporaryPath)
        TemporaryOutputs.unregister(temporaryPath)
        finished = true
    }

    deinit { abandon() }
}

/// A buffered, sequential writer to a new file. Errors (a full disk, a file-size limit) are
/// thrown as ``OutputError`` naming the file.
///
/// Two buffers alternate: while the caller fills one (a conversion producing the next rows), a
/// background thread hands the other to the kernel, so the copy into the page cache overlaps
/// the work that produces the bytes (measured: starting each range's disk writeback early with
/// sync_file_range made the SmolLM2 convert slower, so only ``close()`` syncs). A background
/// write's error is thrown by the next call that writes, flushes or closes.
public final class OutputFile {
    public let path: String
    private var fd: Int32
    private var buffer: UnsafeMutableRawBufferPointer
    /// The buffer the writer may still be reading (swapped with `buffer` at each flush).
    private var spare: UnsafeMutableRawBufferPointer
    private var buffered = 0
    private let writer: BackgroundWriter
    /// Bytes written so far (including buffered ones).
    public private(set) var offset = 0

    /// Creates (truncating) the file at `path`.
    public init(path: String, bufferSize: Int = 1 << 22) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PathError(path: path, OutputError.cannotCreate(errno: errno)) }
        buffer = .allocate(byteCount: bufferSize, alignment: 64)
        spare = .allocate(byteCount: bufferSize, alignment: 64)
        writer = BackgroundWriter(fd: fd, hashing: OutputDigests.isRecording)
    }

    deinit {
        writer.wait()
        if fd >= 0 { Glibc.close(fd) }
        buffer.deallocate()
        spare.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count >= buffer.count {
            try flush()
            try writer.finish(path: path)
            try writeAll(bytes)
        } else {
            if buffered + bytes.count > buffer.count { try flush() }
            if let src = bytes.baseAddress {
                (buffer.baseAddress! + buffered).copyMemory(from: src, byteCount: bytes.count)
            }
            buffered += bytes.count
        }
        offset += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes `count` zero bytes (alignment padding).
    public func writeZeros(_ count: Int) throws {
        guard count > 0 else { return }
        try write([UInt8](repeating: 0, count: count))
    }

    /// Lets `body` fill up to `capacity` bytes directly in the buffer (no extra copy), and
    /// returns after those bytes count as written. `body` returns how many it wrote.
    public func withWritableBuffer(capacity: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        if capacity > buffer.count {
            let temp = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 64)
            defer { temp.deallocate() }
            let n = try body(temp)
            try write(UnsafeRawBufferPointer(rebasing: temp[0 ..< n]))
            return
        }
        if buffered + capacity > buffer.count { try flush() }
        let n = try body(UnsafeMutableRawBufferPointer(rebasing: buffer[buffered ..< buffered + capacity]))
        buffered += n
        offset += n
    }

    /// Hands the buffered bytes to the background writer (after the previous hand-over has
    /// been written) and continues in the other buffer.
    public func flush() throws {
        guard buffered > 0 else { return }
        try writer.finish(path: path)
        swap(&buffer, &spare)
        writer.start(UnsafeRawBufferPointer(rebasing: spare[0 ..< buffered]))
        buffered = 0
    }

    /// Flushes, syncs to disk and closes. The file is complete only after this returns.
    public func close() throws {
        try flush()
        try writer.finish(path: path)
        if getenv("WCONV_NO_FSYNC") == nil, fsync(fd) != 0 && errno != EINVAL {
            throw PathError(path: path, OutputError.writeFailed(errno: errno))
        }
        if let sha256 = writer.finalizeDigest() { OutputDigests.record(fd: fd, sha256: sha256) }
        let rc = Glibc.close(fd)
        fd = -1
        if rc != 0 { throw PathError(path: path, OutputError.writeFailed(errno: errno)) }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        if let e = writer.write(bytes) { throw PathError(path: path, OutputError.writeFailed(errno: e)) }
    }
}

/// The thread behind ``OutputFile``: one write at a time, its result collected by `finish`.
/// With `hashing`, it also feeds every byte, in file order, to SHA-256 (``OutputDigests``).
private final class BackgroundWriter: @unchecked Sendable {
    private let fd: Int32
    private var hasher: SHA256?
    private let queue = DispatchQueue(label: "wconv.output-writer")
    private let group = DispatchGroup()
    // Set by the queue, read after group.wait() (which orders the two).
    private var failure: Int32?
    private var pending = false

    init(fd: Int32, hashing: Bool) {
        self.fd = fd
        hasher = hashing ? SHA256() : nil
    }

    /// Writes `bytes` (which must stay valid until `finish` or `wait`) in the background.
    func start(_ bytes: UnsafeRawBufferPointer) {
        pending = true
        nonisolated(unsafe) let bytes = bytes
        queue.async(group: group) { [self] in
            if let e = write(bytes) { failure = e }
        }
    }

    /// Waits for the write in flight; throws its error.
    func finish(path: String) throws {
        wait()
        if let failure { throw PathError(path: path, OutputError.writeFailed(errno: failure)) }
    }

    func wait() {
        if pending { group.wait() }
        pending = false
    }

    /// The digest of everything written (nil without hashing, or after a failed write).
    func finalizeDigest() -> String? {
        guard failure == nil, let hasher else { return nil }
        self.hasher = nil
        return SHA256Hashing.hexString(hasher.finalize())
    }

    /// Writes `bytes` now, on the calling thread (between background writes: after `finish`).
    func write(_ bytes: UnsafeRawBufferPointer) -> Int32? {
        if let e = Self.writeAll(fd: fd, bytes) {
            hasher = nil
            return e
        }
        hasher?.update(bufferPointer: bytes)
        return nil
    }

    /// write(2) until done; the errno on failure (ENOSPC for a write that makes no progress).
    static func writeAll(fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return ENOSPC }
            done += n
        }
        return nil
    }
}
