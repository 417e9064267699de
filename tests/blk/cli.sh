#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# kova-vmm --disk errors that need no KVM (disks are opened before /dev/kvm): bad option strings,
# a missing file, an unknown format, a qcow2 that fails validation, a raw file given as qcow2, a
# disk given twice read-write. Each must fail with exit status 1 and a message naming the problem.
# Usage: cli.sh KOVA_VMM KOVA_IMG   (KOVA_ASSETS: the test kernel)
set -uo pipefail
vmm=$1
img=$2
kernel=${KOVA_ASSETS:?}/vmlinuz
cli_prog=$vmm
# shellcheck source=SCRIPTDIR/../common/cli-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common/cli-lib.sh"

truncate -s 1M "$tmp/raw.img"
"$img" create "$tmp/good.qcow2" 16M >/dev/null || { echo "FAIL: kova-img create"; exit 1; }
# A qcow2 whose header is damaged: cluster_bits (offset 20) = 40.
cp "$tmp/good.qcow2" "$tmp/bad.qcow2"
printf '\x00\x00\x00\x28' | dd of="$tmp/bad.qcow2" bs=1 seek=20 conv=notrunc 2>/dev/null
# A qcow2 with an unknown incompatible feature bit (offset 72, v3).
cp "$tmp/good.qcow2" "$tmp/feat.qcow2"
printf '\x00\x00\x00\x00\x00\x00\x01\x00' | dd of="$tmp/feat.qcow2" bs=1 seek=72 conv=notrunc 2>/dev/null

expect 0 'disk path=FILE,format=raw\|qcow2' -- --help
expect 1 'path= is required' -- --kernel "$kernel" --disk format=raw
expect 1 'format=raw or format=qcow2 is required' -- --kernel "$kernel" --disk path="$tmp/raw.img"
expect 1 'unknown format "vmdk"' -- --kernel "$kernel" --disk path="$tmp/raw.img",format=vmdk
expect 1 'unknown key "cache"' -- --kernel "$kernel" --disk path="$tmp/raw.img",format=raw,cache=none
expect 1 'readonly= takes on or off' -- --kernel "$kernel" --disk path="$tmp/raw.img",format=raw,readonly=1
expect 1 'longer than 20 bytes' -- --kernel "$kernel" \
    --disk path="$tmp/raw.img",format=raw,serial=abcdefghijklmnopqrstu
expect 1 'not key=value' -- --kernel "$kernel" --disk "$tmp/raw.img"
expect 1 'disk 0 .*missing.*(No such file|not found|cannot open)' -- --kernel "$kernel" \
    --disk path="$tmp/missing",format=raw
expect 1 'disk 1 .*bad.qcow2' -- --kernel "$kernel" --disk path="$tmp/raw.img",format=raw \
    --disk path="$tmp/bad.qcow2",format=qcow2
expect 1 'disk 0 .*feat.qcow2.*(incompatible|feature)' -- --kernel "$kernel" \
    --disk path="$tmp/feat.qcow2",format=qcow2
expect 1 'disk 0 .*raw.img' -- --kernel "$kernel" --disk path="$tmp/raw.img",format=qcow2
expect 1 'disk 1 .*good.qcow2' -- --kernel "$kernel" --disk path="$tmp/good.qcow2",format=qcow2 \
    --disk path="$tmp/good.qcow2",format=qcow2
args=()
for i in $(seq 0 16); do args+=(--disk "path=$tmp/raw.img,format=raw,readonly=on"); done
expect 1 'at most 16 --disk' -- --kernel "$kernel" "${args[@]}"
cli_finish "blk cli: all passed"
