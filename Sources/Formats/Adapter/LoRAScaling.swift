/// The factor a LoRA adapter's product B·A is multiplied by (PEFT `LoraLayer.update_layer`).
///
/// - Parameters:
///   - alpha: `lora_alpha`.
///   - rank: `r`.
///   - rsLoRA: `use_rslora`, which divides by √r instead of r so larger ranks keep learning.
public func loraScaling(alpha: Double, rank: Int, rsLoRA: Bool) -> Double {
    rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
}
