#!/usr/bin/env python3
"""Tokenizer fixtures and goldens for wconv's Tokenizer tests.

What it writes (paths relative to testdata/):
  tokenizer/<case>/...                 HF tokenizer inputs (config.json, tokenizer.json, tokenizer_config.json, ...)
  tokenizer/spm-bytefallback/tokenizer.model
                                       a small SentencePiece BPE model trained here (byte fallback, user symbols)
  golden/tokenizer/<case>.json         what llama.cpp's HF->GGUF converter writes for that input: every
                                       `tokenizer.*` key in file order with its GGUF type and value, plus the ids
                                       the original HF tokenizer (transformers AutoTokenizer) gives for sample texts
  golden/tokenizer/sentencepiece-<name>.json
                                       a SentencePiece model as the `sentencepiece` package reads it

How the goldens are made: each case directory is run through llama.cpp's own `convert_hf_to_gguf.py --vocab-only`
(the copy vendored in the llama-cpp-python 0.3.36 sdist, with its gguf-py), and the vocab-only GGUF is read back
with gguf-py. One thing is patched: `get_vocab_base_pre`, which names the BPE pre-tokenizer by hashing the ids of
a fixed text, only knows the hashes of real published vocabularies, so for the tiny trained vocabularies here it
returns the name the case was built to imitate (llama-bpe, smollm, gpt-2, qwen2). Everything else (token lists,
types, merges, special ids, add_* flags, chat templates, key order) is the converter's own output.

Usage:
  pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
  python dump_tokenizer_goldens.py --llama-cpp llama_cpp_python-0.3.36/vendor/llama.cpp

Versions used for the committed outputs: Python 3.11, sentencepiece 0.2.3, tokenizers 0.23.3,
transformers 5.24.0, torch 2.13.0+cpu (imported by the converter), protobuf 7.36.2, numpy 2.3.5, regex 2026.11.19.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]          # testdata/
CASES = ROOT / "tokenizer"
GOLDEN = ROOT / "golden" / "tokenizer"
TINY_SPM = ROOT / "vectors" / "tiny-llama" / "tokenizer.model"
TINY_CONFIG = ROOT / "vectors" / "tiny-llama" / "config.json"

# Sample texts whose ids are recorded, so a reconstructed tokenizer can be checked against the original.
SAMPLE_TEXTS = [
    "Hello world",
    "the quick brown fox jumps over the lazy dog",
    "I've been told he's there, 'RE you sure? We'Ve a'lL",
    "3 33 333 3333 33333 3.14 1,024",
    "line one\nline two\n\n  indented\tand tabbed",
    "naïve café — Ünïcödé",
    "emoji 🦙🦙 and 我想在apple工作",
    "<|im_start|>user\nhi there<|im_end|>",
    "   leading and trailing spaces   ",
    "",
]

# A small corpus written for these fixtures: prose, code, digits, punctuation and some non-ASCII text, so that
# training produces merges of every kind the pre-tokenizers split out.
CORPUS = """The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on.
A tokenizer splits text into pieces, and each piece gets an id from the vocabulary.
I've seen models that don't add a space prefix, and some that do. We'll see which one this is.
It's 2024 and there are 365 days, 12 months, 52 weeks, 7 days in a week and 24 hours in a day.
Numbers such as 3.14159, 2.71828 and 1,000,000 are split into digits by some pre-tokenizers.
def add(a, b):
    return a + b

for i in range(10):
    print(i * i)
