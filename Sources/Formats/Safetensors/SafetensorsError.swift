public import TensorCore

/// Why a safetensors file was rejected.
///
/// One case per check the reference reader (the `safetensors` Rust crate, 0.8) performs, in the
/// order it performs them, plus an explicit duplicate-name check that the reference only catches
/// indirectly (serde keeps the last of two equal keys, which then leaves a hole in the offsets).
/// Descriptions are one line and do not name the file: readers wrap them in ``PathError``.
public enum SafetensorsError: ClassifiedError, Hashable {
    /// The file is shorter than the 8-byte header length.
    case headerTooSmall(fileSize: Int)
    /// The declared header length is above the reference's 100,000,000-byte limit.
    case headerTooLarge(headerSize: UInt64)
    /// `8 + N` runs past the end of the file.
    case invalidHeaderLength(headerSize: UInt64, fileSize: Int)
    /// The header bytes are not UTF-8.
    case headerNotUTF8
    /// The header is not one JSON document (NUL padding lands here, as in the reference).
    case invalidHeaderJSON(JSONError)
    /// The header is JSON but not an object.
    case headerNotObject
    /// `__metadata__` is not an object of strings; `key` names the first non-string value, nil when
    /// `__metadata__` itself is not an object.
    case metadataNotStrings(key: String?)
    /// A tensor entry lacks a field or has one of the wrong type.
    case invalidTensorEntry(name: String, reason: String)
    /// A tensor's `dtype` is not one of the safetensors dtype names.
    case unknownDType(name: String, dtype: String)
    /// Two tensors share a name.
    case duplicateName(String)
    /// In data-offset order, a tensor does not start where the previous one ended (a gap or an
    /// overlap), or ends before it begins.
    case invalidOffset(name: String, begin: Int, end: Int, expectedBegin: Int)
    /// The element count or the bit count of a tensor overflows.
    case sizeOverflow(name: String)
    /// A sub-byte dtype (F4, F6) whose elements do not fill whole bytes.
    case misalignedSlice(name: String, dtype: DType, elementCount: Int)
    /// The byte count implied by dtype and shape differs from `end - begin`.
    case tensorInvalidInfo(name: String, expectedByteCount: Int, actualByteCount: Int)
    /// The tensors do not cover the data buffer exactly: the file is longer (trailing bytes) or
    /// shorter than `8 + N + last end`.
    case incompleteBuffer(expectedFileSize: Int, fileSize: Int)
    /// A looked-up tensor is not in the file.
    case tensorNotFound(String)

    /// All of these mean the file's contents are wrong (a needed tensor missing included).
    public var kind: ErrorKind { .malformedInput }

    public var description: String {
        switch self {
        case .headerTooSmall(let size):
            "file is \(size) bytes, too short for a safetensors header length (8 bytes)"
        case .headerTooLarge(let n):
            "safetensors header length \(n) is above the 100000000-byte limit"
        case .invalidHeaderLength(let n, let size):
            "safetensors header length \(n) runs past the end of the file (\(size) bytes)"
        case .headerNotUTF8:
            "safetensors header is not valid UTF-8"
        case .invalidHeaderJSON(let error):
            "safetensors header is not valid JSON: \(error)"
        case .headerNotObject:
            "safetensors header is not a JSON object"
        case .metadataNotStrings(let key?):
            "__metadata__ value for \"\(key)\" is not a string"
        case .metadataNotStrings(nil):
            "__metadata__ is not an object of strings"
        case .invalidTensorEntry(let name, let reason):
            "tensor '\(name)': \(reason)"
        case .unknownDType(let name, let dtype):
            "tensor '\(name)': unknown dtype \"\(dtype)\""
        case .duplicateName(let name):
            "tensor '\(name)' appears twice in the header"
        case .invalidOffset(let name, let begin, let end, let expected):
            end < begin
                ? "tensor '\(name)': data_offsets [\(begin), \(end)] end before they begin"
                : "tensor '\(name)': data_offsets [\(begin), \(end)] should begin at \(expected) (tensors must be contiguous, without gaps or overlaps)"
        case .sizeOverflow(let name):
            "tensor '\(name)': size of shape and dtype overflows"
        case .misalignedSlice(let name, let dtype, let count):
            "tensor '\(name)': \(count) elements of \(dtype.rawValue) do not fill whole bytes"
        case .tensorInvalidInfo(let name, let expected, let actual):
            "tensor '\(name)': dtype and shape need \(expected) bytes but data_offsets span \(actual)"
        case .incompleteBuffer(let expected, let size):
            size > expected
                ? "\(size - expected) trailing \(size - expected == 1 ? "byte" : "bytes") after the last tensor (file is \(size) bytes, tensors end at \(expected))"
                : "file is \(size) bytes but its tensors end at byte \(expected)"
        case .tensorNotFound(let name):
            "no tensor named '\(name)'"
        }
    }
}

