import Formats
import TensorCore
import Verify

/// `wconv verify --record`: the verification's result, added as an entry of the `verify` list of
/// the candidate's `wconv-manifest.json` (schema in docs/manifest.md, "Verification results").
///
/// The manifest is found and parsed before the evaluation starts, so a missing or broken one
/// costs no evaluation time. The rewrite keeps every other member of the manifest and uses the
/// manifest's own serialization (sorted keys, two-space indent), so a manifest wconv wrote keeps
/// its other bytes; it replaces the file atomically.
struct VerifyRecord {
    /// The manifest beside (or inside) the candidate.
    let manifestPath: String
    /// Its members, as read.
    let root: JSONObject
    /// The entry's `reference` object: name, kind and the SHA-256 of its files.
    let reference: JSONObject
    /// The entry's `options` object without the values only the report knows (ctx, thresholds).
    let options: JSONObject

    /// Finds and reads the candidate's manifest and hashes the reference. Throws exit 66 naming
    /// the expected path when there is no manifest, 65 when it is not a valid one.
    init(command: VerifyCommand) throws {
        let candidate = command.models[command.models.count - 1]
        let path = ProvenanceOptions.manifestPath(forOutput: candidate.hasSuffix("/") ? String(candidate.dropLast()) : candidate)
        guard FileSystem.exists(path) else {
            throw PathError(path: path, Failure(.missingInput,
                "no manifest to record the verification in (--record adds to the one quantize, convert or checksum writes beside CAND)"))
        }
        let file = try MappedFile(path: path)
        let value = try withPath(path) { () throws -> JSONValue in
            let value = try JSONParser.parse(file.bytes)
            _ = try Manifest(json: value)
            return value
        }
        guard let root = value.objectValue else { throw PathError(path: path, Failure(.malformedInput, "not a manifest")) }
        if let existing = root["verify"], existing.arrayValue == nil {
            throw PathError(path: path, Failure(.malformedInput, "its verify member is not a list"))
        }
        manifestPath = path
        self.root = root

        if let baseline = command.baseline {
            reference = JSONObject([("kind", "baseline"), ("name", .string(Self.name(baseline))),
                                    ("files", .array([try Self.fileEntry(baseline, name: Self.name(baseline))]))])
        } else {
            reference = JSONObject([("kind", "model"), ("name", .string(Self.name(command.models[0]))),
                                    ("files", .array(try Self.fileEntries(command.models[0])))])
        }
        var options = JSONObject()
        if let text = command.text {
            options["text"] = .object(try Self.fileEntry(text, name: Self.name(text)).objectValue ?? JSONObject())
        } else if let tokens = command.tokens {
            options["tokens"] = .object(try Self.fileEntry(tokens, name: Self.name(tokens)).objectValue ?? JSONObject())
        } else {
            // The bundled text, or the tokens stored in the baseline.
            options["text"] = command.baseline == nil ? "bundled" : "baseline"
        }
        options["chunks"] = command.chunks.map { .int(Int64($0)) } ?? .null
        self.options = options
    }

    /// The entry for `report`: the reference, the options, the summary statistics (the same
    /// values as the `--json` report's) and the wconv version.
    func entry(for report: VerifyReport) -> JSONValue {
        let full = report.json()
        var options = self.options
        options["ctx"] = full["context_length"] ?? .null
        options["thresholds"] = full["thresholds"] ?? .null
        var summary = JSONObject()
        for key in ["mean_kld", "median_kld", "p99_kld", "max_kld", "top1_agreement", "ppl_ref", "ppl_cand", "ppl_ratio",
                    "tokens_scored", "passed"] {
            summary[key] = full[key] ?? .null
        }
        return .object(JSONObject([("reference", .object(reference)), ("options", .object(options)),
                                   ("summary", .object(summary)), ("wconv_version", .string(WConvVersion.current))]))
    }

    /// Adds `report` to the manifest, replacing an earlier entry for a reference of the same
    /// name and kind; entries are kept sorted by reference name, then kind.
    func write(_ report: VerifyReport) throws {
        let new = entry(for: report)
        func key(_ e: JSONValue) -> (String, String) {
            (e["reference"]?["name"]?.stringValue ?? "", e["reference"]?["kind"]?.stringValue ?? "")
        }
        var entries = (root["verify"]?.arrayValue ?? []).filter { key($0) != key(new) }
        entries.append(new)
        entries.sort { a, b in
            let (x, y) = (key(a), key(b))
            return x.0 != y.0 ? x.0.utf8.lexicographicallyPrecedes(y.0.utf8) : x.1.utf8.lexicographicallyPrecedes(y.1.utf8)
        }
        var root = self.root
        root["verify"] = .array(entries)
        try writeText(JSONValue.object(root).serialized(.python(indent: 2, sortKeys: true)) + "\n", to: manifestPath, force: true)
    }

    static func name(_ path: String) -> String {
        FileSystem.baseName(path.hasSuffix("/") ? String(path.dropLast()) : path)
    }

    /// `{"path", "bytes", "sha256"}` of one file, recorded under `name`.
    static func fileEntry(_ path: String, name: String) throws -> JSONValue {
        let (bytes, sha256) = try SHA256Hashing.hexOfFile(at: path)
        return .object(JSONObject([("path", .string(name)), ("bytes", .int(Int64(bytes))), ("sha256", .string(sha256))]))
    }

    /// A file reference as its base name; a directory's files as `DIR/relative/path`, sorted, as
    /// provenance names inputs (no machine paths).
    static func fileEntries(_ path: String) throws -> [JSONValue] {
        guard FileSystem.isDirectory(path) else { return [try fileEntry(path, name: name(path))] }
        let files = try FileTree.entries(under: path).filter { !$0.isDirectory }
            .sorted { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        return try files.map { try fileEntry(FileSystem.join(path, $0.relativePath), name: name(path) + "/" + $0.relativePath) }
    }
}
