#!/usr/bin/env python3
"""Golden vectors for wconv's bitsandbytes codecs (Quantize/BNB), made with bitsandbytes itself.

Requirements (PyPI): torch (CPU build), bitsandbytes==0.50.2, numpy.
    python3 -m venv venv && venv/bin/pip install torch bitsandbytes==0.50.2 numpy
    venv/bin/python testdata/scripts/make_bnb_goldens.py   # run from the repository root

Writes testdata/vectors/bnb_goldens.json. Every byte array is lower-case hex; float32 arrays are the
hex of their little-endian bytes, so values survive exactly (NaN payloads and -0.0 included).
Inputs are either `testdata/vectors/input_4x256_f32le.bin` or regenerated from the LCG of
REFERENCE §13 (`lcg(seed, n)`) so the Swift tests can rebuild them without storing them.

What runs where (bitsandbytes 0.50.2, CPU):
- quantize_4bit: the pure-torch "default" kernel (bucketize on float32 midpoints).
- quantize_blockwise (double quantization of absmax): the C++ CPU kernel `cquantize_blockwise_cpu_fp32`
  (absmax, 1/absmax, then a 65536-entry lookup table).
- dequantize_4bit / dequantize_blockwise: the C++ CPU kernels (code * absmax in float32).
- int8_vectorwise_quant / int8_vectorwise_dequant: the pure-torch "default" kernels.
"""

import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch

import bitsandbytes
import bitsandbytes.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.join(ROOT, "testdata", "vectors")


def hexf32(t):
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32)).astype("<f4").tobytes().hex()


def hexu8(t):
    return np.ascontiguousarray(np.asarray(t, dtype=np.uint8)).tobytes().hex()


def hexi8(t):
    return np.ascontiguousarray(np.asarray(t, dtype=np.int8)).tobytes().hex()


def lcg(seed, n):
    """REFERENCE §13 generator: s = s*1103515245 + 12345 mod 2^32, advanced before each use;
    v = ((s >> 16) & 0x7FFF) / 16384 - 1 (exact in float32)."""
    s = seed
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = np.float32(((s >> 16) & 0x7FFF) / 16384.0 - 1.0)
    return out


def load_input_4x256():
    raw = open(os.path.join(VECTORS, "input_4x256_f32le.bin"), "rb").read()
    assert hashlib.sha256(raw).hexdigest() == "fe081df9bfaf2ca7fd25a6ad403cbf45d40074189c658518fee125aa343231cf"
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def four_bit_case(name, x, kind, blocksize, double_quant, input_spec, full_dequant=True):
    t = torch.from_numpy(np.array(x, dtype=np.float32))
    packed, state = F.quantize_4bit(t, blocksize=blocksize, compress_statistics=double_quant, quant_type=kind)
    case = {
        "name": name,
        "kind": kind,
        "blocksize": blocksize,
        "count": int(t.numel()),
        "input": input_spec,
        "double_quant": double_quant,
        "packed": hexu8(packed.reshape(-1).numpy()),
        "packed_shape": list(packed.shape),
    }
    if double_quant:
        case["qabsmax"] = hexu8(state.absmax.numpy())
        case["nested_absmax"] = hexf32(state.state2.absmax.numpy())
        case["offset"] = hexf32(np.array([state.offset.item()], dtype=np.float32))
        absmax_dq = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
        case["absmax_dequantized"] = hexf32(absmax_dq.numpy())
        # The raw absmax bnb computed before compressing it (for the offset tolerance check).
        _, plain = F.quantize_4bit(t, blocksize=blocksize, compress_statistics=False, quant_type=kind)
        case["absmax"] = hexf32(plain.absmax.numpy())
    else:
        case["absmax"] = hexf32(state.absmax.numpy())
    if full_dequant:
        out = F.dequantize_4bit(packed, state)
        case["dequantized"] = hexf32(out.reshape(-1).numpy())
    return case


SAFETENSORS_DTYPES = {torch.uint8: "U8", torch.int8: "I8", torch.float32: "F32", torch.float16: "F16",
                     torch.bfloat16: "BF16"}


