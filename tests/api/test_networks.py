# SPDX-License-Identifier: Apache-2.0
"""api.networks: kova's networks end to end on this host, without a guest (as root: real
bridges, real taps, real dnsmasq, a real DHCP client).

A real kova-agent with three [network:NAME] sections (fresh bridge names and subnets per run)
drives kova-fake-vmm (tests/api/fake_vmm.c), which holds the tap fd the agent passes it as a
real kova-vmm does. Checked: the bridges (gateway address, up) and one dnsmasq per network;
/os-networks; `networks` in create (auto, none, uuid, fixed_ip) and every bad form of it (400/409,
nothing written); addresses and os-interface; the tap on its bridge while the VMM runs, gone
after stop and delete; dnsmasq's static leases follow the ports, and busybox udhcpc in a network
namespace gets exactly the port's fixed IP, gateway and DNS from it; dnsmasq restarted after
SIGKILL; address exhaustion; an agent SIGKILLed during creates leaves, after its restart, no tap
that no port names, no duplicate IP and one dnsmasq per network; Debian's openstack CLI with
`server create --network NAME` and the Networks column.
Metadata: the metadata service on 169.254.169.254:80 from network namespaces with servers'
fixed IPs (each sees its own meta_data.json, keys, user data, EC2 tree, network_data.json; an
address that is no server's and a deleted server's get 404; hostile paths 404, POST 405); the
config drive (vfat config-2 read back with blkid and mcopy, attached read-only, kept over
stop/start, gone with the server).

usage: /usr/bin/python3 test_networks.py --agent PATH/kova-agent --fake-vmm PATH/kova-fake-vmm
       [--openstack /usr/bin/openstack]
"""
import base64
import ipaddress
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from kova_hostnet import dnsmasqs, link_up, links  # noqa: E402
from kova_agent_fixture import (Agent, openstack_env, sanitizer_problems,  # noqa: E402
                                unittest_main)

AGENT_BIN = FAKE_VMM_BIN = OPENSTACK = None
DEMO, ADMIN = "demo:demo", "admin:admin"
TAG = "%04x" % (os.getpid() & 0xffff)
SUB = os.getpid() % 200 + 20  # the third octet of this run's subnets


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s: %d %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


class Net:
    def __init__(self, letter, cidr, dns=None):
        self.name = "t%s%s" % (TAG, letter)
        self.bridge = "ktb%s%s" % (TAG, letter)
        self.cidr = ipaddress.ip_network(cidr)
        self.gateway = str(next(self.cidr.hosts()))
        self.dns = dns

    def section(self):
        s = "[network:%s]\ncidr = %s\nbridge = %s\n" % (self.name, self.cidr, self.bridge)
        if self.dns:
            s += "dns = %s\n" % self.dns
        return s


NETS = [Net("a", "10.231.%d.0/24" % SUB, dns="192.0.2.53"), Net("b", "10.232.%d.0/24" % SUB),
        Net("c", "10.233.%d.0/29" % SUB)]


