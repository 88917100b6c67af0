#!/usr/bin/env python3
"""GGUF goldens for wconv's reader and writer tests, made with gguf-py (PyPI `gguf` 0.19.0).

Requirements: pip install gguf==0.19.0 numpy

Run from anywhere:  python testdata/scripts/dump_gguf.py

It does two things, writing under testdata/golden/gguf/:

1. Writes small GGUF files with gguf-py's own GGUFWriter, whose bytes wconv's writer must
   reproduce exactly from the same inputs (the inputs are repeated in
   Tests/FormatsTests/GGUFWriterTests.swift):
     pywriter-all-types.gguf   one KV of every value type, an array of every element type,
                               tensors of several types and ranks, default alignment (32)
     pywriter-align64.gguf     a custom alignment (general.alignment = 64)

2. Dumps, with gguf-py's GGUFReader, what a reader must find in each GGUF file: version,
   counts, alignment, data offset, every metadata entry (type, element type, value) and every
   tensor (name, ggml type, ne as stored, offset relative to the data section, byte count and an
   FNV-1a 64 hash of its data), to <name>.json. Inputs: the llama.cpp converter fixtures in
   testdata/vectors/fixtures/ (tiny-f16.gguf, tiny-q8_0.gguf) and the two files above.
"""

import json
import math
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGUFValueType, GGMLQuantizationType

ROOT = Path(__file__).resolve().parent.parent  # testdata/
OUT = ROOT / "golden" / "gguf"
FIXTURES = ROOT / "vectors" / "fixtures"


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# --- 1. files written by gguf-py's GGUFWriter -------------------------------------------------

