#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""kova-vmm virtio-net tests (userspace path and vhost-net over a tap); they need /dev/kvm and
root (ctest runs them in the nested-KVM test VM, where tun and vhost_net are insmod'ed from
ASSET_DIR/l1-modules).

Without a guest: vhost=on fails at start where /dev/vhost-net is missing or unusable (/dev/null
bound over it in a mount namespace), vhost=auto falls back to the userspace path there, an fd=
that is not a tap fails, an inherited tap fd is taken. With guests, on a tap kovatap0
(10.77.0.1/24) here, each booted with --net tap=kovatap0,mac=fa:16:3e:00:00:01,vhost=MODE:
  off  the userspace path: eth0 has the MAC and the offered features, configures 10.77.0.2/24,
       pings 10.77.0.1, fetches 1 MiB over HTTP from here (guest RX: TSO/MRG_RXBUF), serves
       1 MiB that this side fetches (guest TX: TSO); the per-NIC counters show the traffic and
       no bad chains.
  on   (where /dev/vhost-net works) vhost-net: the same traffic, then the guest unloads and
       reloads virtio_net (device reset, vectors masked and requested again, vhost stopped and
       started again), moves the NIC's interrupts to the other vCPU (MSI-X entries rewritten:
       the irqfd routes follow), pings and fetches 1 MiB again.
  auto (where /dev/vhost-net works) picks vhost-net: ping.
KOVA_NET_TESTS=noguest,off,on,auto (the default: all) picks the parts.
Usage: net-tests.py KOVA_VMM ASSET_DIR
"""
import base64
import fcntl
import hashlib
import http.server
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmmcheck import check, failures, wait_exit  # noqa: E402

VMM, ASSETS = sys.argv[1], sys.argv[2]
VHOST = False  # /dev/vhost-net works here (load_vhost)
KERNEL = os.path.join(ASSETS, "vmlinuz")
INITRD = os.path.join(ASSETS, "guest-initrd.cpio.gz")
TMP = tempfile.mkdtemp(prefix="kova-net-test.")
TAP, HOST_IP, GUEST_IP, MAC = "kovatap0", "10.77.0.1", "10.77.0.2", "fa:16:3e:00:00:01"
BIG = 1 << 20

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def sh(*args, check_rc=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        print(f"  {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
    return r.returncode == 0


def load_tun():
    """/dev/net/tun usable, loading tun from the assets (the test VM's kernel) if need be."""
    if tun_ok() or (sh("modprobe", "tun", check_rc=False) and tun_ok()):
        return True
    mods = os.path.join(ASSETS, "l1-modules")
    try:
        with open(os.path.join(mods, "kernel-version")) as f:
            kver = f.read().strip()
        with open(os.path.join(mods, "load-order")) as f:
            order = f.read().split()
    except OSError as e:
        print(f"  no l1-modules in the assets: {e}")
        return False
    if kver != os.uname().release:
        print(f"  l1-modules are for {kver}, this kernel is {os.uname().release}")
        return False
    for ko in order[:order.index("tun.ko") + 1]:
        sh("insmod", os.path.join(mods, ko), check_rc=False)
    return tun_ok()


def load_vhost():
    """/dev/vhost-net present, loading vhost_net (and what it needs) from the assets if need be."""
    if os.path.exists("/dev/vhost-net") or sh("modprobe", "vhost_net", check_rc=False):
        return os.path.exists("/dev/vhost-net")
    mods = os.path.join(ASSETS, "l1-modules")
    try:
        with open(os.path.join(mods, "load-order")) as f:
            order = f.read().split()
    except OSError as e:
        print(f"  no l1-modules in the assets: {e}")
        return False
    for ko in order[:order.index("vhost_net.ko") + 1] if "vhost_net.ko" in order else []:
        sh("insmod", os.path.join(mods, ko), check_rc=False)
    for _ in range(20):  # devtmpfs makes the node asynchronously
        if os.path.exists("/dev/vhost-net"):
            return True
        time.sleep(0.1)
    return False


def tun_ok():
    try:
        os.close(open_tap("kovaprobe0"))
        return True
    except OSError:
        return False


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    return fd


def no_guest():
    k = [VMM, "--kernel", KERNEL, "--memory", "256"]
    if not os.path.exists("/dev/vhost-net"):
        r = subprocess.run(k + ["--net", f"tap={TAP},mac={MAC},vhost=on"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 1 and "cannot open /dev/vhost-net" in r.stderr,
              f"vhost=on without /dev/vhost-net -> exit {r.returncode}: {r.stderr.strip()[-200:]}")
    global VHOST
    VHOST = check(load_vhost(), "vhost_net module loaded (/dev/vhost-net)")
    # /dev/vhost-net that is not vhost-net (/dev/null bound over it, in a mount namespace).
    hide = "mount --bind /dev/null /dev/vhost-net && exec \"$@\""
    if VHOST:
        unusable(k, hide)
    no_guest_fds(k)


def unusable(k, hide):
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", hide, "sh"] + k +
                       ["--net", f"tap={TAP},mac={MAC},vhost=on"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 1 and "vhost=on: VHOST_SET_OWNER failed" in r.stderr,
          f"vhost=on, /dev/vhost-net unusable -> exit {r.returncode}: {r.stderr.strip()[-200:]}")
    sock = os.path.join(TMP, "auto.sock")
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", hide, "sh"] +
                         k + ["--net", f"tap={TAP},mac={MAC},vhost=auto", "--control-socket",
                              sock], stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 30
    while not os.path.exists(sock) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.1)
    if os.path.exists(sock):
        ctl(sock, "quit")
    rc = wait_exit(p, 30)
    err = p.stderr.read()
    check(rc == 0 and f"tap {TAP}, mac {MAC}, userspace path" in err and
          "vhost-net not usable (VHOST_SET_OWNER failed" in err,
          f"vhost=auto, /dev/vhost-net unusable -> userspace path, exit {rc}")


def no_guest_fds(k):
    rfd, wfd = os.pipe()
    r = subprocess.run(k + ["--net", f"fd={rfd},mac={MAC}"], capture_output=True, text=True,
                       timeout=60, pass_fds=(rfd,))
    os.close(rfd)
    os.close(wfd)
    check(r.returncode == 1 and "not a tap" in r.stderr,
          f"fd= of a pipe -> exit {r.returncode} with 'not a tap'")
    r = subprocess.run(k + ["--net", "fd=77,mac=" + MAC], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 1 and "net 0" in r.stderr, f"fd= not open -> exit {r.returncode}")
    # An inherited tap fd: taken (the guest is stopped right after the log line).
    fd = open_tap("kovatap1")
    sock = os.path.join(TMP, "fd.sock")
    p = subprocess.Popen(k + ["--net", f"fd={fd},mac={MAC},vhost=off", "--control-socket", sock],
                         stderr=subprocess.PIPE, text=True, pass_fds=(fd,))
    os.close(fd)
    end = time.monotonic() + 30
    while not os.path.exists(sock) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.1)
    st = ctl(sock, "status") if os.path.exists(sock) else {}
    nics = st.get("nics") or [{}]
    check(nics[0].get("tap") == "kovatap1", f"fd= of a tap -> NIC on kovatap1: {nics}")
    if os.path.exists(sock):
        ctl(sock, "quit")
    rc = wait_exit(p, 30)
    err = p.stderr.read()
    check(rc == 0 and "kovatap1, mac " + MAC + ", userspace path" in err,
          f"inherited tap fd, vhost=off: exit {rc}, userspace path")


