#!/usr/bin/env python3
"""Goldens for `wconv convert HF_DIR -o OUT_DIR --outtype T` (HF → HF dtype conversion), made with transformers.

Requirements (PyPI): torch (CPU build), transformers==5.24.0, safetensors.
    ~/.cache/wconv/venv/bin/python testdata/scripts/make_hf_dtype_goldens.py   # from the repository root

The reference is `AutoModelForCausalLM.from_pretrained(dir, dtype=…).save_pretrained(out, safe_serialization=True)`.
For these fixtures its model.safetensors equals `safetensors.torch.save_file` of the torch-cast tensors with
metadata {"format": "pt"} (the script checks that), so nothing model-class specific leaks into the bytes; its
config.json equals the input's with `dtype` replaced, because the fixtures' configs were written by the same
transformers version. For the sharded case the state dict is passed in the input file's tensor order
(`save_pretrained(state_dict=…)`), since wconv, knowing no model class, shards in the order the input lists
its tensors.

Writes testdata/golden/hf-dtype.json: per case, the SHA-256 and size of every file the reference wrote that
wconv writes too (weights, index, config.json), so the goldens stay small while still checking every byte.
"""

import hashlib
import json
import os
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def digest(path):
    data = open(path, "rb").read()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def files(directory, names):
    return {n: digest(os.path.join(directory, n)) for n in names if os.path.exists(os.path.join(directory, n))}


def check_plain(model_dir, out_dir, dtype, tmp):
    """transformers' weights equal a plain save_file of the cast tensors."""
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    plain = os.path.join(tmp, "plain.safetensors")
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}, plain, metadata={"format": "pt"})
    assert open(plain, "rb").read() == open(os.path.join(out_dir, "model.safetensors"), "rb").read(), model_dir


def main():
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in ["families/persimmon", "families/opt"]:
            for outtype in ["f32", "bf16"]:
                src = os.path.join(ROOT, fixture)
                out = os.path.join(tmp, f"{os.path.basename(fixture)}-{outtype}")
                AutoModelForCausalLM.from_pretrained(src, dtype=DTYPES[outtype]).save_pretrained(out, safe_serialization=True)
                check_plain(src, out, DTYPES[outtype], tmp)
                cases[f"{fixture}:{outtype}"] = files(out, ["model.safetensors", "config.json"])

        # A single safetensors file to a file (the weights of the directory case).
        src = os.path.join(ROOT, "tiny-llama-spm")
        out = os.path.join(tmp, "spm-f16")
        AutoModelForCausalLM.from_pretrained(src, dtype=torch.float16).save_pretrained(out, safe_serialization=True)
        check_plain(src, out, torch.float16, tmp)
        cases["tiny-llama-spm/model.safetensors:f16"] = files(out, ["model.safetensors"])

        # Sharded: bf16 → f16 in shards of at most 40KB, tensors in the input file's order.
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float16)
        with safe_open(os.path.join(src, "model.safetensors"), "pt") as f:
            order = list(f.keys())
        state = model.state_dict()
        out = os.path.join(tmp, "spm-f16-sharded")
        model.save_pretrained(out, safe_serialization=True, max_shard_size="40KB", state_dict={k: state[k] for k in order})
        names = sorted(n for n in os.listdir(out) if n.startswith("model"))
        cases["tiny-llama-spm:f16:40KB"] = files(out, names + ["config.json"])

        # Round trip f32 → bf16 → f32 (persimmon's f16 weights made f32 first, as `convert --outtype f32` does).
        model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "families/persimmon"), dtype=torch.float32)
        model = model.to(torch.bfloat16).to(torch.float32)
        out = os.path.join(tmp, "persimmon-roundtrip")
        model.save_pretrained(out, safe_serialization=True)
        cases["families/persimmon:f32:bf16:f32"] = files(out, ["model.safetensors"])

    path = os.path.join(ROOT, "golden", "hf-dtype.json")
    with open(path, "w") as f:
        json.dump(cases, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
