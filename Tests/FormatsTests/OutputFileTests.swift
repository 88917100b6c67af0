import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Formats
import TensorCore

/// `OutputFile` writes in the background (two alternating buffers): the file must hold exactly
/// the bytes given, in order, whatever mix of writes, in-buffer fills and large writes made it,
/// and a failed background write must surface as an error naming the file.
@Suite struct OutputFileTests {
    @Test func everyMixOfWritesGivesTheBytesInOrder() throws {
        var rng = SplitMix64(seed: 11)
        for bufferSize in [64, 4096, 1 << 16] {
            let path = Fixtures.temporaryDirectory() + "/out.bin"
            let file = try OutputFile(path: path, bufferSize: bufferSize)
            var expected: [UInt8] = []
            for _ in 0 ..< 300 {
                let count = Int(rng.next() % UInt64(bufferSize * 3))
                let bytes = (0 ..< count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                switch rng.next() % 4 {
                case 0:
                    try file.write(bytes)
                case 1:
                    try file.writeZeros(count)
                    expected += [UInt8](repeating: 0, count: count)
                    continue
                case 2:
                    // Fill in place, reporting fewer bytes than the capacity asked for.
                    let used = count / 2
                    try file.withWritableBuffer(capacity: count) { buffer in
                        buffer.copyBytes(from: bytes[0 ..< used])
                        return used
                    }
                    expected += bytes[0 ..< used]
                    continue
                default:
                    try file.write(bytes)
                    try file.flush()
                }
                expected += bytes
            }
            #expect(file.offset == expected.count)
            try file.close()
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) == expected, "buffer \(bufferSize)")
        }
    }

    @Test func aFailedWriteNamesTheFile() throws {
        // /dev/full fails every write with ENOSPC; the background write's error comes back.
        guard FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let file = try OutputFile(path: "/dev/full", bufferSize: 4096)
        #expect {
            for _ in 0 ..< 4 { try file.write([UInt8](repeating: 1, count: 3000)) }
            try file.close()
        } throws: { error in
            "\(error)".hasPrefix("/dev/full: write failed") && (error as? PathError)?.kind == .cannotWrite
        }
    }

    /// The digest recorded while writing is the file's SHA-256, and serves only while the file
    /// is unchanged: a manifest never records a digest of bytes that are no longer there.
    @Test func recordedDigestIsTheFileDigestUntilTheFileChanges() throws {
        OutputDigests.startRecording()
        let path = Fixtures.temporaryDirectory() + "/out.bin"
        let file = try OutputFile(path: path, bufferSize: 1000)
        var rng = SplitMix64(seed: 5)
        let bytes = (0 ..< 12345).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try file.write(Array(bytes[0 ..< 10]))
        try file.write(Array(bytes[10 ..< 5000]))  // larger than the buffer: written directly
        try file.withWritableBuffer(capacity: 900) { buffer in
            buffer.copyBytes(from: bytes[5000 ..< 5900])
            return 900
        }
        try file.write(Array(bytes[5900...]))
        try file.close()
        let moved = path + ".moved"
        #expect(rename(path, moved) == 0)  // as AtomicOutput commits
        let recorded = try SHA256Hashing.hexOfOutputFile(at: moved)
        #expect(recorded.byteCount == bytes.count)
        #expect(recorded.sha256 == TestSHA256.hex(bytes))
        // Rewritten in place (same size): the digest comes from the bytes again. (After a pause:
        // modification times advance in clock ticks, a few milliseconds on Linux.)
        usleep(50_000)
        var changed = bytes
        changed[0] ^= 1
        try Data(changed).write(to: URL(fileURLWithPath: moved))
        #expect(try SHA256Hashing.hexOfOutputFile(at: moved).sha256 == TestSHA256.hex(changed))
    }
}
