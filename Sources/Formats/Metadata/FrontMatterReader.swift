/// A small YAML reader for model-card front matter, following PyYAML's scanner where the two can
/// differ (scalar folding, block-scalar chomping, YAML 1.1 scalar types).
///
/// It works line by line for block structure and with a cursor across lines for flow collections
/// and quoted scalars. Every line ends in "\n" (gguf-py joins the lines and appends one) and has
/// no tabs (gguf-py turns them into spaces).
struct FrontMatterReader {
    private var lines: [Substring]
    /// Leading spaces of each line; a sequence item's inline content moves it (see `parseSequenceItem`).
    private var indents: [Int]
    private var row = 0
    /// Open collections; hostile nesting stops at ``maximumDepth`` instead of exhausting the stack.
    private var depth = 0
    /// Line number of text after a "..." document end, which PyYAML rejects.
    private var contentAfterEnd: Int? = nil
    static let maximumDepth = 64

    init(_ yaml: String) {
        var split = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        if split.last?.isEmpty == true { split.removeLast() }
        // "..." ends the YAML document; gguf-py's text never contains "---" (it stops there).
        if let end = split.firstIndex(where: { $0 == "..." || $0.hasPrefix("... ") }) {
            // PyYAML's safe_load then wants nothing but comments until the end
            contentAfterEnd = split[(end + 1)...].firstIndex { line in
                let text = line.drop(while: { $0 == " " })
                return !text.isEmpty && text.first != "#"
            }.map { $0 + 1 }
            split.removeSubrange(end...)
        }
        lines = split
        indents = split.map { line in line.unicodeScalars.prefix(while: { $0 == " " }).count }
    }

    // MARK: Document and block structure

    /// The top-level mapping, or nil when the document is empty or not a mapping.
    mutating func readDocument(keys: Set<String>?) throws(ModelCardError) -> [ModelCardEntry]? {
        skipBlankLines()
        guard row < lines.count else { return nil }
        let text = content(row)
        try rejectUnsupportedStart(text)
        var entries: [ModelCardEntry]? = nil
        if try splitKey(text) != nil {
            entries = try parseMapping(indent: indents[row], keys: keys)
        } else if isSequenceItem(text) {
            _ = try parseSequence(indent: indents[row])  // read only to reject what PyYAML rejects
        } else if case .mapping(let flow) = try parseInline(text, parent: -1) {
            entries = keys.map { keys in flow.filter { if case .string(let k) = $0.key { keys.contains(k) } else { false } } } ?? flow
        }
        skipBlankLines()
        if row < lines.count { throw .malformed(line: row + 1, "content after the top-level node") }
        if let contentAfterEnd { throw .malformed(line: contentAfterEnd, "content after the document end marker") }
        // a sequence or a scalar at the top: gguf-py logs an error and uses an empty card
        return entries
    }

    private func content(_ r: Int) -> Substring {
        Substring(lines[r].unicodeScalars.dropFirst(indents[r]))
    }

    private func isBlank(_ r: Int) -> Bool {
        let text = content(r)
        return text.isEmpty || text.first == "#"
    }

    private mutating func enter() throws(ModelCardError) {
        depth += 1
        if depth > Self.maximumDepth { throw .unsupported(line: row + 1, "nesting deeper than \(Self.maximumDepth) levels") }
    }

    /// Anchors, aliases, tags and explicit `? key` entries are valid YAML this reader leaves out.
    private func rejectUnsupportedStart(_ text: Substring) throws(ModelCardError) {
        let scalars = text.unicodeScalars
        guard let first = scalars.first else { return }
        if "&*!".unicodeScalars.contains(first) { throw .unsupported(line: row + 1, "anchors, aliases and tags") }
        if first == "?" && (scalars.count == 1 || scalars.dropFirst().first == " ") {
            throw .unsupported(line: row + 1, "a complex mapping key")
        }
    }

    private mutating func skipBlankLines() {
        while row < lines.count && isBlank(row) { row += 1 }
    }

    private func isSequenceItem(_ text: Substring) -> Bool {
        text.first == "-" && (text.count == 1 || text.unicodeScalars.dropFirst().first == " ")
    }

