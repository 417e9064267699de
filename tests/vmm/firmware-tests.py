#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""kova-vmm firmware-boot tests; they need /dev/kvm (ctest runs them in the nested-KVM test VM).

Boots a disk through Debian's SeaBIOS (no --kernel; its microvm build, kova-vmm's default, and
for the boot sector also its PC build): a boot sector (firmware/mbr.S) that reads
its disk's second sector through the BIOS (INT 13h on SeaBIOS's virtio-blk driver), prints it on
the console, checks the BIOS's E820 map (INT 15h) and finds the SMBIOS entry point and the ACPI
RSDP. Checks, with 1 and 2 vCPUs, a raw and a qcow2 disk: SeaBIOS's banner and boot messages on
console.log (etc/sercon-port), the boot sector's lines, the control socket's status while the
guest sits halted, and quit. QEMU (-M pc, same bios.bin) runs the same boot sector to the same
lines, except that its SMBIOS entry point is the 2.1 one.
Then Linux through GRUB (firmware/make-linux-disk.py): GRUB's menu and the kernel on
console.log, the test guest's marker, what Linux read from the firmware (SMBIOS product
"OpenStack Nova", serial and UUID = --uuid; the vCPU count; ACPI FACP/APIC/DSDT), the guest's
poweroff through ACPI ending kova-vmm with 0, and a reset through the control socket while GRUB
runs coming back through SeaBIOS and GRUB; and a guest that reboots itself (reboot -f: Linux
jumps to the BIOS's reset vector, SeaBIOS resets through the reset control register 0xCF9)
coming back through SeaBIOS and GRUB, twice, in the same kova-vmm.
Usage: firmware-tests.py KOVA_VMM DISK_RAW LINUX_DISK_RAW REBOOT_DISK_RAW [QEMU_IMG]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmmcheck import check, failures, wait_exit  # noqa: E402

VMM, DISK, LINUX_DISK, REBOOT_DISK = sys.argv[1:5]
QEMU_IMG = sys.argv[5] if len(sys.argv) > 5 else shutil.which("qemu-img")
UUID = "4f0c4b2e-53a1-4c55-9f7e-1c1d2b3a4c5d"
BIOS = "/usr/share/seabios/bios-microvm.bin"  # kova-vmm's default
PC_BIOS = "/usr/share/seabios/bios.bin"  # the PC build: the boot sector only (see README)
TMP = tempfile.mkdtemp(prefix="kova-fw-test.")


def ctl(sock, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    s.sendall((json.dumps({"cmd": cmd}) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf.decode())


def wait_log(path, text, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def boot(name, disk, fmt, cpus, bios=BIOS):
    log = os.path.join(TMP, name + ".console.log")
    sock = os.path.join(TMP, name + ".sock")
    err = open(os.path.join(TMP, name + ".stderr"), "w")
    args = [VMM, "--firmware", bios, "--disk", "path=%s,format=%s" % (disk, fmt),
            "--cpus", str(cpus), "--memory", "256", "--console-log", log,
            "--control-socket", sock, "--uuid", UUID]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    ok = wait_log(log, "kova-mbr: e820 ok", p, 120)
    took = time.monotonic() - t0
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    check(ok, "%s: the boot sector ran and found RAM in the E820 map (%.1f s)" % (name, took))
    check("SeaBIOS (version" in text, "%s: SeaBIOS's banner on console.log" % name)
    check("Booting from Hard Disk" in text, "%s: SeaBIOS booted the virtio disk" % name)
    check("kova-mbr: sector 2 read through the firmware" in text,
          "%s: INT 13h read the disk's second sector" % name)
    check(wait_log(log, "kova-mbr: smbios 3.0 entry point found", p, 30),
          "%s: SeaBIOS installed kova's SMBIOS entry point (fw_cfg)" % name)
    check(wait_log(log, "kova-mbr: acpi rsdp found", p, 30),
          "%s: SeaBIOS ran kova's ACPI table loader (the RSDP is in the BIOS area)" % name)
    if p.poll() is None:
        st = ctl(sock, "status")
        check(st.get("ok") and st.get("vcpus") == cpus, "%s: status answers (%r)" % (name, st))
        ctl(sock, "quit")
    rc = wait_exit(p, 20)
    err.close()
    check(rc == 0, "%s: quit ends kova-vmm with 0 (got %s)" % (name, rc))
    if failures:
        print(open(os.path.join(TMP, name + ".stderr")).read()[-3000:])
        print(text[-3000:])


def log_count(path, text):
    try:
        with open(path, errors="replace") as f:
            return f.read().count(text)
    except FileNotFoundError:
        return 0


def boot_linux(name, disk, cpus, reset=False):
    """GRUB -> Linux -> the guest's script -> poweroff; reset: once, while GRUB runs."""
    log = os.path.join(TMP, name + ".console.log")
    sock = os.path.join(TMP, name + ".sock")
    err = open(os.path.join(TMP, name + ".stderr"), "w")
    args = [VMM, "--disk", "path=%s,format=raw" % disk, "--cpus", str(cpus), "--memory", "512",
            "--console-log", log, "--control-socket", sock, "--uuid", UUID]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    if reset:
        got = wait_log(log, "kova-grub: loading the kernel", p, 120)
        check(got, "%s: GRUB runs its menu entry" % name)
        r = ctl(sock, "reset") if got else {}
        check(r.get("ok"), "%s: reset accepted while GRUB runs (%r)" % (name, r))
        end = time.monotonic() + 120
        while time.monotonic() < end and log_count(log, "kova-grub: loading the kernel") < 2 \
                and p.poll() is None:
            time.sleep(0.2)
        check(log_count(log, "SeaBIOS (version") == 2 and
              log_count(log, "kova-grub: loading the kernel") == 2,
              "%s: after the reset, SeaBIOS and GRUB run again" % name)
    done = wait_log(log, "KOVA-GUEST-RC=", p, 300)
    rc = wait_exit(p, 60)
    took = time.monotonic() - t0
    err.close()
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    check(done and "KOVA-GUEST-READY" in text,
          "%s: Linux booted by GRUB ran the test guest (%.1f s)" % (name, took))
    check("DMI-PRODUCT=OpenStack Nova" in text, "%s: SMBIOS product name OpenStack Nova" % name)
    check("DMI-SERIAL=%s" % UUID in text, "%s: SMBIOS serial = --uuid" % name)
    check("DMI-UUID=%s" % UUID in text, "%s: SMBIOS UUID = --uuid (product_uuid)" % name)
    check("NPROC=%d" % cpus in text, "%s: Linux sees %d vCPUs" % (name, cpus))
    tables = next((l for l in text.splitlines() if l.startswith("ACPI-TABLES=")), "")
    tables = tables[len("ACPI-TABLES="):].strip()
    check(all(t in tables.split() for t in ("APIC", "DSDT", "FACP")),
          "%s: Linux found kova's ACPI tables (%s)" % (name, tables))
    check(rc == 0, "%s: the guest's poweroff ends kova-vmm with 0 (got %s)" % (name, rc))
    if failures:
        print(open(os.path.join(TMP, name + ".stderr")).read()[-3000:])
        print(text[-4000:])


def boot_reboot(name, disk, cpus):
    """A guest that reboots itself on every boot: each comes back through SeaBIOS and GRUB."""
    log = os.path.join(TMP, name + ".console.log")
    sock = os.path.join(TMP, name + ".sock")
    err = open(os.path.join(TMP, name + ".stderr"), "w")
    args = [VMM, "--disk", "path=%s,format=raw" % disk, "--cpus", str(cpus), "--memory", "256",
            "--console-log", log, "--control-socket", sock, "--uuid", UUID]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    end = time.monotonic() + 300
    while time.monotonic() < end and log_count(log, "KOVA-REBOOTING") < 3 and p.poll() is None:
        time.sleep(0.2)
    n = log_count(log, "KOVA-REBOOTING")
    check(n >= 3, "%s: the guest rebooted itself and came back, twice (%d boots)" % (name, n))
    check(log_count(log, "SeaBIOS (version") >= 3 and
          log_count(log, "kova-grub: loading the kernel") >= 3,
          "%s: each reboot went through SeaBIOS and GRUB" % name)
    if p.poll() is None:
        ctl(sock, "quit")
    rc = wait_exit(p, 20)
    err.close()
    check(rc == 0, "%s: still running, quit ends kova-vmm with 0 (got %s)" % (name, rc))
    if failures:
        print(open(os.path.join(TMP, name + ".stderr")).read()[-3000:])
        print(open(log, errors="replace").read()[-3000:] if os.path.exists(log) else "")


def main():
    raw = os.path.join(TMP, "disk.raw")
    shutil.copy(DISK, raw)
    boot("raw-1cpu", raw, "raw", 1)
    boot("raw-2cpu", raw, "raw", 2)
    boot("raw-1cpu-pc-bios", raw, "raw", 1, bios=PC_BIOS)
    if QEMU_IMG:
        qcow = os.path.join(TMP, "disk.qcow2")
        subprocess.run([QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", raw, qcow], check=True)
        boot("qcow2-1cpu", qcow, "qcow2", 1)
    else:
        check(False, "qemu-img for the qcow2 disk")
    linux = os.path.join(TMP, "linux.raw")
    shutil.copy(LINUX_DISK, linux)
    boot_linux("linux-1cpu", linux, 1)
    boot_linux("linux-2cpu-reset", linux, 2, reset=True)
    reboot = os.path.join(TMP, "reboot.raw")
    shutil.copy(REBOOT_DISK, reboot)
    boot_reboot("linux-guest-reboot", reboot, 1)
    shutil.rmtree(TMP, ignore_errors=True)
    print("firmware boot tests: %d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
