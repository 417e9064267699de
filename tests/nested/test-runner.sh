#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Tests of kova-nested-run itself: where it runs a command (the host's KVM only when it boots a
# stock kernel: simulated PVM and no-KVM hosts, the real decision and the real probe on this host),
# and that it says so once; the command's output and exit status come back, the share is
# writable at its own path, KOVA_* variables pass through, /dev/kvm is there, a --forward'ed port
# reaches a server in the VM, a command that never ends is killed at the timeout with status
# 124, and a test VM that freezes is killed soon after with status 124.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
run="$here/kova-nested-run"
assets=${KOVA_ASSETS:-$top/build/assets}
. "$top/tests/common/check-lib.sh"

mkdir -p "$assets"
scratch=$(mktemp -d "$assets/runner-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# 0. The decision. Simulated hosts first, then this host's own (module check and the probe).
d=$(KOVA_NESTED_HOST_KVM=pvm "$run" --explain 2>&1)
echo "  | simulated PVM: $d"
check "a PVM host's /dev/kvm is not used" "$(grep -q '^vm: .*kvm_pvm' <<<"$d"; echo $?)"
d=$(KOVA_NESTED_HOST_KVM=none "$run" --explain 2>&1)
echo "  | simulated no KVM: $d"
check "a host without /dev/kvm uses the test VM" "$(grep -q '^vm: .*no usable /dev/kvm' <<<"$d"; echo $?)"
d=$(KOVA_NESTED_HOST_KVM=pvm KOVA_NESTED_FORCE_VM=1 "$run" --explain 2>&1)
check "KOVA_NESTED_FORCE_VM=1 forces the test VM" "$(grep -q '^vm: forced' <<<"$d"; echo $?)"
KOVA_NESTED_HOST_KVM=bogus "$run" --explain >/dev/null 2>&1
check "a bad KOVA_NESTED_HOST_KVM gives status 125" "$([ $? = 125 ]; echo $?)"
real=$("$run" --explain 2>&1)
echo "  | this host: $real"
# The probe alone, uncached: on a PVM host it must fail (a stock kernel spins there), on a host
# with kvm_intel/kvm_amd it must pass, and without /dev/kvm it is not tried.
probe=$(KOVA_NESTED_HOST_KVM=probe KOVA_NESTED_PROBE_TIMEOUT=20 "$run" --explain 2>&1)
echo "  | this host, by the probe alone: $probe"
if [ ! -w /dev/kvm ]; then
    check "no /dev/kvm here: the test VM" "$(grep -q '^vm: .*no usable' <<<"$real$probe"; echo $?)"
elif [ -d /sys/module/kvm_pvm ]; then
    check "PVM here: the test VM, by the module check" "$(grep -q '^vm: .*kvm_pvm' <<<"$real"; echo $?)"
    check "PVM here: the probe fails to boot the test kernel" "$(grep -q '^vm: the host KVM' <<<"$probe"; echo $?)"
else
    check "a vendor KVM here: the probe's verdict is the decision" \
        "$([ "${real%% *}" = "${probe%% *}" ]; echo $?)"
fi

# 1. Status, output, share, environment, /dev/kvm, --forward — in one VM run. The command serves
#    one connection on the forwarded port; meanwhile this side connects until it is answered.
hport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$scratch" && KOVA_RUNNER_PROBE=probe-42 "$run" --timeout 240 --forward "$hport:$hport" -- bash -c '
    echo "out:$KOVA_RUNNER_PROBE:$(pwd)"
    test -c /dev/kvm && echo "kvm:present"
    echo "npt:$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null || echo none)"
    echo written >"$PWD/from-inside"
    echo "to stderr" >&2
    echo fwd:answered | timeout 120 socat -u STDIN \
        "TCP-LISTEN:'"$hport"',bind=$KOVA_NESTED_ADDR,reuseaddr" && echo "fwd:served"
    exit 7' >"$scratch/out" 2>&1) &
runner=$!
fwd=
for _ in $(seq 200); do
    kill -0 "$runner" 2>/dev/null || break
    fwd=$(timeout 30 socat -T 20 -u "TCP:127.0.0.1:$hport,connect-timeout=5" - 2>/dev/null)
    [ "$fwd" = fwd:answered ] && break
    sleep 1
done
wait "$runner"
rc=$?
out=$(cat "$scratch/out")
echo "$out" | sed 's/^/  | /'
echo "  | read on the forwarded host port: ${fwd:-nothing}"
check "exit status 7 comes back" "$([ $rc = 7 ]; echo $?)"
check "stdout and the working dir come back" "$(grep -qx "out:probe-42:$scratch" <<<"$out"; echo $?)"
check "stderr comes back" "$(grep -qx 'to stderr' <<<"$out"; echo $?)"
check "/dev/kvm is present" "$(grep -qx 'kvm:present' <<<"$out"; echo $?)"
case "$real" in
vm:*) said="kova-nested-run: using the nested-KVM test VM (-accel tcg): ${real#vm: }" ;;
*) said="kova-nested-run: running directly on the host's KVM: ${real#direct: }" ;;
esac
npt_said=$("$run" --explain-npt)
case "$npt_said" in 1:*) npt_want=Y ;; *) npt_want=N ;; esac
[ "${real%%:*}" = vm ] && {
    check "the test VM's kvm-amd nested paging is as decided ($npt_said)" \
        "$(grep -qx "npt:$npt_want" <<<"$out"; echo $?)"
    check "the runner says once on stderr how the test VM pages" \
        "$([ "$(grep -cxF "kova-nested-run: the test VM's kvm-amd runs with kvm_amd.npt=${npt_said}" <<<"$out")" = 1 ]; echo $?)"
}
check "the runner says once on stderr which path it took and why" \
    "$([ "$(grep -cxF "$said" <<<"$out")" = 1 ]; echo $?)"
