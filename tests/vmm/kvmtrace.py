# SPDX-License-Identifier: Apache-2.0
"""KVM's own trace events (tracefs) for the boot tests and the reboot stress tool.

On AMD (SVM; the nested-KVM test VM emulates an AMD CPU) KVM INITs a vCPU when it shuts down, so
by the time kova-vmm reads the registers at a triple fault they are the reset state and what the
guest executed is gone. KVM's trace events keep it: every exit with the guest RIP, the exceptions
KVM injected, nested page faults. start() turns them on (root and tracefs needed; returns False
where that is not possible, e.g. outside the nested VM), triple_fault_report() prints the last
events of the thread of the vCPU that kova-vmm's log names.
"""
import os
import subprocess

TRACE = "/sys/kernel/tracing"
EVENTS = ["kvm_exit", "kvm_inj_exception", "kvm_page_fault", "kvm_inj_virq", "kvm_cr", "kvm_msr",
          "kvm_userspace_exit", "kvm_apic_ipi"]


def _w(name, value):
    with open(os.path.join(TRACE, name), "w") as f:
        f.write(value)


def start(buffer_kb=8192):
    """Starts recording KVM events; True if it could."""
    try:
        if not os.path.exists(os.path.join(TRACE, "trace")):
            subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACE], check=False,
                           capture_output=True)
        _w("tracing_on", "0")
        _w("buffer_size_kb", str(buffer_kb))
        _w("trace", "")
        n = 0
        for ev in EVENTS:
            if os.path.exists(os.path.join(TRACE, "events", "kvm", ev, "enable")):
                _w(os.path.join("events", "kvm", ev, "enable"), "1")
                n += 1
        _w("tracing_on", "1")
        return n > 0
    except OSError:
        return False


def clear():
    try:
        _w("trace", "")
    except OSError:
        pass


def triple_fault_report(stderr_text, last=80):
    """The last KVM events of the vCPU that kova-vmm reported a triple fault on, as text; ''
    when there was none or no trace."""
    vcpu = None
    for line in stderr_text.splitlines():
        if "triple fault (KVM_EXIT_SHUTDOWN)" in line and "vcpu " in line:
            vcpu = line.split("vcpu ", 1)[1].split(":", 1)[0]
    if vcpu is None:
        return ""
    try:
        _w("tracing_on", "0")
        with open(os.path.join(TRACE, "trace"), errors="replace") as f:
            lines = f.read().splitlines()
        _w("tracing_on", "1")
    except OSError:
        return ""
    # kvm_exit names the vCPU; its thread (the task-pid column) has all of that vCPU's events.
    tasks = {x.split()[0] for x in lines if f" vcpu {vcpu} " in x and x.split()}
    sel = [x for x in lines if x.split()[:1] and x.split()[0] in tasks]
    head = f"--- KVM trace: last {min(last, len(sel))} events of vCPU {vcpu}'s thread ---"
    return "\n".join([head] + sel[-last:])
