#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fails when a tracked C file differs from what clang-format (with the root .clang-format) makes.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top" || exit 1
command -v clang-format >/dev/null || { echo "clang-format missing (deploy/install-deps.sh)"; exit 1; }
bad=0
n=0
while IFS= read -r f; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not clang-formatted: $f"
        bad=$((bad + 1))
    fi
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
echo "style: $((n - bad)) passed, $bad failed"
[ $bad = 0 ]
