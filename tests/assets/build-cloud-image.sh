#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the test cloud image, a twin of Debian's debian-12-genericcloud-amd64.qcow2 (which
# cannot be downloaded here), from Debian packages, and caches it (never committed):
#   debian-12-kova-cloud-amd64.qcow2   compressed qcow2, 2 GiB virtual
#
# What is in it, as in Debian's image: Debian 12 from mmdebstrap with linux-image-cloud-amd64,
# systemd (with dbus: logind, which powers off on the ACPI power button, needs it), cloud-init,
# openssh-server, ifupdown + isc-dhcp-client, sudo; root locked, no host
# keys (cloud-init makes them), an empty machine-id (first boot). The disk is laid out as
# Debian's: GPT with partition 14 the BIOS boot partition (GRUB's core.img), 15 the EFI system
# partition (vfat, empty: kova boots through SeaBIOS only), 1 the ext4 root. GRUB i386-pc on the
# serial console with Debian's kernel command line (console=tty0 console=ttyS0,115200 ...).
#
# No loop device and no mount: the root is made with mkfs.ext4 -d from the mmdebstrap tree, the
# ESP with mkfs.vfat on a file, the partition table with sgdisk on the image file, and GRUB by
# hand as grub-install would (boot.img in the MBR, core.img from grub-mkimage in partition 14).
# Debian's image also has grub-pc (to rerun update-grub on kernel upgrades); this one has
# grub-pc-bin and a fixed grub.cfg, because grub-pc's postinst wants a real disk.
#
# Output directory: $KOVA_ASSETS, default <project>/build/assets. Needs root (mmdebstrap's root
# mode), network access to a Debian mirror (the host's apt sources), and the tools from
# deploy/install-deps.sh. Safe to run concurrently (flock) and repeatedly (a stamp).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${KOVA_ASSETS:-$top/build/assets}
name=debian-12-kova-cloud-amd64.qcow2
mkdir -p "$out"
exec 9>"$out/.cloud-image.lock"
flock 9

die() { echo "build-cloud-image: $*" >&2; exit 1; }
for tool in mmdebstrap sgdisk mkfs.ext4 mkfs.vfat grub-mkimage qemu-img; do
    command -v "$tool" >/dev/null || die "missing $tool (run deploy/install-deps.sh)"
done

