#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Dispatch
import Synchronization
import TensorCore

/// SHA-256 digests as wconv records them: 64 lowercase hexadecimal digits.
///
/// Hashing goes through swift-crypto (BoringSSL's SHA-256, which uses the CPU's SHA
/// instructions where present). Files are read through their memory mapping a window at a time,
/// with read-ahead of the next window and the pages of the previous one released, so hashing a
/// model of any size keeps a few megabytes resident.
public enum SHA256Hashing {
    /// Bytes hashed between page releases.
    static let window = 8 << 20

    /// The digest of `bytes`.
    public static func hex(of bytes: UnsafeRawBufferPointer) -> String {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return hexString(hasher.finalize())
    }

    /// The digest of `bytes`.
    public static func hex(of bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { hex(of: $0) }
    }

    /// Streams the mapped `file` through SHA-256, releasing its pages as it goes.
    /// - Throws: ``FileAccessError/changedWhileOpen`` (in a ``PathError``) if the file's size
    ///   changed while it was read.
    public static func hex(of file: MappedFile) throws -> String {
        file.adviseSequential()
        let hasher = StreamingSHA256()
        var offset = 0
        while offset < file.count {
            let end = min(file.count, offset + window)
            guard let chunk = file.slice(offset ..< end) else { break }
            if let next = file.slice(end ..< min(file.count, end + window)) { MappedFile.adviseWillNeed(next) }
            hasher.update(chunk)
            file.releasePages(of: chunk)
            offset = end
        }
        try file.checkUnchanged()
        return hasher.finalizeHex()
    }

    /// The size and digest of a file this process may just have written: the digest
    /// ``OutputFile`` computed while writing it when the file is unchanged since
    /// (``OutputDigests``), else read from its bytes like ``hexOfFile(at:)``.
    public static func hexOfOutputFile(at path: String) throws -> (byteCount: Int, sha256: String) {
        var s = stat()
        if stat(path, &s) == 0, let sha256 = OutputDigests.digest(of: s) { return (Int(s.st_size), sha256) }
        return try hexOfFile(at: path)
    }

    /// Maps the file at `path` and returns its size and digest.
    public static func hexOfFile(at path: String) throws -> (byteCount: Int, sha256: String) {
        let file = try MappedFile(path: path)
        return (file.count, try hex(of: file))
    }

    static func hexString<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` looks like a digest this module writes (64 lowercase hex digits).
    public static func isValidHex(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30 ... 0x39).contains($0) || (0x61 ... 0x66).contains($0) }
    }
}

/// An incremental SHA-256 for data that arrives in pieces (a tar member streamed out of zstd).
public final class StreamingSHA256 {
    private var hasher = SHA256()

    public init() {}

    public func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    /// The digest of everything passed to ``update(_:)``, as 64 lowercase hex digits.
    public func finalizeHex() -> String {
        SHA256Hashing.hexString(hasher.finalize())
    }
}

/// Runs `count` independent jobs on up to `threads` workers, in the order `order` gives (the
/// biggest first balances the load), and returns each job's result at its own index.
///
/// Unlike `parallelChunks`, jobs are handed out one at a time from a shared counter, because
/// their sizes differ by orders of magnitude (a 5 GB shard beside a 1 kB config.json).
func runJobs<T: Sendable>(
    count: Int, threads: Int, order: [Int]? = nil,
    _ body: @Sendable (Int) throws -> T
) -> [Result<T, any Error>] {
    guard count > 0 else { return [] }
    let order = order ?? Array(0 ..< count)
    let results = Mutex<[Result<T, any Error>?]>(Array(repeating: nil, count: count))
    let next = Atomic<Int>(0)
    let workers = max(1, min(threads, count))
    @Sendable func work(_: Int) {
        while true {
            let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard k < order.count else { return }
            let job = order[k]
            let result: Result<T, any Error>
            do { result = .success(try body(job)) } catch { result = .failure(error) }
            results.withLock { $0[job] = result }
        }
    }
    if workers == 1 {
        work(0)
    } else {
        DispatchQueue.concurrentPerform(iterations: workers) { work($0) }
    }
    return results.withLock { all in
        all.map { $0 ?? .failure(Failure(.internalError, "job not run")) }
    }
}
