import Formats
import Foundation
import TensorCore

/// Helpers shared by the safetensors and HF directory tests (namespaced so they cannot collide
/// with other suites' helpers in this target).
enum ST {
    /// Builds safetensors bytes by hand: an 8-byte length (the header's own length unless `n` is
    /// given), the header text, then `data`.
    static func bytes(_ header: String, data: [UInt8] = [], n: UInt64? = nil) -> [UInt8] {
        let text = Array(header.utf8)
        var w = ByteWriter()
        w.write(n ?? UInt64(text.count))
        w.write(bytes: text)
        w.write(bytes: data)
        return w.bytes
    }

    /// `SafetensorsHeader.parse` on an array, keeping the typed error.
    static func parse(_ bytes: [UInt8]) throws(SafetensorsError) -> SafetensorsHeader {
        let result: Result<SafetensorsHeader, SafetensorsError> = bytes.withUnsafeBytes { raw in
            do throws(SafetensorsError) { return .success(try SafetensorsHeader.parse(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// One `"name":{...}` header entry.
    static func entry(_ name: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":[\#(shape.map(String.init).joined(separator: ","))],"data_offsets":[\#(begin),\#(end)]}"#
    }

    static func hex(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 2)
        var high: UInt8? = nil
        for c in text.utf8 {
            let v: UInt8 = c <= 57 ? c - 48 : (c | 0x20) - 87
            if let h = high {
                out.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        return out
    }

    static func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Where two byte strings first differ ("" when equal), so a failed comparison prints a
    /// short message instead of two whole files.
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> String {
        if a == b { return "" }
        let i = (0 ..< min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        return "sizes \(a.count) vs \(b.count), first difference at byte \(i)"
    }

    /// The error wrapped by a ``PathError`` (or the error itself).
    static func underlying(_ error: any Error) -> any Error {
        (error as? PathError)?.underlying ?? error
    }

    /// Runs `body` and returns what it threw (nil if it did not throw).
    static func thrown(_ body: () throws -> Void) -> (any Error)? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    /// Decodes a golden JSON file with Foundation (independent of wconv's JSON code).
    static func decode<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
