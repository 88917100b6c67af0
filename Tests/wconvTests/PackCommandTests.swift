import Foundation
import Testing
import TestSupport

/// `wconv pack` / `wconv unpack` against GNU tar and the zstd command line.
@Suite struct PackCommandTests {
    static let tools = FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd")
        && FileManager.default.isExecutableFile(atPath: "/bin/tar")

    /// Runs `sh -c script`; returns status, stdout and stderr.
    @discardableResult
    static func shell(_ script: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    static func files(under dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: dir)
        while let rel = e?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + rel))
            }
        }
        return out
    }

    @Test(.enabled(if: tools)) func tarAndZstdReadOurArchive() throws {
        let work = Fixtures.temporaryDirectory("wconv-pack")
        let model = Fixtures.path("tiny-llama-spm")
        let archive = work + "/m.tar.zst"
        let r = try CLI.run(["pack", model, "-o", archive])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("packed 7 files") && r.stderr.contains("ratio ") && r.stderr.contains("MB/s"))
        let list = try Self.shell("zstd -dc '\(archive)' | tar -tv")
        #expect(list.status == 0, "\(list.stderr)")
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.first?.hasSuffix(" wconv-manifest.json") == true)
        #expect(lines.count == 8)
        #expect(lines.allSatisfy { $0.hasPrefix("-rw-r--r-- 0/0") && $0.contains("1970-01-01 00:00") })
        #expect(lines.dropFirst().map { String($0.split(separator: " ").last!) }
            == ["config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
                "tokenizer.json", "tokenizer.model", "tokenizer_config.json"])
        // zstd's own integrity test, and GNU tar extracts exactly the input files.
        #expect(try Self.shell("zstd -tq '\(archive)'").status == 0)
        let extracted = work + "/tar-x"
        try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
        let x = try Self.shell("zstd -dc '\(archive)' | tar -x -C '\(extracted)'")
        #expect(x.status == 0, "\(x.stderr)")
        var got = try Self.files(under: extracted)
        #expect(got.removeValue(forKey: "wconv-manifest.json") != nil)
        #expect(got == (try Self.files(under: model)))
        // The manifest inside checks out where tar put it.
        #expect(try CLI.run(["checksum", "--check", extracted]).status == 0)
    }

    @Test(.enabled(if: tools)) func roundTripAndSameBytesForAnyThreadCount() throws {
        let work = Fixtures.temporaryDirectory("wconv-pack-threads")
        let model = Fixtures.path("tiny-llama-spm")
        var archives: [Data] = []
        for (i, args) in [["--threads", "1"], ["--threads", "2"], ["--threads", "1", "--long"], ["--threads", "2", "--long"]].enumerated() {
            let out = work + "/\(i).tar.zst"
            let r = try CLI.run(["pack", model, "-o", out] + args)
            #expect(r.status == 0, "\(r.stderr)")
            archives.append(try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        #expect(archives[0] == archives[1])
        #expect(archives[2] == archives[3])
        let level = work + "/l19.tar.zst"
        #expect(try CLI.run(["pack", model, "-o", level, "--level", "19"]).status == 0)

        let out = work + "/unpacked"
        let u = try CLI.run(["unpack", work + "/1.tar.zst", "-o", out, "--json"])
        #expect(u.status == 0, "\(u.stderr)")
        #expect(u.stderr.contains("all 7 verified against wconv-manifest.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(u.stdout.utf8)) as? [String: Any])
        #expect(json["verified"] as? Bool == true && json["files"] as? Int == 7)
        var got = try Self.files(under: out)
        #expect(got.removeValue(forKey: "wconv-manifest.json") != nil)
        #expect(got == (try Self.files(under: model)))
        // Existing output: refused (73) and kept.
        #expect(try CLI.run(["unpack", work + "/1.tar.zst", "-o", out]).status == 73)
        #expect(try CLI.run(["pack", model, "-o", level]).status == 73)
    }

    @Test(.enabled(if: tools)) func unpacksWhatTarAndZstdMade() throws {
        let work = Fixtures.temporaryDirectory("wconv-foreign")
        let model = Fixtures.path("tiny-llama-spm")
        // Plain pax tar with GNU tar's own extended headers (atime, ctime), no manifest.
        let archive = work + "/plain.tar.zst"
        let made = try Self.shell("tar --format=pax -C '\(model)' -c . | zstd -q -T2 -3 -o '\(archive)'")
        #expect(made.status == 0, "\(made.stderr)")
        let r = try CLI.run(["unpack", archive, "-o", work + "/plain"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("no wconv-manifest.json in the archive"))
        #expect(try Self.files(under: work + "/plain") == (try Self.files(under: model)))
        #expect(try CLI.run(["unpack", archive, "-o", work + "/strict", "--require-manifest"]).status == 65)
        #expect(!FileManager.default.fileExists(atPath: work + "/strict"))

        // A directory with a manifest made by `wconv checksum`, archived by tar + zstd --long:
        // the manifest is not the first member, and is still checked.
        let copy = work + "/copy"
        try FileManager.default.copyItem(atPath: model, toPath: copy)
        #expect(try CLI.run(["checksum", copy]).status == 0)
        let withManifest = work + "/with-manifest.tar.zst"
        #expect(try Self.shell("tar --format=pax -C '\(copy)' -c . | zstd -q --long -o '\(withManifest)'").status == 0)
        let v = try CLI.run(["unpack", withManifest, "-o", work + "/verified"])
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stderr.contains("all 7 verified"))
        // A GNU-format archive (ustar with GNU magic) too.
        let gnu = work + "/gnu.tar.zst"
        #expect(try Self.shell("tar --format=gnu -C '\(model)' -c . | zstd -q -o '\(gnu)'").status == 0)
        #expect(try CLI.run(["unpack", gnu, "-o", work + "/gnu"]).status == 0)
    }

    @Test(.enabled(if: tools)) func hostileArchivesAreRefusedWithNothingLeft() throws {
        let work = Fixtures.temporaryDirectory("wconv-hostile-cli")
        try FileManager.default.createDirectory(atPath: work + "/src", withIntermediateDirectories: true)
        try Data("payload".utf8).write(to: URL(fileURLWithPath: work + "/src/file.txt"))
        try FileManager.default.createSymbolicLink(atPath: work + "/src/link", withDestinationPath: "/etc/passwd")
        // A symbolic link, as tar stores it.
        #expect(try Self.shell("tar --format=pax -C '\(work)/src' -c file.txt link | zstd -q -o '\(work)/link.tar.zst'").status == 0)
        let link = try CLI.run(["unpack", work + "/link.tar.zst", "-o", work + "/out"])
        #expect(link.status == 69)
        #expect(link.stderr == "error: \(work)/link.tar.zst: member \"link\": links are not extracted (only regular files and directories)\n")
        // An absolute path (tar -P keeps it).
        #expect(try Self.shell("tar --format=pax -P -c '\(work)/src/file.txt' | zstd -q -o '\(work)/abs.tar.zst'").status == 0)
        let abs = try CLI.run(["unpack", work + "/abs.tar.zst", "-o", work + "/out"])
        #expect(abs.status == 65)
        #expect(abs.stderr.contains("unsafe path"))
        // A path with '..' (tar's --transform writes what it is told).
        #expect(try Self.shell("tar --format=pax -C '\(work)/src' --transform 's,^,../,' -c file.txt | zstd -q -o '\(work)/dotdot.tar.zst'").status == 0)
        let dotdot = try CLI.run(["unpack", work + "/dotdot.tar.zst", "-o", work + "/out"])
        #expect(dotdot.status == 65)
        #expect(dotdot.stderr.contains("member \"../file.txt\": unsafe path"))
        // Truncated archive.
        let model = Fixtures.path("tiny-llama-spm")
        #expect(try CLI.run(["pack", model, "-o", work + "/good.tar.zst"]).status == 0)
        #expect(try Self.shell("head -c 50000 '\(work)/good.tar.zst' > '\(work)/cut.tar.zst'").status == 0)
        let cut = try CLI.run(["unpack", work + "/cut.tar.zst", "-o", work + "/out"])
        #expect(cut.status == 65)
        #expect(cut.stderr.contains("truncated"))
        // A member changed inside a well-formed archive: exit 1, nothing extracted.
        let tampered = work + "/tampered"
        try FileManager.default.createDirectory(atPath: tampered, withIntermediateDirectories: true)
        #expect(try Self.shell("zstd -dc '\(work)/good.tar.zst' | tar -x -C '\(tampered)'").status == 0)
        try Data("{\"changed\": true}".utf8).write(to: URL(fileURLWithPath: tampered + "/generation_config.json"))
        #expect(try Self.shell("tar --format=pax -C '\(tampered)' -c wconv-manifest.json config.json generation_config.json | zstd -q -o '\(work)/bad.tar.zst'").status == 0)
        let bad = try CLI.run(["unpack", work + "/bad.tar.zst", "-o", work + "/out"])
        #expect(bad.status == 1, "\(bad.stderr)")
        #expect(bad.stderr.contains("generation_config.json"))
        // Never anything left: no output and no temporary directory.
        let left = try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.contains("out") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func usageErrors() throws {
        let model = Fixtures.path("tiny-llama-spm")
        #expect(try CLI.run(["pack", model]).status == 64)
        #expect(try CLI.run(["pack", model, "-o", "scratch/x.tar.zst", "--level", "99"]).status == 64)
        #expect(try CLI.run(["pack", model, "-o", "scratch/x.tar.zst", "--threads", "0"]).status == 64)
        #expect(try CLI.run(["unpack", "x.tar.zst", "-o", "scratch/x", "--max-size", "lots"]).status == 64)
        #expect(try CLI.run(["pack", "/nonexistent/model", "-o", "scratch/never.tar.zst"]).status == 66)
        #expect(try CLI.run(["unpack", "/nonexistent/m.tar.zst", "-o", "scratch/never"]).status == 66)
    }
}
