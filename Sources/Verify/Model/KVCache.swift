/// Keys and values of every layer for the positions evaluated so far.
///
/// Layout per layer: `[capacity, kvHeads · hd]` rows, keys already rotated. ``LlamaModel``
/// writes the projections of new tokens straight into their rows (no copy), so a prompt can be
/// evaluated in one batch and continued one token at a time with the same results.
public final class KVCache {
    public let layerCount: Int
    /// Most positions the cache can hold.
    public let capacity: Int
    /// Floats per position (`kvHeads · hd`).
    public let rowWidth: Int
    /// Positions currently stored (`0 ..< count`).
    public internal(set) var count = 0

    // One allocation for keys and one for values: [layer][position][rowWidth].
    private let keyStorage: UnsafeMutableBufferPointer<Float>
    private let valueStorage: UnsafeMutableBufferPointer<Float>

    /// An empty cache for `capacity` positions of a model shaped like `config`
    /// (`2 · layers · capacity · kvHeads · hd` floats, allocated up front).
    /// - Throws: ``VerifyError/badConfigValue(key:reason:)`` for a capacity below 1 or one whose
    ///   size overflows.
    public init(config: LlamaConfig, capacity: Int) throws {
        guard capacity > 0 else {
            throw VerifyError.badConfigValue(key: "context", reason: "the cache needs at least one position")
        }
        let (perLayer, o1) = capacity.multipliedReportingOverflow(by: config.kvDimension)
        let (total, o2) = perLayer.multipliedReportingOverflow(by: config.layerCount)
        guard !o1, !o2, total <= Int.max / 8 else {
            throw VerifyError.badConfigValue(key: "context", reason: "a cache of \(capacity) positions is too large")
        }
        layerCount = config.layerCount
        self.capacity = capacity
        rowWidth = config.kvDimension
        keyStorage = .allocate(capacity: total)
        keyStorage.initialize(repeating: 0)
        valueStorage = .allocate(capacity: total)
        valueStorage.initialize(repeating: 0)
    }

    deinit {
        keyStorage.deallocate()
        valueStorage.deallocate()
    }

    /// Forgets every position.
    public func reset() { count = 0 }

    /// Forgets positions `length...` (to re-evaluate from there).
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= count, "KVCache: truncate beyond the stored positions")
        count = length
    }

    /// Start of layer `layer`'s key rows.
    func keys(layer: Int) -> UnsafeMutablePointer<Float> {
        keyStorage.baseAddress! + layer * capacity * rowWidth
    }

    /// Start of layer `layer`'s value rows.
    func values(layer: Int) -> UnsafeMutablePointer<Float> {
        valueStorage.baseAddress! + layer * capacity * rowWidth
    }

    /// A copy of layer `layer`'s stored keys, `[count, rowWidth]` (for tests and debugging).
    public func storedKeys(layer: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: keys(layer: layer), count: count * rowWidth))
    }

    /// A copy of layer `layer`'s stored values, `[count, rowWidth]`.
    public func storedValues(layer: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: values(layer: layer), count: count * rowWidth))
    }
}
