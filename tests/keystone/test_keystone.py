# SPDX-License-Identifier: Apache-2.0
"""kova-agent with auth_strategy = keystone against a real Keystone (Debian's keystone under
uwsgi, SQLite, fernet keys: tests/keystone/keystone-run.sh), driven by Debian's openstack CLI
through the service catalog and by plain HTTP.

Keystone is bootstrapped (admin), given two projects with a member and a reader each and the
agent's service user; two agents (kova-fake-vmm as their VMM: this test is about the API) are
registered in the catalog as RegionOne and RegionTwo with deploy/keystone-register.sh. Checked:
password login with the CLI and server create/list/show/delete, flavor list and image list
through the catalog; a member of project B cannot see or touch project A's servers (404); a
reader gets 403 on create, delete and actions but lists; admin sees both projects with
--all-projects and alone may use admin routes; a missing, bad or revoked token gets 401 with
WWW-Authenticate; one CLI reaches both regions; `server create --network NAME` finds the
network through Nova's os-networks (no network service in the catalog); api.hostile's sweep of
every route holds under Keystone auth too; with Keystone stopped kova answers 503 (never
500, never "let it in") and recovers when it is back.

usage: /usr/bin/python3 test_keystone.py --agent PATH/kova-agent --fake-vmm PATH/kova-fake-vmm
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
from kova_agent_fixture import Agent, free_port, stop_checked, unittest_main  # noqa: E402

KS_RUN = os.path.join(HERE, "keystone-run.sh")
HOSTILE = os.path.join(HERE, "..", "api", "test_hostile.py")
REGISTER = os.path.join(HERE, "..", "..", "deploy", "keystone-register.sh")
ADMIN_PW = "admin-secret"
SVC_USER, SVC_PW = "kova", "kova-secret"
CACHE_TIME = 3  # token_cache_time of the agents: a revoked token is refused after this
NET_NAME = "ksnet%04x" % (os.getpid() & 0xffff)
NET_BRIDGE = "ksbr%04x" % (os.getpid() & 0xffff)
NET_CONF = "[network:%s]\ncidr = 10.234.%d.0/24\nbridge = %s\n" % (
    NET_NAME, os.getpid() % 200 + 20, NET_BRIDGE)
USERS = {  # name: (project, role)
    "alice": ("pa", "member"), "rita": ("pa", "reader"),
    "bob": ("pb", "member"), "rob": ("pb", "reader"),
}
AGENT_BIN = FAKE_VMM_BIN = None


def http_call(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body)
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    payload = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    if payload and hdrs.get("content-type", "").startswith("application/json"):
        payload = json.loads(payload)
    return r.status, hdrs, payload


class Keystone:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "keystone")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/v3" % self.port
        self.run("setup", self.dir, str(self.port), ADMIN_PW)
        self.start()
        self.admin = self.token("admin", ADMIN_PW, "admin")

    def run(self, *args):
        p = subprocess.run([KS_RUN] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        if p.returncode:
            raise RuntimeError("keystone-run.sh %s failed:\n%s" % (args[0], p.stdout.decode()))

    def start(self):
        self.run("start", self.dir, str(self.port))

    def stop(self):
        self.run("stop", self.dir)

    def call(self, method, path, body=None, token=None, headers=None, want=None):
        h = dict(headers or {})
        if token:
            h["X-Auth-Token"] = token
        st, hd, b = http_call(self.port, method, "/v3" + path, body, h)
        if want is not None and st != want:
            raise AssertionError("keystone %s %s -> %d %r" % (method, path, st, b))
        return st, hd, b

    def token(self, user, pw, project):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": pw}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        _, h, _ = self.call("POST", "/auth/tokens", body, want=201)
        return h["x-subject-token"]

    def create(self, kind, body):
        _, _, b = self.call("POST", "/%ss" % kind, {kind: body}, self.admin, want=201)
        return b[kind]["id"]


def cli_env(ks, tmp, user, pw, project, region="RegionOne"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.pop("PYTHONPATH", None)
    env.update(HOME=tmp, OS_AUTH_URL=ks.url, OS_IDENTITY_API_VERSION="3", OS_USERNAME=user,
               OS_PASSWORD=pw, OS_PROJECT_NAME=project, OS_USER_DOMAIN_NAME="Default",
               OS_PROJECT_DOMAIN_NAME="Default", OS_REGION_NAME=region, OS_INTERFACE="public")
    return env


class KeystoneAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kova-keystone-test-")
        cls.agents = []
        try:
            cls._setup()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _setup(cls):
        t0 = time.time()
        ks = cls.ks = Keystone(cls.tmp)
        roles = {r["name"]: r["id"] for r in ks.call("GET", "/roles", token=ks.admin,
                                                      want=200)[2]["roles"]}
        cls.projects = {p: ks.create("project", {"name": p, "domain_id": "default"})
                        for p in ("pa", "pb")}
        for user, (proj, role) in USERS.items():
            uid = ks.create("user", {"name": user, "password": user + "-pw",
                                     "domain_id": "default"})
            ks.call("PUT", "/projects/%s/users/%s/roles/%s" % (cls.projects[proj], uid,
                                                               roles[role]),
                    token=ks.admin, want=204)
        fake_dir = os.path.join(cls.tmp, "fake")
        os.mkdir(fake_dir)
        cls.fake = os.path.join(fake_dir, "kova-vmm")  # named kova-vmm, as the agent expects
        shutil.copy(FAKE_VMM_BIN, cls.fake)
        conf = """[api]
