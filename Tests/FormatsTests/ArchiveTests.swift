import Foundation
import Testing
import TestSupport
@testable import Formats
import TensorCore

/// Hand-made tar streams, written independently of `TarHeader` so each checks the other.
enum RawTar {
    /// A ustar header block with any type flag; `checksumDelta` corrupts the stored checksum.
    static func header(_ name: String, type: Character = "0", size: Int = 0, link: String = "",
                       prefix: String = "", magic: String = "ustar\u{0}00", checksumDelta: Int = 0) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        func put(_ offset: Int, _ text: String) {
            for (i, c) in text.utf8.enumerated() { b[offset + i] = c }
        }
        func octal(_ offset: Int, _ width: Int, _ value: Int) {
            let s = String(value, radix: 8)
            put(offset, String(repeating: "0", count: width - 1 - s.count) + s)
        }
        put(0, name)
        octal(100, 8, 0o644)
        octal(108, 8, 0)
        octal(116, 8, 0)
        octal(124, 12, size)
        octal(136, 12, 0)
        b[156] = type.asciiValue!
        put(157, link)
        put(257, magic)
        octal(329, 8, 0)
        octal(337, 8, 0)
        put(345, prefix)
        for i in 148 ..< 156 { b[i] = 0x20 }
        let sum = b.reduce(0) { $0 + Int($1) } + checksumDelta
        let s = String(sum, radix: 8)
        put(148, String(repeating: "0", count: 6 - s.count) + s)
        b[154] = 0
        return b
    }

    /// A member: header, data, padding.
    static func member(_ name: String, _ data: [UInt8], type: Character = "0") -> [UInt8] {
        header(name, type: type, size: data.count) + data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    static func pax(_ records: [(String, String)], for name: String) -> [UInt8] {
        let body = records.flatMap { TarHeader.paxRecord(key: $0.0, value: $0.1) }
        return member("PaxHeaders/" + name, body, type: "x")
    }

    static let end = [UInt8](repeating: 0, count: 1024)

    /// Compresses `tar` into a new `.tar.zst` file and returns its path.
    static func archive(_ tar: [UInt8], in dir: String, name: String = "a.tar.zst") throws -> String {
        let path = dir + "/" + name
        let file = try OutputFile(path: path)
        let z = try ZstdCompressor(settings: ZstdSettings(level: 1, threads: 1), pledgedSize: nil, sink: file)
        try z.write(tar)
        try z.finish()
        try file.close()
        return path
    }
}

