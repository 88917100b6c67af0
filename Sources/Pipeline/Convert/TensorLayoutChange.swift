public import TensorCore
public import Formats

/// A change of a tensor's data layout that the converter makes before transcoding (see
/// ``TensorTransform``): the input bytes are the tensor as stored, in its dense dtype.
public enum TensorLayoutChange: Sendable, Hashable {
    /// `[rows, cols]` → `[cols, rows]` (GPT-2's Conv1D weights).
    case transpose
    /// Falcon's `query_key_value`: per KV group (the group's query heads, one key head, one
    /// value head) → all query heads, all key heads, all value heads.
    case regroupFusedQKV(heads: Int, kvHeads: Int)
    /// These rows of the tensor (one part of a split).
    case rows(Range<Int>)

    /// The changed bytes: a view into the input when no data moves, else a copy.
    enum Result {
        case view(UnsafeRawBufferPointer)
        case copy([UInt8])
    }

    /// Applies the change to `bytes`, the data of `entry` (validated against its shape).
    func apply(to bytes: UnsafeRawBufferPointer, entry: TensorEntry) throws -> Result {
        guard let dtype = entry.encoding.denseType, dtype.bitCount % 8 == 0, dtype.bitCount > 0 else {
            throw ConvertError.unsupportedDType(tensor: entry.name, dtype: entry.encoding.description)
        }
        let elementSize = dtype.bitCount / 8
        let rows = entry.shape.first ?? 1
        let rowElements = entry.shape.dropFirst().reduce(1, *)
        let rowBytes = rowElements * elementSize
        guard bytes.count >= rows * rowBytes else { throw ConvertError.badLayout(tensor: entry.name, "data shorter than its shape") }
        switch self {
        case .rows(let range):
            guard range.lowerBound >= 0, range.upperBound <= rows else {
                throw ConvertError.badLayout(tensor: entry.name, "row range \(range) outside \(rows) rows")
            }
            return .view(UnsafeRawBufferPointer(rebasing: bytes[range.lowerBound * rowBytes ..< range.upperBound * rowBytes]))
        case .transpose:
            guard entry.shape.count == 2 else { throw ConvertError.badLayout(tensor: entry.name, "only 2-D tensors can be transposed") }
            return .copy(Self.transposed(bytes, rows: rows, columns: rowElements, elementSize: elementSize))
        case .regroupFusedQKV(let heads, let kvHeads):
            guard let order = Self.fusedQKVRowOrder(rows: rows, heads: heads, kvHeads: kvHeads) else {
                throw ConvertError.badLayout(tensor: entry.name, "\(rows) rows are not \(heads) query + 2 × \(kvHeads) key/value heads")
            }
            var out = [UInt8](repeating: 0, count: rows * rowBytes)
            out.withUnsafeMutableBytes { dst in
                for (row, from) in order.enumerated() {
                    (dst.baseAddress! + row * rowBytes).copyMemory(from: bytes.baseAddress! + from * rowBytes, byteCount: rowBytes)
                }
            }
            return .copy(out)
        }
    }

    /// Element (r, c) of a row-major `[rows, columns]` matrix moves to (c, r).
    static func transposed(_ bytes: UnsafeRawBufferPointer, rows: Int, columns: Int, elementSize: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rows * columns * elementSize)
        out.withUnsafeMutableBytes { dst in
            // Tiles keep both sides in cache for large matrices.
            let tile = 32
            for r0 in stride(from: 0, to: rows, by: tile) {
                for c0 in stride(from: 0, to: columns, by: tile) {
                    for r in r0 ..< min(r0 + tile, rows) {
                        for c in c0 ..< min(c0 + tile, columns) {
                            (dst.baseAddress! + (c * rows + r) * elementSize)
                                .copyMemory(from: bytes.baseAddress! + (r * columns + c) * elementSize, byteCount: elementSize)
                        }
                    }
                }
            }
        }
        return out
    }

    /// The source row of each output row of Falcon's regrouping; nil when the rows do not
    /// divide into `heads + 2·kvHeads` heads with `heads` a multiple of `kvHeads`.
    public static func fusedQKVRowOrder(rows: Int, heads: Int, kvHeads: Int) -> [Int]? {
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0, rows % (heads + 2 * kvHeads) == 0 else { return nil }
        let headDim = rows / (heads + 2 * kvHeads)
        let perGroup = heads / kvHeads + 2  // heads per KV group in the stored layout
        var order: [Int] = []
        order.reserveCapacity(rows)
        func head(group: Int, slot: Int) { order += (0 ..< headDim).map { (group * perGroup + slot) * headDim + $0 } }
        for g in 0 ..< kvHeads { for j in 0 ..< perGroup - 2 { head(group: g, slot: j) } }
        for g in 0 ..< kvHeads { head(group: g, slot: perGroup - 2) }
        for g in 0 ..< kvHeads { head(group: g, slot: perGroup - 1) }
        return order
    }
}
