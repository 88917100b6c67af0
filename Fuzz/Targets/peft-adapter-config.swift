// Fuzz target: a PEFT LoRA adapter's adapter_config.json (qlora-merge, convert-adapter, run --adapter).
//
// Parses the config as PEFTAdapter does, then uses it the way a merge does: the rank, alpha and
// scaling of every module of a LLaMA layer (rank_pattern / alpha_pattern are user regexes) and
// whether target_modules selects it. Invariants: what the reader accepts has a positive rank, a
// finite alpha, a dropout in [0, 1) and finite scalings; the file wconv writes back parses to
// the same config (written again, the same bytes).
import Formats
import TensorCore

/// The module names of one LLaMA decoder layer, as PEFT names them.
private let modules = ["q_proj", "k_proj", "v_proj", "o_proj"].map { "model.layers.0.self_attn.\($0)" }
    + ["gate_proj", "up_proj", "down_proj"].map { "model.layers.0.mlp.\($0)" }
    + ["lm_head", "model.embed_tokens"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = Array(inputBuffer(data, size))
    guard let config = try? PEFTLoRAConfig(text: bytes) else { return 0 }
    require(config.rank > 0, "rank \(config.rank)")
    require(config.alpha.isFinite, "alpha \(config.alpha)")
    require(config.dropout >= 0 && config.dropout < 1, "dropout \(config.dropout)")
    for module in modules {
        let rank = config.rank(forModule: module)
        require(rank > 0, "rank \(rank) for \(module)")
        require(config.alpha(forModule: module).isFinite, "alpha for \(module)")
        require(config.scaling(forModule: module).isFinite, "scaling for \(module)")
        _ = config.targets(module: module)
    }
    // Written back (as qlora-train writes it, after syncing the typed fields), it reads the same.
    var copy = config
    copy.syncJSON()
    guard allFinite(.object(copy.json)) else { return 0 }
    let text = copy.serialized()
    let back: PEFTLoRAConfig
    do { back = try PEFTLoRAConfig(text: Array(text.utf8)) } catch {
        require(false, "written adapter_config.json does not read back: \(error)\n\(text.prefix(400))")
        return 0
    }
    // Key order is not kept (the file is written with sorted keys), so compare what is written again.
    require(back.serialized() == text, "adapter_config.json changed through write + read + write:\n\(text.prefix(400))")
    require(back.rank == config.rank && back.alpha == config.alpha && back.useRSLoRA == config.useRSLoRA,
            "typed fields changed through write + read")
    return 0
}
