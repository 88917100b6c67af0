#!/usr/bin/env bash
# Runs every benchmark side by side with its peers (see README "Benchmarks").
# Needs the interop environment (scripts/interop-env.sh) and a release build.
set -euo pipefail
cd "$(dirname "$0")"
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
PY="$(../scripts/interop-env.sh --print-python | tail -n 1)"
export WCONV_PYTHON="$PY"
for b in ${BENCHMARKS:-convert quantize pack verify qlora}; do
  "$PY" "${b}_bench.py" "$@"
done
