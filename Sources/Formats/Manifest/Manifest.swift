public import TensorCore

/// Why a manifest could not be read.
public enum ManifestError: ClassifiedError, Hashable {
    case notAManifest
    case unsupportedVersion(Int)
    case badField(String)
    case duplicatePath(String)

    public var kind: ErrorKind {
        switch self {
        case .unsupportedVersion: .unsupported
        default: .malformedInput
        }
    }

    public var description: String {
        switch self {
        case .notAManifest: "not a wconv manifest (\"format\" is not \"wconv-manifest\")"
        case .unsupportedVersion(let v): "manifest format_version \(v) is newer than this wconv reads (\(Manifest.formatVersion))"
        case .badField(let what): "invalid manifest: \(what)"
        case .duplicatePath(let p): "invalid manifest: \"\(p)\" is listed twice"
        }
    }
}

/// The digest of one tensor, as stored in its file.
public struct ManifestTensor: Sendable, Hashable {
    public var name: String
    /// The encoding's name (`F32`, `BF16`, `Q4_K`, …).
    public var type: String
    public var shape: [Int]
    public var byteCount: Int
    public var sha256: String

    public init(name: String, type: String, shape: [Int], byteCount: Int, sha256: String) {
        self.name = name
        self.type = type
        self.shape = shape
        self.byteCount = byteCount
        self.sha256 = sha256
    }
}

/// The digest of one file.
public struct ManifestFile: Sendable, Hashable {
    /// Relative to the manifest's directory (`/`-separated), unless absolute paths were asked for.
    public var path: String
    public var byteCount: Int
    public var sha256: String
    /// Digests of the tensors inside, sorted by name; nil when not recorded.
    public var tensors: [ManifestTensor]?

    public init(path: String, byteCount: Int, sha256: String, tensors: [ManifestTensor]? = nil) {
        self.path = path
        self.byteCount = byteCount
        self.sha256 = sha256
        self.tensors = tensors
    }
}

/// The command that produced the outputs and the options it ran with.
public struct ManifestCommand: Sendable, Hashable {
    /// The subcommand (`convert`, `quantize`, …).
    public var name: String
    /// Its options as the command chooses to record them; machine-specific values (paths,
    /// thread counts) should be left out so the manifest stays the same from run to run.
    public var options: JSONObject

    public init(name: String, options: JSONObject = JSONObject()) {
        self.name = name
        self.options = options
    }
}

/// `wconv-manifest.json`: what produced a set of files, from which inputs, and the SHA-256 of
/// every file (and optionally every tensor). The schema is documented in docs/manifest.md.
///
/// Serialization is deterministic: keys sorted, files sorted by path, tensors by name, no
/// timestamps, host names or absolute paths unless asked for; the same files and command give
/// the same bytes on every machine.
public struct Manifest: Sendable, Hashable {
    /// The file name of a manifest written beside outputs.
    public static let fileName = "wconv-manifest.json"
    /// The value of the `format` key.
    public static let formatName = "wconv-manifest"
    /// The schema version this wconv writes and the newest it reads.
    public static let formatVersion = 1

    public var wconvVersion: String
    public var command: ManifestCommand?
    /// Free-form description of the quantization (or other transformation) applied.
    public var recipe: JSONValue?
    public var inputs: [ManifestFile]
    public var outputs: [ManifestFile]
    /// Top-level members this version does not model (such as `verify`, added by `wconv verify
    /// --record`), kept as read so a manifest that is rewritten (by `pack`) does not lose them.
    public var otherMembers = JSONObject()

    public init(wconvVersion: String, command: ManifestCommand? = nil, recipe: JSONValue? = nil,
                inputs: [ManifestFile] = [], outputs: [ManifestFile] = []) {
        self.wconvVersion = wconvVersion
        self.command = command
        self.recipe = recipe
        self.inputs = inputs
        self.outputs = outputs
    }

    /// Sorts files by the bytes of their paths and tensors by name, as serialization expects.
    public mutating func normalize() {
        inputs = Manifest.sorted(inputs)
        outputs = Manifest.sorted(outputs)
    }

