/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-vmm's control protocol: one contract for the VMM (vmm.c), the agent's KVM driver and the
 * tests.
 *
 * Wire format: a Unix stream socket (--control-socket PATH). Each request is one JSON object on
 * one line, {"cmd": NAME}; each reply is one JSON object on one line, {"ok": true, ...fields}
 * or {"ok": false, "error": TEXT}. Requests on one connection are answered in order.
 *
 * Commands (KOVA_VMM_CMD_*) and the fields of their ok replies:
 *   status     state ("running" | "paused"), vcpus, memory_mib, uptime_s, vmm_uptime_s, boots,
 *              boot_time_ms (null until the guest's init signalled), pid, unhandled_pio,
 *              unhandled_mmio, protocol (KOVA_VMM_PROTOCOL)
 *   boot-time  boot_time_ms, since ("vmm-start" | "reset")
 *   pause      the vCPUs stop; resume (alias cont) lets them run again
 *   powerdown  presses the ACPI power button (refused while paused)
 *   reset      resets the machine (the process stays)
 *   quit       the VMM exits at once
 */
#ifndef KOVA_VMM_CONTROL_PROTOCOL_H
#define KOVA_VMM_CONTROL_PROTOCOL_H

#include <stddef.h>

#define KOVA_VMM_PROTOCOL 1

#define KOVA_VMM_CMD_STATUS    "status"
#define KOVA_VMM_CMD_BOOT_TIME "boot-time"
#define KOVA_VMM_CMD_PAUSE     "pause"
#define KOVA_VMM_CMD_RESUME    "resume"
#define KOVA_VMM_CMD_POWERDOWN "powerdown"
#define KOVA_VMM_CMD_RESET     "reset"
#define KOVA_VMM_CMD_QUIT      "quit"

#define KOVA_VMM_STATE_RUNNING "running"
#define KOVA_VMM_STATE_PAUSED  "paused"

/* The client (libkova_vmm_control): sends {"cmd": cmd} to the socket at path and reads one reply
 * line within timeout_ms. 0 when it answers ok (its "state" field, if any, copied to state),
 * -EPROTO for an error reply or a reply that is not JSON (its "error" copied to error when
 * given), -ENAMETOOLONG for a path that does not fit sun_path, else -errno of the socket. */
int kova_vmm_control_call(const char *path, const char *cmd, int timeout_ms, char *state,
                          size_t state_len, char *error, size_t error_len);

#endif
