#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Tests of the test guest itself (tests/assets/guest-init and its images), booted by QEMU under
# software emulation on the host: no KVM needed, and a known-good VMM, so that a failure in the
# kova-vmm tests is kova's and not the guest's. Checks: the marker, a script from the kernel
# command line and its exit status, poweroff, the ext4 root disk over virtio-blk (a write that
# survives and a clean fsck), and a clean shutdown on the ACPI power button.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
assets=${KOVA_ASSETS:-$top/build/assets}
. "$top/tests/common/check-lib.sh"

"$top/tests/assets/build-assets.sh" || exit 1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# boot LOG CMDLINE [QEMU ARGS...]: boots the guest, console to LOG, returns QEMU's status.
boot() {
    local log=$1 cmdline=$2
    shift 2
    timeout -k 5 120 qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp 2 -m 512 \
        -nographic -no-reboot -nodefaults -serial "file:$log" \
        -kernel "$assets/vmlinuz" -initrd "$assets/guest-initrd.cpio.gz" \
        -append "console=ttyS0 quiet panic=-1 no_timer_check $cmdline" "$@" </dev/null
}
script_arg() { printf 'kova.script=%s' "$(printf '%s\n' "$1" | base64 -w0)"; }

# 1. From the initramfs: marker, script, its status, poweroff.
boot "$scratch/1.log" "$(script_arg 'echo "cpus=$(nproc)"; exit 3')"
rc=$?
tr -d '\r' <"$scratch/1.log" | grep -E 'KOVA|cpus=' | sed 's/^/  | /'
check "initramfs: guest powers off (qemu status 0)" "$([ $rc = 0 ]; echo $?)"
check "initramfs: marker" "$(grep -q '^KOVA-GUEST-READY' <(tr -d '\r' <"$scratch/1.log"); echo $?)"
check "initramfs: the script ran on 2 CPUs" "$(grep -q '^cpus=2' <(tr -d '\r' <"$scratch/1.log"); echo $?)"
check "initramfs: script status reported" "$(grep -q '^KOVA-GUEST-RC=3' <(tr -d '\r' <"$scratch/1.log"); echo $?)"

# 2. Root on the ext4 disk over virtio-blk: a write that is there after poweroff, fsck clean.
cp "$assets/guest-root.ext4" "$scratch/root.ext4"
boot "$scratch/2.log" "kova.root=/dev/vda $(script_arg 'test -f /etc/kova-root && echo on-disk-root; echo hello-disk >/written; sync')" \
    -drive "file=$scratch/root.ext4,if=virtio,format=raw"
rc=$?
tr -d '\r' <"$scratch/2.log" | grep -E 'KOVA|on-disk|guest-init' | sed 's/^/  | /'
check "root disk: guest powers off" "$([ $rc = 0 ]; echo $?)"
check "root disk: switched to the disk root" "$(grep -q '^on-disk-root' <(tr -d '\r' <"$scratch/2.log"); echo $?)"
check "root disk: the write is on the disk" \
    "$([ "$(debugfs -R 'cat /written' "$scratch/root.ext4" 2>/dev/null)" = hello-disk ]; echo $?)"
check "root disk: e2fsck clean" "$(e2fsck -fn "$scratch/root.ext4" >/dev/null 2>&1; echo $?)"

# 3. kova.stay=1, then the ACPI power button (QEMU's system_powerdown): a clean poweroff.
mon="$scratch/mon.sock"
boot "$scratch/3.log" "kova.stay=1" -monitor "unix:$mon,server,nowait" &
qpid=$!
for _ in $(seq 1 90); do
    grep -q 'KOVA-GUEST-READY' "$scratch/3.log" 2>/dev/null && break
    sleep 1
done
sleep 1
/usr/bin/python3 - "$mon" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.recv(4096)  # the monitor's banner
s.sendall(b"system_powerdown\n")
time.sleep(1)  # let the monitor run it before the socket closes
PY
wait $qpid
rc=$?
check "power button: marker, then the guest powers off cleanly" \
    "$([ $rc = 0 ] && grep -q 'KOVA-GUEST-READY' "$scratch/3.log"; echo $?)"

check_finish guest
