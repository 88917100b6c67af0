public import Foundation
import Crypto

/// SHA-256 for tests, from swift-crypto (the library wconv hashes with), so the tests check
/// reference digests with a trusted implementation instead of one of their own.
public enum TestSHA256 {
    /// Lowercase hex SHA-256 of `bytes` (an array, `Data`, or an `UnsafeRawBufferPointer`).
    public static func hex(_ bytes: some DataProtocol) -> String {
        SHA256.hash(data: bytes).map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }

    /// Lowercase hex SHA-256 of the file at `path`.
    public static func hex(file path: String) throws -> String {
        hex(try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped))
    }
}