suite=bookworm
mirror=${KOVA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${KOVA_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
packages=systemd-sysv,udev,dbus,kmod,linux-image-cloud-amd64,initramfs-tools,cloud-init,openssh-server
packages+=,ifupdown,isc-dhcp-client,sudo,iproute2,iputils-ping,netbase,dmidecode,e2fsprogs
packages+=,grub-pc-bin,procps,less,ca-certificates,cloud-guest-utils
# net-tools: cloud-init 22.4's ifupdown renderer puts a static network's routes in
# `post-up route add ... || true`; without `route` a NIC configured from network_data.json
# (config drive or metadata service) has no default route
packages+=,net-tools

# The stamp covers this script; the packages' versions are whatever the mirror has on the day
# of the build (delete the image to rebuild).
stamp=$(sha1sum <"$0" | cut -c1-16)
if [ -f "$out/$name" ] && [ "$(cat "$out/.cloud-image.stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
rm -f "$out/.cloud-image.stamp"

work=$(mktemp -d "$out/.cloud-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "build-cloud-image: mmdebstrap $suite" >&2
mmdebstrap --quiet --variant=minbase --include="$packages" "$suite" "$root" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb $security $suite-security main"

kver=$(cd "$root/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -1)
[ -n "$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] || die "no kernel + initrd in the image"

# Sizes in 512-byte sectors, as Debian's genericcloud image: 2 GiB, partitions 14, 15, 1.
total=$((2 << 21))
bios_start=2048 bios_end=8191
esp_start=8192 esp_end=262143
root_start=262144 root_end=$((total - 34)) # the backup GPT takes the last 33 sectors
root_uuid=$(cat /proc/sys/kernel/random/uuid)
esp_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
esp_uuid=$(printf '%s-%s' "${esp_id:0:4}" "${esp_id:4:4}" | tr a-f A-F)

# The system's configuration, as Debian's image sets it.
cat >"$root/etc/fstab" <<EOF
UUID=$root_uuid / ext4 rw,discard,errors=remount-ro 0 1
UUID=$esp_uuid /boot/efi vfat defaults,nofail 0 0
EOF
mkdir -p "$root/boot/efi"
echo localhost >"$root/etc/hostname"
: >"$root/etc/machine-id"
# no resolver of the build host's (mmdebstrap copies its resolv.conf): a guest whose DHCP gives
# no DNS server then waits 30 s per lookup to an address it cannot reach (cloud-init's DNS
# redirection check, sudo's own hostname); an empty file means the local resolver, which fails
# at once
rm -f "$root/etc/resolv.conf"
: >"$root/etc/resolv.conf"
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/network/interfaces" <<'EOF'
# interfaces(5): cloud-init writes the instance's interfaces into interfaces.d
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log

# GRUB: modules and a fixed grub.cfg in /boot/grub (as grub-install and update-grub leave them).
mkdir -p "$root/boot/grub/i386-pc"
cp "$root"/usr/lib/grub/i386-pc/*.mod "$root"/usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cmdline="root=UUID=$root_uuid ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200"
cmdline+=" consoleblank=0"
cat >"$root/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry 'Debian GNU/Linux, with Linux $kver' {
    insmod part_gpt
    insmod ext2
    search --no-floppy --fs-uuid --set=root $root_uuid
    echo 'Loading Linux $kver ...'
    linux /boot/vmlinuz-$kver $cmdline
    echo 'Loading initial ramdisk ...'
    initrd /boot/initrd.img-$kver
}
EOF

echo "build-cloud-image: laying out the disk (kernel $kver)" >&2
raw=$work/disk.raw
truncate -s $((total * 512)) "$raw"
sgdisk --clear \
    --new=14:$bios_start:$bios_end --typecode=14:EF02 \
    --new=15:$esp_start:$esp_end --typecode=15:EF00 \
    --new=1:$root_start:$root_end --typecode=1:8300 "$raw" >/dev/null
mkfs.ext4 -q -F -U "$root_uuid" -E offset=$((root_start * 512)) -d "$root" "$raw" \
    "$(((root_end - root_start + 1) / 2))k"
mkfs.vfat -n UEFI -i "$esp_id" -C "$work/esp.vfat" $(((esp_end - esp_start + 1) / 2)) >/dev/null
dd if="$work/esp.vfat" of="$raw" bs=512 seek=$esp_start conv=notrunc status=none

# GRUB as grub-install --target=i386-pc does it on a GPT disk: core.img (biosdisk, part_gpt,
# ext2, prefix on partition 1) in the BIOS boot partition; boot.img's code in the MBR (the
# protective partition table stays), pointing at core.img's first sector; diskboot's block list
# in core.img's first sector covering the rest of it.
grub_dir=$root/usr/lib/grub/i386-pc
grub-mkimage -d "$grub_dir" -O i386-pc -o "$work/core.img" -p "(hd0,gpt1)/boot/grub" \
    biosdisk part_gpt ext2
python3 - "$raw" "$grub_dir/boot.img" "$work/core.img" "$bios_start" "$bios_end" <<'EOF'
import struct, sys
raw, boot_img, core_img, start, end = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
boot = open(boot_img, "rb").read()
core = bytearray(open(core_img, "rb").read())
sectors = (len(core) + 511) // 512
if sectors > end - start + 1:
    sys.exit("build-cloud-image: core.img does not fit the BIOS boot partition")
core += b"\0" * (sectors * 512 - len(core))
struct.pack_into("<QHH", core, 0x1f4, start + 1, sectors - 1, 0x0820)
with open(raw, "r+b") as f:
    mbr = bytearray(f.read(512))
    mbr[0:440] = boot[0:440]
    struct.pack_into("<Q", mbr, 0x5c, start)
    f.seek(0)
    f.write(mbr)
    f.seek(start * 512)
    f.write(core)
EOF

echo "build-cloud-image: converting to compressed qcow2" >&2
qemu-img convert -c -f raw -O qcow2 "$raw" "$work/$name"
mv -f "$work/$name" "$out/$name"
echo "$kver" >"$out/debian-12-kova-cloud-amd64.kernel-version"
echo "$stamp" >"$out/.cloud-image.stamp"
echo "build-cloud-image: $out/$name ready ($(du -h "$out/$name" | cut -f1), kernel $kver)" >&2
