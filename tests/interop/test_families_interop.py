"""Model families beyond LLaMA (issue 7): transformers loads what wconv writes for them.

GGUF -> HF for every transformers-native family (Qwen2, Mistral, GPT-2, phi-1.5, Falcon 7B/40B, MPT):
the llama.cpp converter's f32 GGUF of testdata/families/<name>, converted back by wconv, loads in
transformers as the family's class and reproduces the golden transformers logits. HF -> GGUF for
every family llama.cpp runs: llama-cpp-python evaluates wconv's file as it does the converter's."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import GOLDEN, TESTDATA, require, run_wconv

FAMILIES = GOLDEN / "families"


# GGUF -> HF: family -> (class transformers must load, wconv's extra arguments, positions compared).
# Mistral's GGUF is `llama` without the window: on its own it becomes LlamaForCausalLM, equal to the
# golden (windowed) logits only inside the window (8); with the original config (--config) it is
# MistralForCausalLM with the window again, equal everywhere.
GGUF_TO_HF = {
    "qwen2": ("Qwen2ForCausalLM", [], None),
    "gpt2": ("GPT2LMHeadModel", [], None),
    "phi-1_5": ("PhiForCausalLM", [], None),
    "falcon-7b": ("FalconForCausalLM", [], None),
    "falcon-40b": ("FalconForCausalLM", [], None),
    "mpt": ("MptForCausalLM", [], None),
    "mistral": ("LlamaForCausalLM", [], 8),
    "mistral+config": ("MistralForCausalLM", ["--config", str(TESTDATA / "families" / "mistral" / "config.json")], None),
}


BPE_FAMILIES = {"qwen2", "gpt2", "phi-1_5", "falcon-7b", "falcon-40b", "mpt"}


@pytest.mark.parametrize("case", sorted(GGUF_TO_HF))
def test_family_gguf_to_hf_reproduces_the_golden_logits(tmp_path, case):
    import torch
    from transformers import AutoModelForCausalLM

    require("convert")
    family = case.split("+")[0]
    cls, extra, positions = GGUF_TO_HF[case]
    out = tmp_path / f"{family}-hf"
    r = run_wconv("convert", str(FAMILIES / f"{family}.f32.gguf"), "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, attn_implementation="eager")
    assert type(model).__name__ == cls
    tokens = json.loads((FAMILIES / f"{family}.tokens.json").read_text())["tokens"]
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].numpy()
    golden = np.load(FAMILIES / f"{family}.logits_f32.npy")
    if family in BPE_FAMILIES:
        # The tokenizer.json rebuilt from the GGUF vocabulary (pre-tokenizer from tokenizer.ggml.pre:
        # gpt-2 / phi-2 / mpt = GPT-2's split, falcon = Falcon's, qwen2) encodes the fixture text as the golden ids.
        from transformers import AutoTokenizer
        text = json.loads((FAMILIES / f"{family}.tokens.json").read_text())["text"]
        assert AutoTokenizer.from_pretrained(str(out))(text, add_special_tokens=False)["input_ids"][: len(tokens)] == tokens
    n = positions or len(tokens)
    assert np.abs(logits[:n] - golden[:n]).max() <= 1e-5, f"{case}: max |Δ| {np.abs(logits[:n] - golden[:n]).max():g}"


# Families whose GGUF llama.cpp runs (testdata/golden/families/manifest.json), with the KV
# overrides the fixture script needed: Qwen-7B's converter writes layer_norm_epsilon where
# llama.cpp's loader reads layer_norm_rms_epsilon (the same file from wconv, by design).
LLAMA_CPP_FAMILIES = {
    "qwen2": None, "mistral": None, "falcon-40b": None, "falcon-7b": None, "mpt": None, "gpt2": None,
    "phi-1_5": None, "baichuan2-7b": None, "baichuan2-13b": None,
    "qwen-7b": {"qwen.attention.layer_norm_rms_epsilon": 1e-6},
}

_LLAMA_CHILD = """
import json, sys
import numpy as np
from llama_cpp import Llama
path, out, tokens, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
llm = Llama(model_path=path, n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True, n_threads=1, seed=0,
            type_k=0, type_v=0, flash_attn=False, kv_overrides=overrides or None, verbose=False)
llm.eval(tokens)
np.save(out, np.asarray(llm.scores[: len(tokens)], dtype=np.float32))
"""


@pytest.mark.parametrize("family", sorted(LLAMA_CPP_FAMILIES))
def test_llama_cpp_runs_our_family_gguf(tmp_path, family):
    """wconv's GGUF of each family (provenance included) runs in llama-cpp-python with the logits
    llama.cpp gives on the converter's own file (same single-threaded settings as the fixture)."""
    pytest.importorskip("llama_cpp")
    require("convert")
    gguf = tmp_path / f"{family}.gguf"
    r = run_wconv("convert", str(TESTDATA / "families" / family), "-o", str(gguf), "--outtype", "f32")
    assert r.returncode == 0, r.stderr
    tokens = json.loads((FAMILIES / f"{family}.tokens.json").read_text())["tokens"]
    out = tmp_path / "logits.npy"
    # A child process: a llama.cpp abort must fail this test, not the whole session.
    child = subprocess.run([sys.executable, "-c", _LLAMA_CHILD, str(gguf), str(out), json.dumps(tokens),
                            json.dumps(LLAMA_CPP_FAMILIES[family] or {})], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    ours = np.load(out)
    golden = np.load(FAMILIES / f"{family}.llamacpp_logits_f32.npy")
    assert ours.shape == golden.shape
    assert np.abs(ours - golden).max() <= 1e-5, f"{family}: max |Δ| {np.abs(ours - golden).max():g}"
