import Foundation
import Formats
import Testing
import TestSupport

/// `--dry-run`: the plan is printed, nothing is written, and a real run then writes exactly the
/// planned tensors (types, shapes, bytes) and files (sizes).
@Suite struct DryRunCommandTests {
    static let spm = Fixtures.path("tiny-llama-spm")
    static let adapter = Fixtures.path("golden/lora/tiny-llama-spm-lora")

    static let cases: [(label: String, arguments: [String], output: String)] = [
        ("convert HF→GGUF", ["convert", spm, "--outtype", "f16"], "m.gguf"),
        ("convert HF→GGUF split", ["convert", spm, "--outtype", "f32", "--split-max-size", "100KB"], "split.gguf"),
        ("convert GGUF→HF", ["convert", Fixtures.path("golden/tiny-llama-spm.f32.gguf"), "--outtype", "bf16"], "hf"),
        ("quantize nf4", ["quantize", spm, "--nf4"], "nf4"),
        ("quantize fp4 no double quant", ["quantize", spm, "--fp4", "--no-double-quant", "--blocksize", "128"], "fp4"),
        ("quantize int8", ["quantize", spm, "--int8"], "int8"),
        ("quantize Q4_K_M", ["quantize", Fixtures.path("tiny-llama-256"), "--type", "Q4_K_M"], "q.gguf"),
        ("quantize Q8_0 without provenance", ["quantize", Fixtures.path("golden/tiny-llama-spm.f32.gguf"), "--type", "Q8_0", "--no-provenance"], "q8.gguf"),
        ("qlora-merge", ["qlora-merge", spm, adapter, "--no-verify", "--outtype", "f16"], "merged"),
        ("qlora-merge nf4", ["qlora-merge", spm, adapter, "--no-verify", "--requantize", "nf4"], "merged-nf4"),
        ("qlora-merge GGUF", ["qlora-merge", spm, adapter, "--no-verify", "--requantize", "Q8_0"], "merged.gguf"),
        ("qlora-merge GPT-2 GGUF", ["qlora-merge", Fixtures.path("families/gpt2"), Fixtures.path("golden/families-lora/gpt2"),
                                    "--no-verify", "--outtype", "f16"], "merged.gguf"),
        ("qlora-merge Falcon-40B GGUF", ["qlora-merge", Fixtures.path("families/falcon-40b"), Fixtures.path("golden/families-lora/falcon-40b"),
                                         "--outtype", "f32"], "merged.gguf"),
    ]

    /// name → (type, shape, bytes) of every tensor stored in `files`.
    /// A split GGUF is opened once, by its first part, which reads the whole set.
    static func storedTensors(_ files: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        var openedGGUF = false
        for file in files {
            if file.hasSuffix(".gguf") {
                if openedGGUF { continue }
                openedGGUF = true
            } else if !file.hasSuffix(".safetensors") {
                continue
            }
            for e in try ModelInput.open(path: file).tensorSource.entries {
                out[e.name] = "\(e.encoding.description) \(e.shape) \(e.byteCount)"
            }
        }
        return out
    }

    @Test(arguments: 0 ..< cases.count)
    func planMatchesTheRealRun(_ index: Int) throws {
        let (label, arguments, output) = Self.cases[index]
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/" + output

        let dry = try CLI.run(arguments + ["-o", out, "--dry-run", "--json"])
        #expect(dry.status == 0, "\(label): \(dry.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "\(label): --dry-run wrote something")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any], "\(label)")
        let tensors = try #require(plan["tensors"] as? [[String: Any]])
        let files = try #require(plan["files"] as? [[String: Any]])
        #expect(!tensors.isEmpty && plan["peak_memory_bytes"] as? Int ?? 0 > 0 && plan["peak_input_bytes"] as? Int ?? 0 > 0)
        #expect(plan["output_bytes"] as? Int == files.reduce(0) { $0 + ($1["bytes"] as? Int ?? 0) })
        #expect(plan["tensor_bytes"] as? Int == tensors.reduce(0) { $0 + ($1["bytes"] as? Int ?? 0) })

        let real = try CLI.run(arguments + ["-o", out])
        #expect(real.status == 0, "\(label): \(real.stderr)")
        // A directory output holds its files; a GGUF file (or split parts) sits in `dir`.
        var isDir: ObjCBool = false
        let base = FileManager.default.fileExists(atPath: out, isDirectory: &isDir) && isDir.boolValue ? out : dir
        var paths: [String] = []
        for f in files {
            let path = base + "/" + (f["path"] as? String ?? "")
            paths.append(path)
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
            #expect(size == f["bytes"] as? Int, "\(label): \(f["path"] ?? "") is \(size) bytes, planned \(f["bytes"] ?? "")")
        }
        var planned: [String: String] = [:]
        for t in tensors {
            let shape = (t["shape"] as? [Int]) ?? []
            planned[t["name"] as? String ?? ""] = "\(t["type"] as? String ?? "") \(shape) \(t["bytes"] as? Int ?? 0)"
            #expect(!(t["source_type"] as? String ?? "").isEmpty)
        }
        let stored = try Self.storedTensors(paths.filter { !$0.hasSuffix(".json") })
        #expect(stored.count == planned.count, "\(label)")
        for (name, line) in planned { #expect(stored[name] == line, "\(label): \(name)") }
    }

    @Test func textPlanNamesEveryTensorAndWritesNothing() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try CLI.run(["quantize", Fixtures.path("tiny-llama-256"), "-o", dir + "/q.gguf", "--type", "Q4_K_M", "--dry-run"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("blk.0.ffn_up.weight") && r.stdout.contains("Q4_K") && r.stdout.contains("peak memory"))
        #expect(r.stdout.contains("nothing written"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
