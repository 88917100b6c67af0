import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// An input truncated, extended or rewritten while wconv reads it: exit 74 naming the file, no
/// output, no temporary file. A truncation makes the mapped pages past the new end fault
/// (SIGBUS), which wconv turns into that error; other changes are caught by comparing the file's
/// size and modification time with what was mapped before the output is committed.
@Suite("Faults: input changed while being read", .serialized)
struct FaultInputChangeTests {
    enum Change: String, CaseIterable, CustomTestStringConvertible {
        case truncate, extend, rewrite
        var testDescription: String { rawValue }
    }

    @Test(arguments: Change.allCases)
    func changedInputExits74(_ change: Change) throws {
        // A private copy: this test is the one that changes its input.
        let dir = Fixtures.temporaryDirectory("wconv-fault-input")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = dir + "/model"
        try FileManager.default.copyItem(atPath: LargeModel.directory, toPath: input)
        let weights = input + "/model.safetensors"
        let output = dir + "/out.gguf"
        let process = try Fault.Command(arguments: ["convert", input, "-o", output, "--outtype", "f16"])
        let temporary = Fault.stopOnceWriting(process, in: dir, minimumBytes: 1 << 20)
        #expect(temporary != nil, "the temporary output never held 1 MiB")

        let fd = open(weights, O_WRONLY)
        #expect(fd >= 0)
        switch change {
        case .truncate:
            // Keep the header and the first tensors; everything still to be read is gone.
            #expect(ftruncate(fd, 1 << 20) == 0)
        case .extend:
            var byte: UInt8 = 0
            #expect(pwrite(fd, &byte, 1, off_t(Fault.size(of: weights))) == 1)
        case .rewrite:
            // Same size, new contents near the end (not read yet): only the modification time shows it.
            var bytes = [UInt8](repeating: 0x7F, count: 16)
            #expect(pwrite(fd, &bytes, 16, off_t(Fault.size(of: weights) - 64)) == 16)
        }
        close(fd)
        process.signal(SIGCONT)
        let r = process.wait()

        #expect(r.status == 74, "\(change): \(r.stderr)")
        #expect(r.stderr.hasPrefix("error: \(weights): file changed while being read"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        if change == .truncate {
            // The truncation is met by the reads that follow it (SIGBUS), not only at the end.
            #expect(r.stderr.hasSuffix("; partial outputs removed\n"), "\(r.stderr)")
        }
        #expect(Fault.temporaryEntries(in: dir).isEmpty, "temporary output left: \(Fault.temporaryEntries(in: dir))")
        #expect(!FileManager.default.fileExists(atPath: output), "output appeared")
    }
}