    /// For a line that starts a `key: value` pair: the key and the text after the colon.
    private func splitKey(_ text: Substring) throws(ModelCardError) -> (key: ModelCardValue, rest: Substring)? {
        guard let first = text.unicodeScalars.first else { return nil }
        switch first {
        case "\"", "'":
            var cursor = Cursor(row: row, index: text.startIndex)
            guard let key = try? scanQuoted(&cursor), cursor.row == row else { return nil }
            let after = lines[row][cursor.index...].drop(while: { $0 == " " })
            guard after.first == ":" else { return nil }
            let rest = after.dropFirst()
            guard rest.isEmpty || rest.first == " " else { return nil }
            return (.string(key), rest)
        case "[", "{", "|", ">", "#", ",", "]", "}", "%", "@", "`":
            return nil
        case "-" where isSequenceItem(text):
            return nil
        default:
            break
        }
        let scalars = text.unicodeScalars
        var i = scalars.startIndex
        var previous: Unicode.Scalar = " "
        while i < scalars.endIndex {
            let c = scalars[i]
            let next = scalars.index(after: i)
            if c == "#" && previous == " " { return nil }
            if c == ":" && (next == scalars.endIndex || scalars[next] == " ") {
                let keyText = Substring(scalars[..<i]).trimmingTrailingSpaces
                if keyText.isEmpty { throw .malformed(line: row + 1, "a mapping value without a key") }
                if first == "?" && (keyText.count == 1 || keyText.unicodeScalars.dropFirst().first == " ") {
                    throw .unsupported(line: row + 1, "a complex mapping key")
                }
                if "&*!".unicodeScalars.contains(first) {
                    throw .unsupported(line: row + 1, "anchors, aliases and tags")
                }
                return (try resolvePlain(String(keyText)), Substring(scalars[next...]))
            }
            previous = c
            i = next
        }
        return nil
    }

    /// A block mapping whose keys sit at column `indent`. With `keys`, other keys are skipped unread.
    private mutating func parseMapping(indent: Int, keys: Set<String>? = nil) throws(ModelCardError) -> [ModelCardEntry] {
        try enter()
        defer { depth -= 1 }
        var entries: [ModelCardEntry] = []
        while true {
            skipBlankLines()
            guard row < lines.count, indents[row] >= indent else { break }
            guard indents[row] == indent else { throw .malformed(line: row + 1, "unexpected indentation") }
            let text = content(row)
            guard let (key, rest) = try splitKey(text) else {
                try rejectUnsupportedStart(text)
                throw .malformed(line: row + 1, "expected a 'key: value' line")
            }
            if let keys, !{ if case .string(let name) = key { keys.contains(name) } else { false } }() {
                skipEntry(indent: indent)
                continue
            }
            let value = try parseValue(rest, parent: indent)
            insert(&entries, key: key, value: value)
        }
        return entries
    }

    /// Skips an entry's lines without interpreting them: everything up to the next line at the
    /// entry's column that starts another key.
    private mutating func skipEntry(indent: Int) {
        row += 1
        while row < lines.count {
            if isBlank(row) || indents[row] > indent {
                row += 1
            } else if indents[row] == indent, isSequenceItem(content(row)) || (try? splitKey(content(row))) == nil {
                // an indentless list, or the tail of a quoted scalar that ignored indentation
                row += 1
            } else {
                break
            }
        }
    }

    private mutating func parseSequence(indent: Int) throws(ModelCardError) -> [ModelCardValue] {
        try enter()
        defer { depth -= 1 }
        var items: [ModelCardValue] = []
        while true {
            skipBlankLines()
            guard row < lines.count, indents[row] >= indent else { break }
            guard indents[row] == indent else { throw .malformed(line: row + 1, "unexpected indentation") }
            let text = content(row)
            guard isSequenceItem(text) else { break }
            items.append(try parseSequenceItem(text.dropFirst(), dashColumn: indent))
        }
        return items
    }

    private mutating func parseSequenceItem(_ afterDash: Substring, dashColumn: Int) throws(ModelCardError) -> ModelCardValue {
        let spaces = afterDash.unicodeScalars.prefix(while: { $0 == " " }).count
        let text = Substring(afterDash.unicodeScalars.dropFirst(spaces))
        if text.isEmpty || text.first == "#" {
            row += 1
            skipBlankLines()
            guard row < lines.count else { return .null }
            let next = content(row)
            // as after a key, PyYAML takes a block scalar header at the dash's own column
            guard indents[row] > dashColumn || (indents[row] == dashColumn && (next.first == "|" || next.first == ">")) else {
                return .null
            }
            return try parseNode(parent: dashColumn)
        }
        // "- key: value" and "- - item" open a collection at the column after the dash: re-read
        // this line as if it started there.
        let opensMapping = try splitKey(text) != nil
        if isSequenceItem(text) || opensMapping {
            indents[row] = dashColumn + 1 + spaces
            return try parseNode(parent: dashColumn)
        }
        return try parseInline(text, parent: dashColumn)
    }

