#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the test assets from Debian packages and caches them (never committed):
#   vmlinuz              Debian's stock linux-image-*-amd64 bzImage (used by the nested-KVM
#                        test VM and by the test guest alike)
#   kernel-version       its version string
#   l1-initrd.cpio.gz    initramfs of the nested-KVM test VM (tests/nested/l1-init)
#   guest-initrd.cpio.gz initramfs of the test guest (tests/assets/guest-init)
#   guest-root.ext4      a small raw ext4 root disk for the test guest
#   l1-modules/          modules the tests insmod themselves in the test VM (its init loads only
#                        KVM, virtio and 9p): tun, bridge, veth, vhost_net and what they need,
#                        in the order of l1-modules/load-order; l1-modules/kernel-version
#
# Output directory: $KOVA_ASSETS, default <project>/build/assets. Safe to run concurrently
# (flock) and repeatedly (a stamp over the inputs skips work that is already done).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${KOVA_ASSETS:-$top/build/assets}
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

die() { echo "build-assets: $*" >&2; exit 1; }
for tool in apt-cache apt-get dpkg-deb depmod cpio gzip mkfs.ext4; do
    command -v "$tool" >/dev/null || die "missing $tool (run deploy/install-deps.sh)"
done
busybox=/bin/busybox
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
    die "busybox-static is not installed (run deploy/install-deps.sh)"

kpkg=${KOVA_KERNEL_PACKAGE:-$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (run 'apt-get update' or deploy/install-deps.sh)"

stamp=$(cat "$0" "$top/tests/nested/l1-init" "$here/guest-init" | sha1sum | cut -c1-16)-$kpkg
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
    exit 0
fi
rm -f "$out/.stamp"

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 1. The kernel package, downloaded (not installed) and unpacked.
echo "build-assets: building from $kpkg" >&2
mkdir -p "$out/debs"
deb=$(ls "$out/debs/$kpkg"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
    (cd "$out/debs" && apt-get download -q "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    deb=$(ls "$out/debs/$kpkg"_*.deb 2>/dev/null | head -1 || true)
fi
[ -n "$deb" ] || die "apt-get download $kpkg failed"
dpkg-deb -x "$deb" "$work/pkg"
kver=${kpkg#linux-image-}
[ -f "$work/pkg/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $deb"
depmod -b "$work/pkg" "$kver"

# Copies the named modules and everything they depend on into an initramfs tree.
add_modules() {
    local root=$1; shift
    local m ko
    for m in "$@"; do
        modprobe -d "$work/pkg" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}' |
            while read -r ko; do
                local rel=${ko#"$work/pkg"}
                mkdir -p "$root$(dirname "$rel")"
                cp -n "$ko" "$root$rel"
            done
    done
    cp "$work/pkg/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} \
        "$root/lib/modules/$kver/" 2>/dev/null || true
    depmod -b "$root" "$kver"
}

# Makes a busybox-based initramfs tree with the given init script.
make_tree() {
    local root=$1 init=$2
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,mnt,host,etc,root,lib/modules/"$kver"}
    cp "$busybox" "$root/bin/busybox"
    local applet
    for applet in sh mount umount mkdir modprobe insmod cat echo sleep poweroff reboot \
        chroot switch_root base64 sync stty grep sed tr awk; do
        ln -sf busybox "$root/bin/$applet"
    done
    cp "$init" "$root/init"
    chmod 755 "$root/init"
}

pack() {
    (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -6 >"$2"
}

# 2. The nested-KVM test VM (L1): KVM for AMD SVM, virtio-pci, 9p and virtio-net (for
#    kova-nested-run --forward).
make_tree "$work/l1" "$top/tests/nested/l1-init"
add_modules "$work/l1" kvm-amd virtio_pci 9p 9pnet_virtio virtio_net
pack "$work/l1" "$work/l1-initrd.cpio.gz"

# 2b. Modules for the tests' own use in the test VM (vmm.net's tap, and bridges, veths and
#     vhost-net for later tests), loaded by the test from inside the chroot with insmod.
mkdir -p "$work/l1-modules"
for m in tun bridge veth vhost_net; do
    modprobe -d "$work/pkg" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$work/l1-modules/"
    basename "$ko" >>"$work/l1-modules/load-order"
done
[ -s "$work/l1-modules/load-order" ] || die "no modules for l1-modules"
echo "$kver" >"$work/l1-modules/kernel-version"

# 3. The test guest: virtio-pci, -blk, -net, -rng, ext4 (+crc32c) and the ACPI power button.
make_tree "$work/guest" "$here/guest-init"
add_modules "$work/guest" virtio_pci virtio_blk virtio_net virtio_rng crc32c_generic ext4 button evdev
pack "$work/guest" "$work/guest-initrd.cpio.gz"

# 4. The test guest's root disk: the same busybox and init, marked as a disk root.
mkdir -p "$work/rootfs"
make_tree "$work/rootfs" "$here/guest-init"
echo "kova test guest root disk" >"$work/rootfs/etc/kova-root"
mkfs.ext4 -q -F -L kova-root -d "$work/rootfs" "$work/guest-root.ext4" 64M >/dev/null

# 5. Publish.
# (by rename, never rewritten in place: a running VMM may re-read its kernel on a guest reboot)
cp "$work/pkg/boot/vmlinuz-$kver" "$work/vmlinuz"
echo "$kver" >"$work/kernel-version"
mv -f "$work/vmlinuz" "$work/kernel-version" "$work/l1-initrd.cpio.gz" \
    "$work/guest-initrd.cpio.gz" "$work/guest-root.ext4" "$out/"
rm -rf "$out/l1-modules.old"
[ ! -d "$out/l1-modules" ] || mv "$out/l1-modules" "$out/l1-modules.old"
mv "$work/l1-modules" "$out/"
rm -rf "$out/l1-modules.old"
echo "$stamp" >"$out/.stamp"
echo "build-assets: kernel $kver ready in $out" >&2