Hello world! Hello there, world. Hello again and again and again.
The theory of the thing is that the three of them thought there was nothing there.
naïve café résumé façade coöperate Ünïcödé über straße
Large language models read tokens; tokens are ids; ids index an embedding table.
user: what is the capital of France? assistant: the capital of France is Paris.
system: you are a helpful assistant. user: hello! assistant: hi, how can I help?
emoji 🦙 llama 🦙 alpaca 🚀 rocket ✅ done 我想在apple工作 нещо на Български
""" * 4


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def llama_config(vocab_size: int, **extra) -> dict:
    config = json.loads(TINY_CONFIG.read_text())
    config["vocab_size"] = vocab_size
    for key, value in extra.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


# ---------------------------------------------------------------------------------------------------------------
# SentencePiece models


def dump_sentencepiece(model_path: Path, name: str) -> None:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    data = model_path.read_bytes()
    proto = pb.ModelProto()
    proto.ParseFromString(data)
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    assert sp.get_piece_size() == len(proto.pieces)
    pieces = []
    for i, p in enumerate(proto.pieces):
        # The processor's view and the raw proto must agree; record both the type and the float bits.
        assert sp.id_to_piece(i) == p.piece
        pieces.append({"piece": p.piece, "score_bits": f32_bits(p.score), "type": int(p.type)})
    ts, ns = proto.trainer_spec, proto.normalizer_spec
    golden = {
        "file": str(model_path.relative_to(ROOT)),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pieces": pieces,
        "trainer_spec": {
            "model_type": int(ts.model_type),
            "vocab_size": ts.vocab_size,
            "byte_fallback": ts.byte_fallback,
            "unk_id": ts.unk_id, "bos_id": ts.bos_id, "eos_id": ts.eos_id, "pad_id": ts.pad_id,
            "unk_piece": ts.unk_piece, "bos_piece": ts.bos_piece, "eos_piece": ts.eos_piece, "pad_piece": ts.pad_piece,
            "split_digits": ts.split_digits,
            "character_coverage_bits": f32_bits(ts.character_coverage),
            "hard_vocab_limit": ts.hard_vocab_limit,
            "input": list(ts.input),
            "model_prefix": ts.model_prefix,
            "user_defined_symbols": list(ts.user_defined_symbols),
            "control_symbols": list(ts.control_symbols),
        },
        "normalizer_spec": {
            "name": ns.name,
            "precompiled_charsmap_size": len(ns.precompiled_charsmap),
            "precompiled_charsmap_sha256": hashlib.sha256(ns.precompiled_charsmap).hexdigest(),
            "add_dummy_prefix": ns.add_dummy_prefix,
            "remove_extra_whitespaces": ns.remove_extra_whitespaces,
            "escape_whitespaces": ns.escape_whitespaces,
        },
        "has_denormalizer_spec": proto.HasField("denormalizer_spec"),
        "encodings": [{"text": t, "ids": sp.encode(t)} for t in SAMPLE_TEXTS],
    }
    write_json(GOLDEN / f"sentencepiece-{name}.json", golden)


def train_sentencepiece_bytefallback(out: Path) -> None:
    """A SentencePiece BPE model with byte fallback, user-defined and control symbols and a pad piece."""
    import sentencepiece as spm

    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        user_defined_symbols=["<tool>", "</tool>"],
        control_symbols=["<|im_start|>", "<|im_end|>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        num_threads=1,
        minloglevel=2,
    )
    out.write_bytes(buffer.getvalue())


# ---------------------------------------------------------------------------------------------------------------
# Byte-level BPE tokenizers (tokenizers library), built to look like the real families


LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def train_bpe(pre_tokenizer, special_tokens: list[str], vocab_size: int, normalizer=None, ignore_merges=False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    return tok


def make_bpe_smollm(case: Path) -> str:
    """SmolLM2-like: Digits(individual) + ByteLevel(use_regex), special tokens at the start of the vocabulary."""
    from tokenizers import AddedToken, pre_tokenizers, processors

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"]
    tok = train_bpe(
        pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]),
        specials, 320)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    # An added non-special token (user-defined in GGUF) and a non-special one that looks special (control).
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False),
                    AddedToken("<|extra_0|>", special=False, normalized=False)])
    case.mkdir(parents=True, exist_ok=True)
    tok.save(str(case / "tokenizer.json"))
    n = tok.get_vocab_size(with_added_tokens=True)
    write_json(case / "config.json", llama_config(n + 3, bos_token_id=1, eos_token_id=2, pad_token_id=None))
    write_json(case / "tokenizer_config.json", {
        "add_prefix_space": False,
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
        "tokenizer_class": "GPT2Tokenizer",
        "vocab_size": 49152,
    })
    return "smollm"


def make_bpe_llama3(case: Path) -> str:
    """Llama-3-like: Split(regex) + ByteLevel(no regex), specials after the vocabulary, BOS template, legacy merges."""
    from tokenizers import AddedToken, Regex, pre_tokenizers, processors

    tok = train_bpe(
        pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]),
        [], 300, ignore_merges=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos_id = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A:0",
            pair="<|begin_of_text|> $A:0 <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", bos_id)]),
    ])
    case.mkdir(parents=True, exist_ok=True)
    tok.save(str(case / "tokenizer.json"))
    # Older tokenizer.json files store merges as "a b" strings; the converter accepts both forms.
    data = json.loads((case / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    (case / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    n = tok.get_vocab_size(with_added_tokens=True)
    eot_id = tok.token_to_id("<|eot_id|>")
    write_json(case / "config.json", llama_config(n, bos_token_id=bos_id, eos_token_id=[tok.token_to_id("<|end_of_text|>"), eot_id]))
    added = {str(tok.token_to_id(s)): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                       "single_word": False, "special": True} for s in specials}
    write_json(case / "tokenizer_config.json", {
        "added_tokens_decoder": added,
        "bos_token": "<|begin_of_text|>",
        "chat_template": [
            {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}<|eot_id|>{% endfor %}"},
            {"name": "tool_use", "template": "{{ bos_token }}tools: {{ tools }}"},
        ],
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
    return "llama-bpe"


def make_bpe_gpt2(case: Path) -> str:
    """GPT-2-like: plain ByteLevel with its regex; tokenizer_config tokens as AddedToken dicts and add_bos_token."""
    from tokenizers import pre_tokenizers, processors

    tok = train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
                    ["<|endoftext|>"], 300)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    case.mkdir(parents=True, exist_ok=True)
    tok.save(str(case / "tokenizer.json"))
    n = tok.get_vocab_size(with_added_tokens=True)
    write_json(case / "config.json", llama_config(n, bos_token_id=0, eos_token_id=0))
    eot = {"__type": "AddedToken", "content": "<|endoftext|>", "lstrip": False, "normalized": True,
           "rstrip": False, "single_word": False}
    write_json(case / "tokenizer_config.json", {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": eot,
        "eos_token": eot,
        "unk_token": eot,
        "model_max_length": 1024,
        "tokenizer_class": "GPT2Tokenizer",
    })
    return "gpt-2"


def make_bpe_qwen2(case: Path) -> str:
    """Qwen2-like: NFC + Split(regex, single digits) + ByteLevel; a template whose trailing token is not the EOS."""
    from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers, processors

    tok = train_bpe(
        pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]),
        [], 300, normalizer=normalizers.NFC())
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_tokens([AddedToken("<tool\u2581call>", special=False, normalized=False)])
    eod = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A:0 <|endoftext|>:0", pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", eod)])
    case.mkdir(parents=True, exist_ok=True)
    tok.save(str(case / "tokenizer.json"))
    n = tok.get_vocab_size(with_added_tokens=True)
    write_json(case / "config.json", llama_config(n + 1, bos_token_id=None, eos_token_id=tok.token_to_id("<|im_end|>")))
    write_json(case / "tokenizer_config.json", {
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 32768,
        "tokenizer_class": "Qwen2Tokenizer",
        "split_special_tokens": False,
    })
    return "qwen2"


def make_spm_extras(case: Path) -> None:
    """tiny-llama's tokenizer.model plus the HF side files the SPM path reads (ids 128..131 padded by config)."""
    case.mkdir(parents=True, exist_ok=True)
    write_json(case / "config.json", llama_config(132, pad_token_id=0))
    write_json(case / "added_tokens.json", {"<extra>": 131, "<too_far>": 500})
    write_json(case / "tokenizer_config.json", {
        "add_bos_token": True,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            "0": {"content": "<unk>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True},
            "1": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True},
            "2": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True},
            "128": {"content": "<|im_start|>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": False},
            "129": {"content": "<tool\u2581call>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": False},
        },
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}",
        "legacy": False,
        "tokenizer_class": "LlamaTokenizer",
    })
    # The tokenizer.json that transformers makes from these files (as `save_pretrained` writes it), so that the
    # converter's SpecialVocab sees added tokens and a post-processor as it would in a real checkpoint.
    from transformers import AutoTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("config.json", "added_tokens.json", "tokenizer_config.json"):
            shutil.copy(case / name, Path(tmp) / name)
        shutil.copy(TINY_SPM, Path(tmp) / "tokenizer.model")
        AutoTokenizer.from_pretrained(tmp).save_pretrained(Path(tmp) / "saved")
        shutil.copy(Path(tmp) / "saved" / "tokenizer.json", case / "tokenizer.json")


