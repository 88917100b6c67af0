"""Quantized GGUFs written by `wconv quantize --type`:

- llama-cpp-python loads our Q8_0, Q4_0 and Q4_K_M files and evaluates tokens; its logits are
  those of llama.cpp on `llama-quantize`'s own output for the same input (our bytes equal
  llama-quantize's, so this is also a check that the file is valid), and stay close to the f32
  model's (the loss of the quantization, bounded loosely per type);
- gguf-py's dequantizers give, for every tensor of our files, the same floats as
  `wconv dequantize` (f32 GGUF out).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TESTDATA, require, run_wconv
from test_llama_cpp_interop import llama_logits

gguf = pytest.importorskip("gguf")

TYPES = ["Q8_0", "Q4_0", "Q4_K_M"]
MODEL = "tiny-llama-256"  # hidden 256, so the K-quants apply to every matrix
TOKENS = [1, 15, 27, 99, 200, 7, 42, 3, 64, 120]
LLAMA_QUANTIZE = Path(os.environ.get("WCONV_CACHE", Path.home() / ".cache" / "wconv")) / "llama.cpp-build" / "bin" / "llama-quantize"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    require("quantize")
    root = tmp_path_factory.mktemp("quant")
    out = {}
    f32 = root / "f32.gguf"
    run_wconv("convert", TESTDATA / MODEL, "-o", f32, "--outtype", "f32")
    out["F32"] = f32
    for t in TYPES:
        p = root / f"{t}.gguf"
        run_wconv("quantize", f32, "-o", p, "--type", t)
        out[t] = p
    return out


@pytest.mark.parametrize("qtype", TYPES)
def test_llama_cpp_loads_our_quantized_gguf(quantized, qtype, tmp_path):
    if not LLAMA_QUANTIZE.is_file():
        pytest.skip(f"llama-quantize not built at {LLAMA_QUANTIZE}")
    theirs = tmp_path / f"{qtype}.llama-quantize.gguf"
    subprocess.run([str(LLAMA_QUANTIZE), str(quantized["F32"]), str(theirs), qtype, "1"],
                   check=True, capture_output=True)
    got = llama_logits(quantized[qtype], TOKENS)
    want = llama_logits(theirs, TOKENS)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, want, err_msg=f"{qtype}: llama.cpp logits on our file vs llama-quantize's")
    # And the quantized model is still the f32 model, loosely (random weights, 10 tokens).
    f32 = llama_logits(quantized["F32"], TOKENS)
    assert float((got.argmax(-1) == f32.argmax(-1)).mean()) >= 0.5


@pytest.mark.parametrize("qtype", TYPES)
def test_gguf_py_dequantizes_to_our_floats(quantized, qtype, tmp_path):
    require("dequantize")
    ours = tmp_path / "dq.gguf"
    run_wconv("dequantize", quantized[qtype], "-o", ours, "--outtype", "f32")
    q = {t.name: t for t in gguf.GGUFReader(str(quantized[qtype])).tensors}
    d = {t.name: t for t in gguf.GGUFReader(str(ours)).tensors}
    assert set(q) == set(d)
    checked = 0
    for name, t in q.items():
        ref = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(-1)
        mine = np.asarray(d[name].data, dtype=np.float32).reshape(-1)
        assert ref.shape == mine.shape, name
        np.testing.assert_array_equal(mine, ref, err_msg=f"{qtype} {name} ({t.tensor_type.name})")
        checked += t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    assert checked > 0
