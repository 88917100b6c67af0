#!/usr/bin/env bash
# Installs the Debian packages wconv builds against, if any is missing.
# Safe to run repeatedly: it does nothing when pkg-config already finds all three libraries.
set -euo pipefail

need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
for pc in openblas:libopenblas-dev libzstd:libzstd-dev json-c:libjson-c-dev; do
  mod=${pc%%:*} pkg=${pc##*:}
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod"; then need+=("$pkg"); fi
done
command -v zstd >/dev/null 2>&1 || need+=(zstd)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
