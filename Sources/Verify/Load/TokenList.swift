public import TensorCore
public import Formats

/// Token ids given as a file, for `--tokens FILE.json`.
public enum TokenList {
    /// Reads a JSON array of token ids, or an object whose `tokens` member is one (the form of
    /// `testdata/golden/*.tokens.json`).
    /// - Throws: ``PathError`` wrapping a file or JSON error, or `Failure(.malformedInput)` when
    ///   the JSON holds something else or an id is negative.
    public static func read(path: String) throws -> [Int] {
        let json = try withPath(path) { try JSONParser.parse(try FileSystem.readFile(path)) }
        return try withPath(path) { try parse(json) }
    }

    /// The ids of a parsed token file (see ``read(path:)``).
    public static func parse(_ json: JSONValue) throws -> [Int] {
        let list: [JSONValue]
        if let array = json.arrayValue {
            list = array
        } else if let array = json["tokens"]?.arrayValue {
            list = array
        } else {
            throw Failure(.malformedInput, "expected a JSON array of token ids or an object with a \"tokens\" array")
        }
        return try list.enumerated().map { i, value in
            guard let id = value.intValue, id >= 0 else {
                throw Failure(.malformedInput, "token \(i) is not a non-negative integer")
            }
            return id
        }
    }
}
