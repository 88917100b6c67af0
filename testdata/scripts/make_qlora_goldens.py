#!/usr/bin/env python3
"""Writes testdata/golden/qlora/: one LoRA training step, and a short training run, computed by
PyTorch + PEFT on the tiny test models, for the Swift Finetune tests.

Run from the repository root with the interop Python (torch 2.13 cpu, transformers 5.24, peft 0.21.2,
bitsandbytes 0.50.2, safetensors 0.8):
    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_qlora_goldens.py

Outputs (all float tensors float32, little-endian safetensors):

* step_<case>.safetensors: for every adapted module, PEFT's key without the adapter name
  (`base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight`, ...) holding the value the
  step starts from, and the same key + `.grad` holding d(loss)/d(tensor) after `loss.backward()`.
  Cases:
    - spm_f32: testdata/tiny-llama-spm loaded in float32 (bf16 weights upcast exactly), untied head, GQA.
    - bpe_f32: testdata/tiny-llama-bpe in float32: tied embeddings, llama3 RoPE scaling.
    - spm_nf4: testdata/tiny-llama-spm loaded in float32 with BitsAndBytesConfig(load_in_4bit, nf4,
      double quant, compute dtype float32): bitsandbytes quantizes the float32 weights on CPU, so
      quant_state.dtype is float32 and its training forward (gemm_4bit: dequantize to the input's float32)
      and backward (dequantize_4bit to quant_state.dtype) use the same dequantized weights.
    - spm_nf4_checkpoint: testdata/golden/tiny-llama-spm-nf4 (the transformers + bitsandbytes NF4
      checkpoint quantized from bfloat16, double quantization, compute dtype float32) loaded on CPU, its
      bfloat16 embeddings, norms and head upcast to float32 (transformers leaves them bfloat16). Here
      bitsandbytes' backward multiplies by the dequantized weight rounded to bfloat16 while its forward
      uses the unrounded float32 values, so gradients carry that rounding.
    - spm_nf4_checkpoint_unrounded: the same, with MatMul4Bit.backward patched for this run to dequantize
      to float32 (unrounded) as the forward does: isolates the effect of that rounding.
    - qwen2_f32, mistral_f32: testdata/families/qwen2 (frozen q/k/v biases) and testdata/families/mistral
      (sliding window 8, a 24-token sequence) in float32.
    - gpt2_f32, opt_f32, phi_f32, falcon_f32, mpt_f32, persimmon_f32, falcon40b_f32: the non-LLaMA blocks
      (testdata/families/{gpt2,opt,phi-1_5,falcon-7b,mpt,persimmon,falcon-40b}) in float32, a 20-token sequence,
      every linear layer of the block adapted under the family's own names (BLOCK_FAMILIES: fused
      c_attn / query_key_value / Wqkv get one pair over the fused matrix; GPT-2's Conv1D modules are
      fan_in_fan_out), the base model's dropout layers off (eval mode) so the step is deterministic.
    `make_qlora_goldens.py families` writes only the family cases and adds them to the existing
    qlora_goldens.json.
  LoRA: r=8, lora_alpha=16, lora_dropout=0, all seven projections. A is drawn from
  U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform(a=sqrt(5)) bound) and B from U(-0.05, 0.05) with
  a seeded torch.Generator, so that both A and B receive non-zero gradients. The input is one sequence;
  labels are -100 where the mask is false; the loss is transformers' causal-LM loss (shifted, mean over
  target tokens).
* train_spm_f32.safetensors: the adapter before (`.init`) and after (`.final`) a 3-step run on
  tiny-llama-spm (float32): each step has 2 micro-batches (gradient accumulation) of 2 right-padded
  examples; every micro-batch's loss is the sum of token cross-entropies divided by the number of target
  tokens of the whole step (what transformers' Trainer does with num_items_in_batch); then
  clip_grad_norm_(max_norm), torch.optim.AdamW(foreach=False), get_cosine_schedule_with_warmup.
* qlora_goldens.json, "schedules": the learning rate of 20 steps for transformers' constant (warmup 3),
  linear and cosine (warmup 3, 17 steps) and cosine without warmup schedules; "adamw": five
  torch.optim.AdamW(foreach=False) steps on two tensors with seeded gradients, each step's gradients
  clipped by clip_grad_norm_(max_norm=1.0) first (init, gradients, pre-clip norms, final values, moments).
* qlora_goldens.json: versions, hyper-parameters, token sequences and masks, losses (float32 values
  as Python floats), and per training step the loss, the pre-clip gradient norm and the learning rate.
"""
import contextlib
import copy
import json
import math
import os
import sys

