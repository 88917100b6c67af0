#!/usr/bin/env python3
"""Writes testdata/malformed/: broken model files, each with the error wconv must report.

    python3 testdata/scripts/make_malformed.py          # rewrites testdata/malformed/

Standard library only; the output is deterministic. Every case is one file (or one small model
directory) built here byte by byte, plus its expected outcome: the command to run, the exit code
and a fragment of the one-line `error: <path>: <what>` message. Cases marked with a `base` are
run on a copy of that testdata directory with one file replaced by the malformed one. Cases with
`derive` are built by the test itself from a valid fixture (truncating a real model at several
points, changing a tensor's type), to avoid storing copies of large files.

The expected messages are wconv's own (there is no reference tool for error text); the exit codes
follow the README table. expected.json and README.md are generated from the same list, so they
cannot disagree. Tests/wconvTests/FaultMalformedCorpusTests.swift runs every case.
"""
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "malformed")

CASES = []


def case(path, data, command, exit, error, what, base=None, replaces=None, stdout=None, derive=None):
    # convert picks its direction from the output name: a directory input goes to GGUF.
    output = None
    if command[0] == "convert":
        output = "out.gguf" if base is not None else "out"
    elif command[0] in ("quantize", "dequantize"):
        output = "out"
    elif command[0] == "convert-adapter":
        output = "out.gguf"
    CASES.append(dict(path=path, data=data, command=command, exit=exit, error=error, what=what,
                      base=base, replaces=replaces, stdout=stdout, derive=derive, output=output))


# ---------------------------------------------------------------------------------------------
# safetensors

def st_header(entries, metadata=None, pad=b" "):
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    header.update(entries)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += pad * (-len(text) % 8)
    return text


def st(entries, data, metadata=None, pad=b" ", raw_header=None):
    text = raw_header if raw_header is not None else st_header(entries, metadata, pad)
    return struct.pack("<Q", len(text)) + text + data


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


VALID_ST_ENTRIES = {
    "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    "b": {"dtype": "F16", "shape": [4], "data_offsets": [16, 24]},
}
VALID_ST_DATA = f32(1, 2, 3, 4) + struct.pack("<4e", 0.5, 1.5, -2, 8)
VALID_ST = st(VALID_ST_ENTRIES, VALID_ST_DATA)


def st_case(name, data, error, what, exit=65):
    case("safetensors/" + name + ".safetensors", data, ["inspect"], exit, error, what)


st_case("empty", b"", "file is 0 bytes, too short for a safetensors header length", "an empty file")
st_case("truncated-length", VALID_ST[:5], "file is 5 bytes, too short", "cut inside the 8-byte header length")
st_case("truncated-header", VALID_ST[:40], "runs past the end of the file (40 bytes)",
        "cut inside the JSON header")
st_case("truncated-data", VALID_ST[:-4], "but its tensors end at byte",
        "cut 4 bytes before the end of the last tensor")
st_case("truncated-at-data-start", VALID_ST[:len(VALID_ST) - len(VALID_ST_DATA)],
        "but its tensors end at byte", "the header alone, every tensor's data missing")
st_case("trailing-bytes", VALID_ST + b"\0" * 3, "3 trailing bytes after the last tensor",
        "three bytes after the last tensor")
st_case("header-length-lie", struct.pack("<Q", 4096) + VALID_ST[8:],
        "safetensors header length 4096 runs past the end of the file",
        "a header length larger than the file")
st_case("header-length-huge", struct.pack("<Q", 1 << 62) + VALID_ST[8:],
        "safetensors header length 4611686018427387904 is above the 100000000-byte limit",
        "a header length of 2^62")
st_case("header-length-zero", struct.pack("<Q", 0) + VALID_ST[8:], "safetensors header is not valid JSON",
        "a zero header length (empty JSON)")
st_case("header-not-utf8", st({}, b"", raw_header=b'{"\xff\xfe":{}}  '), "safetensors header is not valid UTF-8",
        "invalid UTF-8 in a tensor name")
st_case("header-not-json", st({}, b"", raw_header=b'{"a":{"dtype":"F32",}}  '),
        "safetensors header is not valid JSON", "a trailing comma")
st_case("header-nul-padding", st({}, VALID_ST_DATA, raw_header=st_header(VALID_ST_ENTRIES) + b"\0" * 8),
        "safetensors header is not valid JSON", "header padded with NUL bytes instead of spaces")
st_case("header-not-object", st({}, b"", raw_header=b"[1,2,3] "), "safetensors header is not a JSON object",
        "a JSON array as the header")
st_case("header-deep-nesting", st({}, b"", raw_header=b'{"__metadata__":' + b"[" * 200 + b"]" * 200 + b"}"),
        "JSON nested too deeply", "200 nested arrays inside __metadata__")
st_case("metadata-not-strings", st({}, b"", metadata={"format": 1}),
        "__metadata__ value for \"format\" is not a string", "a number in __metadata__")
