public import TensorCore

/// How an output was made, recorded inside it (GGUF metadata, safetensors `__metadata__`) and
/// beside it (`wconv-manifest.json`): the wconv version, the command and its options, the
/// recipe, and the SHA-256 of every input file. Keys and formats are documented in
/// docs/manifest.md ("Provenance inside outputs").
///
/// Everything recorded is independent of the machine and of the run: inputs are named by the
/// base name of the path given on the command line (plus the path inside it for a directory),
/// options leave out paths and thread counts, and there is no timestamp, so the same inputs and
/// options give the same output bytes anywhere.
public struct Provenance: Sendable, Hashable {
    /// Prefix of the GGUF keys (`general.wconv.version`, …), in gguf-py's `general.*`
    /// namespace; llama.cpp and gguf-py keep unknown `general.*` keys without reading them.
    public static let ggufPrefix = "general.wconv."
    /// Prefix of the safetensors `__metadata__` keys (`wconv.version`, …).
    public static let safetensorsPrefix = "wconv."

    /// One input file: its recorded name and digest, and where it is on this machine (used only
    /// to write the manifest's relative path, never recorded inside an output).
    public struct Input: Sendable, Hashable {
        /// Base name of the command-line path, then `/` and the path inside it for a directory.
        public var name: String
        public var byteCount: Int
        public var sha256: String
        /// Absolute, directories resolved.
        public var canonicalPath: String
    }

    public var wconvVersion: String
    public var command: ManifestCommand
    public var recipe: JSONValue?
    /// Sorted by the bytes of ``Input/name``.
    public var inputs: [Input]

    public init(wconvVersion: String, command: ManifestCommand, recipe: JSONValue?, inputs: [Input]) {
        self.wconvVersion = wconvVersion
        self.command = command
        self.recipe = recipe
        self.inputs = inputs.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    /// Hashes every input (files, or directories with every file below them) and returns the
    /// provenance of a command about to run on them.
    /// - Parameter hashing: false lists the inputs without reading them and records 64 zeros as
    ///   each digest: the same length, so a `--dry-run` plans the exact output size quickly.
    public static func make(wconvVersion: String, command: ManifestCommand, recipe: JSONValue?,
                            inputs paths: [String], threads: Int = activeProcessorCount, hashing: Bool = true) throws -> Provenance {
        var inputs: [Input] = []
        var seen = Set<String>()
        for path in paths {
            guard FileSystem.exists(path) else { throw PathError(path: path, FileAccessError.notFound) }
            let canonical = try FileTree.canonicalPath(path)
            // Relative to the parent, so a file is its base name and a directory's files
            // start with the directory's base name.
            let parent = FileSystem.directoryName(canonical)
            if !hashing {
                for f in try Manifest.expand([path], excluding: nil) where seen.insert(f.canonical).inserted {
                    let name = FileTree.relativePath(from: parent.isEmpty ? "/" : parent, to: f.canonical)
                    inputs.append(Input(name: name, byteCount: f.byteCount, sha256: String(repeating: "0", count: 64),
                                        canonicalPath: f.canonical))
                }
                continue
            }
            let manifest = try Manifest.make(wconvVersion: wconvVersion, command: nil, recipe: nil,
                                             inputs: [path], outputs: [], relativeTo: parent.isEmpty ? "/" : parent,
                                             options: ManifestOptions(threads: threads))
            for f in manifest.inputs {
                let full = parent == "/" ? "/" + f.path : FileSystem.join(parent, f.path)
                if seen.insert(full).inserted {
                    inputs.append(Input(name: f.path, byteCount: f.byteCount, sha256: f.sha256, canonicalPath: full))
                }
            }
        }
        return Provenance(wconvVersion: wconvVersion, command: command, recipe: recipe, inputs: inputs)
    }

    /// `{"name": …, "options": {…}}` on one line, keys sorted.
    public var commandText: String {
        JSONValue.object(JSONObject([("name", .string(command.name)), ("options", .object(command.options))]))
            .serialized(.pythonInline(sortKeys: true))
    }

    /// The recipe on one line, keys sorted; nil when there is none.
    public var recipeText: String? { recipe.map { $0.serialized(.pythonInline(sortKeys: true)) } }

    /// One `sha256sum` line per input: 64 hex digits, two spaces, the name.
    public var inputLines: [String] { inputs.map { "\($0.sha256)  \($0.name)" } }

    /// The GGUF entries: `general.wconv.version`, `.command`, `.recipe` (when there is one) as
    /// strings, and `general.wconv.inputs` as an array of `sha256sum` lines.
    public var ggufEntries: [GGUFKeyValue] {
        var entries = [GGUFKeyValue(Self.ggufPrefix + "version", .string(wconvVersion)),
                       GGUFKeyValue(Self.ggufPrefix + "command", .string(commandText))]
        if let recipeText { entries.append(GGUFKeyValue(Self.ggufPrefix + "recipe", .string(recipeText))) }
        entries.append(GGUFKeyValue(Self.ggufPrefix + "inputs", .array(.string(GGUFStringList(inputLines)))))
        return entries
    }

    /// The safetensors `__metadata__` entries (strings only): `wconv.version`, `.command`,
    /// `.recipe` (when there is one) and `wconv.inputs`, the `sha256sum` lines joined by `\n`.
    public var safetensorsMetadata: [(key: String, value: String)] {
        var entries: [(key: String, value: String)] = [(Self.safetensorsPrefix + "version", wconvVersion),
                                                       (Self.safetensorsPrefix + "command", commandText)]
        if let recipeText { entries.append((Self.safetensorsPrefix + "recipe", recipeText)) }
        entries.append((Self.safetensorsPrefix + "inputs", inputLines.joined(separator: "\n")))
        return entries
    }

    /// transformers' `{"format": "pt"}`, followed by the provenance entries when there are any.
    public static func safetensorsMetadata(_ provenance: Provenance?) -> [(key: String, value: String)] {
        [("format", "pt")] + (provenance?.safetensorsMetadata ?? [])
    }

    /// Hashes `outputs` (files or directories) and writes the manifest at `manifestPath`, with
    /// the inputs' digests computed by ``make(wconvVersion:command:recipe:inputs:threads:)``
    /// (not hashed again) under paths relative to the manifest's directory.
    @discardableResult
    public func writeManifest(outputs: [String], at manifestPath: String, options: ManifestOptions) throws -> Manifest {
        let directory = FileSystem.directoryName(manifestPath)
        var manifest = try Manifest.make(wconvVersion: wconvVersion, command: command, recipe: recipe,
                                         inputs: [], outputs: outputs, relativeTo: directory,
                                         excluding: manifestPath, options: options)
        let base = try FileTree.canonicalDirectory(directory)
        manifest.inputs = inputs.map { input in
            ManifestFile(path: options.absolutePaths ? input.canonicalPath : FileTree.relativePath(from: base, to: input.canonicalPath),
                         byteCount: input.byteCount, sha256: input.sha256)
        }
        manifest.normalize()
        try manifest.write(to: manifestPath, force: options.force)
        return manifest
    }
}

extension GGUFMetadata {
    /// Replaces any `general.wconv.*` entries (from the input's own provenance) with those of
    /// `provenance`, appended at the end.
    public mutating func setProvenance(_ provenance: Provenance) {
        for key in keys where key.hasPrefix(Provenance.ggufPrefix) { remove(key) }
        for entry in provenance.ggufEntries { set(entry.key, entry.value) }
    }
}