def agent_config(fake):
    return "[kova]\nvmm_path = %s\n\n" % fake + "\n".join(n.section() for n in NETS)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("api.networks needs root (bridges, taps, dnsmasq)")
        cls.fake_dir = tempfile.mkdtemp(prefix="kova-net-fake-")
        cls.fake = os.path.join(cls.fake_dir, "kova-vmm")
        shutil.copy(FAKE_VMM_BIN, cls.fake)
        cls.a = Agent(AGENT_BIN, extra_args=["--shutdown-timeout", "3"],
                      config_text=agent_config(cls.fake)).start()

    @classmethod
    def tearDownClass(cls):
        a = getattr(cls, "a", None)
        log = ""
        if a:
            for s in cls.all_servers(cls):
                a.request("DELETE", "/v2.1/servers/%s" % s["id"], token=ADMIN)
            deadline = time.time() + 20
            while cls.all_servers(cls) and time.time() < deadline:
                time.sleep(0.1)
            rc, log = a.stop()
            a.cleanup()
        for n in NETS:
            for pid in dnsmasqs(n.bridge):
                os.kill(pid, signal.SIGKILL)
            sh("ip", "link", "del", n.bridge, check=False)
        for p in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if f.read().split(b"\0")[0] == cls.fake.encode():
                        os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(cls.fake_dir, ignore_errors=True)
        if a:
            assert rc == 0 and not sanitizer_problems(log), "agent exit %r\n%s" % (rc, log[-3000:])

    def all_servers(self):
        st, _, b = self.a.request("GET", "/v2.1/servers?all_tenants=1", token=ADMIN)
        return b["servers"] if st == 200 else []

    def req(self, method, path, body=None, status=None, token=DEMO, **kw):
        st, h, b = self.a.request(method, path, body=body, token=token, **kw)
        self.assertLess(st, 500, "%s %s -> %d %r" % (method, path, st, b))
        if status is not None:
            self.assertEqual(st, status, "%s %s -> %d %r" % (method, path, st, b))
        return b

    def net_id(self, n):
        for x in self.req("GET", "/v2.1/os-networks", status=200)["networks"]:
            if x["label"] == n.name:
                return x["id"]
        self.fail("no network %s" % n.name)

    def image(self):
        if not getattr(type(self), "img", None):
            kernel = self.req("POST", "/v2/images", {"name": "k", "disk_format": "aki",
                                                     "container_format": "bare"},
                              status=201, image=True)["id"]
            self.req("PUT", "/v2/images/%s/file" % kernel, status=204, image=True,
                     raw=b"\0" * 4096, headers={"Content-Type": "application/octet-stream"})
            disk = self.req("POST", "/v2/images", {"name": "d", "disk_format": "raw",
                                                   "container_format": "bare",
                                                   "kernel_id": kernel},
                            status=201, image=True)["id"]
            self.req("PUT", "/v2/images/%s/file" % disk, status=204, image=True,
                     raw=b"\0" * 65536, headers={"Content-Type": "application/octet-stream"})
            type(self).img = disk
        return type(self).img

    def create(self, networks, name="vm", status=202, **extra):
        body = {"server": {"name": name, "imageRef": self.image(), "flavorRef": "1"}}
        if networks is not None:
            body["server"]["networks"] = networks
        body["server"].update(extra)
        return self.req("POST", "/v2.1/servers", body, status=status)

    def server(self, sid):
        return self.req("GET", "/v2.1/servers/%s" % sid, status=200)["server"]

    def wait(self, sid, want, timeout=30):
        deadline = time.time() + timeout
        s = None
        while time.time() < deadline:
            s = self.server(sid)
            if s["status"] == want and s["OS-EXT-STS:task_state"] is None:
                return s
            time.sleep(0.05)
        self.fail("server %s never reached %s (last %r)" % (sid, want, s))

    def boot(self, networks, name="vm"):
        sid = self.create(networks, name=name)["server"]["id"]
        return self.wait(sid, "ACTIVE")

    def delete(self, sid):
        self.req("DELETE", "/v2.1/servers/%s" % sid, status=204)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.a.request("GET", "/v2.1/servers/%s" % sid, token=DEMO)[0] == 404:
                return
            time.sleep(0.05)
        self.fail("server %s was never deleted" % sid)

    def ports(self, sid):
        return self.req("GET", "/v2.1/servers/%s/os-interface" % sid,
                        status=200)["interfaceAttachments"]

    def counts(self):
        c = sqlite3.connect(os.path.join(self.a.state_dir, "state.db"), timeout=10)
        r = (c.execute("SELECT count(*) FROM servers").fetchone()[0],
             c.execute("SELECT count(*) FROM ports").fetchone()[0])
        c.close()
        return r

    def hosts_file(self, net_uuid):
        try:
            with open(os.path.join(self.a.state_dir, "networks", net_uuid + ".hosts")) as f:
                return f.read()
        except OSError:
            return ""

    def wait_for(self, fn, what, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if fn():
                return
            time.sleep(0.05)
        self.fail(what)


class Networks(Base):
    def test_bridges_dnsmasq_and_os_networks(self):
        for n in NETS:
            self.assertTrue(os.path.isdir("/sys/class/net/" + n.bridge), n.bridge)
            self.assertTrue(link_up(n.bridge), n.bridge)
            addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", n.bridge).stdout)
            have = ["%s/%d" % (x["local"], x["prefixlen"]) for x in addrs[0]["addr_info"]
                    if x["family"] == "inet"]
            self.assertIn("%s/%d" % (n.gateway, n.cidr.prefixlen), have)
            self.assertIn("169.254.169.254/32", have)  # the metadata service's address
            # a MAC of its own (02: + the network's uuid), not its lowest port's: it never
            # changes under the guests when a tap goes
            with open("/sys/class/net/%s/address" % n.bridge) as f:
                self.assertRegex(f.read().strip(), r"^02(:[0-9a-f]{2}){5}$")
            with open("/sys/class/net/%s/addr_assign_type" % n.bridge) as f:
                self.assertEqual(f.read().strip(), "3")  # NET_ADDR_SET
            self.assertEqual(len(dnsmasqs(n.bridge)), 1, n.bridge)
        nets = self.req("GET", "/v2.1/os-networks", status=200)["networks"]
        mine = {x["label"]: x for x in nets}
        for n in NETS:
            x = mine[n.name]
            self.assertEqual(x["cidr"], str(n.cidr))
            self.assertEqual(x["gateway"], n.gateway)
            self.assertNotIn("bridge", x)  # a member sees no host details
            one = self.req("GET", "/v2.1/os-networks/%s" % x["id"], status=200)["network"]
            self.assertEqual(one["label"], n.name)
            adm = self.req("GET", "/v2.1/os-networks/%s" % x["id"], status=200,
                           token=ADMIN)["network"]
            self.assertEqual(adm["bridge"], n.bridge)
        self.assertEqual(mine[NETS[0].name]["dns1"], "192.0.2.53")
        # stable ids: the same name gives the same uuid on every start (checked in Restart too)
        self.req("GET", "/v2.1/os-networks/00000000-0000-4000-8000-000000000000", status=404)

    def test_nic_lifecycle_tap_lease_and_dhcp(self):
        n = NETS[0]
        nid = self.net_id(n)
        s = self.boot([{"uuid": nid}], name="Web Server_1")
        sid = s["id"]
        addr = s["addresses"][n.name]
        self.assertEqual(len(addr), 1, s["addresses"])
        a0 = addr[0]
        self.assertEqual((a0["version"], a0["OS-EXT-IPS:type"]), (4, "fixed"))
        ip = ipaddress.ip_address(a0["addr"])
        self.assertIn(ip, n.cidr)
        self.assertNotEqual(str(ip), n.gateway)
        mac = a0["OS-EXT-IPS-MAC:mac_addr"]
        self.assertRegex(mac, r"^fa:16:3e(:[0-9a-f]{2}){3}$")
        # os-interface
        ifs = self.ports(sid)
        self.assertEqual(len(ifs), 1)
        p = ifs[0]
        self.assertEqual((p["net_id"], p["mac_addr"], p["port_state"]), (nid, mac, "ACTIVE"))
        self.assertEqual(p["fixed_ips"][0]["ip_address"], str(ip))
        one = self.req("GET", "/v2.1/servers/%s/os-interface/%s" % (sid, p["port_id"]),
                       status=200)["interfaceAttachment"]
        self.assertEqual(one, p)
        self.req("GET", "/v2.1/servers/%s/os-interface/%s" % (sid, nid), status=404)
        self.req("GET", "/v2.1/servers/%s/os-interface/../x" % sid, status=404)
        self.req("POST", "/v2.1/servers/%s/os-interface" % sid,
                 {"interfaceAttachment": {"net_id": nid}}, status=409)
        # the tap: Nova's name, on the bridge, up, while the VMM runs
        tap = "tap" + p["port_id"][:11]
        self.assertEqual(links().get(tap), n.bridge)
        self.assertTrue(link_up(tap))
        # dnsmasq's lease (the server name sanitised into a host name)
        self.wait_for(lambda: "%s,%s,web-server-1" % (mac, ip) in self.hosts_file(nid),
                      "lease in the hosts file: %r" % self.hosts_file(nid))
        # a real DHCP client on the bridge with the port's MAC gets exactly that lease
        self.assertEqual(self.dhcp(n, mac), {"ip": str(ip), "router": n.gateway,
                                             "dns": "192.0.2.53", "mask": str(n.cidr.netmask)})
        # an unknown MAC gets nothing (static leases only)
        self.assertIsNone(self.dhcp(n, "fa:16:3e:00:00:99", tries=2))
        # stop: the VMM's exit takes the tap with it; start brings it back
        self.req("POST", "/v2.1/servers/%s/action" % sid, {"os-stop": None}, status=202)
        self.wait(sid, "SHUTOFF")
        self.wait_for(lambda: tap not in links(), "tap gone after stop")
        self.assertEqual(self.ports(sid)[0]["port_state"], "DOWN")
        self.req("POST", "/v2.1/servers/%s/action" % sid, {"os-start": None}, status=202)
        self.wait(sid, "ACTIVE")
        self.assertEqual(links().get(tap), n.bridge)
        # delete: tap gone, lease gone, the IP free again
        self.delete(sid)
        self.wait_for(lambda: tap not in links(), "tap gone after delete")
        self.wait_for(lambda: mac not in self.hosts_file(nid), "lease gone after delete")
        s2 = self.boot([{"uuid": nid, "fixed_ip": str(ip)}])
        self.assertEqual(s2["addresses"][n.name][0]["addr"], str(ip))
        self.delete(s2["id"])

    def dhcp(self, n, mac, tries=3):
        """busybox udhcpc on a veth (in a network namespace of its own) on n's bridge with this
        MAC: {"ip", "router", "dns", "mask"} it was offered, or None."""
        ns, v0, v1 = "kt%s" % TAG, "ktv%s0" % TAG, "ktv%s1" % TAG
        tmp = tempfile.mkdtemp(prefix="kova-udhcpc-")
        script = os.path.join(tmp, "script")
        out = os.path.join(tmp, "out")
        with open(script, "w") as f:
            f.write('#!/bin/sh\n[ "$1" = bound ] && echo "$ip $router $dns $subnet" > %s\n'
                    'exit 0\n' % out)
        os.chmod(script, 0o755)
        try:
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", v0, "type", "veth", "peer", "name", v1)
            sh("ip", "link", "set", v0, "master", n.bridge, "up")
            sh("ip", "link", "set", v1, "netns", ns)
            sh("ip", "-n", ns, "link", "set", v1, "address", mac, "up")
            r = subprocess.run(["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", v1, "-n",
                                "-q", "-f", "-t", str(tries), "-T", "1", "-s", script],
                               capture_output=True, text=True, timeout=60)
            if not os.path.exists(out):
                return None
            with open(out) as f:
                ip, router, dns, mask = f.read().split()[:4]
            return {"ip": ip, "router": router, "dns": dns, "mask": mask}
        finally:
            sh("ip", "link", "del", v0, check=False)
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(tmp, ignore_errors=True)

    def test_create_forms_and_bad_input(self):
        na, nb = self.net_id(NETS[0]), self.net_id(NETS[1])
        before = self.counts()
        bad = [
            (None, 409, "Multiple possible networks"),  # not given, several networks: ambiguous
            ("auto", 409, "Multiple possible networks"),
            ("all", 400, "networks"),
            ({"uuid": na}, 400, "networks"),
            ([{"uuid": "00000000-0000-4000-8000-000000000000"}], 400, "could not be found"),
            ([{"uuid": "../../etc"}], 400, "proper format"),
            ([{"uuid": 7}], 400, "uuid"),
            ([{}], 400, "uuid"),
            ([{"uuid": na, "fixed_ip": "10.9.9.9"}], 400, "not a valid ip"),
            ([{"uuid": na, "fixed_ip": NETS[0].gateway}], 400, "not a valid ip"),
            ([{"uuid": na, "fixed_ip": str(NETS[0].cidr.network_address)}], 400, "not a valid"),
            ([{"uuid": na, "fixed_ip": str(NETS[0].cidr.broadcast_address)}], 400, "not a valid"),
            ([{"uuid": na, "fixed_ip": "10.231.1"}], 400, "Invalid fixed IP"),
            ([{"uuid": na, "fixed_ip": "010.231.0.5"}], 400, "Invalid fixed IP"),
            ([{"uuid": na, "fixed_ip": 5}], 400, "Invalid fixed IP"),
            ([{"port": "00000000-0000-4000-8000-000000000000"}], 400, "ports"),
            ([{"uuid": na, "tag": "x"}], 400, "tag"),
            ([{"uuid": na}] * 9, 400, "at most 8"),
            ("none", None, None),
        ]
        for nets, code, text in bad:
            if code is None:
                continue
            b = self.create(nets, status=code)
            self.assertIn(text, json.dumps(b), nets)
            self.assertEqual(self.counts(), before, nets)
        # a fixed IP for several servers at once
        b = self.create([{"uuid": na, "fixed_ip": str(NETS[0].cidr.network_address + 50)}],
                        status=400, min_count=2)
        self.assertEqual(self.counts(), before)
        # a fixed IP in use: 409, nothing written
        s = self.boot([{"uuid": na, "fixed_ip": str(NETS[0].cidr.network_address + 60)}])
        before = self.counts()
        b = self.create([{"uuid": nb}, {"uuid": na,
                                        "fixed_ip": str(NETS[0].cidr.network_address + 60)}],
                        status=409)
        self.assertIn("already in use on instance %s" % s["id"], json.dumps(b))
        self.assertEqual(self.counts(), before)
        # none: no NIC
        s2 = self.boot("none")
        self.assertEqual(s2["addresses"], {})
        self.assertEqual(self.ports(s2["id"]), [])
        # two NICs on two networks, in order
        s3 = self.boot([{"uuid": nb}, {"uuid": na}])
        self.assertEqual(list(s3["addresses"]), [NETS[1].name, NETS[0].name])
        ifs = self.ports(s3["id"])
        self.assertEqual([p["net_id"] for p in ifs], [nb, na])
        have = links()
        self.assertEqual([have.get("tap" + p["port_id"][:11]) for p in ifs],
                         [NETS[1].bridge, NETS[0].bridge])
        # a list shows the addresses too
        lst = self.req("GET", "/v2.1/servers/detail", status=200)["servers"]
        self.assertEqual({x["id"]: x["addresses"] for x in lst}[s3["id"]], s3["addresses"])
        for x in (s, s2, s3):
            self.delete(x["id"])

    def test_exhaustion(self):
        n = NETS[2]  # a /29: 6 hosts, one of them the gateway
        nid = self.net_id(n)
        before = self.counts()
        self.create([{"uuid": nid}], status=409, min_count=6, max_count=6)
        self.assertEqual(self.counts(), before)
        ids = [self.create([{"uuid": nid}], name="x%d" % i)["server"]["id"] for i in range(5)]
        got = sorted(ipaddress.ip_address(self.server(i)["addresses"][n.name][0]["addr"])
                     for i in ids)
        self.assertEqual(got, [n.cidr.network_address + k for k in range(2, 7)])
        b = self.create([{"uuid": nid}], status=409)
        self.assertIn("No fixed IP addresses available", json.dumps(b))
        for i in ids:
            self.wait(i, "ACTIVE")
            self.delete(i)

    def test_dnsmasq_restarted(self):
        n = NETS[1]
        # a delete in an earlier test may have it restarting (a lease went) just now
        self.wait_for(lambda: len(dnsmasqs(n.bridge)) == 1, "one dnsmasq on %s" % n.bridge)
        old = dnsmasqs(n.bridge)
        os.kill(old[0], signal.SIGKILL)
        self.wait_for(lambda: len(dnsmasqs(n.bridge)) == 1 and dnsmasqs(n.bridge) != old,
                      "dnsmasq restarted", timeout=15)

    def test_openstack_cli(self):
        """server list's Networks column and server show's addresses (the CLI with admin_token
        has no catalog, so it takes Neutron for granted for --network NAME: that path is
        keystone.auth's, where the catalog has no network service)."""
        if not OPENSTACK:
            self.skipTest("no --openstack")
        tmp = tempfile.mkdtemp(prefix="kova-net-cli-")
        env = openstack_env(tmp, self.a.port, self.a.image_port)

        def osc(*args):
            r = subprocess.run([OPENSTACK, "--os-cloud", "kova"] + list(args), env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr))
            return r.stdout
        try:
            n = NETS[1]
            s = self.boot([{"uuid": self.net_id(n)}], name="cli-vm")
            ip = s["addresses"][n.name][0]["addr"]
            show = json.loads(osc("server", "show", "-f", "json", s["id"]))
            self.assertIn(ip, json.dumps(show["addresses"]))
            self.assertIn(n.name, json.dumps(show["addresses"]))
            lst = json.loads(osc("server", "list", "--all-projects", "-f", "json"))
            row = [x for x in lst if x["ID"] == s["id"]][0]
            self.assertIn(ip, json.dumps(row["Networks"]))
            self.delete(s["id"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)



class Metadata(Base):
    """The metadata service (per network on 169.254.169.254:80, bound to the bridge) seen from
    network namespaces on the bridge with a server's fixed IP, and the config drive's vfat image
    (blkid, mcopy) and its attachment to the VMM."""

    KEY = None

    @classmethod
    def keypair(cls, test):
        if not cls.KEY:
            tmp = tempfile.mkdtemp(prefix="kova-md-key-")
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "md@test", "-f",
               os.path.join(tmp, "k"))
            with open(os.path.join(tmp, "k.pub")) as f:
                cls.KEY = f.read().strip()
            shutil.rmtree(tmp, ignore_errors=True)
            test.req("POST", "/v2.1/os-keypairs",
                     {"keypair": {"name": "mdk", "public_key": cls.KEY}}, status=200)
        return cls.KEY

    class Guest:
        """A network namespace on n's bridge whose veth has ip (a server's or not) and the
        default route through the gateway, as a guest's eth0 after DHCP."""

        def __init__(self, n, ip, k):
            self.ns, self.v0, self.v1 = "km%s%d" % (TAG, k), "kmv%s%da" % (TAG, k), \
                "kmv%s%db" % (TAG, k)
            sh("ip", "netns", "add", self.ns)
            sh("ip", "link", "add", self.v0, "type", "veth", "peer", "name", self.v1)
            sh("ip", "link", "set", self.v0, "master", n.bridge, "up")
            sh("ip", "link", "set", self.v1, "netns", self.ns)
            sh("ip", "-n", self.ns, "link", "set", self.v1, "up")
            sh("ip", "-n", self.ns, "addr", "add", "%s/%d" % (ip, n.cidr.prefixlen), "dev",
               self.v1)
            sh("ip", "-n", self.ns, "route", "add", "default", "via", n.gateway)

        def get(self, path, method="GET"):
            """(HTTP status, body bytes) of a request to http://169.254.169.254<path>."""
            r = subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-sS", "--path-as-is",
                                "--max-time", "10", "-X", method, "-o", "-", "-w",
                                "\n%{http_code}", "http://169.254.169.254" + path],
                               capture_output=True, timeout=30)
            body, _, code = r.stdout.rpartition(b"\n")
            if r.returncode != 0:
                raise AssertionError("curl %s %s: exit %d %s" % (method, path, r.returncode,
                                                                 r.stderr.decode()[-300:]))
            return int(code or 0), body

        def close(self):
            sh("ip", "link", "del", self.v0, check=False)
            sh("ip", "netns", "del", self.ns, check=False)

    def test_service_answers_each_server_its_own(self):
        n = NETS[0]
        nid = self.net_id(n)
        key = self.keypair(self)
        ip_a, ip_b, ip_x = (str(n.cidr.network_address + k) for k in (110, 111, 150))
        ud_a, ud_b = b"#!/bin/sh\necho server-a > /tmp/marker\n", b"#cloud-config\n{}\n"
        a = self.boot_with([{"uuid": nid, "fixed_ip": ip_a}], "Md Server_A", key_name="mdk",
                           user_data=ud_a, metadata={"role": "a"})
        b = self.boot_with([{"uuid": nid, "fixed_ip": ip_b}], "md-b", user_data=ud_b)
        guests = []
        try:
            ga, gb, gx = (self.Guest(n, ip, k) for k, ip in enumerate((ip_a, ip_b, ip_x)))
            guests = [ga, gb, gx]
            st, body = ga.get("/openstack/latest/meta_data.json")
            self.assertEqual(st, 200, body)
            md = json.loads(body)
            self.assertEqual((md["uuid"], md["name"], md["hostname"], md["project_id"]),
                             (a["id"], "Md Server_A", "md-server-a.novalocal", "demo"))
            self.assertEqual(md["public_keys"], {"mdk": key})
            self.assertEqual(md["keys"], [{"name": "mdk", "type": "ssh", "data": key}])
            self.assertEqual(md["meta"], {"role": "a"})
            self.assertEqual(ga.get("/openstack/latest/user_data"), (200, ud_a))
            self.assertEqual(ga.get("/latest/meta-data/local-ipv4"), (200, ip_a.encode()))
            self.assertEqual(ga.get("/latest/meta-data/public-keys/0/openssh-key"),
                             (200, key.encode()))
            self.assertEqual(ga.get("/latest/user-data"), (200, ud_a))
            st, body = ga.get("/openstack/2018-08-27/network_data.json")
            self.assertEqual(st, 200, body)
            nd = json.loads(body)
            mac = a["addresses"][n.name][0]["OS-EXT-IPS-MAC:mac_addr"]
            self.assertEqual([x["ethernet_mac_address"] for x in nd["links"]], [mac])
            self.assertEqual([x["ip_address"] for x in nd["networks"]], [ip_a])
            # the second server sees its own data, never the first's
            st, body = gb.get("/openstack/latest/meta_data.json")
            self.assertEqual(st, 200, body)
            mb = json.loads(body)
            self.assertEqual((mb["uuid"], mb["hostname"]), (b["id"], "md-b.novalocal"))
            self.assertNotIn("public_keys", mb)
            self.assertEqual(gb.get("/openstack/latest/user_data"), (200, ud_b))
            self.assertEqual(gb.get("/latest/meta-data/public-keys")[0], 404)
            # no server has ip_x; hostile paths and methods
            self.assertEqual(gx.get("/openstack/latest/meta_data.json")[0], 404)
            self.assertEqual(gx.get("/latest/meta-data/")[0], 404)
            for bad in ("/openstack/latest/../latest/meta_data.json",
                        "/openstack/latest/%6deta_data.json", "/openstack/latest//meta_data.json",
                        "/openstack/latest/meta_data.json/x", "/" + "a" * 5000):
                self.assertEqual(ga.get(bad)[0], 404, bad)
            self.assertEqual(ga.get("/openstack/latest/meta_data.json", method="POST")[0], 405)
            self.assertEqual(ga.get("/openstack")[0], 200)
            # deleted: its address gets nothing any more
            self.delete(a["id"])
            self.assertEqual(ga.get("/openstack/latest/meta_data.json")[0], 404)
            self.assertEqual(gb.get("/openstack/latest/meta_data.json")[0], 200)
        finally:
            for g in guests:
                g.close()
            self.delete(b["id"])

    def boot_with(self, networks, name, user_data=None, **extra):
        if user_data is not None:
            extra["user_data"] = base64.b64encode(user_data).decode()
        sid = self.create(networks, name=name, **extra)["server"]["id"]
        return self.wait(sid, "ACTIVE")

    def vmm_cmdline(self, sid):
        c = sqlite3.connect(os.path.join(self.a.state_dir, "state.db"), timeout=10)
        pid = c.execute("SELECT vmm_pid FROM servers WHERE id = ?", (sid,)).fetchone()[0]
        c.close()
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode().split("\0")

    def test_config_drive(self):
        n = NETS[1]
        nid = self.net_id(n)
        key = self.keypair(self)
        ud = b"#!/bin/sh\necho from-the-config-drive\n"
        s = self.boot_with([{"uuid": nid}], "cd-vm", user_data=ud, key_name="mdk",
                           config_drive=True)
        plain = self.boot_with([{"uuid": nid}], "no-cd-vm")
        try:
            self.assertEqual(s["config_drive"], "True")
            self.assertEqual(plain["config_drive"], "")
            inst = os.path.join(self.a.state_dir, "instances")
            img = os.path.join(inst, s["id"], "disk.config")
            self.assertFalse(os.path.exists(os.path.join(inst, plain["id"], "disk.config")))
            blk = subprocess.run(["blkid", "-o", "export", img], capture_output=True, text=True)
            self.assertIn("LABEL=config-2", blk.stdout, blk)
            self.assertIn("TYPE=vfat", blk.stdout, blk)

            def read(path):
                r = subprocess.run(["mcopy", "-n", "-i", img, "::" + path, "-"],
                                   capture_output=True, env={"MTOOLS_SKIP_CHECK": "1",
                                                             "PATH": os.environ["PATH"]})
                self.assertEqual(r.returncode, 0, (path, r.stderr))
                return r.stdout
            md = json.loads(read("openstack/latest/meta_data.json"))
            self.assertEqual((md["uuid"], md["hostname"]), (s["id"], "cd-vm.novalocal"))
            self.assertEqual(md["public_keys"], {"mdk": key})
            self.assertEqual(read("openstack/latest/user_data"), ud)
            ip = s["addresses"][n.name][0]["addr"]
            nd = json.loads(read("openstack/latest/network_data.json"))
            self.assertEqual([x["ip_address"] for x in nd["networks"]], [ip])
            self.assertEqual(json.loads(read("ec2/latest/meta-data.json"))["local-ipv4"], ip)
            # the VMM has it as a second, read-only raw disk; the plain server has one disk
            self.assertIn("path=%s,format=raw,readonly=on" % img, self.vmm_cmdline(s["id"]))
            self.assertEqual(self.vmm_cmdline(plain["id"]).count("--disk"), 1)
            # stop/start keeps it; the attachment comes back
            self.req("POST", "/v2.1/servers/%s/action" % s["id"], {"os-stop": None}, status=202)
            self.wait(s["id"], "SHUTOFF")
            self.req("POST", "/v2.1/servers/%s/action" % s["id"], {"os-start": None}, status=202)
            self.wait(s["id"], "ACTIVE")
            self.assertIn("path=%s,format=raw,readonly=on" % img, self.vmm_cmdline(s["id"]))
        finally:
            self.delete(s["id"])
            self.delete(plain["id"])
        self.assertFalse(os.path.exists(os.path.join(inst, s["id"])))