    /// The value after `key:`; an empty rest means the value is on the following lines.
    private mutating func parseValue(_ rest: Substring, parent: Int) throws(ModelCardError) -> ModelCardValue {
        let text = rest.drop(while: { $0 == " " })
        if !text.isEmpty && text.first != "#" { return try parseInline(text, parent: parent) }
        row += 1
        skipBlankLines()
        guard row < lines.count else { return .null }
        // A list under a key may sit at the key's own column ("indentless" sequence); PyYAML also
        // accepts a block scalar header there.
        let next = content(row)
        if indents[row] > parent || (indents[row] == parent && (isSequenceItem(next) || next.first == "|" || next.first == ">")) {
            return try parseNode(parent: parent)
        }
        return .null
    }

    /// A node that starts at the beginning of line `row` (inside a collection at column `parent`).
    private mutating func parseNode(parent: Int) throws(ModelCardError) -> ModelCardValue {
        let text = content(row)
        if isSequenceItem(text) { return .sequence(try parseSequence(indent: indents[row])) }
        if try splitKey(text) != nil { return .mapping(try parseMapping(indent: indents[row])) }
        return try parseInline(text, parent: parent)
    }

    /// A scalar or flow collection starting at `text` (a suffix of line `row`); leaves `row` at the
    /// first line after it.
    private mutating func parseInline(_ text: Substring, parent: Int) throws(ModelCardError) -> ModelCardValue {
        guard let first = text.unicodeScalars.first else { return .null }
        let second = text.unicodeScalars.dropFirst().first
        let indicatorAlone = second == nil || second == " "
        switch first {
        case "|", ">":
            return .string(try parseBlockScalar(header: text, parent: parent))
        case "[", "{", "\"", "'":
            var cursor = Cursor(row: row, index: text.startIndex)
            let value = try parseFlowNode(&cursor, depth: depth)
            try finishLine(cursor)
            return value
        case "&", "*", "!":
            throw .unsupported(line: row + 1, "anchors, aliases and tags")
        case "%", "@", "`", ",", "]", "}":
            throw .malformed(line: row + 1, "a scalar cannot start with '\(first)'")
        case "-" where indicatorAlone:
            throw .malformed(line: row + 1, "sequence entries are not allowed here")
        case "?" where indicatorAlone:
            throw .unsupported(line: row + 1, "a complex mapping key")
        case ":" where indicatorAlone:
            throw .malformed(line: row + 1, "mapping values are not allowed here")
        default:
            return try parsePlain(text, parent: parent)
        }
    }

    // MARK: Block scalars

    /// A plain scalar, continued on following lines indented past `parent` (folded like PyYAML).
    private mutating func parsePlain(_ text: Substring, parent: Int) throws(ModelCardError) -> ModelCardValue {
        var (piece, stop) = scanPlainLine(text)
        var result = String(piece)
        row += 1
        var breaks = 0
        while stop == .endOfLine && row < lines.count {
            let line = content(row)
            if line.isEmpty {
                breaks += 1
                row += 1
                continue
            }
            if indents[row] <= parent || line.first == "#" { break }
            (piece, stop) = scanPlainLine(line)
            result += breaks == 0 ? " " : String(repeating: "\n", count: breaks)
            result += piece
            breaks = 0
            row += 1
        }
        if stop == .colon { throw .malformed(line: row, "mapping values are not allowed here") }
        return try resolvePlain(result)
    }

    private enum PlainStop { case endOfLine, comment, colon }