def make_spm_bytefallback(case: Path) -> None:
    case.mkdir(parents=True, exist_ok=True)
    train_sentencepiece_bytefallback(case / "tokenizer.model")
    import sentencepiece as spm
    n = spm.SentencePieceProcessor(model_file=str(case / "tokenizer.model")).get_piece_size()
    write_json(case / "config.json", llama_config(n, bos_token_id=1, eos_token_id=2, pad_token_id=3))
    write_json(case / "tokenizer_config.json", {
        "add_bos_token": True,
        "add_eos_token": True,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": {"__type": "AddedToken", "content": "<pad>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "unk_token": "<unk>",
        "legacy": True,
        "tokenizer_class": "LlamaTokenizer",
    })


# ---------------------------------------------------------------------------------------------------------------
# Running the reference converter


def run_converter(llama_cpp: Path, model_dir: Path, out_file: Path, pre_name: str | None) -> None:
    sys.path.insert(0, str(llama_cpp / "gguf-py"))
    sys.path.insert(0, str(llama_cpp))
    import conversion.base as base  # noqa: E402  (the converter's own package)
    import convert_hf_to_gguf  # noqa: E402

    original = base.TextModel.get_vocab_base_pre
    if pre_name is not None:
        base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre_name
    saved_argv = sys.argv
    try:
        sys.argv = ["convert_hf_to_gguf.py", str(model_dir), "--vocab-only", "--outfile", str(out_file)]
        convert_hf_to_gguf.main()
    finally:
        sys.argv = saved_argv
        base.TextModel.get_vocab_base_pre = original


