public import TensorCore

/// What transformers writes for a bitsandbytes model, as names, dtypes and shapes (no numbers):
/// which weights are quantized, the safetensors entries of each (REFERENCE §5.4–5.5), and the
/// config.json that goes with them.
public enum BNBWriteLayout {
    /// transformers 5.24's default `max_shard_size` for `save_pretrained` (decimal units).
    public static let defaultMaxShardSize = 50_000_000_000

    /// Whether transformers' bitsandbytes integration would quantize this tensor.
    ///
    /// transformers replaces every `nn.Linear` except the output head (`lm_head`, found by
    /// `get_keys_to_not_convert`) with a bitsandbytes layer; embeddings and norms are not Linear
    /// and keep their dtype. A checkpoint does not say which tensors are Linear weights, so the
    /// rule is decided from names and shapes: a floating-point **2-D `.weight` under a block
    /// prefix** of ``linearBlockPrefixes``. In the LLaMA family (and Mistral, Qwen2, Gemma, Phi,
    /// Persimmon …, `model.layers.`), OPT (`model.decoder.layers.`) and MPT (`transformer.blocks.`)
    /// the only 2-D weights inside the blocks are the Linear projections, norms are 1-D, and the
    /// embeddings and head live outside the blocks (transformers 5.24 + bitsandbytes 0.50.2
    /// quantize exactly these on the fixtures in testdata/families). `transformer.h.` depends on
    /// the class (`architecture`, config.json's `architectures[0]`; see ``linearStorage(name:shape:dtype:architecture:)``):
    /// GPT-2's Conv1D weights are quantized transposed, Qwen-7B's are Linear, and transformers
    /// quantizes no Falcon layer (`FalconLinear` is not an `nn.Linear` by type).
    /// Biases (1-D) stay as they are, as transformers keeps them.
    public static func isQuantizedLinear(name: String, shape: [Int], dtype: DType, architecture: String? = nil) -> Bool {
        linearStorage(name: name, shape: shape, dtype: dtype, architecture: architecture) != nil
    }

    /// How transformers holds a weight it replaces with a bitsandbytes layer.
    public enum LinearStorage: Sendable, Hashable {
        /// `nn.Linear`: stored `[out, in]`, quantized as stored.
        case linear
        /// transformers' `Conv1D` (GPT-2): stored `[in, out]`; transformers quantizes the
        /// transpose, so the bitsandbytes weight is `[out, in]` (and stays so when saved).
        case conv1D
    }

    /// Whether, and as what, transformers' bitsandbytes integration quantizes this tensor (nil:
    /// copied). The ``linearBlockPrefixes`` hold Linear layers in every class; under
    /// `transformer.h.` the class decides: ``conv1DArchitectures`` (every 2-D weight there is a
    /// Conv1D) and ``transformerHLinearArchitectures`` (Linear layers: Qwen-7B, remote code, whose
    /// `c_attn`, `c_proj`, `w1`, `w2` are `nn.Linear`; `lm_head` lies outside and is skipped as
    /// transformers skips the output head). Any other class with `transformer.h.` (Falcon) is not quantized.
    public static func linearStorage(name: String, shape: [Int], dtype: DType, architecture: String?) -> LinearStorage? {
        guard name.hasSuffix(".weight"), shape.count == 2, dtype.isConvertibleFloat else { return nil }
        if linearBlockPrefixes.contains(where: { name.hasPrefix($0) }) { return .linear }
        guard name.hasPrefix("transformer.h."), let architecture else { return nil }
        if conv1DArchitectures.contains(architecture) { return .conv1D }
        if transformerHLinearArchitectures.contains(architecture) { return .linear }
        return nil
    }

    /// Classes whose block weights under `transformer.h.` are transformers `Conv1D` layers.
    public static let conv1DArchitectures = ["GPT2LMHeadModel"]
    /// Classes whose block weights under `transformer.h.` are all `nn.Linear` layers.
    public static let transformerHLinearArchitectures = ["QWenLMHeadModel"]

