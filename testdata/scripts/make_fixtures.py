#!/usr/bin/env python3
"""Regenerate wconv's test fixtures under testdata/ (deterministic, fixed seeds).

Run with the interop venv's python:

    "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_fixtures.py

Steps (all by default; see --help to select):
  models   testdata/tiny-llama-spm/ and testdata/tiny-llama-bpe/ (random tiny LlamaForCausalLM + tokenizers)
  golden   testdata/golden/<model>.{tokens.json,logits_f32.npy,hidden_f32.npy}   (transformers fp32 eager)
  convert  testdata/golden/<model>.{f32,f16,bf16}.gguf (+ .kv.json)                (llama.cpp convert_hf_to_gguf.py)
  bnb      testdata/golden/tiny-llama-spm-{nf4,fp4,int8}/ (+ dequant / logits)   (transformers + bitsandbytes, CPU)
  vectors  testdata/vectors/ (copied from the shared spec test vectors, then re-derived and checked
           with gguf-py and bitsandbytes)

See testdata/README.md for what each file is and exactly how it was made.

Internal helper used by the convert step (runs llama.cpp's converter in a separate process
with its own vendored gguf-py, optionally forcing the BPE pre-tokenizer name):

    python make_fixtures.py _convert --llama-cpp DIR [--pre NAME] -- <convert_hf_to_gguf.py args>
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[2]
TESTDATA = REPO / "testdata"
GOLDEN = TESTDATA / "golden"
VECTORS = TESTDATA / "vectors"
SPM_DIR = TESTDATA / "tiny-llama-spm"
BPE_DIR = TESTDATA / "tiny-llama-bpe"

SEED = 20240607

SPM_TEXT = "the quick brown fox jumps over the lazy dog"
BPE_TEXT = "<|im_start|>user\nConvert 12 tensors to GGUF, please.<|im_end|>\n<|im_start|>assistant\n"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Llama-2 style template for the SentencePiece model.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# Small built-in corpus for training the byte-level BPE tokenizer.
BPE_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A tiny llama converts weights from safetensors to GGUF and back again.",
    "Quantization maps float32 tensors to 4-bit, 5-bit, 6-bit and 8-bit blocks.",
    "Each block of 32 values stores a scale and packed integer codes.",
    "NF4 uses sixteen normal-float levels; FP4 uses one sign, two exponent and one mantissa bit.",
    "The model has 2 layers, 4 attention heads, 2 key/value heads and a hidden size of 64.",
    "Numbers like 2024, 3.14159, 1e-5 and 10000 are split into single digits.",
    "Hello, world! Hello again, world? Yes: hello world.",
    "def convert(path):\n    return load(path).to_gguf()\n",
    "for i in range(10):\n    print(i * i)\n",
    "Café, naïve, résumé, Zürich, São Paulo, Kraków.",
    "Ünïcödé tëxt and emoji 🦙🚀 are encoded as UTF-8 bytes.",
    "User: what is the capital of France?\nAssistant: The capital of France is Paris.",
    "Tokens, merges, vocab, scores and token types are stored as GGUF metadata arrays.",
    "rope_theta = 10000, rms_norm_eps = 1e-5, max_position_embeddings = 256",
    "    indented lines   with   extra   spaces\tand\ttabs\n\n",
    "the the the and and of of to to in in is is it it",
    "weights weights tensors tensors blocks blocks scales scales",
    "llama llama model model convert convert verify verify quantize quantize",
]

SPM_TOKENIZER_CASES = [
    "the quick brown fox",
    "hello world",
    " the lazy dog ",
    "quantize llama tensor weights",
]
BPE_TOKENIZER_CASES = [
    "Hello, world!",
    "The year 2024 has 366 days.",
    "  leading spaces and\ttabs\n",
    "Café 🦙",
    "<|im_start|>user\nhi<|im_end|>",
]


def log(msg: str) -> None:
    print(f"[make_fixtures] {msg}", flush=True)


def default_cache() -> Path:
    return Path(os.environ.get("WCONV_CACHE") or (Path.home() / ".cache" / "wconv"))


def default_llama_cpp() -> Path:
    return default_cache() / "llama-cpp-python-src" / "vendor" / "llama.cpp"


def default_shared_vectors() -> Path | None:
    env = os.environ.get("WCONV_SHARED_TESTVECTORS")
    cands = [Path(env)] if env else []
    cands.append(REPO.parent / "shared" / "specs" / "testvectors")
    for c in cands:
        if (c / "ggml_vectors.json").is_file():
            return c
    return None


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

def init_weights(model, seed: int) -> None:
    """Deterministic init with larger-than-default scales so that RoPE, attention, norms and the
    head all matter numerically (default 0.02 init gives near-uniform attention)."""
    import math
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)  # U(0.5, 1.5)
            elif "embed_tokens" in name:
                # N(0, 1); N(0, 0.25^2) when tied so that the logits stay O(1)
                std = 0.25 if model.config.tie_word_embeddings else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif p.dim() == 2:
                fan_in = p.shape[1]
                std = 1.0 / math.sqrt(fan_in)
                if "q_proj" in name or "k_proj" in name:
                    std *= 2.0
                p.copy_(torch.randn(p.shape, generator=g) * std)
            else:
                raise RuntimeError(f"unexpected parameter {name}")


def make_llama_config(vocab_size: int, tie: bool, rope_parameters: dict, dtype: str):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="silu",
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters=rope_parameters,
        tie_word_embeddings=tie,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        attention_bias=False,
        mlp_bias=False,
        dtype=dtype,
    )


def save_model(cfg, out_dir: Path, torch_dtype, seed: int) -> None:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    init_weights(model, seed)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model = model.to(torch_dtype)
    model.save_pretrained(out_dir, safe_serialization=True)


def clean_dir(d: Path, keep: set[str] = frozenset()) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for p in d.iterdir():
        if p.name in keep:
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def finalize_tokenizer_config(d: Path, extra: dict, drop: tuple[str, ...] = ("is_local", "local_files_only")) -> None:
    """transformers 5 writes the chat template to chat_template.jinja and leaves add_bos_token out of
    tokenizer_config.json; put them into tokenizer_config.json as older/most hub checkpoints have it."""
    cfg_path = d / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    for k in drop:
        cfg.pop(k, None)
    jinja = d / "chat_template.jinja"
    if jinja.exists():
        jinja.unlink()
    cfg.update(extra)
    cfg = dict(sorted(cfg.items()))
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def find_spm_source(arg: str | None) -> Path:
    cands = []
    if arg:
        cands.append(Path(arg))
    sv = default_shared_vectors()
    if sv:
        cands.append(sv / "tiny-llama" / "tokenizer.model")
    cands.append(SPM_DIR / "tokenizer.model")
    for c in cands:
        if c.is_file():
            return c
    raise SystemExit("tokenizer.model not found (pass --spm-model)")


def make_spm_model(spm_src: Path) -> None:
    import sentencepiece as spm
    import torch
    from transformers import LlamaTokenizer

    log(f"tiny-llama-spm: tokenizer.model from {spm_src.name} ({spm_src.stat().st_size} bytes)")
    blob = spm_src.read_bytes()  # read before cleaning (source may be the destination)
    sp = spm.SentencePieceProcessor(model_proto=blob)
    vocab = sp.vocab_size()
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2), (sp.unk_id(), sp.bos_id(), sp.eos_id())
    clean_dir(SPM_DIR)
    (SPM_DIR / "tokenizer.model").write_bytes(blob)

    cfg = make_llama_config(vocab, tie=False,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                            dtype="bfloat16")
    save_model(cfg, SPM_DIR, torch.bfloat16, SEED)

    tok = LlamaTokenizer.from_pretrained(str(SPM_DIR), add_bos_token=True, add_eos_token=False)
    assert len(tok) == vocab, (len(tok), vocab)
    tok.save_pretrained(str(SPM_DIR))
    (SPM_DIR / "tokenizer.model").write_bytes(blob)  # transformers 5 no longer writes it
    finalize_tokenizer_config(SPM_DIR, {
        "add_bos_token": True,
        "add_eos_token": False,
        "chat_template": LLAMA2_TEMPLATE,
    })
    # special_tokens_map.json as transformers 4.x wrote it (transformers 5 no longer writes the file,
    # but most hub checkpoints have one).
    tokspec = lambda s: {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    write_json(SPM_DIR / "special_tokens_map.json", {
        "bos_token": tokspec("<s>"), "eos_token": tokspec("</s>"), "unk_token": tokspec("<unk>")})
    log(f"tiny-llama-spm: vocab {vocab}, files {sorted(p.name for p in SPM_DIR.iterdir())}")


def train_bpe_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    # SmolLM2's pre-tokenizer: digits isolated one by one, then GPT-2 byte-level regex split.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=352,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(BPE_CORPUS * 4, trainer=trainer, length=len(BPE_CORPUS) * 4)
    return tok


def make_bpe_model() -> None:
    import torch
    from transformers import PreTrainedTokenizerFast

    clean_dir(BPE_DIR)
    raw = train_bpe_tokenizer()
    vocab = raw.get_vocab_size(with_added_tokens=True)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        model_max_length=256,
    )
    hf.chat_template = CHATML_TEMPLATE
    assert hf.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert len(hf) == vocab
    cfg = make_llama_config(vocab, tie=True, rope_parameters={
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, dtype="float16")
    save_model(cfg, BPE_DIR, torch.float16, SEED + 1)
    hf.save_pretrained(str(BPE_DIR))
    finalize_tokenizer_config(BPE_DIR, {"chat_template": CHATML_TEMPLATE})
    log(f"tiny-llama-bpe: vocab {vocab}, files {sorted(p.name for p in BPE_DIR.iterdir())}")


# --------------------------------------------------------------------------------------------
# golden transformers outputs
# --------------------------------------------------------------------------------------------

def load_fp32(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def forward_with_hidden(model, tokens: list[int]):
    """Returns (logits [T, V], hidden [n_layers + 2, T, H]) in float32:
    hidden[0] = token embeddings, hidden[1 + i] = residual stream after decoder layer i,
    hidden[-1] = final RMSNorm output (the input of lm_head)."""
    import numpy as np
    import torch

    caps = []
    hooks = []

    def grab(_m, _inp, out):
        t = out[0] if isinstance(out, (tuple, list)) else out
        caps.append(t.detach()[0].float().numpy().copy())

    inner = model.model
    hooks.append(inner.embed_tokens.register_forward_hook(grab))
    for layer in inner.layers:
        hooks.append(layer.register_forward_hook(grab))
    hooks.append(inner.norm.register_forward_hook(grab))
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokens], dtype=torch.long), use_cache=False)
    for h in hooks:
        h.remove()
    logits = out.logits[0].float().numpy().astype(np.float32)
    hidden = np.stack(caps).astype(np.float32)
    assert hidden.shape[0] == len(inner.layers) + 2, hidden.shape
    return logits, hidden


def make_golden_outputs(name: str, model_dir: Path, text: str, cases: list[str]) -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoTokenizer

    GOLDEN.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tokens = tok(text).input_ids
    model = load_fp32(model_dir)
    logits, hidden = forward_with_hidden(model, tokens)
    np.save(GOLDEN / f"{name}.logits_f32.npy", logits)
    np.save(GOLDEN / f"{name}.hidden_f32.npy", hidden)
    write_json(GOLDEN / f"{name}.tokens.json", {
        "model": name,
        "text": text,
        "tokens": tokens,
        "logits_file": f"{name}.logits_f32.npy",
        "logits_shape": list(logits.shape),
        "hidden_file": f"{name}.hidden_f32.npy",
        "hidden_shape": list(hidden.shape),
        "hidden_layout": "[0]=token embeddings, [1+i]=residual stream after decoder layer i, [-1]=final RMSNorm output (lm_head input)",
        "argmax_per_pos": [int(i) for i in logits.argmax(-1)],
        "computed_with": f"transformers {transformers.__version__}, torch {torch.__version__}, weights upcast exactly to float32, eager attention, float32 math",
        "tokenizer_cases": [
            {"text": c, "ids": tok(c).input_ids, "ids_no_special": tok(c, add_special_tokens=False).input_ids}
            for c in cases
        ],
        "chat_example": {
            "messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}],
            "rendered": tok.apply_chat_template(
                [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}], tokenize=False),
        },
    })
    log(f"{name}: {len(tokens)} tokens, logits {logits.shape}, hidden {hidden.shape}, max|logit| {abs(logits).max():.3f}")


# --------------------------------------------------------------------------------------------
# llama.cpp converter
# --------------------------------------------------------------------------------------------

def run_converter_inprocess(llama_dir: Path, pre: str | None, args: list[str]) -> None:
    """Body of the `_convert` helper: runs convert_hf_to_gguf.py in this process, with the
    vendored gguf-py, optionally forcing TextModel.get_vocab_base_pre to return `pre`."""
    import runpy

    script = llama_dir / "convert_hf_to_gguf.py"
    sys.path.insert(0, str(llama_dir))
    sys.path.insert(1, str(llama_dir / "gguf-py"))
    if pre:
        import conversion.base as cb

        def forced_pre(self, tokenizer, _pre=pre):  # noqa: ARG001
            return _pre

        cb.TextModel.get_vocab_base_pre = forced_pre
    sys.argv = [str(script)] + args
    runpy.run_path(str(script), run_name="__main__")


def converter(llama_dir: Path, model_dir: Path, outtype: str, outfile: Path, pre: str | None) -> None:
    cmd = [sys.executable, str(SCRIPT), "_convert", "--llama-cpp", str(llama_dir)]
    if pre:
        cmd += ["--pre", pre]
    cmd += ["--", str(model_dir), "--outtype", outtype, "--outfile", str(outfile)]
    log(f"convert_hf_to_gguf.py {model_dir.name} --outtype {outtype}" + (f" (pre forced to {pre!r})" if pre else ""))
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    subprocess.run(cmd, check=True, env=env, cwd=str(REPO), stdout=subprocess.DEVNULL)


def gguf_kv_dump(path: Path) -> dict:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType

    r = GGUFReader(str(path))

    def py(v):
        if isinstance(v, (np.floating, float)):
            return float(v)
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.bool_,)):
            return bool(v)
        return v

    kvs = []
    header = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            header[key[5:]] = int(f.contents())
            continue
        t = f.types[0]
        ent = {"key": key, "type": t.name}
        val = f.contents()
        if t == GGUFValueType.ARRAY:
            ent["element_type"] = f.types[-1].name if len(f.types) > 1 else None
            ent["count"] = len(val)
            ent["value"] = [py(x) for x in val]
        else:
            ent["value"] = py(val)
        kvs.append(ent)
    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "type": GGMLQuantizationType(int(t.tensor_type)).name,
            "type_id": int(t.tensor_type),
            "ne": [int(x) for x in t.shape],
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
            "data_offset": int(t.data_offset),
            "sha256": sha256(bytes(np.asarray(t.data).tobytes())),
        })
    align = r.fields.get("general.alignment")
    return {
        "file": path.name,
        "file_size": path.stat().st_size,
        "header": header,
        "alignment": int(align.contents()) if align else 32,
        "kv": kvs,
        "tensors": tensors,
    }


def make_converter_goldens(llama_dir: Path) -> None:
    if not (llama_dir / "convert_hf_to_gguf.py").is_file():
        raise SystemExit(f"llama.cpp converter not found under {llama_dir}; run scripts/interop-env.sh first")
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, d, pre in (("tiny-llama-spm", SPM_DIR, None), ("tiny-llama-bpe", BPE_DIR, "smollm")):
        for outtype in ("f32", "f16", "bf16"):
            out = GOLDEN / f"{name}.{outtype}.gguf"
            converter(llama_dir, d, outtype, out, pre)
            dump = gguf_kv_dump(out)
            dump["made_with"] = (f"convert_hf_to_gguf.py testdata/{name} --outtype {outtype} --outfile testdata/golden/{out.name}"
                                 + (f" with TextModel.get_vocab_base_pre patched to return {pre!r}" if pre else ""))
            write_json(GOLDEN / f"{out.name}.kv.json", dump)
            log(f"  {out.name}: {out.stat().st_size} bytes, {len(dump['kv'])} kv, {len(dump['tensors'])} tensors")


# --------------------------------------------------------------------------------------------
# bitsandbytes reference checkpoints
# --------------------------------------------------------------------------------------------

def bnb_checkpoint(kind: str) -> dict:
    """Quantize tiny-llama-spm with transformers + bitsandbytes (CPU) and save_pretrained it.
    Also writes the dequantized weights (float32 safetensors) and fp32 logits of the model with
    every quantized Linear replaced by its dequantized weight."""
    import numpy as np
    import torch
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    out = GOLDEN / f"tiny-llama-spm-{kind}"
    if kind == "nf4":
        qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    elif kind == "fp4":
        qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=False,
                                bnb_4bit_compute_dtype=torch.float32)
    elif kind == "int8":
        qc = BitsAndBytesConfig(load_in_8bit=True)
    else:
        raise ValueError(kind)
    info = {"kind": kind, "config": qc.to_dict()}
    try:
        torch.manual_seed(0)
        qm = AutoModelForCausalLM.from_pretrained(str(SPM_DIR), quantization_config=qc, device_map="cpu",
                                                  dtype=torch.bfloat16)
        clean_dir(out)
        qm.save_pretrained(str(out), safe_serialization=True)
        # dequantized weights
        deq = {}
        for mname, mod in qm.named_modules():
            if isinstance(mod, bnb.nn.Linear4bit):
                w = F.dequantize_4bit(mod.weight.data, mod.weight.quant_state).float()
                deq[f"{mname}.weight"] = w.contiguous()
            elif isinstance(mod, bnb.nn.Linear8bitLt):
                cb = mod.weight.data
                scb = mod.weight.SCB if getattr(mod.weight, "SCB", None) is not None else mod.state.SCB
                w = F.int8_vectorwise_dequant(cb, scb).float()
                deq[f"{mname}.weight"] = w.contiguous()
        if not deq:
            raise RuntimeError("no bitsandbytes Linear modules found after quantization")
        # Full dequantized weights for NF4+DQ (compared with a tolerance: the DQ offset is a float32
        # mean whose last bit depends on the reduction order); for fp4 / int8 (bit-exact) only
        # per-tensor SHA-256 of the float32 LE bytes and a few values, to keep testdata small.
        summary = {}
        for k, w in sorted(deq.items()):
            a = w.numpy().astype("<f4")
            summary[k] = {"shape": list(a.shape), "sha256_f32le": sha256(a.tobytes()),
                          "first8": [float(v) for v in a.reshape(-1)[:8]],
                          "sum_f64": float(a.astype(np.float64).sum()), "max_abs": float(np.abs(a).max())}
        write_json(GOLDEN / f"tiny-llama-spm-{kind}.dequant.json", {
            "desc": "bitsandbytes dequantization (dequantize_4bit / int8_vectorwise_dequant, CPU) of every "
                    "quantized Linear in tiny-llama-spm-" + kind + "/model.safetensors, float32",
            "tensors": summary})
        full = GOLDEN / f"tiny-llama-spm-{kind}.dequant_f32.safetensors"
        if kind == "nf4":
            save_file(deq, str(full), metadata={"format": "pt"})
        elif full.exists():
            full.unlink()
        # fp32 logits with dequantized weights
        ref = load_fp32(SPM_DIR)
        sd = ref.state_dict()
        with torch.no_grad():
            for k, v in deq.items():
                sd[k].copy_(v)
        tokens = json.loads((GOLDEN / "tiny-llama-spm.tokens.json").read_text())["tokens"]
        logits, _ = forward_with_hidden(ref, tokens)
        np.save(GOLDEN / f"tiny-llama-spm-{kind}.dequant_logits_f32.npy", logits)
        base = np.load(GOLDEN / "tiny-llama-spm.logits_f32.npy")
        info.update(ok=True, files=sorted(p.name for p in out.iterdir()), n_quantized_linears=len(deq),
                    max_abs_logit_diff_vs_fp32=float(abs(logits - base).max()))
        log(f"bnb {kind}: ok, {len(deq)} linears, max|Δlogit| vs fp32 {info['max_abs_logit_diff_vs_fp32']:.4f}")
    except Exception as e:  # record what did not work on this backend
        info.update(ok=False, error=f"{type(e).__name__}: {e}")
        log(f"bnb {kind}: FAILED {info['error']}")
        if out.exists():
            shutil.rmtree(out)
    return info


# --------------------------------------------------------------------------------------------
# quantization vectors
# --------------------------------------------------------------------------------------------

VECTOR_FILES = ["input_4x256_f32le.bin", "ggml_vectors.json", "bnb_vectors.json", "bnb_dynamic_map_signed_f32.txt"] + [
    f"{t}.bin" for t in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")]


def lcg_input():
    """The 4x256 input of REFERENCE.md §13, regenerated from its recipe."""
    import numpy as np

    s = 12345
    vals = []
    for _ in range(4 * 256):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        vals.append(np.float32(((s >> 16) & 0x7FFF) / 16384.0 - 1.0))
    x = np.array(vals, dtype=np.float32).reshape(4, 256)
    x[1] *= np.float32(2.0 ** -7)
    x[1, 5] = 3.0
    x[2] += np.float32(0.5)
    x[2, 0:32] = 0.0
    x[3] *= np.float32(16.0)
    return x


def make_vectors(shared: Path | None) -> dict:
    import numpy as np
    import torch
    import gguf
    from gguf import quants
    import bitsandbytes.functional as F

    VECTORS.mkdir(parents=True, exist_ok=True)
    if shared is not None:
        for f in VECTOR_FILES:
            shutil.copyfile(shared / f, VECTORS / f)
        log(f"vectors: copied {len(VECTOR_FILES)} files from the shared test vectors")
    missing = [f for f in VECTOR_FILES if not (VECTORS / f).is_file()]
    if missing:
        raise SystemExit(f"missing vectors {missing} (set WCONV_SHARED_TESTVECTORS)")

    report: dict = {}
    x = lcg_input()
    raw = (VECTORS / "input_4x256_f32le.bin").read_bytes()
    report["input_matches_recipe"] = x.astype("<f4").tobytes() == raw
    x = np.frombuffer(raw, dtype="<f4").reshape(4, 256).copy()

    gv = json.loads((VECTORS / "ggml_vectors.json").read_text())
    for t in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"):
        want = (VECTORS / f"{t}.bin").read_bytes()
        ent = {"bin_sha256_matches_json": sha256(want) == gv[t]["sha256_quant"]}
        qt = gguf.GGMLQuantizationType[t]
        try:
            q = quants.quantize(x, qt)
            ent["ggufpy_quantize_equal"] = bytes(q.tobytes()) == want
        except NotImplementedError:
            ent["ggufpy_quantize_equal"] = "not implemented in gguf-py"
        deq = quants.dequantize(np.frombuffer(want, dtype=np.uint8).reshape(4, -1), qt).astype("<f4")
        ent["ggufpy_dequant_sha256_matches_json"] = sha256(deq.tobytes()) == gv[t]["sha256_dequant_f32le"]
        report[t] = ent

    bv = json.loads((VECTORS / "bnb_vectors.json").read_text())
    xt = torch.from_numpy(x.reshape(-1).copy())

    def q4(kind, dq):
        packed, st = F.quantize_4bit(xt, blocksize=64, compress_statistics=dq, quant_type=kind)
        deq = F.dequantize_4bit(packed, st).float().numpy().astype("<f4")
        return packed, st, deq

    p, st, deq = q4("nf4", False)
    report["nf4"] = {
        "packed_equal": sha256(p.numpy().tobytes()) == bv["nf4"]["sha256_packed"],
        "absmax_equal": [float(v) for v in st.absmax.float()] == bv["nf4"]["absmax_f32"],
        "dequant_equal": sha256(deq.tobytes()) == bv["nf4"]["sha256_dequant_f32le"],
    }
    p, st, deq = q4("nf4", True)
    ref = bv["nf4_dq"]
    report["nf4_dq"] = {
        "packed_equal": sha256(p.numpy().tobytes()) == ref["sha256_packed"],
        "qabsmax_equal": [int(v) for v in st.absmax] == ref["qabsmax_u8"],
        "nested_absmax_equal": [float(v) for v in st.state2.absmax] == ref["nested_absmax"],
        "offset_equal": float(st.offset) == ref["offset"],
        "dequant_equal": sha256(deq.tobytes()) == ref["sha256_dequant_f32le"],
    }
    p, st, deq = q4("fp4", False)
    # bitsandbytes' own FP4 code table has +0.0 at index 8 (bit pattern 1000), so dequantize_4bit
    # returns +0.0 there; the shared sha256 was computed as table[code] * absmax with the table of
    # REFERENCE.md §5.1, whose index 8 is -0.0. Check both: equal except for the sign of zero.
    fp4_table = (np.array([0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3],
                          dtype=np.float32) / np.float32(12.0))
    packed = p.numpy().reshape(-1)
    codes = np.stack([packed >> 4, packed & 15], 1).reshape(-1)[: xt.numel()]
    absmax = st.absmax.float().numpy()
    manual = (fp4_table[codes].reshape(-1, 64) * absmax[:, None]).reshape(-1).astype("<f4")
    report["fp4"] = {
        "packed_equal": sha256(p.numpy().tobytes()) == bv["fp4"]["sha256_packed"],
        "bnb_dequant_bits_equal_shared": sha256(deq.tobytes()) == bv["fp4"]["sha256_dequant_f32le"],
        "bnb_dequant_values_equal_table_times_absmax": bool(np.array_equal(deq.reshape(-1), manual)),
        "table_times_absmax_with_neg_zero_equal_shared": sha256(manual.tobytes()) == bv["fp4"]["sha256_dequant_f32le"],
        "n_code8_neg_zero": int((codes == 8).sum()),
    }
    res = F.int8_vectorwise_quant(torch.from_numpy(x.copy()))
    cb, scb = res[0], res[1]
    report["int8_rowwise"] = {
        "SCB_equal": [float(v) for v in scb] == bv["int8_rowwise"]["SCB"],
        "CB_equal": sha256(cb.numpy().astype(np.int8).tobytes()) == bv["int8_rowwise"]["sha256_CB"],
    }
    dm = F.create_dynamic_map(signed=True).float().numpy().astype("<f4")
    report["dynamic_map_sha256_ok"] = sha256(dm.tobytes()) == "e732639a65f497b4ad684bb166a4467708255edd5207757de8b8f0c7e1fda89c"

    write_json(VECTORS / "regeneration_check.json", report)
    expected_false = {("fp4", "bnb_dequant_bits_equal_shared")}  # signed zero, see above
    bad = {k: v for k, v in report.items()
           if v is False or (isinstance(v, dict) and any(x is False and (k, kk) not in expected_false for kk, x in v.items()))}
    log("vectors: regeneration check " + ("all equal" if not bad else f"MISMATCH {json.dumps(bad)}"))
    return report


# --------------------------------------------------------------------------------------------

def versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for p in ("torch", "transformers", "tokenizers", "sentencepiece", "safetensors", "gguf", "numpy",
              "bitsandbytes", "peft", "llama_cpp_python", "protobuf"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_convert":
        ap = argparse.ArgumentParser(prog="make_fixtures.py _convert")
        ap.add_argument("--llama-cpp", required=True)
        ap.add_argument("--pre")
        ap.add_argument("rest", nargs=argparse.REMAINDER)
        a = ap.parse_args(sys.argv[2:])
        rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
        run_converter_inprocess(Path(a.llama_cpp), a.pre, rest)
        return

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("steps", nargs="*", default=["models", "golden", "convert", "bnb", "vectors"],
                    help="subset of: models golden convert bnb vectors (default: all)")
    ap.add_argument("--llama-cpp", default=str(default_llama_cpp()), help="vendored llama.cpp dir (default: from the interop cache)")
    ap.add_argument("--spm-model", help="SentencePiece tokenizer.model to use (default: shared test vectors, else the committed one)")
    ap.add_argument("--shared", help="shared spec testvectors dir (default: ../shared/specs/testvectors beside the repo)")
    a = ap.parse_args()

    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    steps = a.steps
    manifest_path = GOLDEN / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if "models" in steps:
        make_spm_model(find_spm_source(a.spm_model))
        make_bpe_model()
    if "golden" in steps:
        make_golden_outputs("tiny-llama-spm", SPM_DIR, SPM_TEXT, SPM_TOKENIZER_CASES)
        make_golden_outputs("tiny-llama-bpe", BPE_DIR, BPE_TEXT, BPE_TOKENIZER_CASES)
    if "convert" in steps:
        make_converter_goldens(Path(a.llama_cpp))
    if "bnb" in steps:
        manifest["bnb"] = {k: bnb_checkpoint(k) for k in ("nf4", "fp4", "int8")}
    if "vectors" in steps:
        shared = Path(a.shared) if a.shared else default_shared_vectors()
        manifest["vectors_check"] = make_vectors(shared)
    manifest["versions"] = versions()
    manifest["llama_cpp_source"] = "vendor/llama.cpp from the llama-cpp-python 0.3.36 sdist (PyPI)"
    GOLDEN.mkdir(parents=True, exist_ok=True)
    write_json(manifest_path, manifest)
    log("done")


if __name__ == "__main__":
    main()