    /// The plain-scalar text of one line: up to a comment (` #`) or a `: ` value indicator.
    private func scanPlainLine(_ text: Substring) -> (Substring, PlainStop) {
        let scalars = text.unicodeScalars
        var i = scalars.startIndex
        var previous: Unicode.Scalar = " "
        while i < scalars.endIndex {
            let c = scalars[i]
            let next = scalars.index(after: i)
            if c == "#" && previous == " " { return (Substring(scalars[..<i]).trimmingTrailingSpaces, .comment) }
            if c == ":" && (next == scalars.endIndex || scalars[next] == " ") {
                return (Substring(scalars[..<i]).trimmingTrailingSpaces, .colon)
            }
            previous = c
            i = next
        }
        return (text.trimmingTrailingSpaces, .endOfLine)
    }

    /// `|` or `>` with optional chomping (`-` strip, `+` keep) and indentation (1-9) indicators,
    /// ported from PyYAML's `scan_block_scalar` (including its reading of the folding rules).
    private mutating func parseBlockScalar(header: Substring, parent: Int) throws(ModelCardError) -> String {
        let folded = header.first == ">"
        var chomping: Bool? = nil  // nil clip, false strip, true keep
        var increment: Int? = nil
        var rest = header.unicodeScalars.dropFirst()
        for _ in 0..<2 {
            guard let c = rest.first else { break }
            if (c == "+" || c == "-") && chomping == nil {
                chomping = c == "+"
            } else if let digit = Int(String(c)), increment == nil, c.isASCII {
                if digit == 0 { throw .malformed(line: row + 1, "block scalar indentation indicator 0") }
                increment = digit
            } else {
                break
            }
            rest = rest.dropFirst()
        }
        // indicators end at a space or the line end; then only a comment may follow
        let trailer = Substring(rest).drop(while: { $0 == " " })
        if !(rest.isEmpty || (rest.first == " " && (trailer.isEmpty || trailer.first == "#"))) {
            throw .malformed(line: row + 1, "expected a comment or a line break after a block scalar header")
        }
        row += 1

        let minimumIndent = max(parent + 1, 1)
        var indent: Int
        var breaks = 0
        if let increment {
            indent = minimumIndent + increment - 1
        } else {
            var maximum = 0
            var r = row
            while r < lines.count && content(r).isEmpty {
                maximum = max(maximum, indents[r])
                r += 1
            }
            if r < lines.count { maximum = max(maximum, indents[r]) }
            indent = max(minimumIndent, maximum)
        }
        // Lines of at most `indent` spaces are breaks; lines reaching `indent` are content.
        func isBreak(_ r: Int) -> Bool { content(r).isEmpty && indents[r] <= indent }
        func isContent(_ r: Int) -> Bool { !isBreak(r) && indents[r] >= indent }
        while row < lines.count && isBreak(row) { breaks += 1; row += 1 }

        var result = ""
        var lineBreak = ""
        while row < lines.count && isContent(row) {
            result += String(repeating: "\n", count: breaks)
            let text = Substring(lines[row].unicodeScalars.dropFirst(indent))
            let leadingNonSpace = text.first != " "
            result += text
            lineBreak = "\n"
            row += 1
            breaks = 0
            while row < lines.count && isBreak(row) { breaks += 1; row += 1 }
            guard row < lines.count && isContent(row) else { break }
            let nextLeadingNonSpace = lines[row].unicodeScalars.dropFirst(indent).first != " "
            if folded && leadingNonSpace && nextLeadingNonSpace {
                if breaks == 0 { result += " " }
            } else {
                result += "\n"
            }
        }
        if chomping != false { result += lineBreak }
        if chomping == true { result += String(repeating: "\n", count: breaks) }
        return result
    }

    // MARK: Flow collections and quoted scalars

    /// A position that can run past the end of a line onto the next ones; line ends read as "\n".
    private struct Cursor {
        var row: Int
        var index: Substring.Index
    }

    private func peek(_ c: Cursor) -> Unicode.Scalar? {
        guard c.row < lines.count else { return nil }
        let line = lines[c.row]
        if c.index < line.endIndex { return line.unicodeScalars[c.index] }
        return c.row + 1 < lines.count ? "\n" : nil
    }

    private func peekNext(_ c: Cursor) -> Unicode.Scalar? {
        var next = c
        advance(&next)
        return next.row < lines.count ? peek(next) : nil
    }

    private func advance(_ c: inout Cursor) {
        guard c.row < lines.count else { return }
        let line = lines[c.row]
        if c.index < line.endIndex {
            c.index = line.unicodeScalars.index(after: c.index)
        } else {
            c.row += 1
            if c.row < lines.count { c.index = lines[c.row].startIndex }
        }
    }

