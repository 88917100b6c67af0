#!/usr/bin/env python3
"""Tiny random models of the non-LLaMA families (issue 7) and their golden outputs.

Run with the interop venv's python (deterministic: two runs write byte-identical files):

    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_family_fixtures.py [FAMILY ...]

For each family it writes
  testdata/families/<name>/                     config.json + model.safetensors (+ tokenizer files)
  testdata/golden/families/<name>.tokens.json   the token ids and a description of the other files
  testdata/golden/families/<name>.logits_f32.npy  [T, vocab]   reference logits (float32)
  testdata/golden/families/<name>.hidden_f32.npy  [L + 2, T, hidden]   per-layer hidden states
  testdata/golden/families/<name>.f32.gguf (+ .kv.json)   llama.cpp convert_hf_to_gguf.py --outtype f32
  testdata/golden/families/<name>.llamacpp_logits_f32.npy  llama-cpp-python's logits on that GGUF
and testdata/golden/families/manifest.json (versions, per-family results, SHA-256 of every file).

Families with a transformers class are built and run with it (fp32, eager attention). The
remote-code families (Qwen-7B, Baichuan 2 7B / 13B) have no class in transformers: their checkpoint
is written in the published layout and their reference forward is the small PyTorch function
below, written from the published modeling code (see testdata/README.md §8).

llama.cpp's converter runs through make_fixtures.py's `_convert` helper (own process, vendored gguf-py,
BPE pre-tokenizer name forced because the tiny tokenizer's hash is unknown to llama.cpp).

Internal helper (llama-cpp-python in a child process, because llama.cpp aborts the process on
some inputs):  python make_family_fixtures.py _llama_logits GGUF OUT.npy TOKEN,TOKEN,...
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(SCRIPT.parent))
import make_fixtures as mf  # noqa: E402  (shared helpers: converter, GGUF dump, JSON writer)

REPO = mf.REPO
TESTDATA = mf.TESTDATA
FAMILIES = TESTDATA / "families"
GOLDEN = TESTDATA / "golden" / "families"
SEED = 20241107
N_TOKENS = 24

# One text for every family; tokenized by the family's base tokenizer and cut to N_TOKENS tokens.
TEXT = ("The quick brown fox jumps over the lazy dog. Each block of 32 values stores a scale "
        "and packed integer codes; weights tensors blocks scales.")


def log(msg: str) -> None:
    print(f"[families] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# family table
# --------------------------------------------------------------------------------------------

@dataclass
class Family:
    name: str
    title: str
    kind: str                   # "hf" (transformers class) or "remote" (own forward)
    tokenizer: str              # "bpe" | "spm" | "qwen"
    pre: str | None = None      # BPE pre-tokenizer name forced in the converter
    config: dict = field(default_factory=dict)
    seed_offset: int = 0
    convert_arch: str | None = None  # architectures[0] written into the converter's input copy, if different
    llama_kv_overrides: dict | None = None  # second llama-cpp-python attempt if the plain load fails
    fix_baichuan: bool = False  # run the converter with its Baichuan recursion bug fixed (see _convert_fixed)
    note: str = ""


BAICHUAN_NOTE = (
    "The vendored converter's BaichuanModel.modify_tensors calls self.modify_tensors (itself) instead of the base "
    "class for every tensor except W_pack, so an unmodified run ends in RecursionError. The GGUF here is made "
    "with that one call redirected to TextModel.modify_tensors (subcommand _convert_fixed); everything else is "
    "the converter's own code. llama.cpp picks Baichuan's 7B (RoPE) or 13B (ALiBi) graph from the layer count "
    "(32 or 40); with 2 layers it runs neither RoPE nor ALiBi, so its logits do not match the reference.")


def falcon(n_kv: int, new_arch: bool) -> dict:
    """FalconForCausalLM spec: the two layouts differ only in the KV head count and the decoder flag."""
    return dict(
        cls="FalconForCausalLM", cfg="FalconConfig", vocab_size=352, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_kv_heads=n_kv, new_decoder_architecture=new_arch, multi_query=True,
        parallel_attn=True, bias=False, alibi=False, layer_norm_epsilon=1e-5, ffn_hidden_size=4 * 64,
        max_position_embeddings=64, rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)


def families() -> list[Family]:
    H, NH = 64, 4
    return [
        Family("qwen2", "Qwen2 (Qwen1.5 / Qwen2 line)", "hf", "bpe", "qwen2", dict(
            cls="Qwen2ForCausalLM", cfg="Qwen2Config", vocab_size=352, hidden_size=H, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=NH, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, use_sliding_window=False), 1),
        Family("mistral", "Mistral (sliding window 8)", "hf", "spm", None, dict(
            cls="MistralForCausalLM", cfg="MistralConfig", vocab_size=128, hidden_size=H, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=NH, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=64, rms_norm_eps=1e-5, sliding_window=8,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2), 2),
        Family("falcon-40b", "Falcon, new decoder architecture (40B/180B style: GQA, ln_attn + ln_mlp)", "hf",
               "bpe", "falcon", falcon(n_kv=2, new_arch=True), 3),
        Family("falcon-7b", "Falcon 7B style (multi-query, parallel attention + MLP, one layernorm)", "hf",
               "bpe", "falcon", falcon(n_kv=1, new_arch=False), 4,
            note="num_kv_heads=1 is written explicitly: transformers ignores it when new_decoder_architecture is "
                 "false (multi_query gives one KV head), but FalconConfig would otherwise save num_kv_heads = "
                 "num_attention_heads and llama.cpp's converter reads that key to split query_key_value."),
        Family("mpt", "MPT (ALiBi, no biases, tied head)", "hf", "bpe", "mpt", dict(
            cls="MptForCausalLM", cfg="MptConfig", vocab_size=352, d_model=H, n_heads=NH, n_layers=2,
            expansion_ratio=4, max_seq_len=64, no_bias=True, layer_norm_epsilon=1e-5,
            attn_config={"alibi": True, "alibi_bias_max": 8, "clip_qkv": None, "qk_ln": False,
                         "softmax_scale": None, "attn_type": "multihead_attention", "prefix_lm": False},
            bos_token_id=1, eos_token_id=2), 5, convert_arch="MPTForCausalLM",
            note="transformers saves architectures=['MptForCausalLM']; llama.cpp's converter only registers the "
                 "remote-code name 'MPTForCausalLM' (as in mosaicml/mpt-7b), so the converter's input is a copy "
                 "with architectures[0] changed to that. The tensor names and config keys are the same."),
        Family("persimmon", "Persimmon (partial rotary, qk layernorm, squared ReLU, fused query_key_value)",
               "hf", "spm", None, dict(
            cls="PersimmonForCausalLM", cfg="PersimmonConfig", vocab_size=128, hidden_size=H,
            intermediate_size=4 * H, num_hidden_layers=2, num_attention_heads=NH, hidden_act="relu2",
            max_position_embeddings=64, layer_norm_eps=1e-5, qk_layernorm=True, partial_rotary_factor=0.5,
            rope_parameters={"rope_type": "default", "rope_theta": 25000.0, "partial_rotary_factor": 0.5},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2), 6),
        Family("phi-1_5", "phi-1.5 (partial rotary, parallel attention + MLP, gelu_new, biases)", "hf",
               "bpe", "phi-2", dict(
            cls="PhiForCausalLM", cfg="PhiConfig", vocab_size=352, hidden_size=H, intermediate_size=4 * H,
            num_hidden_layers=2, num_attention_heads=NH, num_key_value_heads=NH, hidden_act="gelu_new",
            max_position_embeddings=64, layer_norm_eps=1e-5, qk_layernorm=False, partial_rotary_factor=0.5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2), 7),
        Family("opt", "OPT (learned positions with offset 2, ReLU, biases, pre-LN)", "hf", "bpe", None, dict(
            cls="OPTForCausalLM", cfg="OPTConfig", vocab_size=352, hidden_size=H, ffn_dim=4 * H,
            num_hidden_layers=2, num_attention_heads=NH, max_position_embeddings=64, word_embed_proj_dim=H,
            do_layer_norm_before=True, activation_function="relu", enable_bias=True,
            layer_norm_elementwise_affine=True, tie_word_embeddings=True, pad_token_id=0,
            bos_token_id=1, eos_token_id=2), 8),
        Family("gpt2", "GPT-2 (Conv1D c_attn / c_fc / c_proj, learned positions, gelu_new)", "hf", "bpe", "gpt-2",
               dict(cls="GPT2LMHeadModel", cfg="GPT2Config", vocab_size=352, n_embd=H, n_layer=2, n_head=NH,
                    n_positions=64, n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, n_ctx=64), 9,
               note="n_ctx (= n_positions) is passed to GPT2Config so that config.json carries it as the published "
                    "gpt2 config does; transformers 5 no longer writes it by itself and llama.cpp's converter "
                    "reads hparams['n_ctx']."),
        Family("qwen-7b", "Qwen-7B (QWenLMHeadModel, remote code: fused c_attn with bias, w1/w2 SwiGLU)",
               "remote", "qwen", "qwen2", dict(
            architectures=["QWenLMHeadModel"], model_type="qwen", vocab_size=352, hidden_size=H,
            intermediate_size=256, num_hidden_layers=2, num_attention_heads=NH, kv_channels=16,
            layer_norm_epsilon=1e-6, max_position_embeddings=2048, seq_length=2048, rotary_emb_base=10000,
            rotary_pct=1.0, no_bias=True, scale_attn_weights=True, use_dynamic_ntk=True, use_logn_attn=True,
            tie_word_embeddings=False, use_flash_attn=False, bf16=False, fp16=False, fp32=True,
            tokenizer_class="QWenTokenizer", emb_dropout_prob=0.0, attn_dropout_prob=0.0,
            initializer_range=0.02, softmax_in_fp32=False, use_cache_quantization=False,
            use_cache_kernel=False, onnx_safe=None,
            auto_map={"AutoConfig": "configuration_qwen.QWenConfig",
                      "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"}), 10,
            llama_kv_overrides={"qwen.attention.layer_norm_rms_epsilon": 1e-6},
            note="seq_length (2048) is far above the test sequence, so use_logn_attn and use_dynamic_ntk are "
                 "inactive, as they are for any prompt shorter than the training length. The converter writes "
                 "qwen.attention.layer_norm_epsilon (from config layer_norm_epsilon) but llama.cpp's qwen loader "
                 "requires qwen.attention.layer_norm_rms_epsilon, so llama-cpp-python cannot load the converter's "
                 "GGUF as written; its logits here are from a second load with that key given as a kv_override "
                 "(1e-6, the config's value)."),
        Family("baichuan2-7b", "Baichuan 2 7B (RoPE, fused W_pack, NormHead)", "remote", "spm", None, dict(
            architectures=["BaichuanForCausalLM"], model_type="baichuan", vocab_size=128, hidden_size=H,
            intermediate_size=128, num_hidden_layers=2, num_attention_heads=NH, hidden_act="silu",
            max_position_embeddings=64, model_max_length=64, rms_norm_eps=1e-6, tie_word_embeddings=False,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, z_loss_weight=0, initializer_range=0.02,
            use_cache=True, tokenizer_class="BaichuanTokenizer",
            auto_map={"AutoConfig": "configuration_baichuan.BaichuanConfig",
                      "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"}), 11, fix_baichuan=True, note=BAICHUAN_NOTE),
        Family("baichuan2-13b", "Baichuan 2 13B (ALiBi, fused W_pack, NormHead)", "remote", "spm", None, dict(
            architectures=["BaichuanForCausalLM"], model_type="baichuan", vocab_size=128, hidden_size=H,
            intermediate_size=128, num_hidden_layers=2, num_attention_heads=NH, hidden_act="silu",
            model_max_length=64, rms_norm_eps=1e-6, tie_word_embeddings=False, pad_token_id=0,
            bos_token_id=1, eos_token_id=2, z_loss_weight=0, initializer_range=0.02, use_cache=True,
            tokenizer_class="BaichuanTokenizer",
            auto_map={"AutoConfig": "configuration_baichuan.BaichuanConfig",
                      "AutoModelForCausalLM": "modeling_baichuan.BaichuanForCausalLM"}), 12, fix_baichuan=True, note=BAICHUAN_NOTE),
    ]


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------

EMBED_KEYS = ("embed_tokens", "wte", "word_embeddings", "embed_in")
POS_KEYS = ("wpe", "embed_positions")
QK_KEYS = ("q_proj", "k_proj", "query_key_value", "c_attn", "Wqkv", "W_pack")
NORM_KEYS = ("norm", "ln_", "layernorm", "layer_norm", "ln_f")


def init_tensor(name: str, shape: tuple[int, ...], g, tied: bool, conv1d: bool = False):
    """Deterministic values with scales large enough that every part of the block moves the logits
    (transformers' default 0.02 init gives near-uniform attention and near-zero residual updates):
    norm weights U(0.5, 1.5), norm biases N(0, 0.1^2), other biases N(0, 0.2^2), token embeddings
    N(0, 1) (N(0, 0.25^2) when tied to the head), learned positions N(0, 0.5^2), matrices
    N(0, 1/fan_in) with the attention input projections (Q, K or fused QKV) at 1.5x that std."""
    import torch

    module = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
    is_norm = any(k in name for k in NORM_KEYS) and len(shape) == 1
    if is_norm and name.endswith(".weight"):
        return torch.rand(shape, generator=g) + 0.5
    if len(shape) == 1:
        std = 0.1 if is_norm else 0.2
        return torch.randn(shape, generator=g) * std
    if any(k in name for k in POS_KEYS):
        return torch.randn(shape, generator=g) * 0.5
    if any(k in name for k in EMBED_KEYS):
        return torch.randn(shape, generator=g) * (0.25 if tied else 1.0)
    fan_in = shape[0] if conv1d else shape[1]
    std = 1.0 / math.sqrt(fan_in)
    if any(k in module for k in QK_KEYS):
        std *= 1.5
    return torch.randn(shape, generator=g) * std


def init_module(model, seed: int, tied: bool, conv1d_names: tuple[str, ...] = ()) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            conv = any(c in name for c in conv1d_names) and p.dim() == 2
            p.copy_(init_tensor(name, tuple(p.shape), g, tied, conv))


# --------------------------------------------------------------------------------------------
# tokenizers
# --------------------------------------------------------------------------------------------

def base_tokens(kind: str) -> list[int]:
    """N_TOKENS ids of TEXT: byte-level BPE (tiny-llama-bpe/tokenizer.json, no specials added) or
    SentencePiece (tiny-llama-spm/tokenizer.model) with <s> (id 1) in front."""
    if kind in ("bpe", "qwen"):
        from tokenizers import Tokenizer

        ids = Tokenizer.from_file(str(mf.BPE_DIR / "tokenizer.json")).encode(TEXT).ids
        if kind == "qwen":
            ids = [i - 3 for i in ids]  # the Qwen stand-in vocabulary drops the 3 specials in front
    else:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(mf.SPM_DIR / "tokenizer.model"))
        ids = [sp.bos_id()] + sp.encode(TEXT)
    assert len(ids) >= N_TOKENS, len(ids)
    return ids[:N_TOKENS]


def copy_tokenizer(kind: str, d: Path) -> None:
    if kind == "bpe":
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(mf.BPE_DIR / f, d / f)
    elif kind == "spm":
        for f in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(mf.SPM_DIR / f, d / f)
    elif kind == "qwen":
        write_qwen_tokenizer(d)
    else:
        raise ValueError(kind)


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A stand-in for Qwen-7B's remote-code tokenizer (tokenization_qwen.py, which needs tiktoken): it
# exposes what llama.cpp's converter reads (mergeable_ranks, special_tokens, get_vocab, encode).
QWEN_TOKENIZER_PY = '''"""Stand-in for Qwen-7B's QWenTokenizer (wconv test fixture; not Qwen's code).

