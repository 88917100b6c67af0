import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A full disk mid-write: every command that writes must fail with exit 73 and a clear message,
/// leave neither the output nor its temporary file, and leave the input as it was.
@Suite("Faults: disk full and file-size limit", .serialized)
struct FaultDiskFullTests {
    /// (command, input, extra arguments, output name): one per kind of output wconv writes.
    static let writers: [(String, String, [String], String)] = [
        ("convert", "tiny-llama-spm", ["--outtype", "f32"], "out.gguf"),        // HF → one GGUF file
        ("convert", "golden/tiny-llama-spm.f32.gguf", [], "out"),              // GGUF → HF directory
        ("quantize", "tiny-llama-spm", ["--nf4"], "out"),                      // bitsandbytes directory
        ("dequantize", "golden/tiny-llama-spm-nf4", [], "out"),                // dequantized directory
    ]

    /// `ulimit -f 64` (32 KiB with /bin/sh's 512-byte blocks): every output above is larger.
    @Test(arguments: writers)
    func fileSizeLimitExits73AndLeavesNothing(_ command: String, _ input: String, _ extra: [String], _ outputName: String) throws {
        let dir = Fixtures.temporaryDirectory("wconv-fault-fsize")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputPath = Fixtures.path(input)
        let before = try Fault.snapshot(inputPath)
        let output = dir + "/" + outputName
        let r = try Fault.runWithFileSizeLimit(blocks: 64, [command, inputPath, "-o", output] + extra)
        #expect(r.status == 73, "\(command) \(input): \(r.stderr)")
        #expect(r.stderr.hasPrefix("error: "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("file too large for this file system or the process's file-size limit"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output), "partial output left at \(output)")
        #expect(Fault.temporaryEntries(in: dir).isEmpty, "temporary output left: \(Fault.temporaryEntries(in: dir))")
        #expect(try Fault.snapshot(inputPath) == before, "input changed")
    }

    /// The same commands succeed without the limit (so the limit, not the input, made them fail).
    @Test func withoutTheLimitTheyWrite() throws {
        let dir = Fixtures.temporaryDirectory("wconv-fault-fsize")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Fault.runWithFileSizeLimit(blocks: 1 << 20, ["convert", Fixtures.path("tiny-llama-spm"), "-o", dir + "/out.gguf", "--outtype", "f32"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/out.gguf"))
    }

    /// A real full disk: a 48 KiB tmpfs (needs root and mount; skipped elsewhere).
    @Test(.enabled(if: TinyTmpfs.available, "needs permission to mount a tmpfs"), arguments: writers)
    func fullFileSystemExits73AndLeavesNothing(_ command: String, _ input: String, _ extra: [String], _ outputName: String) throws {
        let mount = try TinyTmpfs(kilobytes: 48)
        defer { mount.unmount() }
        let inputPath = Fixtures.path(input)
        let before = try Fault.snapshot(inputPath)
        let output = mount.path + "/" + outputName
        let r = try CLI.run([command, inputPath, "-o", output] + extra)
        #expect(r.status == 73, "\(command) \(input): \(r.stderr)")
        #expect(r.stderr.hasPrefix("error: ") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("No space left on device"), "\(r.stderr)")
        #expect((try FileManager.default.contentsOfDirectory(atPath: mount.path)).isEmpty, "left on the full disk: \((try? FileManager.default.contentsOfDirectory(atPath: mount.path)) ?? [])")
        #expect(try Fault.snapshot(inputPath) == before, "input changed")
    }
}

/// A small tmpfs mounted for one test.
struct TinyTmpfs {
    let path: String

    init(kilobytes: Int) throws {
        path = Fixtures.temporaryDirectory("wconv-tmpfs")
        let r = try Fault.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", path])
        guard r.status == 0 else { throw Failure(message: "mount failed: \(r.stderr)") }
    }

    func unmount() {
        _ = try? Fault.run("/bin/umount", [path])
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Whether this machine lets the tests mount a tmpfs (root in a container that allows it).
    static let available: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
        guard let probe = try? TinyTmpfs(kilobytes: 64) else { return false }
        probe.unmount()
        return true
    }()

    struct Failure: Error { let message: String }
}
