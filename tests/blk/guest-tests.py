#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""virtio-blk guest tests; they need /dev/kvm (ctest runs them in the nested-KVM test VM).

1. The test guest boots with its root on a qcow2 overlay (kova-img create -b base.raw -F raw)
   and a read-only raw second disk with serials: it writes a file, syncs, drops caches and reads
   it back, trims, sees both serials, cannot write /dev/vdb and reads its content; a guest reboot
   (VM reset: the disks stay open) boots from the overlay again and finds the file. After
   poweroff: `qemu-img check` exit 0, the base image's sha256 unchanged, the overlay converted to
   raw passes `e2fsck -fn` and holds the file (debugfs).
2. Crash: kova-vmm is SIGKILLed while the guest writes, syncs and reports files in a loop, three
   times on the same overlay: `qemu-img check` never reports corruption (exit 0 or 3) and every
   file the guest reported as synced is there with its checksum (after e2fsck replays the
   journal on a raw copy).
Usage: guest-tests.py KOVA_VMM KOVA_IMG ASSET_DIR
"""
import base64
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

VMM, IMG, ASSETS = sys.argv[1], sys.argv[2], sys.argv[3]
KERNEL = os.path.join(ASSETS, "vmlinuz")
INITRD = os.path.join(ASSETS, "guest-initrd.cpio.gz")
TMP = tempfile.mkdtemp(prefix="kova-blk-test.")
failures = []
T0 = time.monotonic()
current = {}  # the running Guest, for the heartbeat


def heartbeat():
    """Every 30 s: elapsed time, the running guest and its last console line. If this output
    stops, the whole test VM stopped (not just a guest); if it goes on, the guest is stuck."""
    while True:
        time.sleep(30)
        g = current.get("g")
        if g is None:
            print(f"[{time.monotonic() - T0:6.0f}s] (no guest running)", flush=True)
            continue
        with g.cond:
            n = len(g.lines)
            last = next((l for l in reversed(g.lines) if l), "")
        print(f"[{time.monotonic() - T0:6.0f}s] {g.name}: pid {g.p.pid} "
              f"state {proc_state(g.p.pid)}, {n} console lines, last: {last[-100:]!r}",
              flush=True)


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/wchan") as f:
            return st + "/" + (f.read() or "-")
    except OSError:
        return "gone"


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


class Guest:
    """kova-vmm with the console on stdout, read line by line."""

    def __init__(self, name, script, disks, extra_cmdline=""):
        cmdline = ("console=ttyS0 quiet panic=-1 kova.root=/dev/vda " + extra_cmdline +
                   " kova.script=" + base64.b64encode(script.encode()).decode())
        args = [VMM, "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", cmdline,
                "--memory", "256", "--console-stdout"]
        for d in disks:
            args += ["--disk", d]
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.err = open(os.path.join(TMP, name + ".stderr"), "w")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        current["g"] = self

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait_for(self, pattern, count=1, timeout=180):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                hits = [l for l in self.lines if l is not None and rx.search(l)]
                if len(hits) >= count:
                    return hits[count - 1]
                if None in self.lines or time.monotonic() > end:
                    return None
                self.cond.wait(0.5)

    def values(self, key):
        with self.cond:
            return [l.split("=", 1)[1] for l in self.lines if l and l.startswith(key + "=")]

    def wait_exit(self, timeout=120):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"  {self.name}: still running after {timeout}s "
                  f"(state {proc_state(self.p.pid)}): SIGKILL", flush=True)
            self.p.kill()
            try:
                rc = self.p.wait(60)
            except subprocess.TimeoutExpired:
                print(f"  {self.name}: SIGKILL did not end it in 60 s "
                      f"(state {proc_state(self.p.pid)})", flush=True)
                rc = None
        self.reader.join(10)
        self.err.close()
        current.pop("g", None)
        return rc

    def dump(self):
        print(f"--- {self.name} console:")
        for l in self.lines[-60:]:
            if l is not None:
                print("  | " + l)
        with open(self.err.name) as f:
            print(f"--- {self.name} stderr:\n" + f.read()[-3000:])


def fs_check_and_cat(overlay, paths, replay):
    """Converts the overlay to raw, runs e2fsck (-fy first when a journal must be replayed, then
    -fn) and returns (e2fsck -fn status, {path: sha256 or None})."""
    raw = os.path.join(TMP, "check.raw")
    r = run("qemu-img", "convert", "-O", "raw", overlay, raw)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        return -1, {}
    if replay:
        r = run("e2fsck", "-fy", raw)
        if r.returncode > 1:
            print(r.stdout + r.stderr)
    r = run("e2fsck", "-fn", raw)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
    fsck = r.returncode
    out = {}
    for p in paths:
        d = subprocess.run(["debugfs", "-R", "cat " + p, raw], capture_output=True)
        out[p] = hashlib.sha256(d.stdout).hexdigest() if d.returncode == 0 and d.stdout else None
    os.unlink(raw)
    return fsck, out


FUNC_SCRIPT = r"""
mkdir -p /tmp/bb && busybox --install -s /tmp/bb; PATH=/tmp/bb:$PATH
echo "SERIAL_A=$(cat /sys/block/vda/serial)"
echo "SERIAL_B=$(cat /sys/block/vdb/serial)"
echo "RO_B=$(cat /sys/block/vdb/ro)"
echo "SIZE_B=$(cat /sys/block/vdb/size)"
if [ -f /kova-blk-test.bin ]; then
    echo "REBOOTED_SHA=$(sha256sum /kova-blk-test.bin | cut -d' ' -f1)"
    mount -o remount,ro /
    exit 0
