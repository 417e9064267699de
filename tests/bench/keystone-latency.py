#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark (asserts nothing): the latency auth_strategy = keystone adds to a request, with the
caller's token found in the agent's cache and with a token the agent has not seen yet.

Starts, on loopback ports in a temporary dir, a real Keystone (Debian's keystone under uwsgi:
tests/keystone/keystone-run.sh, one worker, SQLite, fernet tokens, Keystone's own cache in
memory, dogpile.cache.memory, as a deployed Keystone has memcached; --keystone-cache off turns it
off: then this Keystone recomputes role assignments several times per validation, ~1 s of CPU on
a slow host) and two kova-agents without a VMM:
one with noauth2 (the baseline) and one with auth_strategy = keystone (token_cache_time = 3600:
longer than a run, so that the cached token stays cached). Keystone gets a project "bench" with a
user "bench" (member) and the agents' service user "kova" (admin in project "service"). Then N
rounds, one request at a time (latency, not throughput), each round one request of every mode:

  noauth2     GET PATH on the noauth2 agent, token "bench:bench"
  cached      GET PATH on the keystone agent, one token every time (validated once, in the
              warm-up, then found in the agent's cache)
  uncached    GET PATH on the keystone agent, a token it has never seen each time (the agent
              asks Keystone: GET /v3/auth/tokens?nocatalog). The tokens are issued beforehand
              (POST /v3/auth/tokens, method "token" from one password login), so issuing them
              is not measured.
  cache-off   (with --cache-off) a third agent with token_cache_time = 0 (no cache), one token
  keystone    for reference: Keystone's own validation, GET /v3/auth/tokens?nocatalog with the
              service token and a fresh token (another set, issued like the uncached mode's),
              from Python on a new connection (as the agent's libcurl does: keystone-run.sh
              closes every connection)

The client (http.client) keeps one connection per agent open for all modes (--new-connections: a
new connection per request for all of them); the order of the modes is shuffled in each round
(fixed seed), so that none always follows a slow one. Printed: p50/p90/p99/mean/max per mode
(ms), the added latency of cached and uncached against noauth2 (p50 and p99 differences), the
uncached mode minus Keystone's own validation (kova's part of a miss), Keystone's server-side
time from its uwsgi log, the count of validations Keystone saw (a check that "cached" was
cached), and the machine (nproc, CPU, load average).

usage: /usr/bin/python3 tests/bench/keystone-latency.py [--agent PATH/kova-agent] [-n N]
           [--warmup W] [--path /v2.1/flavors] [--new-connections] [--cache-off]
           [--keystone-cache memory|off]
  --agent     default $KOVA_AGENT, else build/bench/agent/kova-agent, else
              build/default/agent/kova-agent (use a build without sanitizers)
  -n          measured requests per mode (300); --warmup requests per mode first (20)
Needs: keystone uwsgi-core uwsgi-plugin-python3 (Debian packages), curl (keystone-run.sh).
Takes about half a minute of setup plus the token issuing (2 x (N + W) tokens) and N + W rounds;
with --keystone-cache off on a 2-CPU host, ~1 s per validation: over 10 minutes for N = 300.
The tokens live an hour (keystone-run.sh's expiration): a run must end before.
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "api"))
from kova_agent_fixture import Agent, free_port  # noqa: E402

KS_RUN = os.path.join(TOP, "tests", "keystone", "keystone-run.sh")
ADMIN_PW = "admin-secret"
SVC_USER, SVC_PW = "kova", "kova-secret"
USER, USER_PW, PROJECT = "bench", "bench-secret", "bench"
# the keystone agent's token_cache_time: longer than a run (the default, 300 s, would have the
# cached token validated anew every 300 s of a long run), as long as the tokens live
# (keystone-run.sh: expiration = 3600)
CACHE_TIME = 3600


