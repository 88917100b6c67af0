"""Issue 4 benchmark, side by side on SmolLM2-135M at 2 threads.

(a) Prompt evaluation of 512 tokens (the first 512 of testdata/eval/default.txt): wconv
    (`wconv run HF --tokens T.json -n 0 --json`, its `prompt_eval_seconds`: the one forward
    call over the prompt, streaming every layer's weights from the file, logits of the last
    row only) against transformers fp32 (eager attention, one forward under no_grad) and
    llama-cpp-python on the F32 GGUF (n_batch 512, logits_all off, `eval` of the tokens); each
    peer times only its evaluation call, after loading, in its own process (bench/verify_peers.py).
    Peak RSS is the whole process's (loading included), from /usr/bin/time.
(b) A whole `wconv verify F32.gguf Q8_0.gguf` on a ~1.2k-token text at --ctx 512 (2 chunks,
    with its per-tensor and per-layer comparisons) against llama-perplexity's two runs (base
    run with --kl-divergence-base on the F32 GGUF, then --kl-divergence on the Q8_0), whole
    commands: wall, CPU (user + system), peak RSS, and the KLD / top-1 numbers both report.

The tools run round-robin (one run of each per round) so they share the machine's load alike;
medians over the rounds. Results go to bench/results/verify.json.

Usage: python verify_bench.py [ROUNDS]   (needs a release build: swift build -c release)
"""
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

