public import Verify
public import Formats
import TensorCore

extension PEFTLoRAConfig {
    /// The PEFT config of a trained adapter: `target_modules` are the projection names in layer
    /// order (`family`'s names), `lora_dropout` the training dropout.
    public init(_ lora: LoRAConfig, baseModelNameOrPath: String?, family: ModelFamily = .llama) {
        var targets: [String] = []
        // GPT-2's attention and MLP `c_proj` are one PEFT name.
        for name in (try? lora.resolvedTargets().map { $0.peftName(in: family) ?? $0.rawValue }) ?? lora.targets
        where !targets.contains(name) { targets.append(name) }
        self.init(rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, targetModules: targets,
                  useRSLoRA: lora.useRSLoRA, baseModelNameOrPath: baseModelNameOrPath)
    }
}

extension PEFTAdapterWriter {
    /// The modules of `weights` as writer entries, in layer-then-projection order.
    public static func entries(_ weights: LoRAWeights) -> [Entry] {
        weights.keys.compactMap { key in
            guard let pair = weights[key] else { return nil }
            let family = weights.modelConfig.family
            let name = LoRATarget.layerPrefix(in: family) + "\(key.layer)." + (key.target.modulePath(in: family) ?? key.target.modulePath)
            let module = LoRAModule(name: name, kind: .linear, rank: pair.rank, inFeatures: pair.inFeatures,
                                    outFeatures: pair.outFeatures, alpha: weights.loraConfig.alpha,
                                    scaling: weights.loraConfig.scaling)
            return Entry(module: module, matrices: LoRAMatrices(a: pair.a, b: pair.b))
        }
    }

    /// Writes `weights` as a PEFT adapter directory (see ``write(config:entries:to:force:dtype:)``).
    /// - Parameter baseModel: recorded as `base_model_name_or_path` and in the model card.
    public static func write(_ weights: LoRAWeights, baseModel: String?, to directory: String, force: Bool) throws {
        try write(config: PEFTLoRAConfig(weights.loraConfig, baseModelNameOrPath: baseModel, family: weights.modelConfig.family),
                  entries: entries(weights), to: directory, force: force)
    }
}

extension PEFTAdapter {
    /// The adapter as training matrices for a model of shape `modelConfig`.
    ///
    /// Only adapters the trainer can continue are accepted: linear modules on the seven
    /// projections of `model.layers.*`, every layer adapted on the same projections, one rank
    /// and one alpha for all (no `rank_pattern`/`alpha_pattern` differences).
    /// - Throws: ``AdapterError`` naming the module that does not fit; ``TrainingError`` from
    ///   ``LoRAWeights/init(modelConfig:loraConfig:pairs:)``.
    public func loraWeights(modelConfig: LlamaConfig) throws -> LoRAWeights {
        var pairs: [LoRAKey: LoRAPair] = [:]
        var targets = Set<LoRATarget>()
        for m in modules {
            guard m.kind == .linear, let layer = Self.layerIndex(ofModule: m.name),
                  let target = LoRATarget.allCases.first(where: {
                      $0.modulePath(in: modelConfig.family).map { LoRATarget.layerPrefix(in: modelConfig.family) + "\(layer)." + $0 } == m.name
                  })
            else {
                throw AdapterError.moduleNotInBase(module: m.name, reason: "not one of the seven projections of a decoder layer")
            }
            guard m.rank == config.rank, m.alpha == config.alpha else {
                throw AdapterError.unsupportedVariant("per-module rank or alpha (\(m.name): r=\(m.rank), alpha=\(m.alpha))")
            }
            let mats = try matrices(of: m)
            pairs[LoRAKey(layer: layer, target: target)] = try LoRAPair(
                rank: m.rank, inFeatures: m.inFeatures, outFeatures: m.outFeatures, a: mats.a, b: mats.b)
            targets.insert(target)
        }
        let lora = LoRAConfig(rank: config.rank, alpha: config.alpha, dropout: config.dropout,
                              useRSLoRA: config.useRSLoRA, targets: targets.sorted().map(\.rawValue))
        return try LoRAWeights(modelConfig: modelConfig, loraConfig: lora, pairs: pairs)
    }
}
