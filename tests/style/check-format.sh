#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fails when a tracked C file differs from what clang-format (with the root .clang-format) makes.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top" || exit 1
command -v clang-format >/dev/null || { echo "clang-format missing (deploy/install-deps.sh)"; exit 1; }
mapfile -t files < <(git ls-files '*.c' '*.h')
[ ${#files[@]} -gt 0 ] || { echo "style: no C files found"; exit 1; }
# One clang-format process for all files; it names each file that needs changes.
bad=$(clang-format --dry-run -Werror "${files[@]}" 2>&1 | grep -oE '^[^:]+\.[ch]:' | sort -u | tr -d ':')
n_bad=$(printf '%s' "$bad" | grep -c . || true)
[ -n "$bad" ] && printf 'not clang-formatted: %s\n' $bad
echo "style: $((${#files[@]} - n_bad)) passed, $n_bad failed"
[ "$n_bad" = 0 ]
