/// The shape of one decoder block as data: which norm, which MLP, how positions enter, how the
/// two branches join the residual stream, and which projections carry biases.
///
/// ``LlamaModel`` runs every block this describes with one forward pass; a family is a value
/// of this type (``llama`` for LLaMA/Mistral/Qwen2) plus a tensor layout
/// (``ModelFamily``). Parsed from config.json (``LlamaConfig/init(hfConfig:family:)``) or GGUF
/// `<arch>.*` metadata (``LlamaConfig/init(gguf:tensors:ropeDivisors:)``).
public struct BlockDescription: Sendable, Hashable {
    /// The normalization of the block inputs and of the final output.
    public enum Norm: Sendable, Hashable {
        /// `w · x / sqrt(mean(x²) + eps)` (LLaMA).
        case rms
        /// `w · (x − mean) / sqrt(var + eps) (+ b)`; `bias` false for MPT's `no_bias`.
        case layerNorm(bias: Bool)
    }

    /// The MLP between the block's second norm and the residual.
    public enum MLP: Sendable, Hashable {
        /// `down(silu(gate(x)) · up(x))`.
        case swiGLU
        /// `down(act(up(x)))` with one of the element-wise activations.
        case plain(Activation)
    }

    /// Element-wise activations of a plain MLP (``Activation/apply(_:count:)``).
    public enum Activation: Sendable, Hashable {
        /// `0.5·x·(1 + erf(x/√2))` (torch `gelu`).
        case geluExact
        /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (`gelu_new`, `gelu_pytorch_tanh`).
        case geluTanh
        /// The tanh GELU as llama.cpp's CPU backend evaluates `ggml_gelu`: the input rounded to
        /// float16, the output read from a table of float16 results of
        /// `0.5·x·(1 + tanh(√(2/π)·x·(1 + 0.044715·x²)))`; 0 at ≤ −10 and x at ≥ 10. What a GGUF
        /// of a GELU family runs, so its logits are llama.cpp's.
        case geluGGML
        case relu
        /// `relu(x)²` (Persimmon's `relu2`).
        case squaredReLU
    }

    /// How token positions enter the block.
    public enum Positions: Sendable, Hashable {
        /// Rotary embeddings (NEOX pairing `i ↔ i + r/2`) on the first `dimensions` dims of each
        /// q and k head (partial rotary when fewer than the head size).
        case rotary(dimensions: Int)
        /// A learned table added to the token embeddings; position p reads row `p + offset`
        /// (GPT-2: 0, OPT: 2).
        case learned(offset: Int)
        /// ALiBi: `slope_h · (j − i)` added to the scaled scores (``ALiBi/slopes(heads:maxBias:)``).
        case alibi(maxBias: Double)
        /// No positional signal (what llama.cpp runs for a Baichuan GGUF that is neither 7B nor 13B).
        case none
    }

    /// How attention and MLP join the residual stream.
    public enum Residual: Sendable, Hashable {
        /// `x += attn(norm1(x)); x += mlp(norm2(x))`.
        case sequential
        /// `x += attn(norm_a(x)) + mlp(norm_m(x))`; `separateNorms` false when both branches
        /// read the same normed input (Falcon 7B, phi), true with a second norm (Falcon 40B).
        case parallel(separateNorms: Bool)
    }

    public var norm: Norm
    public var mlp: MLP
    public var positions: Positions
    public var residual: Residual
    /// Biases on q, k and v (fused or not).
    public var qkvBias: Bool
    /// Bias on the attention output projection.
    public var outputBias: Bool
    /// Biases on the MLP's up and down projections (never on a SwiGLU gate).
    public var mlpBias: Bool
    /// Bias on the LM head (phi).
    public var headBias: Bool
    /// Per-head LayerNorm (weight and bias, over the head size) of q and k before rotary (Persimmon).
    public var qkNorm: Bool

    public init(
        norm: Norm, mlp: MLP, positions: Positions, residual: Residual = .sequential,
        qkvBias: Bool = false, outputBias: Bool = false, mlpBias: Bool = false, headBias: Bool = false,
        qkNorm: Bool = false
    ) {
        self.norm = norm
        self.mlp = mlp
        self.positions = positions
        self.residual = residual
        self.qkvBias = qkvBias
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.headBias = headBias
        self.qkNorm = qkNorm
    }

    /// LLaMA's block with full rotary over `headDimension` and optional q/k/v biases (Qwen2).
    public static func llama(headDimension: Int, qkvBias: Bool = false) -> BlockDescription {
        BlockDescription(norm: .rms, mlp: .swiGLU, positions: .rotary(dimensions: headDimension), qkvBias: qkvBias)
    }

    /// Whether this is LLaMA's block (RMSNorm, SwiGLU, full rotary, sequential, no biases but
    /// q/k/v's): what the LoRA trainer runs.
    public func isLlamaBlock(headDimension: Int) -> Bool {
        self == .llama(headDimension: headDimension, qkvBias: qkvBias)
    }

    /// Whether norms carry a bias vector.
    public var normBias: Bool { norm == .layerNorm(bias: true) }

    /// The rotary dimensions per head, or nil without rotary.
    public var rotaryDimensions: Int? {
        if case .rotary(let d) = positions { d } else { nil }
    }

    /// Whether the MLP has a gate projection.
    public var gated: Bool { mlp == .swiGLU }

    /// Whether the block reads a second norm (`post_attention_layernorm`, `ln_2`, Falcon 40B's `ln_mlp`).
    public var hasSecondNorm: Bool { residual != .parallel(separateNorms: false) }
}
