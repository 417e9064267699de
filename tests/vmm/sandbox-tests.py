#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""vmm.sandbox: kova-vmm's sandbox (vmm/src/sandbox.h), by hand and as the agent starts it.

Needs a /dev/kvm that can create a VM (this machine's PVM one will do: no guest has to boot, the
sandbox is set up before the first instruction and the guest's progress does not matter here).
Checks, from /proc/PID/status and the control socket: every thread of a VMM started as root runs
as "nobody" (uid, gid, no supplementary groups, no capabilities), with NoNewPrivs 1 and Seccomp 2
(the main thread one filter, vCPU and I/O threads two: the control list and their own); the
control socket's "sandbox-test" (a forbidden system call) kills the VMM with SIGSYS; --no-sandbox
runs unconfined and sandbox-test then fails politely; --sandbox-user refuses root and unknown
users. Through kova-agent: the VMM of a server runs sandboxed as the configured user, owns its
instance dir, and a forbidden call (sandbox-test) leaves the server SHUTOFF; with vmm_uid_range
each instance's VMM has a uid of its own (uid_per_instance).
Usage: sandbox-tests.py KOVA_VMM KOVA_AGENT ASSETS
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
from kova_agent_fixture import Agent, stop_checked  # noqa: E402

VMM, AGENT, ASSETS = sys.argv[1:4]
failures = []


def check(ok, what):
    print("%s: %s" % ("ok" if ok else "FAIL", what), flush=True)
    if not ok:
        failures.append(what)


def ctl(sock, cmd, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            d = s.recv(65536)
            if not d:
                break
            data += d
        return json.loads(data) if data.strip() else None
    finally:
        s.close()


def wait_sock(sock, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if ctl(sock, "status", timeout=2):
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def status_of(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def threads(pid):
    """[(tid, comm, status dict)] of the process's threads (kernel threads KVM adds left out)."""
    out = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
        base = "/proc/%d/task/%s" % (pid, tid)
        with open(base + "/comm") as f:
            comm = f.read().strip()
        if comm.startswith("kvm-"):
            continue
        out.append((int(tid), comm, status_of(base + "/status")))
    return out


def settled_threads(pid, timeout=10):
    """The threads once each has loaded its own filter: a thread just created runs a few
    instructions under the inherited (control) filter only, before its first own step, which is
    loading its filter (nothing of the guest's runs before that)."""
    end = time.monotonic() + timeout
    while True:
        ts = threads(pid)
        if all(st["Seccomp_filters"] == ("1" if tid == pid else "2") for tid, _, st in ts) or \
                time.monotonic() > end:
            return ts
        time.sleep(0.05)


def check_sandboxed(pid, uid, gid, what):
    ts = settled_threads(pid)
    check(len(ts) >= 3, "%s: main, vCPU and I/O threads (%d)" % (what, len(ts)))
    for tid, comm, st in ts:
        ids = st["Uid"].split() + st["Gid"].split()
        good = (ids == [str(uid)] * 4 + [str(gid)] * 4 and st.get("Groups", "") == "" and
                st["NoNewPrivs"] == "1" and st["Seccomp"] == "2" and
                int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0)
        want = "1" if tid == pid else "2"
        check(good and st["Seccomp_filters"] == want,
              "%s: thread %d (%s): uid %s gid %s groups '%s' NoNewPrivs %s Seccomp %s filters "
              "%s (want %s) CapEff %s" % (what, tid, comm, st["Uid"], st["Gid"],
                                          st.get("Groups", ""), st["NoNewPrivs"], st["Seccomp"],
                                          st["Seccomp_filters"], want, st["CapEff"]))


def start_vmm(tmp, name, extra=()):
    inst = os.path.join(tmp, name)
    os.mkdir(inst)
    shutil.copy(os.path.join(ASSETS, "guest-root.ext4"), os.path.join(inst, "disk"))
    nobody = pwd.getpwnam("nobody")
    os.chown(inst, nobody.pw_uid, nobody.pw_gid)
    sock = os.path.join(inst, "vmm.sock")
    log = open(os.path.join(inst, "vmm.log"), "w")
    p = subprocess.Popen([VMM, "--kernel", os.path.join(ASSETS, "vmlinuz"),
                          "--initrd", os.path.join(ASSETS, "guest-initrd.cpio.gz"),
                          "--console-log", os.path.join(inst, "console.log"),
                          "--control-socket", sock, "--memory", "128",
                          "--disk", "path=%s,format=raw" % os.path.join(inst, "disk")] +
                         list(extra), stdout=log, stderr=subprocess.STDOUT)
    return p, sock, inst


def by_hand(tmp):
    nobody = pwd.getpwnam("nobody")
    p, sock, inst = start_vmm(tmp, "a")
    check(wait_sock(sock, p), "kova-vmm (as root, default user) answers on its socket")
    st = ctl(sock, "status")
    check(st.get("sandboxed") is True, "status says sandboxed: %r" % st.get("sandboxed"))
    check_sandboxed(p.pid, nobody.pw_uid, nobody.pw_gid, "by hand")
    try:
        r = ctl(sock, "sandbox-test", timeout=10)
    except OSError as e:
        r = "connection: %s" % e
    rc = p.wait(timeout=30)
    check(rc == -signal.SIGSYS, "sandbox-test: killed by SIGSYS (exit %r, reply %r)" % (rc, r))
    with open(os.path.join(inst, "vmm.log")) as f:
        log = f.read()
    check("sandbox: uid %d gid %d" % (nobody.pw_uid, nobody.pw_gid) in log,
          "the VMM's log says how it is sandboxed")

    p, sock, inst = start_vmm(tmp, "b", ["--no-sandbox"])
    check(wait_sock(sock, p), "--no-sandbox: answers")
    st = status_of("/proc/%d/status" % p.pid)
    check(st["Seccomp"] == "0" and st["Uid"].split()[0] == "0" and st["NoNewPrivs"] == "0",
          "--no-sandbox: uid %s, Seccomp %s, NoNewPrivs %s" % (st["Uid"], st["Seccomp"],
                                                               st["NoNewPrivs"]))
    r = ctl(sock, "sandbox-test")
    check(r and r.get("ok") is False and p.poll() is None,
          "--no-sandbox: sandbox-test answers ok false and the VMM lives: %r" % r)
    ctl(sock, "quit")
    check(p.wait(timeout=30) == 0, "--no-sandbox: quit ends it with 0")

    for user, what in (("0", "uid 0"), ("root", "root"), ("no-such-user-kova", "unknown")):
        p, sock, inst = start_vmm(tmp, "c-" + what.replace(" ", ""), ["--sandbox-user", user])
        rc = p.wait(timeout=30)
        check(rc == 1, "--sandbox-user %s (%s): refused with exit 1 (got %r)" % (user, what, rc))


def guest_image(a):
    """The test guest (kernel, initramfs, disk) uploaded to the agent; the disk image's id."""
    def image(name, path, fmt, **props):
        body = {"name": name, "disk_format": fmt, "container_format": "bare"}
        body.update(props)
        _, _, img = a.request("POST", "/v2/images", body, token="admin:admin", image=True)
        with open(path, "rb") as f:
            a.request("PUT", "/v2/images/%s/file" % img["id"], token="admin:admin",
                      image=True, raw=f.read(),
                      headers={"Content-Type": "application/octet-stream"})
        return img["id"]
    k = image("k", os.path.join(ASSETS, "vmlinuz"), "aki")
    r = image("r", os.path.join(ASSETS, "guest-initrd.cpio.gz"), "ari")
    return image("d", os.path.join(ASSETS, "guest-root.ext4"), "raw", kernel_id=k,
                 ramdisk_id=r, os_command_line="console=ttyS0")


def wait_server(a, sid, states, timeout=120):
    end = time.monotonic() + timeout
    srv = {}
    while time.monotonic() < end:
        srv = a.request("GET", "/v2.1/servers/%s" % sid, token="admin:admin")[2]["server"]
        if srv["status"] in states:
            break
        time.sleep(0.2)
    return srv


def create_server(a, image, name):
    st, _, b = a.request("POST", "/v2.1/servers", {"server": {
        "name": name, "imageRef": image, "flavorRef": "1"}}, token="admin:admin")
    check(st == 202, "server create %s: %d" % (name, st))
    return b["server"]["id"]


def through_agent(tmp):
    nobody = pwd.getpwnam("nobody")
    a = Agent(AGENT, extra_args=["--vmm", VMM],
              config_text="[kova]\nvmm_user = nobody\nvmm_start_timeout = 60\n").start()
    try:
        d = guest_image(a)
        sid = create_server(a, d, "sandboxed")
        srv = wait_server(a, sid, ("ACTIVE", "ERROR"))
        check(srv.get("status") == "ACTIVE", "the server is ACTIVE (%s)" % srv.get("status"))
        inst = os.path.join(a.state_dir, "instances", sid)
        sock = os.path.join(inst, "vmm.sock")
        pid = ctl(sock, "status")["pid"]
        check_sandboxed(pid, nobody.pw_uid, nobody.pw_gid, "agent's VMM")
        o = os.stat(inst)
        check((o.st_uid, o.st_gid) == (nobody.pw_uid, nobody.pw_gid),
              "the instance dir belongs to the VMM's user")
        try:
            ctl(sock, "sandbox-test")
        except OSError:
            pass
        end = time.monotonic() + 30
        while time.monotonic() < end:
            srv = a.request("GET", "/v2.1/servers/%s" % sid, token="admin:admin")[2]["server"]
            if srv["status"] == "SHUTOFF":
                break
            time.sleep(0.1)
        check(srv["status"] == "SHUTOFF" and not os.path.exists("/proc/%d" % pid),
              "a forbidden system call: the VMM died (SIGSYS), the server is SHUTOFF (%s)"
              % srv["status"])
        st, _, _ = a.request("DELETE", "/v2.1/servers/%s" % sid, token="admin:admin")
        check(st == 204, "delete: %d" % st)
    finally:
        stop_checked(a)


def uid_per_instance(tmp):
    """[kova] vmm_uid_range: a uid of its own for each instance's VMM (the lowest free one), kept
    across a stop/start, free again after a delete; an exhausted range puts the server in
    ERROR; each instance dir is 0700, its VMM's."""
    nobody = pwd.getpwnam("nobody")
    first, last = 420000, 420002
    a = Agent(AGENT, extra_args=["--vmm", VMM],
              config_text="[DEFAULT]\nshutdown_timeout = 1\n[kova]\nvmm_user = nobody\n"
                          "vmm_uid_range = %d-%d\nvmm_start_timeout = 60\n"
                          % (first, last)).start()

    def vmm_uid(sid):
        inst = os.path.join(a.state_dir, "instances", sid)
        pid = ctl(os.path.join(inst, "vmm.sock"), "status")["pid"]
        o = os.stat(inst)
        check(o.st_uid == int(status_of("/proc/%d/status" % pid)["Uid"].split()[0]) and
              o.st_gid == nobody.pw_gid and (o.st_mode & 0o777) == 0o700,
              "%s: the instance dir is its VMM's, mode 0700 (uid %d gid %d mode %o)"
              % (sid, o.st_uid, o.st_gid, o.st_mode & 0o777))
        return pid, o.st_uid

    try:
        d = guest_image(a)
        sids = [create_server(a, d, "u%d" % i) for i in range(3)]
        uids = []
        for sid in sids:
            srv = wait_server(a, sid, ("ACTIVE", "ERROR"))
            check(srv.get("status") == "ACTIVE", "%s is ACTIVE (%s)" % (sid, srv.get("status")))
            pid, uid = vmm_uid(sid)
            check_sandboxed(pid, uid, nobody.pw_gid, "VMM of %s" % sid)
            uids.append(uid)
        check(sorted(uids) == list(range(first, last + 1)),
              "three VMMs, three uids of the range: %s" % uids)
        # the range is used up: a fourth server cannot start
        extra = create_server(a, d, "u3")
        srv = wait_server(a, extra, ("ACTIVE", "ERROR"))
        check(srv.get("status") == "ERROR" and "vmm_uid_range" in
              json.dumps(srv.get("fault", {})),
              "an exhausted vmm_uid_range: ERROR with a fault that says so (%s %s)"
              % (srv.get("status"), srv.get("fault")))
        a.request("DELETE", "/v2.1/servers/%s" % extra, token="admin:admin")
        # stop/start keeps the uid
        a.request("POST", "/v2.1/servers/%s/action" % sids[0], {"os-stop": None},
                  token="admin:admin")
        check(wait_server(a, sids[0], ("SHUTOFF",)).get("status") == "SHUTOFF", "stopped")
        a.request("POST", "/v2.1/servers/%s/action" % sids[0], {"os-start": None},
                  token="admin:admin")
        check(wait_server(a, sids[0], ("ACTIVE",)).get("status") == "ACTIVE", "started again")
        check(vmm_uid(sids[0])[1] == uids[0], "a stop/start keeps the instance's uid")
        # a delete frees the uid: the next server gets it
        st, _, _ = a.request("DELETE", "/v2.1/servers/%s" % sids[1], token="admin:admin")
        check(st == 204, "delete: %d" % st)
        end = time.monotonic() + 30
        while time.monotonic() < end and os.path.exists(
                os.path.join(a.state_dir, "instances", sids[1])):
            time.sleep(0.1)
        new = create_server(a, d, "u4")
        check(wait_server(a, new, ("ACTIVE", "ERROR")).get("status") == "ACTIVE", "u4 ACTIVE")
        check(vmm_uid(new)[1] == uids[1], "the deleted server's uid %d is given again (%d)"
              % (uids[1], vmm_uid(new)[1]))
        for sid in (sids[0], sids[2], new):
            a.request("DELETE", "/v2.1/servers/%s" % sid, token="admin:admin")
    finally:
        stop_checked(a)


def main():
    if os.geteuid() != 0:
        print("vmm.sandbox needs root (it checks the change to an unprivileged user)")
        return 1
    tmp = tempfile.mkdtemp(prefix="kova-sandbox-test.")
    os.chmod(tmp, 0o755)
    try:
        by_hand(tmp)
        through_agent(tmp)
        uid_per_instance(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("sandbox tests: %d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
