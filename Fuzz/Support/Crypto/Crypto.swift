// A stand-in for swift-crypto's `Crypto` module in the fuzz build only.
//
// Formats hashes files with swift-crypto's SHA256 (manifests, pack, unpack), which the readers
// under test never call. Building BoringSSL instrumented would add minutes and nothing to the
// coverage, so Fuzz/build.sh compiles Formats against this module instead: the same API shape,
// a non-cryptographic 32-byte digest (FNV-1a lanes). Never part of the package build.

/// The subset of swift-crypto's `SHA256` that Formats uses.
public struct SHA256 {
    private var lanes: [UInt64] = [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4, 0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321]
    private var index = 0

    public init() {}

    public mutating func update(bufferPointer: UnsafeRawBufferPointer) {
        for byte in bufferPointer {
            lanes[index] = (lanes[index] ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            index = (index + 1) & 3
        }
    }

    public func finalize() -> [UInt8] {
        lanes.flatMap { lane in (0 ..< 8).map { UInt8(truncatingIfNeeded: lane >> ($0 * 8)) } }
    }
}
