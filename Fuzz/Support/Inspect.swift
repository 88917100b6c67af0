import Formats
import TensorCore

/// Opens a scratch file as `wconv inspect` opens its argument and computes everything the report
/// prints (totals, bits per weight, metadata renderings, the bitsandbytes layout), checking that each
/// tensor's bytes lie inside the file. Errors are fine; a trap or a sanitizer report is the finding.
func inspectScratchFile(_ name: String, _ bytes: UnsafeRawBufferPointer) {
    let path = writeScratchFile(name, bytes)
    defer { removeScratchFile(name) }
    guard let input = try? ModelInput.open(path: path) else { return }
    let summary = ModelSummary(input)
    let source = input.tensorSource
    for entry in summary.tensors {
        require(entry.byteCount >= 0 && entry.fileOffset >= 0, "negative size or offset for \(entry.name)")
        require(entry.fileOffset <= bytes.count - entry.byteCount, "tensor \(entry.name) runs past the end of the file")
        if let view = try? source.bytes(of: entry) {
            require(view.count == entry.byteCount, "view of \(entry.name) has \(view.count) bytes, entry says \(entry.byteCount)")
        }
        _ = entry.elementCount
        _ = entry.encoding.description
    }
    for total in summary.typeTotals { _ = total.bitsPerWeight }
    _ = summary.totalByteCount
    _ = summary.parameterCount
    _ = summary.bitsPerWeight
    _ = summary.weightParameterCount
    _ = summary.weightBitsPerWeight
    if let metadata = summary.ggufMetadata {
        for kv in metadata.entries {
            _ = kv.value.jsonValue(arrayLimit: 16).serialized(.python(indent: 2, sortKeys: false))
            _ = kv.value.summary()
        }
    }
    if let bnb = summary.bnb {
        for total in bnb.kindTotals { _ = total.bitsPerWeight }
        _ = bnb.quantizationByTensor
        for weight in bnb.weights { _ = weight.bitsPerWeight }
    }
}
