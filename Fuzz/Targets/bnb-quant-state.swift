// Fuzz target: the bitsandbytes quant-state JSON stored in `<weight>.quant_state.bitsandbytes__<type>`.
//
// Parses the state and computes every size the checkpoint layout and the dequantizer derive from
// it (packed bytes, absmax blocks, nested blocks), as BNBCheckpointLayout does for each weight.
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    guard let state = try? BNBQuantState.parse(bytes, tensor: "w.quant_state.bitsandbytes__nf4") else { return 0 }
    require(state.blockSize > 0, "block size \(state.blockSize)")
    let n = state.elementCount
    require(n >= 0, "element count \(n)")
    let blocks = state.blockCount
    let expectedBlocks = n / state.blockSize + (n % state.blockSize == 0 ? 0 : 1)
    require(blocks == expectedBlocks, "block count \(blocks) for \(n) elements in blocks of \(state.blockSize)")
    let packed = state.packedByteCount
    require(packed == n / 2 + n % 2, "packed byte count \(packed) for \(n) elements")
    if let nested = state.nestedBlockCount {
        require(nested >= 0, "nested block count \(nested)")
    }
    _ = state.summary
    return 0
}
