#!/usr/bin/env python3
"""bitsandbytes checkpoints of the family fixtures that transformers can quantize itself (issue 7).

    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_family_bnb_goldens.py

For each case, `AutoModelForCausalLM.from_pretrained(testdata/families/<name>, quantization_config=…,
device_map="cpu", dtype=torch.float16)` (the fixture's own dtype, so nothing else is cast) then
`save_pretrained(safe_serialization=True)` into testdata/golden/families/<name>-<kind>/ (model.safetensors,
config.json, generation_config.json), as make_fixtures.py's `bnb_checkpoint` does for tiny-llama-spm: NF4 with
double quantization and compute dtype float32, and LLM.int8 with the defaults. transformers 5.24.0, bitsandbytes 0.50.2, CPU.

Only GPT-2 is here: it is the family whose weights transformers treats specially (its Conv1D weights, stored
[in, out], are transposed to [out, in] before quantization, and the saved 4-bit/int8 weights keep that
orientation). Qwen-7B is remote code (no modeling code offline), so transformers cannot produce its checkpoint;
wconv applies the rule transformers would (every nn.Linear except lm_head). The manifest
(golden/families/bnb-manifest.json) records the tool versions, which modules became bitsandbytes layers, and the
SHA-256 of every file written. Two runs write identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "testdata"
FAMILIES = TESTDATA / "families"
GOLDEN = TESTDATA / "golden" / "families"
CASES = [("gpt2", "nf4"), ("gpt2", "int8")]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import bitsandbytes as bnb
    import transformers
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    torch.manual_seed(0)
    manifest: dict = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                   "bitsandbytes": bnb.__version__}, "cases": {}}
    for name, kind in CASES:
        if kind == "nf4":
            qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=torch.float32)
        else:
            qc = BitsAndBytesConfig(load_in_8bit=True)
        model = AutoModelForCausalLM.from_pretrained(str(FAMILIES / name), quantization_config=qc, device_map="cpu",
                                                     dtype=torch.float16)
        out = GOLDEN / f"{name}-{kind}"
        if out.exists():
            shutil.rmtree(out)
        model.save_pretrained(str(out), safe_serialization=True)
        layers = sorted(m for m, mod in model.named_modules()
                        if isinstance(mod, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)))
        manifest["cases"][f"{name}-{kind}"] = {
            "input": f"testdata/families/{name}",
            "quantization_config": qc.to_dict(),
            "bitsandbytes_modules": layers,
            "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())},
        }
        print(f"[family-bnb] {name}-{kind}: {len(layers)} bitsandbytes modules", file=sys.stderr)
    (GOLDEN / "bnb-manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
