# SPDX-License-Identifier: Apache-2.0
"""What the network tests read of this host's links and dnsmasq processes (sysfs and /proc only,
so it runs on the host and in the test VM alike)."""
import os


def links():
    """{name: master or None} of every network interface."""
    out = {}
    for name in os.listdir("/sys/class/net"):
        m = os.path.join("/sys/class/net", name, "master")
        out[name] = os.path.basename(os.readlink(m)) if os.path.islink(m) else None
    return out


def link_up(name):
    """Whether the interface exists and is administratively up."""
    try:
        with open("/sys/class/net/%s/flags" % name) as f:
            return int(f.read(), 16) & 1 == 1
    except OSError:
        return False


def dnsmasqs(bridge):
    """Pids of the dnsmasq processes serving bridge (--interface=BRIDGE)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "dnsmasq" and "--interface=" + bridge in argv:
            out.append(int(p))
    return out
