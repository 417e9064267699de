# SPDX-License-Identifier: Apache-2.0
"""lifecycle.net: real guests on a kova network (bridge, taps, dnsmasq) in the nested-KVM test VM.

Run inside the test VM by kova-nested-run (as root, /dev/kvm there): a real kova-agent with the
real kova-vmm and one network, [network:knet] 10.55.0.0/24 on bridge kovanet55 (the agent makes
the bridge with the gateway 10.55.0.1 and runs dnsmasq; tun and bridge come from the assets'
l1-modules). The test guest (its initramfs only, no root disk mounted) runs one script for all
servers (image property os_command_line): eth0 up, busybox udhcpc (a script of its own sets the
address and the default route), prints NET-MAC=, NET-IP=, NET-GW=, NET-HOST= (the lease's host
name), pings the gateway, serves a marker unique to this boot (NET-MARK=) with busybox httpd on
port 8080, then fetches the peer's marker over TCP (the peer: .10 for .11 and .11 for .10) until
it answers and pings the peer, then stays.

  two servers  A (fixed_ip .10) and B (fixed_ip .11), created at once through the REST API: each
               guest's DHCP address is its server's `addresses` entry and its eth0 MAC that
               entry's OS-EXT-IPS-MAC:mac_addr; DHCP gave the gateway and the server's name as the
               host name; the tap (tap + 11 characters of the port id) is on the bridge and up;
               each guest pings the gateway; this side (on the bridge, the gateway) fetches each
               guest's marker from its port 8080; A has B's marker and pinged B, and B A's.
  delete B     its tap is gone from /sys/class/net, its lease from STATE/networks/<uuid>.hosts,
               its port row from state.db; C created with fixed_ip .11 (B's) is accepted and boots,
               gets .11 by DHCP with its own new MAC, serves its marker, and reaches A.
  the end      A and C deleted: no tap on the bridge, no lease, no kova-vmm; the agent stops
               cleanly (exit 0, no sanitizer report) and takes its dnsmasq with it.

usage: python3 test_network_kvm.py --agent A --vmm V --assets DIR
"""
import base64
import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from kova_hostnet import dnsmasqs, link_up, links  # noqa: E402
import test_lifecycle_kvm as L  # noqa: E402  (its helpers: api, console, wait_status, gone, ...)
from test_lifecycle_kvm import Agent, check, log  # noqa: E402

NET, BRIDGE = "knet", "kovanet55"
PREFIX = "10.55.0"
CIDR, GATEWAY = PREFIX + ".0/24", PREFIX + ".1"
IP_A, IP_B = PREFIX + ".10", PREFIX + ".11"
PORT = 8080
CONFIG = """[kova]
dnsmasq = /usr/sbin/dnsmasq

[network:%s]
cidr = %s
gateway = %s
bridge = %s
""" % (NET, CIDR, GATEWAY, BRIDGE)

# The guest's script (one for all: what differs comes from DHCP). The kernel's command line holds
# at most 2047 bytes, so it is terse. udhcpc's script gets $ip, $mask (prefix length), $router,
# $hostname, $interface in its environment. The peer: .10 <-> .11 (21 - last octet). No wget -T:
# Debian 12's static busybox (1.35.0) segfaults with it; busybox timeout bounds each try instead.
GUEST = r"""b=busybox
n=/sys/class/net/eth0
i=0;while [ ! -e $n ]&&[ $i -lt 100 ];do sleep .1;i=$((i+1));done
m=$(cat $n/address)
echo NET-MAC=$m
$b ip l set lo up;$b ip l set eth0 up
printf '#!/bin/sh\n[ "$1" = bound ]||exit 0\nbusybox ip a add $ip/$mask dev $interface\nbusybox ip r add default via $router\necho "$ip $router $hostname">/tmp/l\n'>/tmp/u
$b chmod +x /tmp/u
t=$($b date +%s)
$b udhcpc -i eth0 -s /tmp/u -f -q -n -t 20 -T 3
read ip gw h </tmp/l
echo NET-IP=$ip
echo NET-GW=$gw
echo NET-HOST=$h
echo NET-DHCP-S=$(($($b date +%s)-t))
read u x </proc/uptime;echo NET-UPTIME=$u
$b ping -c 3 -W 5 $gw>/tmp/g&&echo NET-GW-PING-OK
$b tail -1 /tmp/g
mkdir /tmp/w
echo MARK-$m-$(cat /proc/sys/kernel/random/uuid)>/tmp/w/m
echo NET-MARK=$(cat /tmp/w/m)
$b httpd -p PORT -h /tmp/w&&echo NET-HTTPD=ok
p=${ip%.*}.$((21-${ip##*.}))
i=0;until $b timeout 10 $b wget -q -O /tmp/p http://$p:PORT/m;do i=$((i+1));[ $i -ge 60 ]&&break;sleep 2;done
echo NET-PEER-MARK=$(cat /tmp/p)
$b ping -c 3 -W 5 $p>/dev/null&&echo NET-PEER-PING-OK=$p
""".replace("PORT", str(PORT))
CMDLINE = ("console=ttyS0 quiet no_timer_check kova.stay=1 kova.script=" +
           base64.b64encode(GUEST.encode()).decode())


def sh(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def load_modules(assets):
    """tun and bridge (stp, llc) from the assets' l1-modules (the test VM's kernel): insmod in
    load-order up to bridge.ko."""
    mods = os.path.join(assets, "l1-modules")
    with open(os.path.join(mods, "kernel-version")) as f:
        kver = f.read().strip()
    with open(os.path.join(mods, "load-order")) as f:
        order = f.read().split()
    if kver != os.uname().release:
        log("l1-modules are for %s, this kernel is %s: modprobe" % (kver, os.uname().release))
        for m in ("tun", "bridge"):
            sh("modprobe", m)
    else:
        last = max(order.index("tun.ko"), order.index("bridge.ko"))
        for ko in order[:last + 1]:
            sh("insmod", os.path.join(mods, ko))  # "File exists" where it is built in or loaded
    for _ in range(50):  # devtmpfs makes /dev/net/tun asynchronously
        if os.path.exists("/dev/net/tun") and os.path.isdir("/sys/module/bridge"):
            return True
        time.sleep(0.1)
    return os.path.exists("/dev/net/tun") and os.path.isdir("/sys/module/bridge")


def net_file(ext, net_id=None):
    """The agent's STATE/networks/<network uuid>.EXT (hosts, leases, log), or why not."""
    try:
        with open(os.path.join(L.C.agent.state_dir, "networks",
                               "%s.%s" % (net_id or C.net_id, ext)),
                  errors="replace") as f:
            return f.read()
    except OSError as e:
        return "(%s)" % e


def db_ports():
    c = sqlite3.connect(os.path.join(L.C.agent.state_dir, "state.db"), timeout=10)
    rows = c.execute("SELECT id, mac, ip FROM ports").fetchall()
    c.close()
    return rows


def wait_for(fn, timeout, step=0.2):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


class C:
    net_id = None
    servers = {}  # name -> id, for the cleanup


def diag(sids=()):
    """Everything that says where the network failed: the guests' consoles, the VMMs, the
    bridge and its ports, dnsmasq's hosts file and log."""
    out = []
    for sid in sids:
        out.append("---- console of %s (tail)\n%s" % (sid, L.console(sid)[-2500:]))
    out.append("---- " + L.diag_text())
    out.append("---- links: %r" % links())
    out.append("---- ip -br addr\n" + sh("ip", "-br", "addr").stdout)
    out.append("---- bridge link\n" + sh("bridge", "link").stdout)
    out.append("---- ip neigh\n" + sh("ip", "neigh").stdout)
    out.append("---- hosts file\n" + net_file("hosts"))
    out.append("---- dnsmasq log (tail)\n" + net_file("log")[-3000:])
    out.append("---- dnsmasq pids %r" % dnsmasqs(BRIDGE))
    return "\n".join(out)


def marker(out, key):
    """The value of the last NET-KEY=... line on a console."""
    vals = re.findall(r"^NET-%s=(.*?)\r?$" % re.escape(key), out, re.M)
    return vals[-1] if vals else None


def wait_marker(sid, key, timeout):
    """Until NET-KEY= is on sid's console; its value (None after timeout)."""
    deadline = time.time() + timeout
    while True:
        out = L.console(sid)
        v = marker(out, key)
        if v is not None or "KOVA-GUEST-RC=" in out or time.time() > deadline:
            return v
        time.sleep(0.5)


def http_get(ip, path, timeout=10):
    try:
        c = http.client.HTTPConnection(ip, PORT, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode(errors="replace").strip()
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)


def create(name, fixed_ip):
    st, _, b = L.api("POST", "/v2.1/servers", {"server": {
        "name": name, "imageRef": C.image, "flavorRef": "knet1",
        "networks": [{"uuid": C.net_id, "fixed_ip": fixed_ip}]}})
    if not check(st == 202, "create %s with fixed_ip %s: 202 (%r)" % (name, fixed_ip,
                                                                      st if st == 202 else b)):
        raise RuntimeError("create %s refused" % name)
    C.servers[name] = b["server"]["id"]
    return b["server"]["id"]


def guest_up(name, sid, want_ip, t0):
    """The checks of one booted guest against its server; returns (mac, marker)."""
    s = L.wait_status(sid, "ACTIVE", timeout=120)
    addrs = s["addresses"].get(NET) or [{}]
    a = addrs[0]
    check(len(s["addresses"]) == 1 and len(addrs) == 1 and a.get("addr") == want_ip and
          a.get("OS-EXT-IPS:type") == "fixed",
          "%s: addresses has one fixed %s on %s (%r)" % (name, want_ip, NET, s["addresses"]))
    ifs = L.api("GET", "/v2.1/servers/%s/os-interface" % sid)[2]["interfaceAttachments"]
    tap = "tap" + ifs[0]["port_id"][:11]
    check(links().get(tap) == BRIDGE and link_up(tap),
          "%s: its tap %s is on %s and up" % (name, tap, BRIDGE))
    ip = wait_marker(sid, "IP", 180)
    if not check(ip is not None, "%s: the guest got a DHCP lease (%.0f s after create)"
                 % (name, time.time() - t0)):
        raise RuntimeError("%s: no DHCP lease\n%s" % (name, diag([sid])))
    out = L.console(sid)
    mac = marker(out, "MAC")
    check(ip == want_ip, "%s: the guest's DHCP address %s is its server's (%s)" % (name, ip,
                                                                                want_ip))
    check(mac == a.get("OS-EXT-IPS-MAC:mac_addr"),
          "%s: eth0's MAC %s is its address's OS-EXT-IPS-MAC:mac_addr (%s)" % (
              name, mac, a.get("OS-EXT-IPS-MAC:mac_addr")))
    check(marker(out, "GW") == GATEWAY and marker(out, "HOST") == name,
          "%s: DHCP gave router %s and host name %s (%s, %s; lease in %s s, at guest uptime "
          "%s s)" % (name, GATEWAY, name, marker(out, "GW"), marker(out, "HOST"),
                     marker(out, "DHCP-S"), marker(out, "UPTIME")))
    ok = wait_marker(sid, "HTTPD", 60) == "ok"
    out = L.console(sid)
    check("NET-GW-PING-OK" in out, "%s: the guest pinged the gateway" % name)
    mark = marker(out, "MARK")
    check(ok and mark and mark.startswith("MARK-" + mac + "-"),
          "%s: the guest serves its marker on port %d (%s)" % (name, PORT, mark))
    st, body = None, ""
    deadline = time.time() + 30
    while time.time() < deadline:
        st, body = http_get(want_ip, "/m")
        if st == 200:
            break
        time.sleep(1)
    check(st == 200 and body == mark, "%s: this side (on %s) fetched its marker from %s:%d "
          "(%r, %r)" % (name, BRIDGE, want_ip, PORT, st, body))
    return tap, mac, mark


def peer_ok(name, sid, peer_name, peer_ip, peer_mark):
    pm = wait_marker(sid, "PEER-MARK", 150)
    out = L.console(sid)
    check(pm is not None and pm == peer_mark,
          "%s fetched %s's marker from %s:%d (%r)" % (name, peer_name, peer_ip, PORT, pm))
    if pm is not None and "NET-PEER-PING-OK" not in out:
        wait_marker(sid, "PEER-PING-OK", 30)
        out = L.console(sid)
    check(marker(out, "PEER-PING-OK") == peer_ip, "%s pinged %s (%s)" % (name, peer_name,
                                                                        peer_ip))


def register():
    st, _, _ = L.api("POST", "/v2.1/flavors", {"flavor": {"name": "kova.net", "id": "knet1",
                                                          "ram": 256, "vcpus": 1, "disk": 1}})
    check(st == 200, "flavor knet1 (256 MiB) created (%r)" % st)

    def image(name, fmt, raw, **props):
        body = {"name": name, "disk_format": fmt, "container_format": "bare"}
        body.update(props)
        st, _, img = L.C.agent.request("POST", "/v2/images", body, token="admin:admin",
                                       image=True)
        st2, _, _ = L.C.agent.request("PUT", "/v2/images/%s/file" % img["id"],
                                      token="admin:admin", image=True, raw=raw,
                                      headers={"Content-Type": "application/octet-stream"})
        if st != 201 or st2 != 204:
            raise RuntimeError("image %s: %r %r" % (name, st, st2))
        return img["id"]

    def read(name):
        with open(os.path.join(L.C.assets, name), "rb") as f:
            return f.read()
    kernel = image("kova-kernel", "aki", read("vmlinuz"))
    ramdisk = image("kova-initrd", "ari", read("guest-initrd.cpio.gz"))
    # a blank disk: the guest runs from its initramfs (no kova.root)
    C.image = image("kova-net-guest", "raw", b"\0" * (1 << 20), kernel_id=kernel,
                    ramdisk_id=ramdisk, os_command_line=CMDLINE)
    nets = L.api("GET", "/v2.1/os-networks")[2]["networks"]
    mine = [n for n in nets if n["label"] == NET]
    if not check(len(mine) == 1 and mine[0]["cidr"] == CIDR and mine[0]["gateway"] == GATEWAY,
                 "os-networks lists %s %s gateway %s" % (NET, CIDR, GATEWAY)):
        raise RuntimeError("network %s not listed: %r" % (NET, nets))
    C.net_id = mine[0]["id"]
    addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", BRIDGE).stdout or "[]")
    have = ["%s/%d" % (x["local"], x["prefixlen"]) for a in addrs for x in a["addr_info"]
            if x["family"] == "inet"]
    check(GATEWAY + "/24" in have and link_up(BRIDGE) and len(dnsmasqs(BRIDGE)) == 1,
          "bridge %s up with %s/24, one dnsmasq (%r, %r)" % (BRIDGE, GATEWAY, have,
                                                              dnsmasqs(BRIDGE)))


def part_net():
    log("== two guests on %s (%s)" % (NET, CIDR))
    t0 = time.time()
    a = create("net-a", IP_A)
    b = create("net-b", IP_B)
    tap_a, mac_a, mark_a = guest_up("net-a", a, IP_A, t0)
    tap_b, mac_b, mark_b = guest_up("net-b", b, IP_B, t0)
    log("both guests up and serving (%.0f s after the creates)" % (time.time() - t0))
    peer_ok("net-a", a, "net-b", IP_B, mark_b)
    peer_ok("net-b", b, "net-a", IP_A, mark_a)
    hosts = net_file("hosts")
    check(("%s,%s,net-a" % (mac_a, IP_A)) in hosts and ("%s,%s,net-b" % (mac_b, IP_B)) in hosts,
          "both leases in the hosts file (%r)" % hosts)
    log("both guests reached each other (%.0f s after the creates)" % (time.time() - t0))

    log("== delete net-b: tap, lease and IP released")
    st, _, _ = L.api("DELETE", "/v2.1/servers/%s" % b)
    check(st == 204 and L.gone(b, 60), "net-b deleted")
    check(wait_for(lambda: tap_b not in links(), 20), "net-b's tap %s is gone" % tap_b)
    check(wait_for(lambda: mac_b not in net_file("hosts"), 20),
          "net-b's lease is gone from the hosts file (%r)" % net_file("hosts"))
    check(not [p for p in db_ports() if p[1] == mac_b], "net-b's port row is gone")
    check(links().get(tap_a) == BRIDGE, "net-a's tap is still on the bridge")
    t1 = time.time()
    c = create("net-c", IP_B)
    tap_c, mac_c, mark_c = guest_up("net-c", c, IP_B, t1)
    check(mac_c != mac_b, "net-c has a new MAC (%s, net-b had %s)" % (mac_c, mac_b))
    peer_ok("net-c", c, "net-a", IP_A, mark_a)
    st, body = http_get(IP_A, "/m")
    check(st == 200 and body == mark_a, "net-a still serves its marker")

    log("== delete the rest")
    for sid in (a, c):
        L.api("DELETE", "/v2.1/servers/%s" % sid)
    check(all(L.gone(sid, 60) for sid in (a, c)), "net-a and net-c deleted")
    check(wait_for(lambda: not [n for n, m in links().items() if m == BRIDGE], 20),
          "no tap left on %s (%r)" % (BRIDGE, links()))
    check(wait_for(lambda: "fa:16:3e" not in net_file("hosts"), 20) and db_ports() == [],
          "no lease and no port left (%r, %r)" % (net_file("hosts"), db_ports()))
    check(L.local_vmm_pids(L.C.agent.state_dir) == {}, "no kova-vmm left")
    C.servers.clear()


def main():
    a = sys.argv[1:]
    opt = {a[i]: a[i + 1] for i in range(0, len(a) - 1, 2)}
    t_start = time.time()
    L.loopback_up()
    if not os.path.exists("/dev/kvm") or os.geteuid() != 0:
        print("FAIL: needs /dev/kvm and root (run through tests/nested/kova-nested-run)")
        return 1
    L.C.assets = opt["--assets"]
    L.C.ctl = None
    if not check(load_modules(L.C.assets), "tun and bridge loaded"):
        return 1
    if not check(os.access("/usr/sbin/dnsmasq", os.X_OK), "/usr/sbin/dnsmasq is there"):
        return 1
    sh("ip", "link", "del", BRIDGE)  # none expected: a fresh test VM
    agent = L.C.agent = Agent(opt["--agent"], config_text=CONFIG,
                              extra_args=["--vmm", opt["--vmm"], "--shutdown-timeout", "30"])
    agent_log = ""
    try:
        agent.start()
        register()
        part_net()
    except Exception as e:  # the cleanup and the agent's exit are checked all the same
        check(False, str(e))
        if L.C.agent.proc:
            print(diag(list(C.servers.values())), flush=True)
    finally:
        for sid in C.servers.values():
            L.api("DELETE", "/v2.1/servers/%s" % sid)
        for sid in C.servers.values():
            L.gone(sid, 60)
        if agent.proc:
            left, agent_log = L.finish_agent(agent)
            check(not left, "no kova-vmm left at the end (%r)" % left)
        check(wait_for(lambda: not dnsmasqs(BRIDGE), 10), "the agent's dnsmasq stopped with it")
        # A SIGHUP for a new lease sent to a dnsmasq just (re)started, before it set its
        # handler, killed it (DHCP down until the supervisor restarted it): the agent now waits
        # for its pid file first (network/host.c dnsmasq_ready). Any other death is noted.
        hup = []
        for line in (agent_log or "").splitlines():
            if "dnsmasq (pid" in line and ("killed by signal" in line or "exited" in line):
                log("NOTE: " + line.split("kova-agent ", 1)[-1])
                if re.search(r"killed by signal 1\b", line):
                    hup.append(line)
        check(not hup, "no dnsmasq killed by a SIGHUP (%r)" % hup)
        for pid in dnsmasqs(BRIDGE):
            os.kill(pid, signal.SIGKILL)
        if L.failures:
            print("---- agent log (tail)\n" + (agent_log or agent.read_log())[-8000:])
        agent.cleanup()
        sh("ip", "link", "del", BRIDGE)
    print("%d failure(s), %.0f s" % (len(L.failures), time.time() - t_start))
    return 1 if L.failures else 0


if __name__ == "__main__":
    sys.exit(main())
