"""(d) llama.cpp (through llama-cpp-python) loads the GGUFs wconv writes and evaluates the golden
tokens; at f32 its logits equal transformers' golden fp32 logits (max |Δ| <= 1e-3). The same
check on the converter's own GGUF is the control.

The KV cache is kept in F32 (type_k/type_v): with llama.cpp's default F16 cache the error against
the fp32 reference is 5e-3 (spm) to 2.4e-2 (bpe) even for the converter's own f32 GGUF; with F32
it is ~1e-5."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import GOLDEN, MODELS, OUTTYPES, golden_logits, golden_tokens

llama_cpp = pytest.importorskip("llama_cpp")

TOL_F32 = 1e-3


def llama_logits(path, tokens) -> np.ndarray:
    llm = llama_cpp.Llama(
        model_path=str(path),
        logits_all=True,
        n_ctx=64,
        n_threads=2,
        verbose=False,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
    )
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close() if hasattr(llm, "close") else None
        del llm


@pytest.mark.parametrize("model", MODELS)
def test_llama_cpp_converter_control(model):
    toks = golden_tokens(model)
    got = llama_logits(GOLDEN / f"{model}.f32.gguf", toks)
    err = float(np.max(np.abs(got - golden_logits(model))))
    assert err <= TOL_F32, f"converter's own f32 GGUF: max |Δlogit| {err:g} > {TOL_F32}"


@pytest.mark.parametrize("model", MODELS)
def test_llama_cpp_logits_f32(converted, model):
    toks = golden_tokens(model)
    got = llama_logits(converted.gguf(model, "f32"), toks)
    ref = golden_logits(model)
    assert got.shape == ref.shape
    err = float(np.max(np.abs(got - ref)))
    assert err <= TOL_F32, f"max |Δlogit| {err:g} > {TOL_F32}"


@pytest.mark.parametrize("outtype", [t for t in OUTTYPES if t != "f32"])
@pytest.mark.parametrize("model", MODELS)
def test_llama_cpp_loads_and_matches_converter(converted, model, outtype):
    """f16/bf16: llama.cpp's C reader accepts our file, and its logits match those it computes
    from the converter's file of the same outtype."""
    toks = golden_tokens(model)
    ours = llama_logits(converted.gguf(model, outtype), toks)
    theirs = llama_logits(GOLDEN / f"{model}.{outtype}.gguf", toks)
    err = float(np.max(np.abs(ours - theirs)))
    assert err <= 1e-5, f"max |Δlogit| vs converter {outtype} GGUF {err:g}"
