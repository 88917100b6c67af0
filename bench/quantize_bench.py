"""Issue 3 benchmark, side by side on SmolLM2-135M: NF4 + double quantization against
bitsandbytes' quantize_4bit (CPU), Q8_0/Q4_0 against gguf-py, and whole-model Q8_0, Q4_0, Q4_K_M
against llama-quantize (same f32 GGUF input; output bytes compared), at 1 and 2 threads."""
import hashlib
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

from common import LLAMA_BIN, PYTHON, ROOT, WCONV, load_avg, measure, remove, report, smollm2_hf

repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 3
hf = smollm2_hf()
tmp = pathlib.Path(tempfile.mkdtemp(prefix="wconv-qbench-"))
f32 = tmp / "f32.gguf"
subprocess.run([WCONV, "convert", str(hf), "-o", str(f32), "--outtype", "f32"], check=True, capture_output=True)
results = {"load_average_at_start": load_avg()}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def peer_seconds(kind, threads):
    times = [float(subprocess.run([PYTHON, str(ROOT / "bench" / "quantize_peers.py"), kind, str(hf), str(threads)],
                                  check=True, capture_output=True, text=True).stdout.split()[-1]) for _ in range(repeat)]
    return statistics.median(times)


for threads in (1, 2):
    out = tmp / "nf4"
    rows = [measure(f"wconv quantize --nf4 (whole command), {threads} thread(s)",
                    [WCONV, "quantize", str(hf), "-o", str(out), "--nf4", "--threads", str(threads)], repeat,
                    before=lambda: remove(out))]
    rows.append({"name": f"bitsandbytes quantize_4bit nf4+DQ (calls only), {threads} thread(s)",
                 "median_s": peer_seconds("bnb-nf4", threads), "runs": repeat, "peak_rss_mb": float("nan")})
    results[f"nf4_{threads}"] = report(f"NF4 + double quant, SmolLM2-135M, {threads} thread(s)", rows)

for qtype in ("Q8_0", "Q4_0"):
    out = tmp / f"{qtype}.gguf"
    rows = [measure(f"wconv quantize --type {qtype} (whole command)", [WCONV, "quantize", str(f32), "-o", str(out), "--type", qtype, "--threads", "1"],
                    repeat, before=lambda: remove(out)),
            {"name": f"gguf-py quants.quantize {qtype} (calls only)", "median_s": peer_seconds(f"gguf-{qtype}", 1),
             "runs": repeat, "peak_rss_mb": float("nan")}]
    results[f"gguf_py_{qtype}"] = report(f"{qtype} vs gguf-py, 1 thread", rows)

for qtype in ("Q8_0", "Q4_0", "Q4_K_M"):
    for threads in (1, 2):
        ours, theirs = tmp / f"w-{qtype}.gguf", tmp / f"l-{qtype}.gguf"
        rows = [measure(f"wconv quantize --type {qtype}", [WCONV, "quantize", str(f32), "-o", str(ours), "--type", qtype, "--threads", str(threads)],
                        repeat, before=lambda: remove(ours)),
                measure(f"llama-quantize {qtype}", [str(LLAMA_BIN / "llama-quantize"), str(f32), str(theirs), qtype, str(threads)],
                        repeat, before=lambda: remove(theirs))]
        same = sha256(ours) == sha256(theirs)
        results[f"llama_{qtype}_{threads}"] = report(f"whole model {qtype}, {threads} thread(s); identical bytes: {same}", rows)
remove(tmp)
(ROOT / "bench" / "results").mkdir(exist_ok=True)
(ROOT / "bench" / "results" / "quantize.json").write_text(json.dumps(results, indent=2) + "\n")