    /// After a flow node in block context only a comment may follow on its line.
    private mutating func finishLine(_ cursor: Cursor) throws(ModelCardError) {
        guard cursor.row < lines.count else { row = lines.count; return }
        let tail = lines[cursor.row][cursor.index...].drop(while: { $0 == " " })
        if !tail.isEmpty && tail.first != "#" {
            if tail.first == ":" { throw .malformed(line: cursor.row + 1, "mapping values are not allowed here") }
            throw .malformed(line: cursor.row + 1, "unexpected text after a value")
        }
        row = cursor.row + 1
    }

    /// Skips spaces, line breaks and comments between flow tokens.
    private func skipFlowSpace(_ c: inout Cursor) {
        while let ch = peek(c) {
            if ch == " " || ch == "\n" {
                advance(&c)
            } else if ch == "#" {
                c.index = lines[c.row].endIndex
            } else {
                break
            }
        }
    }

    private func parseFlowNode(_ c: inout Cursor, depth: Int) throws(ModelCardError) -> ModelCardValue {
        if depth >= Self.maximumDepth { throw .unsupported(line: c.row + 1, "nesting deeper than \(Self.maximumDepth) levels") }
        skipFlowSpace(&c)
        guard let first = peek(c) else { throw .malformed(line: c.row + 1, "unexpected end of a flow collection") }
        let second = peekNext(c)
        switch first {
        case "[":
            advance(&c)
            var items: [ModelCardValue] = []
            while true {
                skipFlowSpace(&c)
                if peek(c) == "]" { advance(&c); break }
                items.append(try parseFlowNode(&c, depth: depth + 1))
                skipFlowSpace(&c)
                switch peek(c) {
                case ",": advance(&c)
                case "]": advance(&c); return .sequence(items)
                case ":": throw .unsupported(line: c.row + 1, "a single-pair mapping inside a flow sequence")
                default: throw .malformed(line: c.row + 1, "expected ',' or ']' in a flow sequence")
                }
            }
            return .sequence(items)
        case "{":
            advance(&c)
            var entries: [ModelCardEntry] = []
            while true {
                skipFlowSpace(&c)
                if peek(c) == "}" { advance(&c); break }
                let key = try parseFlowNode(&c, depth: depth + 1)
                if case .sequence = key { throw .malformed(line: c.row + 1, "a list cannot be a mapping key") }
                if case .mapping = key { throw .malformed(line: c.row + 1, "a mapping cannot be a mapping key") }
                skipFlowSpace(&c)
                var value = ModelCardValue.null
                if peek(c) == ":" {
                    advance(&c)
                    skipFlowSpace(&c)
                    if peek(c) != "," && peek(c) != "}" { value = try parseFlowNode(&c, depth: depth + 1) }
                    skipFlowSpace(&c)
                }
                insert(&entries, key: key, value: value)
                switch peek(c) {
                case ",": advance(&c)
                case "}": advance(&c); return .mapping(entries)
                default: throw .malformed(line: c.row + 1, "expected ',' or '}' in a flow mapping")
                }
            }
            return .mapping(entries)
        case "\"", "'":
            return .string(try scanQuoted(&c))
        case "&", "*", "!":
            throw .unsupported(line: c.row + 1, "anchors, aliases and tags")
        case "?":
            // in flow context "?" always introduces an explicit key
            throw .unsupported(line: c.row + 1, "a complex mapping key")
        case "]", "}", ",", "|", ">", "%", "@", "`", ":":
            // in flow context ":" is always a value indicator, never the start of a scalar
            throw .malformed(line: c.row + 1, "unexpected '\(first)' in a flow collection")
        case "-" where second == " " || second == "\n":
            throw .malformed(line: c.row + 1, "sequence entries are not allowed in a flow collection")
        default:
            return try scanFlowPlain(&c)
        }
    }

