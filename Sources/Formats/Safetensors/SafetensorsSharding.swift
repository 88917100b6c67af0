import TensorCore

/// How a checkpoint is split into shard files, computed as transformers' `save_pretrained` does.
///
/// transformers calls huggingface_hub's `split_state_dict_into_shards_factory`: walk the tensors
/// in the given (state-dict) order, keep adding them to the current shard, and start a new shard
/// when the next tensor would push it past `maxShardSize`. A tensor larger than the limit on its
/// own becomes a shard by itself, appended at the moment it is met, so it lands *before* the shard
/// that was still being filled. One shard is written as `model.safetensors` without an index;
/// several as `model-00001-of-0000K.safetensors` plus `model.safetensors.index.json`.
/// Sizes are tensor data bytes only (headers are not counted), and decimal units apply
/// (`"5GB"` is 5·10⁹ bytes).
public struct SafetensorsShardPlan: Sendable {
    /// One output file.
    public struct Shard: Sendable {
        /// File name inside the output directory.
        public let fileName: String
        /// The tensors assigned to this shard, in the order they were given.
        public let tensors: [SafetensorsTensorSpec]
        /// The file's layout (tensors re-sorted as the safetensors writer sorts them).
        public let layout: SafetensorsLayout
    }

    /// File name stem: `model` for models, `adapter_model` for PEFT adapters.
    public let baseName: String
    public let shards: [Shard]
    /// Sum of all tensors' data bytes (the index's `metadata.total_size`).
    public let totalSize: Int
    /// Sum of all tensors' element counts (the default `metadata.total_parameters`).
    public let totalElementCount: Int

    /// Whether there is more than one shard (and so an index file).
    public var isSharded: Bool { shards.count > 1 }
    /// `<baseName>.safetensors.index.json`.
    public var indexFileName: String { "\(baseName).safetensors.index.json" }

    /// Splits `tensors` (in state-dict order) into shards of at most `maxShardSize` data bytes.
    /// - Parameters:
    ///   - metadata: `__metadata__` of every shard; transformers writes `{"format": "pt"}`.
    ///   - baseName: file name stem.
    /// - Throws: ``SafetensorsWriteError`` for a bad descriptor or a non-positive size limit.
    public init(
        _ tensors: [SafetensorsTensorSpec], maxShardSize: Int,
        metadata: [(key: String, value: String)]? = [("format", "pt")], baseName: String = "model"
    ) throws(SafetensorsWriteError) {
        guard maxShardSize > 0 else { throw .invalidShardSize(maxShardSize) }
        var names: Set<String> = []
        var groups: [[SafetensorsTensorSpec]] = []
        var current: [SafetensorsTensorSpec] = []
        var currentSize = 0
        var totalSize = 0
        var totalElements = 0
        for spec in tensors {
            guard names.insert(spec.name).inserted else { throw .duplicateName(spec.name) }
            let (size, count) = try SafetensorsShardPlan.sizes(of: spec)
            totalSize = totalSize.addingReportingOverflow(size).partialValue
            totalElements = totalElements.addingReportingOverflow(count).partialValue
            if size > maxShardSize {
                groups.append([spec])
                continue
            }
            if currentSize + size > maxShardSize {
                groups.append(current)
                current = []
                currentSize = 0
            }
            current.append(spec)
            currentSize += size
        }
        if !current.isEmpty || groups.isEmpty { groups.append(current) }

        var shards: [Shard] = []
        for (i, group) in groups.enumerated() {
            let fileName = groups.count == 1
                ? "\(baseName).safetensors"
                : "\(baseName)-\(SafetensorsShardPlan.fiveDigits(i + 1))-of-\(SafetensorsShardPlan.fiveDigits(groups.count)).safetensors"
            shards.append(Shard(fileName: fileName, tensors: group, layout: try SafetensorsLayout(group, metadata: metadata)))
        }
        self.baseName = baseName
        self.shards = shards
        self.totalSize = totalSize
        self.totalElementCount = totalElements
    }

    /// The index file text, exactly as transformers writes it:
    /// `json.dumps({"metadata": {"total_parameters", "total_size"}, "weight_map": {…}}, indent=2,
    /// sort_keys=True) + "\n"`.
    /// - Parameter totalParameters: transformers writes `model.num_parameters()`; defaults to
    ///   the sum of element counts, which is the same for an unquantized model without tied
    ///   weights.
    public func indexJSON(totalParameters: Int? = nil) -> String {
        var weightMap = JSONObject()
        for shard in shards {
            for t in shard.tensors { weightMap[t.name] = .string(shard.fileName) }
        }
        let index = JSONValue.object(JSONObject([
            ("metadata", .object(JSONObject([
                ("total_parameters", .int(Int64(totalParameters ?? totalElementCount))),
                ("total_size", .int(Int64(totalSize))),
            ]))),
            ("weight_map", .object(weightMap)),
        ]))
        return index.serialized(.python(indent: 2, sortKeys: true)) + "\n"
    }

