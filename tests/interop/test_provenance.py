"""Outputs carrying wconv's provenance (GGUF `general.wconv.*` keys, safetensors `__metadata__`
`wconv.*` strings) still load in the reference tools: gguf-py reads the keys, llama.cpp loads the
GGUF and computes the converter's logits, transformers (+ bitsandbytes) loads the safetensors
directories. The keys are documented in docs/manifest.md.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import GOLDEN, TESTDATA, golden_logits, golden_tokens, require, run_wconv

MODEL = "tiny-llama-spm"
KEYS = {"general.wconv.version", "general.wconv.command", "general.wconv.recipe", "general.wconv.inputs"}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def input_lines(directory) -> list[str]:
    """sha256sum lines of every file below `directory`, named `<dir name>/<relative path>`."""
    files = sorted((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.relative_to(directory).as_posix().encode())
    return [f"{sha256(p)}  {directory.name}/{p.relative_to(directory).as_posix()}" for p in files]


def field_value(field):
    """A GGUF field's value with gguf-py's ReaderField (string, or list of strings)."""
    if hasattr(field, "contents"):
        return field.contents()
    parts = [bytes(field.parts[i]).decode() for i in field.data]
    return parts[0] if len(parts) == 1 and field.types[0].name == "STRING" else parts


@pytest.fixture(scope="module")
def provenance_gguf(outdir):
    require("convert")
    out = outdir / "provenance" / f"{MODEL}.f32.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_wconv("convert", TESTDATA / MODEL, "-o", out, "--outtype", "f32", "--force")
    return out


def test_gguf_py_reads_provenance_keys(provenance_gguf):
    from gguf import GGUFReader

    r = GGUFReader(str(provenance_gguf))
    f = r.fields
    assert field_value(f["general.wconv.version"]) == "0.1.0"
    assert json.loads(field_value(f["general.wconv.command"])) == {"name": "convert", "options": {"input": MODEL, "outtype": "f32"}}
    assert json.loads(field_value(f["general.wconv.recipe"])) == {"method": "convert", "outtype": "f32"}
    assert field_value(f["general.wconv.inputs"]) == input_lines(TESTDATA / MODEL)
    # Apart from the four keys, the file holds what the converter writes: same keys, same tensors.
    gold = GGUFReader(str(GOLDEN / f"{MODEL}.f32.gguf"))
    ours = {k for k in f if not k.startswith("GGUF.")}
    theirs = {k for k in gold.fields if not k.startswith("GGUF.")}
    assert ours - theirs == KEYS and theirs <= ours
    assert [t.name for t in r.tensors] == [t.name for t in gold.tensors]
    for a, b in zip(r.tensors, gold.tensors):
        assert np.array_equal(np.asarray(a.data), np.asarray(b.data)), a.name


def test_llama_cpp_loads_provenance_gguf(provenance_gguf):
    llama_cpp = pytest.importorskip("llama_cpp")
    tokens = golden_tokens(MODEL)
    llm = llama_cpp.Llama(model_path=str(provenance_gguf), logits_all=True, n_ctx=64, n_threads=2, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    try:
        meta = dict(llm.metadata)
        llm.eval(tokens)
        got = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close() if hasattr(llm, "close") else None
    assert meta.get("general.wconv.version") == "0.1.0"
    err = float(np.max(np.abs(got - golden_logits(MODEL))))
    assert err <= 1e-3, f"max |Δlogit| {err:g}"


def test_transformers_loads_provenance_safetensors(outdir, provenance_gguf):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    hf = outdir / "provenance" / f"{MODEL}-hf"
    run_wconv("convert", provenance_gguf, "-o", hf, "--force")
    with safe_open(str(hf / "model.safetensors"), framework="pt") as st:
        meta = st.metadata()
    assert meta["format"] == "pt" and meta["wconv.version"] == "0.1.0"
    assert json.loads(meta["wconv.command"])["name"] == "convert"
    assert meta["wconv.inputs"] == f"{sha256(provenance_gguf)}  {provenance_gguf.name}"
    m = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        got = m(input_ids=torch.tensor([golden_tokens(MODEL)]), use_cache=False).logits[0].numpy()
    err = float(np.max(np.abs(got - golden_logits(MODEL))))
    assert err <= 1e-3, f"max |Δlogit| {err:g}"


def test_bitsandbytes_loads_provenance_nf4(outdir):
    bnb = pytest.importorskip("bitsandbytes")
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    require("quantize")
    out = outdir / "provenance" / f"{MODEL}-nf4"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_wconv("quantize", TESTDATA / MODEL, "-o", out, "--nf4", "--force")
    with safe_open(str(out / "model.safetensors"), framework="pt") as st:
        meta = st.metadata()
    assert json.loads(meta["wconv.recipe"])["quant_type"] == "nf4"
    manifest = json.loads((out / "wconv-manifest.json").read_text())
    assert {f["path"] for f in manifest["outputs"]} == {p.name for p in out.iterdir() if p.name != "wconv-manifest.json"}
    m = AutoModelForCausalLM.from_pretrained(str(out), device_map="cpu", dtype=torch.bfloat16, attn_implementation="eager")
    assert sum(isinstance(x, bnb.nn.Linear4bit) for x in m.modules()) == 14
    with torch.no_grad():
        logits = m(input_ids=torch.tensor([golden_tokens(MODEL)]), use_cache=False).logits
    assert torch.isfinite(logits).all()
