import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM while an output is being written: exit 130 / 143, the temporary output is
/// removed, the destination never appears and the input is untouched.
///
/// Each test starts a conversion of an 85 MB model, waits until its temporary output holds data,
/// stops the process (SIGSTOP) so it cannot finish in between, sends the signal and lets it
/// continue (SIGCONT): the signal is handled mid-write whatever the machine's speed.
@Suite("Faults: interrupted while writing", .serialized)
struct FaultSignalTests {
    static let cases: [(String, Int32, Int32)] = [
        ("convert", SIGINT, 130), ("convert", SIGTERM, 143),
        ("quantize", SIGINT, 130), ("quantize", SIGTERM, 143),
    ]

    @Test(arguments: cases)
    func signalMidWriteRemovesPartialOutput(_ command: String, _ sig: Int32, _ expected: Int32) throws {
        let input = LargeModel.directory
        let before = try Fault.snapshot(input)
        let dir = Fixtures.temporaryDirectory("wconv-fault-signal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (output, extra) = command == "convert" ? (dir + "/out.gguf", ["--outtype", "f16"]) : (dir + "/out", ["--nf4"])
        let process = try Fault.Command(arguments: [command, input, "-o", output] + extra)
        let temporary = Fault.stopOnceWriting(process, in: dir, minimumBytes: 1 << 20)
        #expect(temporary != nil, "the temporary output never held 1 MiB")
        process.signal(sig)
        process.signal(SIGCONT)
        let r = process.wait()
        #expect(r.status == expected, "\(r.stderr)")
        #expect(r.stderr == "error: interrupted; partial outputs removed\n", "\(r.stderr)")
        #expect(Fault.temporaryEntries(in: dir).isEmpty, "temporary output left: \(Fault.temporaryEntries(in: dir))")
        #expect(!FileManager.default.fileExists(atPath: output), "output appeared at \(output)")
        #expect(try Fault.snapshot(input) == before, "input changed")
    }

    /// Without a signal the same run completes (so the test above really interrupts a writer).
    @Test func uninterruptedRunCompletes() throws {
        let dir = Fixtures.temporaryDirectory("wconv-fault-signal")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["convert", LargeModel.directory, "-o", dir + "/out.gguf", "--outtype", "f16"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Fault.size(of: dir + "/out.gguf") > 40 << 20)
        #expect(Fault.temporaryEntries(in: dir).isEmpty)
    }
}
