// Helpers shared by the fuzz targets: invariant checks that crash loudly (so libFuzzer records the
// input), splitting one input into several documents, and scratch files for readers that take a path.
import Formats
#if canImport(Glibc)
import Glibc
#endif

/// Stops the process with a message when a property of a successfully parsed input does not hold.
/// A thrown error is never a finding; a value the reader accepted but that breaks its own promises is.
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition {
        var text = "fuzz invariant failed at \(file):\(line): \(message())\n"
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// The fuzzer's bytes as a buffer (libFuzzer passes a null pointer for the empty input).
func inputBuffer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    guard let data, size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: data, count: size)
}

/// Splits an input into at most `limit` documents at each occurrence of `separator`, so one fuzz
/// input can stand for several files of a model directory (tokenizer.json + tokenizer_config.json + …).
/// A missing document is nil; an empty one is an empty array (a present but empty file).
func splitDocuments(_ bytes: UnsafeRawBufferPointer, separator: [UInt8] = Array("\n@@@@\n".utf8), limit: Int) -> [[UInt8]?] {
    var documents: [[UInt8]?] = []
    var start = 0
    var i = 0
    let all = Array(bytes)
    while i + separator.count <= all.count && documents.count < limit - 1 {
        if all[i ..< i + separator.count].elementsEqual(separator) {
            documents.append(Array(all[start ..< i]))
            i += separator.count
            start = i
        } else {
            i += 1
        }
    }
    documents.append(Array(all[start...]))
    while documents.count < limit { documents.append(nil) }
    return documents
}

/// A per-process scratch directory, for targets that open files by path: in memory (/dev/shm)
/// where there is one, else under $TMPDIR.
let scratchDirectory: String = {
    let temporary = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : temporary
    let path = "\(base)/wconv-fuzz-\(getpid())"
    mkdir(path, 0o700)
    atexit { removeScratchDirectory() }
    return path
}()

/// Removes the scratch directory and what the targets left in it (at exit).
func removeScratchDirectory() {
    let path = scratchDirectory
    if let dir = opendir(path) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { unlink(path + "/" + name) }
        }
        closedir(dir)
    }
    rmdir(path)
}

/// Writes `bytes` to `name` inside the scratch directory and returns its path.
func writeScratchFile(_ name: String, _ bytes: UnsafeRawBufferPointer) -> String {
    let path = scratchDirectory + "/" + name
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    require(fd >= 0, "cannot create scratch file \(path)")
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        require(n > 0, "cannot write scratch file \(path)")
        done += n
    }
    close(fd)
    return path
}

func writeScratchFile(_ name: String, _ bytes: [UInt8]) -> String {
    bytes.withUnsafeBytes { writeScratchFile(name, $0) }
}

func removeScratchFile(_ name: String) {
    unlink(scratchDirectory + "/" + name)
}

/// Whether every number in `value` is finite: Python writes non-finite numbers as NaN/Infinity,
/// which is not JSON, and json-c reads 1e999 as infinity, so write-then-read checks skip them.
func allFinite(_ value: JSONValue) -> Bool {
    switch value {
    case .double(let d): d.isFinite
    case .array(let items): items.allSatisfy(allFinite)
    case .object(let object): object.allSatisfy { allFinite($0.value) }
    default: true
    }
}
