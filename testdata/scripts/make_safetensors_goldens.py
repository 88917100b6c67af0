#!/usr/bin/env python3
"""Golden files for wconv's safetensors reader/writer and sharding tests.

Everything written here comes from the reference implementations, never from wconv:

  writer goldens   safetensors (Rust core, via the Python package) `serialize`
  reader verdicts  safetensors `deserialize` run on hand-built byte strings
  shard splits     huggingface_hub `split_state_dict_into_shards_factory` (what transformers'
                   `save_pretrained` calls) plus the index exactly as transformers writes it
  sharded model    transformers `save_pretrained(max_shard_size=...)` of a tiny random LLaMA
                   (skipped, keeping the committed files, when torch/transformers are missing)

Requirements: safetensors==0.8.0 numpy huggingface_hub (and optionally torch + transformers 5.x).
Usage: python3 testdata/scripts/make_safetensors_goldens.py   (writes testdata/golden/safetensors/)
"""

import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, serialize

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "golden", "safetensors"))

# safetensors dtype -> the dtype name TensorSpec accepts (torch spelling).
SPEC_NAME = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32",
    "F32": "float32", "C64": "complex64", "F64": "float64", "I64": "int64", "U64": "uint64",
    "F4": "float4_e2m1fn_x2",
}
BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
        "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def nbytes(dtype, shape):
    return numel(shape) * BITS[dtype] // 8


def pattern(seed, count, dtype):
    """Deterministic tensor bytes (0/1 for BOOL so the data is a valid bool tensor)."""
    if dtype == "BOOL":
        return bytes((seed + i) % 2 for i in range(count))
    return bytes((seed * 31 + i * 7 + 3) & 0xFF for i in range(count))


def reference_serialize(tensors, metadata):
    """tensors: list of (name, dtype, shape, bytes) in insertion order."""
    keep = []
    specs = {}
    for name, dtype, shape, data in tensors:
        buf = np.frombuffer(data, dtype=np.uint8).copy() if data else np.zeros(1, np.uint8)
        keep.append(buf)
        storage_shape = list(shape)
        if dtype == "F4":  # TensorSpec takes torch's packed storage shape and doubles the last dim
            storage_shape[-1] //= 2
        specs[name] = TensorSpec(dtype=SPEC_NAME[dtype], shape=storage_shape, data_ptr=buf.ctypes.data, data_len=len(data))
    return bytes(serialize(specs, metadata=metadata))


