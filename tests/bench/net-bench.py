#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""net-bench.py: virtio-net throughput and latency of kova-vmm (vhost=on, vhost=off) and QEMU
(-netdev tap,vhost=on) on one bridge + tap (run by net-bench.sh inside the nested-KVM test VM,
as root; not a test).

Here: the l1-modules (tun, bridge, vhost_net) loaded, a bridge kbbr0 10.78.0.1/24 and a tap
kbtap0 in it. Each variant boots the test guest (same kernel and initramfs) on kbtap0 with
10.78.0.2/24, which:
  ping   20 pings at 0.2 s to the bridge: the average RTT
  tx     busybox dd if=/dev/zero | busybox nc to a listener here: bytes / (first byte .. EOF)
  rx     busybox nc -l | wc -c in the guest, fed from here: bytes / (connect .. the guest's
         count on the console)
Prints a table and kova's ratios to QEMU (throughput: > 1 is kova faster; RTT: < 1).
Usage: net-bench.py KOVA_VMM ASSET_DIR; NET_BENCH_MB (per direction, default 16),
NET_BENCH_VARIANTS (default "kova-vhost kova-user qemu"), NET_BENCH_QEMU_ARGS.
"""
import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time

VMM, ASSETS = sys.argv[1], sys.argv[2]
KERNEL = os.path.join(ASSETS, "vmlinuz")
INITRD = os.path.join(ASSETS, "guest-initrd.cpio.gz")
BR, TAP, HOST, GUEST, MAC = "kbbr0", "kbtap0", "10.78.0.1", "10.78.0.2", "fa:16:3e:00:00:42"
MB = int(os.environ.get("NET_BENCH_MB", "16"))
VARIANTS = os.environ.get("NET_BENCH_VARIANTS", "kova-vhost kova-user qemu").split()

SCRIPT = r"""
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
busybox ip link set lo up
busybox ip addr add @G@/24 dev eth0
busybox ip link set eth0 up
busybox ping -c 3 -W 5 @H@ >/dev/null 2>&1
echo "BENCH-PING $(busybox ping -c 20 -i 0.2 @H@ | busybox tail -1)"
busybox dd if=/dev/zero bs=65536 count=@C@ 2>/dev/null | busybox nc @H@ 5001
echo BENCH-TX-END
busybox nc -l -p 5002 | busybox wc -c | busybox sed 's/^/BENCH-RX-BYTES /'
""".replace("@G@", GUEST).replace("@H@", HOST).replace("@C@", str(MB * 16))


def sh(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    return r.returncode == 0


def setup():
    mods = os.path.join(ASSETS, "l1-modules")
    with open(os.path.join(mods, "load-order")) as f:
        for ko in f.read().split():
            sh("insmod", os.path.join(mods, ko))
    for _ in range(20):
        if os.path.exists("/dev/vhost-net") and os.path.exists("/dev/net/tun"):
            break
        time.sleep(0.1)
    sh("ip", "link", "del", TAP)
    sh("ip", "link", "del", BR)
    ok = (sh("ip", "link", "add", BR, "type", "bridge") and
          sh("ip", "addr", "add", HOST + "/24", "dev", BR) and
          sh("ip", "link", "set", BR, "up") and
          sh("ip", "tuntap", "add", TAP, "mode", "tap") and
          sh("ip", "link", "set", TAP, "master", BR) and
          sh("ip", "link", "set", TAP, "up"))
    if not ok:
        sys.exit("net-bench: cannot set up the bridge and the tap")


def command(variant, cmdline):
    if variant.startswith("kova"):
        vh = "on" if variant == "kova-vhost" else "off"
        return [VMM, "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", cmdline,
                "--memory", "256", "--console-stdout", "--net", f"tap={TAP},mac={MAC},vhost={vh}"]
    return (["qemu-system-x86_64", "-M", "q35", "-enable-kvm", "-cpu", "host", "-m", "256",
             "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
             "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline,
             "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=on",
             "-device", f"virtio-net-pci,netdev=n0,mac={MAC},romfile="] +
            os.environ.get("NET_BENCH_QEMU_ARGS", "").split())


def run(variant):
    cmdline = ("console=ttyS0 quiet panic=-1 kova.script=" +
               base64.b64encode(SCRIPT.encode()).decode())
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((HOST, 5001))
    lst.listen(1)
    lst.settimeout(300)
    res = {}

    def tx_sink():
        try:
            c, _ = lst.accept()
        except OSError:
            return
        n, t0 = 0, None
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            if t0 is None:
                t0 = time.monotonic()
            n += len(b)
        t1 = time.monotonic()
        c.close()
        if t0 and t1 > t0:
            res["tx"] = n / (t1 - t0) / 1e6
        res["tx_bytes"] = n

    threading.Thread(target=tx_sink, daemon=True).start()
    p = subprocess.Popen(command(variant, cmdline), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, cond = [], threading.Condition()

    def reader():
        for raw in p.stdout:
            with cond:
                lines.append((time.monotonic(), raw.decode(errors="replace").strip()))
                cond.notify_all()
        with cond:
            lines.append((time.monotonic(), None))
            cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()

    def wait_for(rx, timeout):
        r, end = re.compile(rx), time.monotonic() + timeout
        with cond:
            while True:
                for t, l in lines:
                    if l is not None and r.search(l):
                        return t, l
                if any(l is None for _, l in lines) or time.monotonic() > end:
                    return None, None
                cond.wait(0.5)

    _, ping = wait_for(r"^BENCH-PING", 120)
    m = re.search(r"= [\d.]+/([\d.]+)/", ping or "")
    if m:
        res["rtt"] = float(m.group(1))
    wait_for(r"^BENCH-TX-END", 600)
    # RX: connect (the guest's nc may not listen yet), send, half-close, wait for the count
    t0, s = None, None
    end = time.monotonic() + 60
    while time.monotonic() < end and p.poll() is None:
        s = socket.socket()
        try:
            s.connect((GUEST, 5002))
            t0 = time.monotonic()
            break
        except OSError:
            s.close()
            s = None
            time.sleep(0.05)
    if s:
        chunk = bytes(1 << 20)
        for _ in range(MB):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        t1, l = wait_for(r"^BENCH-RX-BYTES", 600)
        s.close()
        if l and int(l.split()[1]) == MB << 20:
            res["rx"] = (MB << 20) / (t1 - t0) / 1e6
    try:
        p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    lst.close()
    if "tx" not in res or "rx" not in res or "rtt" not in res:
        print(f"{variant}: incomplete ({res}); console tail:")
        for _, l in lines[-15:]:
            print("   ", l)
        print("   stderr:", p.stderr.read().decode(errors="replace")[-1500:])
    else:
        print(f"{variant}: tx {res['tx']:.3f} MB/s, rx {res['rx']:.3f} MB/s, "
              f"rtt {res['rtt']:.3f} ms", flush=True)
    return res


def main():
    if os.geteuid() != 0:
        sys.exit("net-bench: needs root")
    setup()
    print(f"net-bench: {MB} MiB each way, kernel {os.uname().release}, variants {VARIANTS}",
          flush=True)
    out = {}
    for v in VARIANTS:
        out[v] = run(v)
    sh("ip", "link", "del", TAP)
    sh("ip", "link", "del", BR)
    q = out.get("qemu", {})
    print(f"\n{'variant':12}{'TX MB/s':>10}{'RX MB/s':>10}{'RTT ms':>10}"
          f"{'TX/qemu':>10}{'RX/qemu':>10}{'RTT/qemu':>10}")

    def fmt(v, k, d=1):
        return f"{v[k]:.{d}f}" if k in v else "-"

    def ratio(v, k):
        return f"{v[k] / q[k]:.2f}" if k in v and q.get(k) else "-"

    for name, v in out.items():
        print(f"{name:12}{fmt(v, 'tx', 3):>10}{fmt(v, 'rx', 3):>10}{fmt(v, 'rtt', 3):>10}"
              f"{ratio(v, 'tx'):>10}{ratio(v, 'rx'):>10}{ratio(v, 'rtt'):>10}")
    sys.exit(0 if all({"tx", "rx", "rtt"} <= set(v) for v in out.values()) else 1)


main()
