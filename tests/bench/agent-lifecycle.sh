#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# agent-lifecycle.sh [N] — benchmark (not a test) of kova-agent's own part of a server create, in
# a KVM environment (the nested-KVM test VM unless the host KVM boots stock kernels):
#   1. POST /servers → ACTIVE, N times one after the other (default 5): the agent's own time. ACTIVE
#      is reached when the new kova-vmm answers on its control socket, before the guest kernel
#      runs, so guest boot is not in it. Measured from a client polling GET every 2 ms, and shown
#      next to the agent's own log timestamps; median and max.
#   2. 10 servers created at once (10 concurrent POSTs): time until all 10 are ACTIVE.
# The guest is the test guest (kernel + initramfs + 64 MiB ext4 root) with 128 MiB of RAM; the
# image is cached into _base by the first create (that one is reported separately).
# Environment: KOVA_BUILD_DIR (default build/c), KOVA_ASSETS (default build/assets).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
n=${1:-5}
bench_in_test_vm agent/kova-agent $((300 + n * 60)) 3072 "$0" "$n"

# the nested test VM starts with the loopback interface down
if [ -r /sys/class/net/lo/flags ] && [ $(( $(cat /sys/class/net/lo/flags) & 1 )) = 0 ]; then
    ip link set lo up
fi
exec /usr/bin/python3 - "$n" "$top" <<'PY'
import json, os, statistics, sys, threading, time
n, top = int(sys.argv[1]), sys.argv[2]
sys.path.insert(0, os.path.join(top, "tests", "api"))
from kova_agent_fixture import Agent

build, assets = os.environ["KOVA_BUILD_DIR"], os.environ["KOVA_ASSETS"]
a = Agent(os.path.join(build, "agent", "kova-agent"),
          extra_args=["--vmm", os.path.join(build, "vmm", "kova-vmm"), "--shutdown-timeout", "5"])
a.start()
ADMIN = "admin:admin"


def req(method, path, body=None, **kw):
    return a.request(method, path, body=body, token=ADMIN, **kw)


def image(name, path, fmt, **props):
    body = {"name": name, "disk_format": fmt, "container_format": "bare"}
    body.update(props)
    st, _, img = req("POST", "/v2/images", body, image=True)
    with open(path, "rb") as f:
        st, _, _ = req("PUT", "/v2/images/%s/file" % img["id"], image=True, raw=f.read(),
                       headers={"Content-Type": "application/octet-stream"})
    assert st == 204, st
    return img["id"]


def wait_active(sid, t0):
    while True:
        st, _, b = req("GET", "/v2.1/servers/%s" % sid)
        s = b["server"]
        if s["status"] == "ACTIVE":
            return time.monotonic() - t0
        if s["status"] == "ERROR":
            raise SystemExit("server ERROR: %r" % s.get("fault"))
        time.sleep(0.002)


def create(name):
    st, _, b = req("POST", "/v2.1/servers", {"server": {"name": name, "imageRef": disk,
                                                       "flavorRef": "bench"}})
    assert st == 202, b
    return b["server"]["id"]


def delete_all(ids):
    for sid in ids:
        req("DELETE", "/v2.1/servers/%s" % sid)
    for sid in ids:
        while req("GET", "/v2.1/servers/%s" % sid)[0] != 404:
            time.sleep(0.01)


try:
    req("POST", "/v2.1/flavors", {"flavor": {"name": "bench", "id": "bench", "ram": 128,
                                             "vcpus": 1, "disk": 1}})
    k = image("k", os.path.join(assets, "vmlinuz"), "aki")
    r = image("r", os.path.join(assets, "guest-initrd.cpio.gz"), "ari")
    disk = image("d", os.path.join(assets, "guest-root.ext4"), "raw", kernel_id=k, ramdisk_id=r,
                 os_command_line="console=ttyS0 quiet kova.root=/dev/vda kova.stay=1")
    t0 = time.monotonic()
    first = wait_active(create("first"), t0)
    delete_all([s["id"] for s in req("GET", "/v2.1/servers")[2]["servers"]])
    times = []
    for i in range(n):
        t0 = time.monotonic()
        sid = create("one%d" % i)
        times.append(wait_active(sid, t0))
        delete_all([sid])
    print("POST /servers -> ACTIVE, one at a time (agent's own time, guest boot excluded):")
    print("  first create (copies the 3 images into _base): %.1f ms" % (first * 1e3))
    print("  next %d: median %.1f ms, max %.1f ms" % (n, statistics.median(times) * 1e3,
                                                     max(times) * 1e3))
    ids, done = [None] * 10, [None] * 10
    t0 = time.monotonic()

    def one(i):
        ids[i] = create("many%d" % i)
        done[i] = wait_active(ids[i], t0)

    th = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    print("10 servers created at once: all ACTIVE after %.1f ms (first %.1f ms, median %.1f ms)"
          % (max(done) * 1e3, min(done) * 1e3, statistics.median(done) * 1e3))
    delete_all(ids)
finally:
    rc, log = a.stop()
    a.cleanup()
PY
