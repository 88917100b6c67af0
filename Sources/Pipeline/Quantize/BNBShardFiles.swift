#if canImport(Glibc)
import Glibc
#endif
import TensorCore
public import Formats

/// The safetensors files of a planned output, written by tensor at the offsets the layout gives.
///
/// The safetensors writer orders a file's data by dtype, so the pieces of one bitsandbytes
/// weight (F32 absmax, U8 codes, …) land in different regions. Writing each piece at its
/// planned offset lets the quantizer finish a weight, write all of it and drop it, instead of
/// holding the whole model's results until each region's turn comes. Every tensor must be
/// written exactly once with exactly its planned size; ``close()`` checks that.
public final class BNBShardFiles {
    private struct Slot {
        let shard: Int
        let offset: Int
        let byteCount: Int
    }

    let directory: String
    private let plan: SafetensorsShardPlan
    private var descriptors: [Int32]
    private var slots: [String: Slot] = [:]
    private var written: Set<String> = []

    /// Creates every shard file in `directory` and writes its header.
    public init(plan: SafetensorsShardPlan, directory: String) throws {
        self.plan = plan
        self.directory = directory
        descriptors = []
        for (i, shard) in plan.shards.enumerated() {
            for t in shard.layout.tensors {
                slots[t.name] = Slot(shard: i, offset: shard.layout.dataStart + t.dataOffsets.lowerBound, byteCount: t.byteCount)
            }
        }
        for shard in plan.shards {
            let path = FileSystem.join(directory, shard.fileName)
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let e = errno
                closeAll()
                throw PathError(path: path, OutputError.cannotCreate(errno: e))
            }
            descriptors.append(fd)
            try shard.layout.header.withUnsafeBytes { try write($0, to: descriptors.count - 1, at: 0) }
        }
    }

    deinit { closeAll() }

    /// The file names written, index last when sharded.
    public var fileNames: [String] { plan.shards.map(\.fileName) + (plan.isSharded ? [plan.indexFileName] : []) }

    /// Writes the data of tensor `name`.
    /// - Throws: an internal error for an unplanned name, a second write or a wrong size (a bug),
    ///   ``PathError`` wrapping ``OutputError`` when the write fails.
    public func write(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        guard let slot = slots[name] else { throw Failure(.internalError, "tensor \(name) was not planned") }
        guard bytes.count == slot.byteCount else {
            throw Failure(.internalError, "tensor \(name) has \(bytes.count) bytes, planned \(slot.byteCount)")
        }
        guard written.insert(name).inserted else { throw Failure(.internalError, "tensor \(name) written twice") }
        try write(bytes, to: slot.shard, at: slot.offset)
    }

    public func write(_ name: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(name, $0) }
    }

    /// Checks that every tensor was written, writes the index (if sharded), syncs and closes.
    public func close() throws {
        let missing = slots.keys.filter { !written.contains($0) }
        guard missing.isEmpty else { throw Failure(.internalError, "tensors never written: \(missing.sorted().prefix(5).joined(separator: ", "))") }
        for (i, fd) in descriptors.enumerated() where fd >= 0 {
            let path = FileSystem.join(directory, plan.shards[i].fileName)
            if fsync(fd) != 0 && errno != EINVAL { throw PathError(path: path, OutputError.writeFailed(errno: errno)) }
            let rc = Glibc.close(fd)
            descriptors[i] = -1
            if rc != 0 { throw PathError(path: path, OutputError.writeFailed(errno: errno)) }
        }
        if plan.isSharded {
            let file = try OutputFile(path: FileSystem.join(directory, plan.indexFileName))
            try file.write(Array(plan.indexJSON().utf8))
            try file.close()
        }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, to shard: Int, at offset: Int) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptors[shard], base + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw PathError(path: FileSystem.join(directory, plan.shards[shard].fileName), OutputError.writeFailed(errno: errno))
            }
            if n == 0 {
                throw PathError(path: FileSystem.join(directory, plan.shards[shard].fileName), OutputError.writeFailed(errno: ENOSPC))
            }
            done += n
        }
    }

    private func closeAll() {
        for i in descriptors.indices where descriptors[i] >= 0 {
            _ = Glibc.close(descriptors[i])
            descriptors[i] = -1
        }
    }
}
