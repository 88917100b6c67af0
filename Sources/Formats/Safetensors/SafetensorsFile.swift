import TensorCore

/// A safetensors file, memory-mapped and validated.
///
/// Opening maps the file and checks the whole header (``SafetensorsHeader/parse(_:)``); tensor
/// data is then viewed in place, never copied, so opening a multi-gigabyte file costs only the
/// header parse. The views returned by ``bytes(of:)`` stay valid as long as this object lives.
public final class SafetensorsFile: @unchecked Sendable {
    // @unchecked: the mapping and the parsed header are immutable after init.

    /// The path the file was opened from.
    public let path: String
    /// The validated header.
    public let header: SafetensorsHeader
    private let mapped: MappedFile

    /// Opens and validates the safetensors file at `path`.
    /// - Throws: ``PathError`` naming `path`, wrapping a ``FileAccessError`` or a
    ///   ``SafetensorsError``.
    public init(path: String) throws {
        self.path = path
        mapped = try MappedFile(path: path)
        do {
            header = try SafetensorsHeader.parse(mapped.bytes)
        } catch {
            throw PathError(path: path, error)
        }
    }

    /// Tensors in data-offset order.
    public var tensors: [SafetensorsTensor] { header.tensors }

    /// `__metadata__` in file order, or nil when the file has none.
    public var metadata: [(key: String, value: String)]? { header.metadata }

    /// Size of the whole file in bytes.
    public var fileSize: Int { mapped.count }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> SafetensorsTensor? { header.tensor(named: name) }

    /// The data of `tensor`, which must come from this file's ``tensors``.
    public func bytes(of tensor: SafetensorsTensor) -> UnsafeRawBufferPointer {
        // Offsets were validated against the file size when the header was parsed; a tensor from
        // another file is a programming error.
        precondition(header.tensor(named: tensor.name) == tensor, "tensor '\(tensor.name)' is not from \(path)")
        return UnsafeRawBufferPointer(rebasing: mapped.bytes[header.dataStart + tensor.dataOffsets.lowerBound ..< header.dataStart + tensor.dataOffsets.upperBound])
    }

    /// Lets the kernel drop `tensor`'s pages from this process's resident set (see
    /// ``MappedFile/releasePages(of:)``); its bytes remain readable.
    public func releasePages(of tensor: SafetensorsTensor) {
        mapped.releasePages(of: bytes(of: tensor))
    }

    /// The same for any view into this file (ignored if it is not one).
    public func releasePages(ofView view: UnsafeRawBufferPointer) {
        mapped.releasePages(of: view)
    }

    /// The data of the tensor called `name`.
    /// - Throws: ``PathError`` wrapping ``SafetensorsError/tensorNotFound(_:)``.
    public func bytes(named name: String) throws -> UnsafeRawBufferPointer {
        guard let t = tensor(named: name) else { throw PathError(path: path, SafetensorsError.tensorNotFound(name)) }
        return bytes(of: t)
    }

    /// Tells the kernel the tensors will be read front to back once.
    public func adviseSequential() { mapped.adviseSequential() }

    /// Throws if the file was truncated or rewritten since it was mapped.
    public func checkUnchanged() throws { try mapped.checkUnchanged() }
}
