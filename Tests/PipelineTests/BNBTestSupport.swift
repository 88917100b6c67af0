import Formats
import Foundation
import TensorCore
import TestSupport

/// Helpers for the bitsandbytes pipeline tests (namespaced to avoid clashes in the target).
enum BNBTest {
    static func read(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Where two byte strings first differ, or "" when equal (short failure messages).
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> String {
        if a == b { return "" }
        let i = (0 ..< min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        return "sizes \(a.count) vs \(b.count), first difference at byte \(i)"
    }

    /// The tensors of a safetensors file (or directory's model.safetensors) as name → (dtype, shape, bytes).
    static func tensors(_ path: String) throws -> [String: (dtype: DType, shape: [Int], bytes: [UInt8])] {
        let checkpoint = try SafetensorsCheckpoint(path: path)
        var out: [String: (DType, [Int], [UInt8])] = [:]
        for t in checkpoint.tensors { out[t.name] = (t.dtype, t.shape, Array(checkpoint.bytes(of: t))) }
        return out
    }

    static func floats(_ bytes: [UInt8], dtype: DType) -> [Float] {
        var out = [Float](repeating: 0, count: bytes.count * 8 / dtype.bitCount)
        bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { DenseFloat.decode(raw, dtype: dtype, into: $0) } }
        return out
    }

    static func littleEndian(_ values: [Float]) -> [UInt8] {
        values.flatMap { v -> [UInt8] in
            let b = v.bitPattern
            return [UInt8(truncatingIfNeeded: b), UInt8(truncatingIfNeeded: b >> 8), UInt8(truncatingIfNeeded: b >> 16), UInt8(truncatingIfNeeded: b >> 24)]
        }
    }

    /// A small model directory: config.json (LLaMA-like, `dtype` float32) and model.safetensors
    /// holding the given float32 tensors.
    static func modelDirectory(_ tensors: [(name: String, shape: [Int], values: [Float])], extraConfig: String = "") throws -> String {
        let dir = Fixtures.temporaryDirectory("wconv-bnb-model")
        let config = #"{"architectures": ["LlamaForCausalLM"], "dtype": "float32", "model_type": "llama"\#(extraConfig)}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let bytes = try SafetensorsWriter.serialize(tensors.map {
            (SafetensorsTensorSpec(name: $0.name, dtype: .f32, shape: $0.shape), littleEndian($0.values))
        }, metadata: [("format", "pt")])
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }

    /// Seeded values in [-scale, scale).
    static func values(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in rng.nextFloat() * scale }
    }
}