auth_strategy = keystone
[keystone_authtoken]
www_authenticate_uri = %s
auth_url = http://127.0.0.1:%d
auth_type = password
username = %s
password = %s
project_name = service
user_domain_name = Default
project_domain_name = Default
token_cache_time = %d
http_request_timeout = 10
""" % (ks.url, ks.port, SVC_USER, SVC_PW, CACHE_TIME)
        cls.auth_conf = conf
        admin_env = cli_env(ks, cls.tmp, "admin", ADMIN_PW, "admin")
        for i, region in enumerate(("RegionOne", "RegionTwo")):
            # RegionOne's agent has a network (its servers get a NIC): the CLI finds it by name
            # through Nova's os-networks, as there is no network service in the catalog
            a = Agent(AGENT_BIN, extra_args=["--shutdown-timeout", "5", "--vmm", cls.fake],
                      config_text=conf + (NET_CONF if i == 0 else "")).start()
            cls.agents.append(a)
            args = [REGISTER, "--region", region, "--interfaces", "public",
                    "--compute-url", a.url("/v2.1"),
                    "--image-url", "http://127.0.0.1:%d" % a.image_port]
            if i == 0:
                args += ["--service-user", SVC_USER, "--service-password", SVC_PW]
            p = subprocess.run(args, env=admin_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=300)
            if p.returncode:
                raise RuntimeError("keystone-register.sh failed:\n" + p.stdout.decode())
            print(p.stdout.decode(), end="", file=sys.stderr)
        cls.tokens = {u: ks.token(u, u + "-pw", proj) for u, (proj, _) in USERS.items()}
        cls.tokens["admin"] = ks.token("admin", ADMIN_PW, "admin")
        # public images (admin's), as a cloud's operator uploads them: a "kernel" and a disk
        # booting it, which kova-fake-vmm runs
        cls.kernel = cls.glance(0, "admin", {"name": "k", "disk_format": "aki",
                                             "container_format": "bare",
                                             "visibility": "public"}, b"\0" * 4096)
        cls.image = cls.glance(0, "admin", {"name": "d", "disk_format": "raw",
                                            "container_format": "bare", "visibility": "public",
                                            "kernel_id": cls.kernel,
                                            "os_command_line": "console=ttyS0"}, b"\0" * 65536)
        cls.glance(1, "admin", {"name": "k", "disk_format": "aki", "container_format": "bare",
                                "visibility": "public"}, b"\0" * 4096)
        print("keystone test: set up in %.1f s" % (time.time() - t0), file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        errors = []
        for a in cls.agents:
            try:
                stop_checked(a)
            except AssertionError as e:
                errors.append(str(e))
        subprocess.run(["ip", "link", "del", NET_BRIDGE], capture_output=True)
        if getattr(cls, "ks", None):
            cls.ks.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))

    @classmethod
    def glance(cls, agent, user, body, data):
        a = cls.agents[agent]
        st, _, b = a.request("POST", "/v2/images", body, token=cls.tokens[user], image=True)
        assert st == 201, (st, b)
        st, _, b2 = a.request("PUT", "/v2/images/%s/file" % b["id"], token=cls.tokens[user],
                              image=True, raw=data,
                              headers={"Content-Type": "application/octet-stream"})
        assert st == 204, (st, b2)
        return b["id"]

    # ---- helpers
    def api(self, user, method, path, body=None, agent=0, token=None, want=None):
        st, h, b = self.agents[agent].request(
            method, "/v2.1" + path, body=body,
            token=token if token is not None else self.tokens[user])
        self.assertLess(st, 500, "%s %s as %s -> %d %r" % (method, path, user, st, b))
        if want is not None:
            self.assertEqual(st, want, "%s %s as %s -> %d %r" % (method, path, user, st, b))
        return st, h, b

    def cli(self, user, *args, region="RegionOne", project=None, check=True):
        proj = project or (USERS[user][0] if user in USERS else "admin")
        pw = ADMIN_PW if user == "admin" else user + "-pw"
        p = subprocess.run(["openstack", "--os-region-name", region] + list(args),
                           env=cli_env(self.ks, self.tmp, user, pw, proj, region),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
        if check:
            self.assertEqual(p.returncode, 0, "openstack %s as %s: %s%s" % (
                " ".join(args), user, p.stdout.decode(), p.stderr.decode()))
        return p

    def cli_json(self, user, *args, **kw):
        return json.loads(self.cli(user, *args, "-f", "json", **kw).stdout)

    def create(self, user, name, agent=0):
        _, _, b = self.api(user, "POST", "/servers", {"server": {
            "name": name, "imageRef": self.image if agent == 0 else self.image_two,
            "flavorRef": "1"}}, agent=agent, want=202)
        sid = b["server"]["id"]
        deadline = time.time() + 30
        while time.time() < deadline:
            _, _, s = self.api(user, "GET", "/servers/" + sid, agent=agent, want=200)
            if s["server"]["status"] == "ACTIVE":
                return sid
            time.sleep(0.1)
        self.fail("server %s never became ACTIVE: %r" % (sid, s))

    def delete(self, user, sid, agent=0):
        self.api(user, "DELETE", "/servers/" + sid, agent=agent, want=204)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.api(user, "GET", "/servers/" + sid, agent=agent)[0] == 404:
                return
            time.sleep(0.1)
        self.fail("server %s was never deleted" % sid)

    # ---- tests, in order (names sort)
    def test_1_cli_password_login_through_the_catalog(self):
        flavors = self.cli_json("alice", "flavor", "list")
        self.assertIn("1", [f["ID"] for f in flavors])
        images = self.cli_json("alice", "image", "list")
        self.assertIn(self.image, [i["ID"] for i in images])
        s = self.cli_json("alice", "server", "create", "--image", "d", "--flavor", "1",
                          "--wait", "vm-cli")
        self.assertEqual(s["status"], "ACTIVE", s)
        listed = self.cli_json("alice", "server", "list")
        self.assertIn("vm-cli", [x["Name"] for x in listed])
        shown = self.cli_json("alice", "server", "show", "vm-cli")
        self.assertEqual(shown["id"], s["id"])
        self.assertEqual(shown["project_id"], self.projects["pa"])
        self.cli("alice", "server", "delete", "--wait", "vm-cli")
        self.assertNotIn("vm-cli", [x["Name"] for x in self.cli_json("alice", "server", "list")])

    def test_2_projects_are_isolated(self):
        sa = self.create("alice", "vm-a")
        sb = self.create("bob", "vm-b")
        try:
            for method, path, body in (("GET", "/servers/" + sa, None),
                                       ("DELETE", "/servers/" + sa, None),
                                       ("PUT", "/servers/" + sa, {"server": {"name": "x"}}),
                                       ("POST", "/servers/%s/action" % sa, {"os-stop": None}),
                                       ("GET", "/servers/%s/metadata" % sa, None)):
                self.api("bob", method, path, body, want=404)
                self.api("rob", method, path, body,
                         want=404 if method == "GET" else 403)
            ids = [s["id"] for s in self.api("bob", "GET", "/servers", want=200)[2]["servers"]]
            self.assertEqual(ids, [sb])
            # all_tenants is an admin's: a member asking for it gets Nova's 403
            self.api("bob", "GET", "/servers/detail?all_tenants=1", want=403)
            self.api("bob", "GET", "/servers?all_tenants=true", want=403)
            ids = [s["id"] for s in self.api("bob", "GET", "/servers/detail?all_tenants=0",
                                             want=200)[2]["servers"]]
            self.assertEqual(ids, [sb])
            # the admin sees both with --all-projects, neither without (its own project)
            every = {x["ID"] for x in self.cli_json("admin", "server", "list", "--all-projects")}
            self.assertTrue({sa, sb} <= every, every)
            own = {x["ID"] for x in self.cli_json("admin", "server", "list")}
            self.assertFalse({sa, sb} & own, own)
            self.api("admin", "GET", "/servers/" + sb, want=200)
        finally:
            self.delete("alice", sa)
            self.delete("bob", sb)

    def test_3_reader_lists_but_does_not_change(self):
        sa = self.create("alice", "vm-r")
        try:
            ids = [s["id"] for s in self.api("rita", "GET", "/servers", want=200)[2]["servers"]]
            self.assertEqual(ids, [sa])
            self.api("rita", "GET", "/servers/" + sa, want=200)
            self.api("rita", "GET", "/flavors", want=200)
            _, _, b = self.api("rita", "POST", "/servers", {"server": {
                "name": "no", "imageRef": self.image, "flavorRef": "1"}}, want=403)
            self.assertEqual(b["forbidden"]["code"], 403, b)
            self.assertIn("project_member_or_admin", b["forbidden"]["message"])
            self.api("rita", "DELETE", "/servers/" + sa, want=403)
            self.api("rita", "POST", "/servers/%s/action" % sa, {"os-stop": None}, want=403)
            self.api("rita", "PUT", "/servers/%s/metadata/k" % sa, {"meta": {"k": "v"}},
                     want=403)
            p = self.cli("rita", "server", "create", "--image", "d", "--flavor", "1", "no",
                         check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(b"403", p.stderr + p.stdout)
            # the server is untouched
            _, _, s = self.api("alice", "GET", "/servers/" + sa, want=200)
            self.assertEqual(s["server"]["status"], "ACTIVE")
        finally:
            self.delete("alice", sa)

    def test_4_admin_routes(self):
        for user in ("alice", "rita"):
            self.api(user, "GET", "/os-hypervisors", want=403)
            self.api(user, "POST", "/flavors", {"flavor": {
                "name": "f-" + user, "ram": 64, "vcpus": 1, "disk": 1}}, want=403)
            self.api(user, "GET", "/os-services", want=403)
        self.api("admin", "GET", "/os-hypervisors", want=200)
        self.api("admin", "GET", "/os-services", want=200)
        self.api("admin", "POST", "/flavors", {"flavor": {
            "name": "f-admin", "ram": 64, "vcpus": 1, "disk": 1, "id": "fa"}}, want=200)
        self.api("admin", "DELETE", "/flavors/fa", want=202)
        # keypairs are the user's own: alice's is not bob's
        self.api("alice", "POST", "/os-keypairs", {"keypair": {"name": "k1"}}, want=200)
        self.api("bob", "GET", "/os-keypairs/k1", want=404)
        self.api("alice", "GET", "/os-keypairs/k1", want=200)
        self.api("alice", "DELETE", "/os-keypairs/k1", want=202)

    def check_401(self, token, what):
        st, h, b = self.agents[0].request("GET", "/v2.1/servers", token=token)
        self.assertEqual(st, 401, "%s: %d %r" % (what, st, b))
        self.assertEqual(h.get("www-authenticate"), 'Keystone uri="%s"' % self.ks.url, what)
        self.assertEqual(b["unauthorized"]["code"], 401, b)

    def test_5_missing_bad_and_revoked_tokens(self):
        self.check_401(None, "no token")
        self.check_401("", "empty token")
        self.check_401("gAAAAABnot-a-real-token", "made-up token")
        self.check_401("x" * 9000, "huge token")
        # version discovery needs none
        st, _, _ = self.agents[0].request("GET", "/", token=None)
        self.assertEqual(st, 200)
        # the noauth identity endpoint does not exist with keystone
        st, _, _ = self.agents[0].request("POST", "/identity/v3/auth/tokens", body={},
                                          token=None)
        self.assertEqual(st, 404)
        t = self.ks.token("alice", "alice-pw", "pa")
        self.api("alice", "GET", "/servers", token=t, want=200)
        self.ks.call("DELETE", "/auth/tokens", token=self.ks.admin,
                     headers={"X-Subject-Token": t}, want=204)
        time.sleep(CACHE_TIME + 1)  # past the agent's cache time
        self.check_401(t, "revoked token")

    def test_6_two_regions_one_cli(self):
        self.__class__.image_two = self.glance(1, "admin", {
            "name": "d2", "disk_format": "raw", "container_format": "bare",
            "visibility": "public", "kernel_id": self.kernel_two(),
            "os_command_line": "console=ttyS0"}, b"\0" * 65536)
        s = self.cli_json("alice", "server", "create", "--image", "d2", "--flavor", "1",
                          "--wait", "vm-two", region="RegionTwo")
        self.assertEqual(s["status"], "ACTIVE", s)
        try:
            two = [x["ID"] for x in self.cli_json("alice", "server", "list",
                                                   region="RegionTwo")]
            one = [x["ID"] for x in self.cli_json("alice", "server", "list")]
            self.assertEqual(two, [s["id"]])
            self.assertNotIn(s["id"], one)
            # it is agent two's: agent one does not know it
            self.api("alice", "GET", "/servers/" + s["id"], agent=1, want=200)
            self.api("alice", "GET", "/servers/" + s["id"], agent=0, want=404)
        finally:
            self.cli("alice", "server", "delete", "--wait", "vm-two", region="RegionTwo")

    def kernel_two(self):
        _, _, b = self.agents[1].request("GET", "/v2/images?name=k", token=self.tokens["admin"],
                                         image=True)
        return b["images"][0]["id"]

    def test_7_server_create_network_by_name(self):
        s = self.cli_json("alice", "server", "create", "--image", "d", "--flavor", "1",
                          "--network", NET_NAME, "--wait", "netvm")
        show = self.cli_json("alice", "server", "show", s["id"])
        _, _, b = self.api("alice", "GET", "/servers/" + s["id"], want=200)
        ip = b["server"]["addresses"][NET_NAME][0]["addr"]
        self.assertIn(ip, json.dumps(show["addresses"]))
        row = [x for x in self.cli_json("alice", "server", "list") if x["ID"] == s["id"]][0]
        self.assertIn(ip, json.dumps(row["Networks"]))
        p = self.cli("alice", "server", "create", "--image", "d", "--flavor", "1", "--network",
                     "no-such-net", "netvm2", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.cli("alice", "server", "delete", "--wait", s["id"])

    def test_7b_hostile_sweep_under_keystone(self):
        # api.hostile's whole sweep (every route, tests/api/test_hostile.py) against an agent of
        # its own under this Keystone: its tables' tokens become real ones (an admin, a member
        # of pa, a member of pb), so policy, 401s and faults are Keystone's path, not noauth2's
        conf = os.path.join(self.tmp, "hostile.conf")
        with open(conf, "w") as f:
            f.write(self.auth_conf)
        toks = os.path.join(self.tmp, "hostile-tokens.json")
        with open(toks, "w") as f:
            json.dump({"admin:admin": self.tokens["admin"], "demo:demo": self.tokens["alice"],
                       "other:otherproj": self.tokens["bob"]}, f)
        p = subprocess.run(["/usr/bin/python3", HOSTILE, "--agent", AGENT_BIN, "--auth-conf",
                            conf, "--tokens", toks], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=600)
        out = p.stdout.decode(errors="replace")
        print(out[-3000:], file=sys.stderr)
        self.assertEqual(p.returncode, 0, "the hostile sweep under Keystone failed:\n" +
                         out[-8000:])
        self.assertIn("hostile requests sent", out)

    def test_8_cloud_init_user_story(self):
        """Issue 14's commands with the real CLI: keypair create (kova makes the key), server
        create --key-name --user-data --network --config-drive true --wait; the config drive
        the agent built holds the keypair's public key, the script and the server's name."""
        tmp = tempfile.mkdtemp(prefix="kova-ks-ci-")
        try:
            pem = self.cli("alice", "keypair", "create", "cik").stdout
            kf = os.path.join(tmp, "cik")
            with open(kf, "wb") as f:
                f.write(pem)
            os.chmod(kf, 0o600)
            pub = subprocess.run(["ssh-keygen", "-y", "-f", kf], capture_output=True, text=True)
            self.assertEqual(pub.returncode, 0, pub.stderr)
            script = os.path.join(tmp, "script.sh")
            with open(script, "w") as f:
                f.write("#!/bin/sh\necho hello > /var/tmp/marker\n")
            s = self.cli_json("alice", "server", "create", "--image", "d", "--flavor", "1",
                              "--key-name", "cik", "--user-data", script, "--network",
                              NET_NAME, "--config-drive", "true", "--wait", "vm1")
            self.assertEqual(s["key_name"], "cik")
            self.assertEqual(str(s.get("config_drive")), "True")
            img = os.path.join(self.agents[0].state_dir, "instances", s["id"], "disk.config")
            env = dict(os.environ, MTOOLS_SKIP_CHECK="1")

            def read(path):
                r = subprocess.run(["mcopy", "-n", "-i", img, "::" + path, "-"],
                                   capture_output=True, env=env)
                self.assertEqual(r.returncode, 0, (path, r.stderr))
                return r.stdout
            md = json.loads(read("openstack/latest/meta_data.json"))
            self.assertEqual((md["uuid"], md["name"], md["hostname"]),
                             (s["id"], "vm1", "vm1.novalocal"))
            self.assertEqual(md["public_keys"]["cik"].split()[:2], pub.stdout.split()[:2])
            self.assertEqual(read("openstack/latest/user_data"),
                             b"#!/bin/sh\necho hello > /var/tmp/marker\n")
            self.cli("alice", "server", "delete", "--wait", s["id"])
            self.cli("alice", "keypair", "delete", "cik")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_9_keystone_down_is_503_then_recovers(self):
        t = self.ks.token("bob", "bob-pw", "pb")  # never validated: not in the cache
        self.ks.stop()
        try:
            t0 = time.time()
            st, _, b = self.agents[0].request("GET", "/v2.1/servers", token=t)
            self.assertEqual(st, 503, b)
            self.assertEqual(b["serviceUnavailable"]["code"], 503, b)
            self.assertLess(time.time() - t0, 10)
            st, _, b = self.agents[0].request("POST", "/v2.1/servers", token=t, body={
                "server": {"name": "x", "imageRef": self.image, "flavorRef": "1"}})
            self.assertEqual(st, 503, b)
        finally:
            self.ks.start()
        self.api("bob", "GET", "/servers", token=t, want=200)


def configure(opts):
    global AGENT_BIN, FAKE_VMM_BIN
    AGENT_BIN = opts["--agent"]
    FAKE_VMM_BIN = os.path.abspath(opts["--fake-vmm"])


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure, ("--agent", "--fake-vmm")))
