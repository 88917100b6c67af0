"""Model families beyond LLaMA (issue 7): transformers loads what wconv writes for them.

GGUF -> HF for Qwen2: the llama.cpp converter's f32 GGUF of testdata/families/qwen2, converted back
by wconv, loads as Qwen2ForCausalLM and reproduces the golden transformers logits."""
from __future__ import annotations

import json

import numpy as np

from conftest import GOLDEN, require, run_wconv

FAMILIES = GOLDEN / "families"


def test_qwen2_gguf_to_hf_loads_in_transformers(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    require("convert")
    out = tmp_path / "qwen2-hf"
    r = run_wconv("convert", str(FAMILIES / "qwen2.f32.gguf"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, attn_implementation="eager")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    tokens = json.loads((FAMILIES / "qwen2.tokens.json").read_text())["tokens"]
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].numpy()
    golden = np.load(FAMILIES / "qwen2.logits_f32.npy")
    assert np.abs(logits - golden).max() <= 1e-5
