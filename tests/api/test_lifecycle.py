# SPDX-License-Identifier: Apache-2.0
"""api.lifecycle: the instance lifecycle's paths that need no KVM, against a real kova-agent and
the real kova-vmm (which, without /dev/kvm or with a kernel it cannot boot, exits at once):
build → ERROR with kova-vmm's own reason as the fault and nothing left running; the instance dir
and _base cache on disk; stop/start/reboot/rebuild/delete state changes; FlavorDiskSmallerThanImage
found at build time; and the start-up reconciliation after a restart (dead VMM → SHUTOFF,
interrupted tasks ended, stray and half-built dirs removed, deletes finished).
With kova-fake-vmm (tests/api/fake_vmm.c, the control protocol without a guest): a failed os-start
leaves the server SHUTOFF with the action's event Error and nothing running; a pause whose VMM
vanishes, or that the VMM refuses, is an Error event and leaves a correct state.
Booting real guests is tests/lifecycle/ (nested KVM).

usage: /usr/bin/python3 test_lifecycle.py --agent PATH/kova-agent --fake-vmm PATH/kova-fake-vmm
"""
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kova_agent_fixture import Agent, sanitizer_problems, unittest_main  # noqa: E402

AGENT_BIN = None
DEMO = "demo:demo"


def vmm_pids_for(state_dir):
    """kova-vmm processes whose control socket is under state_dir."""
    inst = os.path.realpath(os.path.join(state_dir, "instances"))
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == "kova-vmm":
            if any(a.decode(errors="replace").startswith(inst + "/") for a in argv):
                out.append(int(p))
    return out


# kova-fake-vmm (tests/api/fake_vmm.c): a stand-in for kova-vmm that answers the control protocol
# through kova-vmm's own server code and runs no guest; its behaviour comes from the kernel
# command line (the image's os_command_line): fake.fail_from=N refuses the N-th boot of the
# instance (exit 1; boots are counted in the console log), fake.pause=vanish|refuse and
# fake.resume=vanish|refuse make that command exit the VMM without a reply, or answer an error.
FAKE_VMM_BIN = None


class AgentCase(unittest.TestCase):
    """An agent per test and the helpers; the tests are in the subclasses."""

    def setUp(self):
        self.a = Agent(AGENT_BIN, extra_args=["--shutdown-timeout", "5"]).start()

    def tearDown(self):
        rc, log = self.a.stop()
        self.assertEqual(sanitizer_problems(log), [], log[-3000:])
        self.assertEqual(vmm_pids_for(self.a.state_dir), [])
        self.a.cleanup()

    def req(self, method, path, body=None, status=None, **kw):
        st, h, b = self.a.request(method, path, body=body, token=DEMO, **kw)
        self.assertLess(st, 500, "%s %s -> %d %r" % (method, path, st, b))
        if status is not None:
            self.assertEqual(st, status, "%s %s -> %d %r" % (method, path, st, b))
        return b

    def image(self, name, data, disk_format="raw", **props):
        body = {"name": name, "disk_format": disk_format, "container_format": "bare"}
        body.update(props)
        img = self.req("POST", "/v2/images", body, status=201, image=True)
        self.req("PUT", "/v2/images/%s/file" % img["id"], status=204, image=True, raw=data,
                 headers={"Content-Type": "application/octet-stream"})
        return img["id"]

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

    def create(self, image, name="vm"):
        b = self.req("POST", "/v2.1/servers",
                     {"server": {"name": name, "imageRef": image, "flavorRef": "1"}}, status=202)
        # BUILD at once (or already ERROR: a build that fails early may beat this GET)
        self.assertIn(self.server(b["server"]["id"])["status"], ("BUILD", "ERROR"))
        return b["server"]["id"]

    def act(self, sid, body, status=202):
        return self.req("POST", "/v2.1/servers/%s/action" % sid, body, status=status)

    def db(self):
        return sqlite3.connect(os.path.join(self.a.state_dir, "state.db"), timeout=10)

    def inst_dir(self, sid):
        return os.path.join(self.a.state_dir, "instances", sid)

    def last_event(self, sid, action):
        """The newest instance action `action` of the server, its (only) event, as admin."""
        st, _, b = self.a.request("GET", "/v2.1/servers/%s/os-instance-actions" % sid,
                                  token="admin:admin")
        self.assertEqual(st, 200, b)
        acts = [x for x in b["instanceActions"] if x["action"] == action]
        self.assertTrue(acts, b)
        st, _, b = self.a.request("GET", "/v2.1/servers/%s/os-instance-actions/%s"
                                  % (sid, acts[0]["request_id"]), token="admin:admin")
        self.assertEqual(st, 200, b)
        self.assertEqual(len(b["instanceAction"]["events"]), 1, b)
        return b["instanceAction"]["events"][0]

    def booting_images(self):
        # a "kernel" kova-vmm refuses: the build gets as far as spawning the VMM
        kernel = self.image("not-a-kernel", b"\0" * 4096, disk_format="aki")
        initrd = self.image("initrd", b"\0" * 512, disk_format="ari")
        disk = self.image("disk", b"\0" * 65536, kernel_id=kernel, ramdisk_id=initrd,
                          os_command_line="console=ttyS0 kova.stay=1")
        return kernel, initrd, disk


