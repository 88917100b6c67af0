import CZstd
public import TensorCore

/// A failure reported by libzstd.
public struct ZstdError: ClassifiedError, Hashable {
    public let kind: ErrorKind
    public let message: String

    init(_ kind: ErrorKind, code: Int) {
        self.kind = kind
        message = String(cString: ZSTD_getErrorName(code))
    }

    init(_ kind: ErrorKind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "zstd: \(message)" }
}

/// The settings of ``ZstdCompressor``.
public struct ZstdSettings: Sendable, Hashable {
    /// Compression level (zstd's scale: 1 fast … 19 strong, 20–22 "ultra"; negative: faster).
    public var level: Int
    /// Worker threads. Always at least 1: zstd's multi-threaded mode gives the same bytes for
    /// any number of workers, whereas its single-threaded mode (0 workers) gives different ones,
    /// so 1 and 8 threads write identical archives.
    public var threads: Int
    /// Long-distance matching with a 128 MiB window (as `zstd --long`); `zstd -d` reads it
    /// without extra flags.
    public var longDistanceMatching: Bool

    public init(level: Int = 3, threads: Int = 1, longDistanceMatching: Bool = false) {
        self.level = level
        self.threads = max(1, threads)
        self.longDistanceMatching = longDistanceMatching
    }

    /// The levels libzstd accepts.
    public static var levelRange: ClosedRange<Int> { Int(ZSTD_minCLevel()) ... Int(ZSTD_maxCLevel()) }

    /// log2 of the window used with long-distance matching (`zstd --long` default).
    public static let longWindowLog: Int32 = 27
}

/// Streaming zstd compression into an ``OutputFile`` (one frame, content checksum on).
///
/// Compressed bytes are produced straight into the output file's buffer, so the only copy of
/// the input is the one zstd makes into its own job buffers.
public final class ZstdCompressor {
    private let context: OpaquePointer
    private let sink: OutputFile
    private let chunk: Int
    /// Uncompressed bytes accepted so far.
    public private(set) var consumed = 0

    /// - Parameter pledgedSize: the exact number of bytes that will be written, recorded in the
    ///   frame header (a different count is an error).
    public init(settings: ZstdSettings, pledgedSize: Int?, sink: OutputFile) throws {
        guard let cctx = ZSTD_createCCtx() else { throw ZstdError(.internalError, "cannot allocate a compression context") }
        context = cctx
        self.sink = sink
        chunk = max(Int(ZSTD_CStreamOutSize()), 1 << 20)
        do {
            try set(ZSTD_c_compressionLevel, Int32(clamping: settings.level))
            try set(ZSTD_c_checksumFlag, 1)
            try set(ZSTD_c_nbWorkers, Int32(clamping: settings.threads))
            if settings.longDistanceMatching {
                try set(ZSTD_c_enableLongDistanceMatching, 1)
                try set(ZSTD_c_windowLog, ZstdSettings.longWindowLog)
            }
            if let pledgedSize {
                try check(ZSTD_CCtx_setPledgedSrcSize(context, UInt64(pledgedSize)))
            }
        } catch {
            ZSTD_freeCCtx(cctx)
            throw error
        }
    }

    deinit { ZSTD_freeCCtx(context) }

    private func set(_ parameter: ZSTD_cParameter, _ value: Int32) throws {
        try check(ZSTD_CCtx_setParameter(context, parameter, value))
    }

    private func check(_ rc: Int) throws {
        if ZSTD_isError(rc) != 0 { throw ZstdError(.usage, code: rc) }
    }

    /// Compresses `bytes` (buffered by zstd until a block or job is full).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size {
            _ = try drain(&input, ZSTD_e_continue)
        }
        consumed += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Ends the frame and flushes everything to the sink (the sink stays open).
    public func finish() throws {
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try drain(&input, ZSTD_e_end) != 0 {}
    }

    /// One call of ZSTD_compressStream2 writing into the sink's buffer; returns zstd's
    /// "bytes left to flush" hint.
    private func drain(_ input: inout ZSTD_inBuffer, _ mode: ZSTD_EndDirective) throws -> Int {
        var remaining = 0
        try sink.withWritableBuffer(capacity: chunk) { buffer in
            var output = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            let rc = ZSTD_compressStream2(context, &output, &input, mode)
            if ZSTD_isError(rc) != 0 {
                throw ZstdError(ZSTD_getErrorCode(rc) == ZSTD_error_srcSize_wrong ? .ioError : .internalError, code: rc)
            }
            remaining = rc
            return output.pos
        }
        return remaining
    }
}

/// Streaming zstd decompression of a memory-mapped input, handing each decompressed piece to
/// a consumer. Concatenated frames are read one after another; a stream that stops inside a
/// frame is reported as truncated.
public final class ZstdDecompressor {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer

    /// - Parameter windowLogMax: the largest window accepted (log2); frames needing more are
    ///   refused instead of allocating it (27, zstd's default, covers `--long`).
    public init(windowLogMax: Int32 = 27) throws {
        guard let dctx = ZSTD_createDCtx() else { throw ZstdError(.internalError, "cannot allocate a decompression context") }
        context = dctx
        let rc = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, windowLogMax)
        if ZSTD_isError(rc) != 0 {
            ZSTD_freeDCtx(dctx)
            throw ZstdError(.internalError, code: rc)
        }
        output = .allocate(byteCount: max(Int(ZSTD_DStreamOutSize()), 1 << 20), alignment: 64)
    }

    deinit {
        ZSTD_freeDCtx(context)
        output.deallocate()
    }

    /// Decompresses all of `file`, calling `consume` with each piece of output (valid only
    /// during the call). Input pages are released as they are consumed.
    public func decompress(_ file: MappedFile, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard file.count > 0 else { throw ZstdError(.malformedInput, "empty file, not a zstd stream") }
        file.adviseSequential()
        let window = 4 << 20
        var offset = 0
        var frameOpen = false
        while offset < file.count {
            let end = min(file.count, offset + window)
            guard let chunk = file.slice(offset ..< end) else { break }
            var input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
            // Loop until this window is consumed and zstd has nothing more to flush from it.
            while true {
                var out = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
                let rc = ZSTD_decompressStream(context, &out, &input)
                if ZSTD_isError(rc) != 0 { throw ZstdError(.malformedInput, code: rc) }
                frameOpen = rc != 0
                if out.pos > 0 { try consume(UnsafeRawBufferPointer(rebasing: output[0 ..< out.pos])) }
                if input.pos == input.size && out.pos < out.size { break }
            }
            file.releasePages(of: chunk)
            offset = end
        }
        try file.checkUnchanged()
        if frameOpen { throw ZstdError(.malformedInput, "truncated: the compressed stream ends inside a frame") }
    }
}
