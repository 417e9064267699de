#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Checks deploy/kova-agent.service: systemd accepts it (systemd-analyze verify, with ExecStart
# pointed at an existing binary since kova-agent is not installed here), and it keeps kova-vmm
# children alive across agent restarts (KillMode=process) and restarts the agent on failure.
set -euo pipefail
unit=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's|^ExecStart=/usr/local/bin/kova-agent|ExecStart=/bin/true|' "$unit" >"$tmp/kova-agent.service"
grep -q '^ExecStart=/bin/true --config /etc/kova/kova.conf$' "$tmp/kova-agent.service"
out=$(systemd-analyze verify "$tmp/kova-agent.service" 2>&1) || { echo "$out"; exit 1; }
# Anything it says about this unit is a problem (messages about other units are not ours).
if grep -q 'kova-agent.service' <<<"$out"; then echo "$out"; exit 1; fi
val() { grep -E "^$1=" "$unit" | tail -1 | cut -d= -f2-; }
[ "$(val KillMode)" = process ] || { echo "KillMode is not process"; exit 1; }
[ "$(val Restart)" = on-failure ] || { echo "Restart is not on-failure"; exit 1; }
echo "unit ok"
