#!/bin/bash
# kova-img command line: create/info/check behaviour, exit codes and errors for bad input.
# cli.sh KOVA_IMG
set -uo pipefail
kimg=$(realpath "$1")
work=$(mktemp -d /tmp/kova-qcow2-cli.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0 n=0

# expect EXIT_CODE PATTERN(in stdout+stderr, may be empty) -- command...
expect() {
    local want=$1 pat=$2; shift 3
    n=$((n + 1))
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL: '$*' exit $rc, expected $want: $out"; fails=$((fails + 1))
    elif [ -n "$pat" ] && ! grep -q -- "$pat" <<< "$out"; then
        echo "FAIL: '$*' output lacks '$pat': $out"; fails=$((fails + 1))
    else
        echo "ok: $*"
    fi
}

expect 1 "usage" -- "$kimg"
expect 1 "unknown command" -- "$kimg" frobnicate
expect 1 "invalid size" -- "$kimg" create x.qcow2 12Q
expect 1 "invalid size" -- "$kimg" create x.qcow2 -5
expect 1 "SIZE is required" -- "$kimg" create x.qcow2
expect 1 "needs -F" -- "$kimg" create -b base.raw x.qcow2 1M
expect 1 "unknown backing format" -- "$kimg" create -b base.raw -F vmdk x.qcow2 1M
expect 1 "invalid cluster size" -- "$kimg" create -c 3000 x.qcow2 1M
expect 1 "No such file" -- "$kimg" create -b missing.raw -F raw x.qcow2 1M
expect 1 "No such file" -- "$kimg" info missing.qcow2
expect 1 "No such file" -- "$kimg" create nodir/x.qcow2 1M
truncate -s 3M base.raw
expect 0 "" -- "$kimg" create -b base.raw -F raw ov.qcow2
expect 0 "virtual size: 3145728 bytes" -- "$kimg" info ov.qcow2
expect 0 '"backing-filename-format": "raw"' -- "$kimg" info --json ov.qcow2
expect 0 "" -- "$kimg" create -c 4k img.qcow2 1G
expect 0 '"cluster-size": 4096' -- "$kimg" info --json img.qcow2
expect 1 "bad magic" -- "$kimg" info base.raw
expect 1 "bad magic" -- "$kimg" check base.raw
expect 0 "No errors" -- "$kimg" check img.qcow2

# A leak: one refcount too high (cluster 3, the L1 table: block at 8192, 16-bit entries).
cp img.qcow2 leak.qcow2
printf '\x00\x02' | dd of=leak.qcow2 bs=1 seek=$((8192 + 3 * 2)) conv=notrunc status=none
expect 3 "leaked clusters" -- "$kimg" check leak.qcow2
# A corruption: the same refcount too low.
cp img.qcow2 bad.qcow2
printf '\x00\x00' | dd of=bad.qcow2 bs=1 seek=$((8192 + 3 * 2)) conv=notrunc status=none
expect 2 "errors were found" -- "$kimg" check bad.qcow2
if command -v qemu-img > /dev/null; then
    expect 3 "" -- qemu-img check leak.qcow2
    expect 2 "" -- qemu-img check bad.qcow2
fi

echo "$((n - fails))/$n passed"
[ $fails = 0 ]