    static func sorted(_ files: [ManifestFile]) -> [ManifestFile] {
        files.map { f in
            var f = f
            f.tensors = f.tensors?.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
            return f
        }.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    // MARK: JSON

    /// The manifest as a JSON value (key order is irrelevant: ``serialized()`` sorts keys).
    public var json: JSONValue {
        var m = self
        m.normalize()
        var root = JSONObject()
        root["format"] = .string(Manifest.formatName)
        root["format_version"] = .int(Int64(Manifest.formatVersion))
        root["wconv_version"] = .string(wconvVersion)
        if let command = m.command {
            root["command"] = .object(JSONObject([("name", .string(command.name)), ("options", .object(command.options))]))
        } else {
            root["command"] = .null
        }
        root["recipe"] = m.recipe ?? .null
        root["inputs"] = .array(m.inputs.map(Manifest.json(of:)))
        root["outputs"] = .array(m.outputs.map(Manifest.json(of:)))
        for (key, value) in otherMembers where root[key] == nil { root[key] = value }
        return .object(root)
    }

    static func json(of file: ManifestFile) -> JSONValue {
        var o = JSONObject()
        o["path"] = .string(file.path)
        o["bytes"] = .int(Int64(file.byteCount))
        o["sha256"] = .string(file.sha256)
        if let tensors = file.tensors {
            o["tensors"] = .array(tensors.map { t in
                .object(JSONObject([
                    ("name", .string(t.name)), ("type", .string(t.type)),
                    ("shape", .array(t.shape.map { .int(Int64($0)) })),
                    ("bytes", .int(Int64(t.byteCount))), ("sha256", .string(t.sha256)),
                ]))
            })
        }
        return .object(o)
    }

    /// The file's text: JSON with sorted keys and two-space indentation (Python's
    /// `json.dumps(indent=2, sort_keys=True)`), ending in a newline.
    public func serialized() -> String {
        json.serialized(.python(indent: 2, sortKeys: true)) + "\n"
    }

    /// Parses and validates a manifest.
    public init(json value: JSONValue) throws(ManifestError) {
        guard let root = value.objectValue else { throw .notAManifest }
        guard root["format"]?.stringValue == Manifest.formatName else { throw .notAManifest }
        guard let version = root["format_version"]?.intValue else { throw .badField("format_version is not an integer") }
        guard version <= Manifest.formatVersion, version >= 1 else { throw .unsupportedVersion(version) }
        guard let tool = root["wconv_version"]?.stringValue else { throw .badField("wconv_version is not a string") }
        wconvVersion = tool
        switch root["command"] {
        case nil, .null?:
            command = nil
        case .object(let c)?:
            guard let name = c["name"]?.stringValue else { throw .badField("command.name is not a string") }
            let options: JSONObject
            switch c["options"] {
            case nil, .null?: options = JSONObject()
            case .object(let o)?: options = o
            default: throw .badField("command.options is not an object")
            }
            command = ManifestCommand(name: name, options: options)
        default:
            throw .badField("command is not an object")
        }
        if let r = root["recipe"], !r.isNull { recipe = r } else { recipe = nil }
        inputs = try Manifest.files(root["inputs"], key: "inputs")
        outputs = try Manifest.files(root["outputs"], key: "outputs")
        for (key, value) in root where !Manifest.modelledMembers.contains(key) { otherMembers[key] = value }
    }

    static let modelledMembers: Set<String> = ["format", "format_version", "wconv_version", "command", "recipe", "inputs", "outputs"]

    /// Parses the bytes of a `wconv-manifest.json`.
    public init(bytes: UnsafeRawBufferPointer) throws {
        try self.init(json: try JSONParser.parse(bytes))
    }

    /// Reads and validates the manifest at `path`.
    public static func read(path: String) throws -> Manifest {
        let file = try MappedFile(path: path)
        return try withPath(path) { try Manifest(bytes: file.bytes) }
    }

    private static func files(_ value: JSONValue?, key: String) throws(ManifestError) -> [ManifestFile] {
        guard let value, !value.isNull else { return [] }
        guard let items = value.arrayValue else { throw .badField("\(key) is not an array") }
        var seen = Set<String>()
        var out: [ManifestFile] = []
        for (i, item) in items.enumerated() {
            guard let o = item.objectValue else { throw .badField("\(key)[\(i)] is not an object") }
            guard let path = o["path"]?.stringValue, !path.isEmpty, !path.utf8.contains(0) else {
                throw .badField("\(key)[\(i)].path is not a non-empty string")
            }
            guard let bytes = o["bytes"]?.intValue, bytes >= 0 else { throw .badField("\(key)[\(i)].bytes is not a size") }
            guard let sha = o["sha256"]?.stringValue, SHA256Hashing.isValidHex(sha) else {
                throw .badField("\(key)[\(i)].sha256 is not 64 lowercase hex digits")
            }
            guard seen.insert(path).inserted else { throw .duplicatePath(path) }
            var tensors: [ManifestTensor]?
            if let t = o["tensors"], !t.isNull {
                guard let list = t.arrayValue else { throw .badField("\(key)[\(i)].tensors is not an array") }
                tensors = try list.enumerated().map { (j, v) throws(ManifestError) in
                    let at = "\(key)[\(i)].tensors[\(j)]"
                    guard let t = v.objectValue, let name = t["name"]?.stringValue,
                          let size = t["bytes"]?.intValue, size >= 0,
                          let digest = t["sha256"]?.stringValue, SHA256Hashing.isValidHex(digest)
                    else { throw .badField("\(at) needs name, bytes and sha256") }
                    let type = t["type"]?.stringValue ?? ""
                    var shape: [Int] = []
                    if let dims = t["shape"]?.arrayValue {
                        for d in dims {
                            guard let n = d.intValue, n >= 0 else { throw .badField("\(at).shape is not a list of sizes") }
                            shape.append(n)
                        }
                    }
                    return ManifestTensor(name: name, type: type, shape: shape, byteCount: size, sha256: digest)
                }
            }
            out.append(ManifestFile(path: path, byteCount: bytes, sha256: sha, tensors: tensors))
        }
        return out
    }
}
