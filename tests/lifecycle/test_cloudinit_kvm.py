# SPDX-License-Identifier: Apache-2.0
"""lifecycle.cloudinit: the test cloud image's cloud-init through kova's metadata, then ssh.

Run inside the nested-KVM test VM by kova-nested-run (as root, /dev/kvm there): a real kova-agent
with the real kova-vmm and one network, [network:knet] 10.56.0.0/24 on bridge kovanet56 (the agent
makes the bridge with the gateway 10.56.0.1, runs dnsmasq and serves the metadata service on
169.254.169.254:80 bound to the bridge; tun and bridge come from the assets' l1-modules). The
image is the test cloud image (--cloud-image; Debian 12 genericcloud's twin with cloud-init,
openssh-server, ifupdown + isc-dhcp-client, default user debian), uploaded through the Glance API
as qcow2 with no properties: it boots through SeaBIOS and GRUB. A keypair is imported through
POST /os-keypairs with an ed25519 key made here with ssh-keygen. Then, one after the other:

  vm1          "config_drive": true: cloud-init's ConfigDrive datasource reads disk.config (vfat
               config-2, the second, read-only disk);
  vm2          no config drive: cloud-init's OpenStack datasource reads the metadata service
               (ephemeral DHCP in its local stage, then 169.254.169.254 through the gateway).

Each is created on the network with key_name and base64 user_data, a #!/bin/sh script that writes
a marker unique to this run to /var/tmp/kova-marker; ACTIVE; then, within a generous deadline
(nested emulation: a full Debian boot takes minutes), ssh -i KEY debian@<fixed IP> answers with the
marker. Over ssh: hostname is the server's name, ~/.ssh/authorized_keys holds the key, for vm1
blkid -L config-2 finds the drive, and /run/cloud-init/result.json names the datasource
(ConfigDrive for vm1, OpenStack for vm2). os-getConsoleOutput shows cloud-init's lines. Each is
deleted after its checks (only one full Debian at a time in the one-vCPU test VM); at the end no
kova-vmm is left and the agent stops cleanly. Timings (POST -> ACTIVE, POST -> ssh answering) are
printed, never asserted, with when cloud-init's stages ran in each guest and, for vm2, what its
local stage did with the metadata service (from the guest's cloud-init.log).

The ssh client is the host's /usr/bin/ssh (the test VM sees the host's root read-only over 9p).

usage: python3 test_cloudinit_kvm.py --agent A --vmm V --assets DIR --cloud-image QCOW2
                                     [--deadline SECS (per server, default 600)]
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from kova_hostnet import dnsmasqs, link_up, links  # noqa: E402
import test_lifecycle_kvm as L  # noqa: E402  (its helpers: api, console, wait_status, gone, ...)
import test_network_kvm as N  # noqa: E402  (load_modules, net_file, wait_for)
from test_lifecycle_kvm import Agent, check, log  # noqa: E402

NET, BRIDGE = "knet", "kovanet56"
PREFIX = "10.56.0"
CIDR, GATEWAY = PREFIX + ".0/24", PREFIX + ".1"
FLAVOR = "kci1"
KEY_NAME = "kova-ci"
CONFIG = """[kova]
dnsmasq = /usr/sbin/dnsmasq

