public import Foundation

/// Locating the repository's `testdata/` from a test source file.
///
/// SwiftPM resources cannot live outside a target's folder, so tests walk up from `#filePath`
/// to the directory holding `Package.swift`.
public enum Fixtures {
    public static func repositoryRoot(file: String = #filePath) -> URL {
        var url = URL(fileURLWithPath: file).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
            url.deleteLastPathComponent()
        }
        fatalError("Package.swift not found above \(file)")
    }

    /// Absolute path of `relative` inside `testdata/`.
    public static func path(_ relative: String, file: String = #filePath) -> String {
        repositoryRoot(file: file).appendingPathComponent("testdata").appendingPathComponent(relative).path
    }

    /// Contents of a file in `testdata/`.
    public static func data(_ relative: String, file: String = #filePath) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path(relative, file: file))))
    }

    /// A fresh empty directory for a test's outputs; removed by the caller or left in /tmp.
    public static func temporaryDirectory(_ label: String = "wconv-test") -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }
}

/// A small deterministic random generator (SplitMix64) for seeded test data.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float uniform in [-1, 1).
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) / Float(1 << 23) - 1
    }
}
