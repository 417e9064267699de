#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# kova-vmm's command line and input checks that need no KVM: --help, bad options, missing and
# garbage kernels, absurd memory sizes, unreadable initrd. Each must fail with exit status 1 and
# a clear message on stderr.
set -uo pipefail
vmm=$1
cli_prog=$vmm
# shellcheck source=SCRIPTDIR/../common/cli-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/cli-lib.sh"

head -c 100000 /dev/urandom >"$tmp/garbage"
printf 'MZ' >"$tmp/tiny"
# A file that looks like a bzImage header but has no 64-bit entry.
python3 - "$tmp/old" <<'PY'
import sys
b = bytearray(0x4000)
b[0x1f1] = 1; b[0x1fe] = 0x55; b[0x1ff] = 0xaa; b[0x202:0x206] = b"HdrS"
b[0x206] = 0x0f; b[0x207] = 0x02
open(sys.argv[1], "wb").write(b)
PY

expect 0 'Usage: kova-vmm' -- --help
expect 1 'nothing to boot' --
expect 1 'exclude each other' -- --kernel x --firmware y
expect 1 'need --kernel' -- --initrd x --disk path=/dev/null,format=raw
expect 1 'need --kernel' -- --cmdline x --disk path=/dev/null,format=raw
expect 1 'not a UUID' -- --kernel x --uuid 1234
expect 1 'not a UUID' -- --kernel x --uuid ../../etc/passwd-0000-0000-0000-000000000000
expect 1 'cannot read firmware .*No such file' -- --firmware "$tmp/missing" --disk path="$tmp/old",format=raw
expect 1 'firmware .*size' -- --firmware "$tmp/old" --disk path="$tmp/old",format=raw
expect 1 'unknown or incomplete option' -- --kernel x --bogus
expect 1 'unknown or incomplete option' -- --kernel
expect 1 'unexpected argument' -- --kernel x extra
expect 1 'cannot read kernel .*No such file' -- --kernel "$tmp/missing"
expect 1 'cannot read kernel' -- --kernel "$tmp"
expect 1 'not a Linux bzImage' -- --kernel "$tmp/garbage"
expect 1 'not a Linux bzImage' -- --kernel "$tmp/tiny"
expect 1 '64-bit entry' -- --kernel "$tmp/old"
for m in 0 12 -5 abc 1e9 99999999999999999999; do
    expect 1 'memory takes MiB' -- --kernel "$tmp/garbage" --memory "$m"
done
for c in 0 -1 65 two; do
    expect 1 'cpus takes a number' -- --kernel "$tmp/garbage" --cpus "$c"
done
expect 1 'log-level' -- --kernel "$tmp/garbage" --log-level loud
if [ -n "${KOVA_ASSETS:-}" ] && [ -f "$KOVA_ASSETS/vmlinuz" ]; then
    k=$KOVA_ASSETS/vmlinuz
    expect 1 'more than this host has' -- --kernel "$k" --memory 1099511627776
    expect 1 'cannot read initrd' -- --kernel "$k" --initrd "$tmp/missing"
fi
cli_finish "kova-vmm command line checks passed"