[network:%s]
cidr = %s
gateway = %s
bridge = %s
""" % (NET, CIDR, GATEWAY, BRIDGE)
MARKER_FILE = "/var/tmp/kova-marker"


def sh(*args, timeout=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


class C:
    net_id = None
    image = None
    key = None  # the private key's path
    pub = None  # the public key's text
    tmp = None
    servers = {}  # name -> id, for the cleanup
    timings = []


def console_tail(sid, n=60):
    """The last n lines of the instance's console.log, from the agent's state dir."""
    path = os.path.join(L.C.agent.state_dir, "instances", sid, "console.log")
    return "\n".join(L.tail(path, n))


def diag(sid):
    out = ["---- console.log of %s (last 60 lines)\n%s" % (sid, console_tail(sid)),
           "---- " + L.diag_text(),
           "---- links: %r" % links(),
           "---- ip -br addr\n" + sh("ip", "-br", "addr").stdout,
           "---- ip neigh\n" + sh("ip", "neigh").stdout,
           "---- hosts file\n" + N.net_file("hosts", C.net_id),
           "---- dnsmasq log (tail)\n" + N.net_file("log", C.net_id)[-3000:]]
    return "\n".join(out)


def ssh(ip, command, timeout=120):
    """(exit status, stdout, stderr) of command run as debian@ip with our key."""
    args = ["ssh", "-F", "/dev/null", "-i", C.key, "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            "debian@" + ip, command]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return None, "", "ssh timed out after %d s" % timeout


def keygen():
    C.tmp = tempfile.mkdtemp(prefix="kova-ci-ssh-")
    C.key = os.path.join(C.tmp, "id_ed25519")
    r = sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kova-cloudinit-test",
           "-f", C.key)
    if not check(r.returncode == 0, "ssh-keygen -t ed25519 (%s)" % r.stderr.strip()):
        raise RuntimeError("ssh-keygen failed")
    with open(C.key + ".pub") as f:
        C.pub = f.read().strip()


def register(cloud_image):
    st, _, b = L.api("POST", "/v2.1/flavors", {"flavor": {"name": "kova.ci", "id": FLAVOR,
                                                          "ram": 1024, "vcpus": 1, "disk": 3}})
    check(st == 200, "flavor %s (1024 MiB, 3 GiB) created (%r)" % (FLAVOR, st if st == 200 else b))
    st, _, img = L.C.agent.request("POST", "/v2/images", {"name": "debian-12-kova-cloud",
                                                          "disk_format": "qcow2",
                                                          "container_format": "bare"},
                                   token="admin:admin", image=True)
    if not check(st == 201, "image created (%r)" % (st if st == 201 else img)):
        raise RuntimeError("image create refused")
    t0 = time.time()
    with open(cloud_image, "rb") as f:
        st2, _, b2 = L.C.agent.request("PUT", "/v2/images/%s/file" % img["id"],
                                       token="admin:admin", image=True, raw=f.read(),
                                       headers={"Content-Type": "application/octet-stream"})
    st, _, im = L.C.agent.request("GET", "/v2/images/%s" % img["id"], token="admin:admin",
                                  image=True)
    if not check(st2 == 204 and st == 200 and im.get("status") == "active" and
                 im.get("disk_format") == "qcow2",
                 "the cloud image uploaded as qcow2 with no properties: active (%.0f s, %r %r)"
                 % (time.time() - t0, st2, im.get("status") if st == 200 else st)):
        raise RuntimeError("image upload failed: %r" % (b2,))
    C.image = img["id"]

    keygen()
    st, _, kp = L.api("POST", "/v2.1/os-keypairs", {"keypair": {"name": KEY_NAME,
                                                                "public_key": C.pub}})
    k = kp.get("keypair", {}) if isinstance(kp, dict) else {}
    if not check(st in (200, 201) and k.get("name") == KEY_NAME and
                 k.get("public_key", "").split()[:2] == C.pub.split()[:2],
                 "keypair %s imported (%r, fingerprint %s)" % (KEY_NAME, st,
                                                               k.get("fingerprint"))):
        raise RuntimeError("keypair import failed: %r" % (kp,))

    nets = L.api("GET", "/v2.1/os-networks")[2]["networks"]
    mine = [n for n in nets if n["label"] == NET]
    if not check(len(mine) == 1 and mine[0]["cidr"] == CIDR and mine[0]["gateway"] == GATEWAY,
                 "os-networks lists %s %s gateway %s" % (NET, CIDR, GATEWAY)):
        raise RuntimeError("network %s not listed: %r" % (NET, nets))
    C.net_id = mine[0]["id"]
    addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", BRIDGE).stdout or "[]")
    have = ["%s/%d" % (x["local"], x["prefixlen"]) for a in addrs for x in a["addr_info"]
            if x["family"] == "inet"]
    check(GATEWAY + "/24" in have and "169.254.169.254/32" in have and link_up(BRIDGE) and
          len(dnsmasqs(BRIDGE)) == 1,
          "bridge %s up with %s/24 and 169.254.169.254/32, one dnsmasq (%r)" % (BRIDGE, GATEWAY,
                                                                               have))


def stages(name, ip):
    """Logs when each of cloud-init's stages ran, in seconds since the guest's kernel started
    (/run/cloud-init/status.json against /proc/uptime): where a boot's time to ssh goes."""
    rc, out, err = ssh(ip, "echo $(cut -d' ' -f1 /proc/uptime) $(date +%s.%N); "
                           "cat /run/cloud-init/status.json")
    try:
        first, rest = out.split("\n", 1)
        up, now = (float(x) for x in first.split())
        st = json.loads(rest).get("v1", {})
    except ValueError:
        log("%s: no cloud-init stage times (%r)" % (name, (out + err)[-300:]))
        return
    boot = now - up
    parts = []
    for stage in ("init-local", "init", "modules-config", "modules-final"):
        s = st.get(stage) or {}
        if s.get("start") and s.get("finished"):
            parts.append("%s %.0f-%.0f s" % (stage, s["start"] - boot, s["finished"] - boot))
    log("%s: cloud-init stages since the kernel started: %s (guest uptime now %.0f s)"
        % (name, ", ".join(parts) or "(none)", up))


