# SPDX-License-Identifier: Apache-2.0
# Sourced by the benchmarks that boot guests: the build and assets they use, and the step into the
# test VM. kova-nested-run decides where a stock kernel boots (the host's KVM only if it can; PVM
# cannot). Sets: top (the source tree), KOVA_BUILD_DIR (default build/c), KOVA_ASSETS (default
# build/assets).
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export KOVA_BUILD_DIR=${KOVA_BUILD_DIR:-$top/build/c}
export KOVA_ASSETS=${KOVA_ASSETS:-$top/build/assets}

# bench_in_test_vm BINARY TIMEOUT_S MEM_MIB SCRIPT ARGS...: outside the test VM, checks that
# $KOVA_BUILD_DIR/BINARY was built and re-runs SCRIPT ARGS... through kova-nested-run (does not
# return); inside it (KOVA_BENCH_INSIDE=1), returns at once.
bench_in_test_vm() {
    local bin=$1 timeout=$2 mem=$3
    shift 3
    [ "${KOVA_BENCH_INSIDE:-0}" = 1 ] && return 0
    [ -x "$KOVA_BUILD_DIR/$bin" ] || { echo "build $bin first ($KOVA_BUILD_DIR)" >&2; exit 1; }
    export KOVA_BENCH_INSIDE=1
    exec "$top/tests/nested/kova-nested-run" --timeout "$timeout" --mem "$mem" -- "$@"
}
