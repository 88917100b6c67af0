import Foundation
import Testing
import TestSupport

/// Every case of testdata/malformed/expected.json, run with the built binary: the exit code, a
/// single `error: <path>: …` line containing the expected fragment, no output and no temporary
/// file left behind, and the input unchanged.
@Suite("Faults: the malformed-input corpus")
struct FaultMalformedCorpusTests {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        let path: String
        let command: [String]
        let exit: Int32
        let error: String
        let what: String
        let input: String?
        let output: String?
        let base: String?
        let replaces: String?
        let stdout: String?
        let derive: Derive?
        var testDescription: String { path }
    }

    struct Derive: Decodable, Sendable {
        let from: String
        let truncate: Double?
        let tensorType: TensorType?
    }

    struct TensorType: Decodable, Sendable {
        let tensor: String
        let type: UInt32
    }

    static let cases: [Case] = {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: Fixtures.path("malformed/expected.json"))),
              let root = try? JSONDecoder().decode([String: [Case]].self, from: data) else { return [] }
        return root["cases"] ?? []
    }()

    @Test func corpusIsPresent() {
        #expect(Self.cases.count > 100)
        #expect(Set(Self.cases.map(\.exit)) == [0, 65, 66, 69])
    }

    @Test(arguments: cases)
    func reportsTheExpectedError(_ item: Case) throws {
        let work = Fixtures.temporaryDirectory("wconv-malformed")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let input = try prepareInput(item, in: work)
        let before = try Fault.snapshot(input)
        let outputDirectory = work + "/out-dir"
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        var arguments = [item.command[0], input]
        if let name = item.output { arguments += ["-o", outputDirectory + "/" + name] }
        arguments += item.command.dropFirst()

        let r = try CLI.run(arguments)
        #expect(r.status == item.exit, "\(item.path): \(r.stderr)")
        if item.exit == 0 {
            if let text = item.stdout { #expect(r.stdout.contains(text), "\(item.path): \(r.stdout)") }
        } else {
            #expect(r.stderr.hasPrefix("error: "), "\(item.path): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n", omittingEmptySubsequences: false).count == 2, "\(item.path): not one line: \(r.stderr)")
            #expect(r.stderr.contains(item.error), "\(item.path): \(r.stderr)")
            // Nothing written: no output, no temporary file.
            #expect(try FileManager.default.contentsOfDirectory(atPath: outputDirectory).isEmpty,
                    "\(item.path): left \((try? FileManager.default.contentsOfDirectory(atPath: outputDirectory)) ?? [])")
        }
        #expect(try Fault.snapshot(input) == before, "\(item.path): input changed")
    }

    /// The path the command gets: the stored file, its model directory, a copy of a fixture
    /// directory with one file replaced, or a file derived from a valid fixture.
    func prepareInput(_ item: Case, in work: String) throws -> String {
        let fm = FileManager.default
        if let derive = item.derive {
            var bytes = try Fixtures.data(derive.from)
            if let fraction = derive.truncate { bytes = Array(bytes.prefix(Int(Double(bytes.count) * fraction))) }
            if let change = derive.tensorType { try setTensorType(&bytes, tensor: change.tensor, to: change.type) }
            let path = work + "/" + (derive.from as NSString).lastPathComponent
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        if let base = item.base, let replaces = item.replaces {
            let dir = work + "/model"
            try fm.copyItem(atPath: Fixtures.path(base), toPath: dir)
            try? fm.removeItem(atPath: dir + "/" + replaces)
            try fm.copyItem(atPath: Fixtures.path("malformed/" + item.path), toPath: dir + "/" + replaces)
            return dir
        }
        return Fixtures.path("malformed/" + (item.input ?? item.path))
    }

    /// Rewrites the ggml type id in a GGUF tensor info, found by its name (v3, header as written
    /// by gguf-py: the name is preceded by its u64 length and followed by n_dims, ne[], type).
    func setTensorType(_ bytes: inout [UInt8], tensor: String, to type: UInt32) throws {
        let name = Array(tensor.utf8)
        var length = UInt64(name.count).littleEndian
        let needle = withUnsafeBytes(of: &length) { Array($0) } + name
        guard let start = (0 ... bytes.count - needle.count).first(where: { bytes[$0 ..< $0 + needle.count].elementsEqual(needle) }) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        let dims = Int(bytes[start + needle.count])
        let typeOffset = start + needle.count + 4 + 8 * dims
        withUnsafeBytes(of: type.littleEndian) { bytes.replaceSubrange(typeOffset ..< typeOffset + 4, with: $0) }
    }
}
