"""Shared fixtures for the interop suite: load what the Swift `wconv` CLI writes in the Python
reference tools (gguf-py, safetensors, transformers, llama-cpp-python) and compare with the
goldens under testdata/golden/ (made by testdata/scripts/make_fixtures.py).

Environment:
  WCONV   path of the wconv binary (default: <repo>/.build/release/wconv)
Tests that need a subcommand the binary does not have yet are skipped (checked with
`$WCONV help <sub>`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "testdata"
GOLDEN = TESTDATA / "golden"

MODELS = ["tiny-llama-spm", "tiny-llama-bpe"]
OUTTYPES = ["f32", "f16", "bf16"]


def wconv_path() -> Path:
    p = Path(os.environ.get("WCONV") or (REPO / ".build" / "release" / "wconv"))
    if not p.is_absolute():
        p = REPO / p
    return p


@lru_cache(maxsize=None)
def has_subcommand(sub: str) -> bool:
    exe = wconv_path()
    if not exe.is_file():
        return False
    try:
        r = subprocess.run([str(exe), "help", sub], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    # `wconv help <unknown>` prints the root help with exit 0 (swift-argument-parser), and the
    # root help mentions words like "quantize" in its overview: require the subcommand's usage line.
    return r.returncode == 0 and re.search(rf"usage:\s*wconv\s+{re.escape(sub)}\b", r.stdout + r.stderr, re.I) is not None


def require(sub: str) -> None:
    if not wconv_path().is_file():
        pytest.skip(f"wconv binary not found at {wconv_path()}")
    if not has_subcommand(sub):
        pytest.skip(f"wconv has no '{sub}' subcommand yet")


def run_wconv(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [str(wconv_path()), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {r.returncode}\nstdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}")
    return r


def golden_tokens(model: str) -> list[int]:
    return json.loads((GOLDEN / f"{model}.tokens.json").read_text())["tokens"]


def golden_meta(model: str) -> dict:
    return json.loads((GOLDEN / f"{model}.tokens.json").read_text())


def golden_logits(model: str) -> np.ndarray:
    return np.load(GOLDEN / f"{model}.logits_f32.npy")


@pytest.fixture(scope="session")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wconv-interop")


class Converted:
    """Runs each wconv conversion at most once per session."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[tuple, Path] = {}

    def gguf(self, model: str, outtype: str) -> Path:
        require("convert")
        key = ("gguf", model, outtype)
        if key not in self.cache:
            out = self.root / f"{model}.{outtype}.gguf"
            run_wconv("convert", TESTDATA / model, "-o", out, "--outtype", outtype, "--force")
            assert out.is_file(), f"wconv convert did not write {out}"
            self.cache[key] = out
        return self.cache[key]

    def hf_from_gguf(self, model: str, source: str) -> Path:
        """GGUF -> HF directory. source 'golden': llama.cpp converter's f32 GGUF; 'wconv': our f32 GGUF."""
        require("convert")
        key = ("hf", model, source)
        if key not in self.cache:
            src = GOLDEN / f"{model}.f32.gguf" if source == "golden" else self.gguf(model, "f32")
            out = self.root / f"{model}-hf-from-{source}"
            if out.exists():
                shutil.rmtree(out)
            run_wconv("convert", src, "-o", out, "--force")
            assert (out / "config.json").is_file(), f"no config.json in {out}: {sorted(p.name for p in out.iterdir())}"
            self.cache[key] = out
        return self.cache[key]


@pytest.fixture(scope="session")
def converted(outdir) -> Converted:
    return Converted(outdir)