Reads qwen.tiktoken (base64 token bytes + rank per line, as Qwen ships it) and provides the
attributes llama.cpp's convert_hf_to_gguf.py reads: mergeable_ranks, special_tokens, get_vocab().
Encoding is a plain byte-level BPE by rank; there is no regex pre-split.
"""
import base64

from transformers import PreTrainedTokenizer

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


class QWenTokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "qwen.tiktoken"}

    def __init__(self, vocab_file, **kwargs):
        self.mergeable_ranks = {}
        with open(vocab_file, "rb") as f:
            for line in f.read().splitlines():
                if line:
                    tok, rank = line.split()
                    self.mergeable_ranks[base64.b64decode(tok)] = int(rank)
        n = len(self.mergeable_ranks)
        self.special_tokens = {s: n + i for i, s in enumerate(SPECIALS)}
        self._id_to_bytes = {r: t for t, r in self.mergeable_ranks.items()}
        super().__init__(**kwargs)

    @property
    def vocab_size(self):
        return len(self.mergeable_ranks) + len(self.special_tokens)

    def get_vocab(self):
        v = {t: r for t, r in self.mergeable_ranks.items()}
        v.update(self.special_tokens)
        return v

    def _bpe(self, piece):
        parts = [bytes([b]) for b in piece]
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.mergeable_ranks.get(parts[i] + parts[i + 1])
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return parts

    def _tokenize(self, text, **kwargs):
        return self._bpe(text.encode("utf-8"))

    def _convert_token_to_id(self, token):
        if isinstance(token, str):
            return self.special_tokens.get(token, self.mergeable_ranks.get(token.encode("utf-8")))
        return self.mergeable_ranks[token]

    def _convert_id_to_token(self, index):
        for s, i in self.special_tokens.items():
            if i == index:
                return s
        return self._id_to_bytes[index]

    def convert_tokens_to_string(self, tokens):
        out = b""
        for t in tokens:
            out += t if isinstance(t, bytes) else t.encode("utf-8")
        return out.decode("utf-8", errors="replace")

    def save_vocabulary(self, save_directory, filename_prefix=None):
        return ()
'''


def write_qwen_tokenizer(d: Path) -> None:
    """qwen.tiktoken from tiny-llama-bpe's vocabulary: its 256 byte symbols and 93 merges in id order
    become ranks 0..348 (tiktoken's rank = token id = merge priority); the 3 specials follow at
    349..351, as Qwen puts its specials after the ranked tokens."""
    import base64
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tj = json.loads((mf.BPE_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    dec = {c: b for b, c in bytes_to_unicode().items()}
    lines = []
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if i < 3:
            assert tok == QWEN_SPECIALS[i], tok
            continue
        raw = bytes(dec[c] for c in tok)
        lines.append(f"{base64.b64encode(raw).decode()} {i - 3}")
    (d / "qwen.tiktoken").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "tokenization_qwen.py").write_text(QWEN_TOKENIZER_PY, encoding="utf-8")
    mf.write_json(d / "tokenizer_config.json", {
        "auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]},
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "tokenizer_class": "QWenTokenizer",
    })


# --------------------------------------------------------------------------------------------
# transformers families
# --------------------------------------------------------------------------------------------

def hf_paths(model, cls: str):
    """(decoder layers, final norm) module of each transformers class."""
    if cls in ("Qwen2ForCausalLM", "MistralForCausalLM"):
        return model.model.layers, model.model.norm
    if cls in ("PersimmonForCausalLM", "PhiForCausalLM"):
        return model.model.layers, model.model.final_layernorm
    if cls == "FalconForCausalLM":
        return model.transformer.h, model.transformer.ln_f
    if cls == "MptForCausalLM":
        return model.transformer.blocks, model.transformer.norm_f
    if cls == "OPTForCausalLM":
        return model.model.decoder.layers, model.model.decoder.final_layer_norm
    if cls == "GPT2LMHeadModel":
        return model.transformer.h, model.transformer.ln_f
    raise ValueError(cls)


def hf_forward(model, cls: str, tokens: list[int]):
    """(logits [T, V], hidden [L + 2, T, H]): hidden[0] = input of the first block (token embedding,
    plus learned positions for GPT-2 / OPT), hidden[1 + i] = residual stream after block i,
    hidden[-1] = final norm output (the input of lm_head)."""
    import numpy as np
    import torch

    layers, norm = hf_paths(model, cls)
    caps, hooks = [], []

    def pre(_m, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        caps.append(x.detach()[0].float().numpy().copy())

    def post(_m, _inp, out):
        t = out[0] if isinstance(out, (tuple, list)) else out
        caps.append(t.detach()[0].float().numpy().copy())

    hooks.append(layers[0].register_forward_pre_hook(pre, with_kwargs=True))
    for layer in layers:
        hooks.append(layer.register_forward_hook(post))
    hooks.append(norm.register_forward_hook(post))
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokens], dtype=torch.long), use_cache=False)
    for h in hooks:
        h.remove()
    hidden = np.stack(caps).astype(np.float32)
    assert hidden.shape[0] == len(layers) + 2, hidden.shape
    return out.logits[0].float().numpy().astype(np.float32), hidden


def ggml_gelu(x):
    """GELU as llama.cpp's CPU backend computes it (GGML_GELU_FP16): the tanh approximation looked up
    in a table indexed by the float16 input and holding float16 outputs; identity above 10, 0 below -10."""
    import torch

    xh = x.to(torch.float16).to(torch.float32)
    y = 0.5 * xh * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * xh * (1.0 + 0.044715 * xh * xh)))
    y = y.to(torch.float16).to(torch.float32)
    return torch.where(x >= 10.0, x, torch.where(x <= -10.0, torch.zeros_like(x), y))


def swap_gelu(model) -> bool:
    """Replaces every GELU activation module of `model` with ggml_gelu; True if there was one."""
    import torch

    class GgmlGelu(torch.nn.Module):
        def forward(self, x):
            return ggml_gelu(x)

    found = False
    for name, mod in list(model.named_modules()):
        if "gelu" in type(mod).__name__.lower() and name:
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, GgmlGelu())
            found = True
    return found


def make_hf_family(f: Family, d: Path):
    import torch
    import transformers

    spec = dict(f.config)
    cls_name, cfg_name = spec.pop("cls"), spec.pop("cfg")
    cfg = getattr(transformers, cfg_name)(**spec, dtype="float16")
    torch.manual_seed(SEED + f.seed_offset)
    model = getattr(transformers, cls_name)(cfg)
    conv1d = ("c_attn", "c_fc", "c_proj") if cls_name == "GPT2LMHeadModel" else ()
    init_module(model, SEED + f.seed_offset, bool(getattr(cfg, "tie_word_embeddings", False)), conv1d)
    if getattr(cfg, "tie_word_embeddings", False):
        model.tie_weights()
    model = model.to(torch.float16)
    model.save_pretrained(d, safe_serialization=True)

    ref = getattr(transformers, cls_name).from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
    ref.eval()
    tokens = base_tokens(f.tokenizer)
    logits, hidden = hf_forward(ref, cls_name, tokens)
    extra = {}
    if cls_name == "MistralForCausalLM":
        # Show that the window matters: the same weights without a window give other logits
        # from position `window` on, and equal ones before it.
        import numpy as np

        ref.config.sliding_window = None
        nowin, _ = hf_forward(ref, cls_name, tokens)
        w = f.config["sliding_window"]
        extra["sliding_window_check"] = {
            "max_abs_diff_positions_before_window": float(np.abs(nowin[:w] - logits[:w]).max()),
            "max_abs_diff_positions_from_window": float(np.abs(nowin[w:] - logits[w:]).max()),
        }
        assert extra["sliding_window_check"]["max_abs_diff_positions_from_window"] > 1e-3, extra
        extra["_logits_without_window"] = nowin
    extra["ablation"] = ablation(lambda: hf_forward(ref, cls_name, tokens)[0], dict(ref.named_parameters()), logits,
                                 ("self_attn.k_proj.bias",) if cls_name == "OPTForCausalLM" else ())
    if swap_gelu(ref):
        # llama.cpp's CPU GELU reads a float16 table (see GgmlGelu); this run lets the llama-cpp-python
        # comparison separate that from layout errors. Not a golden file, only a number in the manifest.
        extra["_logits_ggml_gelu"] = hf_forward(ref, cls_name, tokens)[0]
    how = (f"transformers {transformers.__version__} {cls_name}.from_pretrained(float32, eager attention), "
           f"torch {torch.__version__}; float16 weights upcast exactly")
    return tokens, logits, hidden, how, extra


def ablation(run, params: dict, logits, inert: tuple[str, ...] = ()) -> dict:
    """Zero each weight tensor in turn and measure how far the logits move: checks that every part
    of the block reaches the output (a tensor whose removal changes nothing would go untested).
    `inert` names tensors that cannot matter mathematically (a key bias without rotary adds the
    same q.b to every score of a row, which softmax cancels)."""
    import numpy as np
    import torch

    moved = {}
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            saved = p.detach().clone()
            p.zero_()
            moved[name] = float(np.abs(run() - logits).max())
            p.copy_(saved)
    no_effect = sorted(n for n, v in moved.items() if v <= 1e-3)
    unexpected = [n for n in no_effect if not n.endswith(inert)] if inert else no_effect
    assert not unexpected, [(n, moved[n]) for n in unexpected]
    live = {n: v for n, v in moved.items() if n not in no_effect}
    weakest = min(live, key=live.get)
    return {"tensors": len(moved), "min_max_abs_logit_change": round(live[weakest], 6), "weakest_tensor": weakest,
            "no_effect_by_construction": no_effect}


# --------------------------------------------------------------------------------------------
# remote-code families: published layout + reference forward
# --------------------------------------------------------------------------------------------

def remote_tensor_shapes(f: Family) -> list[tuple[str, tuple[int, ...]]]:
    c = f.config
    H, V, L = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    out: list[tuple[str, tuple[int, ...]]] = []
    if f.name == "qwen-7b":
        # modeling_qwen.py: QWenLMHeadModel.transformer (QWenModel) + lm_head; intermediate_size is
        # twice the width of w1 / w2 (each is intermediate_size // 2).
        ff = c["intermediate_size"] // 2
        proj = c["kv_channels"] * c["num_attention_heads"]
        out.append(("transformer.wte.weight", (V, H)))
        for i in range(L):
            p = f"transformer.h.{i}."
            out += [(p + "ln_1.weight", (H,)), (p + "attn.c_attn.weight", (3 * proj, H)),
                    (p + "attn.c_attn.bias", (3 * proj,)), (p + "attn.c_proj.weight", (H, proj)),
                    (p + "ln_2.weight", (H,)), (p + "mlp.w1.weight", (ff, H)), (p + "mlp.w2.weight", (ff, H)),
                    (p + "mlp.c_proj.weight", (H, ff))]
        out += [("transformer.ln_f.weight", (H,)), ("lm_head.weight", (V, H))]
    else:
        # modeling_baichuan.py (7B and 13B): BaichuanForCausalLM.model (BaichuanModel) + lm_head (NormHead)
        ff = c["intermediate_size"]
        out.append(("model.embed_tokens.weight", (V, H)))
        for i in range(L):
            p = f"model.layers.{i}."
            out += [(p + "input_layernorm.weight", (H,)), (p + "self_attn.W_pack.weight", (3 * H, H)),
                    (p + "self_attn.o_proj.weight", (H, H)), (p + "post_attention_layernorm.weight", (H,)),
                    (p + "mlp.gate_proj.weight", (ff, H)), (p + "mlp.up_proj.weight", (ff, H)),
                    (p + "mlp.down_proj.weight", (H, ff))]
        out += [("model.norm.weight", (H,)), ("lm_head.weight", (V, H))]
    return out


def make_remote_weights(f: Family) -> dict:
    import torch

    g = torch.Generator().manual_seed(SEED + f.seed_offset)
    w = {}
    for name, shape in sorted(remote_tensor_shapes(f)):
        w[name] = init_tensor(name, shape, g, tied=False).to(torch.float32).contiguous()
    if f.name.startswith("baichuan"):
        # Baichuan 2's NormHead divides each lm_head row by its L2 norm at inference. Storing the rows
        # already normalized (float32) makes that a no-op to ~1e-7, so the llama.cpp GGUF (which keeps
        # lm_head as stored) and the reference forward compute the same function.
        w["lm_head.weight"] = torch.nn.functional.normalize(w["lm_head.weight"], dim=-1)
    return w


def rms_norm(x, weight, eps):
    import torch

    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * weight


def rotate_half(x):
    import torch

    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rope_half(x, base: float):
    """Rotary embedding over the whole head dim in the rotate-half (GPT-NeoX) pairing (i, i + d/2),
    which both Qwen-7B and Baichuan 2 7B use. x: [heads, T, d]."""
    import torch

    T, dim = x.shape[1], x.shape[2]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    emb = torch.cat((ang, ang), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def alibi_slopes(n: int) -> list[float]:
    """Baichuan 2 13B's slopes (the ALiBi paper's geometric sequence; for a head count that is not a
    power of two, the closest lower power of two plus every other slope of the next power)."""
    def pow2(k):
        start = 2 ** (-(2 ** -(math.log2(k) - 3)))
        return [start * start ** i for i in range(k)]
    if math.log2(n).is_integer():
        return pow2(n)
    c = 2 ** math.floor(math.log2(n))
    return pow2(c) + alibi_slopes(2 * c)[0::2][: n - c]


def remote_forward(f: Family, w: dict, tokens: list[int], positions: bool = True):
    """Reference forward pass (float32) written from the published modeling code:
    Qwen-7B: x = wte[ids]; per block: h = x + c_proj(attn(rope(q), rope(k), v)) with q|k|v =
      c_attn(RMSNorm ln_1(x)) (bias), then x = h + c_proj(w1(n) * silu(w2(n))), n = RMSNorm ln_2(h);
      logits = lm_head(RMSNorm ln_f(x)). Causal softmax(q k^T / sqrt(d)).
    Baichuan 2: x = embed_tokens[ids]; per block: q|k|v = W_pack(RMSNorm(x)) (no bias), RoPE (7B) or an
      ALiBi bias slope_h * (j - i) (13B), then down(silu(gate(n)) * up(n)); logits =
      normalize_rows(lm_head) @ RMSNorm(x)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    c = f.config
    H, NH, L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
    D = H // NH
    ids = torch.tensor(tokens, dtype=torch.long)
    T = len(tokens)
    causal = torch.full((T, T), float("-inf")).triu(1)
    hidden = []
    if f.name == "qwen-7b":
        eps = c["layer_norm_epsilon"]
        x = w["transformer.wte.weight"][ids]
        hidden.append(x)
        for i in range(L):
            p = f"transformer.h.{i}."
            n = rms_norm(x, w[p + "ln_1.weight"], eps)
            qkv = n @ w[p + "attn.c_attn.weight"].T + w[p + "attn.c_attn.bias"]
            q, k, v = (t.view(T, NH, D).transpose(0, 1) for t in qkv.split(H, dim=-1))
            base = float(c["rotary_emb_base"])
            q, k = rope_half(q, base), rope_half(k, base)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D) + causal, dim=-1) @ v
            x = x + a.transpose(0, 1).reshape(T, H) @ w[p + "attn.c_proj.weight"].T
            n = rms_norm(x, w[p + "ln_2.weight"], eps)
            m = (n @ w[p + "mlp.w1.weight"].T) * F.silu(n @ w[p + "mlp.w2.weight"].T)
            x = x + m @ w[p + "mlp.c_proj.weight"].T
            hidden.append(x)
        x = rms_norm(x, w["transformer.ln_f.weight"], eps)
        hidden.append(x)
        logits = x @ w["lm_head.weight"].T
    else:
        eps = c["rms_norm_eps"]
        alibi = f.name == "baichuan2-13b"
        x = w["model.embed_tokens.weight"][ids]
        hidden.append(x)
        pos = torch.arange(T, dtype=torch.float32)
        rel = pos[None, :] - pos[:, None]  # j - i
        bias = (torch.tensor(alibi_slopes(NH))[:, None, None] * rel[None]) if alibi and positions else 0.0
        for i in range(L):
            p = f"model.layers.{i}."
            n = rms_norm(x, w[p + "input_layernorm.weight"], eps)
            qkv = n @ w[p + "self_attn.W_pack.weight"].T
            q, k, v = (t.view(T, NH, D).transpose(0, 1) for t in qkv.split(H, dim=-1))
            if not alibi and positions:
                q, k = rope_half(q, 10000.0), rope_half(k, 10000.0)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D) + bias + causal, dim=-1) @ v
            x = x + a.transpose(0, 1).reshape(T, H) @ w[p + "self_attn.o_proj.weight"].T
            n = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
            m = F.silu(n @ w[p + "mlp.gate_proj.weight"].T) * (n @ w[p + "mlp.up_proj.weight"].T)
            x = x + m @ w[p + "mlp.down_proj.weight"].T
            hidden.append(x)
        x = rms_norm(x, w["model.norm.weight"], eps)
        hidden.append(x)
        logits = x @ F.normalize(w["lm_head.weight"], dim=-1).T
    hid = np.stack([h.numpy() for h in hidden]).astype(np.float32)
    return logits.numpy().astype(np.float32), hid


