#!/usr/bin/env bash
# Builds the libFuzzer targets of wconv's file readers (see Fuzz/README.md).
#
#   Fuzz/build.sh            # every target
#   Fuzz/build.sh gguf json  # only these targets (the instrumented modules are built once either way)
#
# The modules a target needs (TensorCore, Formats) are compiled with swiftc directly, instrumented
# for libFuzzer and AddressSanitizer; each target is one file in Fuzz/Targets linked against them.
# Nothing here touches the main package's .build. Outputs go to Fuzz/.build (ignored by git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/Fuzz/.build"
mkdir -p "$out"
swiftc=${SWIFTC:-swiftc}
sanitize=${FUZZ_SANITIZE:-fuzzer,address}
# -O keeps every bounds and overflow trap (only -Ounchecked drops them) and is what users run.
common=(-swift-version 6 -O -g -sanitize="$sanitize" -parse-as-library
        -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility
        -enable-upcoming-feature InternalImportsByDefault)
cmodules=(-I "$root/Sources/CJSONC" -I "$root/Sources/CZstd" $(pkg-config --cflags-only-I json-c libzstd | sed 's/-I/-Xcc -I/g'))
libs=($(pkg-config --libs json-c libzstd) -lm)

# Rebuilds a module when any of its sources (or this script) is newer than its object file.
build_module() {
    local name=$1 dir=$2
    local object="$out/$name.o"
    if [[ -f $object ]] && [[ -z $(find "$root/Sources/$dir" "$0" -newer "$object" -print -quit) ]]; then
        return
    fi
    echo "building $name (instrumented; takes a few minutes)" >&2
    # Sorted so the module compiles identically whatever order find returns.
    local sources
    mapfile -t sources < <(find "$root/Sources/$dir" -name '*.swift' | sort)
    "$swiftc" "${common[@]}" -wmo -module-name "$name" -I "$out" "${cmodules[@]}" \
        -emit-module -emit-module-path "$out/$name.swiftmodule" -emit-object -o "$object" "${sources[@]}" \
        2> >(grep -v -e 'warning:' -e '^ *[0-9]* |' -e '^ *|' -e '^ *`-' -e '^$' >&2 || true)
    # The compiler leaves an identical object file untouched; mark it current for the check above.
    touch "$object"
}

# Builds module NAME from the given source files (paths under Sources/) when one is newer than its object.
build_files() {
    local name=$1
    shift
    local object="$out/$name.o"
    local sources=()
    for file in "$@"; do sources+=("$root/$file"); done
    if [[ -f $object ]] && [[ -z $(find "${sources[@]}" "$0" -newer "$object" -print -quit) ]]; then
        return
    fi
    echo "building $name (instrumented)" >&2
    "$swiftc" "${common[@]}" -wmo -module-name "$name" -I "$out" "${cmodules[@]}" \
        -emit-module -emit-module-path "$out/$name.swiftmodule" -emit-object -o "$object" "${sources[@]}" \
        2> >(grep -v -e 'warning:' -e '^ *[0-9]* |' -e '^ *|' -e '^ *`-' -e '^$' >&2 || true)
    touch "$object"
}

build_module TensorCore TensorCore
# Formats hashes with swift-crypto, which no reader calls: a stand-in module with the same API
# (Fuzz/Support/Crypto) spares building BoringSSL instrumented.
build_files Crypto Fuzz/Support/Crypto/Crypto.swift
build_module Formats Formats

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cd "$root/Fuzz/Targets" && ls *.swift | sed 's/\.swift$//')
fi
for target in "${targets[@]}"; do
    source="$root/Fuzz/Targets/$target.swift"
    [[ -f $source ]] || { echo "no target $target (Fuzz/Targets/$target.swift)" >&2; exit 64; }
    binary="$out/fuzz-$target"
    if [[ -f $binary ]] && [[ -z $(find "$source" "$root/Fuzz/Support" "$out/Formats.o" "$out/TensorCore.o" -newer "$binary" -print -quit) ]]; then
        continue
    fi
    echo "linking fuzz-$target" >&2
    # lld: gold warns about every ASan helper symbol.
    "$swiftc" "${common[@]}" -use-ld=lld -module-name "Fuzz_${target//-/_}" -I "$out" "${cmodules[@]}" \
        "$source" "$root"/Fuzz/Support/*.swift "$out/Formats.o" "$out/Crypto.o" "$out/TensorCore.o" \
        "${libs[@]}" -o "$binary"
done