from common import LLAMA_BIN, PYTHON, ROOT, WCONV, load_avg, remove, run_captured, smollm2_hf

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
threads = 2
prompt_tokens = 512
hf = smollm2_hf()
tmp = pathlib.Path(tempfile.mkdtemp(prefix="wconv-verify-bench-"))
f32, q8 = tmp / "f32.gguf", tmp / "q8_0.gguf"
subprocess.run([WCONV, "convert", str(hf), "-o", str(f32), "--outtype", "f32"], check=True, capture_output=True)
subprocess.run([WCONV, "quantize", str(f32), "-o", str(q8), "--type", "Q8_0"], check=True, capture_output=True)
for f in (hf / "model.safetensors", f32, q8):
    subprocess.run(["cat", str(f)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache


def tokenize(path):
    out = subprocess.run([WCONV, "tokenize", str(hf), "--text", str(path), "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["tokens"]


# The prompt: real text, not random ids.
corpus = (ROOT / "testdata" / "eval" / "default.txt").read_text()
prompt = tmp / "prompt.json"
prompt.write_text(json.dumps(tokenize(ROOT / "testdata" / "eval" / "default.txt")[:prompt_tokens]))
# The verify text: whole words from the start of the same text, a little over two chunks of 512.
text = tmp / "text.txt"
text.write_text(corpus[:5200].rsplit(" ", 1)[0] + "\n")
text_tokens = len(tokenize(text))
assert text_tokens >= 2 * 512, text_tokens

results = {"load_average_at_start": load_avg(), "threads": threads, "rounds": rounds,
           "prompt_tokens": prompt_tokens, "verify_text_tokens": text_tokens}


def peer(kind, model):
    return [PYTHON, str(ROOT / "bench" / "verify_peers.py"), kind, str(model), str(prompt), str(threads)]


def wconv_run():
    return [WCONV, "run", str(hf), "--tokens", str(prompt), "-n", "0", "--json", "--threads", str(threads)]


def wconv_eval_seconds(stdout):
    t = json.loads(stdout)["timings"]
    return t["prompt_eval_seconds"], t["prompt_eval_cpu_seconds"]


def peer_eval_seconds(stdout):
    wall, cpu = stdout.split()[-2:]
    return float(wall), float(cpu)


# (a) prompt evaluation
prompt_rows = [
    ("wconv run (HF f32 directory)", wconv_run(), wconv_eval_seconds),
    ("transformers fp32, eager", peer("transformers", hf), peer_eval_seconds),
    ("llama-cpp-python, F32 GGUF", peer("llama-cpp", f32), peer_eval_seconds),
]
samples = {name: [] for name, _, _ in prompt_rows}
loads = []
for _ in range(rounds):
    loads.append(load_avg())
    for name, cmd, parse in prompt_rows:
        r = run_captured(cmd)
        wall, cpu = parse(r["stdout"])
        samples[name].append({"eval_s": wall, "eval_cpu_s": cpu, "process_wall_s": r["wall_s"],
                              "peak_rss_mb": r["peak_rss_mb"]})


def summarize(name, runs):
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    return {"name": name, "runs": len(runs), "eval_s": med["eval_s"], "eval_cpu_s": med["eval_cpu_s"],
            "tokens_per_s": prompt_tokens / med["eval_s"], "tokens_per_cpu_s": prompt_tokens / med["eval_cpu_s"],
            "process_wall_s": med["process_wall_s"], "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "samples": runs}


prompt_summary = [summarize(name, samples[name]) for name, _, _ in prompt_rows]
base = prompt_summary[0]
print(f"\n## Prompt evaluation, {prompt_tokens} tokens, {threads} threads, SmolLM2-135M "
      f"(medians of {rounds}; load average {statistics.median(loads):.1f})")
print("| tool | eval s | eval CPU s | tokens/s | wconv speed-up (wall) | wconv speed-up (CPU) | peak RSS MB | RSS / peer's |")
print("|---|---|---|---|---|---|---|---|")
for r in prompt_summary:
    print(f"| {r['name']} | {r['eval_s']:.2f} | {r['eval_cpu_s']:.2f} | {r['tokens_per_s']:.0f} | "
          f"{r['eval_s'] / base['eval_s']:.2f}× | {r['eval_cpu_s'] / base['eval_cpu_s']:.2f}× | {r['peak_rss_mb']:.0f} | "
          f"{base['peak_rss_mb'] / r['peak_rss_mb']:.2f} |")
results["prompt_eval"] = {"load_average_median": statistics.median(loads), "rows": prompt_summary}
sys.stdout.flush()


# (b) whole verify against llama-perplexity's two runs
def llama_numbers(output):
    def grab(label):
        m = re.search(label + r"\s*:\s*([-0-9.]+)", output)
        return float(m.group(1)) if m else None
    top1 = grab(r"Same top p")
    return {"mean_kld": grab(r"Mean\s+KLD"), "median_kld": grab(r"Median\s+KLD"), "p99_kld": grab(r"99\.0%\s+KLD"),
            "max_kld": grab(r"Maximum KLD"), "top1_agreement": top1 / 100 if top1 is not None else None,
            "ppl_ref": grab(r"Mean PPL\(base\)"), "ppl_cand": grab(r"Mean PPL\(Q\)")}


out_json = tmp / "verify.json"
kld_base = tmp / "base.kld"
perplexity = str(LLAMA_BIN / "llama-perplexity")
verify_samples = {"wconv": [], "llama": []}
loads = []
for _ in range(max(1, rounds // 2 + 1)):
    loads.append(load_avg())
    r = run_captured([WCONV, "verify", str(f32), str(q8), "--text", str(text), "--ctx", "512", "--threads", str(threads),
                      "--json", str(out_json), "--force"])
    report = json.loads(out_json.read_text())
    verify_samples["wconv"].append({"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"],
                                    "numbers": {k: report[k] for k in ("mean_kld", "median_kld", "p99_kld", "max_kld",
                                                                       "top1_agreement", "ppl_ref", "ppl_cand")},
                                    "tokens_scored": report["tokens_scored"]})
    remove(kld_base)
    common_args = ["-f", str(text), "-c", "512", "-t", str(threads), "--kl-divergence-base", str(kld_base)]
    first = run_captured([perplexity, "-m", str(f32), *common_args])
    second = run_captured([perplexity, "-m", str(q8), *common_args, "--kl-divergence"])
    verify_samples["llama"].append({"wall_s": first["wall_s"] + second["wall_s"], "cpu_s": first["cpu_s"] + second["cpu_s"],
                                    "peak_rss_mb": max(first["peak_rss_mb"], second["peak_rss_mb"]),
                                    "base_run": {"wall_s": first["wall_s"], "cpu_s": first["cpu_s"], "peak_rss_mb": first["peak_rss_mb"]},
                                    "kld_run": {"wall_s": second["wall_s"], "cpu_s": second["cpu_s"], "peak_rss_mb": second["peak_rss_mb"]},
                                    "numbers": llama_numbers(second["stdout"] + second["stderr"]),
                                    "base_file_mb": kld_base.stat().st_size / 2**20})


def verify_summary(name, runs):
    return {"name": name, "runs": len(runs), "wall_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "numbers": runs[-1]["numbers"], "samples": runs}


wconv_v = verify_summary("wconv verify (tensors + layers + logits)", verify_samples["wconv"])
llama_v = verify_summary("llama-perplexity base + --kl-divergence", verify_samples["llama"])
print(f"\n## verify f32 vs Q8_0, {text_tokens}-token text, --ctx 512, {threads} threads "
      f"(medians of {wconv_v['runs']}; load average {statistics.median(loads):.1f})")
print("| tool | wall s | CPU s | peak RSS MB | mean KLD | median KLD | p99 KLD | max KLD | top-1 | PPL ref | PPL cand |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for v in (wconv_v, llama_v):
    n = v["numbers"]

    def f(x, spec):
        return "–" if x is None else format(x, spec)
    print(f"| {v['name']} | {v['wall_s']:.2f} | {v['cpu_s']:.2f} | {v['peak_rss_mb']:.0f} | {f(n['mean_kld'], '.2e')} | "
          f"{f(n['median_kld'], '.2e')} | {f(n['p99_kld'], '.2e')} | {f(n['max_kld'], '.2e')} | "
          f"{f(None if n['top1_agreement'] is None else n['top1_agreement'] * 100, '.2f')} % | {f(n['ppl_ref'], '.3f')} | "
          f"{f(n['ppl_cand'], '.3f')} |")
print(f"llama-perplexity / wconv: wall {llama_v['wall_s'] / wconv_v['wall_s']:.2f}×, CPU {llama_v['cpu_s'] / wconv_v['cpu_s']:.2f}×, "
      f"peak RSS {llama_v['peak_rss_mb'] / wconv_v['peak_rss_mb']:.2f}×; base logits file "
      f"{verify_samples['llama'][-1]['base_file_mb']:.0f} MB")
results["verify"] = {"load_average_median": statistics.median(loads), "rows": [wconv_v, llama_v]}

remove(tmp)
(ROOT / "bench" / "results").mkdir(exist_ok=True)
(ROOT / "bench" / "results" / "verify.json").write_text(json.dumps(results, indent=2) + "\n")
