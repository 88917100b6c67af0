import ArgumentParser
import Dispatch
import Formats
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// The exit codes wconv documents (README "Exit codes"); values follow BSD sysexits where one fits.
enum ExitStatus: Int32, CaseIterable {
    case success = 0
    /// A check ran and failed: verify outside its thresholds, a checksum mismatch.
    case checkFailed = 1
    /// Wrong command line.
    case usage = 64
    /// An input is malformed, or holds values wconv refuses (NaN/Inf weights without the flag).
    case malformedInput = 65
    /// An input does not exist or cannot be opened.
    case missingInput = 66
    /// The input uses something wconv does not implement.
    case unsupported = 69
    /// A bug in wconv.
    case internalError = 70
    /// An output cannot be created or written (exists without --force, disk full, permissions).
    case cannotWrite = 73
    /// Reading an input failed part way (I/O error, file changed while read).
    case ioError = 74
    /// Interrupted by SIGINT (SIGTERM gives 143); partial outputs were removed.
    case interrupted = 130

    init(_ kind: ErrorKind) {
        switch kind {
        case .usage: self = .usage
        case .malformedInput, .badValue: self = .malformedInput
        case .missingInput: self = .missingInput
        case .unsupported: self = .unsupported
        case .cannotWrite: self = .cannotWrite
        case .ioError: self = .ioError
        case .checkFailed: self = .checkFailed
        case .interrupted: self = .interrupted
        case .internalError: self = .internalError
        }
    }

    static var summary: String {
        "0 success, 1 check failed, 64 usage, 65 malformed input or bad values, 66 missing input, "
            + "69 unsupported, 70 internal error, 73 cannot write output, 74 I/O error, 130/143 interrupted."
    }
}

/// Writes a line to standard error.
func printError(_ message: String) {
    var line = message
    line.append("\n")
    // write(2) on fd 2: unbuffered, and free of the C `stderr` global that Swift 6 flags as shared state.
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Runs a command body: installs the signal handlers that remove partial outputs, and turns
/// any thrown error into the one-line `error: <path>: <what>` message and its exit code.
func runCommand(_ body: () throws -> Void) throws {
    SignalCleanup.install()
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as any ClassifiedError {
        printError("error: \(error)")
        throw ExitCode(ExitStatus(error.kind).rawValue)
    } catch {
        printError("error: \(error)")
        throw ExitCode(ExitStatus.internalError.rawValue)
    }
}

/// SIGINT/SIGTERM remove every temporary output and exit; a file-size limit (SIGXFSZ) becomes
/// an ordinary write error instead of killing the process with a partial file; SIGBUS (an input
/// truncated while mapped) becomes exit 74 with its path, after the same cleanup.
enum SignalCleanup {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func install() {
        guard sources.isEmpty else { return }
        InputFault.install()
        signal(SIGXFSZ, SIG_IGN)
        for (sig, status) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            signal(sig, SIG_IGN)
            // Dispatch runs the handler on a queue thread, outside signal context, so it may
            // take locks and call unlink.
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                TemporaryOutputs.removeAll()
                printError("error: interrupted; partial outputs removed")
                _exit(status)
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// Write end of the pipe the SIGBUS handler reports a fault address through (-1: not installed).
nonisolated(unsafe) private var inputFaultPipe: Int32 = -1

/// Reading a memory-mapped input faults with SIGBUS when the file was truncated after it was
/// mapped (pages past the new end have nothing behind them). Without a handler the process dies
/// with no message and leaves its temporary output behind.
///
/// A signal handler may do almost nothing safely, and the faulting thread cannot continue (the
/// load would fault again), so the handler only writes the fault address to a pipe and parks its
/// thread. A thread of our own, started here and blocked on that pipe, then names the input
/// whose mapping holds the address, removes the temporary outputs and exits with 74. A thread of
/// its own, not a Dispatch queue: the worker threads of a parallel conversion may all be parked
/// in the handler.
enum InputFault {
    static func install() {
        guard inputFaultPipe < 0 else { return }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { _ in
            var address: UInt = 0
            var got = 0
            while got < MemoryLayout<UInt>.size {
                let n = withUnsafeMutableBytes(of: &address) { read(inputFaultReadEnd, $0.baseAddress! + got, $0.count - got) }
                if n > 0 { got += n } else if n < 0 && errno == EINTR { continue } else { return nil }
            }
            TemporaryOutputs.removeAll()
            if let path = MappedFile.path(containing: address) {
                printError("error: \(path): \(FileAccessError.changedWhileOpen); partial outputs removed")
            } else {
                printError("error: an input could not be read (bus error: a memory-mapped file was truncated?); partial outputs removed")
            }
            _exit(ExitStatus.ioError.rawValue)
        }, nil)
        guard started == 0 else {
            close(fds[0])
            close(fds[1])
            return
        }
        pthread_detach(thread)
        inputFaultReadEnd = fds[0]
        inputFaultPipe = fds[1]
        var action = sigaction()
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        action.__sigaction_handler.sa_sigaction = { _, info, _ in
            // Only async-signal-safe calls here: write(2), pause(2), _exit(2).
            var address = UInt(bitPattern: info?.pointee._sifields._sigfault.si_addr)
            let n = withUnsafeBytes(of: &address) { write(inputFaultPipe, $0.baseAddress, $0.count) }
            if n != MemoryLayout<UInt>.size { _exit(ExitStatus.ioError.rawValue) }
            while true { pause() }
        }
        sigaction(SIGBUS, &action, nil)
    }
}

/// Read end of ``inputFaultPipe``, used only by the watcher thread.
nonisolated(unsafe) private var inputFaultReadEnd: Int32 = -1
