import Finetune
import Formats
import TensorCore
import TestSupport
import Testing
import Verify

/// The PyTorch + PEFT goldens of `testdata/golden/qlora` (made by `make_qlora_goldens.py`).
enum QLoRAGolden {
    static let directory = "golden/qlora"

    static func json() throws -> JSONObject {
        guard let o = try JSONParser.parse(try Fixtures.data("\(directory)/qlora_goldens.json")).objectValue else {
            throw Failure(.malformedInput, "qlora_goldens.json is not an object")
        }
        return o
    }

    /// All float32 tensors of a golden safetensors file by name.
    static func tensors(_ file: String) throws -> [String: [Float]] {
        let f = try SafetensorsFile(path: Fixtures.path("\(directory)/\(file)"))
        var out: [String: [Float]] = [:]
        for t in f.tensors {
            guard t.dtype == .f32 else { throw Failure(.malformedInput, "\(t.name) is not F32") }
            let bytes = f.bytes(of: t)
            out[t.name] = (0 ..< t.elementCount).map {
                Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
        }
        return out
    }

    /// PEFT's r=8, alpha=16, dropout 0, seven targets.
    static let lora = LoRAConfig(rank: 8, alpha: 16, dropout: 0, useRSLoRA: false)

    /// The adapter stored under `<peft name>.lora_A.weight<suffix>` / `.lora_B.weight<suffix>`.
    static func adapter(_ tensors: [String: [Float]], config: LlamaConfig, suffix: String = "") throws -> LoRAWeights {
        var pairs: [LoRAKey: LoRAPair] = [:]
        for l in 0 ..< config.layerCount {
            for t in LoRATarget.allCases {
                let key = LoRAKey(layer: l, target: t)
                guard let a = tensors[key.peftModuleName + ".lora_A.weight" + suffix],
                      let b = tensors[key.peftModuleName + ".lora_B.weight" + suffix] else {
                    throw Failure(.missingInput, "no golden tensors for \(key.peftModuleName)\(suffix)")
                }
                let (n, m) = t.features(config)
                pairs[key] = try LoRAPair(rank: 8, inFeatures: n, outFeatures: m, a: a, b: b)
            }
        }
        return try LoRAWeights(modelConfig: config, loraConfig: lora, pairs: pairs)
    }

    /// One step of `qlora_goldens.json`: the model it was made on, PEFT's loss and the example.
    struct Step {
        let model: String
        let loss: Double
        let example: TrainingExample
    }

    static func step(_ name: String) throws -> Step {
        guard let step = try json()["steps"]?.objectValue?[name]?.objectValue,
              let model = step["model"]?.stringValue, let loss = step["loss"]?.doubleValue else {
            throw Failure(.malformedInput, "no golden step \(name)")
        }
        return Step(model: model, loss: loss,
                    example: try TrainingExample(tokens: ints(step["tokens"]), lossMask: bools(step["mask"])))
    }

    /// Expects `loss` within 1e-4 relative of PEFT's and every adapter gradient within `tolerance`
    /// relative of `expected` (whose gradients must not be all zero); returns the worst gradient difference.
    @discardableResult
    static func expectMatchesPEFT(
        loss: Double, gradients: LoRAWeights, expectedLoss: Double, expected: LoRAWeights, tolerance: Float = 1e-4,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Float {
        #expect(abs(loss - expectedLoss) <= 1e-4 * abs(expectedLoss), "loss \(loss) vs \(expectedLoss)", sourceLocation: sourceLocation)
        var worst: Float = 0
        for key in expected.keys {
            guard let g = gradients[key], let e = expected[key] else {
                Issue.record("missing \(key)", sourceLocation: sourceLocation)
                continue
            }
            let da = relativeDifference(g.a, e.a), db = relativeDifference(g.b, e.b)
            worst = max(worst, da, db)
            #expect(da <= tolerance, "\(key) lora_A grad: relative difference \(da)", sourceLocation: sourceLocation)
            #expect(db <= tolerance, "\(key) lora_B grad: relative difference \(db)", sourceLocation: sourceLocation)
            #expect(maxAbs(e.a) > 0 && maxAbs(e.b) > 0, sourceLocation: sourceLocation)
        }
        return worst
    }

    static func ints(_ v: JSONValue?) -> [Int] { v?.arrayValue?.compactMap(\.intValue) ?? [] }
    static func bools(_ v: JSONValue?) -> [Bool] { v?.arrayValue?.compactMap(\.boolValue) ?? [] }
}

/// Largest |a − b|.
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Largest |x|.
func maxAbs(_ a: [Float]) -> Float { a.reduce(0) { max($0, abs($1)) } }

/// ‖a − b‖∞ / ‖b‖∞.
func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    maxAbsDifference(a, b) / max(maxAbs(b), .leastNormalMagnitude)
}
