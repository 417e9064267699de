#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# blk-bench.sh — virtio-blk throughput of kova-vmm vs QEMU on the same qcow2 overlay (not a test).
#
#   tests/bench/blk-bench.sh [BUILD_DIR]      (default: build/h-blk; needs kova-vmm and kova-img)
#
# In the nested-KVM test VM (or directly where /dev/kvm works) the test guest boots with a raw
# copy of guest-root.ext4 as vda, a small ext4 tools disk as vdb (a static C program for random
# 4 KiB I/O, built here) and, as vdc, a fresh qcow2 overlay (kova-img create -b base.raw -F raw)
# over a raw base filled with random data. The same in-guest workload runs under:
#   kova       kova-vmm --disk path=overlay,format=qcow2
#   qemu-none  qemu-system-x86_64 -M q35 -enable-kvm -drive if=virtio,format=qcow2,cache=none
#   qemu-writeback  the same with cache=writeback
# Workload on /dev/vdc, O_DIRECT: sequential write then read of BLK_BENCH_MB MiB with dd bs=1M
# (MB/s), then BLK_BENCH_OPS random 4 KiB writes and reads at queue depth 1 (IOPS).
# Prints a table and kova's ratio to each QEMU mode (> 1: kova is faster).
# Environment: BLK_BENCH_MB (default 64), BLK_BENCH_OPS (default 2000), BLK_BENCH_TIMEOUT (s),
# BLK_BENCH_QEMU_ARGS (extra QEMU arguments, e.g. "-L DIR" for its firmware), BLK_BENCH_DIR
# (where the images go; default build/, which supports O_DIRECT), BLK_BENCH_VARIANTS (the runs,
# in order; default "kova qemu-none qemu-writeback"; also: kova-noevfd = kova-vmm with
# KOVA_VMM_NO_EVENTFDS=1 (MMIO-exit notifications, KVM_SIGNAL_MSI), kova-base = the kova-vmm
# of the build dir BLK_BENCH_BASE, e.g. an older commit's, for before/after numbers). A variant
# named more than once runs that often (interleave them against load drift); the mean is shown.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$top/build/h-blk}" && pwd) || exit 1
assets=${KOVA_ASSETS:-$top/build/assets}
export BLK_BENCH_MB=${BLK_BENCH_MB:-64} BLK_BENCH_OPS=${BLK_BENCH_OPS:-2000}
export BLK_BENCH_VARIANTS=${BLK_BENCH_VARIANTS:-kova qemu-none qemu-writeback}
export BLK_BENCH_BASE=${BLK_BENCH_BASE:-}

if [ "${BLK_BENCH_INNER:-0}" != 1 ]; then
    export BLK_BENCH_INNER=1 KOVA_ASSETS=$assets
    # (the runner passes only KOVA_* variables into the nested VM)
    exec "$top/tests/nested/kova-nested-run" --timeout "${BLK_BENCH_TIMEOUT:-1500}" --mem 3072 \
        -- env BLK_BENCH_INNER=1 BLK_BENCH_MB="$BLK_BENCH_MB" BLK_BENCH_OPS="$BLK_BENCH_OPS" \
        BLK_BENCH_QEMU_ARGS="${BLK_BENCH_QEMU_ARGS:-}" BLK_BENCH_DIR="${BLK_BENCH_DIR:-}" \
        BLK_BENCH_VARIANTS="$BLK_BENCH_VARIANTS" BLK_BENCH_BASE="$BLK_BENCH_BASE" \
        "$0" "$build"
fi

# Images live on a file system with O_DIRECT (cache=none): not the nested VM's tmpfs /tmp.
tmp=$(mktemp -d "${BLK_BENCH_DIR:-$top/build}/blk-bench.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tools"
cat >"$tmp/randio.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* randio r|w DEV OPS: OPS random 4 KiB O_DIRECT reads or writes over DEV, queue depth 1;
 * prints IOPS. randio now: prints CLOCK_MONOTONIC in seconds (busybox dd does not time). */
int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "now") == 0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        printf("%.6f\n", (double)t.tv_sec + (double)t.tv_nsec / 1e9);
        return 0;
    }
    if (argc != 4)
        return 2;
    int w = argv[1][0] == 'w';
    int fd = open(argv[2], (w ? O_RDWR : O_RDONLY) | O_DIRECT);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    long ops = atol(argv[3]);
    uint64_t blocks = (uint64_t)lseek(fd, 0, SEEK_END) / 4096;
    void *buf;
    if (posix_memalign(&buf, 4096, 4096))
        return 1;
    memset(buf, 0x5a, 4096);
    uint64_t x = 88172645463325252ULL;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < ops; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        off_t off = (off_t)(x % blocks) * 4096;
        ssize_t n = w ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off);
        if (n != 4096) {
            perror("io");
            return 1;
        }
    }
    if (w && fdatasync(fd) < 0)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.0f\n", (double)ops / s);
    return 0;
}
C
gcc -O2 -static -o "$tmp/tools/randio" "$tmp/randio.c" || exit 1
mke2fs -q -t ext4 -d "$tmp/tools" "$tmp/tools.ext4" 16M || exit 1
head -c $((BLK_BENCH_MB * 2))M /dev/urandom >"$tmp/base.raw"

