#!/usr/bin/env python3
"""PEFT LoRA adapters for the tiny family checkpoints (testdata/families/<name>) and what the
reference tools make of them: PEFT's target names per family, PEFT's merge_and_unload, the
dequantize + delta merge on transformers + bitsandbytes NF4 bases, and llama.cpp's
convert_lora_to_gguf.py.

Requirements: the interop venv (scripts/interop-env.sh): torch 2.13.0+cpu, transformers 5.24.0,
peft 0.21.2, bitsandbytes 0.50.2, safetensors; llama.cpp's convert_lora_to_gguf.py from the
llama-cpp-python 0.3.36 sdist (vendor/llama.cpp, with its own gguf-py).

    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_family_adapters.py [steps...]

Run from anywhere; paths written into the outputs are relative to the repository root. The script
re-executes itself with PYTHONHASHSEED=0: PEFT saves target_modules from a Python set, whose order
depends on string hashing. Steps (default: all, in this order):
  adapters  an adapter per family on all its linear layers -> testdata/golden/families-lora/<name>/
            and targets.json (PEFT's default targets and the all-linear selection per model_type)
  merge     PEFT merge_and_unload on the f32 base -> <name>.merged_f32.safetensors (adapted weights only);
            bitsandbytes NF4 base (transformers' quantization at load) dequantized + delta
            -> <name>.nf4_merged_f32.safetensors, for the families transformers quantizes
  gguf      convert_lora_to_gguf.py --outtype f32 -> <name>.f32.gguf where it converts; gguf.json
            records every run's result (or its error). Baichuan runs with the converter's recursion bug
            fixed (as make_family_fixtures.py's _convert_fixed does).

Remote-code families (qwen-7b, baichuan2-7b, baichuan2-13b) have no transformers class. Their
adapter is made by PEFT on a torch module built from the checkpoint's published layout: every
weight of a target leaf (the names of the published modeling code) becomes an nn.Linear holding
the checkpoint's weight and bias at the same module path; get_peft_model and merge_and_unload then
run on that module, so the merge is PEFT's own.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_lora_goldens import adapted_weight_names, lora_pairs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "testdata"
FAMILIES = TESTDATA / "families"
OUT = TESTDATA / "golden" / "families-lora"
CACHE = Path(os.environ.get("WCONV_CACHE", Path.home() / ".cache" / "wconv"))
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", CACHE / "llama-cpp-python-src" / "vendor" / "llama.cpp"))

# name -> seed. All families get r=4, alpha=8 (scaling 2), dropout 0, on all their linear layers.
NAMES = {
    "qwen2": 1, "mistral": 2, "gpt2": 3, "opt": 4, "phi-1_5": 5, "falcon-7b": 6, "falcon-40b": 7, "mpt": 8,
    "persimmon": 9, "qwen-7b": 10, "baichuan2-7b": 11, "baichuan2-13b": 12,
}
# Remote code: the linear leaves of the published modeling code (modeling_qwen.py, modeling_baichuan.py).
REMOTE_TARGETS = {
    "qwen-7b": ["c_attn", "c_proj", "w1", "w2"],
    "baichuan2-7b": ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "baichuan2-13b": ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
# Families whose linear weights transformers quantizes to 4 bits at load (Falcon and GPT-2 it does not).
NF4 = ["qwen2", "mistral", "opt", "phi-1_5", "mpt", "persimmon"]
# Families llama.cpp has an architecture for.
GGUF = ["qwen2", "mistral", "gpt2", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "qwen-7b", "baichuan2-7b", "baichuan2-13b"]
B_STD = 0.05


def rel(p):
    return os.path.relpath(p, ROOT)


def config(name):
    return json.loads((FAMILIES / name / "config.json").read_text())


def remote_module(name):
    """A torch module with the checkpoint's linear layers at their published paths."""
    from safetensors.torch import load_file

    sd = load_file(str(FAMILIES / name / "model.safetensors"))
    root = torch.nn.Module()
    for key in sorted(sd):
        path, kind = key.rsplit(".", 1)
        if kind != "weight" or path.rsplit(".", 1)[-1] not in REMOTE_TARGETS[name] or sd[key].dim() != 2:
            continue
        w = sd[key].float()
        bias = sd.get(path + ".bias")
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
        with torch.no_grad():
            lin.weight.copy_(w)
            if bias is not None:
                lin.bias.copy_(bias.float())
        parent = root
        parts = path.split(".")
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, torch.nn.Module())
            parent = getattr(parent, p)
        parent.add_module(parts[-1], lin)
    return root


def base_model(name):
    if name in REMOTE_TARGETS:
        return remote_module(name)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(FAMILIES / name), dtype=torch.float32)
    # PEFT records name_or_path as base_model_name_or_path: keep machine paths out of the files.
    model.config.name_or_path = rel(FAMILIES / name)
    model.name_or_path = rel(FAMILIES / name)
    return model


