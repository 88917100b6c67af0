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
/// an ordinary write error instead of killing the process with a partial file.
enum SignalCleanup {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func install() {
        guard sources.isEmpty else { return }
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
