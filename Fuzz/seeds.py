#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target from testdata/ (standard library only).

    Fuzz/seeds.py OUTDIR        # OUTDIR/<target>/<seed files>

Seeds are small on purpose: the fuzzer mutates short inputs far faster (the small files of
testdata/malformed/ are seeds too, bitsandbytes checkpoints of a few KB among them). Large test
files are reduced (GGUF files cut after their tensor infos, SentencePiece models cut to their first pieces,
quant-state JSON taken out of bitsandbytes checkpoints) rather than copied whole. PEFT adapter
configs: the golden adapters' and the broken ones of testdata/malformed/peft/.
"""
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TESTDATA = os.path.join(ROOT, "testdata")
SEPARATOR = b"\n@@@@\n"  # Fuzz/Support/FuzzSupport.swift splitDocuments


def files(*suffixes, limit=1 << 20):
    for directory, _, names in sorted(os.walk(TESTDATA)):
        for name in sorted(names):
            path = os.path.join(directory, name)
            if name.endswith(suffixes) and os.path.getsize(path) <= limit:
                yield path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def save(out, target, data):
    directory = os.path.join(out, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def gguf_header_length(data):
    """Offset of the data section of a GGUF file (after the tensor infos, aligned)."""
    pos = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16
    alignment = 32
    fixed = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        return data[pos - n:pos]

    def value(t):
        nonlocal pos
        if t == 8:
            string()
        elif t == 9:
            (et, count) = struct.unpack_from("<IQ", data, pos)
            pos += 12
            for _ in range(count):
                value(et)
        else:
            pos += fixed[t]

    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if key == b"general.alignment":
            (alignment,) = struct.unpack_from("<I", data, pos)
        value(t)
    for _ in range(n_tensors):
        string()
        (n_dims,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * n_dims + 4 + 8
    return (pos + alignment - 1) // alignment * alignment


def safetensors_tensors(data):
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    return {name: data[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
            for name, t in header.items() if name != "__metadata__"}


def varint(data, pos):
    value, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def sentencepiece_prefix(data, pieces):
    """The model with only its first `pieces` pieces (field 1) and without its normalizer (field 3,
    whose precompiled charsmap is most of a real model's bytes); other fields kept."""
    out, pos, kept = bytearray(), 0, 0
    while pos < len(data):
        start = pos
        key, pos = varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = varint(data, pos)
            pos += n
        if key >> 3 == 1:
            kept += 1
            if kept > pieces:
                continue
        if key >> 3 == 3:
            continue
        out += data[start:pos]
    return bytes(out)


def main(out):
    for path in files(".safetensors", limit=32 << 10):
        save(out, "safetensors", read(path))
    for path in files(".safetensors", limit=1 << 20):
        try:
            tensors = safetensors_tensors(read(path))
        except (ValueError, struct.error, KeyError, TypeError, AttributeError):
            continue  # testdata/malformed/
        for name, payload in tensors.items():
            if ".quant_state." in name:
                save(out, "bnb-quant-state", payload)

    for path in files(".gguf"):
        data = read(path)
        save(out, "gguf", data if len(data) <= 16 << 10 else data[:gguf_header_length(data)])
    for path in files(".bin", limit=16 << 10):
        if "/malformed/" in path:
            save(out, "gguf", read(path))

    for path in files("adapter_config.json"):
        save(out, "peft-adapter-config", read(path))
    for path in files(".json"):
        if "/malformed/peft/" in path:
            save(out, "peft-adapter-config", read(path))
    for path in files(".json", limit=64 << 10):
        if "/golden/" not in path and "/vectors/" not in path or path.endswith("config.json"):
            save(out, "config", read(path))

    for path in files(".model"):
        data = read(path)
        save(out, "sentencepiece", data if len(data) <= 16 << 10 else sentencepiece_prefix(data, 300))

    for path in files("tokenizer.json"):
        directory = os.path.dirname(path)

        def part(name):
            p = os.path.join(directory, name)
            return read(p) if os.path.exists(p) else b""

        documents = [read(path), part("tokenizer_config.json"), part("config.json"), part("merges.txt")]
        save(out, "tokenizer-json", SEPARATOR.join(documents))
        save(out, "tokenizer-json", read(path))

    for path in files("front_matter.json", "front_matter_mutations.json", limit=1 << 20):
        for case in json.load(open(path, encoding="utf-8")):
            save(out, "model-card", case["readme"].encode("utf-8"))
    for path in files(".md"):
        data = read(path)
        if data.startswith(b"---"):
            save(out, "model-card", data)


if __name__ == "__main__":
    main(sys.argv[1])
