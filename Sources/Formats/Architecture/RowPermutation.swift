/// The per-head row reordering between Hugging Face's and llama.cpp's rotary layouts.
///
/// HF's LLaMA applies RoPE to dimension pairs (i, i + d/2) of each head ("rotate_half");
/// llama.cpp's LLaMA graph pairs adjacent dimensions (2i, 2i+1). The converter therefore
/// reorders the output rows of `q_proj` (by `num_attention_heads`) and `k_proj` (by
/// `num_key_value_heads`), their biases, and the `lora_B` of adapters on them.
/// Index form, for head h, i < d/2, half ∈ {0, 1}:
/// `gguf[h·d + 2i + half] = hf[h·d + half·d/2 + i]`.
public enum RowPermutation: Sendable, Hashable {
    /// HF → GGUF (llama.cpp's `LlamaModel.permute`).
    case toGGUF(heads: Int)
    /// GGUF → HF (transformers' `_reverse_permute_weights`).
    case toHF(heads: Int)

    /// The source row that lands in `row`, for a tensor of `rowCount` rows.
    /// Returns nil when the rows cannot be split into `heads` heads of even size.
    public func sourceRow(of row: Int, rowCount: Int) -> Int? {
        let heads: Int
        switch self {
        case .toGGUF(let h), .toHF(let h): heads = h
        }
        guard heads > 0, rowCount % heads == 0, (rowCount / heads) % 2 == 0 else { return nil }
        let headDim = rowCount / heads
        let half = headDim / 2
        let head = row / headDim, inHead = row % headDim
        switch self {
        case .toGGUF:
            // gguf row 2i + h2 comes from hf row h2·half + i.
            return head * headDim + (inHead % 2) * half + inHead / 2
        case .toHF:
            // hf row h2·half + i comes from gguf row 2i + h2.
            return head * headDim + 2 * (inHead % half) + inHead / half
        }
    }

    /// Whether `rowCount` rows can be permuted with this head count.
    public func isValid(rowCount: Int) -> Bool { sourceRow(of: 0, rowCount: rowCount) != nil }

    /// Copies `source` to `destination` with its rows reordered. Rows are opaque byte runs,
    /// so this works for any element type, quantized blocks included (blocks never cross rows).
    /// - Precondition: both buffers hold `rowCount * rowByteCount` bytes and ``isValid(rowCount:)``.
    public func apply(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer,
        rowCount: Int, rowByteCount: Int
    ) {
        precondition(source.count >= rowCount * rowByteCount && destination.count >= rowCount * rowByteCount)
        for row in 0 ..< rowCount {
            let from = sourceRow(of: row, rowCount: rowCount)!
            (destination.baseAddress! + row * rowByteCount).copyMemory(
                from: source.baseAddress! + from * rowByteCount, byteCount: rowByteCount)
        }
    }
}
