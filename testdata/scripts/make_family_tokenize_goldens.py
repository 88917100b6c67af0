#!/usr/bin/env python3
"""Reference token ids of the family fixture text, for `wconv tokenize` over every family.

For each testdata/families/<name>/ directory: transformers' AutoTokenizer (trust_remote_code for Qwen-7B's
stand-in tokenization_qwen.py) `encode(text)` with the tokenizer's own special tokens. For each
testdata/golden/families/<name>.f32.gguf: llama.cpp's tokenizer (llama-cpp-python, vocab only) with
add_special (BOS as the GGUF metadata says) and no special-token parsing; for the SentencePiece GGUFs
llama.cpp aborts on (no byte pieces), sentencepiece on the directory's tokenizer.model with BOS. Writes
testdata/golden/families/tokenize.json. Deterministic: no randomness, sorted families.
"""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve()
TESTDATA = SCRIPT.parent.parent
FAMILIES = TESTDATA / "families"
GOLDEN = TESTDATA / "golden" / "families"


def main() -> None:
    from transformers import AutoTokenizer

    text = json.loads((GOLDEN / "gpt2.tokens.json").read_text())["text"]
    out = {"text": text, "hf": {}, "gguf": {}}
    for d in sorted(p for p in FAMILIES.iterdir() if p.is_dir()):
        tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=True)
        out["hf"][d.name] = tok.encode(text)
        gguf = GOLDEN / f"{d.name}.f32.gguf"
        if gguf.exists():
            # A child process: llama.cpp aborts on some vocabularies (an uncaught C++ exception).
            r = subprocess.run([sys.executable, str(SCRIPT), "--gguf", str(gguf), text],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if r.returncode == 0:
                out["gguf"][d.name] = json.loads(r.stdout)
            elif (d / "tokenizer.model").exists():
                # llama.cpp aborts on a character with neither a piece nor a byte token (these tiny
                # SentencePiece vocabularies have no byte pieces); the reference is sentencepiece itself,
                # <unk> for such characters, with BOS in front as the GGUF says (add_bos_token true).
                import sentencepiece as spm
                sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
                out["gguf"][d.name] = [sp.bos_id()] + sp.encode(text)
            else:
                raise SystemExit(f"{d.name}: llama.cpp cannot tokenize with this GGUF (exit {r.returncode})")
    (GOLDEN / "tokenize.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(out['hf'])} HF and {len(out['gguf'])} GGUF references", file=sys.stderr)


def gguf_ids(path: str, text: str) -> None:
    import llama_cpp
    m = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    print(json.dumps(m.tokenize(text.encode("utf-8"), add_bos=True, special=False)))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--gguf":
        gguf_ids(sys.argv[2], sys.argv[3])
    else:
        main()