def writer_goldens():
    cases = []

    def case(file, metadata, tensors):
        full = [(n, d, s, pattern(i + 1, nbytes(d, s), d)) for i, (n, d, s) in enumerate(tensors)]
        blob = reference_serialize(full, metadata)
        with open(os.path.join(OUT, file), "wb") as f:
            f.write(blob)
        # Check the reference reads its own output back.
        deserialize(blob)
        cases.append({
            "file": file,
            "metadata": None if metadata is None else [[k, v] for k, v in metadata.items()],
            "tensors": [{"name": n, "dtype": d, "shape": s, "data_hex": b.hex()} for n, d, s, b in full],
        })

    # Insertion order deliberately differs from the written order (dtype rank, then name bytes).
    case("mixed.safetensors", {"format": "pt"}, [
        ("model.layers.10.weight", "F16", [2, 3]),
        ("model.layers.2.weight", "F16", [3]),
        ("Model.bias", "F16", [1]),
        ("scale", "F32", []),
        ("ids", "I64", [2]),
        ("empty", "F32", [0, 3]),
        ("mask", "BOOL", [5]),
        ("norm", "BF16", [4]),
        ("codes", "U8", [7]),
        ("b", "F32", [2]),
        ("a", "F32", [2]),
    ])
    # F4 packs two elements per byte along the last dimension, which must be even.
    all_dtypes = [("t_" + d.lower(), d, [3, 2] if d == "F4" else [2, 3]) for d in SPEC_NAME]
    all_dtypes.append(("t_scalar_f64", "F64", []))
    all_dtypes.append(("t_empty_u8", "U8", [0]))
    case("all_dtypes.safetensors", {"format": "pt"}, all_dtypes)
    case("no_metadata.safetensors", None, [("weight", "F32", [2, 2]), ("bias", "F32", [2])])
    case("escaped_names.safetensors", {"note": "caf\u00e9 \"quoted\" \\ tab\t \u65e5\u672c \U0001F600"}, [
        ("quote\"name", "U8", [1]),
        ("back\\slash", "U8", [1]),
        ("new\nline", "U8", [1]),
        ("tab\there", "U8", [1]),
        ("ctrl\x01\x1f", "U8", [1]),
        ("del\x7f", "U8", [1]),
        ("caf\u00e9", "U8", [1]),
        ("\u65e5\u672c", "U8", [1]),
        ("emoji\U0001F600", "U8", [1]),
        ("zz", "U8", [1]),
        ("\u00ff", "U8", [1]),
    ])
    case("empty.safetensors", None, [])
    case("metadata_only.safetensors", {"format": "pt"}, [])
    with open(os.path.join(OUT, "writer_cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=True)
        f.write("\n")


def reader_verdicts():
    """Hand-built files and whether the reference accepts them."""
    def raw(header, data=b"", n=None):
        hb = header.encode() if isinstance(header, str) else header
        return struct.pack("<Q", len(hb) if n is None else n) + hb + data

    u8 = lambda name, b, e, shape=None: '"%s":{"dtype":"U8","shape":%s,"data_offsets":[%d,%d]}' % (
        name, json.dumps(shape if shape is not None else [e - b]), b, e)
    files = {
        "valid_two_tensors": raw("{%s,%s}" % (u8("a", 0, 2), u8("b", 2, 3)), b"\0\0\0"),
        "json_order_differs_from_offsets": raw("{%s,%s}" % (u8("b", 2, 3), u8("a", 0, 2)), b"\0\0\0"),
        "too_small": b"\x01\x00\x00",
        "header_too_large": raw("{}", n=100_000_001),
        "header_past_end": raw("{}", n=3),
        "not_utf8": raw(b'{"\xff":1}'),
        "not_json": raw("{"),
        "not_object": raw("[]"),
        "nul_padding": raw("{}\0\0\0\0\0\0"),
        "leading_trailing_spaces": raw("   {}   "),
        "whitespace_newlines": raw("\n{}\t\r\n"),
        "empty_object": raw("{}"),
        "metadata_null": raw('{"__metadata__":null}'),
        "metadata_strings": raw('{"__metadata__":{"format":"pt","x":"y"}}'),
        "metadata_non_string": raw('{"__metadata__":{"a":1}}'),
        "metadata_array": raw('{"__metadata__":[]}'),
        "unknown_dtype": raw('{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,1]}}', b"\0"),
        "lowercase_dtype": raw('{"a":{"dtype":"u8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
        "missing_shape": raw('{"a":{"dtype":"U8","data_offsets":[0,1]}}', b"\0"),
        "missing_dtype": raw('{"a":{"shape":[1],"data_offsets":[0,1]}}', b"\0"),
        "missing_offsets": raw('{"a":{"dtype":"U8","shape":[1]}}', b"\0"),
        "three_offsets": raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', b"\0"),
        "float_shape": raw('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', b"\0"),
        "negative_shape": raw('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', b"\0"),
        "string_shape": raw('{"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}', b"\0"),
        "entry_not_object": raw('{"a":"x"}'),
        "extra_entry_field": raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[1,2]}}', b"\0"),
        "duplicate_name": raw("{%s,%s}" % (u8("a", 0, 1), u8("a", 1, 2)), b"\0\0"),
        "duplicate_field": raw('{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
        "gap": raw("{%s,%s}" % (u8("a", 0, 1), u8("b", 2, 3)), b"\0\0\0"),
        "overlap": raw("{%s,%s}" % (u8("a", 0, 2), u8("b", 1, 2, [1])), b"\0\0"),
        "first_not_zero": raw("{%s}" % u8("a", 1, 2), b"\0\0"),
        "end_before_begin": raw('{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}'),
        "size_mismatch": raw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', b"\0" * 4),
        "element_count_overflow": raw('{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}'),
        "bit_count_overflow": raw('{"a":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,0]}}'),
        "trailing_bytes": raw("{%s}" % u8("a", 0, 1), b"\0\0"),
        "data_short": raw("{%s}" % u8("a", 0, 2), b"\0"),
        "zero_rank": raw('{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', b"\0" * 4),
        "empty_tensor": raw('{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}'),
        "empty_tensors_share_offset": raw('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"I8","shape":[0],"data_offsets":[0,0]}}'),
        "f4_whole_bytes": raw('{"a":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}', b"\0\0"),
        "f4_half_byte": raw('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}', b"\0"),
        "f6_e2m3_whole_bytes": raw('{"a":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}', b"\0" * 3),
        "f6_e3m2_whole_bytes": raw('{"a":{"dtype":"F6_E3M2","shape":[8],"data_offsets":[0,6]}}', b"\0" * 6),
        "f6_partial_byte": raw('{"a":{"dtype":"F6_E3M2","shape":[2],"data_offsets":[0,1]}}', b"\0"),
        "f8_variants": raw('{%s}' % ",".join(
            '"%s":{"dtype":"%s","shape":[1],"data_offsets":[%d,%d]}' % (d, d, i, i + 1)
            for i, d in enumerate(["F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ"])), b"\0" * 5),
        "offset_above_int64": raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}}', b"\0"),
    }
    verdicts = []
    for name, blob in files.items():
        try:
            out = deserialize(blob)
            verdict = {"case": name, "accepted": True,
                       "tensors": sorted([[k, v["dtype"], list(v["shape"])] for k, v in out])}
        except Exception as e:  # the reference's message, for the record
            verdict = {"case": name, "accepted": False, "reference_error": str(e)}
        verdict["hex"] = blob.hex()
        verdicts.append(verdict)
    with open(os.path.join(OUT, "reader_cases.json"), "w") as f:
        json.dump(verdicts, f, indent=1)
        f.write("\n")