    /// A plain scalar inside `[...]` or `{...}`: words separated by spaces, ended by `,[]{}?` or `: `.
    private func scanFlowPlain(_ c: inout Cursor) throws(ModelCardError) -> ModelCardValue {
        var result = ""
        var pending = ""
        while true {
            var word = String.UnicodeScalarView()
            while let ch = peek(c) {
                if ch == " " || ch == "\n" || ",?[]{}".unicodeScalars.contains(ch) { break }
                if ch == ":", let next = peekNext(c), " \n,[]{}".unicodeScalars.contains(next) { break }
                if ch == ":" && peekNext(c) == nil { break }
                word.append(ch)
                advance(&c)
            }
            if word.isEmpty { break }
            result += pending + String(word)
            var spaces = 0
            while peek(c) == " " { spaces += 1; advance(&c) }
            if peek(c) == "\n" {
                advance(&c)
                var breaks = 0
                while let ch = peek(c), ch == " " || ch == "\n" {
                    if ch == "\n" { breaks += 1 }
                    advance(&c)
                }
                pending = breaks == 0 ? " " : String(repeating: "\n", count: breaks)
            } else {
                pending = String(repeating: " ", count: spaces)
            }
            if pending.isEmpty || peek(c) == "#" { break }
        }
        return try resolvePlain(result)
    }

    /// A single- or double-quoted scalar at the cursor, which may span lines (PyYAML does not check
    /// the indentation of its continuation lines).
    private func scanQuoted(_ c: inout Cursor) throws(ModelCardError) -> String {
        let startRow = c.row
        let double = peek(c) == "\""
        let quote: Unicode.Scalar = double ? "\"" : "'"
        advance(&c)
        var out = String.UnicodeScalarView()
        while true {
            guard let ch = peek(c) else { throw .malformed(line: startRow + 1, "unterminated quoted scalar") }
            if ch == quote {
                advance(&c)
                if !double && peek(c) == "'" {
                    out.append("'")
                    advance(&c)
                    continue
                }
                return String(out)
            }
            if double && ch == "\\" {
                advance(&c)
                guard let e = peek(c) else { throw .malformed(line: startRow + 1, "unterminated quoted scalar") }
                advance(&c)
                if e == "\n" {
                    // an escaped line break joins the lines without a space
                    let breaks = skipFlowBreaks(&c)
                    out.append(contentsOf: String(repeating: "\n", count: breaks).unicodeScalars)
                    continue
                }
                out.append(try unescape(e, &c))
                continue
            }
            if ch == " " || ch == "\n" {
                var spaces = String.UnicodeScalarView()
                while peek(c) == " " { spaces.append(" "); advance(&c) }
                if peek(c) == "\n" {
                    advance(&c)
                    let breaks = skipFlowBreaks(&c)
                    out.append(contentsOf: (breaks == 0 ? " " : String(repeating: "\n", count: breaks)).unicodeScalars)
                } else {
                    out.append(contentsOf: spaces)
                }
                continue
            }
            out.append(ch)
            advance(&c)
        }
    }

    /// Skips the indentation of continuation lines, counting empty lines (each one becomes "\n").
    private func skipFlowBreaks(_ c: inout Cursor) -> Int {
        var breaks = 0
        while true {
            while peek(c) == " " { advance(&c) }
            guard peek(c) == "\n" else { return breaks }
            breaks += 1
            advance(&c)
        }
    }

    /// PyYAML's double-quote escapes.
    private func unescape(_ e: Unicode.Scalar, _ c: inout Cursor) throws(ModelCardError) -> Unicode.Scalar {
        let simple: [Unicode.Scalar: Unicode.Scalar] = [
            "0": "\u{0}", "a": "\u{7}", "b": "\u{8}", "t": "\t", "n": "\n", "v": "\u{B}", "f": "\u{C}",
            "r": "\r", "e": "\u{1B}", " ": " ", "\"": "\"", "/": "/", "\\": "\\", "N": "\u{85}",
            "_": "\u{A0}", "L": "\u{2028}", "P": "\u{2029}",
        ]
        if let s = simple[e] { return s }
        let length: Int
        switch e {
        case "x": length = 2
        case "u": length = 4
        case "U": length = 8
        default: throw .malformed(line: c.row + 1, "unknown escape '\\\(e)' in a double-quoted scalar")
        }
        var hex = ""
        for _ in 0..<length {
            guard let h = peek(c), h.properties.isASCIIHexDigit else {
                throw .malformed(line: c.row + 1, "expected \(length) hexadecimal digits after '\\\(e)'")
            }
            hex.unicodeScalars.append(h)
            advance(&c)
        }
        guard let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else {
            throw .unsupported(line: c.row + 1, "the escape '\\\(e)\(hex)' (not a Unicode scalar)")
        }
        return scalar
    }

    // MARK: Scalar types

