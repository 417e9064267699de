/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-vmm's control protocol: one contract for the VMM (vmm.c), the agent's KVM driver and the
 * tests, with both sides of it: the client and the server's framing.
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
 *   sandbox-test  makes a system call the sandbox forbids (tests of the sandbox): a sandboxed
 *              VMM dies of SIGSYS and never answers; an unsandboxed one answers ok false
 * status also says "sandboxed": whether the sandbox (vmm/src/sandbox.h) is on.
 */
#ifndef KOVA_VMM_CONTROL_PROTOCOL_H
#define KOVA_VMM_CONTROL_PROTOCOL_H

#include <jansson.h>
#include <poll.h>
#include <stddef.h>

#define KOVA_VMM_PROTOCOL 1

#define KOVA_VMM_CMD_STATUS       "status"
#define KOVA_VMM_CMD_BOOT_TIME    "boot-time"
#define KOVA_VMM_CMD_PAUSE        "pause"
#define KOVA_VMM_CMD_RESUME       "resume"
#define KOVA_VMM_CMD_POWERDOWN    "powerdown"
#define KOVA_VMM_CMD_RESET        "reset"
#define KOVA_VMM_CMD_QUIT         "quit"
#define KOVA_VMM_CMD_SANDBOX_TEST "sandbox-test"

#define KOVA_VMM_STATE_RUNNING "running"
#define KOVA_VMM_STATE_PAUSED  "paused"

/* The client (libkova_vmm_control): sends {"cmd": cmd} to the socket at path and reads one reply
 * line within timeout_ms. 0 when it answers ok (its "state" field, if any, copied to state),
 * -EPROTO for an error reply or a reply that is not JSON (its "error" copied to error when
 * given), -ENAMETOOLONG for a path that does not fit sun_path, else -errno of the socket. */
int kova_vmm_control_call(const char *path, const char *cmd, int timeout_ms, char *state,
                          size_t state_len, char *error, size_t error_len);

/* ---- The server (libkova_vmm_control, control_server.c): kova-vmm's socket, and any stand-in
 * for it in tests. Malformed input (not JSON, not an object, no "cmd" string, a line longer than
 * KOVA_CTL_LINE_MAX) gets an error reply and never stops the server; a request's "id", if any,
 * is copied into its reply. Single-threaded: the caller polls and calls kova_ctl_process. */
#define KOVA_CTL_MAX_CLIENTS 8
#define KOVA_CTL_LINE_MAX    4096

/* Returns a new reply object for request req whose "cmd" is cmd (NULL: an "internal error"
 * reply). */
typedef json_t *(*kova_ctl_handler)(void *opaque, const char *cmd, json_t *req);

struct kova_ctl_client {
    int fd;
    size_t len;
    int overlong; /* discarding the rest of a line that was too long */
    char buf[KOVA_CTL_LINE_MAX];
};

struct kova_ctl_server {
    int listen_fd;
    char path[108];
    struct kova_ctl_client clients[KOVA_CTL_MAX_CLIENTS];
};

void kova_ctl_init(struct kova_ctl_server *s);
/* Binds and listens on path (mode 0600; an existing socket file there is replaced). 0 or
 * -errno (-ENAMETOOLONG when it does not fit sun_path). */
int kova_ctl_listen(struct kova_ctl_server *s, const char *path);
/* Adopts an already connected socket as a client (tests). 0 or -ENOSPC. */
int kova_ctl_add_client(struct kova_ctl_server *s, int fd);
/* Fills pfds (at most max) with the listening socket and the clients; returns how many. */
size_t kova_ctl_pollfds(struct kova_ctl_server *s, struct pollfd *pfds, size_t max);
/* Accepts, reads and answers on the ready fds among pfds[0..n). */
void kova_ctl_process(struct kova_ctl_server *s, const struct pollfd *pfds, size_t n,
                      kova_ctl_handler h, void *opaque);
/* Answers one request line (for the socket and for tests): a new reply object. */
json_t *kova_ctl_handle_line(const char *line, size_t len, kova_ctl_handler h, void *opaque);
/* Closes every socket and removes the socket file. */
void kova_ctl_close(struct kova_ctl_server *s);

#endif
