#!/usr/bin/env bash
# A release job on one model, as a CI pipeline runs it (README "In a release pipeline"):
# quantize, verify against the original with thresholds as the gate, write the manifest, pack,
# and check the archive. Every step's exit code decides; nothing is published past a failure.
#
#   scripts/release-example.sh MODEL OUTDIR [TYPE]
#
#   MODEL   the original: a Hugging Face directory or a GGUF file
#   OUTDIR  a new directory for the release (refused if it exists: a rerun must start clean)
#   TYPE    llama.cpp file type (default Q8_0)
#
# Environment: WCONV (the binary, default `wconv` on PATH), MAX_KLD (0.05), MIN_TOP1 (0.9),
# CTX (512), VERIFY_ARGS (more verify options, e.g. "--text eval.txt"), LEVEL (zstd level, 3).
# Exit status: 0 released; 1 the quality gate failed (verify outside its thresholds, or the
# packed archive does not match its manifest); anything else is wconv's code for the failure
# (64 usage, 65 malformed input, 66 missing input, 69 unsupported, 73 cannot write, 74 I/O).
set -uo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,/^set/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 64
fi
model=$1 out=$2 type=${3:-Q8_0}
wconv=${WCONV:-wconv}
name=$(basename "${model%.gguf}")

# Runs one step; on failure says which and what the code means, and stops with that code.
step() {
    local label=$1
    shift
    "$@"
    local status=$?
    if [[ $status -ne 0 ]]; then
        case $status in
            1) meaning="check failed (the gate)" ;;
            64) meaning="usage" ;;
            65) meaning="malformed input" ;;
            66) meaning="missing input" ;;
            69) meaning="unsupported input" ;;
            73) meaning="cannot write output" ;;
            74) meaning="I/O error reading an input" ;;
            130 | 143) meaning="interrupted" ;;
            *) meaning="internal error" ;;
        esac
        echo "release: $label failed with exit $status ($meaning); nothing released" >&2
        exit "$status"
    fi
}

[[ -e $out ]] && { echo "release: $out exists; start from a clean directory" >&2; exit 73; }
mkdir -p "$out/release"
gguf="$out/release/$name.$type.gguf"

# 1. Quantize. --json: the result (outputs, sizes, types) is kept as a build record. The GGUF
#    carries its provenance inside (general.wconv.*) and NAME.gguf.wconv-manifest.json beside it.
step quantize "$wconv" quantize "$model" -o "$gguf" --type "$type" --json --quiet > "$out/quantize.json"

# 2. The gate: KL divergence and top-1 agreement against the original. Exit 1 outside the
#    thresholds; the report is kept either way. --record adds the result (the original's
#    SHA-256s, the options, the summary) to the GGUF's manifest, so the release carries it.
# shellcheck disable=SC2086  # VERIFY_ARGS is a list of options
step verify "$wconv" verify "$model" "$gguf" --ctx "${CTX:-512}" --max-kld "${MAX_KLD:-0.05}" \
    --min-top1 "${MIN_TOP1:-0.9}" ${VERIFY_ARGS:-} --json "$out/release/verify.json" --record > "$out/verify.txt"

# 3. The release manifest: SHA-256 of every released file, the GGUF's manifest (now with the
#    verify result) included, so the result is vouched for like the weights. It comes after
#    verify: a file changed after checksum would fail the pack.
step checksum "$wconv" checksum "$out/release" --json > "$out/checksum.json"

# 4. Pack: one tar.zst with the manifest as its first member.
step pack "$wconv" pack "$out/release" -o "$out/$name.$type.tar.zst" --level "${LEVEL:-3}" --json > "$out/pack.json"

# 5. Check what will be published: unpack and verify every SHA-256 against the manifest.
step unpack "$wconv" unpack "$out/$name.$type.tar.zst" -o "$out/unpacked" --json > "$out/unpack.json"
rm -rf "$out/unpacked"

echo "release: $out/$name.$type.tar.zst ($(grep -o '"mean_kld": [^,]*' "$out/release/verify.json"))" >&2