def parts(name, sid, ip, t_post, t_ssh):
    """Where the time from the POST to ssh answering went (logged as one BENCH line, read by
    tests/bench/cloudinit-bench.sh; never asserted): agent (POST -> kova-vmm process start),
    vmm (process start -> the VM runs), firmware+grub (-> the guest kernel starts), kernel
    (systemd-analyze's kernel + initrd), cloud-init (its first stage's start to its last
    stage's end) and the rest (the other userspace, sshd, ssh's retry step). The VMM's side from
    its control socket (vmm_uptime_s, uptime_s), the guest's from /proc/uptime over ssh (its
    round trip, about a second here, is the error)."""
    try:
        sock = os.path.join(L.C.agent.state_dir, "instances", sid, "vmm.sock")
        tq = time.time()
        vs = json.loads(L.vmm_status(sock))
        vmm_proc = tq - float(vs["vmm_uptime_s"])
        vm_start = tq - float(vs["uptime_s"])
        rc, out, err = ssh(ip, "cut -d' ' -f1 /proc/uptime")  # read as the session ends
        kernel_start = time.time() - float(out.strip())
        rc, out, err = ssh(ip, "cat /run/cloud-init/status.json; echo @@; "
                               "systemd-analyze 2>/dev/null | head -n1")
        js, _, sa = out.partition("@@")
        st = json.loads(js).get("v1", {})
        boot = kernel_start
        ci = (st["modules-final"]["finished"] - st["init-local"]["start"]
              if st.get("init-local", {}).get("start") and
              st.get("modules-final", {}).get("finished") else float("nan"))
        ci_start = (st["init-local"]["start"] - boot) if st.get("init-local", {}).get("start") \
            else float("nan")
        kern = float("nan")
        # "Startup finished in 1min 2.3s (kernel) + 1.2s (initrd) + ..."
        m = re.findall(r"((?:[0-9.]+(?:min|ms|s) )+)\((kernel|initrd)\)", sa)
        if m:
            unit = {"min": 60, "s": 1, "ms": 0.001}
            kern = sum(float(v) * unit[u] for d, _ in m
                       for v, u in re.findall(r"([0-9.]+)(min|ms|s)", d))
        p = {"post_to_ssh": t_ssh, "agent": vmm_proc - t_post, "vmm": vm_start - vmm_proc,
             "firmware_grub": kernel_start - vm_start, "kernel": kern,
             "cloud_init_starts": ci_start, "cloud_init": ci}
        p["rest"] = t_ssh - p["agent"] - p["vmm"] - p["firmware_grub"] - ci_start - ci
        log("BENCH %s %s" % (name, " ".join("%s=%.2f" % kv for kv in p.items())))
    except (ValueError, KeyError, IndexError, TypeError) as e:
        log("%s: no time split (%r)" % (name, e))


def metadata_reads(name, ip):
    """Logs what cloud-init's local stage did with the metadata service (its cloud-init.log): the
    ephemeral DHCP lines, "Resolving URL ... took" (cloud-init's check for a DNS that redirects
    every name, which waits for the resolver: 30 s where the image's resolv.conf names a server
    that drops the queries), how many documents it read from 169.254.169.254 and over what time,
    and any read that needed a retry."""
    rc, out, err = ssh(ip, "sudo grep -E 'dhcp|DHCP|Ephemeral|169.254.169.254' "
                           "/var/log/cloud-init.log")
    lines = out.splitlines()
    reads = [x for x in lines if "Read from http://169.254.169.254" in x]
    other = [x for x in lines if "url_helper.py" not in x]  # not each open and read
    for x in other[:15]:
        log("%s: cloud-init.log: %s" % (name, x[:220]))
    if reads:
        log("%s: %d reads from the metadata service, %s .. %s" % (
            name, len(reads), reads[0][:23], reads[-1][:23]))
        slow = [x for x in reads if "after 1 attempts" not in x]
        for x in slow[:10]:
            log("%s: retried read: %s" % (name, x[:220]))


