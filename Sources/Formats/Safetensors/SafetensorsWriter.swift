public import TensorCore

/// What the writer needs to know about a tensor before its bytes exist.
public struct SafetensorsTensorSpec: Sendable, Hashable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }
}

extension SafetensorsTensor {
    /// The descriptor of this tensor (for re-writing it).
    public var spec: SafetensorsTensorSpec { SafetensorsTensorSpec(name: name, dtype: dtype, shape: shape) }
}

/// The byte layout of a safetensors file, planned from tensor descriptors alone.
///
/// Matches the reference writer (`safetensors` crate `prepare`, used by the Python package and
/// so by transformers) byte for byte:
/// - tensors sorted by dtype descending in the crate's `Dtype` order (``DType/alignmentRank``:
///   U64, I64, F64, C64, F32, … BOOL), then by name in byte order;
/// - data offsets back to back from 0, no padding between tensors;
/// - compact JSON header (serde_json style), `__metadata__` first, then the tensors in offset
///   order, each as `{"dtype","shape","data_offsets"}`;
/// - the header padded with spaces to a multiple of 8 bytes, so the data starts 8-aligned.
///
/// One difference: the reference keeps `__metadata__` in a hash map, so with more than one key
/// its key order varies from run to run; here the keys keep the order given.
public struct SafetensorsLayout: Sendable {
    /// Tensors in file order, with their data offsets.
    public let tensors: [SafetensorsTensor]
    /// `__metadata__` as written, or nil for none.
    public let metadata: [(key: String, value: String)]?
    /// The first bytes of the file: the 8-byte header length, then the padded JSON header.
    public let header: [UInt8]
    /// Total bytes of tensor data.
    public let dataByteCount: Int

    /// Offset of the data buffer in the file.
    public var dataStart: Int { header.count }
    /// Size of the complete file.
    public var fileByteCount: Int { header.count + dataByteCount }

    /// Plans the layout of `specs` (in any order) with optional `__metadata__`.
    /// - Throws: ``SafetensorsWriteError`` for a duplicate or reserved name, a negative dimension,
    ///   a size that overflows or does not fill whole bytes, or a header over the reader's limit.
    public init(_ specs: [SafetensorsTensorSpec], metadata: [(key: String, value: String)]? = nil) throws(SafetensorsWriteError) {
        var names: Set<String> = []
        for spec in specs {
            guard spec.name != "__metadata__" else { throw .reservedName }
            guard names.insert(spec.name).inserted else { throw .duplicateName(spec.name) }
        }
        if let metadata {
            var keys: Set<String> = []
            for (key, _) in metadata where !keys.insert(key).inserted { throw .duplicateMetadataKey(key) }
        }

        var tensors: [SafetensorsTensor] = []
        tensors.reserveCapacity(specs.count)
        var offset = 0
        for spec in specs.sorted(by: SafetensorsLayout.referenceOrder) {
            guard spec.shape.allSatisfy({ $0 >= 0 }) else { throw .invalidShape(name: spec.name, shape: spec.shape) }
            guard let count = elementCount(of: spec.shape) else { throw .sizeOverflow(name: spec.name) }
            let (bits, overflow) = count.multipliedReportingOverflow(by: spec.dtype.bitCount)
            guard !overflow else { throw .sizeOverflow(name: spec.name) }
            guard bits % 8 == 0 else { throw .misalignedSize(name: spec.name, dtype: spec.dtype, elementCount: count) }
            let (end, endOverflow) = offset.addingReportingOverflow(bits / 8)
            guard !endOverflow else { throw .sizeOverflow(name: spec.name) }
            tensors.append(SafetensorsTensor(name: spec.name, dtype: spec.dtype, shape: spec.shape,
                                             dataOffsets: offset ..< end, elementCount: count))
            offset = end
        }

        var root = JSONObject()
        if let metadata {
            root["__metadata__"] = .object(JSONObject(metadata.map { ($0.key, JSONValue.string($0.value)) }))
        }
        for t in tensors {
            root[t.name] = .object(JSONObject([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int(Int64($0)) })),
                ("data_offsets", .array([.int(Int64(t.dataOffsets.lowerBound)), .int(Int64(t.dataOffsets.upperBound))])),
            ]))
        }
        var json = Array(JSONValue.object(root).serialized(.compact).utf8)
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        guard json.count <= SafetensorsHeader.maximumHeaderSize else { throw .headerTooLarge(byteCount: json.count) }

        var writer = ByteWriter(capacity: 8 + json.count)
        writer.write(UInt64(json.count))
        writer.write(bytes: json)
        self.tensors = tensors
        self.metadata = metadata
        self.header = writer.bytes
        self.dataByteCount = offset
    }

    /// The reference writer's tensor order: wider dtypes first, then names in byte order.
    public static func referenceOrder(_ a: SafetensorsTensorSpec, _ b: SafetensorsTensorSpec) -> Bool {
        if a.dtype != b.dtype { return a.dtype.alignmentRank > b.dtype.alignmentRank }
        // Rust compares `String`s byte-wise; Swift's `<` would compare by Unicode scalars after
        // normalization, which differs for some names.
        return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
    }
}

