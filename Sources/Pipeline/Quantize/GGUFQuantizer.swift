public import TensorCore
public import Formats

/// llama-quantize-style GGUF quantization (`wconv quantize --type`). Placeholder: the GGUF
/// quantization pipeline replaces this file.
public enum GGUFQuantizer {
    /// Quantizes `input` to a GGUF file at `output` with the file type in `options.scheme`.
    public static func quantize(_ input: ModelInput, to output: String, options: QuantizeOptions) throws -> QuantizeReport {
        throw Failure(.unsupported, "GGUF quantization (--type) is not implemented yet")
    }
}

/// GGUF → dense HF directory (`wconv dequantize model.gguf`). Placeholder, as above.
public enum GGUFDequantizer {
    /// Dequantizes every tensor of `model` to `outType` into a model directory at `output`.
    public static func dequantize(_ model: GGUFModel, to output: String, outType: DType, options: QuantizeOptions) throws -> QuantizeReport {
        throw Failure(.unsupported, "GGUF dequantization is not implemented yet")
    }
}
