import Foundation
import TensorCore
import TestSupport

/// Loader for `testdata/vectors/bnb_goldens.json` (written by `testdata/scripts/make_bnb_goldens.py`
/// with bitsandbytes 0.50.2 on CPU): byte arrays are hex, float32 arrays the hex of their LE bytes.
struct BNBGoldens: @unchecked Sendable {  // immutable after loading
    let root: [String: Any]

    static let shared: BNBGoldens? = {
        guard let bytes = try? Fixtures.data("vectors/bnb_goldens.json"),
              let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        else { return nil }
        return BNBGoldens(root: object)
    }()

    func list(_ key: String) -> [[String: Any]] { root[key] as? [[String: Any]] ?? [] }
}

enum GoldenError: Error { case missing(String) }

extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) throws -> String {
        guard let v = self[key] as? String else { throw GoldenError.missing(key) }
        return v
    }
    func int(_ key: String) throws -> Int {
        guard let v = self[key] as? Int else { throw GoldenError.missing(key) }
        return v
    }
    func bool(_ key: String) throws -> Bool {
        guard let v = self[key] as? Bool else { throw GoldenError.missing(key) }
        return v
    }
    func bytes(_ key: String) throws -> [UInt8] { try hexBytes(string(key)) }
    func floats(_ key: String) throws -> [Float] { try hexFloats(string(key)) }
    func object(_ key: String) throws -> [String: Any] {
        guard let v = self[key] as? [String: Any] else { throw GoldenError.missing(key) }
        return v
    }
}

func hexBytes(_ hex: String) throws -> [UInt8] {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { throw GoldenError.missing("even hex") }
    func nibble(_ c: UInt8) throws -> UInt8 {
        switch c {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: throw GoldenError.missing("hex digit")
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    var i = 0
    while i < chars.count {
        out.append(try nibble(chars[i]) << 4 | nibble(chars[i + 1]))
        i += 2
    }
    return out
}

func hexFloats(_ hex: String) throws -> [Float] {
    let b = try hexBytes(hex)
    return stride(from: 0, to: b.count, by: 4).map { i in
        Float(bitPattern: UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24)
    }
}

/// REFERENCE §13 generator: `s = s * 1103515245 + 12345 (mod 2^32)`, advanced before each use.
func lcg(seed: UInt32, count: Int) -> [Float] {
    var s = seed
    return (0 ..< count).map { _ in
        s = s &* 1_103_515_245 &+ 12345
        return Float((s >> 16) & 0x7FFF) / 16384 - 1
    }
}

/// The 4×256 test input (`testdata/vectors/input_4x256_f32le.bin`, REFERENCE §13).
func input4x256() throws -> [Float] {
    let bytes = try Fixtures.data("vectors/input_4x256_f32le.bin")
    return stride(from: 0, to: bytes.count, by: 4).map { i in
        Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
    }
}

/// Rebuilds a golden case's input from its description.
func goldenInput(_ spec: [String: Any]) throws -> [Float] {
    if spec["file"] != nil { return try input4x256() }
    if let hex = spec["f32"] as? String { return try hexFloats(hex) }
    if let n = spec["zeros"] as? Int { return [Float](repeating: 0, count: n) }
    let seed = try spec.int("lcg")
    let count = try (spec["count"] as? Int) ?? (spec.int("rows") * spec.int("columns"))
    var x = lcg(seed: UInt32(seed), count: count)
    if let block = spec["scaled_blocks"] as? Int {
        for b in stride(from: 0, to: count, by: block) {
            let scale = Float(sign: .plus, exponent: (b / block) % 9 - 4, significand: 1)
            for i in b ..< min(b + block, count) { x[i] *= scale }
        }
    }
    if let times = spec["times"] as? Double {
        let factor = Float(times)
        x = x.map { $0 * factor }
    }
    return x
}

/// Bitwise equality that treats any two NaNs as equal (payloads are not part of the contract).
func sameFloats(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
}

/// Index and values of the first difference, for failure messages.
func firstDifference(_ a: [Float], _ b: [Float]) -> String {
    guard a.count == b.count else { return "count \(a.count) vs \(b.count)" }
    for i in 0 ..< a.count where !(a[i].bitPattern == b[i].bitPattern || (a[i].isNaN && b[i].isNaN)) {
        return "first difference at \(i): \(a[i]) vs \(b[i])"
    }
    return "equal"
}

func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
    guard a.count == b.count else { return "count \(a.count) vs \(b.count)" }
    for i in 0 ..< a.count where a[i] != b[i] { return "first difference at byte \(i): \(a[i]) vs \(b[i])" }
    return "equal"
}

/// Distance in units in the last place between two finite floats of the same sign.
func ulpDistance(_ a: Float, _ b: Float) -> Int {
    abs(Int(Int32(bitPattern: a.bitPattern)) - Int(Int32(bitPattern: b.bitPattern)))
}
