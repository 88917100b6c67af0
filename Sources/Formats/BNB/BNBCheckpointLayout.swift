public import TensorCore

/// A 4-bit (NF4/FP4) weight as transformers saves a bitsandbytes `Linear4bit`: the packed codes
/// under the weight's own name `P`, and its quantization state beside it (REFERENCE §5.4).
public struct BNB4BitWeight: Sendable, Hashable {
    /// `P`, e.g. `model.layers.0.mlp.up_proj.weight`.
    public let name: String
    /// The parsed `P.quant_state.bitsandbytes__<type>` JSON.
    public let state: BNBQuantState
    /// `P`: U8 `[(n+1)/2, 1]`, two codes per byte, first element in the high nibble.
    public let packed: TensorEntry
    /// `P.absmax`: U8 `[blocks]` when double-quantized, else F32 `[blocks]`.
    public let absmax: TensorEntry
    /// `P.quant_map`: F32 `[16]`, the code table.
    public let quantMap: TensorEntry
    /// `P.nested_absmax`: F32 `[ceil(blocks / nested block size)]` (double quantization only).
    public let nestedAbsmax: TensorEntry?
    /// `P.nested_quant_map`: F32 `[256]`, the 8-bit code of the absmax values (double quantization only).
    public let nestedQuantMap: TensorEntry?
    /// `P.quant_state.bitsandbytes__<type>`: U8 `[len]`, the JSON bytes.
    public let quantStateEntry: TensorEntry

    /// Every stored tensor of the weight, in the order transformers' state dict lists them.
    public var entries: [TensorEntry] {
        [packed, absmax, quantMap] + [nestedAbsmax, nestedQuantMap].compactMap { $0 } + [quantStateEntry]
    }

    /// Bytes on disk, all pieces included.
    public var byteCount: Int { entries.reduce(0) { $0 + $1.byteCount } }
}

/// An LLM.int8 weight as transformers saves a bitsandbytes `Linear8bitLt` module `M`
/// (REFERENCE §5.5): `M.weight` I8 `[out, in]`, `M.SCB` F32 `[out]`, `M.weight_format` U8 scalar.
public struct BNBInt8Weight: Sendable, Hashable {
    /// The module name `M` (the weight is `M.weight`).
    public let module: String
    public let weight: TensorEntry
    /// Per-row absmax (`SCB`, a module-level key).
    public let scb: TensorEntry
    /// The layout code, 0 = row-major; older checkpoints may lack it.
    public let weightFormat: TensorEntry?

    /// `M.weight`.
    public var name: String { module + ".weight" }
    public var rows: Int { weight.shape[0] }
    public var columns: Int { weight.shape[1] }

    /// Every stored tensor, in state-dict order.
    public var entries: [TensorEntry] { [weight, scb] + [weightFormat].compactMap { $0 } }

    /// Bytes on disk, all pieces included.
    public var byteCount: Int { entries.reduce(0) { $0 + $1.byteCount } }
}

/// One logical tensor of a checkpoint: a plain tensor, or a quantized weight with its pieces.
public enum BNBTensorGroup: Sendable, Hashable {
    case plain(TensorEntry)
    case fourBit(BNB4BitWeight)
    case int8(BNBInt8Weight)

    /// The logical tensor name (`P`, `M.weight`, or the plain tensor's name).
    public var name: String {
        switch self {
        case .plain(let e): e.name
        case .fourBit(let w): w.name
        case .int8(let w): w.name
        }
    }

    /// The stored tensors of the group.
    public var entries: [TensorEntry] {
        switch self {
        case .plain(let e): [e]
        case .fourBit(let w): w.entries
        case .int8(let w): w.entries
        }
    }

    /// The logical shape (the original weight's shape for quantized groups).
    public var shape: [Int] {
        switch self {
        case .plain(let e): e.shape
        case .fourBit(let w): w.state.shape
        case .int8(let w): w.weight.shape
        }
    }

    /// How the group is quantized, for listings: `nf4 block 64 + double quant`, `int8 row-wise`;
    /// nil for plain tensors.
    public var quantizationSummary: String? {
        switch self {
        case .plain: nil
        case .fourBit(let w): w.state.summary
        case .int8: "int8 row-wise (LLM.int8)"
        }
    }
}

/// The tensors of a checkpoint grouped by bitsandbytes weight, validated against the layout
/// transformers writes (REFERENCE §5.4–5.5). Reads only headers plus the small `quant_state`
/// and `weight_format` entries.
///
/// Recognised: every `P.quant_state.bitsandbytes__<type>` entry makes `P` a 4-bit weight whose
/// pieces must all be present with the dtypes and shapes its JSON implies; every `M.SCB` makes
/// `M.weight` an int8 weight. Pieces without their weight, weights without pieces, or a 2-D
/// int8 `.weight` without `.SCB` in an int8 checkpoint are errors. Everything else is plain.
public struct BNBCheckpointLayout: Sendable {
    /// Every logical tensor, in source order; a quantized weight sits where its main entry
    /// (`P` or `M.weight`) is.
    public let groups: [BNBTensorGroup]
    /// config.json's `quantization_config`, when it is a bitsandbytes block.
    public let config: BNBQuantizationConfig?
    /// `quant_method` of a `quantization_config` that is not bitsandbytes (`gptq`, `awq`, …).
    public let otherQuantMethod: String?

