# SPDX-License-Identifier: Apache-2.0
"""api.config: the agent's process behaviour — INI config, command-line errors, SIGTERM/SIGINT,
state that survives a restart, configured limits (body size, image size cap, quotas).

usage: /usr/bin/python3 test_config.py --agent PATH/kova-agent
"""
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kova_agent_fixture import (Agent, free_port, sanitizer_problems,  # noqa: E402
                                unittest_main)

AGENT_BIN = None
CONFIG = """
[DEFAULT]
# a nova.conf-style file; unknown options are ignored
my_ip = 10.0.0.1
host = kova-test-host
default_availability_zone = az-test
force_config_drive = true

[kova]
metadata_listen = 127.0.0.1:%(md_port)d

[api]
auth_strategy = noauth2
max_limit = 3

[oslo_middleware]
max_request_body_size = 2048

[glance]
image_size_cap = 1000

[quota]
instances = 2
key_pairs = 1
"""


class Config(unittest.TestCase):
    def run_agent(self, args, timeout=10):
        return subprocess.run([AGENT_BIN] + args, capture_output=True, text=True, timeout=timeout)

    def assert_clean_stop(self, agent):
        rc, log = agent.stop()
        self.assertEqual(rc, 0, log[-3000:])
        self.assertEqual(sanitizer_problems(log), [], log[-3000:])

    def test_bad_command_lines(self):
        for args in (["--listen", "nonsense"], ["--listen", "127.0.0.1:99999"], ["--bogus", "x"],
                     ["--state-dir"], ["--log-level", "loud"]):
            r = self.run_agent(args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        r = self.run_agent(["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--state-dir", r.stdout)

    def test_bad_config_files(self):
        a = Agent(AGENT_BIN)
        try:
            bad = os.path.join(a.tmp, "bad.conf")
            for text in ("[DEFAULT]\nosapi_compute_listen_port = seventy\n",
                         "[quota]\ninstances = -5\n", "not an ini line\n",
                         "[kova]\nmetadata_listen = [::1]:80\n",
                         "[kova]\nmetadata_listen = 169.254.169.254\n",
                         "[DEFAULT]\nforce_config_drive = maybe\n"):
                with open(bad, "w") as f:
                    f.write(text)
                r = self.run_agent(["--config", bad, "--state-dir", a.state_dir])
                self.assertEqual(r.returncode, 1, (text, r.stderr))
                self.assertIn("bad.conf", r.stderr)
            r = self.run_agent(["--config", "/nonexistent/kova.conf"])
            self.assertEqual(r.returncode, 1)
            r = self.run_agent(["--auth-strategy", "keystone", "--state-dir", a.state_dir,
                                "--listen", "127.0.0.1:1"])
            self.assertNotEqual(r.returncode, 0)
        finally:
            a.cleanup()

    def test_config_values_apply(self):
        md_port = free_port()
        a = Agent(AGENT_BIN, config_text=CONFIG % {"md_port": md_port}).start()
        try:
            st, _, b = a.request("GET", "/v2.1/os-availability-zone")
            self.assertEqual(b["availabilityZoneInfo"][0]["zoneName"], "az-test")
            st, _, b = a.request("GET", "/v2.1/os-hypervisors", token="admin:admin")
            self.assertEqual(b["hypervisors"][0]["hypervisor_hostname"], "kova-test-host")
            st, _, b = a.request("GET", "/v2.1/flavors")
            self.assertEqual(len(b["flavors"]), 3)  # max_limit
            st, _, b = a.request("POST", "/v2.1/os-keypairs", {"keypair": {"name": "x" * 3000}})
            self.assertEqual(st, 413)
            self.assertIn("overLimit", b)
            st, _, b = a.request("POST", "/v2.1/os-keypairs", {"keypair": {"name": "one"}})
            self.assertEqual(st, 200, b)
            st, _, b = a.request("POST", "/v2.1/os-keypairs", {"keypair": {"name": "two"}})
            self.assertEqual(st, 403, b)
            st, _, img = a.request("POST", "/v2/images", {"name": "cap", "disk_format": "raw",
                                                           "container_format": "bare",
                                                           "hw_firmware_type": "uefi"},
                                   image=True)
            self.assertEqual(st, 201)
            st, _, b = a.request("PUT", "/v2/images/%s/file" % img["id"], raw=b"x" * 5000,
                                 headers={"Content-Type": "application/octet-stream"},
                                 image=True)
            self.assertEqual(st, 413, b)
            st, _, b = a.request("GET", "/v2/images/%s" % img["id"], image=True)
            self.assertEqual(b["status"], "queued")  # back to queued, partial data gone
            self.assertFalse([f for f in os.listdir(os.path.join(a.state_dir, "images"))])
            st, _, b = a.request("PUT", "/v2/images/%s/file" % img["id"], raw=b"x" * 1000,
                                 headers={"Content-Type": "application/octet-stream"},
                                 image=True)
            self.assertEqual(st, 204, b)
            st, _, b = a.request("POST", "/v2.1/servers", {"server": {
                "name": "q", "imageRef": img["id"], "flavorRef": "1", "max_count": 5}})
            self.assertEqual(st, 202, b)
            st, _, b = a.request("GET", "/v2.1/servers/detail")
            self.assertEqual(len(b["servers"]), 2)  # as many as the quota allows
            # force_config_drive: every server has one
            self.assertEqual([x["config_drive"] for x in b["servers"]], ["True", "True"])
            # the metadata service where metadata_listen says; 127.0.0.1 is no server's
            c = http.client.HTTPConnection("127.0.0.1", md_port, timeout=10)
            c.request("GET", "/openstack/latest/meta_data.json")
            r = c.getresponse()
            self.assertEqual((r.status, r.getheader("Content-Type")),
                             (404, "text/plain; charset=UTF-8"))
            r.read()
            c.request("DELETE", "/openstack")
            r = c.getresponse()
            self.assertEqual((r.status, r.getheader("Allow")), (405, "GET, HEAD"))
            c.close()
            self.assert_clean_stop(a)
        finally:
            a.cleanup()

    def test_state_survives_restart_and_sigint(self):
        a = Agent(AGENT_BIN).start()
        try:
            st, _, _ = a.request("DELETE", "/v2.1/flavors/1", token="admin:admin")
            self.assertEqual(st, 202)
            st, _, k = a.request("POST", "/v2.1/os-keypairs", {"keypair": {"name": "keep"}})
            self.assertEqual(st, 200)
            a.proc.send_signal(signal.SIGINT)
            self.assertEqual(a.proc.wait(timeout=20), 0)
            a.proc = None
            a.log.close()
            a.start()
            st, _, b = a.request("GET", "/v2.1/flavors/1")
            self.assertEqual(st, 404)  # the seed migration ran once only
            st, _, b = a.request("GET", "/v2.1/os-keypairs/keep")
            self.assertEqual(b["keypair"]["fingerprint"], k["keypair"]["fingerprint"])
            self.assert_clean_stop(a)
            db = sqlite3.connect(os.path.join(a.state_dir, "state.db"))
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 4)
            db.close()
        finally:
            a.cleanup()

    def test_build_left_over_by_a_crash_is_finished(self):
        a = Agent(AGENT_BIN).start()
        try:
            self.assert_clean_stop(a)
            db = sqlite3.connect(os.path.join(a.state_dir, "state.db"))
            db.execute("INSERT INTO servers (id, name, project_id, user_id, flavor_id, vcpus, ram, "
                       "disk, vm_state, task_state, created_at, updated_at) VALUES "
                       "('6b1a3a2e-0000-4000-8000-000000000001', 'orphan', 'demo', 'demo', '1', "
                       "1, 512, 1, 'building', 'spawning', '2026-01-01T00:00:00Z', "
                       "'2026-01-01T00:00:00Z')")
            db.commit()
            db.close()
            a.start()
            for _ in range(200):
                st, _, b = a.request("GET", "/v2.1/servers/6b1a3a2e-0000-4000-8000-000000000001")
                if b["server"]["status"] == "ERROR":
                    break
                time.sleep(0.05)
            self.assertEqual(b["server"]["status"], "ERROR")
            # its build ran again after the restart, and ended honestly (no image recorded)
            self.assertIn("could not be found", b["server"]["fault"]["message"])
            self.assert_clean_stop(a)
        finally:
            a.cleanup()

    def test_stalled_import_does_not_block_shutdown(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)  # accepts connections, never answers
        a = Agent(AGENT_BIN, config_text="[import_filtering_opts]\nallowed_networks = "
                  "127.0.0.1/32\nallowed_ports =\n").start()
        try:
            st, _, img = a.request("POST", "/v2/images", {"name": "stall", "disk_format": "raw",
                                                          "container_format": "bare"}, image=True)
            st, _, b = a.request("POST", "/v2/images/%s/import" % img["id"], {"method": {
                "name": "web-download",
                "uri": "http://127.0.0.1:%d/x" % lsock.getsockname()[1]}}, image=True)
            self.assertEqual(st, 202, b)
            time.sleep(0.5)
            t0 = time.time()
            self.assert_clean_stop(a)
            self.assertLess(time.time() - t0, 15)
            a.start()
            st, _, b = a.request("GET", "/v2/images/%s" % img["id"], image=True)
            self.assertEqual(b["status"], "queued")
            self.assert_clean_stop(a)
            # a crash in the middle of an upload: back to queued, partial data removed
            db = sqlite3.connect(os.path.join(a.state_dir, "state.db"))
            db.execute("UPDATE images SET status = 'saving'")
            db.commit()
            db.close()
            part = os.path.join(a.state_dir, "images", img["id"] + ".part")
            with open(part, "wb") as f:
                f.write(b"partial")
            a.start()
            st, _, b = a.request("GET", "/v2/images/%s" % img["id"], image=True)
            self.assertEqual(b["status"], "queued")
            self.assertFalse(os.path.exists(part))
            self.assert_clean_stop(a)
            # data whose image row is gone (deleted just before a crash) is removed at start
            orphan = os.path.join(a.state_dir, "images", "6b1a3a2e-0000-4000-8000-0000000000ff")
            keep = os.path.join(a.state_dir, "images", "not-an-image.txt")
            for p in (orphan, keep):
                with open(p, "wb") as f:
                    f.write(b"data")
            a.start()
            self.assertFalse(os.path.exists(orphan))
            self.assertTrue(os.path.exists(keep))
            self.assert_clean_stop(a)
        finally:
            lsock.close()
            a.cleanup()

    def test_newer_schema_is_refused(self):
        a = Agent(AGENT_BIN)
        try:
            os.makedirs(a.state_dir)
            db = sqlite3.connect(os.path.join(a.state_dir, "state.db"))
            db.execute("PRAGMA user_version = 999")
            db.close()
            r = self.run_agent(["--state-dir", a.state_dir, "--listen", "127.0.0.1:1"])
            self.assertEqual(r.returncode, 1)
            self.assertIn("newer", r.stderr)
        finally:
            a.cleanup()

    def test_ipv6_listener(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        s = socket.socket(socket.AF_INET6)
        try:
            s.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1")
        port = s.getsockname()[1]
        s.close()
        a = Agent(AGENT_BIN)
        try:
            p = subprocess.Popen([AGENT_BIN, "--state-dir", a.state_dir, "--listen",
                                  "[::1]:%d" % port, "--no-image-service"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            body = None
            for _ in range(200):
                try:
                    c = http.client.HTTPConnection("::1", port, timeout=2)
                    c.request("GET", "/v2.1")
                    body = json.loads(c.getresponse().read())
                    c.close()
                    break
                except OSError:
                    time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            err = p.communicate(timeout=20)[1].decode()
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(body["version"]["id"], "v2.1")
            self.assertIn("[::1]:%d" % port, body["version"]["links"][0]["href"])
        finally:
            a.cleanup()

    def test_port_in_use(self):
        a = Agent(AGENT_BIN).start()
        try:
            r = self.run_agent(["--state-dir", os.path.join(a.tmp, "s2"), "--listen",
                                "127.0.0.1:%d" % a.port, "--no-image-service"])
            self.assertEqual(r.returncode, 1)
            self.assert_clean_stop(a)
        finally:
            a.cleanup()


def configure(opts):
    global AGENT_BIN
    AGENT_BIN = opts["--agent"]


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure))
