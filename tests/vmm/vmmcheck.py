# SPDX-License-Identifier: Apache-2.0
"""Shared by the kova-vmm test scripts (boot-tests.py, firmware-tests.py, cloud-image-tests.py):
named checks, and waiting for a VMM to exit.

check(cond, what) prints "ok   WHAT" or "FAIL WHAT", records a failure in `failures` (one list
for the whole program: import it, never rebind it) and returns cond.
wait_exit(proc, timeout) waits for the process, kills it after timeout seconds; its status."""
import subprocess

failures = []


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond
