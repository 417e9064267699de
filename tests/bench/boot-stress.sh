#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# boot-stress.sh [OPTIONS] — a stress benchmark (not a test) of early boot: boots the Debian kernel
# + the test initramfs many times with kova-vmm and, as the peer, with
# `qemu-system-x86_64 -M microvm -enable-kvm -cpu host`, on the same guest in the same KVM
# environment (the nested-KVM test VM unless the host's KVM boots stock kernels; see
# tests/nested/kova-nested-run), and counts the boots that fail: no init marker in time, a guest
# panic/oops/fault on the console, a triple fault, an unclean VMM exit. Rounds go over the vCPU
# counts, each kind in turn, PARALLEL VMMs of one kind at a time; at the end it prints a table of
# boots, failures and median boot-to-init time per kind and vCPU count, with the kova/QEMU ratio.
#
#   --boots N        boots per VMM kind in all (default 54; rounded up to whole rounds)
#   --cpus LIST      vCPU counts, comma-separated (default 1,2,4)
#   --parallel N     VMMs booting at once (default 2)
#   --mem MIB        guest memory (default 256)
#   --kinds LIST     kova,qemu (default both)
#   --append ARGS    extra guest kernel arguments (e.g. "nokaslr" while bisecting)
#   --host-load N    N busy loops on the host outside the test VM meanwhile (default 0)
#   --ktrace         record KVM's trace events in the test VM; a failed kova boot prints the last
#                    events of its process's threads (on AMD a triple fault resets the registers)
#   --vm-cpus N      the test VM's vCPUs (default 1, as kova-nested-run)
#   --timeout SECS   the whole run's limit (default: 60 + 40 s a boot)
# Environment: KOVA_BUILD_DIR (default build/default), KOVA_ASSETS (default build/assets).
# Exit status: 0 when kova-vmm had no failure, 1 when it had one, 2 on bad usage.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
export KOVA_BUILD_DIR=${KOVA_BUILD_DIR:-$top/build/default}
export KOVA_ASSETS=${KOVA_ASSETS:-$top/build/assets}

if [ "${KOVA_BENCH_INSIDE:-0}" != 1 ]; then
    boots=54 load=0 vmcpus=1 timeout=
    args=("$@")
    while [ $# -gt 0 ]; do
        case "$1" in
        --boots) boots=$2; shift 2 ;;
        --host-load) load=$2; shift 2 ;;
        --vm-cpus) vmcpus=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --cpus | --parallel | --mem | --kinds | --append) shift 2 ;;
        --ktrace | --stage) shift ;;
        -h | --help) sed -n '4,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "boot-stress: unknown option $1" >&2; exit 2 ;;
        esac
    done
    case "$boots$load$vmcpus${timeout:-0}" in *[!0-9]*) echo "boot-stress: numbers expected" >&2; exit 2 ;; esac
    [ -x "$KOVA_BUILD_DIR/vmm/kova-vmm" ] || { echo "build kova-vmm first ($KOVA_BUILD_DIR)" >&2; exit 2; }
    "$top/tests/assets/build-assets.sh" >&2
    hogs=()
    for _ in $(seq "$load"); do
        (while :; do :; done) &
        hogs+=($!)
    done
    trap '[ ${#hogs[@]} = 0 ] || kill "${hogs[@]}" 2>/dev/null' EXIT
    echo "boot-stress: host load: $load busy loop(s) on $(nproc) host CPU(s)"
    export KOVA_BENCH_INSIDE=1
    rc=0
    "$top/tests/nested/kova-nested-run" --timeout "${timeout:-$((60 + boots * 2 * 40))}" --mem 3072 \
        --cpus "$vmcpus" -- "$0" "${args[@]}" || rc=$?
    exit "$rc"
fi

exec python3 "$here/boot-stress.py" "$@"
