/// The random generator of training: SplitMix64, whose whole state is one `UInt64`, so a
/// checkpoint can store it and a resumed run draws the same numbers.
///
/// Streams for independent uses (adapter init, data order, dropout of step s / example e /
/// layer l / target t) are derived by hashing the run seed with those indices
/// (``derived(_:)``), so a dropout mask depends only on where it is used, never on how
/// many numbers were drawn before: recomputation in the backward pass and any thread count
/// see the same masks.
public struct TrainingRandom: RandomNumberGenerator, Sendable, Hashable {
    /// The generator state (store it to resume).
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// SplitMix64's finalizer: a bijective 64-bit mix.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A generator for the sub-stream named by `indices` (each folded in with the mixer).
    public static func derived(seed: UInt64, _ indices: UInt64...) -> TrainingRandom {
        var h = mix(seed ^ 0x6A09_E667_F3BC_C908)
        for i in indices { h = mix(h &+ 0x9E37_79B9_7F4A_7C15 ^ i) }
        return TrainingRandom(seed: h)
    }

    /// A float uniform in [0, 1) with 24 random bits.
    public mutating func nextUnit() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A float uniform in [low, high).
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUnit()
    }
}
