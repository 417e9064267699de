#!/bin/bash
# Interop: images made by Debian's qemu-img / qemu-io read back equal by kova.
# interop-read.sh QCOW2_TOOL KOVA_IMG
set -euo pipefail
tool=$(realpath "$1") kimg=$(realpath "$2")
work=$(mktemp -d /tmp/kova-qcow2-interop-read.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0
n=0

# Reads IMG with kova and compares with qemu-img's own raw conversion; with a third argument
# "rand", also random reads that revisit recent clusters (kova's cache of decompressed ones).
same() {
    local img=$1 what=$2
    n=$((n + 1))
    qemu-img convert -O raw "$img" expect.raw
    if ! "$tool" dump "$img" qcow2 got.raw; then
        echo "FAIL: $what: kova could not read $img"; fails=$((fails + 1)); return
    fi
    if ! cmp -s got.raw expect.raw; then
        echo "FAIL: $what: kova read differs from qemu-img"; fails=$((fails + 1)); return
    fi
    if [ "${3:-}" = rand ] && ! "$tool" randread "$img" qcow2 expect.raw 7 3000; then
        echo "FAIL: $what: kova's random reads differ from qemu-img"; fails=$((fails + 1)); return
    fi
    echo "ok: $what${3:+ (and random reads)}"
}

# Source data: random, text (compressible), zero and hole regions; 6 MiB + 1234 bytes.
size=$((6 * 1024 * 1024 + 1234))
head -c $((2 * 1024 * 1024)) /dev/urandom > src.raw
(for i in $(seq 1 40000); do echo "kova interop line $i"; done) | head -c $((2 * 1024 * 1024)) >> src.raw
truncate -s $size src.raw
printf 'tail bytes' | dd of=src.raw bs=1 seek=$((size - 10)) conv=notrunc status=none

for cs in 4096 65536 2097152; do
    qemu-img convert -O qcow2 -o cluster_size=$cs src.raw v3-$cs.qcow2
    same v3-$cs.qcow2 "v3 cluster_size=$cs"
done
qemu-img convert -O qcow2 -o compat=0.10 src.raw v2.qcow2
same v2.qcow2 "v2 (compat=0.10)"
for rb in 1 2 4 8 16 32 64; do
    qemu-img convert -O qcow2 -o refcount_bits=$rb,cluster_size=16384 src.raw rb$rb.qcow2
    same rb$rb.qcow2 "refcount_bits=$rb"
done
for cs in 4096 65536 2097152; do
    qemu-img convert -c -O qcow2 -o cluster_size=$cs src.raw zlib-$cs.qcow2
    same zlib-$cs.qcow2 "convert -c zlib cluster_size=$cs" rand
    qemu-img convert -c -O qcow2 -o cluster_size=$cs,compression_type=zstd src.raw zstd-$cs.qcow2
    same zstd-$cs.qcow2 "convert -c zstd cluster_size=$cs" rand
done
qemu-img convert -c -O qcow2 -o compat=0.10,cluster_size=512 src.raw zlib-v2-512.qcow2
same zlib-v2-512.qcow2 "convert -c zlib v2 cluster_size=512"

# Zero clusters (v3 zero flag, allocated and plain), discard, partial writes.
qemu-img convert -O qcow2 src.raw z.qcow2
qemu-io -c 'write -z 0 1M' -c 'write -z 65536 4096' -c 'discard 2M 128k' \
        -c 'write -P 0x5a 3000 777' z.qcow2 > /dev/null
same z.qcow2 "zero clusters and discard"

# Backing chains: raw <- qcow2 (v2) <- qcow2 <- qcow2 (smaller and larger sizes)
qemu-img create -q -f qcow2 -o compat=0.10 -b src.raw -F raw c1.qcow2
qemu-io -c 'write -P 0x11 100000 200000' c1.qcow2 > /dev/null
qemu-img create -q -f qcow2 -o cluster_size=4096 -b c1.qcow2 -F qcow2 c2.qcow2 8M
qemu-io -c 'write -P 0x22 150000 5000' -c 'write -z 1M 64k' -c 'write -P 0x23 7M 4097' \
        c2.qcow2 > /dev/null
qemu-img create -q -f qcow2 -o cluster_size=2097152 -b c2.qcow2 -F qcow2 c3.qcow2
qemu-io -c 'write -P 0x33 4M 1' c3.qcow2 > /dev/null
same c1.qcow2 "backing chain depth 1 (raw base, v2 overlay)"
same c3.qcow2 "backing chain depth 3"
mkdir sub && qemu-img create -q -f qcow2 -b ../c3.qcow2 -F qcow2 sub/c4.qcow2
same sub/c4.qcow2 "relative backing file name in another directory"

# Internal snapshots: the active state is read; snapshot data stays in place.
qemu-img convert -O qcow2 -o cluster_size=4096 src.raw s.qcow2
qemu-img snapshot -c snap1 s.qcow2
qemu-io -c 'write -P 0x44 0 300000' -c 'write -z 1M 1M' s.qcow2 > /dev/null
qemu-img snapshot -c snap2 s.qcow2
qemu-io -c 'write -P 0x45 10000 10' s.qcow2 > /dev/null
same s.qcow2 "after qemu-img snapshot -c (twice)"

# kova-img check agrees with qemu-img check on these images.
for img in v2.qcow2 rb1.qcow2 rb64.qcow2 zlib-4096.qcow2 zstd-65536.qcow2 z.qcow2 c2.qcow2 s.qcow2; do
    n=$((n + 1))
    if "$kimg" check "$img" > /dev/null 2>&1; then echo "ok: kova-img check $img"
    else echo "FAIL: kova-img check $img"; "$kimg" check "$img" | head -5; fails=$((fails + 1)); fi
done
# ... and finds a corruption qemu-img finds: an L2 entry pointing at the header cluster.
cp v3-65536.qcow2 bad.qcow2
l1=$(od -An -t x1 -j 40 -N 8 bad.qcow2 | tr -d ' \n')
l2=$(od -An -t x1 -j $((16#$l1)) -N 8 bad.qcow2 | tr -d ' \n')
l2off=$((16#$l2 & 0x00fffffffffffe00))
# first L2 entry := the L1 table's own cluster (doubly referenced)
printf "$(printf '%016x' $((16#$l1 | (1 << 63))) | sed 's/../\\x&/g')" |
    dd of=bad.qcow2 bs=1 seek=$l2off conv=notrunc status=none
n=$((n + 1))
set +e
qemu-img check bad.qcow2 > /dev/null 2>&1; q=$?
"$kimg" check bad.qcow2 > /dev/null 2>&1; k=$?
set -e
if [ $q = 2 ] && [ $k = 2 ]; then echo "ok: corruption found by both (exit 2)"
else echo "FAIL: corrupt image: qemu-img check $q, kova-img check $k"; fails=$((fails + 1)); fi

# Refusals name the feature.
n=$((n + 1))
qemu-img create -q -f qcow2 -o extended_l2=on el2.qcow2 1M
if "$tool" dump el2.qcow2 qcow2 x.raw 2> err.txt; then
    echo "FAIL: extended L2 image opened"; fails=$((fails + 1))
elif grep -q "extended L2" err.txt; then echo "ok: extended L2 refused: $(cat err.txt)"
else echo "FAIL: extended L2 message: $(cat err.txt)"; fails=$((fails + 1)); fi
n=$((n + 1))
qemu-img create -q -f qcow2 -o data_file=ext.raw edf.qcow2 1M
if "$tool" dump edf.qcow2 qcow2 x.raw 2> err.txt; then
    echo "FAIL: external data file image opened"; fails=$((fails + 1))
elif grep -q "external data file" err.txt; then echo "ok: data file refused: $(cat err.txt)"
else echo "FAIL: data file message: $(cat err.txt)"; fails=$((fails + 1)); fi
n=$((n + 1))
if "$tool" dump src.raw qcow2 x.raw 2> err.txt; then
    echo "FAIL: raw file opened as qcow2"; fails=$((fails + 1))
else echo "ok: raw file is not opened as qcow2: $(cat err.txt)"; fi

echo "$((n - fails))/$n passed"
[ $fails = 0 ]