import bitsandbytes
import bitsandbytes.autograd._functions as bnb_autograd
import bitsandbytes.functional as bnb_functional
import peft
import safetensors
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, get_constant_schedule_with_warmup,
                          get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "testdata", "golden", "qlora")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 8, 16


def load(path, quantized=False, quantize_at_load=False):
    kwargs = {"dtype": torch.float32, "attn_implementation": "eager"}
    if quantized:
        kwargs["device_map"] = "cpu"
    if quantize_at_load:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    if quantized:
        # transformers keeps the modules it does not quantize (embeddings, norms, lm_head) in the
        # checkpoint's bfloat16 even with dtype=float32, and then every activation is bfloat16.
        # Upcast them (exact) so the whole computation is float32 apart from the 4-bit weights.
        for p in model.parameters():
            if p.dtype == torch.bfloat16:
                p.data = p.data.to(torch.float32)
    return model


def lora_model(model, seed, targets=TARGETS, task_type="CAUSAL_LM"):
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets, bias="none",
                        task_type=task_type)
    model = get_peft_model(model, config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in sorted(model.named_modules()):
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                a = module.lora_A["default"].weight
                b = module.lora_B["default"].weight
                bound = 1 / math.sqrt(a.shape[1])
                a.copy_((torch.rand(a.shape, generator=g, dtype=torch.float64) * 2 - 1).mul(bound).float())
                b.copy_((torch.rand(b.shape, generator=g, dtype=torch.float64) * 2 - 1).mul(0.05).float())
    return model


def adapter_tensors(model):
    """PEFT key (adapter name stripped) -> parameter, sorted by name."""
    out = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            out[name.replace(".default", "")] = p
    return dict(sorted(out.items()))


def labels_for(tokens, mask):
    return [t if m else -100 for t, m in zip(tokens, mask)]


@contextlib.contextmanager
def float32_4bit_backward():
    """Makes bitsandbytes' MatMul4Bit.backward dequantize to float32 (unrounded), like its forward."""
    original = bnb_functional.dequantize_4bit

    def dequantize(A, quant_state=None, *args, **kwargs):
        state = copy.copy(quant_state)
        state.dtype = torch.float32
        return original(A, state, *args, **kwargs)

    bnb_autograd.F.dequantize_4bit = dequantize
    try:
        yield
    finally:
        bnb_autograd.F.dequantize_4bit = original


def one_step(case, path, tokens, mask, quantized=False, quantize_at_load=False, unrounded_backward=False,
             targets=TARGETS, modules_per_layer=7, base_dropout=True):
    model = lora_model(load(path, quantized or quantize_at_load, quantize_at_load), seed=1234, targets=targets)
    if quantized or quantize_at_load:
        assert type(model.base_model.model.model.layers[0].mlp.down_proj.base_layer).__name__ == "Linear4bit"
    # Without base_dropout the base model's own dropout layers are off (eval mode; LoRA dropout is 0
    # anyway): the families whose configs keep a dropout probability (GPT-2, OPT, ...) then give
    # deterministic gradients. Gradients are computed the same way in either mode.
    model.train(base_dropout)
    params = adapter_tensors(model)
    assert len(params) == 2 * modules_per_layer * model.config.num_hidden_layers, len(params)
    ids = torch.tensor([tokens])
    labels = torch.tensor([labels_for(tokens, mask)])
    with float32_4bit_backward() if unrounded_backward else contextlib.nullcontext():
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
    tensors = {}
    for name, p in params.items():
        tensors[name] = p.detach().float().contiguous()
        tensors[name + ".grad"] = p.grad.detach().float().contiguous()
    save_file(tensors, os.path.join(OUT, f"step_{case}.safetensors"), metadata={"format": "pt"})
    print(f"{case}: loss {loss.item():.6f}, {len(params)} adapter tensors", file=sys.stderr)
    out = {"model": os.path.relpath(path, os.path.join(ROOT, "testdata")), "loss": loss.item(),
           "tokens": tokens, "mask": mask}
    if targets != TARGETS:
        out["target_modules"] = targets
    return out


def make_examples(seed, count, vocab):
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(count):
        n = int(torch.randint(5, 21, (1,), generator=g))
        tokens = [1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist()
        prompt = int(torch.randint(1, n // 2 + 1, (1,), generator=g))
        examples.append({"tokens": tokens, "mask": [i >= prompt for i in range(n)]})
    return examples


def train_run(path):
    hp = {"lr": 5e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.1, "max_grad_norm": 0.5,
          "warmup_steps": 1, "total_steps": 3, "schedule": "cosine", "micro_batches": 2, "batch_size": 2}
    model = lora_model(load(path), seed=99)
    model.train()
    params = adapter_tensors(model)
    init = {k + ".init": v.detach().clone().contiguous() for k, v in params.items()}
    examples = make_examples(7, hp["total_steps"] * hp["micro_batches"] * hp["batch_size"], model.config.vocab_size)
    optimizer = torch.optim.AdamW(list(params.values()), lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"],
                                  weight_decay=hp["weight_decay"], foreach=False)
    scheduler = get_cosine_schedule_with_warmup(optimizer, hp["warmup_steps"], hp["total_steps"])
    steps = []
    per_step = hp["micro_batches"] * hp["batch_size"]
    for step in range(hp["total_steps"]):
        chunk = examples[step * per_step:(step + 1) * per_step]
        targets = sum(sum(e["mask"][1:]) for e in chunk)
        lr = optimizer.param_groups[0]["lr"]
        total = 0.0
        for m in range(hp["micro_batches"]):
            batch = chunk[m * hp["batch_size"]:(m + 1) * hp["batch_size"]]
            width = max(len(e["tokens"]) for e in batch)
            ids = torch.tensor([e["tokens"] + [0] * (width - len(e["tokens"])) for e in batch])
            attention = torch.tensor([[1] * len(e["tokens"]) + [0] * (width - len(e["tokens"])) for e in batch])
            labels = torch.tensor([labels_for(e["tokens"], e["mask"]) + [-100] * (width - len(e["tokens"]))
                                   for e in batch])
            logits = model(input_ids=ids, attention_mask=attention).logits
            loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                       labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
            (loss_sum / targets).backward()
            total += loss_sum.item()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), hp["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        steps.append({"loss": total / targets, "grad_norm": norm.item(), "lr": lr, "targets": targets})
        print(f"train step {step + 1}: loss {total / targets:.6f} norm {norm.item():.4f} lr {lr}", file=sys.stderr)
    final = {k + ".final": v.detach().clone().contiguous() for k, v in params.items()}
    save_file({**init, **final}, os.path.join(OUT, "train_spm_f32.safetensors"), metadata={"format": "pt"})
    return {"model": "tiny-llama-spm", "hyperparameters": hp, "examples": examples, "steps": steps}


def schedules():
    """transformers' schedules through torch's LambdaLR: the lr of each of 20 optimizer steps."""
    out = {}
    for kind, make in [("constant", lambda o: get_constant_schedule_with_warmup(o, 3)),
                       ("linear", lambda o: get_linear_schedule_with_warmup(o, 3, 17)),
                       ("cosine", lambda o: get_cosine_schedule_with_warmup(o, 3, 17)),
                       ("cosine_no_warmup", lambda o: get_cosine_schedule_with_warmup(o, 0, 20))]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-4)
        sched = make(opt)
        lrs = []
        for _ in range(20):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out[kind] = lrs
    return out


def adamw_and_clipping():
    """torch.optim.AdamW (foreach=False) for 5 steps on two tensors with seeded gradients, each step's
    gradients first clipped with clip_grad_norm_(max_norm=1.0)."""
    g = torch.Generator().manual_seed(5)
    params = [torch.randn(300, generator=g).requires_grad_(True), torch.randn(7, 9, generator=g).requires_grad_(True)]
    init = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.05, foreach=False)
    grads, norms = [], []
    for step in range(5):
        scale = 0.3 if step % 2 == 0 else 3.0   # some steps below the clipping threshold, some above
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * scale / math.sqrt(p.numel())
        grads.append([p.grad.detach().clone().flatten().tolist() for p in params])
        norms.append(torch.nn.utils.clip_grad_norm_(params, 1.0).item())
        opt.step()
    flat = lambda ts: [x for t in ts for x in t.detach().flatten().tolist()]
    state = [opt.state[p] for p in params]
    return {"lr": 1e-2, "betas": [0.9, 0.99], "eps": 1e-6, "weight_decay": 0.05, "max_norm": 1.0,
            "init": flat(init), "grads": [[x for t in step for x in t] for step in grads], "norms": norms,
            "final": flat(params), "exp_avg": flat([s["exp_avg"] for s in state]),
            "exp_avg_sq": flat([s["exp_avg_sq"] for s in state])}


def family_steps():
    """One step on the tiny Qwen2 (q/k/v biases, frozen) and Mistral (sliding window 8, a sequence
    of 24 tokens, so the window masks most of it) family checkpoints in float32, eager attention."""
    g = torch.Generator().manual_seed(43)
    qwen2_tokens = torch.randint(3, 352, (24,), generator=g).tolist()
    mistral_tokens = [1] + torch.randint(3, 128, (23,), generator=g).tolist()
    mask = [i >= 4 for i in range(24)]
    families = os.path.join(ROOT, "testdata", "families")
    return {
        "qwen2_f32": one_step("qwen2_f32", os.path.join(families, "qwen2"), qwen2_tokens, mask),
        "mistral_f32": one_step("mistral_f32", os.path.join(families, "mistral"), mistral_tokens, mask),
        **block_family_steps(),
        **remote_family_steps(),
    }


# The non-LLaMA blocks (issue 7): fixture directory, PEFT target leaves (every linear layer of the
# block, LoRATargetNames.allLinear in Sources/Formats/Architecture/LoRATargets.swift) and how many
# adapted modules one layer has (GPT-2's c_proj names two).
BLOCK_FAMILIES = [
    ("gpt2_f32", "gpt2", ["c_attn", "c_proj", "c_fc"], 4),
    ("opt_f32", "opt", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"], 6),
    ("phi_f32", "phi-1_5", ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"], 6),
    ("falcon_f32", "falcon-7b", ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], 4),
    ("mpt_f32", "mpt", ["Wqkv", "out_proj", "up_proj", "down_proj"], 4),
    ("persimmon_f32", "persimmon", ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], 4),
    # Falcon's new decoder: query_key_value rows interleaved by KV group (appended last so the cases
    # above keep their tokens).
    ("falcon40b_f32", "falcon-40b", ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"], 4),
]


def block_family_steps():
    """One step on each tiny non-LLaMA family checkpoint in float32, eager attention, all linear layers
    adapted (fused q|k|v modules get one LoRA pair over the fused matrix, GPT-2's Conv1D ones
    fan_in_fan_out), the base model's dropout off; 20 tokens below each config's vocab_size."""
    g = torch.Generator().manual_seed(44)
    mask = [i >= 4 for i in range(20)]
    families = os.path.join(ROOT, "testdata", "families")
    out = {}
    for case, name, targets, per_layer in BLOCK_FAMILIES:
        with open(os.path.join(families, name, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        tokens = torch.randint(3, vocab, (20,), generator=g).tolist()
        out[case] = one_step(case, os.path.join(families, name), tokens, mask, targets=targets,
                             modules_per_layer=per_layer, base_dropout=False)
    return out


# The remote-code families (no transformers class offline): fixture directory, PEFT target leaves
# (LoRATargetNames.allLinear), adapted modules per layer (Qwen-7B's c_proj names two).
REMOTE_FAMILIES = [
    ("qwen7b_f32", "qwen-7b", ["c_attn", "c_proj", "w1", "w2"], 5),
    ("baichuan2_7b_f32", "baichuan2-7b", ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"], 5),
    ("baichuan2_13b_f32", "baichuan2-13b", ["W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"], 5),
]


class RemoteCausalLM(torch.nn.Module):
    """Qwen-7B or Baichuan 2 as a torch module: every linear layer an nn.Linear at its published path
    (so PEFT wraps it by name), the rest frozen tensors, and the forward of remote_forward() in
    make_family_fixtures.py (written from the published modeling code) over those modules.
    Baichuan 2's NormHead normalizes the frozen head rows in every forward (no gradient flows
    into the head: it is frozen)."""

    class Output:
        def __init__(self, loss):
            self.loss = loss

    def __init__(self, name, path):
        super().__init__()
        from safetensors.torch import load_file

        self.family = name
        with open(os.path.join(path, "config.json")) as f:
            self.config = json.load(f)
        sd = load_file(os.path.join(path, "model.safetensors"))
        self.frozen = {}
        for key in sorted(sd):
            w = sd[key].float()
            module_path, kind = key.rsplit(".", 1)
            if w.dim() != 2 or key in ("lm_head.weight", "transformer.wte.weight", "model.embed_tokens.weight"):
                self.frozen[key] = w
                continue
            bias = sd.get(module_path + ".bias")
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
            with torch.no_grad():
                lin.weight.copy_(w)
                if bias is not None:
                    lin.bias.copy_(bias.float())
            lin.requires_grad_(False)
            parent = self
            parts = module_path.split(".")
            for part in parts[:-1]:
                if not hasattr(parent, part):
                    parent.add_module(part, torch.nn.Module())
                parent = getattr(parent, part)
            parent.add_module(parts[-1], lin)

    def forward(self, input_ids, labels):
        from make_family_fixtures import alibi_slopes, rms_norm, rope_half

        c, w = self.config, self.frozen
        H, NH, L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
        D = H // NH
        ids = input_ids[0]
        T = ids.shape[0]
        causal = torch.full((T, T), float("-inf")).triu(1)
        qwen = self.family == "qwen-7b"
        if qwen:
            eps, x, blocks = c["layer_norm_epsilon"], w["transformer.wte.weight"][ids], self.transformer.h
        else:
            eps, x, blocks = c["rms_norm_eps"], w["model.embed_tokens.weight"][ids], self.model.layers
        alibi = self.family == "baichuan2-13b"
        pos = torch.arange(T, dtype=torch.float32)
        bias = torch.tensor(alibi_slopes(NH))[:, None, None] * (pos[None, :] - pos[:, None])[None] if alibi else 0.0
        for i in range(L):
            b = getattr(blocks, str(i))
            if qwen:
                n = rms_norm(x, w[f"transformer.h.{i}.ln_1.weight"], eps)
                qkv, out = b.attn.c_attn(n), b.attn.c_proj
                theta = float(c["rotary_emb_base"])
            else:
                n = rms_norm(x, w[f"model.layers.{i}.input_layernorm.weight"], eps)
                qkv, out = b.self_attn.W_pack(n), b.self_attn.o_proj
                theta = None if alibi else 10000.0
            q, k, v = (t.view(T, NH, D).transpose(0, 1) for t in qkv.split(H, dim=-1))
            if theta is not None:
                q, k = rope_half(q, theta), rope_half(k, theta)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D) + bias + causal, dim=-1) @ v
            x = x + out(a.transpose(0, 1).reshape(T, H))
            if qwen:
                n = rms_norm(x, w[f"transformer.h.{i}.ln_2.weight"], eps)
                x = x + b.mlp.c_proj(b.mlp.w1(n) * F.silu(b.mlp.w2(n)))
            else:
                n = rms_norm(x, w[f"model.layers.{i}.post_attention_layernorm.weight"], eps)
                x = x + b.mlp.down_proj(F.silu(b.mlp.gate_proj(n)) * b.mlp.up_proj(n))
        if qwen:
            logits = rms_norm(x, w["transformer.ln_f.weight"], eps) @ w["lm_head.weight"].T
        else:
            logits = rms_norm(x, w["model.norm.weight"], eps) @ F.normalize(w["lm_head.weight"], dim=-1).T
        # transformers' causal-LM loss: shifted, mean over the target tokens.
        return self.Output(F.cross_entropy(logits[:-1], labels[0, 1:], ignore_index=-100))


def remote_one_step(case, name, path, tokens, mask, targets, per_layer):
    model = lora_model(RemoteCausalLM(name, path), seed=1234, targets=targets, task_type=None)
    params = adapter_tensors(model)
    assert len(params) == 2 * per_layer * model.base_model.model.config["num_hidden_layers"], len(params)
    loss = model.base_model.model(torch.tensor([tokens]), torch.tensor([labels_for(tokens, mask)])).loss
    loss.backward()
    tensors = {}
    for key, p in params.items():
        tensors[key] = p.detach().float().contiguous()
        tensors[key + ".grad"] = p.grad.detach().float().contiguous()
    save_file(tensors, os.path.join(OUT, f"step_{case}.safetensors"), metadata={"format": "pt"})
    print(f"{case}: loss {loss.item():.6f}, {len(params)} adapter tensors", file=sys.stderr)
    return {"model": os.path.relpath(path, os.path.join(ROOT, "testdata")), "loss": loss.item(),
            "tokens": tokens, "mask": mask, "target_modules": targets}


def remote_family_steps():
    """One step on the tiny Qwen-7B and Baichuan 2 (7B RoPE, 13B ALiBi) checkpoints in float32 with
    PEFT on RemoteCausalLM: every linear layer adapted (one pair over the fused c_attn / W_pack)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    g = torch.Generator().manual_seed(45)
    mask = [i >= 4 for i in range(20)]
    families = os.path.join(ROOT, "testdata", "families")
    out = {}
    for case, name, targets, per_layer in REMOTE_FAMILIES:
        with open(os.path.join(families, name, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        tokens = torch.randint(3, vocab, (20,), generator=g).tolist()
        out[case] = remote_one_step(case, name, os.path.join(families, name), tokens, mask, targets, per_layer)
    return out


def update_family_steps():
    """`families` mode: writes the two family steps and adds them to the existing qlora_goldens.json."""
    path = os.path.join(OUT, "qlora_goldens.json")
    with open(path) as f:
        out = json.load(f)
    out["steps"].update(family_steps())
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    spm = os.path.join(ROOT, "testdata", "tiny-llama-spm")
    bpe = os.path.join(ROOT, "testdata", "tiny-llama-bpe")
    nf4 = os.path.join(ROOT, "testdata", "golden", "tiny-llama-spm-nf4")
    g = torch.Generator().manual_seed(42)
    tokens = [1] + torch.randint(3, 128, (23,), generator=g).tolist()
    # A prompt of 8 tokens, then targets with a 2-token hole (positions 15 and 16).
    mask = [i >= 8 and i not in (15, 16) for i in range(len(tokens))]
    bpe_tokens = [1] + torch.randint(3, 352, (19,), generator=g).tolist()
    bpe_mask = [i >= 5 for i in range(len(bpe_tokens))]
    out = {
        "generator": "testdata/scripts/make_qlora_goldens.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "bitsandbytes": bitsandbytes.__version__, "safetensors": safetensors.__version__},
        "lora": {"r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.0, "target_modules": TARGETS,
                 "init": "A ~ U(-1/sqrt(in), 1/sqrt(in)), B ~ U(-0.05, 0.05)"},
        "steps": {
            "spm_f32": one_step("spm_f32", spm, tokens, mask),
            "bpe_f32": one_step("bpe_f32", bpe, bpe_tokens, bpe_mask),
            "spm_nf4": one_step("spm_nf4", spm, tokens, mask, quantize_at_load=True),
            "spm_nf4_checkpoint": one_step("spm_nf4_checkpoint", nf4, tokens, mask, quantized=True),
            "spm_nf4_checkpoint_unrounded": one_step("spm_nf4_checkpoint_unrounded", nf4, tokens, mask, quantized=True,
                                                     unrounded_backward=True),
            **family_steps(),
        },
        "train_spm_f32": train_run(spm),
        "schedules": {"lr": 2e-4, "steps": schedules()},
        "adamw": adamw_and_clipping(),
    }
    with open(os.path.join(OUT, "qlora_goldens.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["families"]:
        torch.manual_seed(0)
        torch.set_num_threads(1)
        update_family_steps()
    else:
        main()
