#!/bin/bash
# Interop: images written by kova (random writes at odd offsets/lengths, zeroes, discards,
# flushes) pass `qemu-img check` with exit 0 and `qemu-img compare` equal to a raw reference
# written alongside; backing files and internal snapshots stay intact.
# interop-write.sh QCOW2_TOOL KOVA_IMG
set -euo pipefail
tool=$(realpath "$1") kimg=$(realpath "$2")
work=$(mktemp -d /tmp/kova-qcow2-interop-write.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0
n=0
seed=1

# Random writes on IMG mirrored into a raw reference, then qemu-img check + compare.
writes() {
    local img=$1 what=$2 ops=${3:-300} maxlen=${4:-200000}
    n=$((n + 1)); seed=$((seed + 1))
    qemu-img convert -O raw "$img" ref.raw
    if ! "$tool" randwrite "$img" qcow2 ref.raw $seed "$ops" "$maxlen"; then
        echo "FAIL: $what: kova write/read-back failed"; fails=$((fails + 1)); return 1
    fi
    local out rc=0
    out=$(qemu-img check "$img" 2>&1) || rc=$?
    if [ $rc != 0 ]; then
        echo "FAIL: $what: qemu-img check exit $rc"; echo "$out" | head -20
        fails=$((fails + 1)); return 1
    fi
    if ! qemu-img compare -q -f qcow2 -F raw "$img" ref.raw; then
        echo "FAIL: $what: qemu-img compare differs"; fails=$((fails + 1)); return 1
    fi
    rc=0; "$kimg" check "$img" > /dev/null 2>&1 || rc=$?
    if [ $rc != 0 ]; then
        echo "FAIL: $what: kova-img check exit $rc"; fails=$((fails + 1)); return 1
    fi
    echo "ok: $what"
}

size=$((8 * 1024 * 1024))
head -c $((3 * 1024 * 1024)) /dev/urandom > src.raw
(for i in $(seq 1 30000); do echo "kova interop line $i"; done) | head -c $((1024 * 1024)) >> src.raw
truncate -s $size src.raw

"$kimg" create a.qcow2 16M && writes a.qcow2 "kova-img create 16M (64 KiB clusters)"
"$kimg" create -c 4096 b.qcow2 10M && writes b.qcow2 "kova-img create, 4 KiB clusters"
"$kimg" create -c 512 c.qcow2 12M && writes c.qcow2 "512 B clusters (refcount table growth)" 600 60000
"$kimg" create -c 2M e.qcow2 20M && writes e.qcow2 "kova-img create, 2 MiB clusters" 200
"$kimg" create d.qcow2 $((5 * 1024 * 1024 + 512 * 3)) && writes d.qcow2 "size not cluster aligned"

# Overlays (what the agent does per instance): the base stays unchanged.
qemu-img convert -O qcow2 src.raw base.qcow2
sum=$(md5sum base.qcow2 src.raw)
"$kimg" create -b base.qcow2 -F qcow2 o1.qcow2 && writes o1.qcow2 "overlay over qcow2 base"
"$kimg" create -b src.raw -F raw o2.qcow2 12M && writes o2.qcow2 "overlay over raw base, larger"
"$kimg" create -c 4096 -b o1.qcow2 -F qcow2 o3.qcow2 && writes o3.qcow2 "overlay over overlay"
n=$((n + 1))
if [ "$sum" = "$(md5sum base.qcow2 src.raw)" ]; then echo "ok: backing files unchanged"
else echo "FAIL: a backing file changed"; fails=$((fails + 1)); fi

# Images made by qemu-img: v2, refcount widths, compressed clusters.
qemu-img convert -O qcow2 -o compat=0.10 src.raw v2.qcow2 && writes v2.qcow2 "qemu-img v2 image"
qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 v2o.qcow2
writes v2o.qcow2 "qemu-img v2 overlay"
for rb in 1 2 8 64; do
    qemu-img convert -O qcow2 -o refcount_bits=$rb,cluster_size=4096 src.raw rb$rb.qcow2
    writes rb$rb.qcow2 "qemu-img refcount_bits=$rb"
done
qemu-img create -q -f qcow2 -o refcount_bits=64,cluster_size=512 rb64s.qcow2 6M
writes rb64s.qcow2 "refcount_bits=64, 512 B clusters (table growth)" 400 60000
qemu-img convert -c -O qcow2 src.raw zlib.qcow2 && writes zlib.qcow2 "over zlib-compressed clusters"
qemu-img convert -c -O qcow2 -o compression_type=zstd,cluster_size=4096 src.raw zstd.qcow2
writes zstd.qcow2 "over zstd-compressed clusters"

# Internal snapshots survive kova's writes (copy-on-write of shared L2 tables and clusters).
qemu-img convert -O qcow2 -o cluster_size=16384 src.raw s.qcow2
qemu-img snapshot -c before s.qcow2
qemu-img convert -O raw s.qcow2 before.raw
writes s.qcow2 "writes after qemu-img snapshot -c"
qemu-img snapshot -c middle s.qcow2
cp ref.raw middle.raw
writes s.qcow2 "writes after a second snapshot"
for sn in before middle; do
    n=$((n + 1))
    qemu-img convert -O raw -l snapshot.name=$sn s.qcow2 snap.raw
    if cmp -s snap.raw $sn.raw; then echo "ok: snapshot '$sn' intact"
    else echo "FAIL: snapshot '$sn' changed"; fails=$((fails + 1)); fi
done
n=$((n + 1))
qemu-img snapshot -d before s.qcow2
if qemu-img check -q s.qcow2 && qemu-img compare -q -f qcow2 -F raw s.qcow2 ref.raw; then
    echo "ok: snapshot deleted by qemu-img afterwards, image consistent"
else echo "FAIL: after snapshot delete"; fails=$((fails + 1)); fi

echo "$((n - fails))/$n passed"
[ $fails = 0 ]
