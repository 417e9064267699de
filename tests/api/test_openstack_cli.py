# SPDX-License-Identifier: Apache-2.0
"""api.openstack_cli: Debian's python3-openstackclient against a real kova-agent, unchanged.

Three ways a client reaches kova without Keystone:
  - clouds.yaml with auth_type admin_token (token "admin:admin", noauth2) and endpoint overrides
    for compute and image (Glance v2 on the agent's image listener);
  - `--os-auth-type none --os-endpoint URL/v2.1` (design.md 2a), images via Nova's proxy;
  - password auth against the agent's noauth identity endpoint (/identity/v3), whose catalog
    lists compute and image: needed by `versions show`.

usage: /usr/bin/python3 test_openstack_cli.py --agent PATH/kova-agent [--openstack /usr/bin/openstack]
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kova_agent_fixture import (Agent, openstack_env, stop_checked, token_cloud,  # noqa: E402
                                unittest_main)

AGENT_BIN = None
OPENSTACK = "/usr/bin/openstack"
A = None
ENV = None


def setUpModule():
    global A, ENV
    A = Agent(AGENT_BIN).start()
    ENV = openstack_env(A.tmp, A.port, A.image_port,
                        token_cloud("kova-demo", "demo:demo") + """  kova-password:
    auth_type: password
    auth:
      auth_url: http://127.0.0.1:%(p)d/identity/v3
      username: admin
      password: anything
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
""")


def tearDownModule():
    stop_checked(A)


def osc(*args, cloud="kova", fmt=True, check=True):
    cmd = [OPENSTACK]
    if cloud:
        cmd += ["--os-cloud", cloud]
    cmd += list(args)
    if fmt:
        cmd += ["-f", "json"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode,
                                                          r.stdout[-2000:], r.stderr[-3000:]))
    if not fmt or not check:
        return r
    return json.loads(r.stdout) if r.stdout.strip() else None


class OpenstackCLI(unittest.TestCase):
    def test_1_flavors(self):
        f = osc("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "cli.small")
        self.assertEqual((f["name"], f["ram"], f["vcpus"]), ("cli.small", 256, 1))
        names = [x["Name"] for x in osc("flavor", "list")]
        self.assertIn("cli.small", names)
        self.assertIn("m1.tiny", names)
        s = osc("flavor", "show", "cli.small")
        self.assertEqual(s["id"], f["id"])
        osc("flavor", "delete", "cli.small", fmt=False)
        self.assertNotIn("cli.small", [x["Name"] for x in osc("flavor", "list")])
        # not an admin: refused with Nova's 403
        r = osc("flavor", "create", "--ram", "1", "--disk", "1", "--vcpus", "1", "nope",
                cloud="kova-demo", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("403", r.stderr)

    def test_2_keypairs(self):
        r = osc("keypair", "create", "clikey", fmt=False)
        self.assertIn("PRIVATE KEY", r.stdout)
        lst = osc("keypair", "list")
        self.assertEqual([k["Name"] for k in lst], ["clikey"])
        self.assertRegex(lst[0]["Fingerprint"], r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
        s = osc("keypair", "show", "clikey")
        self.assertEqual(s["fingerprint"], lst[0]["Fingerprint"])
        pub = os.path.join(A.tmp, "id.pub")
        subprocess.check_call(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                               pub[:-4]])
        imp = osc("keypair", "create", "--public-key", pub, "imported")
        self.assertEqual(imp["name"], "imported")
        r = osc("keypair", "create", "clikey", check=False)
        self.assertNotEqual(r.returncode, 0)  # duplicate: 409
        osc("keypair", "delete", "clikey", fmt=False)
        osc("keypair", "delete", "imported", fmt=False)
        self.assertEqual(osc("keypair", "list"), [])

    def test_3_images_and_servers(self):
        disk = os.path.join(A.tmp, "disk.raw")
        with open(disk, "wb") as f:
            f.write(os.urandom(65536))
        img = osc("image", "create", "--file", disk, "--disk-format", "raw",
                  "--container-format", "bare", "--property",
                  "os_command_line=console=ttyS0", "--property", "hw_firmware_type=uefi",
                  "cli-image")
        self.assertEqual(img["name"], "cli-image")
        lst = osc("image", "list")
        self.assertIn("cli-image", [i["Name"] for i in lst])
        s = osc("image", "show", "cli-image")
        self.assertEqual((s["status"], s["size"]), ("active", 65536))
        srv = osc("server", "create", "--image", "cli-image", "--flavor", "m1.tiny",
                  "cli-server", check=False)
        # BUILD then ERROR: the image names no kernel (kova boots kernels directly)
        self.assertEqual(srv.returncode, 0, srv.stderr)
        lst = osc("server", "list", "--long")
        row = [x for x in lst if x["Name"] == "cli-server"][0]
        for k in ("Task State", "Power State", "Availability Zone", "Host", "Properties"):
            self.assertIn(k, row)
        self.assertIn(row["Status"], ("BUILD", "ERROR"))
        show = osc("server", "show", "cli-server")
        self.assertEqual(show["name"], "cli-server")
        self.assertIn(show["status"], ("BUILD", "ERROR"))
        osc("server", "delete", "--wait", "cli-server", fmt=False)
        self.assertEqual([x for x in osc("server", "list") if x["Name"] == "cli-server"], [])

    def test_4_limits_az_hypervisors(self):
        lim = {x["Name"]: x["Value"] for x in osc("limits", "show", "--absolute")}
        self.assertEqual(lim["maxTotalInstances"], 10)
        self.assertIn("totalCoresUsed", lim)
        az = osc("availability", "zone", "list", "--compute")
        self.assertEqual(az[0]["Zone Name"], "nova")
        self.assertEqual(az[0]["Zone Status"], "available")
        hv = osc("hypervisor", "list")
        self.assertEqual(len(hv), 1)
        show = osc("hypervisor", "show", str(hv[0]["ID"]))
        self.assertEqual(show["vcpus"], os.cpu_count())
        self.assertIn("load_average", show)

    def test_5_auth_type_none(self):
        # design.md 2a: --os-auth-type none --os-endpoint; images through Nova's proxy
        base = ["--os-auth-type", "none", "--os-endpoint", A.url("/v2.1")]
        r = osc(*base, "flavor", "list", cloud=None)
        self.assertIn("m1.tiny", [x["Name"] for x in r])
        osc(*base, "server", "list", "--long", cloud=None)
        osc(*base, "image", "list", cloud=None)
        osc(*base, "keypair", "list", cloud=None)

    def test_6_versions_show(self):
        v = osc("versions", "show", cloud="kova-password")
        compute = [x for x in v if x["Service Type"] == "compute" and x["Status"] == "CURRENT"]
        self.assertEqual(compute[0]["Max Microversion"], "2.1")
        self.assertTrue(compute[0]["Endpoint"].endswith("/v2.1/"))
        # with the identity endpoint everything else works too
        self.assertIn("m1.tiny", [x["Name"] for x in osc("flavor", "list",
                                                          cloud="kova-password")])


def configure(opts):
    global AGENT_BIN, OPENSTACK
    AGENT_BIN = opts["--agent"]
    OPENSTACK = opts.get("--openstack", OPENSTACK)


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure, ("--agent", "--openstack")))