def ctl(sock, cmd):
    for _ in range(50):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(sock)
            break
        except (ConnectionRefusedError, FileNotFoundError):
            s.close()
            time.sleep(0.2)
    s.sendall((json.dumps({"cmd": cmd}) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf.decode())


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


GUEST_SCRIPT = r"""
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "NET-MAC=$(cat /sys/class/net/eth0/address)"
echo "NET-FEATURES=$(cat /sys/class/net/eth0/device/features)"
busybox ip link set lo up
busybox ip addr add GUEST/24 dev eth0
busybox ip link set eth0 up
busybox ping -c 3 -W 5 HOST >/tmp/ping.txt 2>&1 && echo NET-PING-OK
busybox tail -2 /tmp/ping.txt
""".replace("GUEST", GUEST_IP).replace("HOST", HOST_IP)

GUEST_TRAFFIC = r"""
t0=$(busybox date +%s)
busybox wget -q -O /tmp/in http://HOST:8000/big && echo "NET-GOT=$(busybox md5sum /tmp/in | awk '{print $1}') $(( $(busybox date +%s) - t0 ))s"
mkdir -p /tmp/www
busybox dd if=/dev/urandom of=/tmp/www/out bs=1024 count=1024 2>/dev/null
echo "NET-OUT=$(busybox md5sum /tmp/www/out | awk '{print $1}')"
busybox httpd -p 8080 -h /tmp/www && echo NET-SERVING
i=0
until busybox wget -q -O /tmp/done http://HOST:8000/done 2>/dev/null || [ $i -ge 600 ]; do
    sleep 0.5; i=$((i + 1))
done
echo NET-DONE
""".replace("GUEST", GUEST_IP).replace("HOST", HOST_IP)

# The driver unloaded and loaded again (reset, vectors freed and requested again), its
# interrupts moved to CPU 1 (MSI-X entries rewritten), then traffic again.
GUEST_RELOAD = r"""
busybox ip link set eth0 down
busybox rmmod virtio_net && echo NET-RMMOD-OK
modprobe virtio_net && echo NET-MODPROBE-OK
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
busybox ip addr add GUEST/24 dev eth0
busybox ip link set eth0 up
n=0
for irq in $(busybox grep -E 'virtio[0-9]+-(input|output)' /proc/interrupts | busybox cut -d: -f1); do
    echo 2 >/proc/irq/$irq/smp_affinity && n=$((n + 1))
done
echo "NET-AFFINITY=$n"
busybox ping -c 3 -W 5 HOST >/tmp/ping.txt 2>&1 && echo NET-PING2-OK
busybox wget -q -O /tmp/in2 http://HOST:8000/big && echo "NET-GOT2=$(busybox md5sum /tmp/in2 | awk '{print $1}')"
busybox grep -E 'virtio[0-9]+-(input|output)' /proc/interrupts | busybox tr -s ' ' | busybox sed 's/^/NET-IRQ /'
""".replace("GUEST", GUEST_IP).replace("HOST", HOST_IP)


def tap_up():
    sh("ip", "link", "del", TAP, check_rc=False)
    return check(sh("ip", "tuntap", "add", TAP, "mode", "tap") and
                 sh("ip", "addr", "add", HOST_IP + "/24", "dev", TAP) and
                 sh("ip", "link", "set", TAP, "up"), f"tap {TAP} with {HOST_IP}/24")


def with_guest(mode):
    """One guest on the tap with --net ...,vhost=mode (see the module's docstring)."""
    print(f"-- guest with vhost={mode}")
    if not tap_up():
        return
    www = os.path.join(TMP, "www-" + mode)
    os.mkdir(www)
    big = os.urandom(BIG)
    with open(os.path.join(www, "big"), "wb") as f:
        f.write(big)
    handler = lambda *a, **kw: Quiet(*a, directory=www, **kw)  # noqa: E731
    srv = http.server.ThreadingHTTPServer((HOST_IP, 8000), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    sock = os.path.join(TMP, f"net-{mode}.sock")
    errlog = os.path.join(TMP, f"net-{mode}.stderr")
    script = GUEST_SCRIPT + (GUEST_TRAFFIC if mode != "auto" else "")
    if mode == "on":  # fetched: the command line has no room for it
        with open(os.path.join(www, "reload.sh"), "w") as f:
            f.write(GUEST_RELOAD)
        script += (f"busybox wget -q -O /tmp/reload.sh http://{HOST_IP}:8000/reload.sh && "
                   ". /tmp/reload.sh\n")
    cmdline = ("console=ttyS0 quiet panic=-1 kova.script=" +
               base64.b64encode(script.encode()).decode())
    err = open(errlog, "w")
    cpus = ["--cpus", "2"] if mode == "on" else []
    p = subprocess.Popen([VMM, "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", cmdline,
                          "--memory", "256", "--console-stdout", "--control-socket", sock,
                          "--net", f"tap={TAP},mac={MAC},vhost={mode}"] + cpus,
                         stdout=subprocess.PIPE, stderr=err)
    lines = []
    cond = threading.Condition()

    def reader():
        for raw in p.stdout:
            with cond:
                lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                cond.notify_all()
        with cond:
            lines.append(None)
            cond.notify_all()

    threading.Thread(target=reader, daemon=True).start()

    def wait_for(rx, timeout):
        r = re.compile(rx)
        end = time.monotonic() + timeout
        with cond:
            while True:
                for l in lines:
                    if l is not None and r.search(l):
                        return l
                if None in lines or time.monotonic() > end:
                    return None
                cond.wait(0.5)

    def stderr_text():
        with open(errlog) as f:
            return f.read()

    vhost = mode != "off"
    t0 = time.monotonic()
    ok = check(wait_for("KOVA-GUEST-READY", 180) is not None, "guest boots to the init marker")
    if ok:
        print(f"  boot: {time.monotonic() - t0:.1f} s")
        path = "vhost-net" if vhost else "userspace path"
        check(f"net eth0: tap {TAP}, mac {MAC}, {path}" in stderr_text(),
              f"vhost={mode}: logged '{path}'")
        mac = wait_for("^NET-MAC=", 60)
        check(mac == "NET-MAC=" + MAC, f"guest eth0 has the MAC: {mac}")
        feat = wait_for("^NET-FEATURES=", 10) or ""
        bits = feat.split("=", 1)[-1]
        want = {0: "CSUM", 1: "GUEST_CSUM", 5: "MAC", 7: "GUEST_TSO4", 8: "GUEST_TSO6",
                11: "HOST_TSO4", 12: "HOST_TSO6", 15: "MRG_RXBUF", 16: "STATUS",
                28: "INDIRECT_DESC", 29: "EVENT_IDX", 32: "VERSION_1"}
        missing = [n for b, n in want.items() if len(bits) <= b or bits[b] != "1"]
        check(not missing, f"driver acked the offered features (missing: {missing})")
        check(wait_for("^NET-PING-OK", 60) is not None, f"guest pings {HOST_IP}")
        if vhost:
            check("vhost-net started" in stderr_text(), "vhost-net started at DRIVER_OK")
    if ok and mode != "auto":
        got = wait_for("^NET-GOT=", 180)
        check(got is not None and got.split("=")[1].split()[0] == hashlib.md5(big).hexdigest(),
              f"guest fetched 1 MiB intact (guest RX): {got}")
        out = wait_for("^NET-OUT=", 60)
        serving = wait_for("^NET-SERVING", 30)
        if check(serving is not None, "guest serves HTTP on 8080"):
            t1 = time.monotonic()
            try:
                data = urllib.request.urlopen(f"http://{GUEST_IP}:8080/out", timeout=120).read()
            except OSError as e:
                data = b""
                print(f"  fetch failed: {e}")
            dt = time.monotonic() - t1
            check(out is not None and hashlib.md5(data).hexdigest() == out.split("=")[1],
                  f"fetched 1 MiB from the guest intact (guest TX): {len(data)} bytes, {dt:.1f} s")
        st = ctl(sock, "status")
        nic = (st.get("nics") or [{}])[0]
        print(f"  counters: {nic}")
        check(nic.get("vhost") == bool(vhost), f"status: vhost {nic.get('vhost')}")
        if not vhost:
            check(nic.get("tap") == TAP and nic.get("rx_bytes", 0) >= BIG and
                  nic.get("tx_bytes", 0) >= BIG, "status counts the traffic both ways")
            if nic.get("rx_frames") and nic.get("tx_frames"):
                print(f"  average frame: RX {nic['rx_bytes'] / nic['rx_frames']:.0f} B, "
                      f"TX {nic['tx_bytes'] / nic['tx_frames']:.0f} B (over 1514: TSO/GSO)")
        check(nic.get("bad_chains") == 0 and nic.get("broken_queues") == 0 and
              nic.get("tx_errors") == 0, "no bad chains, broken queues or TX errors")
        with open(os.path.join(www, "done"), "w") as f:
            f.write("done\n")
        check(wait_for("^NET-DONE", 60) is not None, "guest script finished")
    if ok and mode == "on":
        check(wait_for("^NET-RMMOD-OK", 60) is not None and
              wait_for("^NET-MODPROBE-OK", 60) is not None, "guest unloads and reloads virtio_net")
        aff = wait_for("^NET-AFFINITY=", 60) or "NET-AFFINITY=0"
        check(int(aff.split("=")[1]) >= 2, f"NIC interrupts moved to CPU 1: {aff}")
        check(wait_for("^NET-PING2-OK", 60) is not None, "guest pings after the reload")
        got = wait_for("^NET-GOT2=", 180)
        check(got is not None and got.split("=")[1].split()[0] == hashlib.md5(big).hexdigest(),
              f"guest fetched 1 MiB after the reload and the move: {got}")
        wait_for("KOVA-GUEST-RC=", 30)
        for l in lines:
            if l and l.startswith("NET-IRQ"):
                print("  " + l)
        started = stderr_text().count("vhost-net started")
        check(started == 2, f"vhost-net started again after the reload ({started} starts)")
    if ok:
        check(wait_for("KOVA-GUEST-RC=0", 60) is not None, "guest script succeeded")
    rc = wait_exit(p, 60)
    err.close()
    check(rc == 0, f"guest poweroff -> exit {rc}")
    srv.shutdown()
    srv.server_close()
    if failures:
        print("--- console tail ---")
        for l in [l for l in lines if l is not None][-30:]:
            print("  " + l)
        print("--- stderr ---\n  " + stderr_text().replace("\n", "\n  "))


def main():
    if os.geteuid() != 0:
        print("net-tests: needs root (taps)")
        sys.exit(1)
    if not check(load_tun(), "tun module available"):
        sys.exit(1)
    only = os.environ.get("KOVA_NET_TESTS", "noguest,off,on,auto").split(",")
    global VHOST
    if "noguest" in only:
        no_guest()
    else:
        VHOST = load_vhost()
    if "off" in only:
        with_guest("off")
    for mode in ("on", "auto"):
        if mode in only and check(VHOST, f"vhost={mode}: /dev/vhost-net for the guest"):
            with_guest(mode)
    sh("ip", "link", "del", TAP, check_rc=False)
    if failures:
        print(f"{len(failures)} check(s) failed:")
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print("kova-vmm net tests: all checks passed")


main()