    /// The 4-bit weights.
    public var fourBitWeights: [BNB4BitWeight] { groups.compactMap { if case .fourBit(let w) = $0 { w } else { nil } } }
    /// The int8 weights.
    public var int8Weights: [BNBInt8Weight] { groups.compactMap { if case .int8(let w) = $0 { w } else { nil } } }
    /// Whether any weight is stored quantized.
    public var isQuantized: Bool { groups.contains { if case .plain = $0 { false } else { true } } }

    static let quantStateMarker = ".quant_state.bitsandbytes__"
    static let fourBitPieceSuffixes = [".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"]

    /// Groups the tensors of `source`.
    /// - Parameters:
    ///   - source: the checkpoint's tensors.
    ///   - config: the model's config.json, if there is one (for `quantization_config`).
    /// - Throws: ``PathError`` wrapping ``BNBFormatError`` (naming the shard or config file), or
    ///   what reading a small entry throws.
    public init(source: any TensorSource, config: HFConfig?) throws {
        let configPath = config?.path ?? "config.json"
        var bnbConfig: BNBQuantizationConfig? = nil
        var other: String? = nil
        if let q = config?.quantizationConfig {
            let method = q["quant_method"]?.stringValue
            if method == "bitsandbytes" {
                do { bnbConfig = try BNBQuantizationConfig(q) } catch { throw PathError(path: configPath, error) }
            } else {
                other = method ?? "unknown"
            }
        } else if let raw = config?["quantization_config"], !raw.isNull {
            throw PathError(path: configPath, BNBFormatError.invalidConfig(reason: "not a JSON object"))
        }
        self.config = bnbConfig
        self.otherQuantMethod = other

        let entries = source.entries
        var byName: [String: TensorEntry] = [:]
        for e in entries { byName[e.name] = e }
        var consumed: Set<String> = []
        var fourBit: [String: BNB4BitWeight] = [:]
        var int8: [String: BNBInt8Weight] = [:]

        func fail(_ entry: TensorEntry, _ error: BNBFormatError) -> PathError { PathError(path: entry.file, error) }

        // 4-bit weights, found through their quant_state entries.
        for e in entries {
            guard let (weightName, typeName) = Self.splitQuantStateName(e.name) else { continue }
            guard let keyType = BNB4BitType(rawValue: typeName) else { throw fail(e, .unknownQuantType(tensor: e.name, name: typeName)) }
            guard fourBit[weightName] == nil else {
                throw fail(e, .invalidQuantState(tensor: weightName, reason: "more than one quant_state entry"))
            }
            try Self.expect(e, dtype: [.u8])
            guard e.shape.count == 1 else { throw fail(e, .wrongShape(tensor: e.name, expected: [e.elementCount], actual: e.shape)) }
            let state: BNBQuantState
            do { state = try BNBQuantState.parse(try source.bytes(of: e), tensor: e.name) } catch { throw PathError(path: e.file, error) }
            guard state.quantType == keyType else {
                throw fail(e, .quantTypeMismatch(tensor: e.name, key: keyType.rawValue, json: state.quantType.rawValue))
            }
            func piece(_ suffix: String) throws -> TensorEntry {
                guard let p = byName[weightName + suffix] else {
                    throw fail(e, .missingPiece(weight: weightName, piece: weightName + suffix))
                }
                return p
            }
            let packed = try piece("")
            try Self.expect(packed, dtype: [.u8], shape: [state.packedByteCount, 1])
            let absmax = try piece(".absmax")
            try Self.expect(absmax, dtype: [state.nested == nil ? .f32 : .u8], shape: [state.blockCount])
            let quantMap = try piece(".quant_map")
            try Self.expect(quantMap, dtype: [.f32], shape: [16])
            var nestedAbsmax: TensorEntry? = nil
            var nestedQuantMap: TensorEntry? = nil
            if let nestedCount = state.nestedBlockCount {
                nestedAbsmax = try piece(".nested_absmax")
                try Self.expect(nestedAbsmax!, dtype: [.f32], shape: [nestedCount])
                nestedQuantMap = try piece(".nested_quant_map")
                try Self.expect(nestedQuantMap!, dtype: [.f32], shape: [256])
            } else {
                for suffix in [".nested_absmax", ".nested_quant_map"] where byName[weightName + suffix] != nil {
                    throw fail(e, .invalidQuantState(tensor: e.name, reason: "\(weightName + suffix) is present but the state has no nested_* keys"))
                }
            }
            let weight = BNB4BitWeight(name: weightName, state: state, packed: packed, absmax: absmax, quantMap: quantMap,
                                       nestedAbsmax: nestedAbsmax, nestedQuantMap: nestedQuantMap, quantStateEntry: e)
            fourBit[weightName] = weight
            for p in weight.entries { consumed.insert(p.name) }
        }

        // int8 weights, found through their SCB entries.
        for e in entries where e.name.hasSuffix(".SCB") {
            let module = String(e.name.dropLast(4))
            guard let weight = byName[module + ".weight"] else {
                throw fail(e, .missingPiece(weight: module + ".weight", piece: module + ".weight"))
            }
            guard !consumed.contains(weight.name) else {
                throw fail(e, .invalidQuantState(tensor: weight.name, reason: "stored both as 4-bit and as int8"))
            }
            try Self.expect(weight, dtype: [.i8])
            guard weight.shape.count == 2 else {
                throw fail(weight, .invalidQuantState(tensor: weight.name, reason: "an int8 weight must be 2-D, this one has shape \(weight.shape)"))
            }
            try Self.expect(e, dtype: [.f32], shape: [weight.shape[0]])
            let format = byName[module + ".weight_format"]
            if let format {
                try Self.expect(format, dtype: [.u8])
                guard format.elementCount == 1, format.shape.count <= 1 else {
                    throw fail(format, .wrongShape(tensor: format.name, expected: [], actual: format.shape))
                }
                let value = try source.bytes(of: format)
                guard value.count == 1 else { throw fail(format, .wrongShape(tensor: format.name, expected: [], actual: format.shape)) }
                guard value[0] == 0 else { throw fail(format, .unsupportedWeightFormat(tensor: format.name, value: Int(value[0]))) }
            }
            let w = BNBInt8Weight(module: module, weight: weight, scb: e, weightFormat: format)
            int8[w.name] = w
            for p in w.entries { consumed.insert(p.name) }
        }

        // Anything that looks like quantization state but belongs to nothing.
        let isInt8Checkpoint = bnbConfig?.loadIn8Bit == true || !int8.isEmpty
        for e in entries where !consumed.contains(e.name) {
            if let suffix = Self.fourBitPieceSuffixes.first(where: { e.name.hasSuffix($0) }) {
                let base = String(e.name.dropLast(suffix.count))
                if byName[base] != nil || bnbConfig?.loadIn4Bit == true {
                    throw fail(e, .orphanPiece(tensor: e.name, expected: base + Self.quantStateMarker + (bnbConfig?.fourBitType ?? .nf4).rawValue))
                }
            }
            if e.name.hasSuffix(".weight_format") {
                throw fail(e, .orphanPiece(tensor: e.name, expected: String(e.name.dropLast(".weight_format".count)) + ".SCB"))
            }
            if isInt8Checkpoint, e.encoding == .dense(.i8), e.shape.count == 2, e.name.hasSuffix(".weight") {
                throw fail(e, .missingPiece(weight: e.name, piece: String(e.name.dropLast(".weight".count)) + ".SCB"))
            }
        }

        // The config and the tensors must agree on the scheme.
        if let bnbConfig {
            if bnbConfig.loadIn4Bit && !int8.isEmpty {
                throw PathError(path: configPath, BNBFormatError.invalidConfig(reason: "says 4-bit, but the weights include int8 (SCB) weights"))
            }
            if bnbConfig.loadIn8Bit && !fourBit.isEmpty {
                throw PathError(path: configPath, BNBFormatError.invalidConfig(reason: "says 8-bit, but the weights include 4-bit (quant_state) weights"))
            }
            if fourBit.isEmpty && int8.isEmpty {
                throw PathError(path: configPath, BNBFormatError.invalidConfig(reason: "says bitsandbytes \(bnbConfig.loadIn4Bit ? "4-bit" : "8-bit"), but no weight is stored quantized"))
            }
        }

        // Groups in source order, each at its first stored entry.
        var groups: [BNBTensorGroup] = []
        for e in entries {
            if let w = fourBit[e.name] {
                groups.append(.fourBit(w))
            } else if let w = int8[e.name] {
                groups.append(.int8(w))
            } else if !consumed.contains(e.name) {
                groups.append(.plain(e))
            }
        }
        self.groups = groups
    }

