// Fuzz target: a safetensors file (8-byte length, JSON header, data buffer).
//
// Parses the header from memory and checks what the reader promises about an accepted file, then
// opens the same bytes as a file the way `wconv inspect` does (including the bitsandbytes layout,
// whose quant-state JSON lives inside U8 tensors).
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    if let header = try? SafetensorsHeader.parse(bytes) {
        require(header.dataStart >= 8 && header.dataStart <= bytes.count, "data start \(header.dataStart) outside the file")
        var end = 0
        for tensor in header.tensors {
            require(tensor.dataOffsets.lowerBound == end, "tensors not contiguous at \(tensor.name)")
            end = tensor.dataOffsets.upperBound
            require(header.dataStart + end <= bytes.count, "tensor \(tensor.name) past the end of the file")
            require(header.tensor(named: tensor.name) == tensor, "lookup of \(tensor.name) gives another tensor")
            let (bits, overflow) = tensor.elementCount.multipliedReportingOverflow(by: tensor.dtype.bitCount)
            require(!overflow && bits == tensor.byteCount * 8, "byte count of \(tensor.name) disagrees with dtype and shape")
        }
        require(header.dataStart + end == bytes.count, "tensors do not cover the file")
        _ = header.metadata
    }
    inspectScratchFile("model.safetensors", bytes)
    return 0
}
