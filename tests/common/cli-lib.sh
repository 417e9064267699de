# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared by the tests/*/cli.sh scripts (bash; source it, do not run it): checks of one program's
# exit status and output.
#
# Contract: source it after setting cli_prog (the program under test, a path). It then sets
#   tmp    a fresh temporary directory, removed when the script exits (an EXIT trap);
#   fail   0, set to 1 by any failed check.
# expect STATUS PATTERN -- ARGS...
#   runs "$cli_prog" ARGS...; passes when it exits with STATUS and its stdout or stderr matches the
#   extended regex PATTERN ("ok   PATTERN"), else prints "FAIL: PROG ARGS → status ..." with the
#   output and sets fail=1. Never exits.
# cli_finish MESSAGE
#   prints MESSAGE when every check passed, and exits with status $fail (0 or 1).
: "${cli_prog:?set cli_prog before sourcing cli-lib.sh}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

expect() { # expect STATUS PATTERN -- ARGS...
    local want=$1 pat=$2
    shift 3
    "$cli_prog" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" != "$want" ] || ! grep -qE -- "$pat" "$tmp/out" "$tmp/err"; then
        echo "FAIL: $(basename "$cli_prog") $* → status $rc (want $want), output:"
        cat "$tmp/out" "$tmp/err"
        fail=1
    else
        echo "ok   $pat"
    fi
}

cli_finish() { # cli_finish MESSAGE
    [ "$fail" = 0 ] && echo "$1"
    exit "$fail"
}
