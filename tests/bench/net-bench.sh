#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# net-bench.sh — virtio-net throughput and latency of kova-vmm vs QEMU on one bridge + tap (not a
# test).
#
#   tests/bench/net-bench.sh [BUILD_DIR]      (default: build/default; needs its kova-vmm)
#
# In the nested-KVM test VM (tests/nested/kova-nested-run; its kernel has tun, bridge and
# vhost_net as modules, insmod'ed from the assets' l1-modules) the test guest boots on a tap in a
# bridge, under:
#   kova-vhost  kova-vmm --net tap=kbtap0,mac=...,vhost=on
#   kova-user   kova-vmm --net tap=kbtap0,mac=...,vhost=off (the userspace path)
#   qemu        qemu-system-x86_64 -M q35 -enable-kvm -netdev tap,ifname=kbtap0,vhost=on
#               -device virtio-net-pci
# and measures TCP throughput guest->host and host->guest (busybox nc in the guest, Python here)
# and the ping RTT (tests/bench/net-bench.py). Prints a table and kova's ratios to QEMU. The
# nested VM is emulated (TCG): the absolute figures are small, the ratios are what matters.
# Environment: NET_BENCH_MB (MiB each way, default 16), NET_BENCH_VARIANTS (default
# "kova-vhost kova-user qemu"), NET_BENCH_QEMU_ARGS, NET_BENCH_TIMEOUT (s, default 1200).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd) || exit 1
assets=${KOVA_ASSETS:-$top/build/assets}

if [ "${NET_BENCH_INNER:-0}" != 1 ]; then
    export KOVA_ASSETS=$assets
    # (the runner passes only KOVA_* variables into the nested VM)
    exec "$top/tests/nested/kova-nested-run" --timeout "${NET_BENCH_TIMEOUT:-1200}" --mem 2048 \
        -- env NET_BENCH_INNER=1 NET_BENCH_MB="${NET_BENCH_MB:-16}" \
        NET_BENCH_VARIANTS="${NET_BENCH_VARIANTS:-kova-vhost kova-user qemu}" \
        NET_BENCH_QEMU_ARGS="${NET_BENCH_QEMU_ARGS:-}" "$0" "$build"
fi
exec python3 "$here/net-bench.py" "$build/vmm/kova-vmm" "$assets"