st_case("duplicate-name", st({}, f32(1, 2),
                             raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
        "tensor 'a' appears twice in the header", "the same tensor name twice")
st_case("unknown-dtype", st({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16)),
        "tensor 'a': unknown dtype \"F128\"", "dtype F128")
st_case("dtype-not-string", st({"a": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
        "tensor 'a': \"dtype\" is not a string", "a number as dtype")
st_case("missing-offsets", st({"a": {"dtype": "F32", "shape": [1]}}, bytes(4)),
        "tensor 'a': missing \"data_offsets\"", "no data_offsets")
st_case("negative-dimension", st({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
        "\"shape\" is not an array of non-negative integers", "shape [-1]")
st_case("float-offsets", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4]}}, bytes(4)),
        "\"data_offsets\" is not a pair of non-negative integers", "data_offsets [0.0, 4]")
st_case("offset-above-int64", st({}, bytes(4), raw_header=b'{"a":{"dtype":"F32","shape":[1],'
                                                         b'"data_offsets":[0,18446744073709551615]}}'),
        "\"data_offsets\" is not a pair of non-negative integers", "an end offset of 2^64-1")
st_case("offsets-inverted", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}, bytes(8)),
        "data_offsets [8, 4] end before they begin", "end before begin")
st_case("offsets-overlap", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                               "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24)),
        "tensor 'b': data_offsets [8, 24] should begin at 16", "two tensors sharing 8 bytes")
st_case("offsets-gap", st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                           "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, bytes(12)),
        "tensor 'b': data_offsets [8, 12] should begin at 4", "4 unused bytes between tensors")
st_case("offsets-past-end", st({"a": {"dtype": "F32", "shape": [1048576], "data_offsets": [0, 4194304]}}, bytes(16)),
        "but its tensors end at byte", "a 4 MB tensor in a 100-byte file")
st_case("size-mismatch", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, bytes(12)),
        "tensor 'a': dtype and shape need 16 bytes but data_offsets span 12", "shape says 16 bytes, offsets 12")
st_case("shape-overflow", st({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 4]}}, bytes(4)),
        "tensor 'a': size of shape and dtype overflows", "an element count above 2^63")
st_case("sub-byte-misaligned", st({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2)),
        "tensor 'a': 3 elements of F4 do not fill whole bytes", "three 4-bit elements")

case("safetensors/index-unsafe-path.safetensors.index.json",
     json.dumps({"weight_map": {"a": "../../outside.safetensors"}}).encode(), ["inspect"], 65,
     "weight_map names an unsafe shard path", "a shard path climbing out of the directory")
case("safetensors/index-no-weight-map.safetensors.index.json", b'{"metadata": {}}', ["inspect"], 65,
     "index has no \"weight_map\" object", "an index without weight_map")
case("safetensors/index-missing-shard.safetensors.index.json",
     json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}).encode(), ["inspect"], 66,
     "no such file or directory", "an index naming a shard that is not there")

# A valid file for comparison: the corpus test checks it inspects cleanly.
st_case("valid", VALID_ST, "", "a valid two-tensor file (control)", exit=0)

# ---------------------------------------------------------------------------------------------
# GGUF


def gstr(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, type_id, payload):
    return gstr(key) + struct.pack("<I", type_id) + payload


def kv_str(key, value):
    return kv(key, 8, gstr(value))


def tinfo(name, dims, type_id, offset):
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d & (2**64 - 1)) for d in dims) \
        + struct.pack("<IQ", type_id, offset)


def gguf(kvs, infos, data=b"", version=3, tensor_count=None, kv_count=None, alignment=32, pad=True):
    out = b"GGUF" + struct.pack("<IQQ", version, len(infos) if tensor_count is None else tensor_count,
                                len(kvs) if kv_count is None else kv_count)
    out += b"".join(kvs) + b"".join(infos)
    if pad and infos:
        out += b"\0" * (-len(out) % alignment)
    return out + data


ARCH = kv_str("general.architecture", "llama")
GOOD_INFOS = [tinfo("a", [4], 0, 0), tinfo("b", [2, 2], 0, 32)]
GOOD_DATA = f32(1, 2, 3, 4) + bytes(16) + f32(5, 6, 7, 8)
VALID_GGUF = gguf([ARCH], GOOD_INFOS, GOOD_DATA)
HEADER_END = len(gguf([ARCH], GOOD_INFOS, pad=False))


def gg_case(name, data, error, what, exit=65, stdout=None):
    case("gguf/" + name + ".gguf", data, ["inspect"], exit, error, what, stdout=stdout)


gg_case("empty", b"", "not a GGUF file, safetensors file or model directory", "an empty .gguf file")
gg_case("truncated-magic", b"GGU", "not a GGUF file, safetensors file or model directory", "three bytes")
gg_case("truncated-after-version", VALID_GGUF[:8], "file ends inside header at byte 8", "magic and version only")
gg_case("truncated-in-counts", VALID_GGUF[:20], "file ends inside header at byte 16", "cut inside the KV count")
gg_case("truncated-in-metadata", VALID_GGUF[:40], "header claims 2 tensors but only 16 bytes follow",
        "cut inside the first key (the counts no longer fit what is left)")
gg_case("truncated-in-value", gguf([ARCH, kv_str("general.name", "a-long-model-name")], [], b"")[:-6],
        "value of 'general.name' claims 17 bytes, more than the 11 allowed here", "cut inside a string value")
