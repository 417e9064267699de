#!/bin/bash
# Short libFuzzer run over the qcow2 parser: fuzz.sh FUZZER CORPUS_DIR SECONDS
set -euo pipefail
fuzzer=$(realpath "$1") seeds=$(realpath "$2") secs=$3
work=$(mktemp -d /tmp/kova-qcow2-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$seeds"/* "$work/corpus/"
cd "$work"
"$fuzzer" -max_total_time="$secs" -max_len=131072 -rss_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 corpus 2>&1 | tail -15
