"""LoRA on the other model families (issue 7): llama.cpp applies the GGUF adapters wconv writes.

For each family, `wconv convert-adapter` turns the PEFT adapter of testdata/golden/families-lora into
a llama.cpp LoRA GGUF, and llama-cpp-python applies it to the converter's f32 GGUF of the base
(testdata/golden/families). The reference is llama.cpp itself on the merged model: `wconv qlora-merge`
(equal to PEFT's merge_and_unload, FamilyMergeTests) then `wconv convert` to GGUF, so both runs
use llama.cpp's graph for the family and differ only in where the delta is added. For Qwen2 the
adapter is also checked against PEFT's base + adapter logits in transformers. GPT-2: llama.cpp
refuses the converter's own adapter (its transposed pair has the wrong shapes) and applies wconv's.

Adapters `wconv qlora-train` trains on Qwen2 and Mistral load in PEFT, and `wconv run --adapter` gives
PEFT's base + adapter logits (<= 1e-4).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import GOLDEN, TESTDATA, require, run_wconv

FAMILIES = GOLDEN / "families"
ADAPTERS = GOLDEN / "families-lora"
TOL = 1e-3

_LLAMA_CHILD = """
import json, sys
import numpy as np
from llama_cpp import Llama
path, out, tokens, lora = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=path, n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True, n_threads=1, seed=0,
            type_k=0, type_v=0, flash_attn=False, lora_path=lora or None, verbose=False)
llm.eval(tokens)
np.save(out, np.asarray(llm.scores[: len(tokens)], dtype=np.float32))
"""


def llama_cpp(tmp_path, gguf, tokens, lora=None):
    """Logits of llama-cpp-python in a child process (a llama.cpp abort fails the test, not the session);
    None when llama.cpp refuses the model or adapter."""
    out = tmp_path / f"logits-{abs(hash((str(gguf), str(lora))))}.npy"
    child = subprocess.run([sys.executable, "-c", _LLAMA_CHILD, str(gguf), str(out), json.dumps(tokens), str(lora or "")],
                           capture_output=True, text=True, timeout=300)
    return np.load(out) if child.returncode == 0 else None


@pytest.mark.parametrize("family", ["qwen2", "falcon-40b", "mpt", "gpt2", "phi-1_5"])
def test_llama_cpp_applies_our_adapter(tmp_path, family):
    pytest.importorskip("llama_cpp")
    require("convert-adapter")
    tokens = json.loads((FAMILIES / f"{family}.tokens.json").read_text())["tokens"]
    adapter = tmp_path / f"{family}.lora.gguf"
    run_wconv("convert-adapter", ADAPTERS / family, "-o", adapter, "--base", TESTDATA / "families" / family)
    merged = tmp_path / "merged"
    run_wconv("qlora-merge", TESTDATA / "families" / family, ADAPTERS / family, "-o", merged, "--outtype", "f32")
    merged_gguf = tmp_path / "merged.gguf"
    run_wconv("convert", merged, "-o", merged_gguf, "--outtype", "f32")

    base = llama_cpp(tmp_path, FAMILIES / f"{family}.f32.gguf", tokens)
    with_adapter = llama_cpp(tmp_path, FAMILIES / f"{family}.f32.gguf", tokens, adapter)
    reference = llama_cpp(tmp_path, merged_gguf, tokens)
    assert base is not None and with_adapter is not None and reference is not None
    err = float(np.abs(with_adapter - reference).max())
    moved = float(np.abs(reference - base).max())
    assert moved > 10 * TOL, f"{family}: the adapter barely changes the logits ({moved:g})"
    assert err <= TOL, f"{family}: llama.cpp + our adapter vs the merged model: max |Δlogit| {err:g} (adapter moves them {moved:g})"
    print(f"{family}: llama.cpp + adapter vs merged: max |Δlogit| {err:g}, adapter moves logits by {moved:g}")

    if family == "gpt2":
        converter = llama_cpp(tmp_path, FAMILIES / "gpt2.f32.gguf", tokens, ADAPTERS / "gpt2.f32.gguf")
        assert converter is None, "llama.cpp accepted convert_lora_to_gguf.py's GPT-2 adapter"
    if family == "qwen2":
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(TESTDATA / "families" / family), dtype=torch.float32,
                                                     attn_implementation="eager")
        peft = PeftModel.from_pretrained(model, str(ADAPTERS / family)).eval()
        with torch.no_grad():
            ref = peft(torch.tensor([tokens])).logits[0].float().numpy()
        err = float(np.abs(with_adapter - ref).max())
        assert err <= TOL, f"qwen2: llama.cpp + our adapter vs PEFT: max |Δlogit| {err:g}"
        print(f"qwen2: llama.cpp + adapter vs PEFT: max |Δlogit| {err:g}")


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
def test_peft_loads_adapter_trained_on_family(tmp_path, family):
    """An adapter `wconv qlora-train` trains on Qwen2 / Mistral loads in PEFT, changes its logits, and
    `wconv run --adapter` gives PEFT's base + adapter logits (Mistral: the 24 golden tokens, three
    times its sliding window)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    require("qlora-train")
    base_dir = TESTDATA / "families" / family
    out = tmp_path / "trained"
    run_wconv("qlora-train", base_dir, "--data", GOLDEN / "lora" / "data" / "sample.jsonl", "-o", out, "--steps", "4",
              "--lr", "5e-3", "--rank", "4", "--alpha", "8", "--threads", "2")
    tokens = json.loads((FAMILIES / f"{family}.tokens.json").read_text())["tokens"]
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        base = model(torch.tensor([tokens])).logits[0].float().numpy()
    peft = PeftModel.from_pretrained(model, str(out)).eval()
    with torch.no_grad():
        ref = peft(torch.tensor([tokens])).logits[0].float().numpy()
    assert float(np.abs(ref - base).max()) > 1e-3, "the trained adapter changes nothing"
    require("run")
    tok_file = tmp_path / "tokens.json"
    tok_file.write_text(json.dumps(tokens))
    npy = tmp_path / "run.npy"
    run_wconv("run", base_dir, "--tokens", tok_file, "--adapter", out, "--logits", npy, "-n", "0")
    err = float(np.abs(np.load(npy) - ref).max())
    print(f"{family}: wconv-trained adapter, wconv run --adapter vs PEFT: max |Δlogit| {err:g}")
    assert err <= 1e-4, f"{family}: wconv run --adapter vs PEFT: max |Δlogit| {err:g}"


