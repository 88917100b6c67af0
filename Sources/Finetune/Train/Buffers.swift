import Verify

/// A growable float32 buffer with a stable address, for activations and flat parameter arrays:
/// the passes hand raw pointers to BLAS, which an `Array` would only allow inside closures.
final class FloatBuffer: @unchecked Sendable {
    // @unchecked: owned by one model, used by one pass at a time.
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init(count: Int = 0) {
        capacity = max(1, count)
        pointer = .allocate(capacity: capacity)
        pointer.initialize(repeating: 0, count: capacity)
    }

    convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// Makes room for `count` floats (contents are lost when it grows).
    func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        capacity = count
        pointer = .allocate(capacity: capacity)
        pointer.initialize(repeating: 0, count: capacity)
    }

    func zero(_ count: Int) { pointer.update(repeating: 0, count: min(count, capacity)) }

    func array(_ range: Range<Int>) -> [Float] { Array(UnsafeBufferPointer(start: pointer + range.lowerBound, count: range.count)) }

    func copy(from values: [Float], at offset: Int) {
        values.withUnsafeBufferPointer { (pointer + offset).update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { pointer.deallocate() }
}

/// Where each adapter matrix lives in one flat parameter array: keys in ``LoRAWeights/keys``
/// order, and for each its `A` then its `B`. Gradients and both Adam moments use the same layout.
struct ParameterLayout: Sendable, Hashable {
    struct Slot: Sendable, Hashable {
        var key: LoRAKey
        var rank: Int
        var inFeatures: Int
        var outFeatures: Int
        /// Offset of `A` (`rank × inFeatures`); `B` follows at ``bOffset``.
        var aOffset: Int
        var bOffset: Int { aOffset + rank * inFeatures }
        var end: Int { bOffset + outFeatures * rank }
    }

    let slots: [Slot]
    let count: Int
    private let index: [LoRAKey: Int]

    init(_ weights: LoRAWeights) {
        var slots: [Slot] = []
        var offset = 0
        for key in weights.keys {
            guard let p = weights[key] else { continue }
            let slot = Slot(key: key, rank: p.rank, inFeatures: p.inFeatures, outFeatures: p.outFeatures, aOffset: offset)
            slots.append(slot)
            offset = slot.end
        }
        self.slots = slots
        count = offset
        index = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1.key, $0) })
    }

    func slot(_ key: LoRAKey) -> Slot? { index[key].map { slots[$0] } }

    /// Copies the matrices of `weights` into `buffer` (laid out by this layout).
    func store(_ weights: LoRAWeights, into buffer: FloatBuffer) {
        for s in slots {
            guard let p = weights[s.key] else { continue }
            buffer.copy(from: p.a, at: s.aOffset)
            buffer.copy(from: p.b, at: s.bOffset)
        }
    }

    /// The matrices held in `buffer`, as adapter weights with the given configurations.
    func weights(from buffer: FloatBuffer, model: LlamaConfig, lora: LoRAConfig) throws -> LoRAWeights {
        var pairs: [LoRAKey: LoRAPair] = [:]
        for s in slots {
            pairs[s.key] = try LoRAPair(rank: s.rank, inFeatures: s.inFeatures, outFeatures: s.outFeatures,
                                        a: buffer.array(s.aOffset ..< s.bOffset), b: buffer.array(s.bOffset ..< s.end))
        }
        return try LoRAWeights(modelConfig: model, loraConfig: lora, pairs: pairs)
    }
}