    /// `P.quant_state.bitsandbytes__nf4` → (`P`, `nf4`); nil for other names. The last occurrence
    /// of the marker counts, as bitsandbytes splits the key from the right.
    static func splitQuantStateName(_ name: String) -> (weight: String, type: String)? {
        let bytes = Array(name.utf8)
        let marker = Array(quantStateMarker.utf8)
        guard bytes.count >= marker.count else { return nil }
        var start = bytes.count - marker.count
        while start >= 0 {
            if bytes[start ..< start + marker.count].elementsEqual(marker) {
                return (String(decoding: bytes[..<start], as: UTF8.self),
                        String(decoding: bytes[(start + marker.count)...], as: UTF8.self))
            }
            start -= 1
        }
        return nil
    }

    static func expect(_ entry: TensorEntry, dtype: [DType], shape: [Int]? = nil) throws {
        guard case .dense(let actual) = entry.encoding, dtype.contains(actual) else {
            throw PathError(path: entry.file, BNBFormatError.wrongDType(tensor: entry.name, expected: dtype, actual: entry.encoding.description))
        }
        if let shape, entry.shape != shape {
            throw PathError(path: entry.file, BNBFormatError.wrongShape(tensor: entry.name, expected: shape, actual: entry.shape))
        }
    }
}
