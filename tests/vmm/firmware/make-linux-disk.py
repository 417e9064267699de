#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make-linux-disk.py KERNEL INITRD OUT [--stay|--reboot]: a 64 MiB raw disk that boots the test guest
through GRUB.

Laid out as a BIOS disk: an MBR partition table with one ext4 partition from 1 MiB (made with
mkfs.ext4 -E offset -d, no loop device), GRUB's i386-pc boot.img in the MBR and its core.img
(grub-mkimage, Debian's grub-pc-bin) in the gap after it, /boot/grub with grub.cfg and the
modules, and the kernel + initramfs in /boot. grub.cfg talks on the serial port and boots the
test guest (tests/assets/guest-init) with a kova.script that prints what the firmware told
Linux: DMI-PRODUCT, DMI-SERIAL, DMI-UUID (SMBIOS), NPROC, and ACPI-TABLES (the tables Linux
found); the guest then powers off through ACPI, or with --stay (kova.stay=1) keeps running until
its ACPI power button is pressed, as a server's guest does, or with --reboot prints KOVA-REBOOTING
and reboots itself (reboot -f: Linux jumps to the BIOS's reset vector, SeaBIOS resets the machine
through the reset control register), on every boot."""
import base64
import os
import shutil
import struct
import subprocess
import sys
import tempfile

GRUB = "/usr/lib/grub/i386-pc"
SIZE = 64 << 20
PART_START = 2048  # sectors: 1 MiB, leaves the gap for core.img

SCRIPT = """echo DMI-PRODUCT=$(cat /sys/class/dmi/id/product_name)
echo DMI-SERIAL=$(cat /sys/class/dmi/id/product_serial)
echo DMI-UUID=$(cat /sys/class/dmi/id/product_uuid)
echo NPROC=$(nproc)
echo ACPI-TABLES=$(ls /sys/firmware/acpi/tables | tr '\\n' ' ')
"""


def main():
    kernel, initrd, out = sys.argv[1:4]
    mode = sys.argv[4:]
    extra = " kova.stay=1" if mode == ["--stay"] else ""
    script = SCRIPT + ("echo KOVA-REBOOTING; reboot -f\n" if mode == ["--reboot"] else "")
    work = tempfile.mkdtemp(prefix="kova-fw-disk.")
    try:
        root = os.path.join(work, "root")
        mods = os.path.join(root, "boot/grub/i386-pc")
        os.makedirs(mods)
        for f in os.listdir(GRUB):
            if f.endswith((".mod", ".lst")):
                shutil.copy(os.path.join(GRUB, f), mods)
        shutil.copy(kernel, os.path.join(root, "boot/vmlinuz"))
        shutil.copy(initrd, os.path.join(root, "boot/initrd.gz"))
        script = base64.b64encode(script.encode()).decode()
        with open(os.path.join(root, "boot/grub/grub.cfg"), "w") as f:
            f.write("serial --unit=0 --speed=115200\nterminal_input serial\n"
                    "terminal_output serial\nset timeout=0\n"
                    "menuentry \"kova test guest\" {\n"
                    "    echo \"kova-grub: loading the kernel\"\n"
                    "    linux /boot/vmlinuz console=ttyS0 panic=-1 kova.script=%s%s\n"
                    "    initrd /boot/initrd.gz\n}\n" % (script, extra))
        tmp = out + ".tmp"
        mbr = bytearray(512)
        count = SIZE // 512 - PART_START
        # one bootable Linux partition, addressed by LBA (CHS fields saturated)
        mbr[446:462] = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff",
                                   PART_START, count)
        mbr[510:512] = b"\x55\xaa"
        with open(tmp, "wb") as f:
            f.write(mbr)
            f.truncate(SIZE)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "kova-root", "-E",
                        "offset=%d" % (PART_START * 512), "-d", root, tmp,
                        "%dk" % (count // 2)], check=True)
        core = os.path.join(work, "core.img")
        subprocess.run(["grub-mkimage", "-O", "i386-pc", "-o", core, "-p",
                        "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2"], check=True)
        boot = open(os.path.join(GRUB, "boot.img"), "rb").read()
        img = bytearray(open(core, "rb").read())
        sectors = (len(img) + 511) // 512
        if 1 + sectors > PART_START:
            sys.exit("make-linux-disk.py: core.img does not fit before the partition")
        img += b"\0" * (sectors * 512 - len(img))
        # diskboot.img's block list: the rest of core.img from sector 2, loaded at 0x8200
        struct.pack_into("<QHH", img, 0x1f4, 2, sectors - 1, 0x0820)
        with open(tmp, "r+b") as f:
            m = bytearray(f.read(512))
            m[0:440] = boot[0:440]  # boot.img's code; the partition table stays
            struct.pack_into("<Q", m, 0x5c, 1)  # boot.img loads core.img's first sector from LBA 1
            f.seek(0)
            f.write(m)
            f.seek(512)
            f.write(img)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
