public import TensorCore

/// Why a GGUF file could not be read or written. One case per failure, each with enough
/// context (key, tensor name, offsets) to find the problem in the file.
public enum GGUFError: ClassifiedError, Hashable {
    // MARK: Header

    /// The file does not start with `GGUF` (the bytes found, up to four).
    case badMagic(found: [UInt8])
    /// Version 0, 1 (GGUFv1, no longer read by ggml) or newer than 3.
    case unsupportedVersion(UInt32)
    /// The version reads as `v << 16`-ish (low half zero): a big-endian GGUF.
    case byteSwapped(version: UInt32)
    /// A read ran past the end of the file.
    case truncated(what: String, offset: Int)
    /// The tensor count is larger than the bytes left in the file could describe.
    case tensorCountTooLarge(count: UInt64, bytesLeft: Int)
    /// The metadata count is larger than the bytes left in the file could describe.
    case keyValueCountTooLarge(count: UInt64, bytesLeft: Int)

    // MARK: Metadata

    /// Metadata entry number `index` has an empty key.
    case emptyKey(index: Int)
    case duplicateKey(String)
    /// A value type id outside 0…12.
    case unknownValueType(id: UInt32, key: String)
    /// An array whose elements are arrays (ggml rejects these).
    case nestedArray(key: String)
    /// A string longer than 1 GiB or than the bytes left in the file (`maximum` is the smaller).
    case stringTooLong(what: String, length: UInt64, maximum: UInt64)
    /// An array with more elements than 2^30 or than the bytes left could hold.
    case arrayTooLong(key: String, count: UInt64, maximum: UInt64)
    /// A key, a tensor name or a string value that is not valid UTF-8.
    case invalidUTF8(what: String)
    /// `general.alignment` is not UINT32.
    case alignmentWrongType(GGUFValueType)
    /// `general.alignment` (or a writer's alignment) is zero or not a power of two.
    case alignmentNotPowerOfTwo(Int)

    // MARK: Tensor infos

    /// A tensor name of 64 bytes or more (ggml's `GGML_MAX_NAME` is 64 including the NUL).
    case nameTooLong(String)
    case duplicateTensor(String)
    /// More than 4 dimensions (`GGML_MAX_DIMS`).
    case tooManyDimensions(name: String, count: Int)
    /// A dimension (`ne[index]`) that is negative as int64.
    case negativeDimension(name: String, index: Int, value: Int64)
    /// The element count or byte count of a tensor does not fit in 63 bits.
    case tensorTooLarge(name: String, dimensions: [Int])
    /// `ne[0]` is not a multiple of the type's block size.
    case rowNotMultipleOfBlock(name: String, rowLength: Int, type: GGMLType, blockSize: Int)
    /// A tensor offset is not a multiple of the alignment.
    case offsetNotAligned(name: String, offset: UInt64, alignment: Int)
    /// Tensor data is not laid out back to back in info order, each padded to the alignment
    /// (ggml requires exactly this).
    case offsetsNotCumulative(name: String, offset: UInt64, expected: UInt64)
    /// A tensor's bytes extend past the end of the file.
    case tensorOutOfBounds(name: String, fileOffset: UInt64, byteCount: UInt64, fileSize: Int)
    /// A tensor of a type wconv does not know claims more elements than eight per byte of its
    /// data; no ggml type stores an element in less than a bit.
    case tooManyElementsForBytes(name: String, type: GGMLType, elementCount: Int, byteCount: UInt64)

    // MARK: Split models

    /// A split part lacks a `split.*` key, or has one of the wrong type.
    case splitKeyMissing(key: String, part: Int)
    /// `split.no`, `split.count` or `split.tensors.count` disagrees with the file set.
    case splitMismatch(String)

    // MARK: Writing

