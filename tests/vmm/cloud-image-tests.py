#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""kova-vmm boots the test cloud image (tests/assets/build-cloud-image.sh: Debian 12 with
linux-image-cloud-amd64, systemd, cloud-init, laid out as Debian's genericcloud image) through
SeaBIOS and GRUB; it needs /dev/kvm (ctest runs it in the nested-KVM test VM).

The image boots unmodified from a qcow2 overlay over it; a second disk is a cloud-init NoCloud
seed (cloud/make-seed.sh) whose per-boot script, once the serial getty runs, prints what the guest
read through dmidecode and its CPU count, then reboots (first boot) or powers off (second).
Checks, for each vCPU count given: SeaBIOS and GRUB on console.log, Debian's `login:` prompt,
dmidecode's SMBIOS fields (manufacturer OpenStack Foundation, product OpenStack Nova, family
Virtual Machine, serial and UUID = --uuid), the vCPU count, `systemctl reboot` coming back
through SeaBIOS and GRUB to a second login prompt in the same kova-vmm, and `systemctl poweroff`
ending kova-vmm with 0.
Usage: cloud-image-tests.py KOVA_VMM IMAGE_QCOW2 MAKE_SEED CPUS[,CPUS...]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmmcheck import check, failures, wait_exit  # noqa: E402

VMM, IMAGE, MAKE_SEED, CPUS = sys.argv[1:5]
IMAGE = os.path.abspath(IMAGE)
UUID = "6a1e4f3c-2b7d-4e58-9c01-3f5a7b9d2e40"
TMP = tempfile.mkdtemp(prefix="kova-cloud-test.")


def text_of(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_count(path, pattern, n, proc, timeout):
    """Until pattern (a regex) matches n times in the log; False if the VMM exits or time is up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(re.findall(pattern, text_of(path))) >= n:
            return True
        if proc.poll() is not None:
            return len(re.findall(pattern, text_of(path))) >= n
        time.sleep(0.5)
    return False


def boot(cpus):
    name = "cloud-%dcpu" % cpus
    log = os.path.join(TMP, name + ".console.log")
    disk = os.path.join(TMP, name + ".qcow2")
    seed = os.path.join(TMP, name + ".seed")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", IMAGE, disk],
                   check=True)
    subprocess.run([MAKE_SEED, seed, "reboot,poweroff"], check=True)
    err = open(os.path.join(TMP, name + ".stderr"), "w")
    args = [VMM, "--disk", "path=%s,format=qcow2" % disk,
            "--disk", "path=%s,format=raw,readonly=on" % seed, "--cpus", str(cpus),
            "--memory", "512", "--console-log", log, "--uuid", UUID]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    login = r"\n\S+ login: "
    ok = wait_count(log, login, 1, p, 900)
    check(ok, "%s: Debian's login: prompt on console.log (%.0f s)" % (name, time.monotonic() - t0))
    text = text_of(log)
    check("Booting from Hard Disk" in text and "Loading Linux" in text,
          "%s: SeaBIOS booted the disk, GRUB loaded Linux" % name)
    ok = wait_count(log, r"kova-test: ACTION=", 1, p, 300)
    text = text_of(log)
    m = re.search(r"kova-test: DMI (.*)", text)
    dmi = m.group(1).strip() if m else ""
    want = ("product=OpenStack Nova manufacturer=OpenStack Foundation family=Virtual Machine "
            "serial=%s uuid=%s" % (UUID, UUID))
    check(dmi == want, "%s: dmidecode in the guest: %s" % (name, dmi or "(nothing)"))
    check("kova-test: NPROC=%d" % cpus in text, "%s: the guest runs %d vCPUs" % (name, cpus))
    t1 = time.monotonic()
    ok = wait_count(log, login, 2, p, 900) and wait_count(log, r"kova-test: BOOT=2", 1, p, 300)
    after = text_of(log).split("kova-test: ACTION=reboot", 1)[-1]
    check(ok and "Booting from Hard Disk" in after and "Loading Linux" in after,
          "%s: systemctl reboot came back through SeaBIOS and GRUB to login: (%.0f s)"
          % (name, time.monotonic() - t1))
    rc = wait_exit(p, 300)
    err.close()
    check(rc == 0 and "kova-test: ACTION=poweroff" in text_of(log),
          "%s: systemctl poweroff ends kova-vmm with 0 (got %s; %.0f s in all)"
          % (name, rc, time.monotonic() - t0))
    r = subprocess.run(["qemu-img", "check", disk], capture_output=True, text=True)
    check(r.returncode == 0, "%s: qemu-img check of the overlay is clean" % name)
    if failures:
        print(text_of(os.path.join(TMP, name + ".stderr"))[-3000:])
        print(text_of(log)[-5000:])


def main():
    for cpus in CPUS.split(","):
        boot(int(cpus))
    shutil.rmtree(TMP, ignore_errors=True)
    print("cloud image tests: %d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
