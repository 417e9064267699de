# SPDX-License-Identifier: Apache-2.0
"""lifecycle.kvm: real guests through kova-agent + kova-vmm on KVM (run inside the nested-KVM
test VM by kova-nested-run; directly where /dev/kvm exists).

One agent, one run, in this order:
  1. Debian's openstack CLI (clouds.yaml, token auth as tests/api): images registered (kernel,
     initramfs, root disk with kernel_id/ramdisk_id/os_command_line), server create --wait →
     ACTIVE, console log show --lines 5 shows the marker, stop → SHUTOFF, start → ACTIVE, reboot
     --soft --wait, reboot --hard --wait, pause/unpause, rebuild --wait, delete --wait.
  2. The same lifecycle with curl alone: tests/lifecycle/curl-lifecycle.sh (the README's).
  3. kill -9 of a VMM → SHUTOFF within a second; start; the file the guest wrote and synced
     before the kill is on its disk (the guest's script finds it at the next boot).
  4. The agent SIGKILLed during a burst of creates and deletes, restarted: every server ends
     ACTIVE with its VMM adopted or started (PID + start time checked) or is gone; no kova-vmm
     without a server, no instance dir without one.

usage: python3 test_lifecycle_kvm.py --agent A --vmm V --assets DIR --curl-script S
                                    [--parts cli,curl,power,agentkill]
Exit 77 (skipped) when kova-vmm has no --disk. Without "cli" in the parts the images are
registered through the REST API instead.
"""
import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
from kova_agent_fixture import Agent, sanitizer_problems  # noqa: E402

OPENSTACK = "/usr/bin/openstack"
# First boot: write and sync a file on the root disk; later boots: report it.
SCRIPT = ("if [ -f /kova-data ]; then echo \"KOVA-FOUND $(cat /kova-data)\"; "
          "else echo persisted-$(cat /proc/sys/kernel/random/uuid) > /kova-data; sync; "
          "echo \"KOVA-WROTE $(cat /kova-data)\"; fi\n")
CMDLINE = ("console=ttyS0 quiet kova.root=/dev/vda kova.stay=1 kova.script=" +
           base64.b64encode(SCRIPT.encode()).decode())

failures = []


def log(msg):
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


