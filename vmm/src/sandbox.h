/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-vmm's sandbox: what a guest that took over kova-vmm could still do. Modelled on
 * Firecracker's jailer and its per-thread seccomp filters.
 *
 * Two steps, in this order:
 *  1. sandbox_process(), once, on the main thread, after every file, device and socket the VMM
 *     needs is open (/dev/kvm, disks, console log, control socket) and BEFORE any other thread
 *     exists: drops to an unprivileged uid/gid (no supplementary groups) when running as root,
 *     sets no_new_privs, and (where the kernel has Landlock) limits the file system to the
 *     directories named (read-write beneath them: the console log's rotation) and nothing else.
 *  2. sandbox_thread(kind) by each thread before it does its work: a seccomp allow-list for that
 *     kind, built with libseccomp; any other system call kills the whole process (SIGSYS). The
 *     main thread loads SANDBOX_CONTROL right after step 1; vCPU and I/O threads are created by
 *     it afterwards, so they run under the control list AND their own (filters stack), which
 *     is narrower: a vCPU thread cannot accept, open sockets or create threads; an I/O thread
 *     cannot touch KVM.
 * Nothing here is undone. Errors: 0 or -errno with a reason in why; a process that asked for
 * the sandbox and did not get it must not run the guest (kova-vmm exits).
 */
#ifndef KOVA_VMM_SANDBOX_H
#define KOVA_VMM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SANDBOX_MAX_DIRS 4

struct sandbox_config {
    bool set_ids; /* change to uid/gid (needs root) */
    uid_t uid;
    gid_t gid;
    const char *rw_dirs[SANDBOX_MAX_DIRS]; /* Landlock: full access beneath these */
    unsigned nrw;
};

enum sandbox_kind {
    SANDBOX_CONTROL, /* the main thread: control socket, VM (re)creation, thread creation */
    SANDBOX_VCPU,    /* KVM_RUN and the device emulation it calls (serial, PCI, fw_cfg …) */
    SANDBOX_IO,      /* virtio-blk workers: disk reads, writes, flushes */
    SANDBOX_NET,     /* virtio-net workers: tap reads and writes, TUNSETOFFLOAD, poll */
};

/* "NAME" or "UID[:GID]" into uid and gid (a name's primary group). -ENOENT for an unknown user,
 * -EINVAL for a bad number. */
int sandbox_parse_user(const char *spec, uid_t *uid, gid_t *gid);

/* Step 1. Landlock missing from the kernel is not an error (*landlock tells, for the log). */
int sandbox_process(const struct sandbox_config *c, bool *landlock, const char **why);

/* Step 2, for the calling thread only; nothing (0) when sandbox_process() did not run (the
 * process runs with --no-sandbox, or is a unit test). */
int sandbox_thread(enum sandbox_kind kind, const char **why);

/* Whether sandbox_process() ran (and succeeded) in this process. */
bool sandbox_active(void);

/* For tests of the sandbox itself: makes a system call no thread kind may make (an IP
 * socket); under
 * the sandbox the process dies of SIGSYS and this never returns. Without it, returns -errno. */
int sandbox_violate(void);

#endif
