#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# cloud-boot.sh [N] — benchmark (not a test): boots the test cloud image
# (tests/assets/build-cloud-image.sh: Debian 12 genericcloud's twin) N times (default 1) with
# kova-vmm and with `qemu-system-x86_64 -M q35 -enable-kvm`, alternating, both from the same
# SeaBIOS file (KOVA_BENCH_BIOS, default kova-vmm's /usr/share/seabios/bios-microvm.bin), in the
# same KVM environment (the nested-KVM test VM unless the host KVM boots stock kernels); prints for
# each the time to Debian's `login:` prompt and the VMM's memory overhead, and the ratios.
#   to login:  wall time from spawning the VMM to "login: " on the serial console
#   overhead:  the VMM process's RSS beyond guest RAM (tests/bench/bootbench.py), at login:
#   phases:    the same time split at console markers: firmware (to GRUB's menu entry), grub
#              (loading the kernel and initrd), kernel, initramfs, userspace (systemd to login:)
# Both guests see the same machine from inside where it matters to the boot: a qcow2 overlay over
# the image (virtio-blk), the same cloud-init NoCloud seed disk (tests/vmm/cloud/make-seed.sh,
# the guest powers off once its getty runs), the same SMBIOS type 1 (QEMU's -smbios as Nova's
# libvirt sets it), the serial console on COM1. QEMU gets no NIC, display or other default device.
# Environment: KOVA_BUILD_DIR (default build/c), KOVA_ASSETS (default build/assets),
#              KOVA_BENCH_MEM (guest MiB, default 512), KOVA_BENCH_CPUS (default 1),
#              KOVA_BENCH_BIOS (both VMMs' firmware).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
n=${1:-1}
image=$KOVA_ASSETS/debian-12-kova-cloud-amd64.qcow2
[ -f "$image" ] || "$top/tests/assets/build-cloud-image.sh"
bench_in_test_vm vmm/kova-vmm $((120 + n * 1500)) 3072 "$0" "$n"

KOVA_BENCH_DIR=$here KOVA_SEED=$top/tests/vmm/cloud/make-seed.sh KOVA_IMAGE=$image \
    exec python3 - "$n" <<'PY'
import os, re, shutil, statistics, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.environ["KOVA_BENCH_DIR"])
from bootbench import overhead_kib, print_medians

n = int(sys.argv[1])
build, image, seed_tool = os.environ["KOVA_BUILD_DIR"], os.environ["KOVA_IMAGE"], os.environ["KOVA_SEED"]
mem = int(os.environ.get("KOVA_BENCH_MEM", "512"))
cpus = int(os.environ.get("KOVA_BENCH_CPUS", "1"))
bios = os.environ.get("KOVA_BENCH_BIOS", "/usr/share/seabios/bios-microvm.bin")
uuid = "0b6c2d9e-8f41-4a37-b5e2-7c9d1e3f5a60"
tmp = tempfile.mkdtemp(prefix="kova-cloud-bench.")
LOGIN = re.compile(rb"\n\S+ login: ")
# Where the boot is when these first show on the console (after the VMM's start and SeaBIOS,
# GRUB's menu entry; GRUB has loaded the kernel and initrd when Linux prints its version; the
# kernel's own start; the initramfs; Debian's systemd), then login:. Each phase ends at the next.
PHASES = [("firmware", b"Booting `Debian"), ("grub", b"Linux version"), ("kernel", b"Run /init"),
          ("initramfs", b"systemd[1]:"), ("userspace", None)]


def run(kind, i):
    disk, seed = f"{tmp}/{kind}{i}.qcow2", f"{tmp}/{kind}{i}.seed"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, disk],
                   check=True)
    subprocess.run([seed_tool, seed, "poweroff"], check=True)
    if kind == "kova":
        args = [f"{build}/vmm/kova-vmm", "--firmware", bios, "--disk", f"path={disk},format=qcow2",
                "--disk", f"path={seed},format=raw,readonly=on", "--cpus", str(cpus),
                "--memory", str(mem), "--uuid", uuid, "--console-stdout", "--log-level", "warn"]
    else:
        args = ["qemu-system-x86_64", "-M", "q35", "-enable-kvm", "-cpu", "host", "-bios", bios,
                "-m", str(mem), "-smp", str(cpus), "-nodefaults", "-no-user-config",
                "-nographic", "-serial", "stdio",
                "-smbios", "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,"
                f"family=Virtual Machine,serial={uuid},uuid={uuid}",
                "-drive", f"file={disk},format=qcow2,if=virtio",
                "-drive", f"file={seed},format=raw,if=virtio,readonly=on"]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    err = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    deadline = threading.Timer(1400, p.kill)
    deadline.start()
    buf, t_login, ovh, marks = b"", None, None, []
    while True:
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        # a marker may arrive split over reads (QEMU writes a byte at a time): look a bit back
        while len(marks) < len(PHASES) - 1 and PHASES[len(marks)][1] in buf[-len(chunk) - 64:]:
            marks.append(time.monotonic() - t0)
        if t_login is None and LOGIN.search(buf[-4096:] if len(buf) > 4096 else buf):
            t_login = time.monotonic() - t0
            ovh, _ = overhead_kib(p.pid)
            phases[kind].append([b - a for a, b in zip([0.0] + marks, marks + [t_login])]
                                if len(marks) == len(PHASES) - 1 else None)
    rc = p.wait()
    deadline.cancel()
    if t_login is None:
        sys.stderr.write(f"{kind}: no login: prompt (rc {rc}); stderr: {b''.join(err)[-400:]!r};"
                         f" console tail: {buf[-600:]!r}\n")
    return t_login, ovh, rc, time.monotonic() - t0


res = {"kova": [], "qemu": []}
phases = {"kova": [], "qemu": []}
for i in range(n):
    for kind in ("kova", "qemu"):
        t, ovh, rc, total = run(kind, i)
        if t is not None:
            res[kind].append((t, ovh))
        print(f"run {i + 1} {kind:4}: to login: {t if t else float('nan'):.1f} s, overhead "
              f"{ovh if ovh is not None else -1} KiB, powered off after {total:.1f} s (rc {rc})",
              flush=True)
shutil.rmtree(tmp, ignore_errors=True)

print(f"\n{cpus} vCPU, {mem} MiB, firmware {bios}, {n} boots each; medians:")
print_medians(res, "to login:")
print("  phases (median seconds each; the console's markers above PHASES):")
for i, (name, _) in enumerate(PHASES):
    med = {k: statistics.median(v[i] for v in phases[k] if v) for k in phases
           if any(phases[k])}
    if len(med) == 2:
        print(f"    {name:9}: kova {med['kova']:6.1f}, qemu {med['qemu']:6.1f}, "
              f"ratio {med['kova'] / med['qemu']:.2f}x")
PY
