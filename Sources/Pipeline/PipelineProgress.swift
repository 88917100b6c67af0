/// How far a conversion is: reported after each output tensor is written, so a command can show
/// a progress bar or emit events (library code never prints).
public struct PipelineProgress: Sendable, Hashable {
    /// Tensors written so far (1 after the first).
    public var tensorsDone: Int
    /// Tensors the output will hold.
    public var tensorCount: Int
    /// The tensor just written.
    public var tensorName: String
    /// Tensor bytes written so far.
    public var bytesDone: Int
    /// Tensor bytes the output will hold.
    public var bytesTotal: Int

    public init(tensorsDone: Int, tensorCount: Int, tensorName: String, bytesDone: Int, bytesTotal: Int) {
        self.tensorsDone = tensorsDone
        self.tensorCount = tensorCount
        self.tensorName = tensorName
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
    }
}

/// Receives ``PipelineProgress`` on the writing thread, once per tensor and in order. It should
/// return quickly (throttle any output itself).
public typealias PipelineProgressHandler = @Sendable (PipelineProgress) -> Void

/// Counts written tensors for a handler; the writers call ``wrote(_:bytes:)`` after each tensor.
final class ProgressCounter {
    private let handler: PipelineProgressHandler?
    private let tensorCount: Int
    private let bytesTotal: Int
    private var tensorsDone = 0
    private var bytesDone = 0

    init(_ handler: PipelineProgressHandler?, tensorCount: Int, bytesTotal: Int) {
        self.handler = handler
        self.tensorCount = tensorCount
        self.bytesTotal = bytesTotal
    }

    func wrote(_ name: String, bytes: Int) {
        guard let handler else { return }
        tensorsDone += 1
        bytesDone += bytes
        handler(PipelineProgress(tensorsDone: tensorsDone, tensorCount: tensorCount, tensorName: name,
                                 bytesDone: bytesDone, bytesTotal: bytesTotal))
    }
}
