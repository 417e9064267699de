#!/bin/bash
# Benchmark: kova's qcow2 library vs QEMU's qcow2 driver (qemu-img bench), same host, same kind
# of image (a 64 KiB-cluster qcow2 overlay over a 256 MiB qcow2 base with random data), both
# through the page cache (qemu-img bench -t writeback) at queue depth 1; write runs end with one
# flush on both sides (qemu-img bench --flush-interval=COUNT).
# Prints MB/s or IOPS for each (best of 3 runs) and the kova/QEMU ratio. Numbers, not assertions.
# usage: tests/bench/qcow2-bench.sh BUILD_DIR [WORK_DIR]
set -euo pipefail
build=$(realpath "${1:?usage: qcow2-bench.sh BUILD_DIR [WORK_DIR]}")
tool=$build/tests/qcow2/qcow2-tool kimg=$build/vmm/qcow2/kova-img
work=$(mktemp -d "${2:-/tmp}/kova-qcow2-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
mib=256
head -c $((mib * 1024 * 1024)) /dev/urandom > base.raw
qemu-img convert -O qcow2 base.raw base.qcow2
rm base.raw

# Both sides are timed from the outside (process start to exit, open and close included): qemu-img
# bench's own figure leaves out the flush it does when closing the image.
wall() { # command... -> seconds
    local t0 t1
    t0=$(date +%s%N)
    "$@" > /dev/null
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
}
qemu_secs() { # qemu-img bench args... -> seconds
    wall qemu-img bench -f qcow2 -t writeback -d 1 "$@"
}

printf '%-34s %12s %12s %8s\n' test kova qemu kova/qemu
run() { # name unit bytes_per_op count kova-op qemu-args...
    local name=$1 unit=$2 bs=$3 count=$4 op=$5 order=$6; shift 6
    local k q t i
    # best of 3, alternating kova and QEMU (writes: a fresh pair of overlays each time)
    for i in 1 2 3; do
        if [ "$op" = write ] && [ "$fresh_writes" = 1 ]; then fresh; fi
        t=$(wall "$tool" bench k.qcow2 qcow2 "$op" "$bs" "$count" "$order")
        k=$(awk -v a="${k:-1e9}" -v b="$t" 'BEGIN { print (b < a) ? b : a }')
        t=$(qemu_secs "$@" q.qcow2)
        q=$(awk -v a="${q:-1e9}" -v b="$t" 'BEGIN { print (b < a) ? b : a }')
    done
    awk -v n="$name" -v u="$unit" -v b="$bs" -v c="$count" -v k="$k" -v q="$q" 'BEGIN {
        if (u == "MB/s") { kv = b * c / 1e6 / k; qv = b * c / 1e6 / q }
        else { kv = c / k; qv = c / q }
        printf "%-34s %12.1f %12.1f %8.2f   (%s)\n", n, kv, qv, kv / qv, u }'
}

fresh() {
    rm -f k.qcow2 q.qcow2
    "$kimg" create -b base.qcow2 -F qcow2 k.qcow2
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 q.qcow2
}

fresh_writes=1
run "seq write 1 MiB (new clusters)" MB/s 1048576 $mib write seq -w -s 1M -c $mib --flush-interval=$mib
run "seq read 1 MiB" MB/s 1048576 $mib read seq -s 1M -c $mib
run "seq write 4 KiB (COW from base)" IOPS 4096 16384 write seq -w -s 4k -c 16384 --flush-interval=16384
run "seq read 4 KiB (overlay+base)" IOPS 4096 16384 read seq -s 4k -c 16384
fresh_writes=0
run "seq write 4 KiB (allocated)" IOPS 4096 16384 write seq -w -s 4k -c 16384 --flush-interval=16384
echo
echo "kova only (qemu-img bench has no random offsets):"
for op in write read; do
    fresh
    k=$("$tool" bench k.qcow2 qcow2 $op 4096 20000 rand)
    awk -v k="$k" -v op=$op 'BEGIN { printf "random 4 KiB %-5s on a fresh overlay: %8.0f IOPS\n", op, 20000 / k }'
done
