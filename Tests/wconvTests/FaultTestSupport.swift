import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Running the built `wconv` under faults: a file-size limit, signals at a chosen moment, inputs
/// changed underneath it. Used by the Fault*Tests suites.
enum Fault {
    /// How a run ended (a death by signal n is reported as 128 + n, as a shell does).
    struct Result: Sendable {
        let status: Int32
        let stdout: String
        /// Standard error without the NDJSON progress events.
        let stderr: String
        let events: [String]

        init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            (self.stderr, self.events) = CLI.splitEvents(stderr)
        }
    }

    /// Runs `wconv` through `/bin/sh -c 'ulimit -f BLOCKS; exec wconv …'`: writes past
    /// `blocks` × 512 bytes fail with EFBIG (SIGXFSZ is ignored by wconv, so it sees the error).
    static func runWithFileSizeLimit(blocks: Int, _ arguments: [String]) throws -> Result {
        let quoted = ([CLI.binary] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        return try run("/bin/sh", ["-c", "ulimit -f \(blocks) && exec " + quoted.joined(separator: " ")])
    }

    /// Runs an executable and waits, collecting its output.
    static func run(_ executable: String, _ arguments: [String]) throws -> Result {
        let command = try Command(executable: executable, arguments: arguments)
        return command.wait()
    }

    /// A started process whose output is collected in the background, so it can be signalled
    /// while running.
    final class Command: @unchecked Sendable {
        let process = Process()
        private let out = Pipe(), err = Pipe()
        private let group = DispatchGroup()
        private var outData = Data(), errData = Data()

        init(executable: String = CLI.binary, arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = out
            process.standardError = err
            try process.run()
            for (pipe, isError) in [(out, false), (err, true)] {
                group.enter()
                DispatchQueue.global().async {
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    if isError { self.errData = data } else { self.outData = data }
                    self.group.leave()
                }
            }
        }

        var pid: pid_t { process.processIdentifier }

        func signal(_ sig: Int32) { kill(pid, sig) }

        /// Waits for the process; one still running after `timeout` seconds (a hang is a
        /// failure too) is killed, and reported as killed by SIGKILL (137).
        func wait(timeout: Double = 300) -> Result {
            if group.wait(timeout: .now() + timeout) == .timedOut {
                kill(pid, SIGCONT)
                kill(pid, SIGKILL)
                group.wait()
            }
            process.waitUntilExit()
            let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
            return Result(status: status, stdout: String(decoding: outData, as: UTF8.self),
                              stderr: String(decoding: errData, as: UTF8.self))
        }
    }

    /// Polls `directory` until an entry whose name contains `.wconv-tmp-` has at least
    /// `minimumBytes` (a file, or the files in a directory), then stops the process (SIGSTOP)
    /// so it cannot move on. Returns the entry's name, or nil if the process ended first.
    static func stopOnceWriting(_ command: Command, in directory: String, minimumBytes: Int = 1) -> String? {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if let name = temporaryEntries(in: directory).first, size(of: directory + "/" + name) >= minimumBytes {
                command.signal(SIGSTOP)
                // It may have committed between the look and the stop.
                return temporaryEntries(in: directory).contains(name) ? name : nil
            }
            if !command.process.isRunning { return nil }
            usleep(500)
        }
        return nil
    }

    /// Names of wconv's temporary outputs (`.<name>.wconv-tmp-<pid>`) in `directory`.
    static func temporaryEntries(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.contains(".wconv-tmp-") }
    }

    /// Bytes of a file, or of the files directly inside a directory.
    static func size(of path: String) -> Int {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return 0 }
        if isDirectory.boolValue {
            return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).reduce(0) { $0 + size(of: path + "/" + $1) }
        }
        return ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    /// Every file under `path` with its contents, to show an input was not modified.
    static func snapshot(_ path: String) throws -> [String: Data] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [:] }
        if !isDirectory.boolValue { return [path: try Data(contentsOf: URL(fileURLWithPath: path))] }
        var files: [String: Data] = [:]
        for name in try FileManager.default.subpathsOfDirectory(atPath: path) {
            let file = path + "/" + name
            var dir: ObjCBool = false
            if FileManager.default.fileExists(atPath: file, isDirectory: &dir), !dir.boolValue {
                files[file] = try Data(contentsOf: URL(fileURLWithPath: file))
            }
        }
        return files
    }
}

nonisolated(unsafe) private var largeModelDirectory: String?

/// A LLaMA model directory large enough that converting it takes a noticeable time (so a signal
/// or a truncation lands mid-write), written once per test run: f32 weights of a 2-layer model
/// with hidden size 1024 (about 85 MB) and the tokenizer of the tiny fixture.
enum LargeModel {
    static let directory: String = {
        let dir = Fixtures.temporaryDirectory("wconv-large-model")
        largeModelDirectory = dir
        // Removed when the test process exits; the tests never modify it (they copy it first).
        atexit { if let dir = largeModelDirectory { try? FileManager.default.removeItem(atPath: dir) } }
        let hidden = 1024, intermediate = 2048, layers = 2, vocab = 128, heads = 16
        let config: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
            "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": heads, "head_dim": hidden / heads, "vocab_size": vocab, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 256, "rope_theta": 10000.0, "tie_word_embeddings": false,
            "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
        ]
        let configData = try! JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        try! configData.write(to: URL(fileURLWithPath: dir + "/config.json"))
        for name in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"] {
            try! FileManager.default.copyItem(atPath: Fixtures.path("tiny-llama-spm/" + name), toPath: dir + "/" + name)
        }
        var tensors: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, hidden]), ("lm_head.weight", [vocab, hidden]),
                                           ("model.norm.weight", [hidden])]
        for l in 0 ..< layers {
            let p = "model.layers.\(l)."
            tensors += [(p + "input_layernorm.weight", [hidden]), (p + "post_attention_layernorm.weight", [hidden])]
            for m in ["q_proj", "k_proj", "v_proj", "o_proj"] { tensors.append((p + "self_attn.\(m).weight", [hidden, hidden])) }
            tensors += [(p + "mlp.gate_proj.weight", [intermediate, hidden]), (p + "mlp.up_proj.weight", [intermediate, hidden]),
                        (p + "mlp.down_proj.weight", [hidden, intermediate])]
        }
        try! writeSafetensors(tensors, to: dir + "/model.safetensors")
        return dir
    }()

    /// F32 tensors filled with small finite values, header padded with spaces like the writers do.
    static func writeSafetensors(_ tensors: [(String, [Int])], to path: String) throws {
        var header = "{"
        var offset = 0
        for (i, (name, shape)) in tensors.enumerated() {
            let bytes = shape.reduce(1, *) * 4
            header += (i == 0 ? "" : ",") + "\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        header += String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var length = UInt64(header.utf8.count).littleEndian
        handle.write(Data(bytes: &length, count: 8))
        handle.write(Data(header.utf8))
        // One 1 MiB block of values repeated: fast to write, and the values are all ordinary floats.
        let block = (0 ..< (1 << 18)).map { Float(($0 * 7919) % 2001 - 1000) / 16000 }
        let blockData = block.withUnsafeBytes { Data($0) }
        var left = offset
        while left > 0 {
            let n = min(left, blockData.count)
            handle.write(blockData.prefix(n))
            left -= n
        }
    }
}