script=$(cat <<G
mkdir -p /tmp/bb && busybox --install -s /tmp/bb; PATH=/tmp/bb:\$PATH
mkdir -p /tools && mount -t ext4 -o ro /dev/vdb /tools || exit 1
mbps() { awk "BEGIN{printf \"%.1f\", $BLK_BENCH_MB / (\$2 - \$1)}"; }
t0=\$(/tools/randio now)
dd if=/dev/zero of=/dev/vdc bs=1M count=$BLK_BENCH_MB oflag=direct 2>/dev/null || echo "dd write failed"
t1=\$(/tools/randio now)
echo "BENCH seq-write-MBps \$(mbps \$t0 \$t1)"
t0=\$(/tools/randio now)
dd if=/dev/vdc of=/dev/null bs=1M count=$BLK_BENCH_MB iflag=direct 2>/dev/null || echo "dd read failed"
t1=\$(/tools/randio now)
echo "BENCH seq-read-MBps \$(mbps \$t0 \$t1)"
echo "BENCH rand-write-IOPS \$(/tools/randio w /dev/vdc $BLK_BENCH_OPS)"
echo "BENCH rand-read-IOPS \$(/tools/randio r /dev/vdc $BLK_BENCH_OPS)"
G
)
cmdline="console=ttyS0 quiet panic=-1 kova.root=/dev/vda kova.script=$(printf '%s\n' "$script" | base64 -w0)"
kernel=$assets/vmlinuz
initrd=$assets/guest-initrd.cpio.gz

run_one() { # run_one NAME
    local name=$1
    cp "$assets/guest-root.ext4" "$tmp/root.raw"
    rm -f "$tmp/ov.qcow2"
    "$build/vmm/qcow2/kova-img" create -b "$tmp/base.raw" -F raw "$tmp/ov.qcow2" >/dev/null || return 1
    local vmm=$build/vmm/kova-vmm noevfd=0
    [ "$name" = kova-base ] && vmm=$BLK_BENCH_BASE/vmm/kova-vmm
    [ "$name" = kova-noevfd ] && noevfd=1
    : >"$tmp/$name.err"
    case "$name" in
    kova*)
        KOVA_VMM_NO_EVENTFDS=$noevfd timeout 600 "$vmm" --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
            --memory 512 --console-stdout --disk "path=$tmp/root.raw,format=raw" \
            --disk "path=$tmp/tools.ext4,format=raw,readonly=on" \
            --disk "path=$tmp/ov.qcow2,format=qcow2" 2>>"$tmp/$name.err" ;;
    qemu-*)
        timeout 600 qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 512 -smp 1 -nodefaults \
            -no-user-config -nographic -serial stdio -kernel "$kernel" -initrd "$initrd" \
            -append "$cmdline" ${BLK_BENCH_QEMU_ARGS:-} \
            -drive "file=$tmp/root.raw,if=virtio,format=raw" \
            -drive "file=$tmp/tools.ext4,if=virtio,format=raw,readonly=on" \
            -drive "file=$tmp/ov.qcow2,if=virtio,format=qcow2,cache=${name#qemu-}" \
            2>>"$tmp/$name.err" </dev/null ;;
    esac | tr -d '\r' | grep '^BENCH ' | sed "s/^BENCH /$name /" | tee -a "$tmp/results"
    local n
    n=$(grep -c "^$name " "$tmp/results")
    [ $((n % 4)) = 0 ] && [ "$n" -gt 0 ] || { echo "$name: incomplete run"; tail -5 "$tmp/$name.err"; }
}

echo "blk-bench: ${BLK_BENCH_MB} MiB sequential, ${BLK_BENCH_OPS} random 4 KiB ops, O_DIRECT, qd1"
for v in $BLK_BENCH_VARIANTS; do
    run_one "$v"
done
python3 - "$tmp/results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    vmm, metric, val = line.split()
    r.setdefault(metric, {}).setdefault(vmm, []).append(float(val))
names = []
for v in r.values():
    names += [n for n in v if n not in names]
# A variant listed more than once in BLK_BENCH_VARIANTS: the mean (and the spread) of its runs.
print(f"{'metric':22}" + "".join(f"{n:>15}" for n in names) + f"{'kova/none':>11}{'kova/wb':>9}")
mean = {m: {n: sum(x) / len(x) for n, x in v.items()} for m, v in r.items()}
for m, v in mean.items():
    k = v.get("kova")
    def ratio(q):
        return f"{k / v[q]:.2f}" if k and v.get(q) else "-"
    cells = "".join(f"{v.get(x, float('nan')):>15.1f}" for x in names)
    print(f"{m:22}{cells}{ratio('qemu-none'):>11}{ratio('qemu-writeback'):>9}")
if any(len(x) > 1 for v in r.values() for x in v.values()):
    print("runs (min-max):")
    for m, v in r.items():
        print(f"  {m:20}" + "".join(f"{n}={min(x):.0f}-{max(x):.0f}({len(x)}) " for n, x in v.items()))
PY
