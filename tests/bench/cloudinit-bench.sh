#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# cloudinit-bench.sh — from POST /servers to ssh answering, for the test cloud image with
# cloud-init, and where that time goes (not a test).
#
#   tests/bench/cloudinit-bench.sh [BUILD_DIR]      (default: build/default)
#
# Runs lifecycle.cloudinit's scenario (tests/lifecycle/test_cloudinit_kvm.py: the agent, a kova
# network, a keypair and user data; one server with a config drive, one with the metadata
# service alone) in the nested-KVM test VM, CLOUDINIT_BENCH_RUNS times (default 1), and prints
# its BENCH lines as a table, in seconds:
#   post_to_ssh      POST /servers -> ssh debian@IP answers with the user data's marker
#   agent            POST -> kova-vmm's process starts (API, build task, disks, config drive)
#   vmm              kova-vmm's process start -> the VM runs (its control socket's uptimes)
#   firmware_grub    the VM runs -> the guest kernel starts (SeaBIOS, GRUB; guest /proc/uptime)
#   kernel           systemd-analyze's kernel + initrd (a part of the next column)
#   cloud_init_starts  kernel start -> cloud-init's first stage starts
#   cloud_init       cloud-init's first stage start -> its last stage's end (status.json)
#   rest             post_to_ssh minus agent, vmm, firmware_grub, cloud_init_starts and
#                    cloud_init: the test's 5 s ssh retry step; negative when ssh answered
#                    before cloud-init's last stage ended (the marker is written in it)
# The test VM is emulated (TCG): the figures are this machine's, not a real host's. The cloud
# image must be built (ctest -R assets.cloud_image).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$top/build/default}" && pwd) || exit 1
assets=${KOVA_ASSETS:-$top/build/assets}
image=$assets/debian-12-kova-cloud-amd64.qcow2
[ -f "$image" ] || { echo "cloudinit-bench: no $image (ctest -R assets.cloud_image)" >&2; exit 1; }
export KOVA_ASSETS=$assets
out=${CLOUDINIT_BENCH_LOG:-$build/cloudinit-bench.log}
: >"$out"
for run in $(seq 1 "${CLOUDINIT_BENCH_RUNS:-1}"); do
    echo "cloudinit-bench: run $run" >&2
    "$top/tests/nested/kova-nested-run" --timeout 1500 --mem 4096 -- /usr/bin/python3 \
        "$top/tests/lifecycle/test_cloudinit_kvm.py" --agent "$build/agent/kova-agent" \
        --vmm "$build/vmm/kova-vmm" --assets "$assets" --cloud-image "$image" \
        --deadline 600 2>&1 | tee -a "$out" | grep -E "BENCH|FAIL|failure" >&2
done
echo "cloudinit-bench: the whole output is in $out" >&2
python3 - "$out" <<'PY'
import re, sys
rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"BENCH (\S+) (.*)", line)
    if m:
        rows.append((m.group(1), dict(kv.split("=") for kv in m.group(2).split())))
if not rows:
    sys.exit("cloudinit-bench: no BENCH lines (see the run's output above)")
cols = list(rows[0][1])
print("%-6s" % "server" + "".join("%14s" % c[:13] for c in cols))
for name, v in rows:
    print("%-6s" % name + "".join("%14s" % v.get(c, "-") for c in cols))
print("vm1: config drive, vm2: metadata service only")
PY
