# SPDX-License-Identifier: Apache-2.0
"""Starts a real kova-agent on free loopback ports with a temporary state dir, and stops it.

Used by the api.* tests and tests/lifecycle (run with Debian's /usr/bin/python3, stdlib only). The
agent is always stopped, even when a test fails; a sanitizer report or an unclean exit fails the
run.

Besides Agent, the pieces those tests share:
  Agent.set_server_state(sid, vm_state, task_state)
                        a server's state written in state.db as another process would.
  stop_checked(agent)   stops and removes the agent; AssertionError on an unclean exit or a
                        sanitizer report (for tearDownModule).
  token_cloud(name, token), openstack_env(tmp, port, image_port, extra_clouds="")
                        clouds.yaml for Debian's openstack CLI against the agent (cloud "kova":
                        token "admin:admin", endpoint overrides) and the environment that uses it.
  unittest_main(doc, configure, options)
                        a test program's main: --OPTION VALUE arguments, then unittest; exit status.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import sys
import time
import unittest


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, binary, extra_args=(), config_text=None):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.config_text = config_text
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="kova-api-test-")
        self.state_dir = os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "agent.log")

    def start(self):
        for _attempt in range(5):
            self.port = free_port()
            self.image_port = free_port()
            args = [self.binary, "--state-dir", self.state_dir,
                    "--listen", "127.0.0.1:%d" % self.port,
                    "--image-listen", "127.0.0.1:%d" % self.image_port] + self.extra_args
            if self.config_text is not None:
                cfg = os.path.join(self.tmp, "kova.conf")
                with open(cfg, "w") as f:
                    f.write(self.config_text)
                args = [args[0], "--config", cfg] + args[1:]
            self.log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
            deadline = time.time() + 30
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    c.request("GET", "/")
                    # 200 from our agent: another process (a parallel test run) may have taken
                    # the port after free_port() let it go, and answer while ours failed to bind
                    if (c.getresponse().status == 200 and self.proc.poll() is None and
                            ("compute API on http://127.0.0.1:%d/" % self.port) in
                            self.read_log()):
                        c.close()
                        return self
                    c.close()
                    time.sleep(0.05)
                except OSError:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
        raise RuntimeError("kova-agent did not start; log:\n" + self.read_log())

    def set_server_state(self, sid, vm_state, task_state=None):
        """Sets a server's vm_state and task_state in the agent's state.db directly: a write by
        another process, which the agent's own commit counting cannot see."""
        db = sqlite3.connect(os.path.join(self.state_dir, "state.db"), timeout=10)
        db.execute("UPDATE servers SET vm_state = ?, task_state = ? WHERE id = ?",
                   (vm_state, task_state, sid))
        db.commit()
        db.close()

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; returns (exit code, log). Kills it if it does not stop in 20 s."""
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = "killed after SIGTERM timeout"
        elif self.proc:
            rc = self.proc.returncode
        if self.proc:
            self.log.close()
        log = self.read_log()
        self.proc = None
        return rc, log

    def cleanup(self):
        if self.proc:
            self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def request(self, method, path, body=None, token="demo:demo", headers=None, image=False,
                raw=None):
        """Returns (status, headers dict (lower-case), parsed JSON or raw bytes)."""
        port = self.image_port if image else self.port
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        h = {}
        if token is not None:
            h["X-Auth-Token"] = token
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        c.request(method, path, body=data, headers=h)
        resp = c.getresponse()
        payload = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        c.close()
        ctype = hdrs.get("content-type", "")
        if payload and ctype.startswith("application/json"):
            return resp.status, hdrs, json.loads(payload)
        return resp.status, hdrs, payload


def sanitizer_problems(log):
    markers = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
               "ERROR: UndefinedBehaviorSanitizer")
    return [m for m in markers if m in log]


def stop_checked(agent):
    """Stops the agent and removes its temporary dir; raises AssertionError (with the log's tail)
    when it exited non-zero or its log has a sanitizer report."""
    rc, log = agent.stop()
    agent.cleanup()
    problems = sanitizer_problems(log)
    if rc != 0 or problems:
        raise AssertionError("agent exit %r, sanitizer: %r\n%s" % (rc, problems, log[-4000:]))


def token_cloud(name, token):
    """A clouds.yaml entry (indented under "clouds:") for cloud name with admin_token auth, token
    "user:project" (noauth2), and the agent's compute and image listeners as endpoint overrides;
    the text keeps %(p)d (compute port) and %(ip)d (image port) for openstack_env to fill in."""
    return """  %s:
    auth_type: admin_token
    auth:
      endpoint: http://127.0.0.1:%%(p)d/v2.1
      token: "%s"
    compute_endpoint_override: http://127.0.0.1:%%(p)d/v2.1
    image_endpoint_override: http://127.0.0.1:%%(ip)d/
""" % (name, token)


def openstack_env(tmp, port, image_port, extra_clouds=""):
    """Writes tmp/clouds.yaml with cloud "kova" (token_cloud("kova", "admin:admin")) and then
    extra_clouds (more entries, %(p)d and %(ip)d filled in with port and image_port), and returns
    the environment for the openstack CLI: the caller's without OS_* and PYTHONPATH,
    OS_CLIENT_CONFIG_FILE set to that file and HOME=tmp (no user clouds.yaml or cache)."""
    clouds = os.path.join(tmp, "clouds.yaml")
    with open(clouds, "w") as f:
        f.write(("clouds:\n" + token_cloud("kova", "admin:admin") + extra_clouds) %
                {"p": port, "ip": image_port})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_CLIENT_CONFIG_FILE=clouds, HOME=tmp)
    env.pop("PYTHONPATH", None)
    return env


def unittest_main(doc, configure, options=("--agent",)):
    """The main of a test program run as `PROG --agent PATH [--OPTION VALUE...] [unittest args]`.

    Takes "--OPTION VALUE" for each name in options out of sys.argv (any order; the rest goes to
    unittest), calls configure(values), values a dict by option name with only those given
    (--agent made absolute), then runs the __main__ module's tests verbosely. Returns the exit
    status: 2 (printing doc) without --agent, 1 when any test failed or errored, else 0."""
    args = sys.argv[1:]
    values, rest = {}, []
    while args:
        a = args.pop(0)
        if a in options and args:
            values[a] = args.pop(0)
        else:
            rest.append(a)
    if "--agent" not in values:
        print(doc)
        return 2
    values["--agent"] = os.path.abspath(values["--agent"])
    configure(values)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1
