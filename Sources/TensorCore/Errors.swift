/// What class of failure an error is, which decides the exit code the CLI reports.
///
/// Modules throw their own error types (one case per failure, so tests can match them); each
/// conforms to ``ClassifiedError`` so the command line can map it to a documented exit code.
public enum ErrorKind: Sendable, Hashable {
    /// The command line itself is wrong.
    case usage
    /// An input exists but its bytes or contents are invalid.
    case malformedInput
    /// An input does not exist or cannot be opened.
    case missingInput
    /// The input is valid but uses something wconv does not implement (a ggml type, an architecture).
    case unsupported
    /// Values are unusable (NaN or Inf weights) unless allowed by a flag.
    case badValue
    /// An output cannot be created (exists without `--force`, permission, disk full).
    case cannotWrite
    /// Reading failed part way (I/O error, file changed underneath).
    case ioError
    /// A check ran and failed (verify thresholds, checksum mismatch).
    case checkFailed
    /// Interrupted by a signal.
    case interrupted
    /// A bug in wconv.
    case internalError
}

/// An error that knows its ``ErrorKind``.
public protocol ClassifiedError: Error, CustomStringConvertible {
    var kind: ErrorKind { get }
}

/// An error tied to a file: rendered as `<path>: <what is wrong>`.
public struct PathError: ClassifiedError {
    public let path: String
    public let underlying: any Error

    public init(path: String, _ underlying: any Error) {
        // Keep the innermost path: a reader that names a shard inside a directory knows better.
        if let inner = underlying as? PathError {
            self.path = inner.path
            self.underlying = inner.underlying
        } else {
            self.path = path
            self.underlying = underlying
        }
    }

    public var kind: ErrorKind { (underlying as? any ClassifiedError)?.kind ?? .internalError }
    public var description: String { "\(path): \(underlying)" }
}

/// A plain classified error with a message, for failures that need no case of their own.
public struct Failure: ClassifiedError {
    public let kind: ErrorKind
    public let message: String
    public init(_ kind: ErrorKind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}


/// Runs `body`, attaching `path` to anything it throws.
public func withPath<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw PathError(path: path, error) }
}