gg_case("truncated-in-tensor-info", VALID_GGUF[:HEADER_END - 10], "file ends inside tensor info 'b'",
        "cut inside the last tensor info")
gg_case("truncated-before-padding", VALID_GGUF[:HEADER_END], "file ends inside padding before the tensor data",
        "cut right after the tensor infos")
gg_case("truncated-in-data", VALID_GGUF[:-8], "tensor 'b' needs 16 bytes at file offset",
        "cut 8 bytes before the end of the last tensor")
gg_case("truncated-at-data-start", VALID_GGUF[:-len(GOOD_DATA)], "tensor 'a' needs 16 bytes at file offset",
        "the header alone, every tensor's data missing")
gg_case("version-1", gguf([ARCH], GOOD_INFOS, GOOD_DATA, version=1), "GGUF version 1 is no longer supported",
        "GGUF v1", exit=69)
gg_case("version-4", gguf([ARCH], GOOD_INFOS, GOOD_DATA, version=4), "GGUF version 4 is not supported",
        "a future version", exit=69)
gg_case("big-endian", b"GGUF" + struct.pack(">I", 3) + VALID_GGUF[8:], "the file is big-endian",
        "the version field byte-swapped", exit=69)
gg_case("kv-count-lie", gguf([ARCH], GOOD_INFOS, GOOD_DATA, kv_count=1 << 40),
        "header claims 1099511627776 metadata entries", "a KV count of 2^40")
gg_case("tensor-count-lie", gguf([ARCH], GOOD_INFOS, GOOD_DATA, tensor_count=1 << 40),
        "header claims 1099511627776 tensors", "a tensor count of 2^40")
gg_case("key-length-lie", gguf([struct.pack("<Q", 1 << 62) + b"general.architecture"], [], b""),
        "metadata key 0 claims 4611686018427387904 bytes", "a key length of 2^62")
gg_case("string-length-lie", gguf([kv("general.name", 8, struct.pack("<Q", 1 << 40) + b"x" * 8)], [], b""),
        "value of 'general.name' claims 1099511627776 bytes", "a string value length of 2^40")
gg_case("array-count-absurd", gguf([kv("a.list", 9, struct.pack("<IQ", 4, 1 << 40) + bytes(16))], [], b""),
        "metadata array 'a.list' claims 1099511627776 elements", "a UINT32 array claiming 2^40 elements")
gg_case("string-array-count-absurd", gguf([kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 1 << 62) + gstr("a"))], [], b""),
        "metadata array 'tokenizer.ggml.tokens' claims 4611686018427387904 elements", "a STRING array claiming 2^62 elements")
