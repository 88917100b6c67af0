#!/usr/bin/env bash
# Runs one libFuzzer target of wconv's readers (see Fuzz/README.md).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]   fuzz for SECONDS
#   scripts/fuzz.sh TARGET --run FILE...                    run given inputs once (reproduce a crash)
#   scripts/fuzz.sh --list                                  list the targets
#
# Builds the target if needed (Fuzz/build.sh), seeds its corpus from testdata (Fuzz/seeds.py) and
# keeps the growing corpus in Fuzz/.build/corpus/TARGET between runs. Crashing, leaking, slow or
# memory-hungry inputs land in Fuzz/.build/artifacts/TARGET/. The limits are the release bar:
# 2 GB resident, no single allocation above 1 GB, 10 s per input.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/Fuzz"
out="$fuzz/.build"

if [[ ${1:-} == --list || $# -lt 2 ]]; then
    [[ ${1:-} == --list ]] || echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options] | TARGET --run FILE... | --list" >&2
    (cd "$fuzz/Targets" && ls *.swift | sed 's/\.swift$//')
    [[ ${1:-} == --list ]]
    exit
fi
target=$1
shift

case $target in
    safetensors) max_len=32768 dict=json ;;
    gguf) max_len=65536 dict=gguf ;;
    config) max_len=65536 dict=json ;;
    tokenizer-json) max_len=131072 dict=json ;;
    sentencepiece) max_len=65536 dict=protobuf ;;
    model-card) max_len=16384 dict=yaml ;;
    bnb-quant-state) max_len=4096 dict=json ;;
    peft-adapter-config) max_len=8192 dict=json ;;
    *) echo "unknown target '$target' (scripts/fuzz.sh --list)" >&2; exit 64 ;;
esac

# FUZZ_NO_BUILD=1 runs the binary as it is (while another build is in progress, say).
[[ -n ${FUZZ_NO_BUILD:-} ]] || "$fuzz/build.sh" "$target"
binary="$out/fuzz-$target"
# A Swift trap should reach libFuzzer's handler directly: the runtime's backtracer reads memory in a
# way AddressSanitizer reports as a use-after-free of its own. Leak checking is off: Swift frees by
# reference counting, and the runtime's metadata and regex caches live until exit by design.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
limits=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10)

if [[ $1 == --run ]]; then
    shift
    exec "$binary" "${limits[@]}" "$@"
fi

seconds=$1
shift
seeds="$out/seeds"
[[ -d $seeds/$target ]] || python3 "$fuzz/seeds.py" "$seeds"
corpus="$out/corpus/$target"
artifacts="$out/artifacts/$target"
mkdir -p "$corpus" "$artifacts" "$seeds/$target"
# New inputs go to the first directory (corpus); the seeds are read only.
exec "$binary" "${limits[@]}" -max_total_time="$seconds" -max_len="$max_len" -dict="$fuzz/dict/$dict.dict" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" "$corpus" "$seeds/$target"