/// Why a safetensors file could not be written. These are mistakes in what the caller asked for
/// (a bad descriptor, a tensor callback writing the wrong number of bytes), not bad input files.
public enum SafetensorsWriteError: ClassifiedError, Hashable {
    /// Two tensors share a name.
    case duplicateName(String)
    /// `__metadata__` cannot be a tensor name.
    case reservedName
    /// Two metadata entries share a key.
    case duplicateMetadataKey(String)
    /// A dimension is negative.
    case invalidShape(name: String, shape: [Int])
    /// The byte count of a tensor overflows.
    case sizeOverflow(name: String)
    /// A sub-byte dtype whose elements do not fill whole bytes.
    case misalignedSize(name: String, dtype: DType, elementCount: Int)
    /// The JSON header would exceed the reference reader's 100,000,000-byte limit.
    case headerTooLarge(byteCount: Int)
    /// The shard size limit is not positive.
    case invalidShardSize(Int)
    /// The tensor callback wrote a different number of bytes than the layout reserved.
    case wrongByteCount(name: String, expected: Int, written: Int)

    public var kind: ErrorKind {
        switch self {
        case .headerTooLarge: .unsupported
        case .invalidShardSize: .usage
        default: .internalError
        }
    }

    public var description: String {
        switch self {
        case .duplicateName(let name): "tensor '\(name)' given twice"
        case .reservedName: "\"__metadata__\" cannot be used as a tensor name"
        case .duplicateMetadataKey(let key): "metadata key \"\(key)\" given twice"
        case .invalidShape(let name, let shape): "tensor '\(name)': invalid shape \(shape)"
        case .sizeOverflow(let name): "tensor '\(name)': byte count overflows"
        case .misalignedSize(let name, let dtype, let count):
            "tensor '\(name)': \(count) elements of \(dtype.rawValue) do not fill whole bytes"
        case .headerTooLarge(let n): "safetensors header would be \(n) bytes, above the 100000000-byte limit"
        case .invalidShardSize(let n): "maximum shard size must be positive, got \(n)"
        case .wrongByteCount(let name, let expected, let written):
            "tensor '\(name)': wrote \(written) bytes, expected \(expected)"
        }
    }
}

/// Why a sharded checkpoint index (`model.safetensors.index.json`) or its shards were rejected.
/// Errors about a shard are wrapped in a ``PathError`` naming that shard.
public enum SafetensorsIndexError: ClassifiedError, Hashable {
    /// The index is not valid JSON.
    case invalidJSON(JSONError)
    /// The index is not a JSON object.
    case notAnObject
    /// There is no `weight_map` object.
    case missingWeightMap
    /// A `weight_map` value is not a string.
    case invalidWeightMapEntry(tensor: String)
    /// A shard file name is absolute or climbs out of the directory.
    case invalidShardFileName(String)
    /// The index maps a tensor to this shard but the shard does not hold it.
    case missingTensor(name: String)
    /// The shard holds a tensor that the index does not list at all.
    case unlistedTensor(name: String)
    /// The shard holds a tensor that the index assigns to another shard.
    case tensorInOtherShard(name: String, indexedShard: String)

    public var kind: ErrorKind { .malformedInput }

    public var description: String {
        switch self {
        case .invalidJSON(let error): "index is not valid JSON: \(error)"
        case .notAnObject: "index is not a JSON object"
        case .missingWeightMap: "index has no \"weight_map\" object"
        case .invalidWeightMapEntry(let name): "weight_map entry for '\(name)' is not a file name string"
        case .invalidShardFileName(let file): "weight_map names an unsafe shard path \"\(file)\""
        case .missingTensor(let name): "tensor '\(name)' is listed in the index for this shard but the shard does not contain it"
        case .unlistedTensor(let name): "tensor '\(name)' is in this shard but not in the index's weight_map"
        case .tensorInOtherShard(let name, let shard):
            "tensor '\(name)' is in this shard but the index assigns it to \(shard) (a tensor in two shards)"
        }
    }
}