    /// Writes every shard into `directory` (which must exist), then the index when there is more
    /// than one shard. `tensorData` is called once per tensor, shard by shard, in each shard's
    /// layout order, and must append exactly that tensor's bytes to the file it is given.
    /// - Returns: the names of the files written, index last.
    @discardableResult
    public func write(
        into directory: String, totalParameters: Int? = nil,
        tensorData: (_ tensor: SafetensorsTensor, _ file: OutputFile) throws -> Void
    ) throws -> [String] {
        var written: [String] = []
        for shard in shards {
            try SafetensorsWriter.write(shard.layout, toPath: FileSystem.join(directory, shard.fileName), tensorData: tensorData)
            written.append(shard.fileName)
        }
        if isSharded {
            let file = try OutputFile(path: FileSystem.join(directory, indexFileName))
            try file.write(Array(indexJSON(totalParameters: totalParameters).utf8))
            try file.close()
            written.append(indexFileName)
        }
        return written
    }

    /// Parses a size as huggingface_hub's `parse_size_to_int` does: a number followed by `KB`,
    /// `MB`, `GB` or `TB` (decimal units, case-insensitive, fractions allowed and truncated after
    /// scaling, so `"1.5GB"` is 1500000000). A bare integer is taken as bytes. Nil if unparsable.
    public static func parseSize(_ text: String) -> Int? {
        let s = text.trimmingASCIIWhitespace()
        if let bytes = Int(s) { return bytes }
        guard s.count > 2 else { return nil }
        let multiplier: Double
        switch s.suffix(2).uppercased() {
        case "KB": multiplier = 1e3
        case "MB": multiplier = 1e6
        case "GB": multiplier = 1e9
        case "TB": multiplier = 1e12
        default: return nil
        }
        guard let value = Double(String(s.dropLast(2)).trimmingASCIIWhitespace()), value.isFinite else { return nil }
        let product = value * multiplier
        guard product > -9.0e18, product < 9.0e18 else { return nil }
        return Int(product)  // Python int(): truncation toward zero
    }

    static func sizes(of spec: SafetensorsTensorSpec) throws(SafetensorsWriteError) -> (bytes: Int, elements: Int) {
        guard spec.shape.allSatisfy({ $0 >= 0 }) else { throw .invalidShape(name: spec.name, shape: spec.shape) }
        guard let count = elementCount(of: spec.shape) else { throw .sizeOverflow(name: spec.name) }
        let (bits, overflow) = count.multipliedReportingOverflow(by: spec.dtype.bitCount)
        guard !overflow else { throw .sizeOverflow(name: spec.name) }
        guard bits % 8 == 0 else { throw .misalignedSize(name: spec.name, dtype: spec.dtype, elementCount: count) }
        return (bits / 8, count)
    }

    /// Python's `f"{n:05d}"` for non-negative n.
    static func fiveDigits(_ n: Int) -> String {
        let digits = String(n)
        return digits.count >= 5 ? digits : String(repeating: "0", count: 5 - digits.count) + digits
    }
}

/// The index of a sharded checkpoint (`model.safetensors.index.json`): which shard file holds
/// each tensor.
public struct SafetensorsIndex: Sendable {
    /// `weight_map` in file order.
    public let weightMap: [(tensor: String, shard: String)]
    /// The distinct shard files, sorted (as transformers lists them).
    public let shardFiles: [String]
    /// The index's `metadata` object, if present.
    public let metadata: JSONObject?

    private let shardByTensor: [String: String]

    /// The shard file that holds `tensor`, per the index.
    public func shard(of tensor: String) -> String? { shardByTensor[tensor] }

    /// Parses an index file's bytes.
    /// - Throws: ``SafetensorsIndexError``.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(SafetensorsIndexError) -> SafetensorsIndex {
        let root: JSONValue
        do { root = try JSONParser.parse(bytes) } catch { throw .invalidJSON(error) }
        guard case .object(let object) = root else { throw .notAnObject }
        guard case .object(let map)? = object["weight_map"] else { throw .missingWeightMap }
        var pairs: [(tensor: String, shard: String)] = []
        var byTensor: [String: String] = [:]
        var files: Set<String> = []
        for (tensor, value) in map {
            guard case .string(let file) = value else { throw .invalidWeightMapEntry(tensor: tensor) }
            guard isSafeRelativePath(file) else { throw .invalidShardFileName(file) }
            pairs.append((tensor, file))
            byTensor[tensor] = file
            files.insert(file)
        }
        return SafetensorsIndex(
            weightMap: pairs,
            shardFiles: files.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) },
            metadata: object["metadata"]?.objectValue,
            shardByTensor: byTensor)
    }

    /// Reads the index file at `path`.
    /// - Throws: ``PathError`` naming `path`.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        do {
            self = try SafetensorsIndex.parse(file.bytes)
        } catch {
            throw PathError(path: path, error)
        }
    }

    private init(weightMap: [(tensor: String, shard: String)], shardFiles: [String], metadata: JSONObject?, shardByTensor: [String: String]) {
        self.weightMap = weightMap
        self.shardFiles = shardFiles
        self.metadata = metadata
        self.shardByTensor = shardByTensor
    }

    /// A shard path must stay inside the checkpoint directory.
    static func isSafeRelativePath(_ file: String) -> Bool {
        guard !file.isEmpty, !file.hasPrefix("/"), !file.utf8.contains(0) else { return false }
        return !file.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." || $0.isEmpty }
    }
}

extension String {
    fileprivate func trimmingASCIIWhitespace() -> String {
        let ws: Set<Character> = [" ", "\t", "\n", "\r", "\u{0B}", "\u{0C}"]
        var s = Substring(self)
        while let f = s.first, ws.contains(f) { s = s.dropFirst() }
        while let l = s.last, ws.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