def make_remote_family(f: Family, d: Path):
    import torch
    from safetensors.torch import save_file

    w = make_remote_weights(f)
    save_file(w, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = dict(f.config)
    cfg["torch_dtype"] = "float32"
    mf.write_json(d / "config.json", dict(sorted(cfg.items())))
    # The special ids of config.json; Qwen-7B's config has none, and its published generation config
    # names <|endoftext|> (here id 349) as eos and pad.
    gen = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in cfg}
    if f.name == "qwen-7b":
        gen = {"eos_token_id": 349, "pad_token_id": 349}
    mf.write_json(d / "generation_config.json", gen)
    tokens = base_tokens(f.tokenizer)
    extra = {}
    with torch.no_grad():
        logits, hidden = remote_forward(f, w, tokens)
        extra["ablation"] = ablation(lambda: remote_forward(f, w, tokens)[0], w, logits)
        if f.name.startswith("baichuan"):
            # What llama.cpp runs for a 2-layer Baichuan: neither RoPE nor ALiBi (see BAICHUAN_NOTE).
            extra["_logits_without_positions"], _ = remote_forward(f, w, tokens, positions=False)
    how = (f"remote_forward() in make_family_fixtures.py (float32 PyTorch {torch.__version__}), written from the "
           f"published modeling code; transformers has no class for this model")
    return tokens, logits, hidden, how, extra