fi
dd if=/dev/urandom of=/kova-blk-test.bin bs=65536 count=48 2>/dev/null
sync
echo "WROTE_SHA=$(sha256sum /kova-blk-test.bin | cut -d' ' -f1)"
echo 3 > /proc/sys/vm/drop_caches
echo "READ_SHA=$(sha256sum /kova-blk-test.bin | cut -d' ' -f1)"
echo "VDB_SHA=$(dd if=/dev/vdb bs=65536 2>/dev/null | sha256sum | cut -d' ' -f1)"
dd if=/dev/zero of=/dev/vdb bs=4096 count=1 conv=fsync 2>/dev/null
echo "VDB_WRITE_RC=$?"
dd if=/dev/urandom of=/kova-blk-trim.bin bs=65536 count=32 2>/dev/null
sync
rm /kova-blk-trim.bin
sync
fstrim -v / >/dev/null 2>&1
echo "FSTRIM_RC=$?"
sync
echo "DISCARD_MAX=$(cat /sys/block/vda/queue/discard_max_bytes)"
echo "WZ_MAX=$(cat /sys/block/vda/queue/write_zeroes_max_bytes)"
reboot -f
"""


def functional(base, base_sha):
    overlay = os.path.join(TMP, "func.qcow2")
    r = run(IMG, "create", "-b", base, "-F", "raw", overlay)
    if not check(r.returncode == 0, "kova-img create overlay"):
        print(r.stdout + r.stderr)
        return
    extra = os.path.join(TMP, "extra.raw")
    with open(extra, "wb") as f:
        f.write(os.urandom(3 << 20))
    extra_sha = sha256(extra)
    g = Guest("func", FUNC_SCRIPT,
              [f"path={overlay},format=qcow2,serial=kova-root-01",
               f"path={extra},format=raw,readonly=on,serial=RO_DISK"])
    g.wait_for(r"KOVA-GUEST-RC=", timeout=240)
    rc = g.wait_exit(60)
    ok = check(rc == 0, f"guest with root on qcow2 overlay powered off (exit {rc})")
    ok &= check(g.values("SERIAL_A")[:1] == ["kova-root-01"], "serial of vda in sysfs")
    ok &= check(g.values("SERIAL_B")[:1] == ["RO_DISK"], "serial of vdb in sysfs")
    ok &= check(g.values("RO_B")[:1] == ["1"], "vdb is read-only in the guest")
    ok &= check(g.values("SIZE_B")[:1] == [str((3 << 20) // 512)], "vdb capacity")
    wrote = g.values("WROTE_SHA")
    ok &= check(len(wrote) == 1 and len(wrote[0]) == 64, "guest wrote and synced a file")
    ok &= check(g.values("READ_SHA") == wrote, "guest read the file back after dropping caches")
    ok &= check(g.values("VDB_SHA") == [extra_sha], "guest read vdb's content")
    ok &= check(g.values("VDB_WRITE_RC")[:1] not in ([], ["0"]), "write to read-only vdb fails")
    ok &= check(g.values("FSTRIM_RC") == ["0"], "fstrim on the qcow2 root (discard)")
    ok &= check(g.values("DISCARD_MAX")[:1] not in ([], ["0"]), "discard advertised")
    ok &= check(g.values("WZ_MAX")[:1] not in ([], ["0"]), "write-zeroes advertised")
    ok &= check(g.values("REBOOTED_SHA") == wrote,
                "after a guest reboot (disks kept open) the file is there")
    if not ok:
        g.dump()
    r = run("qemu-img", "check", overlay)
    if not check(r.returncode == 0, f"qemu-img check of the overlay: exit {r.returncode}"):
        print(r.stdout + r.stderr)
    check(sha256(base) == base_sha, "base image unchanged")
    check(sha256(extra) == extra_sha, "read-only disk unchanged")
    fsck, files = fs_check_and_cat(overlay, ["/kova-blk-test.bin"], replay=False)
    check(fsck == 0, f"e2fsck -fn of the converted overlay: exit {fsck}")
    check(wrote and files.get("/kova-blk-test.bin") == wrote[0], "the guest's file is in the image")


CRASH_SCRIPT = r"""
mkdir -p /tmp/bb && busybox --install -s /tmp/bb; PATH=/tmp/bb:$PATH
mkdir -p /crash
r=$(cat /proc/sys/kernel/random/uuid | cut -c1-8)
i=0
while [ $i -lt 100000 ]; do
    dd if=/dev/urandom of=/crash/$r.$i bs=4096 count=$((1 + i % 37)) 2>/dev/null
    s=$(sha256sum /crash/$r.$i | cut -d' ' -f1)
    sync
    echo "SYNCED=/crash/$r.$i:$s"
    i=$((i + 1))
