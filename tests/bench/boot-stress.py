#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The inside of tests/bench/boot-stress.sh (which has the options): runs where /dev/kvm boots
stock kernels (the nested-KVM test VM here) and boots the test guest again and again with kova-vmm
and with QEMU, PARALLEL VMMs of one kind at a time, and counts failed boots.

A boot passes when the guest prints "KOVA-GUEST-READY" and then its
"guest-init: ... cpus=N" line with every vCPU online, nothing on the console looks like a guest
fault (panic, oops, BUG, double fault, general protection, "traps:"), and the VMM exits with
status 0 after the guest's poweroff. Anything else is a failure, printed with the VMM's stderr
and console tails (and, with --ktrace, the last KVM events of the failed kova-vmm's threads).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--boots", type=int, default=54)
ap.add_argument("--cpus", default="1,2,4")
ap.add_argument("--parallel", type=int, default=2)
ap.add_argument("--mem", type=int, default=256)
ap.add_argument("--kinds", default="kova,qemu")
ap.add_argument("--append", default="")
ap.add_argument("--ktrace", action="store_true")
ap.add_argument("--stage", action="store_true")
ap.add_argument("--host-load", type=int, default=0)  # used outside the test VM
ap.add_argument("--vm-cpus", type=int, default=2)  # used outside the test VM
ap.add_argument("--timeout", type=int, default=0)  # used outside the test VM
a = ap.parse_args()

build, assets = os.environ["KOVA_BUILD_DIR"], os.environ["KOVA_ASSETS"]
kernel, initrd = f"{assets}/vmlinuz", f"{assets}/guest-initrd.cpio.gz"
if a.stage:  # the guest's kernel and initramfs from the test VM's tmpfs instead of 9p
    import shutil
    sd = tempfile.mkdtemp(prefix="kova-boot-stage.", dir="/tmp")
    kernel, initrd = shutil.copy(kernel, sd), shutil.copy(initrd, sd)
cpus_list = [int(x) for x in a.cpus.split(",") if x]
kinds = [k for k in a.kinds.split(",") if k]
if not cpus_list or any(k not in ("kova", "qemu") for k in kinds) or a.parallel < 1:
    print("boot-stress: bad --cpus, --kinds or --parallel")
    sys.exit(2)
cmdline = "console=ttyS0 quiet panic=-1 " + a.append
BOOT_TIMEOUT = 150
FAULT = re.compile(rb"Kernel panic|Oops|BUG:|double fault|general protection|traps:|"
                   rb"unable to handle|Unable to handle")

TRACE = "/sys/kernel/tracing"
tmp = tempfile.mkdtemp(prefix="kova-boot-stress.")


def tw(name, value):
    with open(os.path.join(TRACE, name), "w") as f:
        f.write(value)


def ktrace_start():
    if not os.path.exists(os.path.join(TRACE, "trace")):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACE], capture_output=True)
    tw("tracing_on", "0")
    tw("buffer_size_kb", "16384")
    tw("options/record-tgid", "1")
    tw("trace", "")
    for ev in ("kvm_exit", "kvm_entry", "kvm_inj_exception", "kvm_page_fault", "kvm_inj_virq",
               "kvm_cr", "kvm_msr", "kvm_apic_ipi", "kvm_emulate_insn", "kvm_pic_set_irq",
               "kvm_apic_accept_irq", "kvm_nested_vmexit"):
        path = os.path.join("events", "kvm", ev, "enable")
        if os.path.exists(os.path.join(TRACE, path)):
            tw(path, "1")
    tw("tracing_on", "1")


def ktrace_report(pid, last=120):
    try:
        tw("tracing_on", "0")
        with open(os.path.join(TRACE, "trace"), errors="replace") as f:
            lines = f.read().splitlines()
        tw("tracing_on", "1")
    except OSError as e:
        return f"(no trace: {e})"
    mine = [x for x in lines if re.search(rf"\(\s*{pid}\)", x)]
    return "\n".join([f"--- KVM trace: last {min(last, len(mine))} events of pid {pid} ---"] +
                     mine[-last:])


def vmm_args(kind, cpus):
    if kind == "kova":
        return [f"{build}/vmm/kova-vmm", "--kernel", kernel, "--initrd", initrd, "--cmdline",
                cmdline, "--cpus", str(cpus), "--memory", str(a.mem), "--console-stdout",
                "--log-level", "info"]
    return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m",
            str(a.mem), "-smp", str(cpus), "-nodefaults", "-no-user-config", "-nographic",
            "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd, "-append",
            cmdline]


