#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Synchronization

/// The SHA-256 of files this process wrote through ``OutputFile``, computed as the bytes went
/// out, so a manifest written right after a conversion need not read the output back.
///
/// Off until ``startRecording()`` (the commands that write a manifest turn it on): hashing costs
/// CPU time a run without a manifest should not pay. Entries are keyed by device and inode (so
/// the rename into place keeps them) and used only while the file still has the size and
/// modification time it had when closed; anything else is hashed from its bytes as before. (A
/// rewrite of the same size within one clock tick of the close would go unseen: the entry is
/// meant for the manifest a command writes right after its own output, not for files others
/// may be changing.)
public enum OutputDigests {
    struct Stamp: Hashable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var seconds: Int64
        var nanoseconds: Int64
    }

    private static let recording = Atomic<Bool>(false)
    private static let digests = Mutex<[Stamp: String]>([:])

    /// From now on, every ``OutputFile`` hashes what it writes.
    public static func startRecording() { recording.store(true, ordering: .relaxed) }

    static var isRecording: Bool { recording.load(ordering: .relaxed) }

    /// Records the digest of the open, complete file `fd`.
    static func record(fd: Int32, sha256: String) {
        var s = stat()
        guard fstat(fd, &s) == 0 else { return }
        let stamp = Self.stamp(s)
        digests.withLock { $0[stamp] = sha256 }
    }

    /// The recorded digest of the file at `path` (after `stat`), if it is unchanged since.
    static func digest(of s: stat) -> String? {
        let stamp = Self.stamp(s)
        return digests.withLock { $0[stamp] }
    }

    private static func stamp(_ s: stat) -> Stamp {
        Stamp(device: UInt64(s.st_dev), inode: UInt64(s.st_ino), size: Int64(s.st_size),
              seconds: Int64(s.st_mtim.tv_sec), nanoseconds: Int64(s.st_mtim.tv_nsec))
    }
}
