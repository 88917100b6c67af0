public import Foundation

/// Runs the built `wconv` binary, as a user would, for end-to-end tests.
public enum CLI {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        /// Standard error without the NDJSON progress events (the messages: summaries, errors).
        public let stderr: String
        /// The NDJSON progress events wconv wrote on standard error (a pipe, not a terminal).
        public let events: [String]

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            (self.stderr, self.events) = CLI.splitEvents(stderr)
        }
    }

    /// Separates the progress events (lines `{"event":…}`, docs/cli-json.md) from the messages.
    public static func splitEvents(_ stderr: String) -> (messages: String, events: [String]) {
        var messages = "", events: [String] = []
        for line in stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast(stderr.hasSuffix("\n") ? 1 : 0) {
            if line.hasPrefix("{\"event\":") { events.append(String(line)) } else { messages += line + "\n" }
        }
        if !stderr.hasSuffix("\n"), messages.hasSuffix("\n") { messages.removeLast() }
        return (messages, events)
    }

    /// The `wconv` executable next to the test bundle (`.build/<config>/wconv`).
    public static var binary: String {
        var url = Bundle.main.bundleURL
        for _ in 0 ..< 4 {
            let candidate = url.appendingPathComponent("wconv")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            url.deleteLastPathComponent()
        }
        return Fixtures.repositoryRoot().appendingPathComponent(".build/debug/wconv").path
    }

    /// Runs `wconv` with `arguments` and waits for it.
    @discardableResult
    public static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a large output cannot fill the pipe and block the child.
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}