def one_server(name, config_drive, deadline):
    label = "%s (%s)" % (name, "config drive" if config_drive else "metadata service")
    log("== %s" % label)
    mark = "MARKER-" + uuid.uuid4().hex
    script = ("#!/bin/sh\necho %s > %s\necho \"KOVA-USERDATA-RAN %s\"\n"
              % (mark, MARKER_FILE, mark))
    body = {"name": name, "imageRef": C.image, "flavorRef": FLAVOR,
            "networks": [{"uuid": C.net_id}], "key_name": KEY_NAME,
            "user_data": base64.b64encode(script.encode()).decode()}
    if config_drive:
        body["config_drive"] = True
    t0 = time.time()
    st, _, b = L.api("POST", "/v2.1/servers", {"server": body})
    if not check(st == 202, "%s: create with key_name, user_data%s: 202 (%r)" % (
            name, ", config_drive" if config_drive else "", st if st == 202 else b)):
        raise RuntimeError("create %s refused" % name)
    sid = C.servers[name] = b["server"]["id"]
    s = L.wait_status(sid, "ACTIVE", timeout=300)
    t_active = time.time() - t0
    log("%s: ACTIVE %.1f s after the POST" % (name, t_active))
    addrs = s["addresses"].get(NET) or [{}]
    ip = addrs[0].get("addr")
    check(ip and ip.startswith(PREFIX + "."), "%s: its fixed IP on %s is %s" % (name, NET, ip))
    check(s.get("key_name") == KEY_NAME, "%s: key_name %r" % (name, s.get("key_name")))
    if config_drive:
        check(s.get("config_drive") == "True",
              "%s: config_drive %r" % (name, s.get("config_drive")))
    dc = os.path.join(L.C.agent.state_dir, "instances", sid, "disk.config")
    check(os.path.exists(dc) == config_drive, "%s: disk.config %s in its instance dir" % (
        name, "is" if config_drive else "is not"))

    # ssh answering with the marker: sshd up, the key installed, the user data run
    end = t0 + deadline
    tries, last, out = 0, "", ""
    while time.time() < end:
        s = L.server(sid)
        if not s or s["status"] != "ACTIVE":
            last = "server is %r" % (s and s["status"])
            break
        tries += 1
        rc, out, err = ssh(ip, "cat %s" % MARKER_FILE, timeout=90)
        if rc == 0 and out.strip() == mark:
            break
        last = "rc %r: %s%s" % (rc, out.strip()[-200:], err.strip()[-300:])
        time.sleep(5)
    t_ssh = time.time() - t0
    ok = out.strip() == mark
    if not check(ok, "%s: ssh debian@%s cat %s gives the marker (%.0f s after the POST, "
                     "%d tries%s)" % (name, ip, MARKER_FILE, t_ssh, tries,
                                      "" if ok else "; last: " + last)):
        raise RuntimeError("%s: no ssh with the marker" % name)
    C.timings.append((label, t_active, t_ssh))
    log("%s: ssh answered with the marker %.1f s after the POST" % (name, t_ssh))
    parts(name, sid, ip, t0, t_ssh)

    rc, out, err = ssh(ip, "hostname")
    check(rc == 0 and out.strip().split(".")[0] == name,
          "%s: hostname is %s (%r)" % (name, name, out.strip() or err.strip()))
    # the guest itself asks the metadata service (through its gateway): its own document
    rc, out, err = ssh(ip, "python3 -c \"import urllib.request as u; print(u.urlopen("
                           "'http://169.254.169.254/openstack/latest/meta_data.json', "
                           "timeout=20).read().decode())\"")
    try:
        md = json.loads(out)
    except ValueError:
        md = {}
    check(md.get("uuid") == sid and md.get("name") == name,
          "%s: from the guest, 169.254.169.254 answers its own meta_data.json (%r)" % (
              name, (md.get("uuid"), md.get("name")) if md else (out + err)[-300:]))
    rc, out, err = ssh(ip, "cat ~/.ssh/authorized_keys")
    check(rc == 0 and " ".join(C.pub.split()[:2]) in out,
          "%s: ~/.ssh/authorized_keys holds the keypair's key" % name)
    if config_drive:
        rc, out, err = ssh(ip, "sudo blkid -L config-2")
        check(rc == 0 and out.strip().startswith("/dev/"),
              "%s: sudo blkid -L config-2 finds the drive (%r)" % (name, (out + err).strip()))
    rc, out, err = ssh(ip, "cat /run/cloud-init/result.json")
    try:
        res = json.loads(out).get("v1", {})
    except ValueError:
        res = {}
    ds = res.get("datasource") or ""
    want = "DataSourceConfigDrive" if config_drive else "DataSourceOpenStack"
    check(ds.startswith(want), "%s: cloud-init's datasource is %s (%r)" % (name, want, ds))
    if res.get("errors"):
        log("NOTE: %s: cloud-init reported errors: %r" % (name, res.get("errors")))
    rc, out, err = ssh(ip, "cloud-init query v1.subplatform 2>/dev/null || sudo cloud-init "
                           "query v1.subplatform")
    log("%s: cloud-init query v1.subplatform: %r" % (name, (out or err).strip()))
    stages(name, ip)
    if not config_drive:
        metadata_reads(name, ip)

    # the console through the API: cloud-init's own lines
    st, _, b = L.api("POST", "/v2.1/servers/%s/action" % sid, {"os-getConsoleOutput": {}})
    cons = b.get("output", "") if st == 200 and isinstance(b, dict) else ""
    if not check("Cloud-init v." in cons, "%s: os-getConsoleOutput shows cloud-init's lines "
                 "(%r, %d bytes)" % (name, st, len(cons))):
        print(diag(sid), flush=True)
    log("%s: the user data's echo is %s the console" % (
        name, "on" if ("KOVA-USERDATA-RAN " + mark) in cons else "NOT on"))

    st, _, _ = L.api("DELETE", "/v2.1/servers/%s" % sid)
    check(st == 204 and L.gone(sid, 120), "%s deleted" % name)
    del C.servers[name]


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
    cloud_image = opt.get("--cloud-image",
                          os.path.join(L.C.assets, "debian-12-kova-cloud-amd64.qcow2"))
    deadline = float(opt.get("--deadline", 600))
    if not check(os.path.exists(cloud_image), "the cloud image %s is there" % cloud_image):
        return 1
    if not check(shutil.which("ssh") and shutil.which("ssh-keygen"),
                 "ssh and ssh-keygen are there (%s, %s)" % (shutil.which("ssh"),
                                                            shutil.which("ssh-keygen"))):
        return 1
    if not check(N.load_modules(L.C.assets), "tun and bridge loaded"):
        return 1
    if not check(os.access("/usr/sbin/dnsmasq", os.X_OK), "/usr/sbin/dnsmasq is there"):
        return 1
    sh("ip", "link", "del", BRIDGE)  # none expected: a fresh test VM
    agent = L.C.agent = Agent(opt["--agent"], config_text=CONFIG,
                              extra_args=["--vmm", opt["--vmm"], "--shutdown-timeout", "30"])
    try:
        agent.start()
        register(cloud_image)
        one_server("vm1", True, deadline)
        one_server("vm2", False, deadline)
    except Exception as e:  # the cleanup and the agent's exit are checked all the same
        check(False, str(e))
        if agent.proc:
            for sid in C.servers.values():
                print(diag(sid), flush=True)
    finally:
        for sid in C.servers.values():
            L.api("DELETE", "/v2.1/servers/%s" % sid)
        for sid in C.servers.values():
            L.gone(sid, 120)
        agent_log = ""
        if agent.proc:
            left, agent_log = L.finish_agent(agent)
            check(not left, "no kova-vmm left at the end (%r)" % left)
        check(N.wait_for(lambda: not dnsmasqs(BRIDGE), 10),
              "the agent's dnsmasq stopped with it")
        for pid in dnsmasqs(BRIDGE):
            os.kill(pid, signal.SIGKILL)
        if L.failures:
            print("---- agent log (tail)\n" + (agent_log or agent.read_log())[-8000:])
        agent.cleanup()
        sh("ip", "link", "del", BRIDGE)
        if C.tmp:
            shutil.rmtree(C.tmp, ignore_errors=True)
    for label, t_active, t_ssh in C.timings:
        log("timing: %-32s POST->ACTIVE %6.1f s  POST->ssh answering %6.1f s"
            % (label, t_active, t_ssh))
    print("%d failure(s), %.0f s" % (len(L.failures), time.time() - t_start))
    return 1 if L.failures else 0


if __name__ == "__main__":
    sys.exit(main())