def gguf_tokenizer_kvs(path: Path) -> list[dict]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    out = []
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        types = [t.name for t in field.types]
        value = field.contents()
        if types == ["FLOAT32"]:
            value = f32_bits(value)
        elif types == ["ARRAY", "FLOAT32"]:
            value = [f32_bits(v) for v in value]
        type_name = types[0] if len(types) == 1 else f"{types[0]}[{types[1]}]"
        out.append({"key": field.name, "type": type_name, "value": value})
    return out


def hf_encodings(model_dir: Path) -> list[dict]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    return [{"text": t, "ids": tok.encode(t)} for t in SAMPLE_TEXTS]


def golden_case(llama_cpp: Path, name: str, model_dir: Path, pre_name: str | None, spm_model: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "model"
        shutil.copytree(model_dir, run_dir)
        if spm_model is not None:
            shutil.copy(ROOT / spm_model, run_dir / "tokenizer.model")
        out = Path(tmp) / "vocab.gguf"
        run_converter(llama_cpp, run_dir, out, pre_name)
        kvs = gguf_tokenizer_kvs(out)
        encodings = hf_encodings(run_dir)
    golden = {
        "case": name,
        "input": str(model_dir.relative_to(ROOT)),
        "tokenizer_model": spm_model,
        "pre_patched": pre_name,
        "gguf": kvs,
        "hf_encodings": encodings,
    }
    write_json(GOLDEN / f"{name}.json", golden)


# llama.cpp's split rules per pre-tokenizer name (src/llama-vocab.cpp, `llm_tokenizer_bpe`): regexes applied in
# turn, each splitting every piece into its matches and the text between them.
_CPP_LLAMA3 = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_CPP_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA_CPP_SPLITS = {
    "llama-bpe": [_CPP_LLAMA3],
    "qwen2": [_CPP_LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")],
    "smollm": [r"\p{N}", _CPP_GPT2],
    "gpt-2": [_CPP_GPT2],
}


def check_pre_tokenizer_names(llama_cpp: Path) -> None:
    """Each case's HF pre-tokenizer splits the converter's own hash text exactly as llama.cpp's rules for the
    name wconv gives it (emulated with the `regex` module), so recognising the definition is sound."""
    import regex
    from tokenizers import Tokenizer

    source = (llama_cpp / "conversion" / "base.py").read_text(encoding="utf-8")
    start = source.index("chktxt = ") + len("chktxt = ")
    chktxt = eval(source[start:source.index("\n", start)])  # a plain string literal in the converter
    # GPT-2's byte-to-unicode table, to turn ByteLevel output back into text.
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [b for b in range(256) if b not in printable]
    to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(extra)}

    def cpp_split(text: str, exprs: list[str]) -> list[str]:
        pieces = [text]
        for expr in exprs:
            out = []
            for piece in pieces:
                pos = 0
                for m in regex.finditer(expr, piece):
                    if m.start() > pos:
                        out.append(piece[pos:m.start()])
                    if m.end() > m.start():
                        out.append(m.group())
                    pos = m.end()
                if pos < len(piece):
                    out.append(piece[pos:])
            pieces = out
        return pieces

    for case, name in [("bpe-llama3", "llama-bpe"), ("bpe-qwen2", "qwen2"), ("bpe-smollm", "smollm"), ("bpe-gpt2", "gpt-2")]:
        pre = Tokenizer.from_file(str(CASES / case / "tokenizer.json")).pre_tokenizer
        hf = [bytes(to_byte[c] for c in p).decode("utf-8") for p, _ in pre.pre_tokenize_str(chktxt)]
        assert hf == cpp_split(chktxt, LLAMA_CPP_SPLITS[name]), f"{case}: HF split differs from llama.cpp's {name}"


def check_tiny_llama_against_fixture(fixture: Path | None) -> None:
    """The tiny-llama case must match the tokenizer keys of the converter-made fixture GGUF (same converter)."""
    if fixture is None or not fixture.is_file():
        return
    ours = json.loads((GOLDEN / "spm-tiny-llama.json").read_text(encoding="utf-8"))["gguf"]
    theirs = gguf_tokenizer_kvs(fixture)
    assert ours == theirs, "spm-tiny-llama golden differs from the fixture GGUF's tokenizer keys"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-cpp", type=Path, required=True, help="vendor/llama.cpp of llama-cpp-python 0.3.36")
    parser.add_argument("--fixture-gguf", type=Path, help="optional converter-made GGUF of tiny-llama to cross-check")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    make_spm_extras(CASES / "spm-extras")
    make_spm_bytefallback(CASES / "spm-bytefallback")
    pre = {
        "bpe-smollm": make_bpe_smollm(CASES / "bpe-smollm"),
        "bpe-llama3": make_bpe_llama3(CASES / "bpe-llama3"),
        "bpe-gpt2": make_bpe_gpt2(CASES / "bpe-gpt2"),
        "bpe-qwen2": make_bpe_qwen2(CASES / "bpe-qwen2"),
    }

    dump_sentencepiece(TINY_SPM, "tiny-llama")
    dump_sentencepiece(CASES / "spm-bytefallback" / "tokenizer.model", "bytefallback")

    # The tiny-llama case needs no input files beyond the vectors; give it a directory with its config only.
    tiny_case = CASES / "spm-tiny-llama"
    tiny_case.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TINY_CONFIG, tiny_case / "config.json")
    golden_case(args.llama_cpp, "spm-tiny-llama", tiny_case, None, "vectors/tiny-llama/tokenizer.model")
    golden_case(args.llama_cpp, "spm-extras", CASES / "spm-extras", None, "vectors/tiny-llama/tokenizer.model")
    golden_case(args.llama_cpp, "spm-bytefallback", CASES / "spm-bytefallback", None, None)
    for name, pre_name in pre.items():
        golden_case(args.llama_cpp, name, CASES / name, pre_name, None)
    check_tiny_llama_against_fixture(args.fixture_gguf)
    check_pre_tokenizer_names(args.llama_cpp)


if __name__ == "__main__":
    main()