gg_case("nested-array", gguf([kv("a.nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 0))], [], b""),
        "metadata key 'a.nested' is an array of arrays", "an array of arrays")
gg_case("unknown-value-type", gguf([kv("a.b", 13, bytes(8))], [], b""),
        "metadata key 'a.b' has unknown value type 13", "value type 13")
gg_case("duplicate-key", gguf([ARCH, ARCH], GOOD_INFOS, GOOD_DATA), "metadata key 'general.architecture' appears twice",
        "the same key twice")
gg_case("empty-key", gguf([kv("", 4, struct.pack("<I", 1))], [], b""), "metadata entry 0 has an empty key", "a zero-length key")
gg_case("key-not-utf8", gguf([kv(b"general.\xff", 4, struct.pack("<I", 1))], [], b""),
        "metadata key 0 is not valid UTF-8", "invalid UTF-8 in a key")
gg_case("string-not-utf8", gguf([kv("general.name", 8, gstr(b"\xc3\x28"))], [], b""),
        "value of 'general.name' is not valid UTF-8", "invalid UTF-8 in a string value")
gg_case("alignment-not-power-of-two", gguf([ARCH, kv("general.alignment", 4, struct.pack("<I", 48))], GOOD_INFOS, GOOD_DATA),
        "alignment 48 is not a non-zero power of two", "general.alignment = 48")
gg_case("alignment-zero", gguf([ARCH, kv("general.alignment", 4, struct.pack("<I", 0))], GOOD_INFOS, GOOD_DATA),
        "alignment 0 is not a non-zero power of two", "general.alignment = 0")
gg_case("alignment-wrong-type", gguf([ARCH, kv_str("general.alignment", "32")], GOOD_INFOS, GOOD_DATA),
        "general.alignment has type STRING, expected UINT32", "general.alignment as a string")
gg_case("duplicate-tensor", gguf([ARCH], [tinfo("a", [4], 0, 0), tinfo("a", [2, 2], 0, 32)], GOOD_DATA),
        "tensor 'a' appears twice", "two tensors named 'a'")
gg_case("tensor-name-too-long", gguf([ARCH], [tinfo("t" * 64, [4], 0, 0)], f32(1, 2, 3, 4)),
        "is 64 bytes; ggml allows at most 63", "a 64-byte tensor name")
gg_case("tensor-name-not-utf8", gguf([ARCH], [tinfo(b"bad\xff", [4], 0, 0)], f32(1, 2, 3, 4)),
        "tensor name 0 is not valid UTF-8", "invalid UTF-8 in a tensor name")
gg_case("too-many-dimensions", gguf([ARCH], [tinfo("a", [1, 1, 1, 1, 4], 0, 0)], f32(1, 2, 3, 4)),
        "tensor 'a' has 5 dimensions; ggml allows at most 4", "five dimensions")
gg_case("negative-dimension", gguf([ARCH], [tinfo("a", [-4], 0, 0)], f32(1, 2, 3, 4)),
        "tensor 'a' dimension 0 is negative (-4)", "ne[0] = -4")
gg_case("dimensions-overflow", gguf([ARCH], [tinfo("a", [1 << 32, 1 << 32], 0, 0)], f32(1, 2, 3, 4)),
        "tensor 'a' with dimensions [4294967296, 4294967296] is too large to address", "2^64 elements")
gg_case("row-not-multiple-of-block", gguf([ARCH], [tinfo("a", [30], 8, 0)], bytes(34)),
        "has rows of 30 elements, not a multiple of the block size 32", "a Q8_0 row of 30 elements")
gg_case("offset-not-aligned", gguf([ARCH], [tinfo("a", [4], 0, 4)], bytes(32)),
        "tensor 'a' data offset 4 is not a multiple of the alignment 32", "offset 4 with alignment 32")
gg_case("offsets-overlap", gguf([ARCH], [tinfo("a", [4], 0, 0), tinfo("b", [2, 2], 0, 0)], GOOD_DATA),
        "tensor 'b' has data offset 0, expected 32", "two tensors at offset 0")
gg_case("offsets-gap", gguf([ARCH], [tinfo("a", [4], 0, 0), tinfo("b", [2, 2], 0, 64)], GOOD_DATA + bytes(32)),
        "tensor 'b' has data offset 64, expected 32", "an unused block between tensors")
gg_case("offset-past-end", gguf([ARCH], [tinfo("a", [1 << 30], 0, 0)], f32(1, 2, 3, 4)),
        "tensor 'a' needs 4294967296 bytes at file offset", "a 4 GiB tensor in a small file")
gg_case("unknown-type-huge", gguf([ARCH], [tinfo("a", [1 << 31, 1 << 31], 99, 0), tinfo("b", [1 << 31, 1 << 31], 99, 32)], bytes(64)),
        "tensor 'a' of unknown type 99 claims 4611686018427387904 elements in 32 bytes",
        "unknown ggml type 99 with 2^62 elements (fuzz finding: the element totals of inspect overflowed)")
# The input the gguf fuzz target crashed on, as libFuzzer saved it: tensor 'a' of ggml type 5 (an id
# ggml retired, so unknown here) with ne[0] = 2^63-1; adding up inspect's parameter totals trapped.
FUZZ_GGUF_CRASH = bytes.fromhex(
    "474755460300000002000000000000000300000000000000140000000000000067656e6572616c2e6172636869746563"
    "74757265080000000a0000000000000077636f6e762d74657374110000000000000067656e6572616c2e616c69676e6d"
    "656e7404000000400000000a00000000000000746573742e636f756e7404000000030000000100000000000000610100"
    "0000ffffffffffffff7f0500000000000000000000000000000000000000010000000000000062010000000300000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000190000003ffffffffffe6c6c616d61000000000000000000000000000000000000000000000000000000000000"
    "0000006d000000000000008100000000000000000000000000000000000000803f000000400000404000008040000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000230000000100020000"
    "746f6b656e5f306d62642e77656900000000000000000000000000000000000000000000000000000000000000000000"
    "00")
gg_case("fuzz-crash-unknown-type-overflow", FUZZ_GGUF_CRASH,
        "tensor 'a' of unknown type 5 claims 9223372036854775807 elements",
        "fuzz artifact crash-539238bb (gguf target): the element totals of inspect overflowed")
gg_case("split-count-unnamed", gguf([ARCH, kv("split.count", 2, struct.pack("<H", 3))], GOOD_INFOS, GOOD_DATA),
        "file is part of a 3-part split model", "split.count = 3 in a file not named as a split part")
gg_case("unknown-type-opaque", gguf([ARCH], [tinfo("a", [4], 99, 0), tinfo("b", [2, 2], 0, 32)], GOOD_DATA),
        "", "unknown ggml type 99 with a plausible size: read as opaque bytes (control)", exit=0, stdout="type99")
gg_case("valid", VALID_GGUF, "", "a valid two-tensor file (control)", exit=0)
case("gguf/not-a-model.bin", b"hello, world\n" * 4, ["inspect"], 65,
     "not a GGUF file, safetensors file or model directory", "a text file")

# ---------------------------------------------------------------------------------------------
# config.json, inside a copy of tiny-llama-spm (inspect reads it)


def config_case(name, data, error, what, exit=65):
    case("config/" + name + ".json", data, ["inspect"], exit, error, what, base="tiny-llama-spm", replaces="config.json")


config_case("deep-nesting", b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", "JSON nested too deeply", "100 nested arrays")
config_case("not-utf8", b'{"model_type": "ll\xffama"}', "JSON text is not valid UTF-8", "a 0xFF byte in a string")
config_case("duplicate-key", b'{"vocab_size": 32000, "vocab_size": 16}', "duplicate JSON key \"vocab_size\"",
            "vocab_size twice")
config_case("truncated", b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 6', "invalid JSON",
            "cut in the middle")
config_case("trailing-garbage", b'{"hidden_size": 64} xyz', "invalid JSON at byte 20", "text after the object")
config_case("trailing-nul", b'{"hidden_size": 64}\0', "unexpected data after the document", "a NUL byte after the object")
config_case("not-object", b'[1, 2, 3]', "config is not a JSON object", "an array")
config_case("empty", b"", "invalid JSON at byte 0: empty document", "an empty file")

# ---------------------------------------------------------------------------------------------
# Tokenizer files, inside copies of the tiny models (convert reads them)


def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_field(number, wire, payload):
    key = pb_varint(number << 3 | wire)
    if wire == 2:
        return key + pb_varint(len(payload)) + payload
    return key + payload


def piece(text, score=0.0, type_id=None):
    body = pb_field(1, 2, text.encode()) + pb_field(2, 5, struct.pack("<f", score))
    if type_id is not None:
        body += pb_field(3, 0, pb_varint(type_id))
    return pb_field(1, 2, body)


GOOD_PIECES = piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("\u2581a", -1)


def spm_case(name, data, error, what, exit=65):
    case("tokenizer/" + name + ".model", data, ["convert", "--outtype", "f16"], exit, error, what,
         base="tiny-llama-spm", replaces="tokenizer.model")


spm_case("empty", b"", "the model has no pieces", "an empty tokenizer.model")
spm_case("truncated", GOOD_PIECES[:-3], "exceeds the", "cut inside the last piece")
spm_case("truncated-varint", GOOD_PIECES + b"\x80", "truncated", "a tag varint cut after its first byte")
spm_case("varint-too-long", GOOD_PIECES + b"\xff" * 11, "varint", "an 11-byte varint")
spm_case("length-lie", GOOD_PIECES + pb_varint(1 << 3 | 2) + pb_varint(1 << 40), "length 1099511627776 exceeds the",
         "a piece claiming 2^40 bytes")
spm_case("group-wire-type", GOOD_PIECES + pb_varint(7 << 3 | 3), "group fields", "a deprecated group field")
spm_case("wrong-wire-type", pb_field(1, 0, pb_varint(5)) + GOOD_PIECES, "ModelProto.pieces has wire type 0, expected 2",
         "pieces as a varint")
spm_case("unknown-piece-type", GOOD_PIECES + piece("b", 0, 9), "has unknown type 9", "piece type 9")
spm_case("piece-not-utf8", GOOD_PIECES + pb_field(1, 2, pb_field(1, 2, b"\xff\xfe")), "is not valid UTF-8",
         "a piece that is not UTF-8")
spm_case("text-file", b"this is not a protobuf\n", "SentencePiece model is not a valid protobuf", "a text file where the protobuf should be")


def tj_case(name, data, error, what, exit=65):
    case("tokenizer/" + name + ".json", data, ["convert", "--outtype", "f16"], exit, error, what,
         base="tiny-llama-bpe", replaces="tokenizer.json")


tj_case("tokenizer-deep-nesting", b'{"model": ' + b"[" * 80 + b"]" * 80 + b"}", "JSON nested too deeply", "80 nested arrays")
tj_case("tokenizer-not-utf8", b'{"model": {"type": "BPE", "vocab": {"\xff": 0}, "merges": []}}', "JSON text is not valid UTF-8",
        "a vocabulary entry that is not UTF-8")
tj_case("tokenizer-unigram", json.dumps({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}).encode(),
        "only BPE converts", "a Unigram model", exit=69)
tj_case("tokenizer-bad-id", json.dumps({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}).encode(),
        "model.vocab[\"a\"] is not a token id", "a negative token id")
def tiny_bpe_tokenizer(change):
    with open(os.path.join(ROOT, "tiny-llama-bpe", "tokenizer.json"), encoding="utf-8") as f:
        tokenizer = json.load(f)
    change(tokenizer)
    return json.dumps(tokenizer, ensure_ascii=False).encode()


tj_case("tokenizer-bad-merges", tiny_bpe_tokenizer(lambda t: t["model"].__setitem__("merges", [["a"]])),
        "unknown tokenizer merges format", "the real tokenizer with a merge of one part")
tj_case("tokenizer-id-past-vocab", tiny_bpe_tokenizer(lambda t: t["model"]["vocab"].__setitem__("zz", 1 << 40)),
        "is not below config.json's vocab_size", "the real tokenizer with a token id of 2^40")
tj_case("tokenizer-model-not-object", json.dumps({"model": "BPE"}).encode(), "model must be an object", "model as a string")

# ---------------------------------------------------------------------------------------------
# Model card front matter (convert reads README.md of the input directory)


def card_case(name, data, error, what, exit=65):
    case("model-card/" + name + ".md", data, ["convert", "--outtype", "f16"], exit, error, what,
         base="tiny-llama-spm", replaces="README.md")


card_case("not-utf8", b"---\nlicense: mit\xff\n---\n", "not valid UTF-8", "a 0xFF byte in the front matter")
card_case("unterminated-quote", b'---\nlicense: "mit\n---\n', "unterminated quoted scalar", "a quote never closed")
card_case("deep-nesting", b"---\ntags:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 90)) + b"---\n",
          "nesting deeper than 64 levels", "89 nested block sequences", exit=69)
card_case("deep-flow-nesting", b"---\ntags: " + b"[" * 100 + b"]" * 100 + b"\n---\n",
          "nesting deeper than 64 levels", "100 nested flow sequences", exit=69)
card_case("bad-indentation", b"---\nlicense: mit\n  tags: [a]\n---\n", "mapping values are not allowed here",
          "a key indented under a scalar")

# ---------------------------------------------------------------------------------------------
# bitsandbytes checkpoints: a minimal NF4 model directory (one 64x64 weight) with one piece broken.

BNB_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "quantization_config": {"quant_method": "bitsandbytes", "_load_in_4bit": True, "_load_in_8bit": False,
                            "load_in_4bit": True, "load_in_8bit": False, "bnb_4bit_quant_type": "nf4",
                            "bnb_4bit_use_double_quant": False, "bnb_4bit_compute_dtype": "float32",
                            "bnb_4bit_quant_storage": "uint8", "llm_int8_threshold": 6.0,
                            "llm_int8_skip_modules": None, "llm_int8_has_fp16_weight": False,
                            "llm_int8_enable_fp32_cpu_offload": False},
}
NF4_LEVELS = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0]


def bnb_checkpoint(state_json, weight="model.layers.0.mlp.up_proj.weight", rows=64, cols=64, pieces=None):
    n = rows * cols
    blocks = n // 64
    tensors = {
        weight: ("U8", [n // 2, 1], bytes(range(256)) * (n // 2 // 256)),
        weight + ".absmax": ("F32", [blocks], f32(*([0.5] * blocks))),
        weight + ".quant_map": ("F32", [16], f32(*NF4_LEVELS)),
        weight + ".quant_state.bitsandbytes__nf4": ("U8", [len(state_json)], state_json),
    }
    if pieces:
        pieces(tensors)
    entries, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    return st(entries, data)


GOOD_STATE = json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64]}).encode()


BNB_CONFIGS = {}


def bnb_case(name, state=GOOD_STATE, error="", what="", exit=65, pieces=None, config=None):
    case("bnb/" + name + "/model.safetensors", bnb_checkpoint(state, pieces=pieces), ["dequantize"], exit, error, what)
    if config is not None:
        BNB_CONFIGS["bnb/" + name + "/model.safetensors"] = config


bnb_case("valid", error="", what="a minimal valid NF4 checkpoint (control)", exit=0)
bnb_case("state-not-json", b"{quant_type: nf4}", "invalid bitsandbytes quant_state: invalid JSON", "quant-state bytes that are not JSON")
bnb_case("state-huge-shape", json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "float32",
                                         "shape": [9223372036854775807]}).encode(),
         "has shape [2048, 1], expected [4611686018427387904, 1]",
         "a quant-state shape of 2^63-1 elements (fuzz finding: the block and byte counts overflowed)")
