"""bitsandbytes interop: transformers + bitsandbytes (CPU) load the NF4, FP4 and int8 directories
`wconv quantize` writes for tiny-llama-spm, and their logits equal those of bitsandbytes' own
quantization of the same model (`from_pretrained(..., quantization_config=BitsAndBytesConfig(...))`).
`wconv dequantize` of the transformers-written goldens loads as a dense fp32 model whose logits
equal the goldens' dequantized-weight logits (testdata/golden/tiny-llama-spm-<kind>.dequant_logits_f32.npy).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import GOLDEN, TESTDATA, golden_tokens, require, run_wconv

MODEL = "tiny-llama-spm"
KINDS = ["nf4", "fp4", "int8"]

# wconv flags and the BitsAndBytesConfig that must give the same checkpoint (the settings
# testdata/scripts/make_fixtures.py used for the goldens).
FLAGS = {
    "nf4": ["--nf4", "--compute-dtype", "f32"],
    "fp4": ["--fp4", "--no-double-quant", "--compute-dtype", "f32"],
    "int8": ["--int8"],
}


def bnb_config(kind: str):
    import torch
    from transformers import BitsAndBytesConfig

    if kind == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.float32)
    if kind == "fp4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=False,
                                  bnb_4bit_compute_dtype=torch.float32)
    return BitsAndBytesConfig(load_in_8bit=True)


@pytest.fixture(scope="module")
def quantized(outdir):
    """kind -> directory written by `wconv quantize` (once per session)."""
    require("quantize")
    cache = {}

    def get(kind: str):
        if kind not in cache:
            out = outdir / f"{MODEL}-{kind}"
            run_wconv("quantize", TESTDATA / MODEL, "-o", out, *FLAGS[kind], "--force", "--no-provenance")
            assert (out / "model.safetensors").is_file(), f"no model.safetensors in {out}"
            cache[kind] = out
        return cache[kind]

    return get


def logits_of(model, tokens) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0].float().numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_transformers_loads_wconv_bnb_and_matches_bitsandbytes(quantized, kind):
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM

    ours_dir = quantized(kind)
    ours = AutoModelForCausalLM.from_pretrained(str(ours_dir), device_map="cpu", dtype=torch.bfloat16,
                                                attn_implementation="eager")
    layer = bnb.nn.Linear4bit if kind != "int8" else bnb.nn.Linear8bitLt
    n_quantized = sum(isinstance(m, layer) for m in ours.modules())
    assert n_quantized == 14, f"{n_quantized} {layer.__name__} modules after loading"

    torch.manual_seed(0)
    ref = AutoModelForCausalLM.from_pretrained(str(TESTDATA / MODEL), quantization_config=bnb_config(kind), device_map="cpu",
                                               dtype=torch.bfloat16, attn_implementation="eager")
    tokens = golden_tokens(MODEL)
    got, want = logits_of(ours, tokens), logits_of(ref, tokens)
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want)))
    assert err <= 1e-4, f"{kind}: max |Δlogit| {err:g} > 1e-4 against bitsandbytes' own quantization"


@pytest.mark.parametrize("kind", KINDS)
def test_wconv_bnb_state_dict_equals_bitsandbytes(quantized, kind):
    """Every tensor transformers saved for bitsandbytes' own quantization, with the same dtype,
    shape and values, and the same quantization_config."""
    import torch
    from safetensors import safe_open

    def read(path):
        out = {}
        with safe_open(str(path), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            for k in f.keys():
                out[k] = f.get_tensor(k)
        return out

    ours = read(quantized(kind) / "model.safetensors")
    golden = read(GOLDEN / f"{MODEL}-{kind}" / "model.safetensors")
    assert sorted(ours) == sorted(golden)
    bad = [k for k in golden if ours[k].dtype != golden[k].dtype or ours[k].shape != golden[k].shape
           or not torch.equal(ours[k], golden[k])]
    assert not bad, f"tensors that differ from bitsandbytes': {bad[:5]}"
    cfg = json.loads((quantized(kind) / "config.json").read_text())
    want = json.loads((GOLDEN / f"{MODEL}-{kind}" / "config.json").read_text())
    assert cfg["quantization_config"] == want["quantization_config"]


@pytest.mark.parametrize("kind", KINDS)
def test_wconv_dequantize_matches_bitsandbytes_dequantization(outdir, kind):
    import torch
    from transformers import AutoModelForCausalLM

    require("dequantize")
    out = outdir / f"{MODEL}-{kind}-dequant"
    run_wconv("dequantize", GOLDEN / f"{MODEL}-{kind}", "-o", out, "--outtype", "f32", "--force")
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["dtype"] == "float32"
    m = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, attn_implementation="eager")
    got = logits_of(m, golden_tokens(MODEL))
    want = np.load(GOLDEN / f"{MODEL}-{kind}.dequant_logits_f32.npy")
    err = float(np.max(np.abs(got - want)))
    assert err <= 1e-4, f"{kind}: max |Δlogit| {err:g} > 1e-4 against the dequantized-weight golden"