# ---------------------------------------------------------------------------------------------
def step_adapters():
    from peft import LoraConfig, get_peft_model
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING

    targets = {}
    for name, seed in NAMES.items():
        torch.manual_seed(seed)
        model = base_model(name)
        model_type = config(name).get("model_type")
        if name in REMOTE_TARGETS:
            kwargs = dict(target_modules=REMOTE_TARGETS[name])
        else:
            kwargs = dict(target_modules="all-linear", task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, **kwargs))
        g = torch.Generator().manual_seed(1000 + seed)
        with torch.no_grad():
            for pname, p in sorted(peft_model.named_parameters()):
                if "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=g) * B_STD)
        out = OUT / name
        if out.exists():
            shutil.rmtree(out)
        peft_model.save_pretrained(str(out))
        cfg = peft_model.peft_config["default"]
        conv1d = sorted({m.split(".")[-1] for m, mod in peft_model.named_modules()
                         if hasattr(mod, "lora_A") and getattr(mod, "fan_in_fan_out", False)})
        targets[name] = {
            "model_type": model_type,
            "peft_default": MAPPING.get(model_type),
            "all_linear": sorted(cfg.target_modules) if name not in REMOTE_TARGETS else None,
            "stated_targets": REMOTE_TARGETS.get(name),
            "fan_in_fan_out_leaves": conv1d,
            "adapted_weights": adapted_weight_names(peft_model),
        }
        print("wrote", rel(out))
    (OUT / "targets.json").write_text(json.dumps(targets, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
def step_merge():
    from peft import PeftModel
    from safetensors.torch import save_file, load_file
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    for name in NAMES:
        model = base_model(name)
        peft_model = PeftModel.from_pretrained(model, str(OUT / name))
        names = adapted_weight_names(peft_model)
        merged = peft_model.merge_and_unload()
        sd = merged.state_dict()
        tensors = {n: sd[n].detach().float().contiguous().clone() for n in names}
        out = OUT / f"{name}.merged_f32.safetensors"
        save_file(tensors, str(out), metadata={"format": "pt"})
        print("wrote", rel(out), len(tensors), "tensors")

    # NF4 bases: transformers + bitsandbytes quantize at load (nf4, double quantization, as
    # `wconv quantize --nf4` writes them); the weights bitsandbytes dequantizes to, plus
    # scaling * B @ A in float32.
    for name in NF4:
        qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
        torch.manual_seed(0)
        qm = AutoModelForCausalLM.from_pretrained(str(FAMILIES / name), quantization_config=qc, device_map="cpu")
        modules = dict(qm.named_modules())
        acfg = json.loads((OUT / name / "adapter_config.json").read_text())
        scaling = acfg["lora_alpha"] / acfg["r"]
        lora = load_file(str(OUT / name / "adapter_model.safetensors"))
        tensors = {}
        quantized = 0
        for module, a, b in lora_pairs(lora):
            mod = modules[module]
            if isinstance(mod, bnb.nn.Linear4bit):
                w = F.dequantize_4bit(mod.weight.data, mod.weight.quant_state).float()
                quantized += 1
            else:
                w = mod.weight.data.float()
            tensors[module + ".weight"] = (w + (b @ a) * scaling).contiguous()
        out = OUT / f"{name}.nf4_merged_f32.safetensors"
        save_file(tensors, str(out), metadata={"format": "pt"})
        print("wrote", rel(out), len(tensors), "tensors,", quantized, "from NF4 weights")


# ---------------------------------------------------------------------------------------------
def step_gguf():
    script = LLAMA_CPP / "convert_lora_to_gguf.py"
    manifest = {}
    for name in GGUF:
        out = OUT / f"{name}.f32.gguf"
        base = FAMILIES / name
        tmp = None
        cfg = config(name)
        if cfg.get("architectures", [""])[0] == "MptForCausalLM":
            # The converter registers only the remote-code name (see testdata/README.md §8).
            tmp = Path(tempfile.mkdtemp())
            shutil.copy(base / "config.json", tmp / "config.json")
            cfg["architectures"] = ["MPTForCausalLM"]
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
            base = tmp
        cmd = [sys.executable, str(script), "--base", str(base), "--outtype", "f32", "--outfile", str(out), str(OUT / name)]
        if name.startswith("baichuan"):
            # The converter's Baichuan recursion bug (testdata/README.md §8), fixed as make_family_fixtures.py does.
            cmd = [sys.executable, str(Path(__file__).resolve()), "_lora_fixed"] + cmd[2:]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if tmp:
            shutil.rmtree(tmp)
        if r.returncode == 0:
            manifest[name] = {"converts": True, "baichuan_recursion_fix": name.startswith("baichuan")}
            print("wrote", rel(out))
        else:
            err = [l for l in r.stderr.strip().splitlines() if l.strip()]
            manifest[name] = {"converts": False, "error": err[-1] if err else f"exit {r.returncode}"}
            if out.exists():
                out.unlink()
            print(name, "does not convert:", manifest[name]["error"])
    (OUT / "gguf.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def lora_fixed_child(argv):
    """convert_lora_to_gguf.py in this process with the Baichuan recursion fix of make_family_fixtures.py
    (the only change)."""
    import runpy

    from make_family_fixtures import fix_baichuan_recursion

    script = LLAMA_CPP / "convert_lora_to_gguf.py"
    fix_baichuan_recursion(LLAMA_CPP)
    sys.argv = [str(script)] + argv
    runpy.run_path(str(script), run_name="__main__")


STEPS = {"adapters": step_adapters, "merge": step_merge, "gguf": step_gguf}

if __name__ == "__main__":
    if sys.argv[1:2] == ["_lora_fixed"]:
        lora_fixed_child(sys.argv[2:])
        sys.exit(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for step in sys.argv[1:] or list(STEPS):
        STEPS[step]()
