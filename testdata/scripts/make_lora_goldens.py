#!/usr/bin/env python3
"""Goldens for wconv's LoRA adapter I/O, merging and training-data rendering (Finetune/Adapter,
Finetune/Merge, Finetune/Data), made with the reference tools.

Requirements: the interop venv (scripts/interop-env.sh): torch 2.13.0+cpu, transformers 5.24.0,
peft 0.21.2, bitsandbytes 0.50.2, jinja2, safetensors, numpy; llama.cpp's convert_lora_to_gguf.py from
the llama-cpp-python 0.3.36 sdist (vendor/llama.cpp, with its own gguf-py).

    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_lora_goldens.py [steps...]

Run from the repository root (paths written into the adapters are relative to it).
Steps (default: all, in this order):
  adapters  PEFT adapters on the tiny models             -> testdata/golden/lora/<name>/
  gguf      convert_lora_to_gguf.py on them              -> testdata/golden/lora/<name>.<outtype>.gguf
  merge     PEFT merge_and_unload on f32 bases, and bitsandbytes dequantization + delta for the
            NF4 / int8 bases                             -> testdata/golden/lora/<name>.*merged*.safetensors
  logits    PEFT base+adapter logits on the golden tokens -> testdata/golden/lora/<name>.adapter_logits_f32.npy
  data      chat-template renders (jinja2 through transformers' apply_chat_template) and tokens /
            loss masks of testdata/golden/lora/data/sample.jsonl -> testdata/golden/lora/data/*.json
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "testdata"
OUT = TESTDATA / "golden" / "lora"
CACHE = Path(os.environ.get("WCONV_CACHE", Path.home() / ".cache" / "wconv"))
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", CACHE / "llama-cpp-python-src" / "vendor" / "llama.cpp"))

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name -> (base model dir, LoraConfig kwargs, torch seed, std of B)
ADAPTERS = {
    "tiny-llama-spm-lora": ("testdata/tiny-llama-spm",
                            dict(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=SEVEN), 1234, 0.05),
    # rank_pattern / alpha_pattern / rsLoRA / a regex target_modules: the scaling paths.
    "tiny-llama-spm-lora-patterns": ("testdata/tiny-llama-spm",
                                     dict(r=4, lora_alpha=8, lora_dropout=0.0,
                                          target_modules=r".*\.(q_proj|k_proj|v_proj|up_proj|down_proj)",
                                          rank_pattern={"q_proj": 8, "down_proj": 2},
                                          alpha_pattern={"layers.1.self_attn.v_proj": 3},
                                          use_rslora=True), 4321, 0.05),
    # a tied-embedding base with llama3 rope scaling (f16 weights)
    "tiny-llama-bpe-lora": ("testdata/tiny-llama-bpe",
                            dict(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=SEVEN), 99, 0.05),
}


def rel(p):
    return os.path.relpath(p, ROOT)


# ---------------------------------------------------------------------------------------------
def step_adapters():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for name, (base, kwargs, seed, b_std) in ADAPTERS.items():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **kwargs))
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for pname, p in sorted(peft_model.named_parameters()):
                if "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=g) * b_std)
        out = OUT / name
        peft_model.save_pretrained(str(out))
        print("wrote", rel(out))


# ---------------------------------------------------------------------------------------------
def step_gguf():
    script = LLAMA_CPP / "convert_lora_to_gguf.py"
    runs = [("tiny-llama-spm-lora", "f32"), ("tiny-llama-spm-lora", "f16"), ("tiny-llama-spm-lora", "q8_0"),
            ("tiny-llama-bpe-lora", "f32")]
    for name, outtype in runs:
        base = ADAPTERS[name][0]
        out = OUT / f"{name}.{outtype}.gguf"
        cmd = [sys.executable, str(script), "--base", base, "--outtype", outtype, "--outfile", rel(out), rel(OUT / name)]
        subprocess.run(cmd, check=True, cwd=ROOT)
        print("wrote", rel(out))


# ---------------------------------------------------------------------------------------------
def adapted_weight_names(peft_model):
    names = []
    for mname, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            names.append(mname.replace("base_model.model.", "", 1) + ".weight")
    return sorted(names)


def lora_pairs(lora):
    """(module name, A, B) in float32 for every pair of a PEFT adapter state dict, in key order."""
    for key in sorted(lora):
        if ".lora_A." not in key:
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        yield module, lora[key].float(), lora[key.replace(".lora_A.", ".lora_B.")].float()


def step_merge():
    from peft import PeftModel
    from safetensors.torch import save_file, load_file
    from transformers import AutoModelForCausalLM
    import bitsandbytes.functional as F

    for name, (base, _, _, _) in ADAPTERS.items():
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        peft_model = PeftModel.from_pretrained(model, str(OUT / name))
        names = adapted_weight_names(peft_model)
        merged = peft_model.merge_and_unload()
        sd = merged.state_dict()
        tensors = {n: sd[n].detach().contiguous().clone() for n in names}
        out = OUT / f"{name}.merged_f32.safetensors"
        save_file(tensors, str(out), metadata={"format": "pt"})
        print("wrote", rel(out), len(tensors), "tensors")

    # Quantized bases: the weights bitsandbytes dequantizes to, plus scaling * B @ A in float32.
    name = "tiny-llama-spm-lora"
    adapter_cfg = json.loads((OUT / name / "adapter_config.json").read_text())
    scaling = adapter_cfg["lora_alpha"] / adapter_cfg["r"]
    lora = load_file(str(OUT / name / "adapter_model.safetensors"))
    for kind in ["nf4", "int8"]:
        qdir = TESTDATA / "golden" / f"tiny-llama-spm-{kind}"
        if not qdir.is_dir():
            qdir = TESTDATA / "vectors" / "fixtures" / f"tiny-llama-{kind}"
        q = load_file(str(qdir / "model.safetensors"))
        tensors = {}
        for module, a, b in lora_pairs(lora):
            wname = module + ".weight"
            if kind == "nf4":
                state_key = next(k for k in q if k.startswith(wname + ".quant_state.bitsandbytes__"))
                from bitsandbytes.functional import QuantState
                qs = QuantState.from_dict({k[len(wname) + 1:]: v for k, v in q.items() if k.startswith(wname + ".")},
                                          device=torch.device("cpu"))
                w = F.dequantize_4bit(q[wname], qs).float()
            else:
                cb = q[wname]
                scb = q[module + ".SCB"]
                w = F.int8_vectorwise_dequant(cb, scb).float()
            tensors[wname] = (w + (b @ a) * scaling).contiguous()
        out = OUT / f"{name}.{kind}_merged_f32.safetensors"
        save_file(tensors, str(out), metadata={"format": "pt"})
        print("wrote", rel(out), len(tensors), "tensors from", rel(qdir))


# ---------------------------------------------------------------------------------------------
def step_logits():
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    for name, (base, _, _, _) in ADAPTERS.items():
        model_name = Path(base).name
        tokens = json.loads((TESTDATA / "golden" / f"{model_name}.tokens.json").read_text())["tokens"]
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
        peft_model = PeftModel.from_pretrained(model, str(OUT / name)).eval()
        with torch.no_grad():
            logits = peft_model(torch.tensor([tokens])).logits[0].float().numpy()
        out = OUT / f"{name}.adapter_logits_f32.npy"
        np.save(out, logits.astype(np.float32))
        print("wrote", rel(out), logits.shape)


# ---------------------------------------------------------------------------------------------
# Chat templates. Family templates as the model repositories ship them; Alpaca and Vicuna have no
# official Jinja template, so these two are wconv's definitions of the Stanford Alpaca prompt and
# FastChat's vicuna_v1.1 conversation.
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
          "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
          "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
          "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
          "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
           "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n'"
           " + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
ALPACA = ("{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% set loop_messages = messages[1:] %}"
          "{% else %}{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n' }}"
          "{% set loop_messages = messages %}{% endif %}{% set ns = namespace(after_answer=false) %}{% for message in loop_messages %}"
          "{% if message['role'] == 'user' %}{% if ns.after_answer %}{{ '\\n\\n' }}{% endif %}"
          "{{ '### Instruction:\\n' + message['content'] + '\\n\\n### Response:\\n' }}{% set ns.after_answer = false %}"
          "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% set ns.after_answer = true %}{% endif %}{% endfor %}")
VICUNA = ("{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}{% set loop_messages = messages[1:] %}"
          "{% else %}{{ 'A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, "
          "and polite answers to the user\\'s questions. ' }}{% set loop_messages = messages %}{% endif %}"
          "{% for message in loop_messages %}{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
          "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
          "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")


def templates():
    bpe_cfg = json.loads((TESTDATA / "tiny-llama-bpe" / "tokenizer_config.json").read_text())
    spm_cfg = json.loads((TESTDATA / "tiny-llama-spm" / "tokenizer_config.json").read_text())
    tdir = LLAMA_CPP / "models" / "templates"
    return {
        # name: (template text, bos_token, eos_token, wconv --template name)
        "chatml": (bpe_cfg["chat_template"], "<|im_start|>", "<|im_end|>", "chatml"),
        "smollm2": (SMOLLM2, "<|im_start|>", "<|im_end|>", "smollm2"),
        "qwen2.5": ((tdir / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(), None, "<|im_end|>", "qwen2.5"),
        "llama2": (LLAMA2, "<s>", "</s>", "llama2"),
        "llama2-tiny": (spm_cfg["chat_template"], "<s>", "</s>", "llama2"),
        "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", "llama3"),
        "llama3.1": ((tdir / "meta-llama-Llama-3.1-8B-Instruct.jinja").read_text(), "<|begin_of_text|>", "<|eot_id|>", "llama3.1"),
        "alpaca": (ALPACA, "<s>", "</s>", "alpaca"),
        "vicuna": (VICUNA, "<s>", "</s>", "vicuna"),
    }


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "  Name a colour. "},
     {"role": "assistant", "content": " Blue  "}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}, {"role": "assistant", "content": "No.\n\nThat was it."}],
    [{"role": "system", "content": "Ünïcödé — ✓ system"}, {"role": "user", "content": "\tfirst\t"},
     {"role": "assistant", "content": "second"}, {"role": "user", "content": "third"},
     {"role": "assistant", "content": "fourth "}],
    [{"role": "user", "content": "only a question"}],
]


def render(tok, text, messages, bos, eos, gen):
    kwargs = {"eos_token": eos}
    if bos is not None:
        kwargs["bos_token"] = bos
    return tok.apply_chat_template(messages, chat_template=text, tokenize=False, add_generation_prompt=gen, **kwargs)


# The training file: every record form, and the cases exercising masks and truncation.
SAMPLE = [
    {"text": "the quick brown fox jumps over the lazy dog"},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say hi.", "input": "", "output": "hi there"},
    {"messages": CONVERSATIONS[0]},
    {"messages": CONVERSATIONS[1]},
    {"messages": CONVERSATIONS[2]},
    {"messages": CONVERSATIONS[4]},
    {"text": "a longer text so that truncation to a short maximum length cuts it off before the end of the line"},
]

ALPACA_PROMPT = {
    "prompt_input": ("Below is an instruction that describes a task, paired with an input that provides further context. "
                     "Write a response that appropriately completes the request.\n\n"
                     "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"),
    "prompt_no_input": ("Below is an instruction that describes a task. "
                        "Write a response that appropriately completes the request.\n\n"
                        "### Instruction:\n{instruction}\n\n### Response:\n"),
}


def encode_case(tok, template, train_on_prompt, max_len, model_has_template):
    """The masking rule documented in Finetune/Data/TrainingData.swift, with transformers."""
    text_t, bos, eos, wconv_name = template if template else (None, None, None, None)
    bos_token, eos_token = tok.bos_token or "", tok.eos_token or ""
    if template:
        bos = bos_token
        eos = eos_token
    assert tok("a", add_special_tokens=True).input_ids[-1] != tok.eos_token_id, "tokenizer adds EOS; rule needs suffix handling"

    def count(s, special):
        return len(tok(s, add_special_tokens=special).input_ids)

    examples, skipped, truncated = [], 0, 0
    for rec in SAMPLE:
        targets = []
        if "text" in rec:
            ids = tok(rec["text"], add_special_tokens=True).input_ids
            if ids[-1] != tok.eos_token_id:
                ids.append(tok.eos_token_id)
            targets = [(0, len(ids))]
        else:
            if "messages" in rec:
                messages = rec["messages"]
            else:
                use_stanford = (template is None and not model_has_template) or (wconv_name == "alpaca")
                if use_stanford:
                    key = "prompt_input" if rec["input"] else "prompt_no_input"
                    prompt = ALPACA_PROMPT[key].format(**rec)
                    ids = tok(prompt + rec["output"] + eos_token, add_special_tokens=True).input_ids
                    targets = [(count(prompt, True), len(ids))]
                    messages = None
                else:
                    user = rec["instruction"] if not rec["input"] else rec["instruction"] + "\n\n" + rec["input"]
                    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": rec["output"]}]
            if messages is not None:
                t_text = text_t if template else tok.chat_template
                special = wconv_name in ("alpaca", "vicuna")
                full = render(tok, t_text, messages, bos_token, eos_token, False)
                ids = tok(full, add_special_tokens=special).input_ids
                for j, m in enumerate(messages):
                    if m["role"] != "assistant":
                        continue
                    assert j > 0, "a conversation opening with a reply"
                    start_text = render(tok, t_text, messages[:j], bos_token, eos_token, True)
                    end_text = render(tok, t_text, messages[:j + 1], bos_token, eos_token, False)
                    assert full.startswith(start_text) and full.startswith(end_text), (wconv_name, j)
                    start = count(start_text, special)
                    targets.append((start, min(len(ids), count(end_text, special))))
        mask = [bool(train_on_prompt)] * len(ids)
        if not train_on_prompt:
            for a, b in targets:
                for i in range(a, b):
                    mask[i] = True
        cut = max_len is not None and len(ids) > max_len
        if cut:
            ids, mask = ids[:max_len], mask[:max_len]
        if sum(mask[1:]) == 0:
            skipped += 1
            continue
        truncated += int(cut)
        examples.append({"tokens": ids, "mask": mask})
    return {"examples": examples, "skipped": skipped, "truncated": truncated}


def step_data():
    from transformers import AutoTokenizer

    ddir = OUT / "data"
    ddir.mkdir(parents=True, exist_ok=True)
    tok = {m: AutoTokenizer.from_pretrained(str(TESTDATA / m)) for m in ["tiny-llama-spm", "tiny-llama-bpe"]}
    any_tok = tok["tiny-llama-spm"]

    renders = []
    for tname, (text, bos, eos, wconv_name) in templates().items():
        for ci, conv in enumerate(CONVERSATIONS):
            for gen in (False, True):
                try:
                    out = render(any_tok, text, conv, bos, eos, gen)
                except Exception as e:  # the template raises (e.g. no reply to alternate with)
                    out = None
                    err = str(e)
                renders.append({"template": tname, "wconv_template": wconv_name, "conversation": ci,
                                "add_generation_prompt": gen, "bos_token": bos, "eos_token": eos,
                                "text": out})
    tjson = {name: {"text": t, "bos_token": b, "eos_token": e, "wconv_template": w}
             for name, (t, b, e, w) in templates().items()}
    (ddir / "templates.json").write_text(json.dumps({"templates": tjson, "conversations": CONVERSATIONS,
                                                     "renders": renders}, indent=1, ensure_ascii=False) + "\n")
    print("wrote", rel(ddir / "templates.json"), len(renders), "renders")

    (ddir / "sample.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in SAMPLE))
    tmpl = templates()
    cases = []
    for model, tname, top, max_len in [
        ("tiny-llama-spm", None, False, None),
        ("tiny-llama-spm", None, True, None),
        ("tiny-llama-spm", None, False, 24),
        ("tiny-llama-bpe", None, False, None),
        ("tiny-llama-spm", "alpaca", False, None),
        ("tiny-llama-bpe", "vicuna", False, None),
        ("tiny-llama-bpe", "llama3", False, None),
        ("tiny-llama-bpe", "smollm2", False, 40),
    ]:
        t = tmpl[tname] if tname else None
        result = encode_case(tok[model], t, top, max_len, tok[model].chat_template is not None)
        cases.append({"model": model, "template": t[3] if t else None, "train_on_prompt": top, "max_len": max_len, **result})
    (ddir / "examples.json").write_text(json.dumps({"sample": "sample.jsonl", "cases": cases}) + "\n")
    print("wrote", rel(ddir / "examples.json"), len(cases), "cases")


STEPS = {"adapters": step_adapters, "gguf": step_gguf, "merge": step_merge, "logits": step_logits, "data": step_data}

if __name__ == "__main__":
    os.chdir(ROOT)
    OUT.mkdir(parents=True, exist_ok=True)
    for s in (sys.argv[1:] or list(STEPS)):
        STEPS[s]()