check "the share is writable" "$([ "$(cat "$scratch/from-inside" 2>/dev/null)" = written ]; echo $?)"
check "--forward: a server in the VM answers on the host port" \
    "$([ "$fwd" = fwd:answered ] && grep -qx 'fwd:served' <<<"$out"; echo $?)"

# 2. A command that never ends: killed at the timeout, status 124, in bounded time.
start=$(date +%s)
"$run" --timeout 45 -- sleep 100000 >/dev/null 2>&1
rc=$?
took=$(($(date +%s) - start))
echo "  | hung command: status $rc after ${took}s"
check "a hung command is killed with status 124" "$([ $rc = 124 ]; echo $?)"
check "the kill comes at the timeout (45 s + grace)" "$([ $took -ge 45 ] && [ $took -le 75 ]; echo $?)"

# 2b. A test VM that freezes (README "Tests"): QEMU's monitor "stop" halts its vCPUs as the
#     emulator's freeze does (no vCPU tick any more, QEMU itself still running). The runner's
#     freeze watch records it, kills the VM and exits with 124 long before the timeout.
before=$(ls -d "$assets"/jobs/job.* 2>/dev/null | sort)
start=$(date +%s)
KOVA_NESTED_FREEZE_S=20 "$run" --timeout 400 -- sh -c 'echo up; sleep 100000' >"$scratch/frz" 2>&1 &
runner=$!
job=
for _ in $(seq 120); do
    grep -q '^up$' "$scratch/frz" 2>/dev/null && break
    sleep 1
done
job=$(comm -13 <(echo "$before") <(ls -d "$assets"/jobs/job.* 2>/dev/null | sort) | head -1)
[ -n "$job" ] && printf 'stop\n' | timeout 10 socat - "UNIX-CONNECT:$job/mon.sock" >/dev/null 2>&1
stopped=$(date +%s)
wait "$runner"
rc=$?
took=$(($(date +%s) - stopped))
sed 's/^/  | /' "$scratch/frz" | grep -v '^  | up$' | head -5
echo "  | frozen test VM: status $rc ${took}s after the freeze ($(($(date +%s) - start))s in all)"
check "a frozen test VM ends the run with status 124" "$([ $rc = 124 ]; echo $?)"
check "the runner says the test VM froze" "$(grep -q 'the test VM froze' "$scratch/frz"; echo $?)"
# 20 s without a tick, up to 5 s between looks, 10 s of state dump
check "it ends soon after the freeze (20 s + the dump), not at the timeout" \
    "$([ $took -le 90 ]; echo $?)"
check "the vCPUs' state is kept in stall.txt" \
    "$(grep -q 'froze' "$job/stall.txt" 2>/dev/null; echo $?)"
[ -n "$job" ] && rm -rf "$job"
KOVA_NESTED_FREEZE_S=x "$run" -- true >/dev/null 2>&1
check "a bad KOVA_NESTED_FREEZE_S gives status 125" "$([ $? = 125 ]; echo $?)"

# 3. Bad usage fails with 125 and runs nothing.
"$run" --timeout abc -- true >/dev/null 2>&1
check "bad options give status 125" "$([ $? = 125 ]; echo $?)"
"$run" --forward 80 -- true >/dev/null 2>&1
check "a bad --forward gives status 125" "$([ $? = 125 ]; echo $?)"

check_finish runner
