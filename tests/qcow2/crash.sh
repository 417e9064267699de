#!/bin/bash
# Crash test without KVM: a writer doing random writes + flushes through kova's qcow2 library is
# killed with SIGKILL at random moments, repeatedly. After every kill `qemu-img check` must not
# report corruption (exit 0, or 3 for leaks) and every write acknowledged by a completed flush
# must read back (bytes written after the last acknowledged flush may be old or new).
# crash.sh QCOW2_TOOL KOVA_IMG [ROUNDS [STEP]]  (STEP: test every STEP-th crash point; the
# sanitizer build uses 3 to stay within its time budget)
set -euo pipefail
tool=$(realpath "$1") kimg=$(realpath "$2") rounds=${3:-4} step=${4:-1}
work=$(mktemp -d /tmp/kova-qcow2-crash.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
fails=0 kills=0 leaky=0

crash_rounds() {
    local img=$1 what=$2
    "$tool" dump "$img" qcow2 base.raw
    for r in $(seq 1 "$rounds"); do
        local seed=$((RANDOM * 32768 + RANDOM))
        rm -f ack
        "$tool" crashwriter "$img" qcow2 $seed ack &
        local pid=$!
        sleep "0.$(printf '%02d' $((RANDOM % 40 + 3)))"
        kill -KILL $pid 2> /dev/null || true
        wait $pid 2> /dev/null || true
        kills=$((kills + 1))
        local rc=0
        qemu-img check "$img" > check.txt 2>&1 || rc=$?
        if [ $rc = 3 ]; then leaky=$((leaky + 1));
        elif [ $rc != 0 ]; then
            echo "FAIL: $what round $r (seed $seed): qemu-img check exit $rc"
            head -20 check.txt; fails=$((fails + 1)); return
        fi
        local krc=0
        "$kimg" check "$img" > kcheck.txt 2>&1 || krc=$?
        if [ $krc != $rc ]; then
            echo "FAIL: $what round $r: kova-img check exit $krc, qemu-img check $rc"
            head -5 kcheck.txt; fails=$((fails + 1)); return
        fi
        if ! "$tool" verify "$img" qcow2 $seed ack base.raw new.raw > verify.txt; then
            echo "FAIL: $what round $r (seed $seed): flushed data lost"; fails=$((fails + 1))
            return
        fi
        mv new.raw base.raw
    done
    echo "ok: $what: $rounds kills, $(cat verify.txt)"
}

"$kimg" create -c 4096 k.qcow2 8M
crash_rounds k.qcow2 "kova-img image, 4 KiB clusters"

qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 g.qcow2 4M
crash_rounds g.qcow2 "512 B clusters, 64-bit refcounts (refcount table growth)"

head -c $((4 * 1024 * 1024)) /dev/urandom > src.raw
qemu-img convert -O qcow2 -o cluster_size=16384 src.raw s.qcow2
qemu-img snapshot -c keep s.qcow2
crash_rounds s.qcow2 "image with an internal snapshot"
qemu-img convert -O raw -l snapshot.name=keep s.qcow2 snap.raw
if cmp -s snap.raw src.raw; then echo "ok: snapshot intact after the kills"
else echo "FAIL: snapshot changed"; fails=$((fails + 1)); fi

qemu-img convert -O qcow2 src.raw base.qcow2
"$kimg" create -b base.qcow2 -F qcow2 o.qcow2
crash_rounds o.qcow2 "overlay over a qcow2 base"

# Deterministic crash points: the writer exits just before its N-th pwrite (qcow2-tool's
# KOVA_TEST_CRASH_AT), for N = 1, 2, 3, ...: every write boundary of data, refcount blocks,
# refcount table growth, L2 and L1 updates and reference drops is a crash point once.
crash_points() {
    local pristine=$1 what=$2 points=$3 maxlen=$4 seed=4242
    "$tool" dump "$pristine" qcow2 pbase.raw
    local bad=0 leaks=0
    for p in $(seq 1 "$step" "$points"); do
        cp "$pristine" cp.qcow2
        rm -f ack
        local rc=0
        KOVA_TEST_CRASH_AT=$p "$tool" crashwriter cp.qcow2 qcow2 $seed ack $maxlen 2> /dev/null || rc=$?
        if [ $rc != 70 ]; then
            echo "FAIL: $what: crash point $p: writer exit $rc"; bad=1; break
        fi
        rc=0
        qemu-img check cp.qcow2 > check.txt 2>&1 || rc=$?
        if [ $rc = 3 ]; then leaks=$((leaks + 1));
        elif [ $rc != 0 ]; then
            echo "FAIL: $what: crash point $p: qemu-img check exit $rc"; head -20 check.txt
            bad=1; break
        fi
        if ! "$tool" verify cp.qcow2 qcow2 $seed ack pbase.raw new.raw $maxlen > verify.txt; then
            echo "FAIL: $what: crash point $p: flushed data lost"; bad=1; break
        fi
    done
    local tried=$(((points + step - 1) / step))
    kills=$((kills + tried))
    if [ $bad = 0 ]; then echo "ok: $what: $tried crash points ($leaks leaked), last $(cat verify.txt)"
    else fails=$((fails + 1)); fi
}

"$kimg" create -c 4096 cp1.qcow2 2M
crash_points cp1.qcow2 "crash points, new image, 4 KiB clusters" 80 8192
head -c $((2 * 1024 * 1024)) /dev/urandom > small.raw
qemu-img convert -O qcow2 -o cluster_size=4096 small.raw cp2.qcow2
qemu-img snapshot -c keep cp2.qcow2
crash_points cp2.qcow2 "crash points, image with a snapshot" 80 8192
# sized so that the refcount table (2 MiB coverage) must grow at about the 90th pwrite
head -c $((1960 * 1024)) /dev/urandom > near.raw
qemu-img convert -O qcow2 -o cluster_size=512,refcount_bits=64 near.raw cp3.qcow2
qemu-img resize -q cp3.qcow2 3M
crash_points cp3.qcow2 "crash points, 512 B clusters, 64-bit refcounts (table growth)" 130 3000

echo "$kills kills, $leaky with leaked clusters (allowed), $fails failures"
[ $fails = 0 ]
