#!/usr/bin/env bash
# interop.sh — run the Python interop suite (tests/interop) against the wconv binary.
#
#   WCONV=path/to/wconv scripts/interop.sh [pytest args...]
#
# WCONV defaults to .build/release/wconv (relative to the repo root); it is built with
# `swift build -c release --product wconv` when missing. The Python reference tools come from the
# cached environment of scripts/interop-env.sh (created on first use).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WCONV="${WCONV:-.build/release/wconv}"
if [[ ! -x "$WCONV" ]]; then
  echo "[interop] $WCONV missing; building it" >&2
  swift build -c release --product wconv >&2
fi
[[ -x "$WCONV" ]] || { echo "[interop] no wconv binary at $WCONV" >&2; exit 1; }
WCONV="$(cd "$(dirname "$WCONV")" && pwd)/$(basename "$WCONV")"
export WCONV

PY="$(scripts/interop-env.sh --print-python | tail -n 1)"
[[ -x "$PY" ]] || { echo "[interop] interop-env.sh did not yield a python: $PY" >&2; exit 1; }

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONDONTWRITEBYTECODE=1
exec "$PY" -m pytest tests/interop -ra -p no:cacheprovider "$@"