def write_all_types(path: Path) -> None:
    w = GGUFWriter(path, arch="wconv-test")  # adds general.architecture first
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 60000)
    w.add_int16("test.int16", -30000)
    w.add_uint32("test.uint32", 4000000000)
    w.add_int32("test.int32", -2000000000)
    w.add_float32("test.float32", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo \u2713 world")
    w.add_uint64("test.uint64", 2**63 + 5)
    w.add_int64("test.int64", -(2**62) - 7)
    w.add_float64("test.float64", 1.0 / 3.0)
    A = GGUFValueType.ARRAY
    w.add_key_value("test.array.uint8", [0, 1, 255], A, sub_type=GGUFValueType.UINT8)
    w.add_key_value("test.array.int8", [-128, 0, 127], A, sub_type=GGUFValueType.INT8)
    w.add_key_value("test.array.uint16", [0, 65535], A, sub_type=GGUFValueType.UINT16)
    w.add_key_value("test.array.int16", [-32768, 32767, -1], A, sub_type=GGUFValueType.INT16)
    w.add_key_value("test.array.uint32", [1, 4294967295], A, sub_type=GGUFValueType.UINT32)
    w.add_key_value("test.array.int32", [-2147483648, 2147483647, 3], A, sub_type=GGUFValueType.INT32)
    w.add_key_value("test.array.float32", [0.5, -1.25, 3.0e38, 1.0e-40], A, sub_type=GGUFValueType.FLOAT32)
    w.add_key_value("test.array.bool", [True, False, True], A, sub_type=GGUFValueType.BOOL)
    w.add_key_value("test.array.string", ["a", "", "tok\u2581en", "\u00ff\U0001F600"], A,
                    sub_type=GGUFValueType.STRING)
    w.add_key_value("test.array.uint64", [0, 18446744073709551615], A, sub_type=GGUFValueType.UINT64)
    w.add_key_value("test.array.int64", [-9223372036854775808, 9223372036854775807], A,
                    sub_type=GGUFValueType.INT64)
    w.add_key_value("test.array.float64", [0.1, -2.5e300, 5e-324], A, sub_type=GGUFValueType.FLOAT64)

    # Sizes chosen so most tensors need padding (60, 14, 24, 136, 4, 24 bytes).
    w.add_tensor("f32.matrix", (np.arange(15, dtype=np.float32) * 0.5 - 3.0).reshape(3, 5))
    w.add_tensor("f16.vector", np.array([-1, -0.5, 0, 0.25, 1.5, 2, 65504], dtype=np.float16))
    w.add_tensor("i8.cube", (np.arange(24, dtype=np.int8) - 12).reshape(2, 3, 4))
    q8 = np.array([(i * 37 + 11) & 0xFF for i in range(2 * 34 * 2)], dtype=np.uint8).reshape(2, 68)
    w.add_tensor("q8_0.raw", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("i32.one", np.array([7], dtype=np.int32))
    w.add_tensor("f32.rank4", (np.arange(6, dtype=np.float32) + 1).reshape(1, 2, 1, 3))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_align64(path: Path) -> None:
    w = GGUFWriter(path, arch="wconv-test")
    w.add_custom_alignment(64)
    w.add_uint32("test.count", 3)
    w.add_tensor("a", np.arange(5, dtype=np.float32))
    w.add_tensor("b", np.arange(3, dtype=np.int16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- 2. dumps read with gguf-py's GGUFReader --------------------------------------------------

def json_float(x: float):
    # JSON has no NaN/Inf; none of the inputs has them, but fail loudly if one appears.
    if not math.isfinite(x):
        raise ValueError(f"non-finite float {x}")
    return x


def field_entry(field) -> dict:
    types = field.types
    main = types[0]
    entry = {"key": field.name, "type": main.name}
    if main == GGUFValueType.ARRAY:
        sub = types[-1]
        entry["element_type"] = sub.name
        values = field.contents()
        if sub in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            values = [json_float(float(v)) for v in values]
        elif sub == GGUFValueType.BOOL:
            values = [bool(v) for v in values]
        elif sub == GGUFValueType.UINT64:
            values = [str(int(v)) for v in values]  # JSON readers may not hold u64 above 2^63 exactly
        elif sub != GGUFValueType.STRING:
            values = [int(v) for v in values]
        entry["value"] = values
    else:
        v = field.contents()
        if main in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            v = json_float(float(v))
        elif main == GGUFValueType.BOOL:
            v = bool(v)
        elif main == GGUFValueType.UINT64:
            v = str(int(v))  # as a decimal string, see above
        elif main != GGUFValueType.STRING:
            v = int(v)
        entry["value"] = v
    return entry


def dump(path: Path) -> dict:
    r = GGUFReader(path)
    raw = path.read_bytes()
    fields = list(r.fields.values())
    # The first three fields are gguf-py's pseudo-fields for the header.
    header = {f.name: f for f in fields[:3]}
    assert list(header) == ["GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"], list(header)
    tensors = []
    for t in r.tensors:
        start = int(t.data_offset)
        n = int(t.n_bytes)
        tensors.append({
            "name": t.name,
            "type": int(t.tensor_type),
            "type_name": t.tensor_type.name,
            "ne": [int(d) for d in t.shape],  # gguf-py's ReaderTensor.shape is ne, as stored
            "offset": start - int(r.data_offset),
            "n_bytes": n,
            "fnv1a64": fnv1a64(raw[start:start + n]),
        })
    return {
        "source": path.name,
        "file_size": len(raw),
        "version": int(header["GGUF.version"].contents()),
        "tensor_count": int(header["GGUF.tensor_count"].contents()),
        "kv_count": int(header["GGUF.kv_count"].contents()),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": [field_entry(f) for f in fields[3:]],
        "tensors": tensors,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_all_types(OUT / "pywriter-all-types.gguf")
    write_align64(OUT / "pywriter-align64.gguf")
    inputs = [FIXTURES / "tiny-f16.gguf", FIXTURES / "tiny-q8_0.gguf",
              OUT / "pywriter-all-types.gguf", OUT / "pywriter-align64.gguf"]
    for path in inputs:
        out = OUT / (path.stem + ".json")
        out.write_text(json.dumps(dump(path), indent=1) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    print(f"gguf-py {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
