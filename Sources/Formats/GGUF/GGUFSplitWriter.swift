import TensorCore

/// Plans and writes a model split over several GGUF files the way llama.cpp's `gguf-split`
/// does (`tools/gguf-split/gguf-split.cpp`, `split_strategy`).
///
/// - Tensors go to parts in order. With ``Limit/maxBytes(_:)`` a new part starts when the
///   current part's tensor data (each tensor padded to the alignment) would exceed the limit —
///   a soft limit on data only, metadata not counted, as in `gguf-split --split-max-size`.
///   With ``Limit/maxTensors(_:)`` every part but the last gets exactly that many tensors.
/// - The first part carries all metadata; every part carries `split.no` (UINT16, 0-based),
///   `split.tensors.count` (INT32) and `split.count` (UINT16), appended in that order (current
///   ggml moves a key to the end when it is set again, and `gguf-split` sets `split.count` last).
///   Any `split.*` keys already in the metadata are replaced.
/// - Parts are named `<prefix>-00001-of-0000N.gguf` (``GGUFSplitName``).
///
/// One deliberate difference: `gguf-split` always lays parts out with 32-byte alignment; this
/// writer uses the model's alignment in every part (and writes `general.alignment` into every
/// part when it is not 32), so each part stays a valid GGUF file whatever the alignment.
public struct GGUFSplitWriter: Sendable {
    /// When to start a new part.
    public enum Limit: Sendable, Hashable {
        /// At most this many bytes of (padded) tensor data per part (`--split-max-size`).
        case maxBytes(Int)
        /// At most this many tensors per part (`--split-max-tensors`).
        case maxTensors(Int)
    }

    /// One writer per part.
    public let parts: [GGUFWriter]
    /// For each part, the indices (into the tensors given at init) of its tensors.
    public let tensorIndices: [Range<Int>]

    /// Plans the parts.
    /// - Parameters:
    ///   - metadata: the model's metadata, all of which goes into the first part.
    ///   - tensors: all tensors, in order.
    ///   - alignment: data alignment of every part.
    ///   - limit: when to start a new part.
    ///   - metadataOnlyFirstPart: put no tensors in the first part (`--no-tensor-first-split`).
    /// - Throws: ``GGUFError/splitLimitTooSmall(_:)`` if a part would get no tensor (a
    ///   tensor larger than the limit at the start of a part, as `gguf-split` refuses too) or
    ///   there would be more than 65535 parts; otherwise what ``GGUFWriter`` throws.
    public init(metadata: GGUFMetadata, tensors: [GGUFTensorDescriptor], alignment: Int = GGUFHeader.defaultAlignment,
                limit: Limit, metadataOnlyFirstPart: Bool = false) throws(GGUFError) {
        switch limit {
        case .maxBytes(let n) where n <= 0, .maxTensors(let n) where n <= 0:
            throw .splitLimitTooSmall("the split limit must be positive")
        default: break
        }
        guard alignment > 0, alignment & (alignment - 1) == 0 else { throw .alignmentNotPowerOfTwo(alignment) }
        guard tensors.count <= Int(Int32.max) else {
            throw .splitLimitTooSmall("\(tensors.count) tensors is more than split.tensors.count (INT32) can count")
        }

        var ranges: [Range<Int>] = []
        var start = 0
        if metadataOnlyFirstPart { ranges.append(0 ..< 0) }
        var partBytes = 0
        for (i, t) in tensors.enumerated() {
            let padded = alignUp(t.byteCount, to: alignment)
            let (next, overflow) = partBytes.addingReportingOverflow(padded)
            let split: Bool
            switch limit {
            case .maxBytes(let max): split = overflow || next > max
            case .maxTensors(let max): split = i > 0 && i % max == 0
            }
            if split {
                guard i > start else {
                    throw .splitLimitTooSmall("tensor '\(t.name)' (\(t.byteCount) bytes) does not fit in a part of at most \(Self.describe(limit)); a part would hold no tensor")
                }
                ranges.append(start ..< i)
                start = i
                partBytes = padded
            } else {
                partBytes = next
            }
        }
        ranges.append(start ..< tensors.count)
        guard ranges.count <= Int(UInt16.max) else {
            throw .splitLimitTooSmall("the limit gives \(ranges.count) parts; split.count (UINT16) allows at most 65535")
        }

        var base = metadata
        for key in [GGUFKeys.Split.number, GGUFKeys.Split.count, GGUFKeys.Split.tensorsCount] { base.remove(key) }
        var writers: [GGUFWriter] = []
        for (p, range) in ranges.enumerated() {
            var m = GGUFMetadata()
            if p == 0 {
                m = base
            } else if alignment != GGUFHeader.defaultAlignment {
                m.set(GGUFKeys.General.alignment, .uint32(UInt32(alignment)))
            }
            m.set(GGUFKeys.Split.number, .uint16(UInt16(p)))
            m.set(GGUFKeys.Split.tensorsCount, .int32(Int32(tensors.count)))
            m.set(GGUFKeys.Split.count, .uint16(UInt16(ranges.count)))
            writers.append(try GGUFWriter(metadata: m, tensors: Array(tensors[range]), alignment: alignment))
        }
        parts = writers
        tensorIndices = ranges
    }

    /// Paths of the parts for a prefix: `<prefix>-00001-of-0000N.gguf`, ….
    public func paths(prefix: String) -> [String] {
        let name = GGUFSplitName(prefix: prefix, part: 0, count: parts.count)
        return parts.indices.map { name.path(part: $0) }
    }

    /// Writes every part. Each is written under a temporary name; all are moved into place only
    /// once every part is complete.
    ///
    /// - Parameters:
    ///   - prefix: path prefix of the parts (`out/model` gives `out/model-00001-of-00003.gguf`, …).
    ///   - force: replace existing files.
    ///   - tensorData: called once per tensor, in order, with the tensor's index among all the
    ///     tensors given at init and a sink that must receive exactly its byte count.
    /// - Returns: the paths written.
    @discardableResult
    public func write(prefix: String, force: Bool, tensorData: (Int, GGUFTensorSink) throws -> Void) throws -> [String] {
        let paths = paths(prefix: prefix)
        var outputs: [AtomicOutput] = []
        for (p, writer) in parts.enumerated() {
            let atomic = try AtomicOutput.file(at: paths[p], force: force)
            outputs.append(atomic)
            let file = try OutputFile(path: atomic.temporaryPath)
            do {
                let first = tensorIndices[p].lowerBound
                try writer.write(to: file) { i, sink in try tensorData(first + i, sink) }
                try file.close()
            } catch let error as PathError {
                throw error
            } catch {
                throw PathError(path: paths[p], error)
            }
        }
        for output in outputs { try output.commit() }
        return paths
    }

    private static func describe(_ limit: Limit) -> String {
        switch limit {
        case .maxBytes(let n): "\(n) bytes"
        case .maxTensors(let n): "\(n) tensors"
        }
    }
}