    /// Where the decoder blocks' Linear layers live, per checkpoint layout.
    public static let linearBlockPrefixes = ["model.layers.", "model.decoder.layers.", "transformer.blocks."]

    /// The entries of a 4-bit weight `P`, in the order transformers' state dict lists them
    /// (`P`, `.absmax`, `.quant_map`, `.nested_absmax`, `.nested_quant_map`, `.quant_state.…`).
    /// - Parameters:
    ///   - quantStateByteCount: length of the packed JSON; it depends on the double-quant offset,
    ///     so the caller computes it.
    /// - Precondition: `blockSize > 0` and the shape's element count does not overflow.
    public static func fourBitSpecs(
        weight: String, shape: [Int], type: BNB4BitType, blockSize: Int, doubleQuant: Bool, quantStateByteCount: Int
    ) -> [SafetensorsTensorSpec] {
        let n = elementCount(of: shape) ?? 0
        let blocks = (n + blockSize - 1) / blockSize
        var specs = [
            SafetensorsTensorSpec(name: weight, dtype: .u8, shape: [(n + 1) / 2, 1]),
            SafetensorsTensorSpec(name: weight + ".absmax", dtype: doubleQuant ? .u8 : .f32, shape: [blocks]),
            SafetensorsTensorSpec(name: weight + ".quant_map", dtype: .f32, shape: [16]),
        ]
        if doubleQuant {
            specs.append(SafetensorsTensorSpec(name: weight + ".nested_absmax", dtype: .f32, shape: [(blocks + 255) / 256]))
            specs.append(SafetensorsTensorSpec(name: weight + ".nested_quant_map", dtype: .f32, shape: [256]))
        }
        specs.append(SafetensorsTensorSpec(name: weight + quantStateSuffix(type), dtype: .u8, shape: [quantStateByteCount]))
        return specs
    }

    /// `.quant_state.bitsandbytes__nf4` / `__fp4`.
    public static func quantStateSuffix(_ type: BNB4BitType) -> String { ".quant_state.bitsandbytes__" + type.rawValue }

    /// The entries of an int8 module `M` (weight name `M.weight`), in state-dict order:
    /// `M.weight` I8 `[rows, columns]`, `M.SCB` F32 `[rows]`, `M.weight_format` U8 `[]`.
    public static func int8Specs(module: String, rows: Int, columns: Int) -> [SafetensorsTensorSpec] {
        [
            SafetensorsTensorSpec(name: module + ".weight", dtype: .i8, shape: [rows, columns]),
            SafetensorsTensorSpec(name: module + ".SCB", dtype: .f32, shape: [rows]),
            SafetensorsTensorSpec(name: module + ".weight_format", dtype: .u8, shape: []),
        ]
    }

    /// The module name of a weight: `M.weight` → `M`.
    public static func moduleName(ofWeight name: String) -> String {
        name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
    }

    /// config.json of the quantized model: the input's keys, with `quantization_config` set and
    /// `dtype` naming the weights' dtype (transformers 5 writes `dtype`; a 4.x `torch_dtype`
    /// is replaced).
    public static func quantizedConfig(_ config: JSONObject, quantization: BNBQuantizationConfig, dtype: DType) -> JSONObject {
        var out = config
        out.remove("torch_dtype")
        out["dtype"] = .string(dtype.torchName ?? "float32")
        out["quantization_config"] = .object(quantization.json)
        return out
    }

    /// config.json of a dequantized model: `quantization_config` removed, `dtype` set.
    public static func dequantizedConfig(_ config: JSONObject, dtype: DType) -> JSONObject {
        var out = config
        out.remove("quantization_config")
        out.remove("torch_dtype")
        out["dtype"] = .string(dtype.torchName ?? "float32")
        return out
    }

    /// A config file's text as transformers writes it: `json.dumps(indent=2, sort_keys=True) + "\n"`.
    public static func configText(_ object: JSONObject) -> String {
        JSONValue.object(object).serialized(.python(indent: 2, sortKeys: true)) + "\n"
    }
}