bnb_case("state-shape-overflow", json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "float32",
                                             "shape": [4294967296, 4294967296]}).encode(),
         "has too many elements", "a quant-state shape whose product overflows")
bnb_case("state-unknown-type", json.dumps({"quant_type": "nf5", "blocksize": 64, "dtype": "float32",
                                           "shape": [64, 64]}).encode(), "unknown bitsandbytes 4-bit type 'nf5'",
         "quant_type nf5", exit=69)
bnb_case("state-type-mismatch", json.dumps({"quant_type": "fp4", "blocksize": 64, "dtype": "float32",
                                            "shape": [64, 64]}).encode(), "fp4", "the entry name says nf4, the JSON fp4")
bnb_case("state-zero-blocksize", json.dumps({"quant_type": "nf4", "blocksize": 0, "dtype": "float32",
                                             "shape": [64, 64]}).encode(), "\"blocksize\" is not a positive integer",
         "blocksize 0")
bnb_case("state-nested-incomplete", json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "float32",
                                                "shape": [64, 64], "nested_blocksize": 256}).encode(),
         "double quantization keys incomplete", "nested_blocksize without nested_dtype and nested_offset")
bnb_case("state-bad-dtype", json.dumps({"quant_type": "nf4", "blocksize": 64, "dtype": "int4",
                                        "shape": [64, 64]}).encode(), "unsupported dtype \"int4\"", "dtype int4", exit=69)
