@testable import Quantize
import Testing

/// The i-quant grids are expanded from gguf-py's packed tables; spot values from ggml's own tables
/// (`ggml-common.h`) make sure the expansion and the source agree with the C reference, not just
/// with gguf-py.
@Suite("ggml i-quant grids")
struct GGMLGridTests {
    @Test("sizes")
    func sizes() {
        #expect(IQGrids.iq2xxs.count == 256)
        #expect(IQGrids.iq2xs.count == 512)
        #expect(IQGrids.iq2s.count == 1024)
        #expect(IQGrids.iq3xxs.count == 256)
        #expect(IQGrids.iq3s.count == 512)
        #expect(IQGrids.iq1s.count == 2048)
    }

    @Test("spot values from ggml-common.h")
    func spotValues() {
        #expect(IQGrids.iq2xxs[0] == 0x0808_0808_0808_0808)
        #expect(IQGrids.iq2xxs[255] == 0x2b2b_2b19_0808_1908)
        #expect(IQGrids.iq2xs[1] == 0x0808_0808_0808_082b)
        #expect(IQGrids.iq2xs[511] == 0x2b2b_2b2b_2b2b_2b2b)
        #expect(IQGrids.iq2s[1] == 0x0808_0808_0808_082b)
        #expect(IQGrids.iq2s[1023] == 0x2b2b_2b2b_2b2b_2b2b)
        #expect(IQGrids.iq3xxs[5] == 0x0404_0c3e)
        #expect(IQGrids.iq3xxs[255] == 0x3e34_1c04)
        #expect(IQGrids.iq3s[4] == 0x0101_010f)
        #expect(IQGrids.iq3s[511] == 0x0f0f_0101)
        #expect(IQGrids.iq1s[0] == 0xffff_ffff_ffff_ffff)
        #expect(IQGrids.iq1s[1] == 0xffff_ffff_ffff_ff01)
        #expect(IQGrids.iq1s[2] == 0xffff_ffff_ffff_0000)
    }

    @Test("ksigns table has even parity, as ggml's ksigns_iq2xs")
    func ksigns() {
        #expect(ksignsIQ2XS.count == 128)
        #expect(ksignsIQ2XS.prefix(8) == [0, 129, 130, 3, 132, 5, 6, 135])
        #expect(ksignsIQ2XS.last == 255)
        #expect(ksignsIQ2XS.allSatisfy { $0.nonzeroBitCount % 2 == 0 })
    }
}
