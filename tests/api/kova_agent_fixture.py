# SPDX-License-Identifier: Apache-2.0
"""Starts a real kova-agent on free loopback ports with a temporary state dir, and stops it.

Used by the api.* tests (run with Debian's /usr/bin/python3, stdlib only). The agent is always
stopped, even when a test fails; a sanitizer report or an unclean exit fails the run.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


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
