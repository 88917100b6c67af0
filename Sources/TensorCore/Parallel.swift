import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The number of cores online, the default thread count of every command.
public var activeProcessorCount: Int {
    #if canImport(Glibc)
    return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
    return 1
    #endif
}

/// Runs `body` over `0..<count` split into contiguous chunks, on up to `threads` threads.
///
/// Each index is visited exactly once and each chunk by one worker, so a kernel that writes
/// only the outputs of its own indices gives the same bytes for any thread count.
/// - Parameters:
///   - count: number of work items.
///   - threads: upper bound on concurrent workers (1 runs inline).
///   - minimumChunk: fewest items per chunk, so tiny inputs do not pay for dispatch.
///   - body: called with a half-open range of indices.
public func parallelChunks(
    count: Int, threads: Int, minimumChunk: Int = 1,
    _ body: @Sendable (Range<Int>) -> Void
) {
    guard count > 0 else { return }
    let workers = max(1, min(threads, (count + minimumChunk - 1) / max(1, minimumChunk)))
    if workers == 1 {
        body(0 ..< count)
        return
    }
    // A few chunks per worker evens out uneven work; worker w takes chunks w, w+workers, …
    // so no more than `workers` run at once whatever the machine's width.
    let chunkCount = min(count, workers * 4)
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        var chunk = worker
        while chunk < chunkCount {
            let start = count * chunk / chunkCount
            let end = count * (chunk + 1) / chunkCount
            if start < end { body(start ..< end) }
            chunk += workers
        }
    }
}

/// Runs `body` on `blocks` column ranges of `0 ..< columns` in parallel, one worker per block.
/// Every range but the first starts at a multiple of 16 (a multiple of every sgemm kernel's column
/// unroll, so each output column is the same dot product in the same order whichever block has it),
/// and the last ends at `columns`. The matrix products of Verify and Finetune split their columns here.
public func parallelColumnBlocks(columns: Int, blocks: Int, _ body: @Sendable (Range<Int>) -> Void) {
    parallelChunks(count: blocks, threads: blocks) { range in
        for block in range {
            let start = (columns * block / blocks) & ~15
            let end = block == blocks - 1 ? columns : (columns * (block + 1) / blocks) & ~15
            body(start ..< end)
        }
    }
}