    /// Types a plain scalar as PyYAML's SafeLoader does (YAML 1.1 implicit resolvers).
    private func resolvePlain(_ text: String) throws(ModelCardError) -> ModelCardValue {
        switch text {
        case "", "~", "null", "Null", "NULL":
            return .null
        case "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
            return .bool(true)
        case "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
            return .bool(false)
        case "<<", "=":
            throw .unsupported(line: row, "the YAML value '\(text)'")
        default:
            break
        }
        if text.wholeMatch(of: YAMLPatterns.float) != nil {
            return .float(try yamlFloat(text))
        }
        if text.wholeMatch(of: YAMLPatterns.int) != nil {
            return .int(try yamlInt(text))
        }
        if text.wholeMatch(of: YAMLPatterns.timestamp) != nil {
            return .timestamp(text)
        }
        return .string(text)
    }

    /// PyYAML's `construct_yaml_int`.
    private func yamlInt(_ text: String) throws(ModelCardError) -> Int {
        var value = text.replacing("_", with: "")
        var sign = 1
        if value.first == "-" { sign = -1 }
        if value.first == "-" || value.first == "+" { value.removeFirst() }
        var magnitude: Int?
        if value == "0" {
            magnitude = 0
        } else if value.hasPrefix("0b") {
            magnitude = Int(value.dropFirst(2), radix: 2)
        } else if value.hasPrefix("0x") {
            magnitude = Int(value.dropFirst(2), radix: 16)
        } else if value.hasPrefix("0") {
            magnitude = Int(value, radix: 8)
        } else if value.contains(":") {
            var total = 0
            var base = 1
            for part in value.split(separator: ":", omittingEmptySubsequences: false).reversed() {
                guard let digit = Int(part) else { magnitude = nil; break }
                let (product, o1) = digit.multipliedReportingOverflow(by: base)
                let (sum, o2) = total.addingReportingOverflow(product)
                if o1 || o2 { throw .unsupported(line: row, "the integer \(text) (out of range)") }
                total = sum
                base = base.multipliedReportingOverflow(by: 60).partialValue
            }
            magnitude = total
        } else {
            magnitude = Int(value, radix: 10)
        }
        guard let magnitude else { throw .unsupported(line: row, "the integer \(text) (out of range or malformed)") }
        return sign * magnitude
    }

    /// PyYAML's `construct_yaml_float`.
    private func yamlFloat(_ text: String) throws(ModelCardError) -> Double {
        var value = text.replacing("_", with: "").lowercased()
        var sign = 1.0
        if value.first == "-" { sign = -1 }
        if value.first == "-" || value.first == "+" { value.removeFirst() }
        if value == ".inf" { return sign * .infinity }
        if value == ".nan" { return .nan }
        if value.contains(":") {
            var total = 0.0
            var base = 1.0
            for part in value.split(separator: ":", omittingEmptySubsequences: false).reversed() {
                guard let digit = pythonFloat(part) else { throw .malformed(line: row, "bad float \(text)") }
                total += digit * base
                base *= 60
            }
            return sign * total
        }
        guard let number = pythonFloat(Substring(value)) else { throw .malformed(line: row, "bad float \(text)") }
        return sign * number
    }

    private func insert(_ entries: inout [ModelCardEntry], key: ModelCardValue, value: ModelCardValue) {
        if let i = entries.firstIndex(where: { $0.key == key }) {
            entries[i].value = value
        } else {
            entries.append(ModelCardEntry(key: key, value: value))
        }
    }
}

/// Python's `float()` for the digit strings the YAML float pattern admits ("1.", ".5", "1.0e+3").
func pythonFloat(_ text: Substring) -> Double? {
    guard !text.isEmpty, text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.numericType != nil || ".eE+-".unicodeScalars.contains($0)) }) else {
        return nil
    }
    return Double(text)
}

/// PyYAML's implicit-resolver patterns (resolver.py), for whole-string matches.
enum YAMLPatterns {
    nonisolated(unsafe) static let float =
        /[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)/
    nonisolated(unsafe) static let int =
        /[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+/
    nonisolated(unsafe) static let timestamp =
        /[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?/
}

extension Substring {
    var trimmingTrailingSpaces: Substring {
        var s = self
        while s.unicodeScalars.last == " " { s = Substring(s.unicodeScalars.dropLast()) }
        return s
    }
}
