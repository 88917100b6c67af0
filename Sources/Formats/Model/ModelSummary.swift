public import TensorCore

/// What `wconv inspect` reports about an input: its container, metadata and every tensor,
/// with per-type totals. Built without reading tensor data (headers only).
public struct ModelSummary: Sendable {
    public struct TypeTotal: Sendable, Hashable {
        public var type: String
        public var tensorCount = 0
        public var byteCount = 0
        public var elementCount = 0
        public var bitsPerWeight: Double { elementCount == 0 ? 0 : Double(byteCount * 8) / Double(elementCount) }
    }

    public let path: String
    public let format: ModelFormat
    /// GGUF version; nil for safetensors.
    public let version: Int?
    public let alignment: Int?
    /// Files the model spans (shards or split parts).
    public let files: [String]
    /// GGUF metadata, or the safetensors `__metadata__` as strings.
    public let ggufMetadata: GGUFMetadata?
    public let safetensorsMetadata: [(key: String, value: String)]?
    /// config.json of an HF directory.
    public let config: JSONObject?
    public let tensors: [TensorEntry]
    /// The bitsandbytes layout, for a bitsandbytes-quantized checkpoint (nil otherwise).
    public let bnb: BNBSummary?

    public init(_ input: ModelInput) {
        path = input.path
        format = input.format
        tensors = input.tensorSource.entries
        bnb = BNBSummary(input)
        switch input {
        case .gguf(let model):
            version = Int(model.parts[0].version)
            alignment = model.parts[0].alignment
            files = model.parts.map(\.path)
            ggufMetadata = model.metadata
            safetensorsMetadata = nil
            config = nil
        case .hf(let dir):
            version = nil
            alignment = nil
            files = dir.weights.files.map(\.path)
            ggufMetadata = nil
            safetensorsMetadata = dir.weights.metadata
            config = dir.config.object
        case .safetensors(let checkpoint):
            version = nil
            alignment = nil
            files = checkpoint.files.map(\.path)
            ggufMetadata = nil
            safetensorsMetadata = checkpoint.metadata
            config = nil
        }
    }

    /// Totals per tensor type, largest byte count first.
    public var typeTotals: [TypeTotal] {
        var totals: [String: TypeTotal] = [:]
        for t in tensors {
            let key = t.encoding.description
            totals[key, default: TypeTotal(type: key)].tensorCount += 1
            totals[key, default: TypeTotal(type: key)].byteCount += t.byteCount
            totals[key, default: TypeTotal(type: key)].elementCount += t.elementCount
        }
        return totals.values.sorted { ($0.byteCount, $1.type) > ($1.byteCount, $0.type) }
    }

    public var totalByteCount: Int { tensors.reduce(0) { $0 + $1.byteCount } }
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.elementCount } }
    /// Tensor bits per element over the whole model.
    public var bitsPerWeight: Double {
        parameterCount == 0 ? 0 : Double(totalByteCount * 8) / Double(parameterCount)
    }
}