bnb_case("config-bad-flag", error="config.json quantization_config: \"load_in_4bit\" is not a boolean",
         what="load_in_4bit as a string in config.json",
         config=dict(BNB_CONFIG, quantization_config=dict(BNB_CONFIG["quantization_config"], load_in_4bit="yes")))
bnb_case("config-says-8bit", error="says 8-bit, but the weights include 4-bit",
         what="config.json says int8, the weights are NF4",
         config=dict(BNB_CONFIG, quantization_config=dict(BNB_CONFIG["quantization_config"], load_in_4bit=False,
                                                          _load_in_4bit=False, load_in_8bit=True, _load_in_8bit=True)))
bnb_case("missing-absmax", error="absmax", what="the absmax piece removed",
         pieces=lambda t: t.pop("model.layers.0.mlp.up_proj.weight.absmax"))
bnb_case("absmax-wrong-shape", error="absmax", what="absmax with 63 blocks instead of 64",
         pieces=lambda t: t.__setitem__("model.layers.0.mlp.up_proj.weight.absmax", ("F32", [63], f32(*([0.5] * 63)))))

# ---------------------------------------------------------------------------------------------
# NaN weights in an otherwise valid model: quantize refuses them.


def nan_model():
    values = [0.01 * ((i * 37) % 101 - 50) for i in range(64 * 64)]
    values[5] = float("nan")
    return st({"model.layers.0.mlp.up_proj.weight": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 64 * 64 * 4]}},
              f32(*values))


