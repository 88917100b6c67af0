import Formats
import TensorCore
import Verify

/// The on-disk form of a paused training run: a directory with
///
/// - `trainer_state.json`: counters (optimizer step, epoch, position in the epoch's order),
///   the seed, a fingerprint of the training examples, and every option, so a resumed run
///   continues exactly where the saved one stopped;
/// - `trainer_state.safetensors`: for every adapted module, PEFT's tensor names
///   (`base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight`, …) holding the adapter,
///   and the same names + `.exp_avg` / `.exp_avg_sq` holding AdamW's moments (float32, exact).
///
/// The random streams (data order, dropout) are functions of the seed and counters, so they
/// need no state of their own. Other files (a PEFT adapter for use outside training) may be
/// written into the same directory by the caller.
public enum TrainingCheckpoint {
    public static let stateFileName = "trainer_state.json"
    public static let tensorFileName = "trainer_state.safetensors"
    static let format = "wconv-lora-trainer"
    static let version = 1

    struct State: Sendable, Hashable {
        var step: Int
        var epoch: Int
        var position: Int
    }

    /// FNV-1a over every example's tokens and mask: detects resuming on different data.
    static func fingerprint(_ examples: [TrainingExample]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ v: UInt64) {
            for i in 0 ..< 8 {
                h ^= (v >> (8 * UInt64(i))) & 0xFF
                h = h &* 0x0000_0100_0000_01B3
            }
        }
        mix(UInt64(examples.count))
        for e in examples {
            mix(UInt64(e.tokens.count))
            for (t, m) in zip(e.tokens, e.lossMask) { mix(UInt64(bitPattern: Int64(t)) << 1 | (m ? 1 : 0)) }
        }
        return h
    }

    static func hex(_ v: UInt64) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func parseHex(_ s: String?) -> UInt64? {
        guard let s, s.hasPrefix("0x") else { return nil }
        return UInt64(s.dropFirst(2), radix: 16)
    }
}