class Restart(Base):
    def test_sigkill_during_creates(self):
        n = NETS[0]
        nid = self.net_id(n)
        created, stop = [], threading.Event()

        def creator():
            while not stop.is_set():
                try:
                    st, _, b = self.a.request("POST", "/v2.1/servers", token=DEMO, body={
                        "server": {"name": "k", "imageRef": self.image(), "flavorRef": "1",
                                   "networks": [{"uuid": nid}]}})
                    if st == 202:
                        created.append(b["server"]["id"])
                except OSError:
                    return
        self.image()
        ts = [threading.Thread(target=creator) for _ in range(3)]
        for t in ts:
            t.start()
        self.wait_for(lambda: len(created) >= 4, "creates accepted", timeout=30)
        os.kill(self.a.proc.pid, signal.SIGKILL)
        self.a.proc.wait()
        stop.set()
        for t in ts:
            t.join()
        self.a.log.close()
        self.a.proc = None
        # a leftover tap from a crash, on the bridge, that no port names
        stray = "tapdead%s0000" % TAG
        sh("ip", "tuntap", "add", stray, "mode", "tap")
        sh("ip", "link", "set", stray, "master", n.bridge)
        self.a.start()
        self.assertEqual(self.net_id(n), nid)  # the network's uuid is stable
        deadline = time.time() + 60
        while time.time() < deadline:
            ss = self.all_servers()
            if all(self.server(s["id"])["OS-EXT-STS:task_state"] is None for s in ss):
                break
            time.sleep(0.2)
        ss = [self.server(s["id"]) for s in self.all_servers()]
        self.assertGreaterEqual(len(ss), 4)
        self.assertEqual(len(dnsmasqs(n.bridge)), 1)
        c = sqlite3.connect(os.path.join(self.a.state_dir, "state.db"), timeout=10)
        dup = c.execute("SELECT network_id, ip, count(*) FROM ports GROUP BY network_id, ip "
                        "HAVING count(*) > 1").fetchall()
        ports = c.execute("SELECT p.id, s.id, p.mac FROM ports p JOIN servers s ON "
                          "s.seq = p.server_seq").fetchall()
        c.close()
        self.assertEqual(dup, [])
        active = {s["id"] for s in ss if s["status"] == "ACTIVE"}
        want = {"tap" + pid[:11] for pid, sid, _ in ports if sid in active}
        on_bridge = {name for name, m in links().items() if m == n.bridge}
        self.assertEqual(on_bridge, want, "taps on the bridge: only the running servers' ports")
        self.assertNotIn(stray, links())
        hosts = self.hosts_file(nid)
        for _, _, mac in ports:
            self.assertIn(mac, hosts)
        for s in ss:
            self.delete(s["id"])
        self.wait_for(lambda: not [x for x, m in links().items() if m == n.bridge],
                      "no taps after the deletes")
        self.wait_for(lambda: "fa:16:3e" not in self.hosts_file(nid), "no leases left")


def configure(opts):
    global AGENT_BIN, FAKE_VMM_BIN, OPENSTACK
    AGENT_BIN = opts["--agent"]
    FAKE_VMM_BIN = opts.get("--fake-vmm")
    OPENSTACK = opts.get("--openstack")


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure, ("--agent", "--fake-vmm", "--openstack")))