def state_dict_entries(module):
    out = []
    for key, value in module.state_dict().items():
        t = value.detach().contiguous()
        raw = t.view(torch.uint8) if t.dtype in (torch.float16, torch.bfloat16) else t
        out.append({"key": key, "dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                    "bytes": np.ascontiguousarray(raw.numpy()).tobytes().hex()})
    return out


def ties_block(kind):
    """Two blocks of 64 whose scaled values sit exactly on the float32 midpoints bnb bucketizes on."""
    code = F.get_4bit_type(kind, device="cpu")
    order = torch.argsort(code)
    mids = ((code[order[:-1]] + code[order[1:]]) / 2).numpy().astype(np.float32)
    vals = [np.float32(1.0), np.float32(-1.0), np.float32(0.0), np.float32(-0.0)]
    for m in mids:
        vals += [m, np.nextafter(m, np.float32(2)), np.nextafter(m, np.float32(-2))]
    vals += [np.float32(0.5)] * (64 - len(vals))
    block0 = np.array(vals, dtype=np.float32)
    # Second block: absmax 2 (exact reciprocal 0.5), so x * 0.5 lands on the same midpoints.
    block1 = (block0 * np.float32(2.0)).astype(np.float32)
    return np.concatenate([block0, block1])


def special_values():
    x = lcg(99, 192)
    x[3] = np.float32("nan")
    x[64 + 5] = np.float32("inf")
    x[128 + 7] = np.float32("-inf")
    return x


def scaled_blocks(seed, n, blocksize):
    """LCG values times 2^((block % 9) - 4): very different block scales, exactly reproducible."""
    x = lcg(seed, n)
    for b in range(0, n, blocksize):
        x[b:b + blocksize] *= np.float32(2.0 ** ((b // blocksize) % 9 - 4))
    return x


def main():
    if bitsandbytes.__version__ != "0.50.2":
        sys.exit(f"need bitsandbytes 0.50.2, found {bitsandbytes.__version__}")
    torch.set_num_threads(1)
    x4 = load_input_4x256()
    cases = []
    for kind in ("nf4", "fp4"):
        for bs in (32, 64, 128, 256, 4096):
            for dq in (False, True):
                cases.append(four_bit_case(f"input4x256-{kind}-bs{bs}-dq{int(dq)}", x4, kind, bs, dq,
                                           {"file": "input_4x256_f32le.bin"}))
        for n in (1, 3, 63, 65, 127, 1001):
            cases.append(four_bit_case(f"odd{n}-{kind}", lcg(7, n), kind, 64, False, {"lcg": 7, "count": n}))
        cases.append(four_bit_case(f"odd1001-{kind}-dq", lcg(7, 1001), kind, 64, True, {"lcg": 7, "count": 1001}))
        ties = ties_block(kind)
        cases.append(four_bit_case(f"ties-{kind}", ties, kind, 64, False, {"f32": hexf32(ties)}))
        for n, dq in ((130, False), (130, True), (128, True)):
            cases.append(four_bit_case(f"zeros{n}-{kind}-dq{int(dq)}", np.zeros(n, np.float32), kind, 64, dq,
                                       {"zeros": n}))
        sv = special_values()
        cases.append(four_bit_case(f"special-{kind}", sv, kind, 64, False, {"f32": hexf32(sv)}))
        big = scaled_blocks(11, 64 * 600 + 17, 64)
        cases.append(four_bit_case(f"big-{kind}-dq", big, kind, 64, True,
                                   {"lcg": 11, "count": 64 * 600 + 17, "scaled_blocks": 64}, full_dequant=False))

    # Direct 8-bit blockwise quantization with the dynamic map (the path double quantization takes).
    bw = lcg(5, 1024 + 256 + 100)
    for i in range(1024):
        bw[i] = np.float32(bw[i] * np.float32(10.0 ** -(i % 7)))
    bw[1024:1024 + 256] = 0
    bt = torch.from_numpy(bw.copy())
    q8, st8 = F.quantize_blockwise(bt, blocksize=256)
    blockwise = [{
        "name": "dynamic-mixed",
        "blocksize": 256,
        "input": {"f32": hexf32(bw)},
        "codes": hexu8(q8.numpy()),
        "absmax": hexf32(st8.absmax.numpy()),
        "dequantized": hexf32(F.dequantize_blockwise(q8, st8).numpy()),
        "code": hexf32(st8.code.numpy()),
    }]

    # LLM.int8 row-wise weights.
    int8 = []
    w = torch.from_numpy(x4.reshape(4, 256).copy())
    rows = lcg(3, 300).reshape(3, 100)
    rows[1] = 0
    for name, a, spec, half in (
        ("input4x256-f32", w, {"file": "input_4x256_f32le.bin", "rows": 4, "columns": 256}, False),
        ("input4x256-f16", w, {"file": "input_4x256_f32le.bin", "rows": 4, "columns": 256}, True),
        ("zero-row-f32", torch.from_numpy(rows.copy()), {"lcg": 3, "rows": 3, "columns": 100, "zero_row": 1}, False),
    ):
        src = a.half() if half else a
        cb, scb, _ = F.int8_vectorwise_quant(src.clone())
        deq = F.int8_vectorwise_dequant(cb, scb)
        int8.append({"name": name, "input": spec, "via_float16": half, "CB": hexi8(cb.numpy()),
                     "SCB": hexf32(scb.numpy()), "dequantized": hexf32(deq.numpy())})

    # quant_state JSON text exactly as bnb packs it.
    json_cases = []
    for kind, dq, dtype, shape, seed in (
        ("nf4", True, torch.bfloat16, (128, 128), 21),
        ("nf4", False, torch.bfloat16, (128, 128), 21),
        ("fp4", True, torch.float32, (1000,), 22),
        ("fp4", False, torch.float16, (8, 3, 50), 23),
    ):
        n = math.prod(shape)
        data = torch.from_numpy((lcg(seed, n) * np.float32(0.05)).astype(np.float32)).reshape(shape).to(dtype)
        _, state = F.quantize_4bit(data, blocksize=64, compress_statistics=dq, quant_type=kind)
        packed = state.as_dict(packed=True)
        key = f"quant_state.bitsandbytes__{kind}"
        json_cases.append({
            "kind": kind, "double_quant": dq, "dtype": str(dtype).replace("torch.", ""), "shape": list(shape),
            "input": {"lcg": seed, "count": n, "times": 0.05},
            "offset": hexf32(np.array([state.offset.item()], np.float32)) if dq else None,
            "keys": sorted(packed.keys()),
            "quant_map": hexf32(packed["quant_map"].numpy()),
            "nested_quant_map": hexf32(packed["nested_quant_map"].numpy()) if dq else None,
            "text": bytes(packed[key].tolist()).decode("utf-8"),
        })

    # What bitsandbytes' modules put in a state_dict (and so what transformers saves): Linear4bit with
    # Params4bit, Linear8bitLt with Int8Params, quantized by moving them to the CPU device.
    import bitsandbytes.nn as bnn
    modules = []
    for name, rows, cols, seed, dtype, kind, dq in (
        ("linear4bit-nf4-dq-bf16", 64, 96, 41, torch.bfloat16, "nf4", True),
        ("linear4bit-fp4-f16", 48, 40, 42, torch.float16, "fp4", False),
    ):
        w = torch.from_numpy((lcg(seed, rows * cols) * np.float32(0.05)).astype(np.float32)).reshape(rows, cols).to(dtype)
        m = bnn.Linear4bit(cols, rows, bias=False, compute_dtype=dtype, compress_statistics=dq, quant_type=kind)
        m.weight = bnn.Params4bit(w.clone(), requires_grad=False, compress_statistics=dq, quant_type=kind, blocksize=64)
        m = m.to("cpu")
        modules.append({"name": name, "module": "linear4bit", "rows": rows, "columns": cols, "kind": kind,
                        "double_quant": dq, "dtype": str(dtype).replace("torch.", ""),
                        "input": {"lcg": seed, "count": rows * cols, "times": 0.05},
                        "state_dict": state_dict_entries(m)})
    w = torch.from_numpy((lcg(43, 64 * 96) * np.float32(0.05)).astype(np.float32)).reshape(64, 96).to(torch.bfloat16)
    m8 = bnn.Linear8bitLt(96, 64, bias=False, has_fp16_weights=False)
    m8.weight = bnn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
    m8 = m8.to("cpu")
    modules.append({"name": "linear8bitlt-bf16", "module": "linear8bitlt", "rows": 64, "columns": 96, "dtype": "bfloat16",
                    "input": {"lcg": 43, "count": 64 * 96, "times": 0.05}, "state_dict": state_dict_entries(m8)})

    reprs = []
    for v in (0.05148506164550781, 4.769176483154297, 0.0, -0.0, 1.0, -2.5, 0.1, 1e-4, 9.999e-5, 1e-5, 1.5e-7,
              123456.789, 1e15, 1e16, 9999999999999998.0, 1.2345678901234567e16, 1e22, 5e-324,
              1.7976931348623157e308, float(np.float32(3.0e-39)), float(np.float32(1e-38)),
              float(np.float32(16.0)), float(np.float32(0.3)), float(np.float32(-7.1e-6))):
        reprs.append([struct.pack("<d", v).hex(), repr(v)])

    out = {
        "generator": {
            "script": "testdata/scripts/make_bnb_goldens.py",
            "bitsandbytes": bitsandbytes.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "fourbit": cases,
        "blockwise8": blockwise,
        "int8": int8,
        "quant_state_json": json_cases,
        "python_repr": reprs,
        "modules": modules,
    }
    path = os.path.join(VECTORS, "bnb_goldens.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(cases)} 4-bit cases, {len(int8)} int8 cases, {len(json_cases)} JSON texts")


if __name__ == "__main__":
    main()
