public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program with its standard output and standard error on pseudo-terminals, so what it
/// shows only on a terminal (progress bars, progress lines) can be tested. The pty calls are kept
/// here; tests see a plain result.
public enum Terminal {
    public struct Result: Sendable {
        public let status: Int32
        /// What the program wrote on its stdout: a terminal, or a pipe with `stdoutOnTerminal: false`.
        public let stdout: String
        /// What the program wrote on its stderr terminal (line feeds may read `\r\n`: the
        /// terminal's output processing).
        public let stderr: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs `executable` with stderr (and stdout, unless `stdoutOnTerminal` is false) each on a
    /// pseudo-terminal of its own, and waits for it; `isatty` is true for them in the child.
    public static func run(_ executable: String, _ arguments: [String], stdoutOnTerminal: Bool = true) throws -> Result {
        let errTerminal = try Pseudoterminal()
        let outTerminal = stdoutOnTerminal ? try Pseudoterminal() : nil
        let outPipe = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardError = FileHandle(fileDescriptor: errTerminal.replica, closeOnDealloc: false)
        process.standardOutput = outTerminal.map { FileHandle(fileDescriptor: $0.replica, closeOnDealloc: false) } ?? outPipe
        // Readers first: a full terminal buffer would block the child.
        let errReader = errTerminal.startReading()
        let outReader = outTerminal?.startReading()
        try process.run()
        // Only the child holds the replicas now, so the readers see the end when it exits.
        errTerminal.closeReplica()
        outTerminal?.closeReplica()
        let pipeData = stdoutOnTerminal ? Data() : outPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = errReader.wait()
        let outData = outReader?.wait() ?? pipeData
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// One pseudo-terminal pair: the controlling side (read here) and the replica the child gets.
    private final class Pseudoterminal: @unchecked Sendable {
        let controller: Int32
        private(set) var replica: Int32

        init() throws {
            controller = Libc.posixOpenpt(O_RDWR | O_NOCTTY)
            guard controller >= 0 else { throw Failure(description: "posix_openpt: errno \(errno)") }
            var name = [CChar](repeating: 0, count: 128)
            guard Libc.grantpt(controller) == 0, Libc.unlockpt(controller) == 0, Libc.ptsnameR(controller, &name, name.count) == 0 else {
                close(controller)
                throw Failure(description: "cannot set up a pseudo-terminal: errno \(errno)")
            }
            replica = open(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), O_RDWR | O_NOCTTY)
            guard replica >= 0 else {
                close(controller)
                throw Failure(description: "cannot open the pseudo-terminal's replica: errno \(errno)")
            }
        }

        func closeReplica() {
            if replica >= 0 { close(replica) }
            replica = -1
        }

        /// Reads the controller until every replica is closed (Linux then reports EIO).
        func startReading() -> Reader {
            let reader = Reader()
            let fd = controller
            reader.group.enter()
            DispatchQueue.global().async {
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n > 0 { reader.data.append(contentsOf: buffer[0 ..< n]); continue }
                    if n < 0 && errno == EINTR { continue }
                    break
                }
                close(fd)
                reader.group.leave()
            }
            return reader
        }

        deinit { closeReplica() }
    }

    /// The pty functions of the C library: Swift's Glibc module leaves them out (they need
    /// _XOPEN_SOURCE), so they are looked up by name.
    private enum Libc {
        typealias OpenFunction = @convention(c) (Int32) -> Int32
        typealias FDFunction = @convention(c) (Int32) -> Int32
        typealias NameFunction = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32

        static func symbol<F>(_ name: String, as _: F.Type) -> F? {
            guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else { return nil }
            return unsafeBitCast(pointer, to: F.self)
        }

        static func posixOpenpt(_ flags: Int32) -> Int32 {
            guard let f = symbol("posix_openpt", as: OpenFunction.self) else { errno = ENOSYS; return -1 }
            return f(flags)
        }

        static func grantpt(_ fd: Int32) -> Int32 {
            guard let f = symbol("grantpt", as: FDFunction.self) else { errno = ENOSYS; return -1 }
            return f(fd)
        }

        static func unlockpt(_ fd: Int32) -> Int32 {
            guard let f = symbol("unlockpt", as: FDFunction.self) else { errno = ENOSYS; return -1 }
            return f(fd)
        }

        static func ptsnameR(_ fd: Int32, _ buffer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int32 {
            guard let f = symbol("ptsname_r", as: NameFunction.self) else { errno = ENOSYS; return -1 }
            return f(fd, buffer, count)
        }
    }

    private final class Reader: @unchecked Sendable {
        let group = DispatchGroup()
        var data = Data()

        func wait() -> Data {
            group.wait()
            return data
        }
    }
}
