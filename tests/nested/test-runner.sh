#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Tests of kova-nested-run itself: the command's output and exit status come back, the share is
# writable at its own path, KOVA_* variables pass through, /dev/kvm is there, and a command that
# never ends is killed at the timeout with status 124.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
run="$here/kova-nested-run"
assets=${KOVA_ASSETS:-$top/build/assets}
passed=0
failed=0
check() { # check NAME CONDITION-STATUS
    if [ "$2" = 0 ]; then
        echo "ok - $1"
        passed=$((passed + 1))
    else
        echo "not ok - $1"
        failed=$((failed + 1))
    fi
}

mkdir -p "$assets"
scratch=$(mktemp -d "$assets/runner-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# 1. Status, output, share, environment, /dev/kvm — in one VM run.
out=$(cd "$scratch" && KOVA_RUNNER_PROBE=probe-42 "$run" --timeout 240 -- bash -c '
    echo "out:$KOVA_RUNNER_PROBE:$(pwd)"
    test -c /dev/kvm && echo "kvm:present"
    echo written >"$PWD/from-inside"
    echo "to stderr" >&2
    exit 7')
rc=$?
echo "$out" | sed 's/^/  | /'
check "exit status 7 comes back" "$([ $rc = 7 ]; echo $?)"
check "stdout and the working dir come back" "$(grep -qx "out:probe-42:$scratch" <<<"$out"; echo $?)"
check "stderr comes back" "$(grep -qx 'to stderr' <<<"$out"; echo $?)"
check "/dev/kvm is present" "$(grep -qx 'kvm:present' <<<"$out"; echo $?)"
check "the share is writable" "$([ "$(cat "$scratch/from-inside" 2>/dev/null)" = written ]; echo $?)"

# 2. A command that never ends: killed at the timeout, status 124, in bounded time.
start=$(date +%s)
"$run" --timeout 45 -- sleep 100000 >/dev/null 2>&1
rc=$?
took=$(($(date +%s) - start))
echo "  | hung command: status $rc after ${took}s"
check "a hung command is killed with status 124" "$([ $rc = 124 ]; echo $?)"
check "the kill comes at the timeout (45 s + grace)" "$([ $took -ge 45 ] && [ $took -le 75 ]; echo $?)"

# 3. Bad usage fails with 125 and runs nothing.
"$run" --timeout abc -- true >/dev/null 2>&1
check "bad options give status 125" "$([ $? = 125 ]; echo $?)"

echo "runner: $passed passed, $failed failed"
[ $failed = 0 ]
