#!/usr/bin/env bash
# Generates wconv's man page and shell completion scripts from its command definitions
# (swift-argument-parser does both: the generate-manual plugin and --generate-completion-script).
#
#   scripts/docs.sh man [DIR]            # DIR/wconv.1 (default: docs/man, the committed copy)
#   scripts/docs.sh completions [DIR]    # DIR/wconv.bash, DIR/_wconv, DIR/wconv.fish (default: out/completions)
#
# WCONV=path/to/wconv uses that binary instead of building one. The man page's date is the last
# commit's, so regenerating it on an unchanged tree changes nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-}
swift=${SWIFT:-swift}

wconv=${WCONV:-}
if [[ -z $wconv ]]; then
    "$swift" build --product wconv >&2
    wconv="$("$swift" build --show-bin-path)/wconv"
fi

case $what in
    man)
        dir=${2:-docs/man}
        mkdir -p "$dir"
        # The plugin's tool from the swift-argument-parser checkout (works offline once resolved).
        "$swift" build --product generate-manual >&2
        tool="$("$swift" build --show-bin-path)/generate-manual"
        [[ -x $tool ]] || tool="$("$swift" build --show-bin-path)/generate-manual-tool"
        date=$(git log -1 --format=%cs 2>/dev/null || date +%F)
        "$tool" "$wconv" --date "$date" --section 1 --output-directory "$dir"
        echo "wrote $dir/wconv.1" >&2
        ;;
    completions)
        dir=${2:-out/completions}
        mkdir -p "$dir"
        "$wconv" --generate-completion-script bash > "$dir/wconv.bash"
        "$wconv" --generate-completion-script zsh > "$dir/_wconv"
        "$wconv" --generate-completion-script fish > "$dir/wconv.fish"
        echo "wrote $dir/wconv.bash, $dir/_wconv, $dir/wconv.fish" >&2
        ;;
    *)
        echo "usage: scripts/docs.sh man|completions [DIR]" >&2
        exit 64
        ;;
esac
