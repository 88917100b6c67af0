import Dispatch
import Synchronization

/// Hands a stream of bytes from the calling thread to a second thread through a few reusable
/// buffers, so that producing the bytes (zstd decompression) overlaps consuming them (tar
/// parsing, SHA-256, writing) — on two cores the two halves of an unpack run side by side.
///
/// Each buffer belongs to one side at a time: the producer fills a free one and signals
/// `filled`; the consumer drains it and signals `free`. The semaphores order every access, so
/// no buffer or count is ever touched by both threads at once.
final class ByteRelay: @unchecked Sendable {
    // @unchecked: see above; `buffers` and `counts` are handed over by the semaphores, the
    // consumer's error is read only after `done` has been waited on.
    private let slotSize: Int
    private let buffers: [UnsafeMutableRawBufferPointer]
    private let counts: UnsafeMutablePointer<Int>
    private let free: DispatchSemaphore
    private let filled = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let failed = Atomic<Bool>(false)
    private var writeIndex = 0
    private var consumerError: (any Error)?

    /// Thrown to the producer when the consumer has failed; ``run(produce:consume:)`` then
    /// reports the consumer's error instead.
    private struct ConsumerFailed: Error {}

    init(slotSize: Int = 1 << 20, slots: Int = 4) {
        self.slotSize = slotSize
        buffers = (0 ..< slots).map { _ in .allocate(byteCount: slotSize, alignment: 64) }
        counts = .allocate(capacity: slots)
        counts.initialize(repeating: 0, count: slots)
        // Created at 0 and raised: libdispatch traps when a semaphore is destroyed below the
        // value it was created with, which the end marker's slot would leave it at.
        free = DispatchSemaphore(value: 0)
        for _ in 0 ..< slots { free.signal() }
    }

    deinit {
        for b in buffers { b.deallocate() }
        counts.deallocate()
    }

    /// Runs `consume` on another thread for every piece `produce` pushes (in order), and
    /// returns when both are done. The first error of either side is thrown (the consumer's if
    /// both failed, since the producer then only stopped because of it).
    static func run(
        produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void,
        consume: @escaping (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let relay = ByteRelay()
        let box = ConsumerBox(consume)
        DispatchQueue.global().async { relay.drain(box) }
        var producerError: (any Error)?
        do { try produce { try relay.push($0) } } catch { producerError = error }
        relay.finish()
        relay.done.wait()
        if let e = relay.consumerError { throw e }
        if let e = producerError { throw e }
    }

    private func push(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            free.wait()
            if failed.load(ordering: .acquiring) {
                free.signal()
                throw ConsumerFailed()
            }
            let n = min(slotSize, bytes.count - offset)
            if let src = bytes.baseAddress, let dst = buffers[writeIndex].baseAddress {
                dst.copyMemory(from: src + offset, byteCount: n)
            }
            counts[writeIndex] = n
            writeIndex = (writeIndex + 1) % buffers.count
            filled.signal()
            offset += n
        }
    }

    /// Sends the end marker.
    private func finish() {
        free.wait()
        counts[writeIndex] = -1
        filled.signal()
    }

    private func drain(_ box: ConsumerBox) {
        var readIndex = 0
        while true {
            filled.wait()
            let n = counts[readIndex]
            if n < 0 { break }
            if !failed.load(ordering: .acquiring) {
                do {
                    try box.consume(UnsafeRawBufferPointer(rebasing: buffers[readIndex][0 ..< n]))
                } catch {
                    consumerError = error
                    failed.store(true, ordering: .releasing)
                }
            }
            readIndex = (readIndex + 1) % buffers.count
            free.signal()
        }
        done.signal()
    }
}

/// The consumer closure, moved to the consumer thread once and used only there.
private final class ConsumerBox: @unchecked Sendable {
    let consume: (UnsafeRawBufferPointer) throws -> Void
    init(_ consume: @escaping (UnsafeRawBufferPointer) throws -> Void) { self.consume = consume }
}