case("nan-weights/model.safetensors", nan_model(), ["quantize", "--nf4"], 65, "element 5 is nan",
     "a NaN in a weight of an otherwise valid model")

# ---------------------------------------------------------------------------------------------
# PEFT adapter_config.json, inside a copy of a golden LoRA adapter (convert-adapter reads it
# first; the fuzz target peft-adapter-config runs the same reader).

PEFT_ADAPTER = "golden/lora/tiny-llama-spm-lora"
with open(os.path.join(ROOT, PEFT_ADAPTER, "adapter_config.json"), encoding="utf-8") as f:
    PEFT_CONFIG = json.load(f)


def peft_case(name, change, error, what, exit=65, raw=None):
    config = dict(PEFT_CONFIG)
    for key, value in change.items():
        if value is KeyError:
            config.pop(key, None)
        else:
            config[key] = value
    data = raw if raw is not None else json.dumps(config, indent=2, sort_keys=True).encode("utf-8")
    case("peft/" + name + ".json", data, ["convert-adapter"], exit, error, what, base=PEFT_ADAPTER,
         replaces="adapter_config.json")


peft_case("not-json", {}, "invalid JSON at byte", "cut in the middle", raw=b'{"r": 8, "lora_alpha":')
peft_case("not-object", {}, '"(root)" is not a JSON object', "a JSON array", raw=b"[8, 16]")
peft_case("duplicate-key", {}, "duplicate", "r given twice", raw=b'{"peft_type": "LORA", "r": 8, "r": 4}')
peft_case("rank-missing", {"r": KeyError}, '"r" is missing', "no r")
peft_case("rank-zero", {"r": 0}, '"r" is not a positive integer', "r = 0")
peft_case("rank-float", {"r": 8.5}, '"r" is not a positive integer', "r = 8.5")
peft_case("rank-string", {"r": "8"}, '"r" is not a positive integer', "r as a string")
peft_case("alpha-infinite", {}, '"lora_alpha" is not a finite number', "lora_alpha 1e999 (json-c reads infinity)",
          raw=json.dumps(dict(PEFT_CONFIG, lora_alpha=0), sort_keys=True).replace('"lora_alpha": 0', '"lora_alpha": 1e999').encode())
peft_case("dropout-one", {"lora_dropout": 1.0}, '"lora_dropout" is not a number in [0, 1)', "lora_dropout 1.0")
peft_case("peft-type-prefix", {"peft_type": "PREFIX_TUNING"}, "peft_type is PREFIX_TUNING; only LORA adapters are supported",
          "a prefix-tuning adapter", exit=69)
peft_case("peft-type-number", {"peft_type": 1}, '"peft_type" is not a string', "peft_type a number")
peft_case("dora", {"use_dora": True}, "DoRA (use_dora: true)", "a DoRA adapter", exit=69)
peft_case("fan-in-fan-out-string", {"fan_in_fan_out": "yes"}, '"fan_in_fan_out" is not true or false', "fan_in_fan_out a string")
peft_case("use-dora-string", {"use_dora": "yes"}, '"use_dora" is not true or false', "use_dora a string")
peft_case("bias-all", {"bias": "all"}, 'bias training ("bias": "all") is not supported', "bias all", exit=69)
peft_case("targets-number", {"target_modules": 5}, '"target_modules" is not a list of strings or a string', "target_modules a number")
peft_case("targets-mixed", {"target_modules": ["q_proj", 3]}, '"target_modules" is not a list of strings or a string',
          "a number in target_modules")
peft_case("targets-bad-regex", {"target_modules": ".*(q_proj"}, '"target_modules" pattern .*(q_proj is not a regular expression',
          "an unbalanced parenthesis in the target_modules regex")
peft_case("rank-pattern-negative", {"rank_pattern": {"q_proj": -1}},
          '"rank_pattern" value for q_proj is not a positive integer', "a negative rank in rank_pattern")
peft_case("rank-pattern-not-object", {"rank_pattern": ["q_proj", 4]}, '"rank_pattern" is not an object', "rank_pattern a list")
peft_case("alpha-pattern-string", {"alpha_pattern": {"q_proj": "16"}},
          '"alpha_pattern" value for q_proj is not a number', "an alpha as a string in alpha_pattern")