extension LoRATrainer {
    /// Writes a checkpoint directory atomically (created under a temporary name, renamed into
    /// place when complete; an existing directory at `path` is replaced).
    /// - Parameter extraFiles: called with the temporary directory before it is committed, to
    ///   add files (for instance the PEFT adapter) to the same checkpoint.
    /// - Throws: ``PathError`` for write failures.
    public func saveCheckpoint(to path: String, extraFiles: ((_ directory: String) throws -> Void)? = nil) throws {
        let output = try AtomicOutput.directory(at: path, force: true)
        let layout = model.layout
        var tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])] = []
        let m = optimizer.m, v = optimizer.v
        for s in layout.slots {
            let name = s.key.peftModuleName
            let pieces: [(String, [Int], Range<Int>)] = [
                (".lora_A.weight", [s.rank, s.inFeatures], s.aOffset ..< s.bOffset),
                (".lora_B.weight", [s.outFeatures, s.rank], s.bOffset ..< s.end),
            ]
            for (suffix, shape, range) in pieces {
                tensors.append((SafetensorsTensorSpec(name: name + suffix, dtype: .f32, shape: shape),
                                Self.bytes(model.parameters.array(range))))
                tensors.append((SafetensorsTensorSpec(name: name + suffix + ".exp_avg", dtype: .f32, shape: shape),
                                Self.bytes(Array(m[range]))))
                tensors.append((SafetensorsTensorSpec(name: name + suffix + ".exp_avg_sq", dtype: .f32, shape: shape),
                                Self.bytes(Array(v[range]))))
            }
        }
        let data = try SafetensorsWriter.serialize(tensors, metadata: [("format", "wconv-lora-trainer")])
        let file = try OutputFile(path: output.path(of: TrainingCheckpoint.tensorFileName))
        try data.withUnsafeBytes { try file.write($0) }
        try file.close()

        let json = JSONValue.object(stateJSON())
        let text = Array((json.serialized(.python(indent: 2, sortKeys: false)) + "\n").utf8)
        let stateFile = try OutputFile(path: output.path(of: TrainingCheckpoint.stateFileName))
        try text.withUnsafeBytes { try stateFile.write($0) }
        try stateFile.close()
        try extraFiles?(output.temporaryPath)
        try output.commit()
    }

    private func stateJSON() -> JSONObject {
        let lora = model.loraConfig, o = options, s = state
        let c = model.config
        var max: JSONValue = .null
        if let n = o.maxGradientNorm { max = .double(n) }
        return JSONObject([
            ("format", .string(TrainingCheckpoint.format)),
            ("version", .int(Int64(TrainingCheckpoint.version))),
            ("step", .int(Int64(s.step))),
            ("epoch", .int(Int64(s.epoch))),
            ("position", .int(Int64(s.position))),
            ("seed", .string(TrainingCheckpoint.hex(o.seed))),
            ("examples", .int(Int64(examples.count))),
            ("examples_fingerprint", .string(TrainingCheckpoint.hex(TrainingCheckpoint.fingerprint(examples)))),
            ("lora", .object(JSONObject([
                ("r", .int(Int64(lora.rank))), ("lora_alpha", .double(lora.alpha)), ("lora_dropout", .double(lora.dropout)),
                ("use_rslora", .bool(lora.useRSLoRA)), ("target_modules", .array(lora.targets.map { .string($0) })),
            ]))),
            ("optimizer", .object(JSONObject([
                ("lr", .double(o.optimizer.learningRate)), ("beta1", .double(o.optimizer.beta1)),
                ("beta2", .double(o.optimizer.beta2)), ("eps", .double(o.optimizer.epsilon)),
                ("weight_decay", .double(o.optimizer.weightDecay)),
            ]))),
            ("schedule", .string(o.schedule.rawValue)),
            ("warmup_steps", .int(Int64(o.warmupSteps))),
            ("total_steps", .int(Int64(o.totalSteps))),
            ("batch_size", .int(Int64(o.batchSize))),
            ("gradient_accumulation", .int(Int64(o.gradientAccumulation))),
            ("max_grad_norm", max),
            ("shuffle", .bool(o.shuffle)),
            ("model", .object(JSONObject([
                ("num_hidden_layers", .int(Int64(c.layerCount))), ("hidden_size", .int(Int64(c.hiddenSize))),
                ("vocab_size", .int(Int64(c.vocabularySize))),
            ]))),
        ])
    }

    /// Continues a run from a checkpoint written by ``saveCheckpoint(to:extraFiles:)``.
    ///
    /// The adapter and optimizer moments are loaded into a trainer over `model` (whose adapter
    /// is replaced) and `examples` (which must be the saved run's, checked by fingerprint).
    /// Options come from the checkpoint unless given; continuing with the saved options gives
    /// bit for bit the adapter an uninterrupted run would have reached (same thread count).
    /// - Throws: ``PathError`` wrapping ``TrainingError/badCheckpoint(_:)`` for missing,
    ///   damaged or mismatched checkpoints.
    public static func resume(from path: String, model: LoRAModel, examples: [TrainingExample],
                              options: TrainingOptions? = nil) throws -> LoRATrainer {
        let statePath = FileSystem.join(path, TrainingCheckpoint.stateFileName)
        let tensorPath = FileSystem.join(path, TrainingCheckpoint.tensorFileName)
        func bad(_ reason: String, _ file: String = statePath) -> PathError {
            PathError(path: file, TrainingError.badCheckpoint(reason))
        }
        guard FileSystem.exists(statePath) else { throw PathError(path: path, TrainingError.badCheckpoint("no \(TrainingCheckpoint.stateFileName)")) }
        let json = try withPath(statePath) { try JSONParser.parse(try FileSystem.readFile(statePath)) }
        guard let o = json.objectValue, o["format"]?.stringValue == TrainingCheckpoint.format else {
            throw bad("not a wconv trainer state")
        }
        guard o["version"]?.intValue == TrainingCheckpoint.version else { throw bad("unsupported version \(o["version"] ?? .null)") }
        func int(_ key: String) throws -> Int {
            guard let v = o[key]?.intValue else { throw bad("missing or non-integer '\(key)'") }
            return v
        }
        func double(_ v: JSONValue?, _ key: String) throws -> Double {
            guard let d = v?.doubleValue else { throw bad("missing or non-numeric '\(key)'") }
            return d
        }

        // The adapter configuration must be the model's.
        guard let l = o["lora"]?.objectValue else { throw bad("missing 'lora'") }
        let lora = LoRAConfig(rank: l["r"]?.intValue ?? -1, alpha: try double(l["lora_alpha"], "lora_alpha"),
                              dropout: try double(l["lora_dropout"], "lora_dropout"),
                              useRSLoRA: l["use_rslora"]?.boolValue ?? false,
                              targets: l["target_modules"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        guard lora == model.loraConfig else { throw bad("the checkpoint's LoRA configuration differs from the model's") }
        guard let m = o["model"]?.objectValue, m["num_hidden_layers"]?.intValue == model.config.layerCount,
              m["hidden_size"]?.intValue == model.config.hiddenSize, m["vocab_size"]?.intValue == model.config.vocabularySize
        else { throw bad("made for a different model shape") }
        guard o["examples"]?.intValue == examples.count,
              TrainingCheckpoint.parseHex(o["examples_fingerprint"]?.stringValue) == TrainingCheckpoint.fingerprint(examples)
        else { throw bad("made with different training examples") }

        let stored: TrainingOptions
        do {
            guard let seed = TrainingCheckpoint.parseHex(o["seed"]?.stringValue) else { throw bad("missing 'seed'") }
            guard let opt = o["optimizer"]?.objectValue else { throw bad("missing 'optimizer'") }
            guard let kind = o["schedule"]?.stringValue.flatMap(LearningRateSchedule.Kind.init(rawValue:)) else {
                throw bad("missing or unknown 'schedule'")
            }
            let maxNorm: Double? = o["max_grad_norm"]?.isNull ?? true ? nil : try double(o["max_grad_norm"], "max_grad_norm")
            stored = TrainingOptions(
                optimizer: AdamWConfig(learningRate: try double(opt["lr"], "lr"), beta1: try double(opt["beta1"], "beta1"),
                                       beta2: try double(opt["beta2"], "beta2"), epsilon: try double(opt["eps"], "eps"),
                                       weightDecay: try double(opt["weight_decay"], "weight_decay")),
                schedule: kind, warmupSteps: try int("warmup_steps"), totalSteps: try int("total_steps"),
                batchSize: try int("batch_size"), gradientAccumulation: try int("gradient_accumulation"),
                maxGradientNorm: maxNorm, seed: seed, shuffle: o["shuffle"]?.boolValue ?? true)
        }
        let state = TrainingCheckpoint.State(step: try int("step"), epoch: try int("epoch"), position: try int("position"))

        // Tensors: adapter and moments, each checked for presence, dtype and shape.
        let file = try SafetensorsFile(path: tensorPath)
        let layout = model.layout
        var parameters = [Float](repeating: 0, count: layout.count)
        var mValues = parameters, vValues = parameters
        for s in layout.slots {
            let name = s.key.peftModuleName
            for (suffix, shape, range) in [(".lora_A.weight", [s.rank, s.inFeatures], s.aOffset ..< s.bOffset),
                                           (".lora_B.weight", [s.outFeatures, s.rank], s.bOffset ..< s.end)] {
                for (extra, target) in [("", 0), (".exp_avg", 1), (".exp_avg_sq", 2)] {
                    let key = name + suffix + extra
                    guard let t = file.tensor(named: key) else { throw bad("missing tensor \(key)", tensorPath) }
                    guard t.dtype == .f32, t.shape == shape else {
                        throw bad("tensor \(key) is \(t.dtype.rawValue) \(t.shape), expected F32 \(shape)", tensorPath)
                    }
                    let bytes = file.bytes(of: t)
                    for (i, j) in range.enumerated() {
                        let value = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                        switch target {
                        case 0: parameters[j] = value
                        case 1: mValues[j] = value
                        default: vValues[j] = value
                        }
                    }
                }
            }
        }
        let chosen = options ?? stored
        let trainer = try LoRATrainer(model: model, options: chosen, examples: examples)
        model.parameters.copy(from: parameters, at: 0)
        let optimizer: AdamW
        do {
            optimizer = try AdamW(config: chosen.optimizer, step: state.step, m: mValues, v: vValues)
        } catch { throw PathError(path: tensorPath, error) }
        do {
            try trainer.restore(state, optimizer: optimizer)
        } catch { throw PathError(path: statePath, error) }
        return trainer
    }

    static func bytes(_ values: [Float]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 4)
        for v in values {
            let b = v.bitPattern.littleEndian
            out += [UInt8(truncatingIfNeeded: b), UInt8(truncatingIfNeeded: b >> 8),
                    UInt8(truncatingIfNeeded: b >> 16), UInt8(truncatingIfNeeded: b >> 24)]
        }
        return out
    }
}
