/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova compute: the compute manager between the API and a hypervisor driver (Nova's
 * nova/compute/manager.py): it runs the server tasks, serialised per server, watches for
 * instances that stop by themselves, and reconciles the database with what runs after an agent
 * restart.
 *
 * Contract:
 *  - The API accepts an action with kova_compute_accept() inside its own transaction (the
 *    state check of kova/states.h and the move into the action's task_state happen together, so
 *    a second action meanwhile gets a conflict), commits, then calls kova_compute_submit().
 *  - A task runs on cfg->submit's worker threads (inline when there is none). Tasks of one server
 *    run one at a time, in order of submission; a task ends by writing the server's end state
 *    and clearing task_state, only while task_state is still its own (a delete may have taken
 *    the server over meanwhile). A failed driver step ends the task with the state Nova gives
 *    it and the driver's message as the server's fault / the action event's traceback.
 *  - An instance that stops by itself (guest power-off, VMM crash, kill -9) makes its server
 *    SHUTOFF (vm_state stopped, power_state 4) at once, or when the task holding it ends.
 *  - kova_compute_start() runs before the API listens: live instances are adopted, dead ones
 *    make their servers SHUTOFF, interrupted tasks get an end state, instances the driver finds
 *    without a row are destroyed, VMMs nobody owns are killed. kova_compute_resume() runs
 *    after the API listens and requeues the builds and deletes a previous agent left.
 *  - The manager never forks or touches files itself: the driver does.
 * Errors: 0 or -errno.
 */
#ifndef KOVA_COMPUTE_H
#define KOVA_COMPUTE_H

#include "kova/driver.h"
#include "kova/states.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct kova_db;
struct kova_compute;
struct kova_net_def;

/* A unit of slow work for a worker thread; the manager owns arg and frees it in fn. */
typedef void (*kova_compute_task_fn)(void *arg);

struct kova_compute_config {
    struct kova_db *db;
    /* Queue fn(arg) on a worker; 0 or -errno (then the manager runs it inline). NULL: inline. */
    int (*submit)(void *opaque, kova_compute_task_fn fn, void *arg);
    void *submit_opaque;
    /* kova's networks (kova/network.h): a server's ports (kova_db_port) name one of them; its
     * bridge and MTU go to the driver with the NIC. Not owned; valid while the manager runs. */
    const struct kova_net_def *networks;
    size_t nnetworks;
    /* Nova's [api]dhcp_domain: the config drive's hostname is "<name>.<dhcp_domain>"; NULL or
     * "": the name alone. */
    const char *dhcp_domain;
    /* Called after a delete removed a server's ports (DHCP forgets them); NULL: none. */
    void (*ports_changed)(void *opaque);
    void *ports_opaque;
};

int kova_compute_new(const struct kova_compute_config *cfg, struct kova_compute **out);
/* The kova_exit_fn to give the driver (opaque: the struct kova_compute). */
void kova_compute_instance_exited(void *compute, const char *uuid, const struct kova_vmm_ref *ref,
                                  const char *how);
/* Attaches the driver (owned by the caller, freed after kova_compute_free) and reconciles. */
int kova_compute_start(struct kova_compute *c, struct kova_driver *driver);
/* Requeues the unfinished builds and deletes; returns how many, or -errno. */
int kova_compute_resume(struct kova_compute *c);

/* Why an action was refused: the server's state when it was checked. */
struct kova_conflict {
    enum kova_vm_state vm;
    enum kova_task_state task;
};
/* In the caller's open write transaction on conn: 0 when the action is allowed for server id
 * (now in the action's task_state), -EBUSY when the state forbids it (*why filled), -ENOENT,
 * -EINVAL for an action without a task, -EIO. Commit, then kova_compute_submit(). */
int kova_compute_accept(sqlite3 *conn, const char *id, const struct kova_action *a,
                        struct kova_conflict *why);
/* Queues the task of an accepted action. */
int kova_compute_submit(struct kova_compute *c, const char *id, enum kova_op op);

/* `length` for kova_compute_console_output() meaning "not given" (Nova: all lines). */
#define KOVA_COMPUTE_CONSOLE_ALL INT64_MIN
/* The last `length` lines (-1 or KOVA_COMPUTE_CONSOLE_ALL: all) of the server's console log, as
 * Nova's os-getConsoleOutput gives them; *out is malloc'd (free() it). */
int kova_compute_console_output(struct kova_compute *c, const char *id, int64_t length, char **out,
                                size_t *outlen, char *err, size_t errlen);

/* Frees the manager; the caller has drained the tasks first. Instances keep running. */
void kova_compute_free(struct kova_compute *c);

#endif
