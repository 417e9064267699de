#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Short libFuzzer run of one target over a copy of its checked-in seeds:
#   fuzz.sh FUZZER CORPUS_DIR SECONDS [libFuzzer options...]
# SECONDS 0: no fuzzing, each seed run once (a deterministic regression run).
# New inputs stay in a temporary directory; a crash, leak or timeout fails the run (the input
# that caused it is copied into the current directory's crash-* / leak-* / timeout-* file, with
# the state a target saved for it, fuzz-*-state-*).
set -euo pipefail
fuzzer=$(realpath "$1") seeds=$(realpath "$2") secs=$3
shift 3
out=$PWD
work=$(mktemp -d /tmp/kova-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$seeds"/* "$work/corpus/"
cd "$work"
rc=0
if [ "$secs" = 0 ]; then limit=(-runs=0); else limit=(-max_total_time="$secs"); fi
"$fuzzer" "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/" "$@" corpus >"$work/log" 2>&1 || rc=$?
tail -25 "$work/log"
for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/fuzz-*-state-*; do
    if [ -e "$f" ]; then
        cp "$f" "$out/"
        echo "fuzz.sh: kept $out/$(basename "$f")"
    fi
done
exit $rc