done
"""


def crash(base, base_sha, rounds=3):
    overlay = os.path.join(TMP, "crash.qcow2")
    r = run(IMG, "create", "-b", base, "-F", "raw", overlay)
    if not check(r.returncode == 0, "kova-img create crash overlay"):
        return
    synced = {}
    rng = random.Random(os.getpid())
    for k in range(rounds):
        g = Guest(f"crash{k}", CRASH_SCRIPT, [f"path={overlay},format=qcow2"])
        want = 3 + rng.randrange(6)
        got = g.wait_for(r"^SYNCED=", count=want, timeout=240)
        os.kill(g.p.pid, signal.SIGKILL)
        rc = g.wait_exit(30)
        if not check(got is not None and rc == -signal.SIGKILL,
                     f"round {k}: guest synced {want}+ files, then kova-vmm SIGKILLed"):
            g.dump()
            return
        for v in g.values("SYNCED"):
            path, h = v.rsplit(":", 1)
            synced[path] = h
        r = run("qemu-img", "check", overlay)
        if not check(r.returncode in (0, 3),
                     f"round {k}: qemu-img check after the kill: exit {r.returncode} (0/3)"):
            print(r.stdout + r.stderr)
        fsck, files = fs_check_and_cat(overlay, sorted(synced), replay=True)
        check(fsck == 0, f"round {k}: e2fsck clean after journal replay (exit {fsck})")
        missing = [p for p, h in synced.items() if files.get(p) != h]
        check(not missing, f"round {k}: all {len(synced)} files reported synced are intact"
              + (f" (missing/different: {missing[:5]})" if missing else ""))
    check(sha256(base) == base_sha, "base image unchanged after the crashes")


def main():
    threading.Thread(target=heartbeat, daemon=True).start()
    base = os.path.join(TMP, "base.raw")
    shutil.copyfile(os.path.join(ASSETS, "guest-root.ext4"), base)
    base_sha = sha256(base)
    functional(base, base_sha)
    crash(base, base_sha)
    if failures:
        print(f"{len(failures)} check(s) failed: " + "; ".join(failures))
        return 1
    shutil.rmtree(TMP, ignore_errors=True)
    print("blk guest tests: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