@Suite struct ArchiveTests {
    @Test func headersParseBack() throws {
        for (path, type, size) in [("config.json", TarEntryType.regular, 718), ("sub/dir", .directory, 0),
                                   (String(repeating: "n", count: 100), .regular, TarHeader.maxOctalSize)] {
            let block = TarHeader.encode(path: path, type: type, size: size)
            #expect(block.count == 512)
            let parsed = try block.withUnsafeBytes { try ParsedTarHeader(block: $0, offset: 0) }
            #expect(parsed.name == path && parsed.size == size && parsed.typeflag == type.rawValue && parsed.isPOSIX)
            // Same bytes as an independent ustar writer (mode differs for directories).
            if type == .regular { #expect(block == RawTar.header(path, size: size)) }
        }
        // ustar prefix field, GNU magic and signed checksums are understood.
        let prefixed = RawTar.header("file.bin", prefix: "a/b")
        #expect(try prefixed.withUnsafeBytes { try ParsedTarHeader(block: $0, offset: 0) }.name == "a/b/file.bin")
        let gnu = RawTar.header("x", magic: "ustar  \u{0}")
        #expect(try gnu.withUnsafeBytes { try ParsedTarHeader(block: $0, offset: 0) }.isPOSIX == false)
    }

    @Test func paxRecordsCountTheirOwnLength() throws {
        // Lengths that cross a digit boundary when the length itself is counted.
        for n in [1, 2, 3, 85, 86, 87, 88, 90, 95, 96, 97, 990, 991, 992, 995, 996, 997] {
            let value = String(repeating: "v", count: n)
            let record = TarHeader.paxRecord(key: "path", value: value)
            let text = String(decoding: record, as: UTF8.self)
            let declared = Int(text.split(separator: " ")[0])
            #expect(declared == record.count, "\(n)")
            let parsed = try ParsedTarHeader.paxRecords(record, offset: 0)
            #expect(parsed.count == 1 && parsed[0].0 == "path" && parsed[0].1 == value)
        }
        #expect(throws: ArchiveError.self) { try ParsedTarHeader.paxRecords(Array("5 a=b\n".utf8), offset: 0) }
        #expect(throws: ArchiveError.self) { try ParsedTarHeader.paxRecords(Array("99 path=x\n".utf8), offset: 0) }
    }

    @Test func longPathsAndHugeSizesGetPaxRecords() throws {
        let long = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 90)
        let blocks = TarHeader.blocks(path: long, type: .regular, size: 10)
        #expect(blocks.count == TarHeader.headerByteCount(path: long, size: 10))
        #expect(blocks.count == 3 * 512)
        #expect(blocks[156] == UInt8(ascii: "x"))
        let huge = TarHeader.blocks(path: "big", type: .regular, size: TarHeader.maxOctalSize + 1)
        #expect(huge.count == TarHeader.headerByteCount(path: "big", size: TarHeader.maxOctalSize + 1))
        // The reader applies both records to the next header.
        var events: [String] = []
        let reader = TarReader { e in
            if case .fileStart(let p, let s) = e { events.append("\(p):\(s)") }
        }
        try blocks.withUnsafeBytes { try reader.consume($0) }
        #expect(events == ["\(long):10"])
        let reader2 = TarReader(limits: TarLimits(maxTotalBytes: 1 << 30)) { _ in }
        #expect(throws: ArchiveError.tooLarge(path: "big", size: TarHeader.maxOctalSize + 1, limit: 1 << 30)) {
            try huge.withUnsafeBytes { try reader2.consume($0) }
        }
    }

    @Test func roundTripIsBitExact() throws {
        var files = TreeBuilder.sample()
        files["exactly-one-block"] = TreeBuilder.random(512, seed: 3)
        files[String(repeating: "long-directory-name-", count: 6) + "/" + String(repeating: "x", count: 110)] = TreeBuilder.random(1000, seed: 4)
        files["ünïcödé/名前.json"] = Array("{}".utf8)
        files["big.bin"] = TreeBuilder.random(9 << 20, seed: 5)   // several compression windows
        let input = try TreeBuilder.make(files)
        try FileManager.default.createDirectory(atPath: input + "/empty-dir", withIntermediateDirectories: true)
        let work = Fixtures.temporaryDirectory("wconv-archive")
        let archive = work + "/m.tar.zst"
        let packed = try ModelArchive.pack(input, to: archive, wconvVersion: "0.1.0",
                                           options: PackOptions(zstd: ZstdSettings(level: 3, threads: 2)))
        #expect(packed.files == files.count)
        #expect(packed.tarBytes % 10240 == 0)
        #expect(packed.compressedBytes == FileSystem.fileSize(archive))
        let out = work + "/unpacked"
        let unpacked = try ModelArchive.unpack(archive, to: out)
        #expect(unpacked.tarBytes == packed.tarBytes)
        #expect(unpacked.files == files.count)
        #expect(unpacked.manifest?.outputs.count == files.count)
        for (path, bytes) in files {
            #expect(try TreeBuilder.read(out + "/" + path) == bytes, "\(path)")
        }
        #expect(FileSystem.isDirectory(out + "/empty-dir"))
        #expect(try Manifest.read(path: out + "/" + Manifest.fileName) == packed.manifest)
        // What unpack wrote checks out against its manifest.
        #expect(try Manifest.read(path: out + "/" + Manifest.fileName).check(relativeTo: out).allSatisfy { $0.isOK })
    }

    @Test func sameBytesForAnyThreadCountAndAnyCopyOfTheInput() throws {
        var files = TreeBuilder.sample()
        files["weights.bin"] = TreeBuilder.random(6 << 20, seed: 6) + [UInt8](repeating: 7, count: 3 << 20)
        let a = try TreeBuilder.make(files)
        let b = try TreeBuilder.make(files)
        chmod(b + "/config.json", 0o600)
        var times = [timeval(tv_sec: 1_000_000, tv_usec: 0), timeval(tv_sec: 1_000_000, tv_usec: 0)]
        utimes(b + "/weights.bin", &times)
        let work = Fixtures.temporaryDirectory("wconv-determinism")
        for long in [false, true] {
            var outputs: [[UInt8]] = []
            for (i, (dir, threads)) in [(a, 1), (a, 2), (b, 3)].enumerated() {
                let path = work + "/\(long)-\(i).tar.zst"
                _ = try ModelArchive.pack(dir, to: path, wconvVersion: "0.1.0",
                                          options: PackOptions(zstd: ZstdSettings(level: 3, threads: threads, longDistanceMatching: long)))
                outputs.append(try TreeBuilder.read(path))
            }
            #expect(outputs[0] == outputs[1], "long \(long): 1 vs 2 threads")
            #expect(outputs[0] == outputs[2], "long \(long): another copy, 3 threads")
        }
    }

    @Test func packKeepsTheInputManifestAndRefusesOneThatDisagrees() throws {
        let dir = try TreeBuilder.make(TreeBuilder.sample())
        let recorded = try Manifest.record(wconvVersion: "0.0.9", command: ManifestCommand(name: "quantize", options: JSONObject([("nf4", true)])),
                                           recipe: .object(JSONObject([("method", "bitsandbytes")])), inputs: [], outputs: [dir],
                                           at: dir + "/" + Manifest.fileName)
        try Data("added later".utf8).write(to: URL(fileURLWithPath: dir + "/README.md"))
        let work = Fixtures.temporaryDirectory("wconv-pack-manifest")
        let report = try ModelArchive.pack(dir, to: work + "/a.tar.zst", wconvVersion: "0.1.0")
        #expect(report.keptInputManifest)
        #expect(report.manifest.command == recorded.command && report.manifest.recipe == recorded.recipe)
        #expect(report.manifest.wconvVersion == "0.0.9")
        #expect(report.manifest.outputs.map(\.path) == ["README.md"] + recorded.outputs.map(\.path))

        // Same size, different bytes: detected while streaming, and no archive is left.
        var blob = try TreeBuilder.read(dir + "/model.safetensors")
        blob[10] ^= 0xFF
        try Data(blob).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let differs = try #require(throws: PathError.self) { _ = try ModelArchive.pack(dir, to: work + "/b.tar.zst", wconvVersion: "0.1.0") }
        #expect(differs.kind == .checkFailed)
        #expect(differs.description.hasSuffix("model.safetensors: SHA-256 \(SHA256Hashing.hex(of: blob)), but wconv-manifest.json says \(recorded.outputs.first { $0.path == "model.safetensors" }!.sha256)"))
        #expect(!FileSystem.exists(work + "/b.tar.zst"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: work) == ["a.tar.zst"])
        // A listed file that is gone.
        try FileManager.default.removeItem(atPath: dir + "/tokenizer/vocab.txt")
        let error = try #require(throws: PathError.self) { _ = try ModelArchive.pack(dir, to: work + "/c.tar.zst", wconvVersion: "0.1.0") }
        #expect(error.description.contains("tokenizer/vocab.txt"))
        #expect(error.kind == .checkFailed)
    }

    @Test func singleFileInput() throws {
        let dir = try TreeBuilder.make(["model.gguf": TreeBuilder.random(3000, seed: 9)])
        let work = Fixtures.temporaryDirectory("wconv-single")
        let report = try ModelArchive.pack(dir + "/model.gguf", to: work + "/m.tar.zst", wconvVersion: "0.1.0")
        #expect(report.manifest.outputs.map(\.path) == ["model.gguf"])
        _ = try ModelArchive.unpack(work + "/m.tar.zst", to: work + "/out")
        #expect(try TreeBuilder.read(work + "/out/model.gguf") == TreeBuilder.read(dir + "/model.gguf"))
    }

    @Test func anArchiveInsideItsInputIsLeftOut() throws {
        let dir = try TreeBuilder.make(TreeBuilder.sample())
        let first = try ModelArchive.pack(dir, to: dir + "/self.tar.zst", wconvVersion: "0.1.0")
        let again = try ModelArchive.pack(dir, to: dir + "/self.tar.zst", wconvVersion: "0.1.0", options: PackOptions(force: true))
        #expect(first.manifest == again.manifest)
        #expect(!again.manifest.outputs.contains { $0.path == "self.tar.zst" })
    }

    @Test func byteRelayKeepsOrderAndStopsOnEitherSidesError() throws {
        struct Stop: Error, Equatable { let side: String }
        let data = TreeBuilder.random(5_000_000, seed: 12)
        final class Sink: @unchecked Sendable { var bytes: [UInt8] = []; var pieces = 0 }
        // Pieces of odd sizes, some larger than a slot: everything arrives, in order.
        let sink = Sink()
        try ByteRelay.run(produce: { push in
            var i = 0, step = 1
            while i < data.count {
                let n = min(data.count - i, step)
                try data[i ..< i + n].withUnsafeBytes { try push($0) }
                i += n
                step = step * 3 + 1
            }
        }, consume: { sink.bytes.append(contentsOf: $0) })
        #expect(sink.bytes == data)
        // The consumer fails: the producer is stopped and the consumer's error comes out.
        var pushed = 0
        let failing = Sink()
        #expect(throws: Stop(side: "consumer")) {
            try ByteRelay.run(produce: { push in
                for _ in 0 ..< 1000 {
                    try data[0 ..< 100_000].withUnsafeBytes { try push($0) }
                    pushed += 1
                }
            }, consume: { _ in
                failing.pieces += 1
                if failing.pieces == 3 { throw Stop(side: "consumer") }
            })
        }
        #expect(pushed < 1000)
        // The producer fails: what it pushed before is consumed, then its error comes out.
        let partial = Sink()
        #expect(throws: Stop(side: "producer")) {
            try ByteRelay.run(produce: { push in
                try data[0 ..< 10].withUnsafeBytes { try push($0) }
                throw Stop(side: "producer")
            }, consume: { partial.bytes.append(contentsOf: $0) })
        }
        #expect(partial.bytes == Array(data[0 ..< 10]))
    }

    // MARK: hostile archives

    /// Unpacks `tar` (compressed) and expects `check` to accept the error; nothing may remain.
    private func expectRefused(_ tar: [UInt8], raw: Bool = false, limits: TarLimits = TarLimits(),
                               sourceLocation: SourceLocation = #_sourceLocation,
                               _ check: (any Error) -> Bool) throws {
        let work = Fixtures.temporaryDirectory("wconv-hostile")
        let archive: String
        if raw {
            archive = work + "/a.tar.zst"
            try Data(tar).write(to: URL(fileURLWithPath: archive))
        } else {
            archive = try RawTar.archive(tar, in: work)
        }
        let out = work + "/out"
        do {
            _ = try ModelArchive.unpack(archive, to: out, options: UnpackOptions(limits: limits))
            Issue.record("archive was accepted", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
            #expect(error is PathError && "\(error)".hasPrefix(archive + ": "), "\(error)", sourceLocation: sourceLocation)
        }
        // Nothing left behind: neither the output nor its temporary directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: work) == ["a.tar.zst"], sourceLocation: sourceLocation)
    }

    private func underlying(_ e: any Error) -> any Error { (e as? PathError)?.underlying ?? e }

    @Test func pathTraversalIsRefused() throws {
        for name in ["../evil", "/etc/evil", "a/../../evil", "ok/../../../evil", "a//b", "./../x"] {
            try expectRefused(RawTar.member("fine.txt", [1]) + RawTar.member(name, Array("x".utf8)) + RawTar.end) {
                guard case ArchiveError.unsafePath = underlying($0) else { return false }
                return "\($0)".contains("unsafe path")
            }
        }
        // The same through a PAX path record and a GNU long name.
        try expectRefused(RawTar.pax([("path", "../../evil")], for: "x") + RawTar.member("x", [1]) + RawTar.end) {
            if case ArchiveError.unsafePath("../../evil") = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member("././@LongLink", Array("../evil\u{0}".utf8), type: "L") + RawTar.member("x", [1]) + RawTar.end) {
            if case ArchiveError.unsafePath("../evil") = underlying($0) { return true } else { return false }
        }
    }

    @Test func linksDevicesAndSparseFilesAreRefused() throws {
        for (type, what) in [("2", "links"), ("1", "links"), ("3", "device files"), ("4", "device files"), ("6", "FIFOs")] {
            try expectRefused(RawTar.member("dir", [], type: "5") + RawTar.header("dir/link", type: Character(type), link: "/etc/passwd")
                              + RawTar.end) {
                guard case ArchiveError.unsupportedType(_, let t) = underlying($0) else { return false }
                return t == what && (underlying($0) as? ArchiveError)?.kind == .unsupported
            }
        }
        try expectRefused(RawTar.pax([("GNU.sparse.major", "1")], for: "s") + RawTar.member("s", [1]) + RawTar.end) {
            if case ArchiveError.sparse = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member("v", [], type: "V") + RawTar.end) {
            if case ArchiveError.unsupportedType = underlying($0) { return true } else { return false }
        }
    }

    @Test func damagedOrTruncatedArchivesAreRefused() throws {
        let good = RawTar.member("a.bin", TreeBuilder.random(3000, seed: 1)) + RawTar.end
        // Bad header checksum.
        try expectRefused(RawTar.header("a.bin", size: 1, checksumDelta: 1) + [1] + [UInt8](repeating: 0, count: 511) + RawTar.end) {
            if case ArchiveError.badHeaderChecksum(offset: 0) = underlying($0) { return true } else { return false }
        }
        // Not a ustar header (v7 or garbage).
        try expectRefused(RawTar.header("a", magic: "xxxxxxxx") + RawTar.end) {
            if case ArchiveError.notUstar = underlying($0) { return true } else { return false }
        }
        // Tar stream cut inside a member, and one with no end marker.
        try expectRefused(Array(good[0 ..< 2000])) {
            guard case ArchiveError.truncated(let what) = underlying($0) else { return false }
            return what.contains("a.bin") && what.contains("1488 of 3000")
        }
        try expectRefused(Array(good[0 ..< 3584])) {
            if case ArchiveError.truncated = underlying($0) { return true } else { return false }
        }
        // The compressed file cut in half.
        let work = Fixtures.temporaryDirectory("wconv-cut")
        let whole = try TreeBuilder.read(try RawTar.archive(good, in: work))
        try expectRefused(Array(whole[0 ..< whole.count / 2]), raw: true) {
            (underlying($0) as? ZstdError)?.message.contains("truncated") == true
                || (underlying($0) as? ZstdError)?.kind == .malformedInput
        }
        // Not zstd at all, and an empty file.
        try expectRefused(Array("plain text, not zstd".utf8), raw: true) { underlying($0) is ZstdError }
        try expectRefused([], raw: true) { underlying($0) is ZstdError }
        // Data after the end marker.
        try expectRefused(good + [UInt8](repeating: 0, count: 512) + [1]) {
            if case ArchiveError.trailingData = underlying($0) { return true } else { return false }
        }
        // A bad number in the size field.
        var badSize = RawTar.header("a", size: 0)
        badSize[124] = UInt8(ascii: "9")
        try expectRefused(badSize + RawTar.end) {
            if case ArchiveError.badNumber(field: "chksum", _) = underlying($0) { return false }
            guard let e = underlying($0) as? ArchiveError else { return false }
            switch e {
            case .badNumber, .badHeaderChecksum: return true
            default: return false
            }
        }
    }

    @Test func hugeSizesAreRefusedBeforeWriting() throws {
        // Declares 8 GiB in an archive of a few bytes.
        try expectRefused(RawTar.header("huge.bin", size: TarHeader.maxOctalSize) + RawTar.end,
                          limits: TarLimits(maxTotalBytes: 1 << 30)) {
            if case ArchiveError.tooLarge(path: "huge.bin", _, _) = underlying($0) { return true } else { return false }
        }
        // The total counts too.
        try expectRefused(RawTar.member("a", [UInt8](repeating: 1, count: 700)) + RawTar.member("b", [UInt8](repeating: 1, count: 700)) + RawTar.end,
                          limits: TarLimits(maxTotalBytes: 1000)) {
            if case ArchiveError.tooLarge(path: "b", _, _) = underlying($0) { return true } else { return false }
        }
        // An oversized PAX header.
        try expectRefused(RawTar.header("PaxHeaders/x", type: "x", size: 1 << 30) + RawTar.end) {
            if case ArchiveError.tooLong = underlying($0) { return true } else { return false }
        }
    }

    @Test func randomDamageIsRefusedOrHarmlessNeverATrap() throws {
        // A valid stream with a PAX header, a directory and files; then many seeded mutations
        // (byte flips, cuts, splices), each fed in random-sized pieces.
        let long = String(repeating: "p", count: 130)
        let tar = TarHeader.blocks(path: "d", type: .directory, size: 0)
            + TarHeader.blocks(path: "d/" + long, type: .regular, size: 700) + TreeBuilder.random(700, seed: 1) + [UInt8](repeating: 0, count: 324)
            + RawTar.member("a.json", Array("{}".utf8)) + RawTar.end
        var rng = SplitMix64(seed: 42)
        var refused = 0
        for _ in 0 ..< 3000 {
            var bytes = tar
            switch rng.next() % 3 {
            case 0:
                for _ in 0 ..< 1 + Int(rng.next() % 4) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            case 1:
                bytes = Array(bytes[0 ..< Int(rng.next() % UInt64(bytes.count))])
            default:
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes.insert(contentsOf: TreeBuilder.random(Int(rng.next() % 600), seed: rng.next()), at: at)
            }
            let reader = TarReader(limits: TarLimits(maxTotalBytes: 1 << 20)) { event in
                if case .fileStart(let path, _) = event { #expect(FileTree.isSafeRelativePath(path)) }
            }
            do {
                var i = 0
                while i < bytes.count {
                    let n = min(bytes.count - i, 1 + Int(rng.next() % 700))
                    try bytes[i ..< i + n].withUnsafeBytes { try reader.consume($0) }
                    i += n
                }
                try reader.finish()
            } catch is ArchiveError {
                refused += 1
            }
        }
        #expect(refused > 1000)
    }

    @Test func duplicatesAndFileDirectoryClashesAreRefused() throws {
        try expectRefused(RawTar.member("a", [1]) + RawTar.member("a", [2]) + RawTar.end) {
            if case ArchiveError.duplicate("a") = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member("a", [1]) + RawTar.member("a/b", [2]) + RawTar.end) {
            if case ArchiveError.conflictingPath = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member("a", [1]) + RawTar.header("a", type: "5") + RawTar.end) {
            if case ArchiveError.conflictingPath = underlying($0) { return true } else { return false }
        }
    }

    @Test func manifestViolationsFailTheCheck() throws {
        let payload = TreeBuilder.random(2000, seed: 11)
        func manifest(_ files: [(String, [UInt8])]) -> [UInt8] {
            let m = Manifest(wconvVersion: "0.1.0", outputs: files.map {
                ManifestFile(path: $0.0, byteCount: $0.1.count, sha256: SHA256Hashing.hex(of: $0.1))
            })
            return Array(m.serialized().utf8)
        }
        // Accepted when everything matches (also with the manifest not first).
        let work = Fixtures.temporaryDirectory("wconv-manifest-ok")
        let ok = try RawTar.archive(RawTar.member("w.bin", payload) + RawTar.member(Manifest.fileName, manifest([("w.bin", payload)])) + RawTar.end, in: work)
        #expect(try ModelArchive.unpack(ok, to: work + "/out").manifest != nil)

        var tampered = payload
        tampered[5] ^= 1
        let m = RawTar.member(Manifest.fileName, manifest([("w.bin", payload)]))
        try expectRefused(m + RawTar.member("w.bin", tampered) + RawTar.end) {
            guard case ArchiveError.digestMismatch(path: "w.bin", _, _) = underlying($0) else { return false }
            return (underlying($0) as? ArchiveError)?.kind == .checkFailed
        }
        // Tampered member before the manifest: found when the manifest arrives.
        try expectRefused(RawTar.member("w.bin", tampered) + m + RawTar.end) {
            if case ArchiveError.digestMismatch(path: "w.bin", _, _) = underlying($0) { return true } else { return false }
        }
        try expectRefused(m + RawTar.member("w.bin", payload + [0]) + RawTar.end) {
            if case ArchiveError.sizeDiffersFromManifest(path: "w.bin", _, _) = underlying($0) { return true } else { return false }
        }
        try expectRefused(m + RawTar.member("w.bin", payload) + RawTar.member("extra", [1]) + RawTar.end) {
            if case ArchiveError.notInManifest("extra") = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member(Manifest.fileName, manifest([("w.bin", payload), ("gone.bin", [1])])) + RawTar.member("w.bin", payload) + RawTar.end) {
            if case ArchiveError.missingFromArchive(["gone.bin"]) = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member(Manifest.fileName, manifest([("../w.bin", payload)])) + RawTar.end) {
            if case ArchiveError.badManifest = underlying($0) { return true } else { return false }
        }
        try expectRefused(RawTar.member(Manifest.fileName, Array("{not json".utf8)) + RawTar.end) {
            if case ArchiveError.badManifest = underlying($0) { return true } else { return false }
        }
        // No manifest: accepted unless one is required.
        let plain = try RawTar.archive(RawTar.member("w.bin", payload) + RawTar.end, in: Fixtures.temporaryDirectory("wconv-plain"))
        #expect(throws: PathError.self) {
            _ = try ModelArchive.unpack(plain, to: FileSystem.directoryName(plain) + "/o", options: UnpackOptions(requireManifest: true))
        }
        #expect(try ModelArchive.unpack(plain, to: FileSystem.directoryName(plain) + "/o2").manifest == nil)
    }

    @Test func existingOutputIsKeptWithoutForce() throws {
        let work = Fixtures.temporaryDirectory("wconv-existing")
        let archive = try RawTar.archive(RawTar.member("a", [1]) + RawTar.end, in: work)
        try FileManager.default.createDirectory(atPath: work + "/out", withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: work + "/out/keep"))
        #expect(throws: PathError.self) { _ = try ModelArchive.unpack(archive, to: work + "/out") }
        #expect(try TreeBuilder.read(work + "/out/keep") == Array("mine".utf8))
        _ = try ModelArchive.unpack(archive, to: work + "/out", options: UnpackOptions(force: true))
        #expect(!FileSystem.exists(work + "/out/keep") && FileSystem.exists(work + "/out/a"))
    }
}
