# SPDX-License-Identifier: Apache-2.0
"""Shared by the kova-vmm test scripts (boot-tests.py, firmware-tests.py): named checks.

check(cond, what) prints "ok   WHAT" or "FAIL WHAT", records a failure in `failures` (one list
for the whole program: import it, never rebind it) and returns cond."""
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond
