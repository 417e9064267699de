#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# vmm-boot.sh [N] — benchmark (not a test): boots the Debian kernel + the test initramfs N times
# (default 5) with kova-vmm and with `qemu-system-x86_64 -M microvm -enable-kvm`, alternating, in
# the same KVM environment (the nested-KVM test VM unless the host KVM boots stock kernels), and prints for
# each the median boot-to-init time and VMM memory overhead, and the ratios.
#   boot-to-init: wall time from spawning the VMM to the guest's "KOVA-GUEST-READY" line on the
#                 serial console (the same measure for both; kova's own boot timer is shown too)
#   overhead:     the VMM process's RSS beyond guest RAM (all mappings but the guest RAM one),
#                 sampled when the marker appears
# Environment: KOVA_BUILD_DIR (default build/c), KOVA_ASSETS (default build/assets),
#              KOVA_BENCH_MEM (guest MiB, default 256), KOVA_BENCH_CPUS (default 1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
n=${1:-5}
bench_in_test_vm vmm/kova-vmm $((120 + n * 120)) 2048 "$0" "$n"

KOVA_BENCH_DIR=$here exec python3 - "$n" <<'PY'
import os, signal, subprocess, sys, threading, time
sys.path.insert(0, os.environ["KOVA_BENCH_DIR"])
from bootbench import overhead_kib, print_medians

n = int(sys.argv[1])
build, assets = os.environ["KOVA_BUILD_DIR"], os.environ["KOVA_ASSETS"]
mem = int(os.environ.get("KOVA_BENCH_MEM", "256"))
cpus = int(os.environ.get("KOVA_BENCH_CPUS", "1"))
kernel, initrd = f"{assets}/vmlinuz", f"{assets}/guest-initrd.cpio.gz"
cmdline = "console=ttyS0 quiet panic=-1 kova.stay=1"


def run(kind):
    if kind == "kova":
        args = [f"{build}/vmm/kova-vmm", "--kernel", kernel, "--initrd", initrd, "--cmdline",
                cmdline, "--cpus", str(cpus), "--memory", str(mem), "--console-stdout",
                "--log-level", "info"]
    else:
        args = ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", "-cpu", "host",
                "-m", str(mem), "-smp", str(cpus), "-nodefaults", "-no-user-config",
                "-nographic", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
                "-append", cmdline]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    err = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    t_ready, ovh, guest = None, None, None
    deadline = threading.Timer(180, p.kill)
    deadline.start()
    for raw in p.stdout:
        if b"KOVA-GUEST-READY" in raw:
            t_ready = time.monotonic() - t0
            ovh, guest = overhead_kib(p.pid)
            break
    deadline.cancel()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    timer = None
    for e in err:
        if b"guest init started" in e:
            timer = float(e.split(b"started ")[1].split(b" ms")[0]) / 1000
    if t_ready is None:
        sys.stderr.write(f"{kind}: no marker; stderr: {b''.join(err)[-400:]!r}\n")
    return t_ready, ovh, guest, timer


res = {"kova": [], "qemu": []}
for i in range(n):
    for kind in ("kova", "qemu"):
        t, ovh, guest, timer = run(kind)
        if t is not None:
            res[kind].append((t, ovh))
        extra = f", VMM boot timer {timer:.2f} s" if timer else ""
        print(f"run {i + 1} {kind:4}: boot-to-init {t if t else float('nan'):.2f} s, "
              f"overhead {ovh if ovh is not None else -1} KiB (guest RAM touched {guest} KiB){extra}",
              flush=True)

print(f"\n{cpus} vCPU, {mem} MiB, {n} boots each; medians:")
print_medians(res, "boot-to-init")
PY