peft_case("rank-pattern-bad-regex", {"rank_pattern": {"[q_proj": 4}}, '"rank_pattern" pattern [q_proj is not a regular expression',
          "an unbalanced bracket in a rank_pattern key")
peft_case("alpha-pattern-nested-repetition", {"alpha_pattern": {"la(.*)*1.sef_alttn.v_proj": 3}},
          '"alpha_pattern" pattern la(.*)*1.sef_alttn.v_proj is refused: a repeated group holds a repetition',
          "nested repetition in an alpha_pattern key (found by fuzzing: it hung the merge)")
peft_case("targets-exponential-regex", {"target_modules": "(.*_)*proj"},
          '"target_modules" pattern (.*_)*proj is refused', "nested repetition in the target_modules regex")
peft_case("deep-nesting", {}, "JSON nested too deeply", "100 nested arrays in an unused field",
          raw=b'{"r": 8, "x": ' + b"[" * 100 + b"]" * 100 + b"}")

# ---------------------------------------------------------------------------------------------
# Derived by the test from valid fixtures (not stored here).

for fraction in ["0.1", "0.5", "0.99"]:
    case("derived/tiny-llama-spm.f16.gguf@" + fraction, None, ["inspect"], 65, "tensor '", "the real tiny GGUF cut at "
         + fraction + " of its size", derive={"from": "golden/tiny-llama-spm.f16.gguf", "truncate": float(fraction)})
    case("derived/tiny-llama-spm.model.safetensors@" + fraction, None, ["inspect"], 65, "but its tensors end at byte",
         "the real tiny safetensors cut at " + fraction + " of its size",
         derive={"from": "tiny-llama-spm/model.safetensors", "truncate": float(fraction)})
case("derived/tiny-llama-spm.f16.gguf+type99", None, ["convert"], 69, "cannot read elements of type type99",
     "the real tiny GGUF with one tensor's type set to 99: inspect reads it, convert refuses it",
     derive={"from": "golden/tiny-llama-spm.f16.gguf", "tensorType": {"tensor": "blk.0.ffn_up.weight", "type": 99}})


# ---------------------------------------------------------------------------------------------


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    expected = []
    for c in CASES:
        if c["data"] is not None:
            path = os.path.join(OUT, c["path"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(c["data"])
        entry = {"path": c["path"], "command": c["command"], "exit": c["exit"], "error": c["error"], "what": c["what"]}
        # A bitsandbytes or NaN case is a model directory: its config.json sits beside the weights.
        if c["path"].startswith(("bnb/", "nan-weights/")):
            directory = os.path.join(OUT, os.path.dirname(c["path"]))
            config = BNB_CONFIGS.get(c["path"], BNB_CONFIG) if c["path"].startswith("bnb/") \
                else {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
            with open(os.path.join(directory, "config.json"), "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
                f.write("\n")
            entry["input"] = os.path.dirname(c["path"])
        for key in ["output", "base", "replaces", "stdout", "derive"]:
            if c[key] is not None:
                entry[key] = c[key]
        expected.append(entry)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"cases": expected}, f, indent=1)
        f.write("\n")
    write_readme(expected)


def write_readme(expected):
    lines = [
        "# Malformed inputs",
        "",
        "Broken model files and the error wconv must report for each: a one-line",
        "`error: <path>: <what>` on stderr and the exit code of the README table (65 malformed, 66",
        "missing, 69 unsupported; 0 for the few controls). Generated by",
        "`testdata/scripts/make_malformed.py` (which says how each file is built);",
        "`expected.json` holds the same table for `Tests/wconvTests/FaultMalformedCorpusTests.swift`,",
        "which runs every case with the built binary and also checks that no output appears and that",
        "the input is unchanged.",
        "",
        "- **path**: the file; for a model directory (bnb/, nan-weights/) the command gets the directory.",
        "- **base**: the case runs on a copy of that testdata directory with `replaces` swapped for the file.",
        "- **derived**: built by the test from a valid fixture (cut at a fraction of its size, or one",
        "  tensor's type changed), so no copy of a large file is stored.",
        "- **error**: a fragment of the message (empty: any message, or none for exit 0).",
        "- **output** (convert, quantize, dequantize): the output name, inside a fresh directory; it must",
        "  not exist afterwards when the command fails, and no temporary file may be left beside it.",
        "",
        "| file | what is wrong | command | exit | error contains |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in expected:
        where = e["path"]
        if "base" in e:
            where += " (as %s/%s)" % (e["base"], e["replaces"])
        if "input" in e:
            where += " (directory %s/)" % e["input"]
        command = "wconv " + " ".join(e["command"][:1] + ["…"] + e["command"][1:])
        if "output" in e:
            command = "wconv " + e["command"][0] + " … -o " + e["output"] + "".join(" " + a for a in e["command"][1:])
        error = e["error"].replace("|", "\\|")
        if e.get("stdout"):
            error = "stdout: " + e["stdout"]
        lines.append("| `%s` | %s | `%s` | %d | %s |" % (where, e["what"], command, e["exit"],
                                                       "`%s`" % error if error else "—"))
    lines.append("")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
