"""Shared helpers for the benchmarks: run a command, keep its wall time and peak RSS.

Every benchmark runs the peers side by side in one process, several times, and reports the
median and the ratio to wconv, because the machine is shared and noisy.
"""
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("WCONV_CACHE", pathlib.Path.home() / ".cache" / "wconv"))
BENCH_CACHE = CACHE / "bench"
WCONV = os.environ.get("WCONV", str(ROOT / ".build" / "release" / "wconv"))
PYTHON = os.environ.get("WCONV_PYTHON", str(CACHE / "venv" / "bin" / "python"))
LLAMA_CPP = CACHE / "llama-cpp-python-src" / "vendor" / "llama.cpp"
LLAMA_BIN = CACHE / "llama.cpp-build" / "bin"


def run(cmd, env=None, cwd=None):
    """Runs `cmd`; returns (seconds, peak RSS in MB of the child)."""
    r = run_captured(cmd, env=env, cwd=cwd)
    return r["wall_s"], r["peak_rss_mb"]


def run_captured(cmd, env=None, cwd=None):
    """Runs `cmd`; returns its wall seconds, CPU seconds (user + system), peak RSS in MB and
    standard output and error.

    CPU time and peak RSS come from /usr/bin/time, not from our own wait4: Linux carries a
    forked child's high-water mark over from the parent, so a large benchmark process would
    inflate every peer's figure."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as usage:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", usage.name, *cmd], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=cwd)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
        rss_kb, user, system = usage.read().split()[-3:]
        return {"wall_s": seconds, "cpu_s": float(user) + float(system), "peak_rss_mb": int(rss_kb) / 1024,
                "stdout": proc.stdout.decode(errors="replace"), "stderr": proc.stderr.decode(errors="replace")}


def measure(name, cmd, repeat, before=None, **kw):
    times, rss = [], []
    for _ in range(repeat):
        if before:
            before()
        t, m = run(cmd, **kw)
        times.append(t)
        rss.append(m)
    return {"name": name, "median_s": statistics.median(times), "min_s": min(times), "runs": len(times),
            "peak_rss_mb": max(rss)}


def remove(path):
    p = pathlib.Path(path)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def smollm2_hf():
    out = subprocess.run([PYTHON, str(ROOT / "bench" / "prepare_smollm2.py"), str(BENCH_CACHE)],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return pathlib.Path(out)


def report(title, rows, baseline="wconv"):
    base = next(r for r in rows if r["name"].startswith(baseline))
    print(f"\n## {title}")
    print(f"| tool | median s | runs | peak RSS MB | time / wconv |")
    print(f"|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['median_s']:.3f} | {r['runs']} | {r['peak_rss_mb']:.0f} | {r['median_s'] / base['median_s']:.2f}× |")
    sys.stdout.flush()
    return {"title": title, "rows": rows}


def load_avg():
    return os.getloadavg()[0]
