#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reboot stress for kova-vmm (a tool, not a test): boots the Debian kernel + test initramfs with
a guest script that runs `reboot -f`, so each kova-vmm process restarts its guest again and again
(the same path as vmm.boot's reboot test), and counts boots that reach the init marker.

Usage (needs /dev/kvm; on this machine through the nested-KVM test VM):
  tests/nested/kova-nested-run --mem 5120 --timeout 1800 -- \\
      python3 tests/bench/vmm-reboot-stress.py KOVA_VMM ASSET_DIR [--cpus 4] [--memory 4096] \\
      [--boots 5] [--runs 3] [--log-level info]

Each run is one kova-vmm process that must reach the marker --boots times; then it is told to
quit. A run that ends otherwise (triple fault: exit 3, error: exit 2, hang) is a failure; its
stderr (with the faulting vCPU's registers) and console tail are printed. Exit status 1 if any
run failed.
"""
import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("vmm")
ap.add_argument("assets")
ap.add_argument("--cpus", type=int, default=4)
ap.add_argument("--memory", type=int, default=4096)
ap.add_argument("--boots", type=int, default=5)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--boot-timeout", type=float, default=150)
ap.add_argument("--log-level", default="info")
ap.add_argument("--ktrace", action="store_true",
                help="record KVM's trace events (tracefs, root) and print the failing vCPU's last "
                "ones: on AMD, KVM re-INITs a vCPU at a triple fault, so its registers are gone")
a = ap.parse_args()

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vmm"))
import kvmtrace  # noqa: E402

if a.ktrace and not kvmtrace.start(16384):
    print("--ktrace: cannot turn on KVM's trace events (root and tracefs needed)")
    sys.exit(2)

tmp = tempfile.mkdtemp(prefix="kova-reboot-stress.")
script = "echo NPROC=$(nproc); echo KOVA-REBOOTING; reboot -f\n"
cmdline = ("console=ttyS0 quiet panic=-1 kova.script=" +
           base64.b64encode(script.encode()).decode())
failed = 0
total_boots = 0
for run in range(a.runs):
    sock = os.path.join(tmp, f"run{run}.sock")
    errlog = os.path.join(tmp, f"run{run}.stderr")
    err = open(errlog, "w")
    p = subprocess.Popen([a.vmm, "--kernel", os.path.join(a.assets, "vmlinuz"), "--initrd",
                          os.path.join(a.assets, "guest-initrd.cpio.gz"), "--cmdline", cmdline,
                          "--cpus", str(a.cpus), "--memory", str(a.memory), "--console-stdout",
                          "--control-socket", sock, "--log-level", a.log_level],
                         stdout=subprocess.PIPE, stderr=err)
    lines = []
    markers = []
    cond = threading.Condition()

    def reader():
        for raw in p.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            with cond:
                lines.append(line)
                if "KOVA-GUEST-READY" in line:
                    markers.append(time.monotonic())
                cond.notify_all()
        with cond:
            cond.notify_all()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t0 = time.monotonic()
    ok = True
    with cond:
        while len(markers) < a.boots:
            last = markers[-1] if markers else t0
            left = last + a.boot_timeout - time.monotonic()
            if p.poll() is not None or left <= 0:
                ok = False
                break
            cond.wait(min(left, 1.0))
        n = len(markers)
    if ok:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(sock)
            s.sendall(b'{"cmd":"quit"}\n')
            s.recv(4096)
            s.close()
        except OSError as e:
            print(f"run {run}: quit failed: {e}")
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
        ok = False
    t.join(5)
    err.close()
    if a.ktrace and rc == 0 and ok:
        kvmtrace.clear()
    # A run that reached all its markers may still have rebooted once more before the quit:
    # only the exit status after quit matters then.
    ok = ok and rc == 0
    total_boots += n
    dt = time.monotonic() - t0
    print(f"run {run}: {n} boots reached the marker in {dt:.0f} s, exit {rc}: "
          f"{'ok' if ok else 'FAILED'}", flush=True)
    if not ok:
        failed += 1
        if a.ktrace:
            print(kvmtrace.triple_fault_report(open(errlog).read(), 150))
        print("---- stderr ----")
        print(open(errlog).read()[-6000:])
        print("---- console tail ----")
        print("\n".join(lines[-40:]), flush=True)
print(f"{total_boots} boots, {a.runs - failed}/{a.runs} runs ok ({a.cpus} vCPUs, {a.memory} MiB)")
sys.exit(1 if failed else 0)