@pytest.mark.parametrize("family", ["gpt2", "opt", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "persimmon", "qwen2", "mistral"])
def test_run_adapter_matches_peft(tmp_path, family):
    """`wconv run --adapter --logits` with the golden PEFT adapter (testdata/golden/families-lora) equals
    PEFT's own logits with the adapter loaded, unmerged, on the transformers-native families (GPT-2's
    Conv1D with fan_in_fan_out; the fused c_attn / query_key_value / Wqkv modules)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    require("run")
    base_dir = TESTDATA / "families" / family
    tokens = json.loads((FAMILIES / f"{family}.tokens.json").read_text())["tokens"]
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        base = model(torch.tensor([tokens])).logits[0].float().numpy()
    peft = PeftModel.from_pretrained(model, str(ADAPTERS / family)).eval()
    with torch.no_grad():
        ref = peft(torch.tensor([tokens])).logits[0].float().numpy()
    moved = float(np.abs(ref - base).max())
    assert moved > 1e-2, f"{family}: the adapter barely changes PEFT's logits ({moved:g})"
    tok_file = tmp_path / "tokens.json"
    tok_file.write_text(json.dumps(tokens))
    npy = tmp_path / "run.npy"
    run_wconv("run", base_dir, "--tokens", tok_file, "--adapter", ADAPTERS / family, "--logits", npy, "-n", "0")
    err = float(np.abs(np.load(npy) - ref).max())
    print(f"{family}: wconv run --adapter vs PEFT: max |Δlogit| {err:g} (adapter moves them {moved:g})")
    assert err <= 1e-4, f"{family}: wconv run --adapter vs PEFT: max |Δlogit| {err:g}"