def log(msg):
    print("keystone-latency: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- Keystone

class Keystone:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "keystone")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/v3" % self.port
        self.started = False

    def run(self, *args):
        # its own process group: interrupted, the script and its keystone-manage go together
        p = subprocess.Popen([KS_RUN] + list(args), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out = p.communicate(timeout=600)[0]
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
            raise
        if p.returncode:
            raise RuntimeError("keystone-run.sh %s failed:\n%s" % (args[0], out.decode()))

    def setup_and_start(self, cache):
        self.run("setup", self.dir, str(self.port), ADMIN_PW)
        conf = os.path.join(self.dir, "keystone.conf")
        with open(conf) as f:
            text = f.read()
        on = "[cache]\nenabled = true\nbackend = dogpile.cache.memory\n"
        off = "[cache]\nenabled = false\n"
        if on not in text and off not in text:
            raise RuntimeError("keystone-run.sh's keystone.conf has no [cache] section")
        with open(conf, "w") as f:
            f.write(text.replace(off, on) if cache == "memory" else text.replace(on, off))
        self.started = True  # from here on, stop() is needed
        self.run("start", self.dir, str(self.port))
        self.admin = self.password_token("admin", ADMIN_PW, "admin")

    def stop(self):
        if not self.started:
            return
        self.started = False
        try:
            self.run("stop", self.dir)
        finally:
            # interrupted before uwsgi wrote its pid file: its processes, found by their
            # command line (which names this run's own temporary dir), one by one
            mark = ("OS_KEYSTONE_CONFIG_FILES=%s/keystone.conf" % self.dir).encode()
            for pid in os.listdir("/proc"):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        if mark in f.read():
                            os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass

    def call(self, method, path, body=None, token=None, headers=None, want=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Connection": "close"}
        if token:
            h["X-Auth-Token"] = token
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c.request(method, "/v3" + path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        if payload and hdrs.get("content-type", "").startswith("application/json"):
            payload = json.loads(payload)
        if want is not None and r.status != want:
            raise RuntimeError("keystone %s %s -> %d %r" % (method, path, r.status, payload))
        return r.status, hdrs, payload

    def password_token(self, user, pw, project):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": pw}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        return self.call("POST", "/auth/tokens", body, want=201)[1]["x-subject-token"]

    def token_from(self, token, project_id):
        """A new token (another fernet token for the same user and project) from an existing
        one: method "token", no password hashing, so quick to issue in bulk."""
        body = {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                         "scope": {"project": {"id": project_id}}}}
        return self.call("POST", "/auth/tokens", body, want=201)[1]["x-subject-token"]

    def create(self, kind, body):
        return self.call("POST", "/%ss" % kind, {kind: body}, self.admin, want=201)[2][kind]["id"]

    def uwsgi_log(self):
        try:
            with open(os.path.join(self.dir, "log", "uwsgi.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# ---------------------------------------------------------------- measuring

class Client:
    """GET requests to one port: a kept connection, or a new one per request."""

    def __init__(self, port, keep):
        self.port, self.keep, self.conn, self.reconnects = port, keep, None, 0

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def get(self, path, headers):
        """Returns (status, seconds). A kept connection the server closed is opened anew once
        (and that request timed afresh)."""
        h = dict(headers)
        if not self.keep:
            h["Connection"] = "close"
        for attempt in (0, 1):
            c = self._conn()
            t0 = time.perf_counter()
            try:
                c.request("GET", path, headers=h)
                r = c.getresponse()
                r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt or not self.keep:
                    raise
                self.reconnects += 1
                continue
            dt = time.perf_counter() - t0
            if not self.keep or r.getheader("Connection", "").lower() == "close":
                self.close()
            return r.status, dt
        raise AssertionError("unreachable")


def pct(sorted_xs, p):
    """The p-th percentile, linear between closest ranks (as numpy's default)."""
    if not sorted_xs:
        return float("nan")
    k = (len(sorted_xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (k - lo)


def summary(xs):
    s = sorted(xs)
    return {"p50": pct(s, 50), "p90": pct(s, 90), "p99": pct(s, 99),
            "mean": sum(s) / len(s), "max": s[-1], "n": len(s)}


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return os.cpu_count(), model


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------- the run

def agent_conf(ks, cache_time):
    return """[api]
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
""" % (ks.url, ks.port, SVC_USER, SVC_PW, cache_time)


def bench(a, tmp, cleanups):
    ks = Keystone(tmp)
    cleanups.append(ks.stop)
    t0 = time.time()
    log("setting up Keystone in %s (db_sync, bootstrap: a minute or so)" % ks.dir)
    ks.setup_and_start(a.keystone_cache)
    roles = {r["name"]: r["id"] for r in ks.call("GET", "/roles", token=ks.admin,
                                                  want=200)[2]["roles"]}
    pid = ks.create("project", {"name": PROJECT, "domain_id": "default"})
    uid = ks.create("user", {"name": USER, "password": USER_PW, "domain_id": "default"})
    ks.call("PUT", "/projects/%s/users/%s/roles/%s" % (pid, uid, roles["member"]),
            token=ks.admin, want=204)
    spid = ks.create("project", {"name": "service", "domain_id": "default"})
    suid = ks.create("user", {"name": SVC_USER, "password": SVC_PW, "domain_id": "default"})
    ks.call("PUT", "/projects/%s/users/%s/roles/%s" % (spid, suid, roles["admin"]),
            token=ks.admin, want=204)
    log("Keystone up on %s in %.1f s" % (ks.url, time.time() - t0))

    agents = bench.agents = {}

    def start_agent(name, conf):
        ag = Agent(a.agent, extra_args=["--shutdown-timeout", "5"], config_text=conf)
        cleanups.append(ag.cleanup)
        agents[name] = ag.start()

    start_agent("noauth2", None)
    start_agent("keystone", agent_conf(ks, CACHE_TIME))
    if a.cache_off:
        start_agent("cache-off", agent_conf(ks, 0))

    # tokens: one password login, then N + warmup fresh ones from it
    base = ks.password_token(USER, USER_PW, PROJECT)
    svc = ks.password_token(SVC_USER, SVC_PW, "service")
    total = a.n + a.warmup
    log("issuing %d tokens" % (2 * total))
    t0 = time.time()
    fresh = [ks.token_from(base, pid) for _ in range(total)]  # for the uncached mode
    other = [ks.token_from(base, pid) for _ in range(total)]  # for Keystone's own validation
    if len(set(fresh + other + [base])) != 2 * total + 1:
        raise RuntimeError("Keystone issued the same token twice")
    log("issued in %.1f s" % (time.time() - t0))

    keep = not a.new_connections
    cl = {name: Client(ag.port, keep) for name, ag in agents.items()}
    path = a.path
    modes = [("noauth2", lambda i: cl["noauth2"].get(path, {"X-Auth-Token": "bench:bench"})),
             ("cached", lambda i: cl["keystone"].get(path, {"X-Auth-Token": base})),
             ("uncached", lambda i: cl["keystone"].get(path, {"X-Auth-Token": fresh[i]}))]
    if a.cache_off:
        modes.append(("cache-off", lambda i: cl["cache-off"].get(path, {"X-Auth-Token": base})))

    def direct(i):
        c = http.client.HTTPConnection("127.0.0.1", ks.port, timeout=60)
        t0 = time.perf_counter()
        c.request("GET", "/v3/auth/tokens?nocatalog", headers={
            "X-Auth-Token": svc, "X-Subject-Token": other[i], "Accept": "application/json",
            "Connection": "close"})
        r = c.getresponse()
        r.read()
        dt = time.perf_counter() - t0
        c.close()
        return r.status, dt
    modes.append(("keystone", direct))

    log_before = len(ks.uwsgi_log())
    results = {name: [] for name, _ in modes}
    load_before = loadavg()
    log("%d warm-up and %d measured rounds of %s, one request at a time" % (
        a.warmup, a.n, ", ".join(n for n, _ in modes)))
    t0 = time.time()
    rng = random.Random(15)
    for i in range(total):
        order = list(modes)
        rng.shuffle(order)  # no mode always runs right after a slow one
        for name, fn in order:
            st, dt = fn(i)
            if st != 200:
                raise RuntimeError("%s: GET -> HTTP %d (round %d)" % (name, st, i))
            if i >= a.warmup:
                results[name].append(dt * 1000.0)
    elapsed = time.time() - t0
    load_after = loadavg()
    for c in cl.values():
        c.close()

    # what Keystone saw: validations (GET /v3/auth/tokens) and its own time for them; uwsgi
    # writes a request's line after its answer: the last ones may come a little later
    # uncached and direct: one each per round; cached: once (the first warm-up round);
    # cache-off: one per round
    expected = total * (3 if a.cache_off else 2) + 1
    deadline = time.time() + 3
    while True:
        ulog = ks.uwsgi_log()[log_before:]
        gets = re.findall(r"GET /v3/auth/tokens\?nocatalog => generated \d+ bytes in (\d+) msecs",
                          ulog)
        if len(gets) >= expected or time.time() > deadline:
            break
        time.sleep(0.1)
    server_ms = sorted(float(x) for x in gets)

    # ---- report
    ncpu, model = machine()
    print()
    print("kova keystone-mode latency: GET %s, %d requests per mode (after %d warm-up), "
          "sequential, %s" % (path, a.n, a.warmup,
                              "one kept connection per agent" if keep else
                              "a new connection per request"))
    print("machine: %d CPUs (%s), load average %s before, %s after; %.1f s of rounds" % (
        ncpu, model, load_before, load_after, elapsed))
    print("agent: %s; Keystone: Debian keystone under uwsgi (1 process, 1 thread), SQLite, "
          "fernet, Keystone's cache %s" % (a.agent, "in memory" if a.keystone_cache == "memory"
                                          else "off"))
    print()
    print("%-10s %8s %8s %8s %8s %8s" % ("mode", "p50", "p90", "p99", "mean", "max"))
    sums = {}
    for name, _ in modes:
        s = sums[name] = summary(results[name])
        print("%-10s %8.3f %8.3f %8.3f %8.3f %8.3f" % (name, s["p50"], s["p90"], s["p99"],
                                                       s["mean"], s["max"]))
    print("(ms; keystone = Keystone's own validation, GET /v3/auth/tokens from Python)")
    print()
    base_s = sums["noauth2"]
    for name in [n for n, _ in modes if n not in ("noauth2", "keystone")]:
        s = sums[name]
        print("added by %-9s p50 %+8.3f ms   p99 %+8.3f ms   mean %+8.3f ms" % (
            name + ":", s["p50"] - base_s["p50"], s["p99"] - base_s["p99"],
            s["mean"] - base_s["mean"]))
    k = sums["keystone"]
    print("uncached minus Keystone's own validation (kova's part of a miss): p50 %+.3f ms, "
          "p99 %+.3f ms" % (sums["uncached"]["p50"] - k["p50"], sums["uncached"]["p99"] - k["p99"]))
    print()
    if server_ms:
        print("Keystone's own time per validation (uwsgi log, whole ms): p50 %.0f, p99 %.0f; "
              "validations it saw: %d (expected %d)" % (pct(server_ms, 50), pct(server_ms, 99),
                                                         len(server_ms), expected))
    else:
        print("Keystone's uwsgi log: no validation lines found")
    if len(server_ms) > expected:
        print("NOTE: more validations than expected: some 'cached' requests went to Keystone "
              "(a run longer than token_cache_time = %d s?)" % CACHE_TIME)
    recon = sum(c.reconnects for c in cl.values())
    if recon:
        print("NOTE: %d kept connections were closed by an agent and opened anew" % recon)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    default_agent = os.environ.get("KOVA_AGENT")
    if not default_agent:
        for d in ("bench", "default"):
            default_agent = os.path.join(TOP, "build", d, "agent", "kova-agent")
            if os.access(default_agent, os.X_OK):
                break
    ap.add_argument("--agent", default=default_agent)
    ap.add_argument("-n", "--requests", dest="n", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--path", default="/v2.1/flavors")
    ap.add_argument("--new-connections", action="store_true")
    ap.add_argument("--cache-off", action="store_true")
    ap.add_argument("--keystone-cache", choices=("memory", "off"), default="memory")
    a = ap.parse_args()
    if a.n < 1 or a.warmup < 1:
        ap.error("-n and --warmup must be at least 1 (the warm-up puts the cached token in the "
                 "cache)")
    a.agent = os.path.abspath(a.agent)
    if not os.access(a.agent, os.X_OK):
        ap.error("no agent binary at %s (build kova-agent, or --agent)" % a.agent)
    for b in ("keystone-manage", "uwsgi", "curl"):
        if not shutil.which(b):
            ap.error("%s is needed (apt-get install keystone uwsgi-core uwsgi-plugin-python3 "
                     "curl)" % b)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):  # Ctrl-C is Python's KeyboardInterrupt already
        if signal.getsignal(sig) != signal.SIG_IGN:  # (nohup's SIGHUP stays ignored)
            signal.signal(sig, on_term)

    tmp = tempfile.mkdtemp(prefix="kova-keystone-bench-")
    cleanups = []
    rc = 0
    try:
        bench(a, tmp, cleanups)
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        log("failed: %s" % e)
        for name, ag in getattr(bench, "agents", {}).items():
            log("agent %s's log (tail):\n%s" % (name, ag.read_log()[-3000:]))
        rc = 1
    finally:
        # a second Ctrl-C must not leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                log("cleanup: %s" % e)
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
