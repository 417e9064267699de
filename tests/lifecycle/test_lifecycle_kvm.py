# SPDX-License-Identifier: Apache-2.0
"""Real guests through kova-agent + kova-vmm on KVM: the end-to-end lifecycle tests.

kova-agent and kova-vmm need /dev/kvm, which only the nested-KVM test VM has here
(tests/nested/kova-nested-run; where /dev/kvm works they run directly). Two tests:

lifecycle.kvm (--parts power,agentkill; run inside the test VM by kova-nested-run):
  power      kill -9 of a VMM → SHUTOFF: the agent records it within a second of the kill (the
             agent's own wall-clock time of the SHUTOFF, logged, against the kill's, both read on
             the same machine), the API then shows SHUTOFF/power_state 4; start; the file the
             guest wrote and synced before the kill is on its disk (found at the next boot).
  agentkill  the agent SIGKILLed during a burst of creates and deletes, restarted: every server
             ends ACTIVE with its VMM adopted or started (PID + start time checked) or is gone;
             no kova-vmm without a server, no instance dir without one.
  firmware   a cloud image (qcow2, GRUB inside, no properties; tests/vmm/firmware) → ACTIVE
             through SeaBIOS and GRUB, SMBIOS product OpenStack Nova and UUID/serial = the
             server's id in the guest, stop (ACPI power button) → SHUTOFF, start, hard reboot,
             each through firmware again, qemu-img check of the overlay clean, delete.

lifecycle.kvm_cli (--host-driver; runs HERE, at native speed): starts the test VM with the
  agent in it (--serve) and its two ports forwarded to 127.0.0.1 (kova-nested-run --forward),
  then drives it from this side, both at once on two servers:
  cli        Debian's openstack CLI (clouds.yaml, token auth as tests/api): images registered
             (kernel, initramfs, root disk with kernel_id/ramdisk_id/os_command_line), server
             create --wait → ACTIVE, console log show --lines 5 shows the marker, stop → SHUTOFF,
             start → ACTIVE (the disk kept the guest's file), reboot --soft --wait, reboot --hard
             --wait, pause/unpause, rebuild --wait (a fresh disk), delete --wait.
  curl       the same lifecycle with curl alone: tests/lifecycle/curl-lifecycle.sh (the README's).
  cloud      (lifecycle.cloud) the test cloud image (--cloud-image; Debian 12 genericcloud's
             twin, tests/assets/build-cloud-image.sh) with the CLI: image create --disk-format
             qcow2 with no properties, server create --config-drive true --user-data (cloud-
             config) --wait → ACTIVE, Debian's login: prompt on the console through SeaBIOS and
             GRUB, console log show, the user data's line (with SMBIOS's product name), stop
             (Debian powers off on the ACPI power button), qemu-img check of the overlay (from
             the VM's side), start to login: again, reboot --hard (through SeaBIOS again),
             delete. With KOVA_CLOUD_OPS=1 (lifecycle.cloud_full) also, before the hard reboot:
             reboot --soft (the power button, a new VMM, login: again) and rebuild (a fresh
             overlay, through SeaBIOS again).
  What only the VM can see (kova-vmm processes, instance dirs, the VMM PIDs in state.db) comes
  from the --serve side through probe files in the shared control dir; at the end the --serve
  side checks that no kova-vmm and no instance dir is left and that the agent stopped cleanly.

usage: python3 test_lifecycle_kvm.py --agent A --vmm V --assets DIR [--parts power,agentkill]
                                     [--cloud-image QCOW2 (with the part firmware)]
       python3 test_lifecycle_kvm.py --host-driver --runner kova-nested-run --agent A --vmm V
                                     --assets DIR --curl-script S [--timeout S] [--mem M]
                                     [--cpus N] [--parts cli,curl,cloud] [--cloud-image Q]
                                     (without cli: images registered through the REST API)
       (internal) --serve CTLDIR --agent A --vmm V --port P --image-port P
"""
import base64
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
from kova_agent_fixture import Agent, openstack_env, sanitizer_problems  # noqa: E402

OPENSTACK = "/usr/bin/openstack"
# First boot: write and sync a file on the root disk; later boots: report it.
SCRIPT = ("if [ -f /kova-data ]; then echo \"KOVA-FOUND $(cat /kova-data)\"; "
          "else echo persisted-$(cat /proc/sys/kernel/random/uuid) > /kova-data; sync; "
          "echo \"KOVA-WROTE $(cat /kova-data)\"; fi\n")
# no_timer_check: the kernel's IO-APIC timer check can fail (panic) on a software-emulated,
# loaded machine, as for the test VM itself (kova-nested-run)
CMDLINE = ("console=ttyS0 quiet no_timer_check kova.root=/dev/vda kova.stay=1 kova.script=" +
           base64.b64encode(SCRIPT.encode()).decode())

failures = []
_log_lock = threading.Lock()


def log(msg):
    with _log_lock:
        print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def check(cond, what):
    if cond:
        log("ok: " + what)
    else:
        log("FAIL: " + what)
        failures.append(what)
    return cond


class Ctx:
    pass


C = Ctx()


# ------------------------------------------------------------------ the agent and its state

class AgentAt(Agent):
    """The test fixture's agent on a given address and given ports (the forwarded ones)."""

    def __init__(self, binary, host, port, image_port, extra_args=()):
        super().__init__(binary, extra_args=extra_args)
        self.host, self.port, self.image_port = host, port, image_port

    def start(self):
        args = [self.binary, "--state-dir", self.state_dir,
                "--listen", "%s:%d" % (self.host, self.port),
                "--image-listen", "%s:%d" % (self.host, self.image_port)] + self.extra_args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        line = "compute API on http://%s:%d/" % (self.host, self.port)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            if line in self.read_log():
                return self
            time.sleep(0.1)
        raise RuntimeError("kova-agent did not start; log:\n" + self.read_log())


