import Foundation
import Formats
import Pipeline
import TensorCore
import TestSupport

/// Helpers for the GGUF quantizer tests: the llama-quantize goldens in
/// testdata/golden/quantize (made by testdata/scripts/make_quantize_goldens.py).
enum QuantizeGoldens {
    /// One golden: what llama-quantize wrote for an input, a type and flags.
    struct Case: Sendable, CustomStringConvertible {
        let id: String
        let input: String
        let type: String
        let flags: [String]
        let fileSHA256: String
        let fileSize: Int
        /// (key, GGUF type name) in file order.
        let keys: [(String, String)]
        /// (name, type, ne, sha256) in file order.
        let tensors: [(name: String, type: String, ne: [Int], sha256: String)]
        /// llama-quantize's reason when it refused the input (no output then).
        var refusal: String? = nil

        var description: String { id }
    }

    /// `id` may name a file under a subdirectory of golden/quantize (`families/qwen2.Q8_0`).
    static func load(_ id: String) throws -> Case {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("golden/quantize/\(id).json")))
        guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw Failure(.malformedInput, "\(id): not an object") }
        let kv = (o["kv"] as? [[String: Any]] ?? []).map { ($0["key"] as? String ?? "", $0["type"] as? String ?? "") }
        let tensors = (o["tensors"] as? [[String: Any]] ?? []).map {
            (name: $0["name"] as? String ?? "", type: $0["type"] as? String ?? "", ne: $0["ne"] as? [Int] ?? [], sha256: $0["sha256"] as? String ?? "")
        }
        let refusal = (o["refused"] as? [String: Any])?["message"] as? String
        return Case(id: id, input: o["input"] as? String ?? "", type: o["type"] as? String ?? "", flags: o["flags"] as? [String] ?? [],
                    fileSHA256: o["file_sha256"] as? String ?? "", fileSize: o["file_size"] as? Int ?? 0, keys: kv, tensors: tensors, refusal: refusal)
    }

    /// Every case id (file names without `.json`), the converter summary excluded.
    static var ids: [String] {
        let dir = Fixtures.path("golden/quantize")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") && !$0.hasSuffix(".gguf.json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The ids of golden/quantize/families (every family's converter GGUF through llama-quantize).
    static var familyIds: [String] {
        let dir = Fixtures.path("golden/quantize/families")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") }.map { "families/" + String($0.dropLast(5)) }.sorted()
    }

    /// The options llama-quantize's flags stand for.
    static func options(_ c: Case, threads: Int = 2) throws -> QuantizeOptions {
        guard let fileType = GGMLFileType(name: c.type) else { throw Failure(.usage, "unknown type \(c.type)") }
        var o = QuantizeOptions(scheme: .ggml(fileType))
        o.threads = threads
        var i = 0
        while i < c.flags.count {
            switch c.flags[i] {
            case "--pure": o.pure = true
            case "--leave-output-tensor": o.leaveOutputTensor = true
            case "--allow-requantize": o.allowRequantize = true
            case "--output-tensor-type": i += 1; o.outputTensorType = try QuantizeOptions.parseTensorType(c.flags[i])
            case "--token-embedding-type": i += 1; o.tokenEmbeddingType = try QuantizeOptions.parseTensorType(c.flags[i])
            case "--tensor-type": i += 1; o.tensorTypeOverrides.append(try QuantizeOptions.parseTensorTypeOverride(c.flags[i]))
            default: throw Failure(.usage, "flag \(c.flags[i]) not handled by the test")
            }
            i += 1
        }
        return o
    }
}
