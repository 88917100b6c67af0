// Fuzz target: config.json (and any JSON document: the parser is json-c behind JSONParser).
//
// Reads every typed accessor of HFConfig the converters use, the bitsandbytes
// quantization_config block, and checks that what the JSON writer produces parses back to the
// same value in each output style.
import Formats
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    roundTrip(value)
    guard case .object(let object) = value else { return 0 }
    let config = HFConfig(object)
    _ = try? config.architectures
    _ = try? config.architecture
    _ = try? config.modelType
    _ = try? config.vocabSize
    _ = try? config.hiddenSize
    _ = try? config.intermediateSize
    _ = try? config.numHiddenLayers
    _ = try? config.numAttentionHeads
    _ = try? config.numKeyValueHeads
    _ = try? config.headDim
    _ = try? config.maxPositionEmbeddings
    _ = try? config.rmsNormEps
    _ = try? config.ropeTheta
    _ = try? config.ropeScaling
    _ = try? config.tieWordEmbeddings
    _ = try? config.bosTokenId
    _ = try? config.eosTokenIds
    _ = try? config.torchDTypeName
    _ = try? config.torchDType
    if let q = config.quantizationConfig, let bnb = try? BNBQuantizationConfig(q) {
        _ = bnb.summary
        _ = bnb.fourBitType
        roundTrip(.object(bnb.json))
    }
    return 0
}

/// Serializing then parsing gives the value back (non-finite numbers aside: Python writes them as
/// NaN/Infinity, which is not JSON, and json-c reads 1e999 as infinity).
private func roundTrip(_ value: JSONValue) {
    guard allFinite(value) else { return }
    for style in [JSONStyle.compact, .python(indent: 2, sortKeys: false), .pythonInline(sortKeys: false)] {
        let text = value.serialized(style)
        let back: JSONValue
        do { back = try JSONParser.parse(text) } catch {
            require(false, "serialized JSON does not parse (\(style)): \(error)\n\(text.prefix(400))")
            return
        }
        require(back == value, "JSON changed through serialize + parse (\(style)):\n\(text.prefix(400))")
    }
}
