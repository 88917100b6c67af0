#!/usr/bin/env python3
"""Goldens for wconv's ggml block codecs (Sources/Quantize/GGML), made with gguf-py.

Inputs (testdata/vectors/, copied from the project's reference test vectors):
  input_4x256_f32le.bin   4x256 float32 test input (LCG, see ggml_vectors.json "input.desc")
  <TYPE>.bin              that input quantized by the ggml C reference (ggml_quantize_chunk, no imatrix)
  ggml_vectors.json       SHA-256 of every <TYPE>.bin and of its C dequantization

Outputs (testdata/vectors/):
  <TYPE>.dequant.f32le.bin         gguf-py dequantization of <TYPE>.bin; the script asserts its SHA-256
                                   equals the C reference's (ggml_vectors.json), so it is the C output.
  <TYPE>.random.bin                seeded random blocks (scale fields set to finite fp16 values)
  <TYPE>.random.dequant.f32le.bin  gguf-py dequantization of <TYPE>.random.bin
It also asserts gguf-py's quantizer reproduces <TYPE>.bin for the legacy types (Q4_0 ... Q8_0).

Usage: python make_ggml_goldens.py [repo root]
Needs: pip install gguf==0.19.0 numpy
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants

C_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
LEGACY = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"}

# Byte offsets of the fp16 scale fields of each block type (ggml-common.h), overwritten with finite
# values in the random blocks so no NaN/Inf reaches the comparison.
HALF_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ4_NL": [0], "IQ4_XS": [0], "TQ1_0": [52], "TQ2_0": [64],
    "IQ2_XXS": [0], "IQ2_XS": [0], "IQ2_S": [0], "IQ3_XXS": [0], "IQ3_S": [0], "IQ1_S": [0],
    "MXFP4": [], "IQ1_M": [],
}
RANDOM_ELEMENTS = 2048


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def lcg_input() -> np.ndarray:
    s = 12345
    out = np.empty(1024, dtype=np.float32)
    for i in range(1024):
        s = (s * 1103515245 + 12345) % 2**32
        out[i] = np.float32(((s >> 16) & 0x7FFF) / 16384 - 1)
    x = out.reshape(4, 256)
    x[1] *= np.float32(2**-7)
    x[1, 5] = 3.0
    x[2] += np.float32(0.5)
    x[2, 0:32] = 0
    x[3] *= np.float32(16)
    return x


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite fp16 scales: mostly ±[1e-3, 1), some subnormal, some zero."""
    mag = np.exp(rng.uniform(np.log(1e-3), 0.0, size=n)).astype(np.float32)
    sign = np.where(rng.integers(0, 2, size=n) == 0, 1.0, -1.0).astype(np.float32)
    v = (mag * sign).astype(np.float16)
    v[rng.integers(0, n, size=max(1, n // 16))] = np.float16(3e-6)  # subnormal fp16
    v[rng.integers(0, n, size=max(1, n // 32))] = np.float16(0.0)
    return v


def random_blocks(name: str, seed: int) -> np.ndarray:
    qtype = T[name]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n = RANDOM_ELEMENTS // block_size
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    for off in HALF_FIELDS[name]:
        raw[:, off:off + 2] = random_scales(rng, n).view(np.uint8).reshape(n, 2)
    if name == "MXFP4":
        raw[:, 0] = rng.integers(100, 151, size=n, dtype=np.uint8)  # E8M0 exponents near 2^0
        raw[0, 0], raw[1, 0] = 0, 1                                # the two subnormal encodings
    if name == "IQ1_M":
        # The fp16 super-scale sits in the top nibble of each of the four u16 scale words.
        d = random_scales(rng, n).view(np.uint16)
        sc = raw[:, 48:56].copy().view("<u2").reshape(n, 4)
        for k in range(4):
            sc[:, k] = (sc[:, k] & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12)
        raw[:, 48:56] = sc.view(np.uint8).reshape(n, 8)
    return raw


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    vec = root / "testdata" / "vectors"
    meta = json.loads((vec / "ggml_vectors.json").read_text())

    inp_bytes = (vec / "input_4x256_f32le.bin").read_bytes()
    assert sha256(inp_bytes) == meta["input"]["sha256_f32le"], "input hash"
    inp = np.frombuffer(inp_bytes, dtype="<f4").reshape(4, 256)
    assert np.array_equal(inp.view(np.uint32), lcg_input().view(np.uint32)), "input is not the documented LCG"

    for name in C_TYPES:
        q = (vec / f"{name}.bin").read_bytes()
        assert sha256(q) == meta[name]["sha256_quant"], f"{name}.bin hash"
        deq = quants.dequantize(np.frombuffer(q, dtype=np.uint8).reshape(4, -1), T[name])
        deq = np.ascontiguousarray(deq, dtype="<f4").tobytes()
        assert sha256(deq) == meta[name]["sha256_dequant_f32le"], f"{name}: gguf-py dequant differs from C"
        (vec / f"{name}.dequant.f32le.bin").write_bytes(deq)
        if name in LEGACY:
            mine = quants.quantize(inp, T[name]).tobytes()
            assert mine == q, f"{name}: gguf-py quantize differs from C"
        print(f"{name}: C vectors confirmed, dequant written")

    for i, name in enumerate(C_TYPES + [n for n in HALF_FIELDS if n not in C_TYPES]):
        raw = random_blocks(name, 20261129 + i)
        deq = quants.dequantize(raw, T[name])
        deq = np.ascontiguousarray(deq, dtype="<f4")
        assert np.all(np.isfinite(deq)), name
        (vec / f"{name}.random.bin").write_bytes(raw.tobytes())
        (vec / f"{name}.random.dequant.f32le.bin").write_bytes(deq.tobytes())
        print(f"{name}: {raw.shape[0]} random blocks")


if __name__ == "__main__":
    main()