/// Writes safetensors files tensor by tensor, so a model never has to be in memory at once.
public enum SafetensorsWriter {
    /// Writes `layout` to `file`: the header, then each tensor's bytes, which `tensorData`
    /// appends to `file` when called with that tensor (in layout order). The byte count each call
    /// writes is checked against the layout. The caller closes `file`.
    ///
    /// - Parameters:
    ///   - layout: the planned file.
    ///   - file: a fresh output; the safetensors bytes are appended from its current offset.
    ///   - tensorData: writes exactly `tensor.byteCount` bytes of `tensor` into the file (with
    ///     `write(_:)` or `withWritableBuffer`).
    /// - Throws: what `tensorData` or the file throws, or ``PathError`` wrapping
    ///   ``SafetensorsWriteError/wrongByteCount(name:expected:written:)``.
    public static func write(
        _ layout: SafetensorsLayout, to file: OutputFile,
        tensorData: (_ tensor: SafetensorsTensor, _ file: OutputFile) throws -> Void
    ) throws {
        try file.write(layout.header)
        for tensor in layout.tensors {
            let start = file.offset
            try tensorData(tensor, file)
            let written = file.offset - start
            guard written == tensor.byteCount else {
                throw PathError(path: file.path, SafetensorsWriteError.wrongByteCount(name: tensor.name, expected: tensor.byteCount, written: written))
            }
        }
    }

    /// Creates the file at `path`, writes `layout` into it (see ``write(_:to:tensorData:)``) and
    /// closes it. The caller handles atomic replacement (``AtomicOutput``).
    public static func write(
        _ layout: SafetensorsLayout, toPath path: String,
        tensorData: (_ tensor: SafetensorsTensor, _ file: OutputFile) throws -> Void
    ) throws {
        let file = try OutputFile(path: path)
        try write(layout, to: file, tensorData: tensorData)
        try file.close()
    }

    /// The complete bytes of a safetensors file holding `tensors`, built in memory. Meant for
    /// small files (tests, adapters); large models go through ``write(_:to:tensorData:)``.
    /// - Throws: ``SafetensorsWriteError`` for a bad descriptor or a data size that does not
    ///   match dtype × shape.
    public static func serialize(
        _ tensors: [(spec: SafetensorsTensorSpec, data: [UInt8])],
        metadata: [(key: String, value: String)]? = nil
    ) throws(SafetensorsWriteError) -> [UInt8] {
        let layout = try SafetensorsLayout(tensors.map(\.spec), metadata: metadata)
        var dataByName: [String: [UInt8]] = [:]
        for t in tensors { dataByName[t.spec.name] = t.data }
        var out = layout.header
        out.reserveCapacity(layout.fileByteCount)
        for t in layout.tensors {
            let data = dataByName[t.name] ?? []
            guard data.count == t.byteCount else {
                throw .wrongByteCount(name: t.name, expected: t.byteCount, written: data.count)
            }
            out.append(contentsOf: data)
        }
        return out
    }
}
