"""Issue 5 benchmark: one LoRA training step on SmolLM2-135M, wconv against PyTorch + PEFT, with an
f32 base and a bitsandbytes-style NF4 (double-quantized) base; then `wconv qlora-merge` against PEFT's
`merge_and_unload` + `save_pretrained`.

Training step: batch 1 x 128 tokens (every token a target), LoRA r=8 alpha=16 dropout 0.05 on all seven
projections, AdamW lr 1e-4, gradient clipping at 1.0, 2 threads, no activation recomputation / gradient
checkpointing. wconv runs `wconv qlora-train --steps 7 --json` and the step time is the `seconds` (wall) and
`cpu_seconds` (process CPU time, all threads) fields of its NDJSON `step` events (the optimizer step alone:
forward, backward, clipping, AdamW; no loading); PyTorch + PEFT runs bench/qlora_step_torch.py, which times
the same loop with time.perf_counter and time.process_time. Both take the median of steps 3..7 (two warm-up
steps). On a shared machine the CPU-time ratio is the steadier one. Each configuration runs in its own process, so the peak RSS
(/usr/bin/time for wconv, ru_maxrss for Python, both whole-process and including the load) is its own.

Merge: the adapter the f32 run trained, merged into the f32 base and written as an f32 HF directory; wall
time of the whole process (load, merge, write), 2 threads. wconv is timed with --no-verify (PEFT does no
verification) and, for information, with its default forward-pass check.

BENCH_REALTIME=1 runs the training steps under SCHED_FIFO (`chrt -f 1`, needs root), as bench/pack_bench.py
does: on the shared 2-core machine both wall and CPU time of a multi-threaded step otherwise depend on the other
processes (descheduled BLAS/OpenMP threads spin), so real-time priority measures each peer as on an idle machine.

Usage: python bench/qlora_bench.py [REPEAT]   (REPEAT processes per configuration, default 2;
QLORA_BENCH=step or merge runs one part only)
"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from common import PYTHON, ROOT, WCONV, load_avg, measure, remove, report, smollm2_hf

repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 2
THREADS = 2
hf = smollm2_hf()
tmp = pathlib.Path(tempfile.mkdtemp(prefix="wconv-qlora-bench-"))

# One text record far longer than 128 tokens; --max-len 128 keeps the first 128.
data = tmp / "data.jsonl"
text = " ".join(["The quick brown fox jumps over the lazy dog while the committee reviews its quarterly figures,"
                 " and a small language model learns to follow instructions one optimizer step at a time."] * 12)
data.write_text(json.dumps({"text": text}) + "\n")


REALTIME = os.environ.get("BENCH_REALTIME") == "1"


def timed(cmd):
    """Runs `cmd` under /usr/bin/time (and SCHED_FIFO with BENCH_REALTIME=1); returns (stdout, peak RSS MB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        prefix = ["chrt", "-f", "1"] if REALTIME else []
        proc = subprocess.run([*prefix, "/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc.stdout, int(rss.read().split()[-1]) / 1024


def wconv_step(base, adapter_dir):
    out, rss = timed([WCONV, "qlora-train", str(hf), "--data", str(data), "-o", str(adapter_dir), "--steps", "7",
                      "--max-len", "128", "--rank", "8", "--alpha", "16", "--dropout", "0.05", "--lr", "1e-4",
                      "--base-precision", base, "--threads", str(THREADS), "--json", "--force"])
    steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steps = [e for e in steps if e.get("event") == "step"]
    assert len(steps) == 7 and all(e["tokens"] == 128 for e in steps), steps
    return (statistics.median(e["seconds"] for e in steps[2:]), statistics.median(e["cpu_seconds"] for e in steps[2:]),
            rss, steps[-1]["loss"])


def torch_step(base):
    out, rss = timed([PYTHON, str(ROOT / "bench" / "qlora_step_torch.py"), str(hf), "--threads", str(THREADS),
                      "--one", base, "0"])
    r = json.loads(out.strip().splitlines()[-1])
    return r["median_seconds"], r["median_cpu_seconds"], max(rss, r["peak_rss_mb"]), r["loss"]


results = {"load_average_at_start": load_avg(), "threads": THREADS, "realtime": REALTIME, "step": {}}
parts = os.environ.get("QLORA_BENCH", "step merge").split()
adapter = tmp / "adapter-f32"
if "step" in parts:
    print("\n## LoRA training step, SmolLM2-135M, batch 1 x 128, r=8, 7 projections, 2 threads (medians)"
          + (", SCHED_FIFO" if REALTIME else ""))
    print("| base | wconv s/step (CPU s) | PyTorch+PEFT s/step (CPU s) | wall ratio | CPU ratio "
          "| wconv peak RSS MB | PyTorch+PEFT peak RSS MB | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|")
for base in ["f32", "nf4"] if "step" in parts else []:
    ours, theirs = [], []
    for _ in range(repeat):  # alternate the peers so drifting machine load hits both
        ours.append(wconv_step(base, adapter if base == "f32" else tmp / f"adapter-{base}"))
        theirs.append(torch_step(base))

    def summary(runs):
        return {"median_s": statistics.median(r[0] for r in runs), "median_cpu_s": statistics.median(r[1] for r in runs),
                "peak_rss_mb": max(r[2] for r in runs), "loss": runs[-1][3], "runs": [r[:2] for r in runs]}

    w, t = summary(ours), summary(theirs)
    results["step"][base] = {"wconv": w, "pytorch_peft": t, "time_ratio": w["median_s"] / t["median_s"],
                             "cpu_ratio": w["median_cpu_s"] / t["median_cpu_s"], "rss_ratio": w["peak_rss_mb"] / t["peak_rss_mb"]}
    print(f"| {base} | {w['median_s']:.3f} ({w['median_cpu_s']:.3f}) | {t['median_s']:.3f} ({t['median_cpu_s']:.3f}) "
          f"| {w['median_s'] / t['median_s']:.2f}× | {w['median_cpu_s'] / t['median_cpu_s']:.2f}× "
          f"| {w['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} | {w['peak_rss_mb'] / t['peak_rss_mb']:.2f}× |")
    sys.stdout.flush()

# Merge: the f32 run's adapter into the f32 base, f32 HF directory out.
merged = tmp / "merged"
peft_merge = (
    "import sys, torch\n"
    "torch.set_num_threads(int(sys.argv[4]))\n"
    "from transformers import AutoModelForCausalLM\n"
    "from peft import PeftModel\n"
    "base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)\n"
    "PeftModel.from_pretrained(base, sys.argv[2]).merge_and_unload().save_pretrained(sys.argv[3])\n")
wconv_merge = [WCONV, "qlora-merge", str(hf), str(adapter), "-o", str(merged), "--outtype", "f32", "--threads", str(THREADS)]
if "merge" in parts and not adapter.is_dir():  # merge only: a short f32 run makes the adapter
    wconv_step("f32", adapter)
rows = [] if "merge" not in parts else [
    measure("wconv qlora-merge --no-verify", wconv_merge + ["--no-verify"], repeat + 1, before=lambda: remove(merged)),
    measure("PEFT merge_and_unload + save_pretrained", [PYTHON, "-c", peft_merge, str(hf), str(adapter), str(merged), str(THREADS)],
            repeat + 1, before=lambda: remove(merged)),
    measure("wconv qlora-merge (with verification)", wconv_merge, repeat + 1, before=lambda: remove(merged)),
]
if rows:
    results["merge"] = report("qlora-merge vs PEFT merge_and_unload + save_pretrained (SmolLM2-135M f32, 2 threads)", rows)
remove(tmp)
(ROOT / "bench" / "results").mkdir(exist_ok=True)
(ROOT / "bench" / "results" / "qlora.json").write_text(json.dumps(results, indent=2) + "\n")