# --------------------------------------------------------------------------------------------
# llama.cpp converter + llama-cpp-python
# --------------------------------------------------------------------------------------------

def scrub(msg: str) -> str:
    """Error text without machine paths."""
    return msg.replace(str(REPO) + os.sep, "").replace(str(Path.home()), "~")


def run_converter(llama_dir: Path, f: Family, d: Path, out: Path, tmp: Path, outtype: str = "f32") -> dict:
    """Runs make_fixtures.py's `_convert` helper (convert_hf_to_gguf.py with the vendored gguf-py)."""
    src = d
    if f.convert_arch:
        src = tmp / f.name
        if src.exists():
            shutil.rmtree(src)
        shutil.copytree(d, src)
        cfg = json.loads((src / "config.json").read_text())
        cfg["architectures"] = [f.convert_arch]
        (src / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if f.fix_baichuan:
        cmd = [sys.executable, str(SCRIPT), "_convert_fixed", "--llama-cpp", str(llama_dir)]
    else:
        cmd = [sys.executable, str(mf.SCRIPT), "_convert", "--llama-cpp", str(llama_dir)]
    if f.pre:
        cmd += ["--pre", f.pre]
    cmd += ["--", str(src), "--outtype", outtype, "--outfile", str(out)]
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    r = subprocess.run(cmd, env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        if out.exists():
            out.unlink()
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        return {"converts": False, "error": scrub(lines[-1]) if lines else f"exit {r.returncode}"}
    return {"converts": True}


def convert_fixed_child(argv: list[str]) -> None:
    """make_fixtures.py's `_convert` with BaichuanModel.modify_tensors' self-recursion redirected to
    the base class (the only change)."""
    ap = argparse.ArgumentParser(prog="make_family_fixtures.py _convert_fixed")
    ap.add_argument("--llama-cpp", required=True)
    ap.add_argument("--pre")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
    llama_dir = Path(a.llama_cpp)
    fix_baichuan_recursion(llama_dir)
    mf.run_converter_inprocess(llama_dir, a.pre, rest)


def fix_baichuan_recursion(llama_dir: Path) -> None:
    """Redirects BaichuanModel.modify_tensors' self-recursion to TextModel.modify_tensors for every
    tensor but W_pack, in this process (also used by make_family_adapters.py for the LoRA converter)."""
    sys.path.insert(0, str(llama_dir))
    sys.path.insert(1, str(llama_dir / "gguf-py"))
    import conversion.baichuan as cb

    orig = cb.BaichuanModel.modify_tensors

    def fixed(self, data_torch, name, bid):
        if bid is not None and name == f"model.layers.{bid}.self_attn.W_pack.weight":
            yield from orig(self, data_torch, name, bid)
        else:
            yield from cb.TextModel.modify_tensors(self, data_torch, name, bid)

    cb.BaichuanModel.modify_tensors = fixed


def llama_logits_child(gguf_path: str, out: str, tokens: str, overrides: str = "{}") -> None:
    import numpy as np
    from llama_cpp import Llama

    toks = [int(t) for t in tokens.split(",")]
    kv = json.loads(overrides) or None
    llm = Llama(model_path=gguf_path, n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True, n_threads=1,
                seed=0, type_k=0, type_v=0, flash_attn=False, kv_overrides=kv, verbose=False)  # f32 KV cache
    llm.eval(toks)
    np.save(out, np.asarray(llm.scores[: len(toks)], dtype=np.float32))


def llama_cpp_logits(gguf: Path, out: Path, tokens: list[int], overrides: dict | None = None) -> dict:
    r = subprocess.run([sys.executable, str(SCRIPT), "_llama_logits", str(gguf), str(out),
                        ",".join(map(str, tokens)), json.dumps(overrides or {})], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not out.exists():
        lines = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()]
        return {"runs": False, "error": scrub(lines[-1] if lines else "") + f" (exit {r.returncode})"}
    return {"runs": True}


# --------------------------------------------------------------------------------------------

HALF_OUTTYPES = ("f16", "bf16")


def convert_half(f: Family, llama_dir: Path, tmp: Path, info: dict) -> None:
    """The converter's --outtype f16 and bf16 files of the committed fixture (same command as the
    f32 golden otherwise); recorded in info["llama_cpp_converter"]["outtypes"]."""
    d = FAMILIES / f.name
    done = {}
    for outtype in HALF_OUTTYPES:
        out = GOLDEN / f"{f.name}.{outtype}.gguf"
        if out.exists():
            out.unlink()
        r = run_converter(llama_dir, f, d, out, tmp, outtype)
        done[outtype] = r if not r["converts"] else {"converts": True, "file": out.name}
    info.setdefault("llama_cpp_converter", {})["outtypes"] = done


def build(f: Family, llama_dir: Path, tmp: Path) -> dict:
    import numpy as np

    d = FAMILIES / f.name
    mf.clean_dir(d)
    if f.kind == "hf":
        copy_tokenizer(f.tokenizer, d)
        tokens, logits, hidden, how, extra = make_hf_family(f, d)
    else:
        copy_tokenizer(f.tokenizer, d)
        tokens, logits, hidden, how, extra = make_remote_family(f, d)
    for p in GOLDEN.glob(f"{f.name}.*"):
        p.unlink()
    np.save(GOLDEN / f"{f.name}.logits_f32.npy", logits)
    np.save(GOLDEN / f"{f.name}.hidden_f32.npy", hidden)
    cfg = json.loads((d / "config.json").read_text())
    info: dict = {"title": f.title, "kind": f.kind, "architectures": cfg.get("architectures"),
                  "model_type": cfg.get("model_type"), "tokenizer": f.tokenizer, "seed": SEED + f.seed_offset,
                  "golden_from": how, "files": sorted(p.name for p in d.iterdir()),
                  "model_dir_bytes": sum(p.stat().st_size for p in d.iterdir())}
    if f.note:
        info["note"] = f.note
    nowin = extra.pop("_logits_without_window", None)
    nopos = extra.pop("_logits_without_positions", None)
    ggml_g = extra.pop("_logits_ggml_gelu", None)
    info.update(extra)

    gguf = GOLDEN / f"{f.name}.f32.gguf"
    conv = run_converter(llama_dir, f, d, gguf, tmp)
    info["llama_cpp_converter"] = conv
    if conv["converts"]:
        dump = mf.gguf_kv_dump(gguf)
        src_note = f" (input copy with architectures=[{f.convert_arch!r}])" if f.convert_arch else ""
        dump["made_with"] = (f"convert_hf_to_gguf.py testdata/families/{f.name}{src_note} --outtype f32 "
                             f"--outfile testdata/golden/families/{gguf.name}"
                             + (f" with TextModel.get_vocab_base_pre patched to return {f.pre!r}" if f.pre else ""))
        mf.write_json(GOLDEN / f"{gguf.name}.kv.json", dump)
        arch = next(kv["value"] for kv in dump["kv"] if kv["key"] == "general.architecture")
        conv["general.architecture"] = arch
        conv["n_tensors"] = len(dump["tensors"])
        lc_out = GOLDEN / f"{f.name}.llamacpp_logits_f32.npy"
        run = llama_cpp_logits(gguf, lc_out, tokens)
        if not run["runs"] and f.llama_kv_overrides:
            run = {"plain_load": run, "kv_overrides": f.llama_kv_overrides,
                   **llama_cpp_logits(gguf, lc_out, tokens, f.llama_kv_overrides)}
        if run["runs"]:
            lc = np.load(lc_out)
            diff = np.abs(lc - logits)
            run["max_abs_diff_vs_reference"] = float(diff.max())
            run["max_rel_diff_vs_reference"] = float(diff.max() / np.abs(logits).max())
            run["max_abs_diff_per_position"] = [round(float(x), 6) for x in diff.max(-1)]
            run["argmax_equal"] = bool((lc.argmax(-1) == logits.argmax(-1)).all())
            if nowin is not None:
                # llama.cpp's "llama" architecture has no sliding window: compare with the
                # reference run without the window as well.
                run["max_abs_diff_vs_reference_without_window"] = float(np.abs(lc - nowin).max())
            if ggml_g is not None:
                run["max_abs_diff_vs_reference_with_ggml_f16_gelu"] = float(np.abs(lc - ggml_g).max())
            if nopos is not None:
                run["max_abs_diff_vs_reference_without_positions"] = float(np.abs(lc - nopos).max())
        info["llama_cpp_python"] = run
        convert_half(f, llama_dir, tmp, info)
    mf.write_json(GOLDEN / f"{f.name}.tokens.json", {
        "model": f.name,
        "model_dir": f"testdata/families/{f.name}",
        "text": TEXT,
        "tokens": tokens,
        "tokens_from": {"bpe": "tiny-llama-bpe/tokenizer.json encode(text), no specials, first 24 ids",
                        "spm": "<s> (1) + tiny-llama-spm/tokenizer.model encode(text), first 24 ids",
                        "qwen": "tiny-llama-bpe ids of text minus 3 (the stand-in qwen.tiktoken ranks), first 24"
                        }[f.tokenizer],
        "logits_file": f"{f.name}.logits_f32.npy",
        "logits_shape": list(logits.shape),
        "hidden_file": f"{f.name}.hidden_f32.npy",
        "hidden_shape": list(hidden.shape),
        "hidden_layout": "[0]=input of block 0 (token embedding, + learned position embedding for gpt2/opt), "
                         "[1+i]=residual stream after block i, [-1]=final norm output (lm_head input)",
        "argmax_per_pos": [int(i) for i in logits.argmax(-1)],
        "computed_with": how,
    })
    log(f"{f.name}: logits {logits.shape} max|x| {np.abs(logits).max():.2f}, model dir {info['model_dir_bytes']} B, "
        f"converter {conv.get('general.architecture') or conv.get('error')}, "
        f"llama.cpp {info.get('llama_cpp_python', {}).get('max_abs_diff_vs_reference', info.get('llama_cpp_python', {}).get('error'))}")
    return info


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_llama_logits":
        llama_logits_child(*sys.argv[2:6])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_convert_fixed":
        convert_fixed_child(sys.argv[2:])
        return
    all_names = [f.name for f in families()]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"families (default: all): {' '.join(all_names)}")
    ap.add_argument("--llama-cpp", default=str(mf.default_llama_cpp()))
    ap.add_argument("--half-only", action="store_true",
                    help="only (re)make the f16/bf16 converter files from the committed fixtures")
    a = ap.parse_args()
    bad = [n for n in a.names if n not in all_names]
    if bad:
        raise SystemExit(f"unknown family {bad}; known: {all_names}")

    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import tempfile
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    FAMILIES.mkdir(parents=True, exist_ok=True)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    manifest_path = GOLDEN / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    fams = manifest.get("families", {})
    with tempfile.TemporaryDirectory() as tmp:
        for f in families():
            if a.names and f.name not in a.names:
                continue
            if a.half_only:
                if fams.get(f.name, {}).get("llama_cpp_converter", {}).get("converts"):
                    convert_half(f, Path(a.llama_cpp), Path(tmp), fams[f.name])
                continue
            fams[f.name] = build(f, Path(a.llama_cpp), Path(tmp))
    manifest["families"] = {k: fams[k] for k in all_names if k in fams}
    manifest["versions"] = mf.versions()
    manifest["llama_cpp_source"] = "vendor/llama.cpp from the llama-cpp-python 0.3.36 sdist (PyPI)"
    manifest["seed_base"] = SEED
    files = sorted([p for p in GOLDEN.iterdir() if p.name != "manifest.json"]
                   + [p for p in FAMILIES.rglob("*") if p.is_file()])
    manifest["sha256"] = {str(p.relative_to(TESTDATA)): mf.sha256(p.read_bytes()) for p in files}
    mf.write_json(manifest_path, manifest)
    log("done")


if __name__ == "__main__":
    main()