class Fake:
    """Stands in for a tensor: huggingface_hub only asks for its storage size."""
    def __init__(self, dtype, shape):
        self.dtype, self.shape = dtype, shape
        self.size = nbytes(dtype, shape)


def transformers_index(split, total_parameters):
    # What transformers 5.24 `save_pretrained` writes for a sharded checkpoint.
    index = {"metadata": {"total_parameters": total_parameters, **split.metadata},
             "weight_map": split.tensor_to_filename}
    return json.dumps(index, indent=2, sort_keys=True) + "\n"


def sharding_cases():
    from huggingface_hub import split_state_dict_into_shards_factory
    from huggingface_hub.serialization._base import parse_size_to_int

    layouts = {
        "greedy": [("w%d" % i, "F32", [s]) for i, s in enumerate([10, 20, 5, 30, 5, 5, 25])],
        "oversized_in_the_middle": [("a", "F16", [10]), ("big", "F32", [100]), ("c", "F16", [10]),
                                    ("d", "BF16", [40]), ("e", "U8", [3])],
        "mixed_dtypes": [("model.embed_tokens.weight", "BF16", [8, 4]), ("model.layers.0.q.weight", "BF16", [4, 4]),
                         ("model.layers.0.k.weight", "BF16", [2, 4]), ("model.layers.0.norm.weight", "F32", [4]),
                         ("model.layers.1.q.weight", "BF16", [4, 4]), ("model.norm.weight", "F32", [4]),
                         ("lm_head.weight", "BF16", [8, 4]), ("scale", "F32", [])],
        "empty_tensors": [("x", "F32", [0]), ("y", "F32", [4]), ("z", "U8", [0, 2]), ("w", "F32", [4])],
    }
    limits = [1, 40, 64, 128, 10_000]
    cases = []
    for layout_name, tensors in layouts.items():
        state = {n: Fake(d, s) for n, d, s in tensors}
        for limit in limits:
            split = split_state_dict_into_shards_factory(
                state, get_storage_size=lambda t: t.size, filename_pattern="model{suffix}.safetensors",
                max_shard_size=limit)
            total_parameters = sum(numel(s) for _, _, s in tensors)
            cases.append({
                "layout": layout_name,
                "max_shard_size": limit,
                "tensors": [{"name": n, "dtype": d, "shape": s} for n, d, s in tensors],
                "shards": [[file, names] for file, names in split.filename_to_tensors.items()],
                "total_size": split.metadata["total_size"],
                "index_json": transformers_index(split, total_parameters) if split.is_sharded else None,
            })
    sizes = ["5GB", "50GB", "1.5GB", "200KB", "10MB", " 3kb ", "0.1GB", "2TB"]
    with open(os.path.join(OUT, "sharding_cases.json"), "w") as f:
        json.dump({"cases": cases, "parse_size": [[s, parse_size_to_int(s)] for s in sizes]}, f, indent=1)
        f.write("\n")


def sharded_model():
    """A tiny LLaMA saved by transformers with a small max_shard_size: shards + index + config."""
    try:
        import torch
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        print("torch/transformers not installed: keeping the committed tiny-llama-sharded/", file=sys.stderr)
        return
    torch.manual_seed(1234)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    dest = os.path.join(OUT, "tiny-llama-sharded")
    shutil.rmtree(dest, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, max_shard_size="2KB")
        os.makedirs(dest)
        for name in sorted(os.listdir(tmp)):
            shutil.copy(os.path.join(tmp, name), os.path.join(dest, name))
    state = model.state_dict()
    manifest = {
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
        "max_shard_size": 2000,
        "state_dict_order": list(state.keys()),
        "total_parameters": model.num_parameters(),
        "files": sorted(os.listdir(dest)),
    }
    with open(os.path.join(OUT, "tiny-llama-sharded.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def main():
    assert safetensors.__version__ == "0.8.0", "goldens are pinned to safetensors 0.8.0, found " + safetensors.__version__
    os.makedirs(OUT, exist_ok=True)
    writer_goldens()
    reader_verdicts()
    sharding_cases()
    sharded_model()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
