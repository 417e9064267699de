# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared by the shell test scripts that count named checks (bash; source it, do not run it).
#
# Contract: sets passed=0 and failed=0.
# check NAME STATUS
#   STATUS 0 prints "ok - NAME" and counts a pass; anything else prints "not ok - NAME" and counts
#   a failure. Never exits.
# check_finish WHAT
#   prints "WHAT: N passed, M failed" and returns 0 only when nothing failed.
passed=0
failed=0

check() {
    if [ "$2" = 0 ]; then
        echo "ok - $1"
        passed=$((passed + 1))
    else
        echo "not ok - $1"
        failed=$((failed + 1))
    fi
}

check_finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" = 0 ]
}
