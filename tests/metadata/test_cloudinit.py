#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""kova's metadata read by cloud-init's own readers (Debian 12's cloud-init 22.4): the config
drive through ConfigDriveReader (its files copied out with mtools), the metadata service through
MetadataReader and the EC2 walker against a loopback HTTP server that serves md-helper's
documents; network_data.json through convert_net_json. Skipped (77) where cloud-init's Python
package cannot be imported (PYTHONPATH may point at an unpacked cloud-init .deb).

Usage: test_cloudinit.py MD_HELPER
"""
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

try:
    from cloudinit.sources.helpers import ec2, openstack
except ImportError as e:
    print("metadata.cloudinit: cloud-init's Python package is not here (%s): skipped" % e)
    sys.exit(77)

HELPER = sys.argv[1]
UUID = "6f1c3b2a-9d4e-4f7a-8b1c-2d3e4f5a6b7c"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKovaTestKeyOnlyNotARealKeyAtAll0123456 k@host"
USER_DATA = b"#cloud-config\nhostname: ignored\n"
MAC0, MAC1 = "fa:16:3e:12:34:56", "fa:16:3e:ab:cd:ef"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED: " + what, file=sys.stderr)


def check_v2(res, where):
    md = res["metadata"]
    check(md.get("uuid") == UUID and md.get("instance-id") == UUID, where + ": uuid")
    check(md.get("hostname") == "web-server-1" and md.get("local-hostname") == "web-server-1",
          where + ": hostname")
    check(md.get("public_keys") == {"k": KEY}, where + ": public_keys")
    check(md.get("meta") == {"role": "web"}, where + ": meta")
    check(len(md.get("random_seed", b"")) == 512, where + ": random_seed")
    check(res["userdata"] == USER_DATA, where + ": user data")
    check(res.get("vendordata") == {} and res.get("vendordata2") == {"static": {}},
          where + ": vendor data")
    net = openstack.convert_net_json(res["networkdata"], known_macs={MAC0: "eth0", MAC1: "eth1"})
    check(net.get("version") == 1, where + ": network config version")
    phys = [c for c in net["config"] if c["type"] == "physical"]
    check([p["mac_address"] for p in phys] == [MAC0, MAC1], where + ": links by MAC")
    check([p["name"] for p in phys] == ["eth0", "eth1"], where + ": names from the MACs")
    check(phys and phys[0].get("mtu") == 1500 and phys[1].get("mtu") == 1450, where + ": mtu")
    s0 = phys[0]["subnets"][0] if phys else {}
    check(s0.get("type") == "static" and s0.get("address") == "10.0.0.5" and
          s0.get("netmask") == "255.255.255.0", where + ": eth0 static address")
    check(s0.get("routes") == [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                                "gateway": "10.0.0.1"}], where + ": eth0 default route")
    s1 = phys[1]["subnets"][0] if len(phys) > 1 else {}
    check(s1.get("address") == "192.168.10.11" and s1.get("netmask") == "255.255.240.0" and
          not s1.get("routes"), where + ": eth1 static address")
    # cloud-init 22.4 takes the DNS servers from the top-level services, each once
    ns = [c["address"] for c in net["config"] if c["type"] == "nameserver"]
    check(ns == ["10.0.0.1", "8.8.8.8"], where + ": nameservers %r" % (ns,))


def check_ec2(e, where):
    check(e.get("instance-id") == "i-0000002a", where + ": ec2 instance-id")
    check(e.get("local-ipv4") == "10.0.0.5", where + ": ec2 local-ipv4")
    check(e.get("placement", {}).get("availability-zone") == "nova", where + ": ec2 placement")
    check(e.get("hostname") == "web-server-1", where + ": ec2 hostname")
    check(e.get("instance-type") == "m1.small", where + ": ec2 instance-type")
    pk = e.get("public-keys")
    # the service's walker makes {"k": [KEY]}; the drive's JSON is Nova's {"0": {...}}
    check(pk in ({"k": [KEY]}, {"k": KEY}, {"0": {"openssh-key": KEY}}),
          where + ": ec2 public-keys %r" % (pk,))


def config_drive(tmp):
    img = os.path.join(tmp, "disk.config")
    subprocess.run([HELPER, "drive", img], check=True)
    blk = subprocess.run(["blkid", "-c", "/dev/null", "-o", "export", img], check=True,
                         capture_output=True, text=True).stdout.split()
    check("LABEL=config-2" in blk and "TYPE=vfat" in blk, "drive: blkid %r" % blk)
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mcopy", "-s", "-i", img, "::/openstack", "::/ec2", root], check=True,
                   env=env)
    reader = openstack.ConfigDriveReader(root)
    check(reader._find_working_version() == "2018-08-27", "drive: version chosen")
    res = reader.read_v2()
    check_v2(res, "drive")
    check_ec2(res["ec2-metadata"], "drive")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        p = subprocess.run([HELPER, "get", self.path], capture_output=True)
        if p.returncode == 4:
            self.send_error(404)
            return
        if p.returncode != 0:
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Type", p.stderr.decode())
        self.send_header("Content-Length", str(len(p.stdout)))
        self.end_headers()
        self.wfile.write(p.stdout)

    def log_message(self, *args):
        pass


def service():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        class Reader(openstack.MetadataReader):
            def _read_ec2_metadata(self):
                return ec2.get_instance_metadata(metadata_address=base, retries=0)

        reader = Reader(base, retries=0)
        check(reader._find_working_version() == "2018-08-27", "service: version chosen")
        res = reader.read_v2()
        check_v2(res, "service")
        check_ec2(res["ec2-metadata"], "service")
        ud = ec2.get_instance_userdata(metadata_address=base, retries=0)
        check(ud == USER_DATA, "service: ec2 user-data")
    finally:
        srv.shutdown()
        srv.server_close()


def main():
    tmp = tempfile.mkdtemp(prefix="kova-md-ci.")
    try:
        config_drive(tmp)
        service()
    finally:
        shutil.rmtree(tmp)
    if failures:
        print("metadata.cloudinit: %d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("metadata.cloudinit: cloud-init reads the config drive and the service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
