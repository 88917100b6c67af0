"""LoRA interop: the adapters, merged models and GGUF adapters wconv writes, in the reference tools.

- PEFT loads an adapter trained by `wconv qlora-train` on tiny-llama-spm; its base + adapter logits
  equal `wconv run --adapter` (max |Δ| <= 1e-4; skipped while wconv has no `run`).
- transformers loads the model `wconv qlora-merge` writes (f32) and its logits equal PEFT's
  base + adapter logits (<= 1e-4), for a PEFT-made adapter and for a wconv-trained one.
- llama.cpp (llama-cpp-python) applies the GGUF adapter `wconv convert-adapter` writes to the
  llama.cpp-converted f32 base, and gets PEFT's base + adapter logits (<= 1e-3, F32 KV cache, as in
  test_llama_cpp_interop.py); the converter's own adapter is the control. It also loads the GGUF
  `wconv qlora-merge` writes, with the same logits.
- transformers + bitsandbytes load the NF4 checkpoint `qlora-merge --requantize nf4` writes.
- `qlora-merge --requantize TYPE` (single types and mixes) equals, byte for byte, llama-quantize run
  on the f32 GGUF `qlora-merge --outtype f32` writes; llama.cpp loads it.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import GOLDEN, TESTDATA, golden_tokens, require, run_wconv

MODEL = "tiny-llama-spm"
LORA = GOLDEN / "lora" / "tiny-llama-spm-lora"
TOL = 1e-4
TOL_LLAMA_CPP = 1e-3
LLAMA_QUANTIZE = Path(os.environ.get("WCONV_CACHE", Path.home() / ".cache" / "wconv")) / "llama.cpp-build" / "bin" / "llama-quantize"


def peft_logits(adapter, tokens) -> np.ndarray:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(TESTDATA / MODEL), dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float().numpy()


def hf_logits(directory, tokens, **kwargs) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(directory), attn_implementation="eager", **kwargs).eval()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float().numpy()


def llama_cpp_logits(model_path, tokens, lora_path=None) -> np.ndarray:
    llama_cpp = pytest.importorskip("llama_cpp")
    kwargs = dict(model_path=str(model_path), logits_all=True, n_ctx=64, n_threads=2, verbose=False,
                  type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    if lora_path is not None:
        kwargs["lora_path"] = str(lora_path)
    llm = llama_cpp.Llama(**kwargs)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close() if hasattr(llm, "close") else None
        del llm


def max_err(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)))


@pytest.fixture(scope="module")
def trained(outdir):
    """An adapter trained by wconv (a few steps, so B is non-zero)."""
    require("qlora-train")
    out = outdir / "trained-lora"
    data = GOLDEN / "lora" / "data" / "sample.jsonl"
    run_wconv("qlora-train", TESTDATA / MODEL, "--data", data, "-o", out, "--steps", "6", "--lr", "5e-3",
              "--rank", "4", "--alpha", "8", "--threads", "2", "--force")
    assert (out / "adapter_model.safetensors").is_file()
    return out


def test_peft_loads_wconv_trained_adapter(trained):
    cfg = json.loads((trained / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["lora_alpha"] == 8
    toks = golden_tokens(MODEL)
    with_adapter = peft_logits(trained, toks)
    base = hf_logits(TESTDATA / MODEL, toks)
    assert max_err(with_adapter, base) > 1e-3, "the trained adapter changes nothing"


def test_peft_logits_equal_wconv_run(trained, outdir):
    require("run")
    toks = golden_tokens(MODEL)
    tok_file = outdir / "lora-tokens.json"
    tok_file.write_text(json.dumps(toks))
    for adapter in [trained, LORA]:
        npy = outdir / f"run-{adapter.name}.npy"
        run_wconv("run", TESTDATA / MODEL, "--tokens", tok_file, "--adapter", adapter, "--logits", npy, "-n", "0", "--force")
        err = max_err(np.load(npy), peft_logits(adapter, toks))
        assert err <= TOL, f"{adapter.name}: wconv run --adapter vs PEFT: max |Δlogit| {err:g}"


@pytest.mark.parametrize("which", ["peft-made", "wconv-trained"])
def test_merged_model_in_transformers(trained, outdir, which):
    require("qlora-merge")
    adapter = LORA if which == "peft-made" else trained
    out = outdir / f"merged-{which}"
    run_wconv("qlora-merge", TESTDATA / MODEL, adapter, "-o", out, "--outtype", "f32", "--force")
    toks = golden_tokens(MODEL)
    err = max_err(hf_logits(out, toks), peft_logits(adapter, toks))
    assert err <= TOL, f"merged ({which}) vs PEFT base + adapter: max |Δlogit| {err:g}"


def test_llama_cpp_applies_converted_adapter(trained, outdir):
    require("convert-adapter")
    toks = golden_tokens(MODEL)
    base_gguf = GOLDEN / f"{MODEL}.f32.gguf"
    control = llama_cpp_logits(base_gguf, toks, GOLDEN / "lora" / "tiny-llama-spm-lora.f32.gguf")
    ref = peft_logits(LORA, toks)
    assert max_err(control, ref) <= TOL_LLAMA_CPP, "control: llama.cpp's own adapter GGUF"
    for adapter in [LORA, trained]:
        out = outdir / f"{adapter.name}.gguf"
        run_wconv("convert-adapter", adapter, "-o", out, "--base", TESTDATA / MODEL, "--force")
        err = max_err(llama_cpp_logits(base_gguf, toks, out), peft_logits(adapter, toks))
        assert err <= TOL_LLAMA_CPP, f"{adapter.name}: llama.cpp + our GGUF adapter vs PEFT: max |Δlogit| {err:g}"


def test_llama_cpp_loads_merged_gguf(outdir):
    require("qlora-merge")
    toks = golden_tokens(MODEL)
    out = outdir / "merged-lora.f32.gguf"
    run_wconv("qlora-merge", TESTDATA / MODEL, LORA, "-o", out, "--outtype", "f32", "--force")
    err = max_err(llama_cpp_logits(out, toks), peft_logits(LORA, toks))
    assert err <= TOL_LLAMA_CPP, f"merged GGUF in llama.cpp vs PEFT: max |Δlogit| {err:g}"


def test_transformers_loads_requantized_nf4(outdir):
    require("qlora-merge")
    import torch

    out = outdir / "merged-lora-nf4"
    run_wconv("qlora-merge", TESTDATA / MODEL, LORA, "-o", out, "--requantize", "nf4", "--force")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["bnb_4bit_quant_type"] == "nf4"
    toks = golden_tokens(MODEL)
    logits = hf_logits(out, toks, device_map="cpu", dtype=torch.float32)
    assert np.all(np.isfinite(logits)) and logits.shape == (len(toks), 128)


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q5_K_M", "Q8_0"])
def test_requantized_merge_equals_llama_quantize(outdir, qtype):
    require("qlora-merge")
    if not LLAMA_QUANTIZE.is_file():
        pytest.skip(f"llama-quantize not built at {LLAMA_QUANTIZE}")
    f32 = outdir / "merged-lora.rq.f32.gguf"
    # Byte identity is with --no-provenance: llama-quantize copies the f32 file's general.wconv.*
    # record, which names a different recipe from the requantizing merge's.
    run_wconv("qlora-merge", TESTDATA / MODEL, LORA, "-o", f32, "--outtype", "f32", "--no-verify", "--force", "--no-provenance")
    theirs = outdir / f"merged-lora.llama-quantize.{qtype}.gguf"
    subprocess.run([str(LLAMA_QUANTIZE), str(f32), str(theirs), qtype, "1"], check=True, capture_output=True)
    ours = outdir / f"merged-lora.{qtype}.gguf"
    run_wconv("qlora-merge", TESTDATA / MODEL, LORA, "-o", ours, "--requantize", qtype, "--force", "--no-provenance")
    assert ours.read_bytes() == theirs.read_bytes(), f"{qtype}: qlora-merge --requantize differs from llama-quantize"
    toks = golden_tokens(MODEL)
    assert np.all(np.isfinite(llama_cpp_logits(ours, toks)))