class Lifecycle(AgentCase):
    def test_build_error_fault_from_vmm_then_actions(self):
        kernel, initrd, disk = self.booting_images()
        sid = self.create(disk)
        s = self.wait(sid, "ERROR")
        f = s["fault"]
        self.assertEqual(f["code"], 500)
        self.assertRegex(f["message"], r"^kova-vmm exited with status [12]")
        self.assertTrue(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", f["created"]), f)
        self.assertEqual(s["OS-EXT-STS:power_state"], 0)
        # the instance dir as Nova's libvirt driver lays it out, over the _base cache
        d = self.inst_dir(sid)
        for f in ("disk", "disk.info", "console.log", "vmm.log"):
            self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
        # the fault ends with the VMM's last words: the last line of its vmm.log
        with open(os.path.join(d, "vmm.log"), errors="replace") as lf:
            last = [x.strip() for x in lf.read().splitlines() if x.strip()][-1]
        self.assertIn(": " + last[:60], s["fault"]["message"])
        base = os.path.join(self.a.state_dir, "instances", "_base")
        for iid in (kernel, initrd, disk):
            self.assertTrue(os.path.isfile(
                os.path.join(base, hashlib.sha1(iid.encode()).hexdigest())))
        with open(os.path.join(d, "disk"), "rb") as f:
            self.assertEqual(f.read(4), b"QFI\xfb")
        c = self.db()
        row = c.execute("SELECT vmm_pid, kernel_id, ramdisk_id, os_cmdline FROM servers "
                        "WHERE id = ?", (sid,)).fetchone()
        c.close()
        self.assertEqual(row, (None, kernel, initrd, "console=ttyS0 kova.stay=1"))
        self.assertEqual(vmm_pids_for(self.a.state_dir), [])
        acts = self.req("GET", "/v2.1/servers/%s/os-instance-actions" % sid)["instanceActions"]
        self.assertEqual(acts[0]["action"], "create")
        self.assertEqual(acts[0]["message"], "Error")

        # ERROR → os-stop → SHUTOFF; start tries again and fails the same way: the server stays
        # SHUTOFF (Nova: the start action's event is Error, the server is not put in ERROR)
        self.act(sid, {"os-stop": None})
        s = self.wait(sid, "SHUTOFF")
        self.assertEqual(s["OS-EXT-STS:power_state"], 4)
        self.act(sid, {"os-start": None})
        s = self.wait(sid, "SHUTOFF")
        self.assertEqual(s["OS-EXT-STS:power_state"], 4)
        self.assertNotIn("fault", s)
        ev = self.last_event(sid, "start")
        self.assertEqual(ev["result"], "Error")
        self.assertRegex(ev["traceback"], r"^kova-vmm exited")
        # hard reboot is allowed from SHUTOFF; it fails the same way → ERROR
        self.act(sid, {"reboot": {"type": "HARD"}})
        s = self.wait(sid, "ERROR")
        self.assertRegex(s["fault"]["message"], r"^kova-vmm exited")
        # rebuild from ERROR onto another image: new overlay, the new base cached
        other = self.image("disk2", b"\1" * 65536, kernel_id=kernel)
        b = self.act(sid, {"rebuild": {"imageRef": other, "name": "rebuilt"}})
        self.assertEqual(b["server"]["id"], sid)
        self.assertRegex(b["server"]["adminPass"], r"^[A-Za-z0-9]{12}$")  # generated, as Nova
        s = self.wait(sid, "ERROR")
        self.assertEqual((s["image"]["id"], s["name"]), (other, "rebuilt"))
        self.assertTrue(os.path.isfile(os.path.join(
            base, hashlib.sha1(other.encode()).hexdigest())))
        c = self.db()
        self.assertIsNone(c.execute("SELECT ramdisk_id FROM servers WHERE id = ?",
                                    (sid,)).fetchone()[0])
        c.close()
        # console output of an instance that never printed anything
        self.assertEqual(self.act(sid, {"os-getConsoleOutput": {"length": 5}}, status=200),
                         {"output": ""})
        # delete: 204, then 404, the dir gone
        self.req("DELETE", "/v2.1/servers/%s" % sid, status=204)
        deadline = time.time() + 20
        while time.time() < deadline:
            st, _, _ = self.a.request("GET", "/v2.1/servers/%s" % sid, token=DEMO)
            if st == 404:
                break
            time.sleep(0.05)
        self.assertEqual(st, 404)
        self.assertFalse(os.path.exists(d))

    def test_flavor_disk_smaller_than_image(self):
        qemu_img = shutil.which("qemu-img")
        if not qemu_img:
            self.skipTest("qemu-img not installed")
        path = os.path.join(self.a.tmp, "big.qcow2")
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", path, "2G"], check=True)
        with open(path, "rb") as f:
            data = f.read()
        kernel = self.image("k", b"\0" * 4096, disk_format="aki")
        img = self.image("big", data, disk_format="qcow2", kernel_id=kernel)
        sid = self.create(img)  # the file is small: the API's size check passes
        s = self.wait(sid, "ERROR")
        self.assertEqual(s["fault"]["code"], 400)
        self.assertIn("Flavor's disk is too small for requested image", s["fault"]["message"])
        self.assertFalse(os.path.exists(self.inst_dir(sid)))

    def test_image_without_kernel_boots_through_firmware(self):
        # as Nova boots a cloud image: the disk through firmware (kova-vmm without --kernel,
        # SMBIOS UUID = the server's); this disk has no boot loader, so the firmware finds
        # nothing to boot, and the server is ACTIVE with its VMM running, as under Nova
        img = self.image("plain", b"\0" * 65536)
        sid = self.create(img)
        self.wait(sid, "ACTIVE")
        pids = vmm_pids_for(self.a.state_dir)
        self.assertEqual(len(pids), 1)
        with open("/proc/%d/cmdline" % pids[0], "rb") as f:
            argv = [x.decode() for x in f.read().split(b"\0") if x]
        self.assertNotIn("--kernel", argv)
        self.assertEqual(argv[argv.index("--uuid") + 1], sid)
        self.req("DELETE", "/v2.1/servers/%s" % sid, status=204)
        deadline = time.time() + 30
        while time.time() < deadline and self.a.request("GET", "/v2.1/servers/%s" % sid,
                                                        token=DEMO)[0] != 404:
            time.sleep(0.1)
        self.assertEqual(vmm_pids_for(self.a.state_dir), [])

    def test_image_asking_for_uefi(self):
        img = self.image("uefi", b"\0" * 4096, hw_firmware_type="uefi")
        sid = self.create(img)
        s = self.wait(sid, "ERROR")
        self.assertIn("hw_firmware_type=uefi", s["fault"]["message"])
        self.assertFalse(os.path.exists(self.inst_dir(sid)))

    def test_restart_reconciles(self):
        kernel, initrd, disk = self.booting_images()
        ids = [self.create(disk, name="r%d" % i) for i in range(4)]
        for sid in ids:
            self.wait(sid, "ERROR")
        rc, log = self.a.stop()
        self.assertEqual(rc, 0, log[-2000:])
        # a process that has exited: its PID names no VMM any more
        p = subprocess.Popen(["true"])
        p.wait()
        dead = p.pid
        c = self.db()
        c.execute("UPDATE servers SET vm_state = 'active', task_state = NULL, power_state = 1, "
                  "vmm_pid = ?, vmm_start = 12345 WHERE id = ?", (dead, ids[0]))
        c.execute("UPDATE servers SET vm_state = 'active', task_state = 'powering-off', "
                  "power_state = 1, vmm_pid = ?, vmm_start = 1 WHERE id = ?", (os.getpid(), ids[1]))
        c.execute("UPDATE servers SET vm_state = 'paused', task_state = 'unpausing', "
                  "power_state = 3 WHERE id = ?", (ids[2],))
        c.execute("UPDATE servers SET task_state = 'deleting' WHERE id = ?", (ids[3],))
        c.commit()
        c.close()
        inst = os.path.join(self.a.state_dir, "instances")
        stray = os.path.join(inst, "6b1a3a2e-0000-4000-8000-00000000beef")
        partial = os.path.join(inst, ".partial-6b1a3a2e-0000-4000-8000-00000000cafe")
        for d in (stray, partial):
            os.makedirs(d)
            with open(os.path.join(d, "disk"), "wb") as f:
                f.write(b"x")
        self.a.start()
        for sid in ids[:3]:
            s = self.server(sid)
            self.assertEqual((s["status"], s["OS-EXT-STS:power_state"],
                              s["OS-EXT-STS:task_state"]), ("SHUTOFF", 4, None), sid)
        c = self.db()
        self.assertEqual(c.execute("SELECT count(*) FROM servers WHERE vmm_pid IS NOT NULL")
                         .fetchone()[0], 0)
        c.close()
        self.assertFalse(os.path.exists(stray))
        self.assertFalse(os.path.exists(partial))
        deadline = time.time() + 20
        while time.time() < deadline:
            st, _, _ = self.a.request("GET", "/v2.1/servers/%s" % ids[3], token=DEMO)
            if st == 404:
                break
            time.sleep(0.05)
        self.assertEqual(st, 404)
        self.assertFalse(os.path.exists(self.inst_dir(ids[3])))
        # the others' dirs are still there
        for sid in ids[:3]:
            self.assertTrue(os.path.isdir(self.inst_dir(sid)))


class FakeVmm(AgentCase):
    """The agent driving kova-fake-vmm: paths a real VMM reaches only with KVM."""

    def setUp(self):
        self.fake_dir = tempfile.mkdtemp(prefix="kova-fake-vmm-")
        self.fake = os.path.join(self.fake_dir, "kova-vmm")
        self.assertIsNotNone(FAKE_VMM_BIN, "--fake-vmm PATH is required")
        shutil.copy(FAKE_VMM_BIN, self.fake)  # named kova-vmm, as the agent's process scans expect
        self.a = Agent(AGENT_BIN, extra_args=["--shutdown-timeout", "5",
                                              "--vmm", self.fake]).start()

    def tearDown(self):
        left = self.fake_pids()
        for pid in left:
            os.kill(pid, 9)
        super().tearDown()
        shutil.rmtree(self.fake_dir, ignore_errors=True)
        self.assertEqual(left, [], "fake VMMs left running")

    def fake_pids(self):
        out = []
        for p in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    argv = f.read().split(b"\0")
                if argv[0] == self.fake.encode():  # the fake itself, not the agent's --vmm
                    out.append(int(p))
            except (OSError, ValueError):
                continue
        return out

    def fake_server(self, cmdline):
        kernel = self.image("k", b"\0" * 4096, disk_format="aki")
        disk = self.image("d", b"\0" * 65536, kernel_id=kernel, os_command_line=cmdline)
        sid = self.create(disk)
        s = self.wait(sid, "ACTIVE")
        self.assertEqual(s["OS-EXT-STS:power_state"], 1)
        self.assertEqual(len(self.fake_pids()), 1)
        return sid

    def delete(self, sid):
        self.req("DELETE", "/v2.1/servers/%s" % sid, status=204)
        deadline = time.time() + 20
        while time.time() < deadline:
            st, _, _ = self.a.request("GET", "/v2.1/servers/%s" % sid, token=DEMO)
            if st == 404:
                return
            time.sleep(0.05)
        self.fail("server %s was never deleted" % sid)

    def vmm_pid(self, sid):
        c = self.db()
        r = c.execute("SELECT vmm_pid FROM servers WHERE id = ?", (sid,)).fetchone()
        c.close()
        return r[0]

    def test_failed_start_stays_shutoff(self):
        sid = self.fake_server("console=ttyS0 fake.fail_from=2")
        self.act(sid, {"os-stop": None})
        self.wait(sid, "SHUTOFF")
        self.assertEqual(self.fake_pids(), [])
        self.act(sid, {"os-start": None})  # the second boot is refused
        s = self.wait(sid, "SHUTOFF")
        self.assertEqual((s["OS-EXT-STS:power_state"], s["OS-EXT-STS:task_state"]), (4, None))
        self.assertNotIn("fault", s)
        ev = self.last_event(sid, "start")
        self.assertEqual(ev["result"], "Error")
        self.assertIn("refusing boot 2", ev["traceback"])
        self.assertIsNone(self.vmm_pid(sid))
        self.assertEqual(self.fake_pids(), [])
        # still startable, stoppable, deletable: the state is a plain SHUTOFF
        self.act(sid, {"os-start": None})
        self.wait(sid, "SHUTOFF")
        self.delete(sid)

    def test_pause_vmm_vanishes(self):
        sid = self.fake_server("console=ttyS0 fake.pause=vanish")
        self.act(sid, {"pause": None})
        s = self.wait(sid, "SHUTOFF")
        self.assertEqual((s["OS-EXT-STS:power_state"], s["OS-EXT-STS:task_state"]), (4, None))
        ev = self.last_event(sid, "pause")
        self.assertEqual(ev["result"], "Error")
        self.assertIn("pause failed", ev["traceback"])
        self.assertIsNone(self.vmm_pid(sid))
        self.assertEqual(self.fake_pids(), [])
        # and it starts again
        self.act(sid, {"os-start": None})
        self.wait(sid, "ACTIVE")
        self.delete(sid)

    def test_pause_refused_unpause_vanishes(self):
        sid = self.fake_server("console=ttyS0 fake.pause=refuse")
        pid = self.vmm_pid(sid)
        self.act(sid, {"pause": None})
        s = self.wait(sid, "ACTIVE")
        self.assertEqual(s["OS-EXT-STS:power_state"], 1)
        ev = self.last_event(sid, "pause")
        self.assertEqual(ev["result"], "Error")
        self.assertIn("refused", ev["traceback"])
        self.assertEqual(self.vmm_pid(sid), pid)  # the same VMM runs on
        self.assertEqual(self.fake_pids(), [pid])
        self.delete(sid)
        # unpause: the VMM vanishes while paused
        sid = self.fake_server("console=ttyS0 fake.resume=vanish")
        self.act(sid, {"pause": None})
        s = self.wait(sid, "PAUSED")
        self.assertEqual(self.last_event(sid, "pause")["result"], "Success")
        self.act(sid, {"unpause": None})
        s = self.wait(sid, "SHUTOFF")
        self.assertEqual(s["OS-EXT-STS:power_state"], 4)
        self.assertEqual(self.last_event(sid, "unpause")["result"], "Error")
        self.assertEqual(self.fake_pids(), [])
        self.delete(sid)


def configure(opts):
    global AGENT_BIN, FAKE_VMM_BIN
    AGENT_BIN = opts["--agent"]
    FAKE_VMM_BIN = opts.get("--fake-vmm")


if __name__ == "__main__":
    sys.exit(unittest_main(__doc__, configure, ("--agent", "--fake-vmm")))
