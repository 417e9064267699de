#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs every Debian package kova's build and tests need (Debian 12). Safe to run again:
# it only calls apt-get when something is missing. Runs as root, or through sudo.
# Why each package is there: README.md, "Dependencies".
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config clang-format
    # libraries named by the design (agent: HTTP, JSON, state, outbound HTTP)
    libmicrohttpd-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev
    # qcow2 compression (zlib deflate, zstd) and the agent's INI config
    zlib1g-dev libzstd-dev libinih-dev
    # kova-vmm's sandbox: per-thread seccomp allow-lists (libseccomp)
    libseccomp-dev
    # fuzzing (clang and its libFuzzer/sanitizer runtimes)
    clang libclang-rt-14-dev
    # test peers and the nested-KVM test VM: QEMU, qemu-img, the test guest's busybox, modules
    qemu-system-x86 qemu-utils busybox-static kmod cpio e2fsprogs acpica-tools
    # API compatibility tests with Debian's OpenStack client; curl for the README's examples
    python3-openstackclient curl
    # talking to kova-vmm's control socket by hand (README examples)
    socat
    # kova-vmm's firmware boot of disk images (run time: /usr/share/seabios/bios.bin)
    seabios
    # the firmware-boot test's GRUB disk (grub-mkimage, boot.img, the i386-pc modules)
    grub-pc-bin
    # agent: keypair generation (ssh-keygen), MD5/SHA-2 for Glance checksums and fingerprints
    # (libcrypto), the API benchmark's load generator
    openssh-client libssl-dev wrk
    # SMBIOS tests: dmidecode parses kova's tables (--from-dump)
    dmidecode
    # the test cloud image (tests/assets/build-cloud-image.sh): a Debian tree (mmdebstrap), its
    # GPT (sgdisk), its EFI system partition and the cloud-init seed disks (mkfs.vfat, mcopy)
    mmdebstrap gdisk dosfstools mtools
    # networks: the agent's netlink calls (bridges, taps: libmnl), DHCP for the guests (dnsmasq,
    # run by the agent per network), masquerade to an uplink (iptables, nft backend)
    libmnl-dev dnsmasq-base iptables
    # metadata.cloudinit reads kova's metadata with cloud-init's own Python code (its .deb is
    # unpacked at test time, not installed on the host): the modules it imports
    python3-configobj python3-yaml python3-jinja2 python3-jsonpatch python3-jsonschema
    python3-requests python3-oauthlib python3-netifaces python3-serial
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

# build-assets.sh resolves the kernel package with apt-cache, which needs package lists.
lists_empty() { ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; }

if [ ${#missing[@]} -gt 0 ] || lists_empty; then
    echo "install-deps: installing ${missing[*]:-(package lists only)}" >&2
    $SUDO apt-get update -qq
    if [ ${#missing[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
fi

# The nested-KVM test VM needs QEMU >= 10: QEMU 7.2 (Debian 12's own) emulates AMD's nested paging
# with stale translations that corrupt the test VM's memory, so the test VM had to run its
# kvm-amd with shadow paging, slower and with lock-ups (README, "Tests"). On Debian 12 QEMU 10
# comes from bookworm-backports, pinned to just these packages; newer Debian has it in main.
QEMU_PACKAGES=(qemu-system-x86 qemu-utils qemu-system-data qemu-system-common)
qemu_new_enough() {
    local v
    v=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge 1:10.0
}
if ! qemu_new_enough; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    target=()
    if [ "$codename" = bookworm ]; then
        src=/etc/apt/sources.list.d/kova-bookworm-backports.sources
        if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" \
                "Suites: bookworm-backports" "Components: main" \
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | $SUDO tee "$src" >/dev/null
        fi
        target=(-t bookworm-backports)
    fi
    echo "install-deps: installing QEMU >= 10 for the test VM ${target[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${target[@]}" "${QEMU_PACKAGES[@]}" >/dev/null
    qemu_new_enough || { echo "install-deps: QEMU >= 10 is not available" >&2; exit 1; }
fi

# A real Keystone for keystone.auth (Debian's keystone under uwsgi; tests/keystone): installed
# without letting its package start a system Keystone (policy-rc.d answers 101 meanwhile: the
# test runs its own on a free port). Should it fail, the rest still builds and tests, and the
# test is not registered (CMake says so): loud here, not fatal.
KEYSTONE_PACKAGES=(keystone uwsgi-core uwsgi-plugin-python3)
ks_missing=()
for p in "${KEYSTONE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || ks_missing+=("$p")
done
if [ ${#ks_missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${ks_missing[*]} (keystone.auth)" >&2
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${ks_missing[@]}" >/dev/null; then
        echo "install-deps: WARNING: installing ${ks_missing[*]} failed: keystone.auth will" \
            "not be registered" >&2
    fi
    [ "$own_policy" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi
echo "install-deps: all ${#PACKAGES[@]} packages present, $(qemu-system-x86_64 --version | head -n 1)" >&2
