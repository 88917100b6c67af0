#!/usr/bin/env bash
# interop-env.sh — create/update the cached Python + llama.cpp environment used by
# wconv's interop tests and fixture generator (testdata/scripts/make_fixtures.py).
#
# Cache root: ${WCONV_CACHE:-$HOME/.cache/wconv}
#   venv/                     Python venv with the pinned reference tools
#   llama-cpp-python-src/     extracted llama-cpp-python sdist (vendor/llama.cpp has
#                             convert_hf_to_gguf.py, convert_lora_to_gguf.py, gguf-py)
#   llama.cpp-build/bin/      llama-quantize, llama-perplexity built from that tree
#   stamps/                   one stamp per step; a step reruns only if its pins change
#
# Usage:
#   scripts/interop-env.sh                 # prints the venv path on the last stdout line
#   scripts/interop-env.sh --print-python  # prints the venv python path instead
#   scripts/interop-env.sh --print-cache   # prints the cache root instead
# Progress/log output goes to stderr; stdout carries only the final path.
#
# Idempotent: a rerun with everything in place returns in well under a second. A cold run
# takes ~20-25 min on 2 cores (pip ~2 min, sdist download ~2 min, llama-cpp-python build ~7 min,
# llama.cpp tools ~10 min).
# Works on a fresh Debian machine as root (installs cmake/build-essential/python3-venv
# with apt-get when missing). Nothing here downloads model weights.
set -euo pipefail

MODE=venv
for arg in "$@"; do
  case "$arg" in
    --print-python) MODE=python ;;
    --print-cache) MODE=cache ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "interop-env.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

# ---- pins -------------------------------------------------------------------------
# torch: pinned to a version that exists both on PyPI and (on the project's machines)
# as a CPU-only wheel in pip's configured find-links; pip prefers 2.13.0+cpu when it is
# available and otherwise falls back to PyPI's default (CUDA-dependent, ~4 GB) wheel.
PY_PINS=(
  "numpy==2.3.5"
  "safetensors==0.8.0"
  "gguf==0.19.0"
  "torch==2.13.0"
  "transformers==5.24.0"
  "tokenizers==0.23.3"
  "sentencepiece==0.2.3"
  "protobuf==7.36.2"
  "bitsandbytes==0.50.2"
  "peft==0.21.2"
  "pytest==9.2.0"
)
LLAMA_CPP_PY_VERSION="0.3.36"
# Plain, portable CPU build (no BLAS/CUDA/Metal, no -march=native).
LLAMA_CMAKE_FLAGS=(-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON)
LLAMA_TOOLS=(llama-quantize llama-perplexity)

CACHE="${WCONV_CACHE:-$HOME/.cache/wconv}"
VENV="$CACHE/venv"
PY="$VENV/bin/python"
SRC="$CACHE/llama-cpp-python-src"
BUILD="$CACHE/llama.cpp-build"
STAMPS="$CACHE/stamps"
JOBS="$(nproc 2>/dev/null || echo 2)"

log() { echo "[interop-env] $*" >&2; }

finish() {
  case "$MODE" in
    python) echo "$PY" ;;
    cache) echo "$CACHE" ;;
    *) echo "$VENV" ;;
  esac
}

stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

PIP_KEY="pins:${PY_PINS[*]}"
LCP_KEY="llama-cpp-python==$LLAMA_CPP_PY_VERSION cmake:-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF"
SRC_KEY="sdist:llama-cpp-python==$LLAMA_CPP_PY_VERSION"
BUILD_KEY="build:$LLAMA_CPP_PY_VERSION ${LLAMA_CMAKE_FLAGS[*]} ${LLAMA_TOOLS[*]}"

all_done() {
  [[ -x "$PY" ]] || return 1
  stamp_ok pip "$PIP_KEY" || return 1
  stamp_ok llama-cpp-python "$LCP_KEY" || return 1
  stamp_ok src "$SRC_KEY" || return 1
  [[ -n "$(ls "$CACHE"/sdist/llama_cpp_python-"$LLAMA_CPP_PY_VERSION".tar.gz 2>/dev/null)" ]] || return 1
  [[ -f "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" ]] || return 1
  stamp_ok build "$BUILD_KEY" || return 1
  local t
  for t in "${LLAMA_TOOLS[@]}"; do [[ -x "$BUILD/bin/$t" ]] || return 1; done
  return 0
}

if all_done; then
  finish
  exit 0
fi

