#!/usr/bin/env python3
"""Reference outputs of llama.cpp's `llama-quantize` for wconv's GGUF quantizer tests.

Steps (default: all, in this order):

  model     writes testdata/tiny-llama-256/: a one-layer LLaMA whose rows are 256 wide, so that
            the k-quant types (block 256) apply instead of the fallbacks the 64-wide tiny models get.
  families  runs llama-quantize on each family's converter f32 GGUF
            (testdata/golden/families/<name>.f32.gguf) for FAMILY_TYPES and writes one JSON summary
            per output to testdata/golden/quantize/families/ (or, if llama-quantize refuses the
            input, a summary holding its exit status and last message).
  quantize  converts it to an f32 GGUF with llama.cpp's converter (in a temporary directory, not
            committed), then runs llama-quantize on that file and on the committed tiny-model GGUFs
            (testdata/golden/tiny-llama-{spm,bpe}.*.gguf) for every case in CASES, and writes one
            JSON summary per output to testdata/golden/quantize/ (the quantized files themselves are
            not committed: whole-file SHA-256, KV list, per-tensor types and SHA-256 are enough to
            check wconv's output byte for byte).

Run with the interop venv (scripts/interop-env.sh builds llama-quantize and the venv):

  "$(scripts/interop-env.sh --print-python)" testdata/scripts/make_quantize_goldens.py

Two runs give identical files (fixed seed; llama-quantize's output does not depend on its thread
count, which the script checks by running every case with 1 and with 2 threads).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(SCRIPT.parent))
import make_fixtures as fx  # noqa: E402  (shared helpers: weight init, converter driver, GGUF dump)

REPO = fx.REPO
TESTDATA = fx.TESTDATA
GOLDEN = fx.GOLDEN
OUT = GOLDEN / "quantize"
WIDE_DIR = TESTDATA / "tiny-llama-256"
WIDE_SEED = fx.SEED + 2

# Every plain llama-quantize file type the brief asks for.
TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K"]


def cases() -> list[dict]:
    """(input, type, extra flags) for every golden. `input` names a GGUF: `<model>.<outtype>`;
    `requant:<case id>` uses the output of another case as input."""
    out = []
    for model in ("tiny-llama-spm", "tiny-llama-bpe", "tiny-llama-256"):
        for t in TYPES:
            out.append({"id": f"{model}.{t}", "input": f"{model}.f32", "type": t, "flags": []})
    # The remaining mixes and the float file types.
    for t in ("Q3_K_S", "Q3_K_L", "Q5_K_S", "F16", "BF16"):
        out.append({"id": f"tiny-llama-256.{t}", "input": "tiny-llama-256.f32", "type": t, "flags": []})
    # 16-bit inputs (converted to f32 before quantizing).
    out.append({"id": "tiny-llama-spm.bf16-in.Q4_0", "input": "tiny-llama-spm.bf16", "type": "Q4_0", "flags": []})
    out.append({"id": "tiny-llama-bpe.f16-in.Q8_0", "input": "tiny-llama-bpe.f16", "type": "Q8_0", "flags": []})
    # Options.
    w = "tiny-llama-256.f32"
    out += [
        {"id": "tiny-llama-256.Q4_K_M.pure", "input": w, "type": "Q4_K_M", "flags": ["--pure"]},
        {"id": "tiny-llama-256.Q4_K_M.leave-output", "input": w, "type": "Q4_K_M", "flags": ["--leave-output-tensor"]},
        {"id": "tiny-llama-256.Q4_K_M.output-q8_0.embd-q5_k", "input": w, "type": "Q4_K_M",
         "flags": ["--output-tensor-type", "q8_0", "--token-embedding-type", "q5_k"]},
        {"id": "tiny-llama-256.Q4_K_M.tensor-type", "input": w, "type": "Q4_K_M",
         "flags": ["--tensor-type", r"attn_(q|k)=q8_0", "--tensor-type", r"BLK\.0\.FFN_UP=Q5_K", "--tensor-type", "ffn=q3_k"]},
        {"id": "tiny-llama-spm.Q4_K_M.tensor-type", "input": "tiny-llama-spm.f32", "type": "Q4_K_M",
         "flags": ["--tensor-type", "attn_v=q6_k", "--tensor-type", "ffn_down=q5_1"]},
        {"id": "tiny-llama-bpe.Q4_0.pure", "input": "tiny-llama-bpe.f32", "type": "Q4_0", "flags": ["--pure"]},
        # Requantization (--allow-requantize): dequantize Q4_K_M, then quantize again / widen.
        {"id": "tiny-llama-256.Q4_K_M.requant.Q4_0", "input": "requant:tiny-llama-256.Q4_K_M", "type": "Q4_0",
         "flags": ["--allow-requantize"]},
        {"id": "tiny-llama-256.Q4_K_M.requant.F16", "input": "requant:tiny-llama-256.Q4_K_M", "type": "F16",
         "flags": ["--allow-requantize"]},
        {"id": "tiny-llama-256.Q4_K_M.requant.F32", "input": "requant:tiny-llama-256.Q4_K_M", "type": "F32",
         "flags": ["--allow-requantize"]},
        {"id": "tiny-llama-spm.Q4_K_M.requant.BF16", "input": "requant:tiny-llama-spm.Q4_K_M", "type": "BF16",
         "flags": ["--allow-requantize"]},
    ]
    return out


# The converter goldens of every non-LLaMA family with a llama.cpp architecture; each is quantized
# to the types below. Their rows are 64 or 256 wide, so the k-quant mixes exercise both the
# per-architecture rules and the row-width fallbacks.
FAMILIES = ["qwen2", "mistral", "gpt2", "phi-1_5", "falcon-7b", "falcon-40b", "mpt", "baichuan2-7b", "baichuan2-13b", "qwen-7b"]
FAMILY_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_M", "Q4_K_S", "Q5_K_S", "Q5_K_M", "Q6_K", "F16", "BF16"]
FAMILY_OUT = OUT / "families"
# llama-quantize loads the model's hyperparameters and refuses qwen-7b's converter file: the
# converter writes qwen.attention.layer_norm_epsilon, the qwen loader requires the RMS key. For
# such inputs the golden also records a second run with the missing key supplied (--override-kv,
# which llama-quantize also writes into its output); its tensors are the reference for wconv's.
FAMILY_RETRY_FLAGS = {"qwen-7b": ["--override-kv", "qwen.attention.layer_norm_rms_epsilon=float:1e-6"]}


def log(msg: str) -> None:
    print(f"[make_quantize_goldens] {msg}", flush=True)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------

def make_wide_model() -> None:
    """tiny-llama-256: hidden 256, intermediate 256, 1 layer, 4 heads of 64, 1 KV head (GQA 4, so
    Q2_K's attn_v rule for n_gqa >= 4 applies), untied head, f16 weights, the byte-level BPE
    tokenizer of tiny-llama-bpe (vocab 352)."""
    import torch
    from transformers import LlamaConfig

    fx.clean_dir(WIDE_DIR)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(fx.BPE_DIR / name, WIDE_DIR / name)
    vocab = json.loads((fx.BPE_DIR / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=256,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=64,
        hidden_act="silu",
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        attention_bias=False,
        mlp_bias=False,
        dtype="float16",
    )
    fx.save_model(cfg, WIDE_DIR, torch.float16, WIDE_SEED)
    log(f"tiny-llama-256: vocab {vocab}, files {sorted(p.name for p in WIDE_DIR.iterdir())}, "
        f"{(WIDE_DIR / 'model.safetensors').stat().st_size} bytes of weights")


# --------------------------------------------------------------------------------------------
# llama-quantize
# --------------------------------------------------------------------------------------------

def summarize(path: Path) -> dict:
    """Whole-file hash plus what gguf-py reads: KVs in file order (arrays by element type and
    count), tensors with type, ne, offset and SHA-256 of their bytes."""
    dump = fx.gguf_kv_dump(path)
    kv = []
    for e in dump["kv"]:
        if e["type"] == "ARRAY":
            kv.append({"key": e["key"], "type": "ARRAY", "element_type": e["element_type"], "count": e["count"]})
        else:
            kv.append({"key": e["key"], "type": e["type"], "value": e["value"]})
    return {
        "file_size": dump["file_size"],
        "file_sha256": sha256(path.read_bytes()),
        "header": dump["header"],
        "alignment": dump["alignment"],
        "kv": kv,
        "tensors": [{k: t[k] for k in ("name", "type", "ne", "n_bytes", "data_offset", "sha256")} for t in dump["tensors"]],
    }


def run_quantize(binary: Path, src: Path, dst: Path, qtype: str, flags: list[str], threads: int) -> None:
    cmd = [str(binary), *flags, str(src), str(dst), qtype, str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"llama-quantize failed: {' '.join(cmd)}")


def make_quantize_goldens(llama_dir: Path, binary: Path, tmp: Path) -> None:
    if not binary.is_file():
        raise SystemExit(f"{binary} not found; run scripts/interop-env.sh first")
    wide_f32 = tmp / "tiny-llama-256.f32.gguf"
    fx.converter(llama_dir, WIDE_DIR, "f32", wide_f32, "smollm")
    inputs = {
        "tiny-llama-256.f32": wide_f32,
        **{f"{m}.{t}": GOLDEN / f"{m}.{t}.gguf" for m in ("tiny-llama-spm", "tiny-llama-bpe") for t in ("f32", "f16", "bf16")},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    # The converter's f32 file of the wide model is the input of its goldens; wconv's converter
    # must reproduce it, so record its hash too.
    conv = summarize(wide_f32)
    conv["made_with"] = ("convert_hf_to_gguf.py testdata/tiny-llama-256 --outtype f32 "
                         "with TextModel.get_vocab_base_pre patched to return 'smollm'")
    fx.write_json(OUT / "tiny-llama-256.f32.gguf.json", conv)

    outputs: dict[str, Path] = {}
    for case in cases():
        src = outputs[case["input"][8:]] if case["input"].startswith("requant:") else inputs[case["input"]]
        dst = tmp / f"{case['id']}.gguf"
        run_quantize(binary, src, dst, case["type"], case["flags"], 2)
        again = tmp / f"{case['id']}.t1.gguf"
        run_quantize(binary, src, again, case["type"], case["flags"], 1)
        if dst.read_bytes() != again.read_bytes():
            raise SystemExit(f"{case['id']}: llama-quantize output differs between 1 and 2 threads")
        outputs[case["id"]] = dst
        summary = summarize(dst)
        shown_input = (f"the output of case {case['input'][8:]}" if case["input"].startswith("requant:")
                       else ("the converter's f32 GGUF of testdata/tiny-llama-256" if case["input"] == "tiny-llama-256.f32"
                             else f"testdata/golden/{case['input']}.gguf"))
        summary = {
            "case": case["id"],
            "input": case["input"],
            "type": case["type"],
            "flags": case["flags"],
            "made_with": f"llama-quantize {' '.join(case['flags'] + ['<input>', '<output>', case['type']])} (input: {shown_input})",
            **summary,
        }
        fx.write_json(OUT / f"{case['id']}.json", summary)
        types = {}
        for t in summary["tensors"]:
            types[t["type"]] = types.get(t["type"], 0) + 1
        log(f"  {case['id']}: {summary['file_size']} bytes, {types}")


def make_family_goldens(binary: Path, tmp: Path) -> None:
    if not binary.is_file():
        raise SystemExit(f"{binary} not found; run scripts/interop-env.sh first")
    FAMILY_OUT.mkdir(parents=True, exist_ok=True)
    for old in FAMILY_OUT.glob("*.json"):
        old.unlink()
    for family in FAMILIES:
        src = GOLDEN / "families" / f"{family}.f32.gguf"
        for t in FAMILY_TYPES:
            case_id = f"{family}.{t}"
            dst = tmp / f"{case_id}.gguf"
            head = {
                "case": case_id,
                "input": f"families/{family}.f32",
                "type": t,
                "flags": [],
                "made_with": f"llama-quantize <input> <output> {t} (input: testdata/golden/families/{family}.f32.gguf)",
            }
            r = subprocess.run([str(binary), str(src), str(dst), t, "2"], capture_output=True, text=True)
            if r.returncode != 0:
                # The line naming the reason (the last lines name the input's machine path).
                reasons = [l.strip() for l in (r.stdout + r.stderr).splitlines() if "failed to quantize:" in l]
                reason = reasons[0] if reasons else f"exit status {r.returncode}"
                head["refused"] = {"exit_status": r.returncode, "message": reason}
                log(f"  {case_id}: llama-quantize refused: {reason}")
                retry = FAMILY_RETRY_FLAGS.get(family)
                if retry is None:
                    fx.write_json(FAMILY_OUT / f"{case_id}.json", head)
                    continue
                head["retried_with"] = retry
                head["made_with"] = f"llama-quantize {' '.join(retry)} <input> <output> {t} (input: testdata/golden/families/{family}.f32.gguf)"
                run_quantize(binary, src, dst, t, retry, 2)
                again = tmp / f"{case_id}.t1.gguf"
                run_quantize(binary, src, again, t, retry, 1)
                if dst.read_bytes() != again.read_bytes():
                    raise SystemExit(f"{case_id}: llama-quantize output differs between 1 and 2 threads")
                fx.write_json(FAMILY_OUT / f"{case_id}.json", {**head, **summarize(dst)})
                log(f"  {case_id}: with {' '.join(retry)}: {dst.stat().st_size} bytes")
                dst.unlink()
                again.unlink()
                continue
            again = tmp / f"{case_id}.t1.gguf"
            run_quantize(binary, src, again, t, [], 1)
            if dst.read_bytes() != again.read_bytes():
                raise SystemExit(f"{case_id}: llama-quantize output differs between 1 and 2 threads")
            summary = {**head, **summarize(dst)}
            fx.write_json(FAMILY_OUT / f"{case_id}.json", summary)
            types = {}
            for tensor in summary["tensors"]:
                types[tensor["type"]] = types.get(tensor["type"], 0) + 1
            log(f"  {case_id}: {summary['file_size']} bytes, {types}")
            dst.unlink()
            again.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("steps", nargs="*", default=["model", "quantize"], help="subset of: model quantize families")
    ap.add_argument("--llama-cpp", default=str(fx.default_llama_cpp()), help="vendored llama.cpp dir")
    ap.add_argument("--llama-quantize", default=str(fx.default_cache() / "llama.cpp-build" / "bin" / "llama-quantize"))
    a = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if "model" in a.steps:
        import torch

        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        make_wide_model()
    if "quantize" in a.steps:
        with tempfile.TemporaryDirectory(prefix="wconv-quantize-goldens-") as tmp:
            make_quantize_goldens(Path(a.llama_cpp), Path(a.llama_quantize), Path(tmp))
    if "families" in a.steps:
        with tempfile.TemporaryDirectory(prefix="wconv-quantize-families-") as tmp:
            make_family_goldens(Path(a.llama_quantize), Path(tmp))
    log("done")


if __name__ == "__main__":
    main()
