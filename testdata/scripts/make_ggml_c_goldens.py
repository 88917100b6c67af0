#!/usr/bin/env python3
"""SHA-256 goldens straight from ggml's C reference quantizers, on an input large enough to hit the
rare branches (ties, clamps, all-zero groups) that the 4x256 vectors cannot.

The C code is ggml's own `ggml-quants.c`, taken from the llama.cpp copy vendored in the PyPI sdist
`llama_cpp_python==0.3.36` and compiled with gcc -O3 for baseline x86-64 (no FMA, so no contraction),
then called through ctypes: `quantize_row_<type>_ref` and `dequantize_row_<type>`.

  pip download --no-deps --no-binary :all: llama_cpp_python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
  python make_ggml_c_goldens.py <extracted>/vendor/llama.cpp/ggml [repo root]

Writes testdata/vectors/ggml_c_goldens.json. Also checks, on the way, that the compiled C reproduces
the committed 4x256 vectors (<TYPE>.bin) and that gguf-py's random-block goldens
(<TYPE>.random.dequant.f32le.bin, made by make_ggml_goldens.py) equal C's dequantization.
Needs gcc, numpy, gguf==0.19.0.
"""
import ctypes
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

QUANTIZE = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
DEQUANT_ONLY = ["IQ4_NL", "IQ4_XS", "MXFP4", "TQ1_0", "TQ2_0", "IQ2_XXS", "IQ2_XS", "IQ2_S",
                "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M"]

# The large input: rows x cols float32, reproduced bit for bit by the Swift tests (GGMLTestData.largeInput).
SEED = 0x5EED_6A11
ROWS, COLS = 32, 4096

STUBS = r"""
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
void ggml_abort(const char * file, int line, const char * fmt, ...) { abort(); }
size_t ggml_row_size(int type, int64_t ne) { abort(); }
const char * ggml_type_name(int type) { return "?"; }
size_t ggml_type_size(int type) { abort(); }
"""


class SplitMix64:
    def __init__(self, seed: int):
        self.state = seed & (2**64 - 1)

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & (2**64 - 1)
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        return z ^ (z >> 31)

    def next_float(self) -> np.float32:
        # Same as TestSupport's SplitMix64.nextFloat(): uniform in [-1, 1) on a 2^-23 grid (exact).
        return np.float32(self.next() >> 40) / np.float32(1 << 23) - np.float32(1)


def large_input() -> np.ndarray:
    """Triangular noise (sum of two uniforms), per-row power-of-two scales, sparse 8x outliers,
    one all-zero super-block, one constant super-block and one tiny-valued row."""
    rng = SplitMix64(SEED)
    x = np.empty((ROWS, COLS), dtype=np.float32)
    for r in range(ROWS):
        scale = np.float32(2.0 ** ((r % 7) - 3))
        for i in range(COLS):
            v = (rng.next_float() + rng.next_float()) * scale
            if (r * COLS + i) % 101 == 7:
                v = v * np.float32(8)
            x[r, i] = v
    x[5, 0:256] = 0
    x[6, 256:512] = np.float32(0.75)
    x[7, :] *= np.float32(2.0 ** -20)
    return x


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def compile_reference(ggml: Path, work: Path) -> ctypes.CDLL:
    stubs = work / "stubs.c"
    stubs.write_text(STUBS)
    lib = work / "libggmlquants.so"
    subprocess.run(["gcc", "-O3", "-fPIC", "-shared", "-DNDEBUG", "-std=gnu11",
                    f"-I{ggml / 'include'}", f"-I{ggml / 'src'}", str(ggml / "src" / "ggml-quants.c"),
                    str(stubs), "-lm", "-o", str(lib)], check=True)
    dis = subprocess.run(["objdump", "-d", str(lib)], check=True, capture_output=True, text=True).stdout
    assert "vfmadd" not in dis, "the reference build must not use FMA"
    return ctypes.CDLL(str(lib))


def c_name(name: str) -> str:
    """ggml's function-name spelling: q4_0, q4_K, iq2_xxs."""
    n = name.lower()
    return n[:-1] + "K" if n.endswith("_k") else n


def c_quantize(lib, name: str, x: np.ndarray) -> bytes:
    block, size = GGML_QUANT_SIZES[T[name]]
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()
    out = np.zeros(x.size // block * size, dtype=np.uint8)
    getattr(lib, f"quantize_row_{c_name(name)}_ref")(
        x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(x.size))
    return out.tobytes()


def c_dequantize(lib, name: str, q: bytes) -> bytes:
    block, size = GGML_QUANT_SIZES[T[name]]
    src = np.frombuffer(q, dtype=np.uint8).copy()
    n = len(q) // size * block
    out = np.zeros(n, dtype=np.float32)
    getattr(lib, f"dequantize_row_{c_name(name)}")(
        src.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
    return out.astype("<f4").tobytes()


def main() -> None:
    ggml = Path(sys.argv[1])
    root = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[2]
    vec = root / "testdata" / "vectors"
    gcc = subprocess.run(["gcc", "--version"], check=True, capture_output=True, text=True).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_reference(ggml, Path(tmp))

        small = np.fromfile(vec / "input_4x256_f32le.bin", dtype="<f4")
        for name in QUANTIZE:
            assert c_quantize(lib, name, small) == (vec / f"{name}.bin").read_bytes(), f"{name}: 4x256 vector"

        x = large_input()
        out = {
            "source": "ggml/src/ggml-quants.c from the llama.cpp vendored in PyPI llama_cpp_python 0.3.36",
            "compiler": f"{gcc}; -O3, baseline x86-64 (no FMA)",
            "input": {"seed": SEED, "rows": ROWS, "cols": COLS, "sha256_f32le": sha256(x.astype("<f4").tobytes())},
            "quantize": {},
            "random_dequant": {},
        }
        for name in QUANTIZE:
            q = c_quantize(lib, name, x)
            out["quantize"][name] = {"bytes": len(q), "sha256": sha256(q),
                                     "sha256_dequant_f32le": sha256(c_dequantize(lib, name, q))}
            print(f"{name}: {len(q)} bytes")
        for name in QUANTIZE + DEQUANT_ONLY:
            raw = (vec / f"{name}.random.bin").read_bytes()
            deq = c_dequantize(lib, name, raw)
            assert deq == (vec / f"{name}.random.dequant.f32le.bin").read_bytes(), f"{name}: gguf-py != C"
            out["random_dequant"][name] = sha256(deq)
            print(f"{name}: gguf-py random-block golden equals C")
    (vec / "ggml_c_goldens.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