class Remote:
    """The agent in the test VM, seen from here through the forwarded ports."""
    request = Agent.request

    def __init__(self, port, image_port):
        self.port, self.image_port = port, image_port


def api(method, path, body=None, token="admin:admin"):
    return C.agent.request(method, path, body=body, token=token)


def server(sid):
    st, _, b = api("GET", "/v2.1/servers/%s" % sid)
    return b["server"] if st == 200 else None


def wait_status(sid, want, timeout=300):
    deadline = time.time() + timeout
    s = None
    while time.time() < deadline:
        s = server(sid)
        if s and s["status"] == want and s["OS-EXT-STS:task_state"] is None:
            return s
        if s and s["status"] == "ERROR" and want != "ERROR":
            break
        time.sleep(0.2)
    raise RuntimeError("server %s: wanted %s, have %r" % (sid, want, s and {
        k: s.get(k) for k in ("status", "OS-EXT-STS:task_state", "fault")}))


def console(sid, length=None):
    st, _, b = api("POST", "/v2.1/servers/%s/action" % sid,
                   {"os-getConsoleOutput": {"length": length}})
    return b["output"] if st == 200 else ""


def wait_console(sid, text, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = console(sid)
        if text in out:
            return out
        time.sleep(0.5)
    raise RuntimeError("server %s: %r never appeared on its console; tail:\n%s\n%s"
                       % (sid, text, console(sid)[-1500:], diag_text()))


def gone(sid, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, _ = api("GET", "/v2.1/servers/%s" % sid)
        if st == 404:
            return True
        time.sleep(0.2)
    return False


def proc_start(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rindex(")") + 2:].split()[19])


def local_vmm_pids(state_dir):
    """kova-vmm processes of this state dir: {pid: server id}."""
    inst = os.path.realpath(os.path.join(state_dir, "instances"))
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "kova-vmm":
            for i, a in enumerate(argv[:-1]):
                if a == "--control-socket" and argv[i + 1].startswith(inst + "/"):
                    out[int(p)] = argv[i + 1][len(inst) + 1:len(inst) + 37]
    return out


def local_rows(state_dir):
    c = sqlite3.connect(os.path.join(state_dir, "state.db"), timeout=10)
    rows = dict(c.execute("SELECT id, vmm_pid FROM servers").fetchall())
    c.close()
    return rows


def local_dirs(state_dir):
    inst = os.path.join(state_dir, "instances")
    try:
        return sorted(d for d in os.listdir(inst)
                      if len(d) == 36 or d.startswith(".partial-"))
    except FileNotFoundError:
        return []


def vmm_status(sock):
    try:
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(2)
            c.connect(sock)
            c.sendall(b'{"cmd":"status"}\n')
            return c.makefile().readline().strip()
    except OSError as e:
        return "(no answer: %s)" % e


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError as e:
        return ["(%s)" % e]


def local_diag(state_dir):
    """Each instance's VMM as it sees itself: control-socket status (boots, boot_time_ms: the
    guest's init reached, unhandled I/O), the tails of vmm.log and console.log."""
    out = []
    inst = os.path.join(state_dir, "instances")
    pids = {sid: pid for pid, sid in local_vmm_pids(state_dir).items()}
    for sid in local_dirs(state_dir):
        d = os.path.join(inst, sid)
        if sid in pids:
            out.append("%s (kova-vmm %d): status %s" % (
                sid, pids[sid], vmm_status(os.path.join(d, "vmm.sock"))))
        else:
            out.append("%s: no kova-vmm runs" % sid)
        out += ["  vmm.log: " + x for x in tail(os.path.join(d, "vmm.log"), 6)]
        out += ["  console.log: " + x for x in tail(os.path.join(d, "console.log"), 4)]
    return "\n".join(out)


def overlay_checks(state_dir, vmms):
    """{id: [qemu-img check's status, its last line]} for each instance whose VMM is not
    running (a running one's overlay is in use)."""
    out = {}
    running = set(vmms.values())
    for sid in local_dirs(state_dir):
        if len(sid) == 36 and sid not in running:
            r = subprocess.run(["qemu-img", "check", os.path.join(state_dir, "instances", sid,
                                                                  "disk")],
                               capture_output=True, text=True)
            out[sid] = [r.returncode, ((r.stdout + r.stderr).strip().splitlines() or [""])[-1]]
    return out


def console_counts(state_dir):
    """{id: {"firmware": SeaBIOS boots, "logins": Debian login: prompts, "power_down": the
    kernel's "reboot: Power down", "cloud_init_done": cloud-init's final lines}} over each instance's whole console log (its rotated files
    too): os-getConsoleOutput gives only the last 100 KiB, less than three Debian boots."""
    out = {}
    for sid in local_dirs(state_dir):
        d = os.path.join(state_dir, "instances", sid)
        text = ""
        for name in sorted(os.listdir(d), reverse=True):
            if name.startswith("console.log"):
                with open(os.path.join(d, name), errors="replace") as f:
                    text += f.read()
        out[sid] = {"firmware": text.count("Booting from Hard Disk"),
                    "logins": len(LOGIN.findall(text)),
                    "power_down": text.count("reboot: Power down"),
                    "cloud_init_done": len(CLOUD_INIT_DONE.findall(text)),
                    "userdata": text.count("KOVA-CLOUD-USERDATA OpenStack Nova"),
                    "disk_bytes": os.path.getsize(os.path.join(d, "disk"))
                    if os.path.exists(os.path.join(d, "disk")) else -1}
    return out


def local_probe(state_dir, kind=""):
    p = {"vmms": local_vmm_pids(state_dir), "rows": local_rows(state_dir),
         "dirs": local_dirs(state_dir)}
    if kind == "diag":
        p["diag"] = local_diag(state_dir)
    elif kind == "qcheck":
        p["qcheck"] = overlay_checks(state_dir, p["vmms"])
    elif kind == "boots":
        p["boots"] = console_counts(state_dir)
    return p


def probe(diag=False, qcheck=False, boots=False):
    """What the VM sees: {"vmms": {pid: id}, "rows": {id: vmm_pid}, "dirs": [...]} (+ "diag":
    local_diag's text; + "qcheck": overlay_checks'; + "boots": console_counts')."""
    kind = "diag" if diag else "qcheck" if qcheck else "boots" if boots else ""
    if C.ctl is None:
        return local_probe(C.agent.state_dir, kind)
    with C.probe_lock:
        C.probe_n += 1
        n = C.probe_n
    req = os.path.join(C.ctl, "probe-req-%d%s" % (n, "-" + kind if kind else ""))
    ans = os.path.join(C.ctl, "probe-%d.json" % n)
    open(req, "w").close()
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(ans):
            with open(ans) as f:
                p = json.load(f)
            os.unlink(ans)
            p["vmms"] = {int(k): v for k, v in p["vmms"].items()}
            return p
        time.sleep(0.05)
    raise RuntimeError("the test VM did not answer probe %d" % n)


def diag_text():
    try:
        return "the VMMs in the test VM:\n" + probe(diag=True)["diag"]
    except Exception as e:  # diagnostics only
        return "(no diagnostics: %s)" % e


def vmms_of(sid, p=None):
    return [pid for pid, s in (p or probe())["vmms"].items() if s == sid]


# ------------------------------------------------------------------ openstack CLI and curl

def osc(*args, fmt=True, check_rc=True, timeout=600):
    cmd = [OPENSTACK, "--os-cloud", "kova"] + list(args) + (["-f", "json"] if fmt else [])
    t0 = time.time()
    r = subprocess.run(cmd, env=C.env, capture_output=True, text=True, timeout=timeout)
    log("  openstack %s (%.1f s)" % (" ".join(a if len(a) < 40 else a[:37] + "..."
                                              for a in args), time.time() - t0))
    if check_rc and r.returncode != 0:
        raise RuntimeError("openstack %s failed (%d): %s %s" % (" ".join(args), r.returncode,
                                                                r.stdout[-1500:], r.stderr[-1500:]))
    if not fmt:
        return r
    if not r.stdout.strip():
        raise RuntimeError("openstack %s printed nothing (%d): %s" % (" ".join(args), r.returncode,
                                                                     r.stderr[-1500:]))
    try:  # --wait may print "Complete" before the JSON
        return json.loads(r.stdout[r.stdout.index("{"):] if "{" in r.stdout else r.stdout)
    except ValueError:
        raise RuntimeError("openstack %s printed no JSON (%d): %s %s" % (
            " ".join(args), r.returncode, r.stdout[-1500:], r.stderr[-1500:]))


def register_images_cli():
    log("== openstack CLI: flavor and images")
    osc("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "--id", "kvm1",
        "kova.kvm")
    k = osc("image", "create", "--disk-format", "aki", "--container-format", "aki", "--file",
            os.path.join(C.assets, "vmlinuz"), "kova-kernel")
    r = osc("image", "create", "--disk-format", "ari", "--container-format", "ari", "--file",
            os.path.join(C.assets, "guest-initrd.cpio.gz"), "kova-initrd")
    d = osc("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file",
            os.path.join(C.assets, "guest-root.ext4"), "--property", "kernel_id=" + k["id"],
            "--property", "ramdisk_id=" + r["id"], "--property", "os_command_line=" + CMDLINE,
            "kova-disk")
    st, _, img = C.agent.request("GET", "/v2/images/%s" % d["id"], token="admin:admin",
                                 image=True)
    check(st == 200 and img["status"] == "active" and img.get("kernel_id") == k["id"] and
          img.get("ramdisk_id") == r["id"] and img.get("os_command_line") == CMDLINE,
          "image create: kernel, initramfs, disk with kernel_id/ramdisk_id/os_command_line%s"
          % ("" if st == 200 and img["status"] == "active" else ": %r" % img))
    C.kernel, C.ramdisk, C.disk = k["id"], r["id"], d["id"]


def wait_count(sid, text, n, timeout=300):
    """Until `text` is on the console (the whole log) at least n times: the console log keeps
    every boot's lines, so the n-th boot's marker is the n-th occurrence."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = console(sid)
        if out.count(text) >= n:
            return out
        time.sleep(0.5)
    raise RuntimeError("server %s: %r never appeared %d times on its console; tail:\n%s\n%s"
                       % (sid, text, n, console(sid)[-1500:], diag_text()))


READY = "KOVA-GUEST-READY"  # printed once a boot's guest handles the power button
LOGIN = re.compile(r"\n\S+ login: ")  # Debian's serial getty: the cloud image is up
CLOUD_INIT_DONE = re.compile(r"Cloud-init v\. \S+ finished at")  # its final stage is over


def wait_boots(sid, want, timeout=900):
    """Until the server's whole console log (console_counts, from the VM's side) has at least
    the counts in want, e.g. {"logins": 2}; returns the counts."""
    deadline = time.time() + timeout
    have = {}
    while time.time() < deadline:
        have = probe(boots=True)["boots"].get(sid, {})
        if all(have.get(k, 0) >= v for k, v in want.items()):
            return have
        time.sleep(2)
    raise RuntimeError("server %s: wanted %r on its console, have %r; tail:\n%s\n%s"
                       % (sid, want, have, console(sid)[-1500:], diag_text()))


def part_cli():
    log("== openstack CLI: lifecycle")
    t0 = time.time()
    s = osc("server", "create", "--image", "kova-disk", "--flavor", "kova.kvm", "--wait", "cli1")
    check(s["status"] == "ACTIVE", "server create --wait → ACTIVE (%.1f s)" % (time.time() - t0))
    sid = s["id"]
    wait_console(sid, "KOVA-WROTE")  # boot 1: the guest wrote and synced its file
    r = osc("console", "log", "show", "--lines", "5", "cli1", fmt=False)
    check(READY in r.stdout, "console log show --lines 5 shows the marker")
    check(len(r.stdout.rstrip("\n").split("\n")) <= 5, "console log show --lines 5: 5 lines")
    osc("server", "stop", "cli1", fmt=False)
    s = wait_status(sid, "SHUTOFF", timeout=120)
    check(s["OS-EXT-STS:power_state"] == 4, "server stop → SHUTOFF, power_state 4")
    check(vmms_of(sid) == [], "no kova-vmm of the server after stop")
    osc("server", "start", "cli1", fmt=False)
    wait_status(sid, "ACTIVE")
    out = wait_count(sid, READY, 2)  # boot 2
    out = wait_console(sid, "KOVA-FOUND")
    check("KOVA-FOUND persisted-" in out, "server start → ACTIVE; the disk kept the guest's file")
    pid_before = probe()["rows"].get(sid)
    osc("server", "reboot", "--soft", "--wait", "cli1", fmt=False)
    s = server(sid)
    pid_after = probe()["rows"].get(sid)
    check(s["status"] == "ACTIVE" and pid_after and pid_after != pid_before,
          "reboot --soft --wait → ACTIVE (clean powerdown, new VMM)")
    wait_count(sid, READY, 3)  # boot 3 came up
    osc("server", "reboot", "--hard", "--wait", "cli1", fmt=False)
    pid_hard = probe()["rows"].get(sid)
    check(server(sid)["status"] == "ACTIVE" and pid_hard and pid_hard != pid_after,
          "reboot --hard --wait → ACTIVE (new VMM)")
    osc("server", "pause", "cli1", fmt=False)
    s = wait_status(sid, "PAUSED", timeout=60)
    check(s["OS-EXT-STS:power_state"] == 3, "pause → PAUSED, power_state 3")
    osc("server", "unpause", "cli1", fmt=False)
    s = wait_status(sid, "ACTIVE", timeout=60)
    check(s["OS-EXT-STS:power_state"] == 1, "unpause → ACTIVE")
    # boot 4 goes on after the pause and comes up (the rebuild stops it cleanly)
    wait_count(sid, READY, 4)
    osc("server", "rebuild", "--image", "kova-disk", "--wait", "cli1")
    s = server(sid)
    check(s["status"] == "ACTIVE", "rebuild --wait → ACTIVE")
    out = wait_console(sid, "KOVA-WROTE")
    check("KOVA-FOUND" not in out, "rebuild gave a fresh disk (the file is gone)")
    osc("server", "delete", "--wait", "cli1", fmt=False)
    p = probe()
    check(server(sid) is None and sid not in p["dirs"] and vmms_of(sid, p) == [],
          "delete --wait → 404, dir removed, no kova-vmm")


def part_cloud():
    """The test cloud image (Debian 12 genericcloud's twin) as a user uploads and boots it."""
    log("== openstack CLI: a server of the cloud image")
    img = osc("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
              "--file", C.cloud_image, "cloud")
    st, _, im = C.agent.request("GET", "/v2/images/%s" % img["id"], token="admin:admin",
                                image=True)
    check(st == 200 and im.get("status") == "active" and im.get("disk_format") == "qcow2",
          "image create --disk-format qcow2 --file (no properties): active (%s)"
          % (im.get("status") if st == 200 else st))
    # as a user would give it a datasource: a config drive and cloud-config user data (host keys
    # of one type: RSA key generation alone takes over a minute under emulation)
    ud = os.path.join(C.ctl, "cloud1-user-data")
    with open(ud, "w") as f:
        f.write("#cloud-config\nssh_genkeytypes: [ed25519]\n"
                "runcmd:\n  - echo KOVA-CLOUD-USERDATA $(cat /sys/class/dmi/id/product_name)"
                " > /dev/ttyS0\n")
    t0 = time.time()
    s = osc("server", "create", "--image", "cloud", "--flavor", "kova.cloud", "--config-drive",
            "true", "--user-data", ud, "--wait", "cloud1")
    sid = s["id"]
    check(s["status"] == "ACTIVE", "server create --config-drive true --user-data --wait → "
          "ACTIVE (%.0f s)" % (time.time() - t0))
    wait_boots(sid, {"logins": 1})
    out = console(sid)
    check("Booting from Hard Disk" in out and "Loading Linux" in out,
          "the console shows SeaBIOS and GRUB, then Debian's login: (%.0f s after create)"
          % (time.time() - t0))
    r = osc("console", "log", "show", "cloud1", fmt=False)
    check(LOGIN.search(r.stdout) is not None, "console log show shows the login prompt")
    # as a user would: stop it once its first boot is complete (cloud-init's final stage keeps
    # running after the getty, generating host keys; a power button then waits for it)
    wait_boots(sid, {"cloud_init_done": 1})
    out = console(sid)
    check("KOVA-CLOUD-USERDATA OpenStack Nova" in out,
          "cloud-init ran the user data from the config drive, and sees SMBIOS product "
          "OpenStack Nova (%.0f s after create)" % (time.time() - t0))
    osc("server", "stop", "cloud1", fmt=False)
    wait_status(sid, "SHUTOFF", timeout=300)
    b = wait_boots(sid, {"power_down": 1}, timeout=10)
    check(b["power_down"] == 1, "server stop → SHUTOFF: Debian powered itself off on the ACPI "
          "power button")
    q = probe(qcheck=True).get("qcheck", {}).get(sid)
    check(q is not None and q[0] == 0, "qemu-img check of the overlay after a boot and a clean "
          "stop is clean (%s)" % (q,))
    osc("server", "start", "cloud1", fmt=False)
    wait_status(sid, "ACTIVE")
    b = wait_boots(sid, {"logins": 2})
    check(b["firmware"] == 2, "server start: through firmware to login: (%r)" % b)
    if os.environ.get("KOVA_CLOUD_OPS") == "1":  # lifecycle.cloud_full
        b = cloud_soft_reboot_and_rebuild(sid)
    fw = b["firmware"]
    osc("server", "reboot", "--hard", "--wait", "cloud1", fmt=False)
    b = wait_boots(sid, {"firmware": fw + 1}, timeout=300)
    check(server(sid)["status"] == "ACTIVE" and b["firmware"] == fw + 1,
          "reboot --hard --wait → ACTIVE, through SeaBIOS again (%r)" % b)
    osc("server", "delete", "--wait", "cloud1", fmt=False)
    check(server(sid) is None, "delete --wait → 404")


def cloud_soft_reboot_and_rebuild(sid):
    """lifecycle.cloud_full, after boot 2 of part_cloud's server: reboot --soft, rebuild."""
    # soft reboot: the guest powers itself off on the ACPI power button, a new VMM boots it
    b = wait_boots(sid, {"cloud_init_done": 2})  # boot 2's cloud-init is over, as for stop
    pid_before = probe()["rows"].get(sid)
    osc("server", "reboot", "--soft", "--wait", "cloud1", fmt=False)
    pid_after = probe()["rows"].get(sid)
    b = wait_boots(sid, {"logins": 3})
    check(server(sid)["status"] == "ACTIVE" and b["power_down"] == 2 and b["firmware"] == 3 and
          pid_after and pid_after != pid_before,
          "reboot --soft --wait → ACTIVE: Debian powered off on the power button, a new VMM "
          "booted it through SeaBIOS to login: (%r)" % b)
    # rebuild (once boot 3 is complete, as the rebuild stops the guest on the power button):
    # a fresh overlay of the image (three boots wrote to the old one), booted through firmware
    b = wait_boots(sid, {"cloud_init_done": 3})
    used = b["disk_bytes"]
    osc("server", "rebuild", "--image", "cloud", "--wait", "cloud1")
    b = wait_boots(sid, {"firmware": 1}, timeout=300)  # the rebuilt instance's console log
    check(server(sid)["status"] == "ACTIVE" and 0 < b["disk_bytes"] < min(used // 2, 4 << 20),
          "rebuild --wait → ACTIVE on a fresh overlay (%d bytes; the old one %d), through "
          "SeaBIOS again (%r)" % (b["disk_bytes"], used, b))
    return b


def part_curl():
    log("== curl: tests/lifecycle/curl-lifecycle.sh")
    env = dict(os.environ, KOVA_URL="http://127.0.0.1:%d/v2.1" % C.agent.port,
               KOVA_IMAGE=C.disk, KOVA_FLAVOR="kvm1")
    t0 = time.time()
    r = subprocess.run(["sh", C.curl_script], env=env, capture_output=True, text=True,
                       timeout=900)
    with _log_lock:
        print("---- curl-lifecycle.sh\n" + r.stdout[-4000:] + r.stderr[-2000:], flush=True)
    check(r.returncode == 0, "curl-lifecycle.sh (exit %d, %.0f s)" % (r.returncode,
                                                                      time.time() - t0))


# ------------------------------------------------------------------ parts run in the VM

def register_images_rest():
    def image(name, path, fmt, **props):
        body = {"name": name, "disk_format": fmt, "container_format": "bare"}
        body.update(props)
        st, _, img = C.agent.request("POST", "/v2/images", body, token="admin:admin", image=True)
        with open(path, "rb") as f:
            C.agent.request("PUT", "/v2/images/%s/file" % img["id"], token="admin:admin",
                            image=True, raw=f.read(),
                            headers={"Content-Type": "application/octet-stream"})
        return img["id"]
    api("POST", "/v2.1/flavors", {"flavor": {"name": "kova.kvm", "id": "kvm1", "ram": 256,
                                             "vcpus": 1, "disk": 1}})
    C.kernel = image("kova-kernel", os.path.join(C.assets, "vmlinuz"), "aki")
    C.ramdisk = image("kova-initrd", os.path.join(C.assets, "guest-initrd.cpio.gz"), "ari")
    C.disk = image("kova-disk", os.path.join(C.assets, "guest-root.ext4"), "raw",
                   kernel_id=C.kernel, ramdisk_id=C.ramdisk, os_command_line=CMDLINE)


def iso_to_epoch(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def part_power_failure():
    log("== kill -9 of a VMM")
    st, _, b = api("POST", "/v2.1/servers", {"server": {"name": "pf", "imageRef": C.disk,
                                                        "flavorRef": "kvm1"}})
    sid = b["server"]["id"]
    wait_status(sid, "ACTIVE")
    wait_console(sid, "KOVA-WROTE")  # written and synced by the guest
    pid = local_rows(C.agent.state_dir)[sid]
    # The agent logs the wall-clock time at which it recorded SHUTOFF (its pidfd saw the exit);
    # the kill's time is taken just before the kill on the same machine's clock.
    pat = re.compile(r"server %s: kova-vmm %d exited: SHUTOFF recorded at (\S+)Z" % (sid, pid))
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    m = None
    deadline = time.time() + 20
    while time.time() < deadline and not m:
        m = pat.search(C.agent.read_log())
        if not m:
            time.sleep(0.05)
    dt = iso_to_epoch(m.group(1)) - t_kill if m else None
    check(m is not None and dt < 1.0,
          "kill -9 → the agent recorded SHUTOFF within a second of the kill (%s)"
          % ("%.3f s" % dt if m else "no record in its log"))
    s = wait_status(sid, "SHUTOFF", timeout=10)
    check(s["OS-EXT-STS:power_state"] == 4, "the API shows SHUTOFF, power_state 4")
    api("POST", "/v2.1/servers/%s/action" % sid, {"os-start": None})
    wait_status(sid, "ACTIVE")
    out = wait_console(sid, "KOVA-FOUND")
    check("KOVA-FOUND persisted-" in out, "start after the power failure; the synced file is there")
    api("DELETE", "/v2.1/servers/%s" % sid)
    check(gone(sid), "deleted")


def part_firmware():
    """A cloud image (a qcow2 disk with GRUB inside, no properties) boots through firmware."""
    log("== a server of a cloud image (firmware boot: SeaBIOS, GRUB)")
    path = C.cloud_image
    st, _, img = C.agent.request("POST", "/v2/images", {"name": "kova-cloud", "disk_format":
                                                        "qcow2", "container_format": "bare"},
                                 token="admin:admin", image=True)
    with open(path, "rb") as f:
        C.agent.request("PUT", "/v2/images/%s/file" % img["id"], token="admin:admin", image=True,
                        raw=f.read(), headers={"Content-Type": "application/octet-stream"})
    st, _, b = api("POST", "/v2.1/servers", {"server": {"name": "fw", "imageRef": img["id"],
                                                        "flavorRef": "kvm1"}})
    sid = b["server"]["id"]
    wait_status(sid, "ACTIVE")
    out = wait_console(sid, READY)
    check("Booting from Hard Disk" in out and "kova-grub: loading the kernel" in out,
          "the console shows SeaBIOS and GRUB before the kernel")
    out = wait_console(sid, "ACPI-TABLES=")
    check("DMI-PRODUCT=OpenStack Nova" in out, "the guest reads product OpenStack Nova (SMBIOS)")
    check("DMI-UUID=%s" % sid in out and "DMI-SERIAL=%s" % sid in out,
          "the guest's SMBIOS UUID and serial are the server's id")
    api("POST", "/v2.1/servers/%s/action" % sid, {"os-stop": None})
    wait_status(sid, "SHUTOFF")
    out = console(sid)
    check("reboot: Power down" in out.split("ACPI-TABLES=")[-1],
          "stop: the guest powered itself off on its ACPI power button" +
          ("" if "Power down" in out else "; console tail:\n" + out[-1500:]))
    api("POST", "/v2.1/servers/%s/action" % sid, {"os-start": None})
    wait_status(sid, "ACTIVE")
    wait_count(sid, READY, 2)
    check(True, "start: booted again through firmware")
    api("POST", "/v2.1/servers/%s/action" % sid, {"reboot": {"type": "HARD"}})
    wait_count(sid, READY, 3)
    wait_status(sid, "ACTIVE")
    check(console(sid).count("Booting from Hard Disk") >= 3, "hard reboot: through firmware again")
    api("POST", "/v2.1/servers/%s/action" % sid, {"os-stop": None})
    wait_status(sid, "SHUTOFF")
    overlay = os.path.join(C.agent.state_dir, "instances", sid, "disk")
    r = subprocess.run(["qemu-img", "check", overlay], capture_output=True, text=True)
    check(r.returncode == 0, "qemu-img check of the overlay is clean (%s)"
          % (r.stdout + r.stderr).strip().splitlines()[-1:])
    api("DELETE", "/v2.1/servers/%s" % sid)
    check(gone(sid), "deleted")


def part_agent_kill():
    log("== agent SIGKILLed during a burst of creates and deletes")
    sd = C.agent.state_dir

    def db_row(sid):
        c = sqlite3.connect(os.path.join(sd, "state.db"), timeout=10)
        r = c.execute("SELECT vmm_pid, vmm_start FROM servers WHERE id = ?", (sid,)).fetchone()
        c.close()
        return r
    ids = []
    for i in range(4):
        st, _, b = api("POST", "/v2.1/servers", {"server": {"name": "burst%d" % i,
                                                            "imageRef": C.disk,
                                                            "flavorRef": "kvm1"}})
        ids.append(b["server"]["id"])
    wait_status(ids[0], "ACTIVE")
    api("DELETE", "/v2.1/servers/%s" % ids[0])
    api("DELETE", "/v2.1/servers/%s" % ids[3])
    for i in range(2):
        st, _, b = api("POST", "/v2.1/servers", {"server": {"name": "late%d" % i,
                                                            "imageRef": C.disk,
                                                            "flavorRef": "kvm1"}})
        ids.append(b["server"]["id"])
    time.sleep(0.3)
    before = {sid: (server(sid) or {}).get("status") for sid in ids}
    rows_before = {sid: db_row(sid) for sid in ids}
    C.agent.proc.send_signal(signal.SIGKILL)
    C.agent.proc.wait()
    C.agent.log.close()
    C.agent.proc = None
    log("killed the agent; states then: %r" % before)
    running = local_vmm_pids(sd)
    check(len(running) > 0, "VMMs kept running without the agent (%d)" % len(running))
    C.agent.start()
    for sid in ids:
        deadline = time.time() + 300
        while time.time() < deadline:
            s = server(sid)
            if s is None or (s["OS-EXT-STS:task_state"] is None and s["status"] != "BUILD"):
                break
            time.sleep(0.2)
        if s is None:
            check(True, "%s: deleted" % sid)
            continue
        row = db_row(sid)
        ok = (s["status"] == "ACTIVE" and row and row[0] and proc_start(row[0]) == row[1])
        adopted = ok and rows_before[sid] and rows_before[sid][0] == row[0]
        check(ok, "%s: %s (was %s)%s" % (sid, s["status"], before[sid],
                                         ", adopted" if adopted else ""))
    for sid in (ids[0], ids[3]):
        check(gone(sid), "%s: its delete finished after the restart" % sid)
    rows = local_rows(sd)
    pids = local_vmm_pids(sd)
    check(sorted(pids) == sorted(p for p in rows.values() if p),
          "no orphan kova-vmm: %r vs rows %r" % (pids, rows))
    dirs = local_dirs(sd)
    check(dirs == sorted(rows), "no stray instance dir (nor .partial): %r" % dirs)
    for sid in rows:
        api("DELETE", "/v2.1/servers/%s" % sid)
    for sid in rows:
        gone(sid)
    check(local_vmm_pids(sd) == {} and local_dirs(sd) == [], "all deleted: no kova-vmm, no dir")


def loopback_up():
    """The nested test VM brings lo up; older ones did not."""
    try:
        with open("/sys/class/net/lo/flags") as f:
            if int(f.read(), 16) & 1:
                return
    except OSError:
        return
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)


def finish_agent(agent):
    """Kills any VMM left (a failure), stops the agent; returns its log."""
    left = local_vmm_pids(agent.state_dir)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    rc, agent_log = agent.stop()
    check(rc == 0, "the agent stopped cleanly (exit %r)" % (rc,))
    probs = sanitizer_problems(agent_log)
    check(not probs, "agent log without sanitizer reports %r" % probs)
    return left, agent_log


def vm_main(opt):
    """lifecycle.kvm: in the test VM (or where /dev/kvm works)."""
    loopback_up()
    if not os.path.exists("/dev/kvm"):
        print("FAIL: no /dev/kvm (run through tests/nested/kova-nested-run)")
        return 1
    C.ctl = None
    C.agent = Agent(opt["--agent"], extra_args=["--vmm", opt["--vmm"],
                                                "--shutdown-timeout", "60"])
    C.agent.start()
    try:
        register_images_rest()
        for part in (opt.get("--parts") or "power,agentkill").split(","):
            try:
                {"power": part_power_failure, "agentkill": part_agent_kill,
                 "firmware": part_firmware}[part]()
            except Exception as e:  # one part's failure does not hide the others'
                check(False, "%s: %s" % (part, e))
    finally:
        left, agent_log = finish_agent(C.agent)
        check(not left, "no kova-vmm left at the end (%r)" % left)
        if failures:
            print("---- agent log (tail)\n" + agent_log[-6000:])
        C.agent.cleanup()
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


def serve_main(opt):
    """In the test VM for lifecycle.kvm_cli: the agent on the forwarded ports until CTL/stop."""
    loopback_up()
    ctl = opt["--serve"]
    addr = os.environ.get("KOVA_NESTED_ADDR", "127.0.0.1")
    agent = AgentAt(opt["--agent"], addr, int(opt["--port"]), int(opt["--image-port"]),
                    extra_args=["--vmm", opt["--vmm"], "--shutdown-timeout", "60"])
    try:
        agent.start()
    except Exception as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    sd = agent.state_dir
    with open(os.path.join(ctl, "ready.tmp"), "w") as f:
        json.dump({"state_dir": sd, "addr": addr}, f)
    os.rename(os.path.join(ctl, "ready.tmp"), os.path.join(ctl, "ready"))
    log("serve: agent on %s:%s, state in %s" % (addr, opt["--port"], sd))
    try:
        while not os.path.exists(os.path.join(ctl, "stop")):
            for name in os.listdir(ctl):
                if not name.startswith("probe-req-"):
                    continue
                n, kind = name[len("probe-req-"):], ""
                for suffix in ("-diag", "-qcheck", "-boots"):
                    if n.endswith(suffix):
                        n, kind = n[:-len(suffix)], suffix[1:]
                tmp = os.path.join(ctl, "probe-%s.tmp" % n)
                with open(tmp, "w") as f:
                    json.dump(local_probe(sd, kind), f)
                os.rename(tmp, os.path.join(ctl, "probe-%s.json" % n))
                os.unlink(os.path.join(ctl, name))
            if agent.proc.poll() is not None:
                check(False, "the agent died (exit %r)" % agent.proc.returncode)
                break
            time.sleep(0.1)
        p = local_probe(sd)
        if not check(p["rows"] == {} and p["dirs"] == [] and p["vmms"] == {},
                     "at the end: no server, no instance dir, no kova-vmm (%r)" % p):
            print(local_diag(sd), flush=True)
    finally:
        left, agent_log = finish_agent(agent)
        with open(os.path.join(ctl, "agent.log"), "w") as f:
            f.write(agent_log)
        agent.cleanup()
    print("serve: %d failure(s)" % len(failures))
    return 1 if failures else 0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


def host_main(opt):
    """lifecycle.kvm_cli: here, driving the agent in the test VM through forwarded ports."""
    t_start = time.time()
    C.assets, C.curl_script = opt["--assets"], opt["--curl-script"]
    C.ctl = tempfile.mkdtemp(prefix="lifecycle-ctl.", dir=C.assets)  # shared with the VM
    C.probe_lock, C.probe_n = threading.Lock(), 0
    tmp = tempfile.mkdtemp(prefix="kova-lifecycle-cli-")
    out_path = os.path.join(C.ctl, "nested.out")
    out = open(out_path, "wb")
    runner, rc = None, None
    try:
        # QEMU binds the forwarded ports itself: another process may take a port between
        # free_port() and then (QEMU fails, the runner says 125): new ports, up to 3 tries.
        for attempt in range(3):
            port, image_port = free_port(), free_port()
            while image_port == port:
                image_port = free_port()
            cmd = [opt["--runner"], "--timeout", opt.get("--timeout", "900"),
                   "--mem", opt.get("--mem", "3072"), "--cpus", opt.get("--cpus", "1"),
                   "--forward", "%d:%d" % (port, port),
                   "--forward", "%d:%d" % (image_port, image_port),
                   "--", "/usr/bin/python3", os.path.abspath(__file__), "--serve", C.ctl,
                   "--agent", opt["--agent"], "--vmm", opt["--vmm"],
                   "--port", str(port), "--image-port", str(image_port)]
            # its own process group: a kill at the end must reach the QEMU under it too
            runner = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            deadline = time.time() + 300
            while time.time() < deadline and runner.poll() is None:
                if os.path.exists(os.path.join(C.ctl, "ready")) and http_ok(port):
                    break
                time.sleep(0.5)
            if runner.poll() != 125 or os.path.exists(os.path.join(C.ctl, "ready")):
                break
            log("the test VM did not start (status 125): again with other ports")
        C.agent = Remote(port, image_port)
        C.env = openstack_env(tmp, port, image_port)
        if runner.poll() is not None or not http_ok(port):
            raise RuntimeError("the agent in the test VM never answered on 127.0.0.1:%d" % port)
        log("the agent in the test VM answers on 127.0.0.1:%d (%.0f s)" % (port,
                                                                          time.time() - t_start))
        parts = (opt.get("--parts") or "cli,curl").split(",")
        if "cli" in parts:
            register_images_cli()
        else:
            register_images_rest()
        threads = []

        def run(name, fn):
            try:
                fn()
            except Exception as e:  # one part's failure does not hide the others'
                check(False, "%s: %s" % (name, e))
        if "cloud" in parts:
            C.cloud_image = opt["--cloud-image"]
            osc("flavor", "create", "--ram", "512", "--disk", "3", "--vcpus", "2", "--id",
                "kvmc", "kova.cloud")
        for name, fn in (("curl", part_curl), ("cli", part_cli), ("cloud", part_cloud)):
            if name in parts:
                t = threading.Thread(target=run, args=(name, fn))
                t.start()
                threads.append(t)
        for t in threads:
            t.join()
    except Exception as e:
        check(False, str(e))
    finally:
        open(os.path.join(C.ctl, "stop"), "w").close()
        try:
            rc = runner.wait(timeout=180) if runner else None
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)  # the runner and its watch
            # its QEMU runs under timeout(1), in a process group of its own: found by the
            # forwarded port, which is this run's alone
            subprocess.run(["pkill", "-KILL", "-f", "hostfwd=tcp:127.0.0.1:%d-" % port])
            rc = runner.wait()
        out.close()
        with open(out_path, errors="replace") as f:
            nested_out = f.read()
        print("---- the test VM's side\n" + nested_out[-6000:], flush=True)
        check(rc == 0, "the test VM's side passed (exit %r)" % rc)
        try:
            with open(os.path.join(C.ctl, "agent.log"), errors="replace") as f:
                agent_log = f.read()
        except OSError:
            agent_log = None
        # every stop, soft reboot and rebuild of both servers stopped its guest by the power
        # button (the agent logs the ones it had to destroy)
        check(agent_log is not None and "no clean shutdown" not in agent_log,
              "every clean stop was clean (the agent destroyed no guest)")
        if failures:
            print("---- agent log (tail)\n" + (agent_log or "(none)")[-8000:])
        if os.environ.get("KOVA_NESTED_KEEP") != "1":
            shutil.rmtree(C.ctl, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s), %.0f s" % (len(failures), time.time() - t_start))
    return 1 if failures else 0


def main():
    a = sys.argv[1:]
    host = "--host-driver" in a
    if host:
        a.remove("--host-driver")
    opt = {a[i]: a[i + 1] for i in range(0, len(a) - 1, 2)}
    if host:
        return host_main(opt)
    if "--serve" in opt:
        return serve_main(opt)
    C.assets = opt["--assets"]
    C.cloud_image = opt.get("--cloud-image")
    return vm_main(opt)


if __name__ == "__main__":
    sys.exit(main())
