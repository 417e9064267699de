#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# make-seed.sh OUT ACTIONS: a cloud-init NoCloud seed disk (vfat labelled "CIDATA", made with
# mkfs.vfat and mtools' mcopy, no mount) that drives the test cloud image from inside, as a user
# at its console would. ACTIONS is a comma list, one per boot: "reboot" or "poweroff". On every
# boot, once the serial getty runs (the login: prompt is out), a per-boot script writes to the
# kernel log (so to console.log):
#   kova-test: BOOT=N
#   kova-test: DMI product=... manufacturer=... family=... serial=... uuid=...  (dmidecode -s)
#   kova-test: NPROC=N
#   kova-test: ACTION=reboot|poweroff
# and then runs `systemctl reboot` or `systemctl poweroff` (the N-th action; the last repeats).
set -euo pipefail
out=$1 actions=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/meta-data" <<EOF
instance-id: kova-test-$(cat /proc/sys/kernel/random/uuid)
local-hostname: kova-cloud
EOF
# ssh_genkeytypes: host keys of one type (ed25519); RSA key generation alone takes over a minute
# under the test VM's emulation.
cat >"$work/user-data" <<EOF
#cloud-config
ssh_genkeytypes: [ed25519]
write_files:
  - path: /var/lib/cloud/scripts/per-boot/kova-test.sh
    permissions: '0755'
    content: |
      #!/bin/sh
      say() { echo "<2>kova-test: \$*" >/dev/kmsg; }
      n=\$((\$(cat /var/lib/kova-test-boots 2>/dev/null || echo 0) + 1))
      echo \$n >/var/lib/kova-test-boots
      sync
      i=0
      while [ \$i -lt 300 ] && ! systemctl -q is-active serial-getty@ttyS0.service; do
        sleep 1; i=\$((i + 1))
      done
      sleep 2
      say "BOOT=\$n"
      say "DMI product=\$(dmidecode -s system-product-name) manufacturer=\$(dmidecode -s system-manufacturer) family=\$(dmidecode -s system-family) serial=\$(dmidecode -s system-serial-number) uuid=\$(dmidecode -s system-uuid)"
      say "NPROC=\$(nproc)"
      a=\$(echo "$actions" | cut -d, -f\$n)
      [ -n "\$a" ] || a=\$(echo "$actions" | awk -F, '{print \$NF}')
      say "ACTION=\$a"
      systemctl "\$a"
EOF
rm -f "$out"
mkfs.vfat -n CIDATA -C "$out" 2048 >/dev/null
mcopy -i "$out" "$work/meta-data" "$work/user-data" ::