    /// The byte count given for a tensor disagrees with its type and dimensions.
    case byteCountDisagreesWithShape(name: String, byteCount: Int, expected: Int)
    /// The caller supplied a different number of bytes than the tensor's byte count.
    case wrongDataSize(name: String, written: Int, expected: Int)
    /// The metadata's `general.alignment` differs from the alignment asked of the writer.
    case alignmentMismatch(metadata: Int, requested: Int)
    /// A split limit so small that a part would hold no tensor, or so many parts that
    /// `split.count` (UINT16) cannot count them.
    case splitLimitTooSmall(String)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedVersion, .byteSwapped: .unsupported
        case .wrongDataSize: .internalError
        case .splitLimitTooSmall: .usage
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .badMagic(let found):
            let shown = found.map { (0x20 ..< 0x7F).contains($0) ? String(UnicodeScalar($0)) : "?" }.joined()
            return "not a GGUF file: starts with '\(shown)', expected 'GGUF'"
        case .unsupportedVersion(let v):
            return v == 1 ? "GGUF version 1 is no longer supported (convert it with a current llama.cpp)"
                : "GGUF version \(v) is not supported (versions 2 and 3 are)"
        case .byteSwapped(let v):
            return "GGUF version field reads 0x\(String(v, radix: 16)): the file is big-endian; big-endian GGUF is not supported"
        case .truncated(let what, let offset):
            return "file ends inside \(what) at byte \(offset)"
        case .tensorCountTooLarge(let count, let left):
            return "header claims \(count) tensors but only \(left) bytes follow"
        case .keyValueCountTooLarge(let count, let left):
            return "header claims \(count) metadata entries but only \(left) bytes follow"
        case .emptyKey(let index):
            return "metadata entry \(index) has an empty key"
        case .duplicateKey(let key):
            return "metadata key '\(key)' appears twice"
        case .unknownValueType(let id, let key):
            return "metadata key '\(key)' has unknown value type \(id) (valid: 0-12)"
        case .nestedArray(let key):
            return "metadata key '\(key)' is an array of arrays, which GGUF readers do not accept"
        case .stringTooLong(let what, let length, let maximum):
            return "\(what) claims \(length) bytes, more than the \(maximum) allowed here"
        case .arrayTooLong(let key, let count, let maximum):
            return "metadata array '\(key)' claims \(count) elements, more than the \(maximum) that can be present"
        case .invalidUTF8(let what):
            return "\(what) is not valid UTF-8"
        case .alignmentWrongType(let type):
            return "general.alignment has type \(type), expected UINT32"
        case .alignmentNotPowerOfTwo(let a):
            return "alignment \(a) is not a non-zero power of two"
        case .nameTooLong(let name):
            return "tensor name '\(name)' is \(name.utf8.count) bytes; ggml allows at most 63"
        case .duplicateTensor(let name):
            return "tensor '\(name)' appears twice"
        case .tooManyDimensions(let name, let count):
            return "tensor '\(name)' has \(count) dimensions; ggml allows at most 4"
        case .negativeDimension(let name, let index, let value):
            return "tensor '\(name)' dimension \(index) is negative (\(value))"
        case .tensorTooLarge(let name, let dims):
            return "tensor '\(name)' with dimensions \(dims) is too large to address"
        case .rowNotMultipleOfBlock(let name, let row, let type, let block):
            return "tensor '\(name)' of type \(type) has rows of \(row) elements, not a multiple of the block size \(block)"
        case .offsetNotAligned(let name, let offset, let alignment):
            return "tensor '\(name)' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case .offsetsNotCumulative(let name, let offset, let expected):
            return "tensor '\(name)' has data offset \(offset), expected \(expected) (tensor data must follow the info order, each padded to the alignment)"
        case .tensorOutOfBounds(let name, let offset, let count, let size):
            return "tensor '\(name)' needs \(count) bytes at file offset \(offset), but the file has \(size) bytes"
        case .tooManyElementsForBytes(let name, let type, let elements, let bytes):
            return "tensor '\(name)' of unknown type \(type.rawValue) claims \(elements) elements in \(bytes) bytes of data (more than 8 per byte)"
        case .splitKeyMissing(let key, let part):
            return "split part \(part + 1) has no integer '\(key)' key"
        case .splitMismatch(let message):
            return message
        case .byteCountDisagreesWithShape(let name, let count, let expected):
            return "tensor '\(name)' is given \(count) bytes but its type and dimensions need \(expected)"
        case .wrongDataSize(let name, let written, let expected):
            return "tensor '\(name)' received \(written) bytes of data, expected \(expected)"
        case .alignmentMismatch(let inMetadata, let requested):
            return "metadata sets general.alignment = \(inMetadata) but the file is being written with alignment \(requested)"
        case .splitLimitTooSmall(let message):
            return message
        }
    }
}
