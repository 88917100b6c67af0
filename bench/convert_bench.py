"""Issue 2 benchmark: HF f32 -> GGUF f16 on SmolLM2-135M, wconv against `cp` of the same input
and llama.cpp's convert_hf_to_gguf.py; peak RSS, and RSS on a synthetic >= 2 GB model."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from common import BENCH_CACHE, LLAMA_CPP, PYTHON, ROOT, WCONV, load_avg, measure, remove, report, smollm2_hf

repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
# BENCH_REALTIME=1 runs every command under SCHED_FIFO (`chrt -f 1`, needs root), as pack_bench.py
# does: on the shared machine each tool is then measured as on an idle one.
REALTIME = os.environ.get("BENCH_REALTIME") == "1"


def rt(cmd):
    return ["chrt", "-f", "1"] + cmd if REALTIME else cmd


hf = smollm2_hf()
tmp = pathlib.Path(tempfile.mkdtemp(prefix="wconv-bench-"))
out = tmp / "out.gguf"
weights = hf / "model.safetensors"
# Warm the page cache so every tool reads from memory.
subprocess.run(["cat", str(weights)], stdout=subprocess.DEVNULL, check=True)

results = {"load_average_at_start": load_avg(), "realtime": REALTIME}
rows = [
    measure("wconv convert --outtype f16", rt([WCONV, "convert", str(hf), "-o", str(out), "--outtype", "f16"]), repeat,
            before=lambda: remove(out)),
    # Without the SHA-256 of the 541 MB input and of the output (provenance record and manifest).
    measure("wconv convert --outtype f16 --no-provenance",
            rt([WCONV, "convert", str(hf), "-o", str(out), "--outtype", "f16", "--no-provenance"]), repeat,
            before=lambda: remove(out)),
    measure("cp model.safetensors", rt(["cp", str(weights), str(tmp / "copy.bin")]), repeat, before=lambda: remove(tmp / "copy.bin")),
    measure("cp + sync", rt(["sh", "-c", f"cp '{weights}' '{tmp}/copy.bin' && sync -d '{tmp}/copy.bin'"]), repeat,
            before=lambda: remove(tmp / "copy.bin")),
    measure("convert_hf_to_gguf.py --outtype f16",
            rt([PYTHON, str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(hf), "--outfile", str(tmp / "py.gguf"), "--outtype", "f16"]),
            max(1, repeat // 3), before=lambda: remove(tmp / "py.gguf")),
]
results["smollm2"] = report("SmolLM2-135M HF f32 -> GGUF f16", rows)

# Synthetic model of >= 2 GB: peak RSS must not grow with model size.
synth = BENCH_CACHE / "synthetic-2g"
subprocess.run([PYTHON, str(ROOT / "bench" / "make_synthetic.py"), str(synth)], check=True)
out2 = tmp / "synth.gguf"
rows2 = [measure("wconv convert --outtype f16", rt([WCONV, "convert", str(synth), "-o", str(out2), "--outtype", "f16"]), 1,
                 before=lambda: remove(out2))]
results["synthetic"] = report(f"synthetic LLaMA, {sum(f.stat().st_size for f in synth.glob('*.safetensors')) / 1e9:.1f} GB f32 -> GGUF f16", rows2)
remove(tmp)
(ROOT / "bench" / "results").mkdir(exist_ok=True)
(ROOT / "bench" / "results" / "convert.json").write_text(json.dumps(results, indent=2) + "\n")