class Boot:
    def __init__(self, kind, cpus, n):
        self.kind, self.cpus, self.n = kind, cpus, n
        self.err = open(os.path.join(tmp, f"{kind}-{n}.stderr"), "w+b")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(vmm_args(kind, cpus), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self.err)
        self.out = bytearray()
        self.t_ready = None
        self.th = threading.Thread(target=self.read, daemon=True)
        self.th.start()

    def read(self):
        for line in self.p.stdout:
            self.out += line
            if self.t_ready is None and b"KOVA-GUEST-READY" in line:
                self.t_ready = time.monotonic() - self.t0

    def finish(self):
        """Waits for the end; returns None when the boot passed, else why it failed."""
        deadline = self.t0 + BOOT_TIMEOUT
        try:
            rc = self.p.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
            why = "timeout (no poweroff in %d s)" % BOOT_TIMEOUT
        else:
            why = None
        self.th.join(10)
        out = bytes(self.out)
        m = re.search(rb"guest-init: \S+ cpus=(\d+)", out)
        if why:
            pass
        elif self.t_ready is None:
            why = f"no init marker (exit status {rc})"
        elif not m or int(m.group(1)) != self.cpus:
            why = f"not every vCPU came up ({m.group(1).decode() if m else '?'} of {self.cpus})"
        elif FAULT.search(out):
            why = "a guest fault on the console"
        elif rc != 0:
            why = f"exit status {rc} after the marker"
        return why

    def report(self, why):
        self.err.seek(0)
        err = self.err.read().decode(errors="replace")
        out = bytes(self.out).decode(errors="replace")
        print(f"FAIL {self.kind} cpus={self.cpus} boot #{self.n}: {why}")
        print("  --- stderr (tail)\n" + "\n".join("  | " + x for x in err.splitlines()[-40:]))
        print("  --- console (tail)\n" + "\n".join("  | " + x for x in out.splitlines()[-25:]))
        if a.ktrace and self.kind == "kova":
            print(ktrace_report(self.p.pid))
        sys.stdout.flush()


if a.ktrace:
    ktrace_start()

rounds = -(-a.boots // (len(cpus_list) * a.parallel))
res = {(k, c): [] for k in kinds for c in cpus_list}
fails = {(k, c): 0 for k in kinds for c in cpus_list}
n = 0
t_start = time.monotonic()
print(f"boot-stress: {rounds} rounds x {len(cpus_list)} vCPU counts x {a.parallel} at once, "
      f"kinds {','.join(kinds)}, {a.mem} MiB, cmdline '{cmdline.strip()}'", flush=True)
for r in range(rounds):
    for cpus in cpus_list:
        for kind in kinds:
            if a.ktrace:
                subprocess.run(["sh", "-c", f"echo > {TRACE}/trace"])
            # a heartbeat: a stall (of the test VM itself) shows which group it hit
            print(f"  round {r + 1}: {a.parallel} x {kind} with {cpus} vCPU(s), "
                  f"{time.monotonic() - t_start:.0f} s", flush=True)
            boots = []
            for _ in range(a.parallel):
                n += 1
                boots.append(Boot(kind, cpus, n))
            for b in boots:
                why = b.finish()
                if why:
                    fails[(kind, cpus)] += 1
                    b.report(why)
                else:
                    res[(kind, cpus)].append(b.t_ready)
    done = sum(len(v) for v in res.values()) + sum(fails.values())
    print(f"round {r + 1}/{rounds}: {done} boots, failures " +
          ", ".join(f"{k} {sum(v for (kk, _), v in fails.items() if kk == k)}" for k in kinds) +
          f", {time.monotonic() - t_start:.0f} s", flush=True)

# The test VM's own kernel: soft lockups, warnings and oopses during the run (part of the picture
# when boots fail or stall).
dm = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()
bad = [x for x in dm if re.search(r"soft lockup|hard LOCKUP|WARNING|BUG|Oops|rcu.*stall|hung_task", x)]
print(f"\ntest VM kernel: {len(bad)} lockup/warning lines" + ("".join("\n  | " + x for x in bad[-20:])))

print(f"\n{'kind':5} {'vCPUs':>5} {'boots':>6} {'failed':>7} {'median boot-to-init':>20}")
tot = {k: [0, 0] for k in kinds}
for k in kinds:
    for c in cpus_list:
        ok, bad = len(res[(k, c)]), fails[(k, c)]
        tot[k][0] += ok + bad
        tot[k][1] += bad
        med = f"{statistics.median(res[(k, c)]):.2f} s" if ok else "-"
        print(f"{k:5} {c:>5} {ok + bad:>6} {bad:>7} {med:>20}")
for k in kinds:
    print(f"{k}: {tot[k][0]} boots, {tot[k][1]} failed")
if "kova" in kinds and "qemu" in kinds:
    for c in cpus_list:
        if res[("kova", c)] and res[("qemu", c)]:
            print(f"ratio kova/qemu boot-to-init at {c} vCPU(s): "
                  f"{statistics.median(res[('kova', c)]) / statistics.median(res[('qemu', c)]):.2f}x")
sys.exit(1 if "kova" in kinds and tot["kova"][1] else 0)