mkdir -p "$CACHE" "$STAMPS"

# One setup at a time (CI and a developer, or two test runs, may start this together).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "another interop-env.sh is running; waiting for it"
    flock 9
  fi
  if all_done; then finish; exit 0; fi
fi

# ---- system packages --------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not available; please install: $*"; return 1
  fi
  local SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    $SUDO apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
{ command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || need_pkgs+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [[ ! -x "$PY" ]] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need_pkgs+=(python3-venv)
fi
if ((${#need_pkgs[@]})); then apt_install "${need_pkgs[@]}"; fi

# ---- venv ---------------------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
  log "creating venv at $VENV"
  python3 -m venv "$VENV" >&2
  "$PY" -m pip install -q --upgrade pip setuptools wheel >&2
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! stamp_ok pip "$PIP_KEY"; then
  log "pip install ${PY_PINS[*]}"
  "$PY" -m pip install --upgrade-strategy only-if-needed "${PY_PINS[@]}" >&2
  stamp_set pip "$PIP_KEY"
fi

# ---- llama-cpp-python sdist (converter scripts + gguf-py), extracted -------------------------
SDIST_DIR="$CACHE/sdist"
sdist_tarball() { ls "$SDIST_DIR"/llama_cpp_python-"$LLAMA_CPP_PY_VERSION".tar.gz 2>/dev/null | head -1; }
if [[ -z "$(sdist_tarball)" ]]; then
  log "downloading llama-cpp-python==$LLAMA_CPP_PY_VERSION sdist into $SDIST_DIR"
  rm -rf "$SDIST_DIR.tmp"; mkdir -p "$SDIST_DIR.tmp"
  "$PY" -m pip download --no-binary :all: --no-deps -d "$SDIST_DIR.tmp" \
    "llama-cpp-python==$LLAMA_CPP_PY_VERSION" >&2
  rm -rf "$SDIST_DIR"; mv "$SDIST_DIR.tmp" "$SDIST_DIR"
fi
TARBALL="$(sdist_tarball)"
[[ -n "$TARBALL" ]] || { log "sdist not found in $SDIST_DIR"; exit 1; }

if ! stamp_ok src "$SRC_KEY" || [[ ! -f "$SRC/vendor/llama.cpp/convert_hf_to_gguf.py" ]]; then
  log "extracting $(basename "$TARBALL") into $SRC"
  rm -rf "$SRC.tmp"; mkdir -p "$SRC.tmp"
  tar -xzf "$TARBALL" -C "$SRC.tmp" --strip-components=1
  [[ -f "$SRC.tmp/vendor/llama.cpp/convert_hf_to_gguf.py" ]] || { log "sdist lacks vendor/llama.cpp/convert_hf_to_gguf.py"; exit 1; }
  rm -rf "$SRC"; mv "$SRC.tmp" "$SRC"
  stamp_set src "$SRC_KEY"
  rm -f "$STAMPS/build"
fi

# ---- llama-cpp-python (compiled from that sdist) ----------------------------------------------
if ! stamp_ok llama-cpp-python "$LCP_KEY"; then
  log "building llama-cpp-python==$LLAMA_CPP_PY_VERSION from sdist (several minutes)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DLLAMA_CURL=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" FORCE_CMAKE=1 \
    "$PY" -m pip install --no-cache-dir "$TARBALL" >&2
  "$PY" -c "import llama_cpp" >&2
  stamp_set llama-cpp-python "$LCP_KEY"
fi

# ---- llama.cpp tools --------------------------------------------------------------------
tools_ok=1
for t in "${LLAMA_TOOLS[@]}"; do [[ -x "$BUILD/bin/$t" ]] || tools_ok=0; done
if ! stamp_ok build "$BUILD_KEY" || [[ $tools_ok == 0 ]]; then
  log "building ${LLAMA_TOOLS[*]} in $BUILD (several minutes)"
  cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
    "${LLAMA_CMAKE_FLAGS[@]}" >&2
  cmake --build "$BUILD" --config Release -j "$JOBS" --target "${LLAMA_TOOLS[@]}" >&2
  for t in "${LLAMA_TOOLS[@]}"; do
    [[ -x "$BUILD/bin/$t" ]] || { log "missing $BUILD/bin/$t after build"; exit 1; }
  done
  stamp_set build "$BUILD_KEY"
fi

all_done || { log "environment incomplete after setup"; exit 1; }
log "ready: $VENV"
finish