def osc(*args, fmt=True, check_rc=True, timeout=600):
    cmd = [OPENSTACK, "--os-cloud", "kova"] + list(args) + (["-f", "json"] if fmt else [])
    r = subprocess.run(cmd, env=C.env, capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError("openstack %s failed (%d): %s %s" % (" ".join(args), r.returncode,
                                                                r.stdout[-1500:], r.stderr[-1500:]))
    if not fmt:
        return r
    return json.loads(r.stdout) if r.stdout.strip() else None


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


def wait_console(sid, text, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = console(sid)
        if text in out:
            return out
        time.sleep(0.5)
    raise RuntimeError("server %s: %r never appeared on its console; tail:\n%s"
                       % (sid, text, console(sid)[-1500:]))


def db_row(sid):
    c = sqlite3.connect(os.path.join(C.agent.state_dir, "state.db"), timeout=10)
    r = c.execute("SELECT vmm_pid, vmm_start FROM servers WHERE id = ?", (sid,)).fetchone()
    c.close()
    return r


def proc_start(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rindex(")") + 2:].split()[19])


def vmm_pids():
    inst = os.path.realpath(os.path.join(C.agent.state_dir, "instances"))
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


def gone(sid, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, _ = api("GET", "/v2.1/servers/%s" % sid)
        if st == 404:
            return True
        time.sleep(0.2)
    return False


def part_cli():
    log("== openstack CLI")
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
    C.kernel, C.ramdisk, C.disk = k["id"], r["id"], d["id"]
    t0 = time.time()
    s = osc("server", "create", "--image", "kova-disk", "--flavor", "kova.kvm", "--wait", "cli1")
    check(s["status"] == "ACTIVE", "server create --wait → ACTIVE (%.1f s)" % (time.time() - t0))
    sid = s["id"]
    wait_console(sid, "KOVA-WROTE")
    deadline = time.time() + 120
    while True:
        r = osc("console", "log", "show", "--lines", "5", "cli1", fmt=False)
        if "KOVA-GUEST-READY" in r.stdout or time.time() > deadline:
            break
        time.sleep(1)
    check("KOVA-GUEST-READY" in r.stdout, "console log show --lines 5 shows the marker")
    check(len(r.stdout.rstrip("\n").split("\n")) <= 5, "console log show --lines 5: 5 lines")
    osc("server", "stop", "cli1", fmt=False)
    s = wait_status(sid, "SHUTOFF", timeout=120)
    check(s["OS-EXT-STS:power_state"] == 4, "server stop → SHUTOFF, power_state 4")
    check(vmm_pids() == {}, "no kova-vmm after stop")
    osc("server", "start", "cli1", fmt=False)
    wait_status(sid, "ACTIVE")
    out = wait_console(sid, "KOVA-FOUND")
    check("KOVA-FOUND persisted-" in out, "server start → ACTIVE; the disk kept the guest's file")
    pid_before = db_row(sid)[0]
    osc("server", "reboot", "--soft", "--wait", "cli1", fmt=False)
    s = server(sid)
    check(s["status"] == "ACTIVE" and db_row(sid)[0] != pid_before,
          "reboot --soft --wait → ACTIVE (clean powerdown, new VMM)")
    wait_console(sid, "KOVA-GUEST-RC=0")
    osc("server", "reboot", "--hard", "--wait", "cli1", fmt=False)
    check(server(sid)["status"] == "ACTIVE", "reboot --hard --wait → ACTIVE")
    osc("server", "pause", "cli1", fmt=False)
    s = wait_status(sid, "PAUSED", timeout=60)
    check(s["OS-EXT-STS:power_state"] == 3, "pause → PAUSED, power_state 3")
    osc("server", "unpause", "cli1", fmt=False)
    s = wait_status(sid, "ACTIVE", timeout=60)
    check(s["OS-EXT-STS:power_state"] == 1, "unpause → ACTIVE")
    osc("server", "rebuild", "--image", "kova-disk", "--wait", "cli1")
    s = server(sid)
    check(s["status"] == "ACTIVE", "rebuild --wait → ACTIVE")
    out = wait_console(sid, "KOVA-WROTE")
    check("KOVA-FOUND" not in out, "rebuild gave a fresh disk (the file is gone)")
    inst_dir = os.path.join(C.agent.state_dir, "instances", sid)
    osc("server", "delete", "--wait", "cli1", fmt=False)
    check(server(sid) is None and not os.path.exists(inst_dir) and vmm_pids() == {},
          "delete --wait → 404, dir removed, no kova-vmm")


def register_images_rest():
    """Only when the CLI part is not run (KOVA_LIFECYCLE_PARTS): the same images via REST."""
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


def part_curl():
    log("== curl")
    env = dict(os.environ, KOVA_URL="http://127.0.0.1:%d/v2.1" % C.agent.port,
               KOVA_IMAGE=C.disk, KOVA_FLAVOR="kvm1")
    r = subprocess.run(["sh", C.curl_script], env=env, capture_output=True, text=True,
                       timeout=900)
    print(r.stdout[-4000:], r.stderr[-2000:], flush=True)
    check(r.returncode == 0, "curl-lifecycle.sh (exit %d)" % r.returncode)


def part_power_failure():
    log("== kill -9 of a VMM")
    st, _, b = api("POST", "/v2.1/servers", {"server": {"name": "pf", "imageRef": C.disk,
                                                        "flavorRef": "kvm1"}})
    sid = b["server"]["id"]
    wait_status(sid, "ACTIVE")
    wait_console(sid, "KOVA-WROTE")  # written and synced by the guest
    pid = db_row(sid)[0]
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    while time.time() - t0 < 5:
        s = server(sid)
        if s["status"] == "SHUTOFF":
            break
        time.sleep(0.01)
    dt = time.time() - t0
    check(s["status"] == "SHUTOFF" and s["OS-EXT-STS:power_state"] == 4 and dt < 1.0,
          "kill -9 → SHUTOFF within a second (%.3f s)" % dt)
    api("POST", "/v2.1/servers/%s/action" % sid, {"os-start": None})
    wait_status(sid, "ACTIVE")
    out = wait_console(sid, "KOVA-FOUND")
    check("KOVA-FOUND persisted-" in out, "start after the power failure; the synced file is there")
    api("DELETE", "/v2.1/servers/%s" % sid)
    check(gone(sid), "deleted")


def part_agent_kill():
    log("== agent SIGKILLed during a burst of creates and deletes")
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
    running = vmm_pids()
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
    c = sqlite3.connect(os.path.join(C.agent.state_dir, "state.db"), timeout=10)
    rows = dict(c.execute("SELECT id, vmm_pid FROM servers").fetchall())
    c.close()
    pids = vmm_pids()
    check(sorted(pids) == sorted(p for p in rows.values() if p),
          "no orphan kova-vmm: %r vs rows %r" % (pids, rows))
    inst = os.path.join(C.agent.state_dir, "instances")
    dirs = sorted(d for d in os.listdir(inst) if len(d) == 36)
    check(dirs == sorted(rows), "no stray instance dir: %r" % dirs)
    check(not [d for d in os.listdir(inst) if d.startswith(".partial-")], "no .partial dir")
    for sid in rows:
        api("DELETE", "/v2.1/servers/%s" % sid)
    for sid in rows:
        gone(sid)
    check(vmm_pids() == {} and not [d for d in os.listdir(inst) if len(d) == 36],
          "all deleted: no kova-vmm, no dir")


def loopback_up():
    """The nested test VM starts with lo down; the agent listens on 127.0.0.1."""
    try:
        with open("/sys/class/net/lo/flags") as f:
            if int(f.read(), 16) & 1:
                return
    except OSError:
        return
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)


def main():
    loopback_up()
    a = sys.argv[1:]
    opt = {a[i]: a[i + 1] for i in range(0, len(a) - 1, 2)}
    agent_bin, vmm, C.assets, C.curl_script = (opt["--agent"], opt["--vmm"], opt["--assets"],
                                               opt["--curl-script"])
    help_text = subprocess.run([vmm, "--help"], capture_output=True, text=True).stdout
    if "--disk" not in help_text:
        print("SKIP: kova-vmm has no --disk option yet (virtio-blk not landed); the lifecycle "
              "boots instances from their disk")
        return 77
    if not os.path.exists("/dev/kvm"):
        print("FAIL: no /dev/kvm (run through tests/nested/kova-nested-run)")
        return 1
    C.agent = Agent(agent_bin, extra_args=["--vmm", vmm, "--shutdown-timeout", "60"])
    C.agent.start()
    clouds = os.path.join(C.agent.tmp, "clouds.yaml")
    with open(clouds, "w") as f:
        f.write("""clouds:
  kova:
    auth_type: admin_token
    auth:
      endpoint: http://127.0.0.1:%(p)d/v2.1
      token: "admin:admin"
    compute_endpoint_override: http://127.0.0.1:%(p)d/v2.1
    image_endpoint_override: http://127.0.0.1:%(ip)d/
""" % {"p": C.agent.port, "ip": C.agent.image_port})
    C.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    C.env.update(OS_CLIENT_CONFIG_FILE=clouds, HOME=C.agent.tmp)
    C.env.pop("PYTHONPATH", None)
    try:
        parts = (opt.get("--parts") or os.environ.get("KOVA_LIFECYCLE_PARTS") or
                 "cli,curl,power,agentkill").split(",")
        if "cli" not in parts:
            register_images_rest()
        for part in parts:
            try:
                {"cli": part_cli, "curl": part_curl, "power": part_power_failure,
                 "agentkill": part_agent_kill}[part]()
            except Exception as e:  # one part's failure does not hide the others'
                check(False, "%s: %s" % (part, e))
                if part == "cli":
                    break  # the images are registered there
    finally:
        for pid in vmm_pids():
            os.kill(pid, signal.SIGKILL)
        rc, agent_log = C.agent.stop()
        probs = sanitizer_problems(agent_log)
        check(not probs, "agent log without sanitizer reports %r" % probs)
        if failures:
            print("---- agent log (tail)\n" + agent_log[-6000:])
        C.agent.cleanup()
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
