#!/usr/bin/env python3
"""Checks Hugging Face tokenizer files that wconv wrote from GGUF tokenizer metadata.

Usage: check_hf_tokenizer.py DIR GOLDEN_JSON [DIR GOLDEN_JSON ...]

Each DIR holds the files wconv wrote (plus config.json) for the GGUF keys in GOLDEN_JSON (a golden from
dump_tokenizer_goldens.py). Checks:
  1. transformers' AutoTokenizer loads DIR and encodes every sample text of the golden to the ids the original
     HF tokenizer gave. Where the GGUF has no add_bos/add_eos key, the written tokenizer follows llama.cpp's
     default instead of the original's, so a leading BOS / trailing EOS is then left out of the comparison.
     GGUF keeps no SentencePiece normalizer (llama.cpp applies none), so for SentencePiece a sample is skipped
     when the original model's normalizer changes it differently from the written one (e.g. tiny-llama's
     nmt_nfkc with remove_extra_whitespaces on a text with double spaces). Where transformers' original
     tokenizer disagrees with the sentencepiece library itself (its LlamaTokenizer class drops one of several
     leading spaces), the written tokenizer must instead give sentencepiece's ids, which llama.cpp follows.
  2. If DIR has tokenizer.model, the sentencepiece library loads it with one piece per GGUF token: the same
     text (user-defined tokens with `▁` for their spaces), type and score bits.
Exits 0 when everything matches, 1 otherwise, printing each mismatch.
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def check(out_dir: Path, golden_path: Path) -> int:
    """Returns the number of mismatches for one written directory."""
    golden = json.loads(golden_path.read_text(encoding="utf-8"))
    kv = {e["key"]: e["value"] for e in golden["gguf"]}
    failures = 0

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out_dir))
    bos = kv.get("tokenizer.ggml.bos_token_id")
    eos = kv.get("tokenizer.ggml.eos_token_id")
    explicit_bos = "tokenizer.ggml.add_bos_token" in kv
    explicit_eos = "tokenizer.ggml.add_eos_token" in kv
    # The original SentencePiece model, to tell which samples its normalizer leaves alone.
    testdata = golden_path.resolve().parents[2]
    original_model = testdata / (golden["tokenizer_model"] or (golden["input"] + "/tokenizer.model"))
    same_normalization = lambda text: True  # noqa: E731
    sentencepiece_ids = None
    if (out_dir / "tokenizer.model").is_file() and original_model.is_file():
        import sentencepiece as spm

        from sentencepiece import sentencepiece_model_pb2 as pb

        after = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
        # The space prefix is carried by GGUF (add_space_prefix), so compare with the original normalizer
        # under the written model's prefix setting.
        proto = pb.ModelProto()
        proto.ParseFromString(original_model.read_bytes())
        written = pb.ModelProto()
        written.ParseFromString((out_dir / "tokenizer.model").read_bytes())
        proto.normalizer_spec.add_dummy_prefix = written.normalizer_spec.add_dummy_prefix
        before = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        same_normalization = lambda text: before.normalize(text) == after.normalize(text)  # noqa: E731
        add_bos = kv.get("tokenizer.ggml.add_bos_token", True)
        add_eos = kv.get("tokenizer.ggml.add_eos_token", False)

        def sentencepiece_ids(text: str) -> list[int]:
            return ([bos] if add_bos else []) + before.encode(text) + ([eos] if add_eos else [])
    skipped = 0
    sentencepiece_only = 0
    for sample in golden["hf_encodings"]:
        if not same_normalization(sample["text"]):
            skipped += 1
            continue
        expected, actual = list(sample["ids"]), tok.encode(sample["text"])
        if not explicit_bos:
            expected = expected[1:] if expected[:1] == [bos] else expected
            actual = actual[1:] if actual[:1] == [bos] else actual
        if not explicit_eos:
            expected = expected[:-1] if expected[-1:] == [eos] else expected
            actual = actual[:-1] if actual[-1:] == [eos] else actual
        if expected != actual and sentencepiece_ids is not None and tok.encode(sample["text"]) == sentencepiece_ids(sample["text"]):
            sentencepiece_only += 1
            print(f"{sample['text']!r}: original HF tokenizer differs from sentencepiece; written one equals sentencepiece")
        elif expected != actual:
            failures += 1
            print(f"ids differ for {sample['text']!r}:\n  original {expected}\n  written  {actual}")

    model_file = out_dir / "tokenizer.model"
    if model_file.is_file():
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model_file))
        tokens = kv["tokenizer.ggml.tokens"]
        types = kv["tokenizer.ggml.token_type"]
        scores = kv["tokenizer.ggml.scores"]
        if sp.get_piece_size() != len(tokens):
            failures += 1
            print(f"sentencepiece has {sp.get_piece_size()} pieces for {len(tokens)} tokens")
        else:
            for i, token in enumerate(tokens):
                piece = token.replace(" ", "\u2581") if types[i] == 4 else token
                if sp.id_to_piece(i) != piece or f32_bits(sp.get_score(i)) != scores[i]:
                    failures += 1
                    print(f"piece {i}: {sp.id_to_piece(i)!r} score {sp.get_score(i)} vs {piece!r} bits {scores[i]}")
                    break
    compared = len(golden["hf_encodings"]) - skipped
    print(f"{golden['case']}: {compared} samples compared ({sentencepiece_only} against sentencepiece), {skipped} skipped, "
          f"{'ok' if failures == 0 else f'{failures} mismatch(es)'}")
    return failures


def main() -> int:
    args = sys.argv[1:]
    if not args or len(args) % 2:
        print(__doc__)
        return 2
    failures = sum(check(Path(d), Path(g)) for d, g in zip(args[0::2], args[1::2]))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
