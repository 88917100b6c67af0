#!/usr/bin/env python3
"""Reference outputs for `wconv run` / `wconv verify` tests, from transformers and peft.

Run with the interop venv's python:

    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_verify_goldens.py

Writes testdata/golden/verify/:
  tiny-llama.lora_logits_f32.npy   [8, 128] float32 logits of testdata/vectors/tiny-llama (bf16 weights
                                    upcast to float32) with the PEFT adapter testdata/vectors/fixtures/tiny-adapter
                                    applied by peft (PeftModel, eval mode, not merged), eager attention,
                                    tokens [1, 5, 17, 42, 99, 3, 64, 127].
  tiny-llama.lora_merged_logits_f32.npy  the same after `merge_and_unload()` (W + s*B@A in float32).
  greedy.json                      greedy continuations (`generate(do_sample=False)`, fp32, eager) of the
                                    two tiny models' golden prompts, for `wconv run`.
Deterministic: no randomness is involved.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "testdata"
OUT = TESTDATA / "golden" / "verify"
TOKENS = [1, 5, 17, 42, 99, 3, 64, 127]


def load(path: Path):
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def lora_goldens() -> None:
    base = load(TESTDATA / "vectors" / "tiny-llama")
    model = PeftModel.from_pretrained(base, str(TESTDATA / "vectors" / "fixtures" / "tiny-adapter"))
    model.eval()
    ids = torch.tensor([TOKENS])
    with torch.no_grad():
        logits = model(ids).logits[0].float().numpy()
    np.save(OUT / "tiny-llama.lora_logits_f32.npy", logits.astype(np.float32))
    merged = model.merge_and_unload()
    with torch.no_grad():
        merged_logits = merged(ids).logits[0].float().numpy()
    np.save(OUT / "tiny-llama.lora_merged_logits_f32.npy", merged_logits.astype(np.float32))
    print("lora: max |unmerged - merged|", float(np.abs(logits - merged_logits).max()))


def greedy_goldens() -> None:
    cases = {}
    for name in ["tiny-llama-spm", "tiny-llama-bpe"]:
        meta = json.loads((TESTDATA / "golden" / f"{name}.tokens.json").read_text())
        model = load(TESTDATA / name)
        tok = AutoTokenizer.from_pretrained(str(TESTDATA / name))
        prompt = meta["tokens"]
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        new = out[0, len(prompt):].tolist()
        cases[name] = {
            "text": meta["text"],
            "prompt_tokens": prompt,
            "generated": new,
            "generated_text": tok.decode(new),
        }
    (OUT / "greedy.json").write_text(json.dumps(cases, indent=1) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    lora_goldens()
    greedy_goldens()


if __name__ == "__main__":
    main()
