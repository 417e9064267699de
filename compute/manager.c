/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compute manager (kova/compute.h): tasks serialised per server, exits recorded as SHUTOFF,
 * restart reconciliation. Everything it does to an instance goes through the driver; everything
 * it records goes through kova db's typed functions.
 */
#include "kova/common.h"
#include "kova/compute.h"
#include "kova/db.h"
#include "kova/layout.h"
#include "kova/metadata.h"
#include "kova/network.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A server the manager knows while a task holds it or one waits for it. */
struct server_slot {
    char id[KOVA_DB_ID_MAX];
    struct server_slot *next;
    unsigned waiters;
    bool busy;         /* a task holds it */
    bool exit_pending; /* its instance stopped while a task held it: record at release */
    pid_t exit_pid;
    char exit_how[64];
};

struct kova_compute {
    struct kova_compute_config cfg;
    struct kova_driver *drv;
    pthread_mutex_t lock;
    pthread_cond_t released;
    struct server_slot *slots;
};

struct task {
    struct kova_compute *c;
    enum kova_op op;
    char id[KOVA_DB_ID_MAX];
};

#define ERRLEN KOVA_DRIVER_ERR_MAX

/* ------------------------------------------------------------------ per-server serialisation */

static struct server_slot *slot_find(struct kova_compute *c, const char *id)
{
    for (struct server_slot *s = c->slots; s; s = s->next)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

/* Waits until no task holds the server, then holds it. NULL when out of memory. */
static struct server_slot *slot_acquire(struct kova_compute *c, const char *id)
{
    pthread_mutex_lock(&c->lock);
    struct server_slot *s = slot_find(c, id);
    if (!s && (s = calloc(1, sizeof(*s)))) {
        snprintf(s->id, sizeof(s->id), "%s", id);
        s->next = c->slots;
        c->slots = s;
    }
    if (s) {
        s->waiters++;
        while (s->busy)
            pthread_cond_wait(&c->released, &c->lock);
        s->waiters--;
        s->busy = true;
    }
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void record_exit(struct kova_compute *c, const char *id, pid_t pid, const char *how);

static void slot_release(struct kova_compute *c, struct server_slot *s)
{
    char id[KOVA_DB_ID_MAX], how[64];
    pthread_mutex_lock(&c->lock);
    bool rec = s->exit_pending;
    pid_t pid = s->exit_pid;
    snprintf(id, sizeof(id), "%s", s->id);
    snprintf(how, sizeof(how), "%s", s->exit_how);
    s->exit_pending = false;
    s->busy = false;
    if (!s->waiters) {
        for (struct server_slot **pp = &c->slots; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        free(s);
    }
    pthread_cond_broadcast(&c->released);
    pthread_mutex_unlock(&c->lock);
    if (rec)
        record_exit(c, id, pid, how);
}

/* ------------------------------------------------------------------ recording */

static void record_exit(struct kova_compute *c, const char *id, pid_t pid, const char *how)
{
    sqlite3 *conn = kova_db_acquire(c->cfg.db);
    int r = kova_db_server_record_exit(conn, id, pid);
    kova_db_release(c->cfg.db, conn);
    if (r <= 0) {
        if (r < 0)
            kova_log(0, "server %s: cannot record the exit of its VMM: %s", id, strerror(-r));
        return;
    }
    /* the wall-clock time with microseconds: tests compare it with the kill's */
    char at[32], last[512] = "";
    kova_time_iso(at, false);
    if (c->drv->ops->last_words)
        c->drv->ops->last_words(c->drv, id, last, sizeof(last));
    kova_log(1, "server %s: kova-vmm %d exited: SHUTOFF recorded at %sZ (%s%s%s)", id, (int)pid, at,
             how && how[0] ? how : "not our child", last[0] ? "; its log: " : "", last);
}

void kova_compute_instance_exited(void *compute, const char *uuid, const struct kova_vmm_ref *ref,
                                  const char *how)
{
    struct kova_compute *c = compute;
    pthread_mutex_lock(&c->lock);
    struct server_slot *s = slot_find(c, uuid);
    bool defer = s && s->busy;
    if (defer) {
        s->exit_pending = true;
        s->exit_pid = ref->pid;
        snprintf(s->exit_how, sizeof(s->exit_how), "%s", how ? how : "");
    }
    pthread_mutex_unlock(&c->lock);
    if (!defer)
        record_exit(c, uuid, ref->pid, how);
}

static void note_ref(void *opaque, const struct kova_vmm_ref *ref)
{
    struct task *t = opaque;
    sqlite3 *conn = kova_db_acquire(t->c->cfg.db);
    if (kova_db_server_set_vmm(conn, t->id, ref->pid, ref->start) < 0)
        kova_log(0, "server %s: cannot record its VMM pid", t->id);
    kova_db_release(t->c->cfg.db, conn);
}

static void clear_ref(struct task *t)
{
    sqlite3 *conn = kova_db_acquire(t->c->cfg.db);
    kova_db_server_set_vmm(conn, t->id, 0, 0);
    kova_db_release(t->c->cfg.db, conn);
}

/* The task's end (see kova_db_server_finish). */
struct end {
    enum kova_vm_state vm;
    enum kova_power_state power;
    bool vmm_gone, launched;
    int fault_code;
    const char *fault;
};

static void finish(struct task *t, const struct end *e)
{
    const struct kova_action *a = kova_action_of_op(t->op);
    const char *task = kova_task_state_name(t->op == KOVA_OP_BUILD ? KOVA_TASK_SPAWNING : a->task);
    struct kova_db_task_end de = {
        .id = t->id,
        .task = task,
        .vm_state = kova_vm_state_name(e->vm),
        .power_state = (int)e->power,
        .vmm_gone = e->vmm_gone,
        .launched = e->launched,
        .fault_code = e->fault_code,
        .fault = e->fault,
    };
    int r = kova_db_server_finish(t->c->cfg.db, &de);
    if (r < 0)
        kova_log(0, "server %s: cannot record the end of %s: %s", t->id, task, strerror(-r));
    else if (r > 0 && e->fault)
        kova_log(0, "server %s: %s failed: %s", t->id, task, e->fault);
    else if (r > 0)
        kova_log(1, "server %s: %s done: %s", t->id, task, de.vm_state);
}

static void fail(struct task *t, enum kova_vm_state vm, enum kova_power_state power, int code,
                 const char *err, int r)
{
    struct end e = {vm, power, true, false, code, err && err[0] ? err : strerror(-r)};
    finish(t, &e);
}

/* ------------------------------------------------------------------ what a server boots */

/* Resolves the server's image (and its kernel and ramdisk) into a boot spec, checks that they
 * are active, asks the driver to prepare the disks, and records what it boots: the kernel of a
 * kernel_id image directly, else the disk through firmware (as Nova boots a cloud image). */
static int prepare(struct task *t, struct kova_db_server *w, int *code, char *err, size_t errlen)
{
    struct kova_db_image im = {0}, km = {0}, rm = {0};
    struct kova_md_source src = {0};
    struct kova_md_file *cfiles = NULL;
    size_t ncfiles = 0;
    json_t *props = NULL;
    sqlite3 *conn = kova_db_acquire(t->c->cfg.db);
    int r = kova_db_image_get(conn, w->image_ref, &im);
    if (r == -ENOENT)
        snprintf(err, errlen, "Image %.64s could not be found.", w->image_ref);
    else if (r == 0 && strcmp(im.status, "active")) {
        snprintf(err, errlen, "Image %.64s is not active.", w->image_ref);
        r = -EINVAL;
    }
    if (r < 0)
        goto out;
    enum kova_disk_kind fmt;
    if (!strcmp(im.disk_format, "qcow2"))
        fmt = KOVA_BOOT_DISK_QCOW2;
    else if (!strcmp(im.disk_format, "raw") || !strcmp(im.disk_format, "ami") || !im.disk_format[0])
        fmt = KOVA_BOOT_DISK_RAW;
    else {
        snprintf(err, errlen, "Image %s has disk_format %s: kova boots raw and qcow2 images.",
                 w->image_ref, im.disk_format);
        r = -EINVAL;
        goto out;
    }
    props = json_loads(im.properties, 0, NULL);
    const char *kid = json_string_value(json_object_get(props, "kernel_id"));
    const char *rid = json_string_value(json_object_get(props, "ramdisk_id"));
    const char *cmd = json_string_value(json_object_get(props, "os_command_line"));
    const char *fwt = json_string_value(json_object_get(props, "hw_firmware_type"));
    if (kid && !kova_is_uuid(kid)) {
        snprintf(err, errlen, "Image %s has an invalid kernel_id.", w->image_ref);
        r = -EINVAL;
        goto out;
    }
    if (!kid && fwt && strcmp(fwt, "bios")) {
        /* no kernel: the disk boots through firmware, and kova's is a BIOS (SeaBIOS) */
        snprintf(err, errlen,
                 "Image %s has hw_firmware_type=%.16s: kova boots disks through BIOS firmware "
                 "only (hw_firmware_type=bios, or unset).",
                 w->image_ref, fwt);
        r = -EINVAL;
        goto out;
    }
    if (rid && (!kid || !kova_is_uuid(rid))) {
        snprintf(err, errlen, "Image %s has an invalid ramdisk_id.", w->image_ref);
        r = -EINVAL;
        goto out;
    }
    const char *ids[2] = {kid, rid};
    struct kova_db_image *ms[2] = {&km, &rm};
    for (int k = 0; k < 2 && ids[k]; k++) {
        r = kova_db_image_get(conn, ids[k], ms[k]);
        if (r == -ENOENT)
            snprintf(err, errlen, "Image %.64s could not be found.", ids[k]);
        else if (r == 0 && strcmp(ms[k]->status, "active")) {
            snprintf(err, errlen, "Image %.64s is not active.", ids[k]);
            r = -EINVAL;
        }
        if (r < 0)
            goto out;
    }
    /* a kernel_id image boots that kernel directly; any other boots its disk through firmware */
    snprintf(w->kernel_id, sizeof(w->kernel_id), "%s", kid ? kid : "");
    snprintf(w->ramdisk_id, sizeof(w->ramdisk_id), "%s", rid ? rid : "");
    snprintf(w->cmdline, sizeof(w->cmdline), "%s", !kid ? "" : cmd ? cmd : "console=ttyS0");
    struct kova_boot_spec spec = {
        .uuid = t->id,
        .image_id = w->image_ref,
        .image_format = fmt,
        .kernel_id = kid ? w->kernel_id : NULL,
        .ramdisk_id = rid ? w->ramdisk_id : NULL,
        .cmdline = w->cmdline,
        .vcpus = (unsigned)w->vcpus,
        .ram_mib = (unsigned long long)w->ram,
        .root_gib = (unsigned long long)w->disk,
    };
    if (w->config_drive) { /* its files now, from the server as it is at this (re)build */
        r = kova_md_source_load(conn, t->id, t->c->cfg.networks, t->c->cfg.nnetworks,
                                t->c->cfg.dhcp_domain, &src);
        if (r == 0)
            r = kova_md_config_drive_files(&src.in, &cfiles, &ncfiles);
        if (r < 0) {
            snprintf(err, errlen, "cannot gather the config drive's metadata: %s",
                     r == -EINVAL ? "the server's user data or metadata is invalid" : strerror(-r));
            goto out;
        }
        spec.config_files = cfiles;
        spec.nconfig_files = ncfiles;
    }
    kova_db_release(t->c->cfg.db, conn);
    conn = NULL;
    if ((r = t->c->drv->ops->prepare(t->c->drv, &spec, code, err, errlen)) < 0)
        goto out;
    conn = kova_db_acquire(t->c->cfg.db);
    if ((r = kova_db_server_set_boot(conn, t->id, w->kernel_id, w->ramdisk_id, w->cmdline)) < 0)
        snprintf(err, errlen, "database error");
out:
    if (conn)
        kova_db_release(t->c->cfg.db, conn);
    json_decref(props);
    kova_md_files_free(cfiles, ncfiles);
    kova_md_source_free(&src);
    kova_db_image_free(&im);
    kova_db_image_free(&km);
    kova_db_image_free(&rm);
    return r < 0 ? r : 0;
}

/* The server's NICs from its ports: tap names and networks' bridges in p (KOVA_DB_PORTS_MAX). */
struct nics {
    struct kova_boot_nic nic[KOVA_DB_PORTS_MAX];
    char tap[KOVA_DB_PORTS_MAX][KOVA_NET_IFNAME];
    struct kova_db_port *ports;
    size_t n;
};

static int load_nics(struct task *t, struct nics *ns, char *err, size_t errlen)
{
    memset(ns, 0, sizeof(*ns));
    sqlite3 *conn = kova_db_acquire(t->c->cfg.db);
    int r = kova_db_port_list(conn, t->id, &ns->ports, &ns->n);
    kova_db_release(t->c->cfg.db, conn);
    if (r < 0) {
        snprintf(err, errlen, "database error");
        return r;
    }
    if (ns->n > KOVA_DB_PORTS_MAX) {
        snprintf(err, errlen, "the server has %zu ports; kova-vmm takes %d", ns->n,
                 KOVA_DB_PORTS_MAX);
        return -E2BIG;
    }
    for (size_t i = 0; i < ns->n; i++) {
        const struct kova_db_port *p = &ns->ports[i];
        const struct kova_net_def *d = NULL;
        for (size_t k = 0; k < t->c->cfg.nnetworks; k++)
            if (strcmp(t->c->cfg.networks[k].uuid, p->network_id) == 0)
                d = &t->c->cfg.networks[k];
        if (!d) {
            snprintf(err, errlen,
                     "network %s (%.64s) of port %s is not in the agent's configuration",
                     p->network_id, p->network_name, p->id);
            return -ENOENT;
        }
        kova_net_port_tap(p->id, ns->tap[i]);
        ns->nic[i] = (struct kova_boot_nic){ns->tap[i], p->mac, d->bridge, d->mtu};
    }
    return 0;
}

static int spawn(struct task *t, const struct kova_db_server *w, char *err, size_t errlen)
{
    struct nics ns;
    int r = load_nics(t, &ns, err, errlen);
    if (r < 0) {
        free(ns.ports);
        return r;
    }
    bool direct = w->kernel_id[0] != 0; /* else firmware boot */
    struct kova_boot_spec spec = {
        .uuid = t->id,
        .image_id = w->image_ref,
        .kernel_id = direct ? w->kernel_id : NULL,
        .ramdisk_id = direct && w->ramdisk_id[0] ? w->ramdisk_id : NULL,
        .cmdline = !direct         ? NULL
                   : w->cmdline[0] ? w->cmdline
                                   : "console=ttyS0",
        .vcpus = (unsigned)w->vcpus,
        .ram_mib = (unsigned long long)w->ram,
        .root_gib = (unsigned long long)w->disk,
        .nics = ns.nic,
        .nnics = (unsigned)ns.n,
        .config_drive = w->config_drive,
    };
    r = t->c->drv->ops->spawn(t->c->drv, &spec, note_ref, t, err, errlen);
    free(ns.ports);
    return r;
}

/* ------------------------------------------------------------------ tasks */

static void do_build(struct task *t, struct kova_db_server *w)
{
    char err[ERRLEN] = "";
    int code = 500;
    struct kova_driver *d = t->c->drv;
    if (strcmp(w->vm_state, "building") != 0)
        return;
    /* the API records 'scheduling'; the build owns the server from here */
    sqlite3 *conn = kova_db_acquire(t->c->cfg.db);
    int claimed = kova_db_server_claim_build(conn, t->id);
    kova_db_release(t->c->cfg.db, conn);
    if (claimed <= 0)
        return;
    /* an instance left by an interrupted earlier attempt (adopted at start-up) goes first */
    d->ops->power_off(d, t->id, KOVA_POWER_OFF_KILL);
    int r = prepare(t, w, &code, err, sizeof(err));
    if (r == 0)
        r = spawn(t, w, err, sizeof(err));
    if (r < 0) {
        d->ops->power_off(d, t->id, KOVA_POWER_OFF_KILL);
        fail(t, KOVA_VM_ERROR, KOVA_POWER_NOSTATE, code, err, r);
        return;
    }
    finish(t, &(struct end){KOVA_VM_ACTIVE, KOVA_POWER_RUNNING, false, true, 0, NULL});
}

/* Boots the instance again (start, reboot). A failed start leaves it stopped, as Nova does (the
 * action's event records the error; the server is not put in ERROR); a failed reboot makes it
 * ERROR. Either way the driver has left nothing running. */
static void boot_again(struct task *t, const struct kova_db_server *w, bool fail_stopped)
{
    char err[ERRLEN] = "";
    int r = spawn(t, w, err, sizeof(err));
    if (r < 0)
        fail(t, fail_stopped ? KOVA_VM_STOPPED : KOVA_VM_ERROR, KOVA_POWER_SHUTDOWN, 500, err, r);
    else
        finish(t, &(struct end){KOVA_VM_ACTIVE, KOVA_POWER_RUNNING, false, false, 0, NULL});
}

static void do_rebuild(struct task *t, struct kova_db_server *w)
{
    char err[ERRLEN] = "";
    int code = 500;
    struct kova_driver *d = t->c->drv;
    bool was_stopped = !strcmp(w->vm_state, "stopped");
    d->ops->power_off(d, t->id, KOVA_POWER_OFF_CLEAN);
    clear_ref(t);
    int r = d->ops->destroy(d, t->id, err, sizeof(err));
    if (r < 0 && r != -ENOENT)
        goto fail;
    if ((r = prepare(t, w, &code, err, sizeof(err))) < 0)
        goto fail;
    if (was_stopped) {
        finish(t, &(struct end){KOVA_VM_STOPPED, KOVA_POWER_SHUTDOWN, true, false, 0, NULL});
        return;
    }
    if ((r = spawn(t, w, err, sizeof(err))) < 0)
        goto fail;
    finish(t, &(struct end){KOVA_VM_ACTIVE, KOVA_POWER_RUNNING, false, true, 0, NULL});
    return;
fail:
    fail(t, KOVA_VM_ERROR, KOVA_POWER_SHUTDOWN, code, err, r);
}

static void do_delete(struct task *t)
{
    char err[ERRLEN] = "";
    struct kova_driver *d = t->c->drv;
    d->ops->power_off(d, t->id, KOVA_POWER_OFF_QUIT);
    int r = d->ops->destroy(d, t->id, err, sizeof(err));
    if (r < 0 && r != -ENOENT)
        kova_log(0, "server %s: cannot remove its files: %s", t->id, err);
    sqlite3 *conn = kova_db_acquire(t->c->cfg.db);
    r = kova_db_server_delete(conn, t->id);
    kova_db_release(t->c->cfg.db, conn);
    if (r < 0) {
        kova_log(0, "server %s: cannot delete its row", t->id);
    } else {
        kova_log(1, "server %s: deleted", t->id);
        if (t->c->cfg.ports_changed) /* its ports went with the row: their fixed IPs are free */
            t->c->cfg.ports_changed(t->c->cfg.ports_opaque);
    }
}

/* pause/unpause. On failure the action's event records the error: an instance that is gone
 * (it vanished, or died meanwhile) leaves the server stopped; one that refused keeps its
 * state. */
static void do_pause(struct task *t, bool pause)
{
    char err[ERRLEN] = "", msg[ERRLEN + 32];
    struct kova_driver *d = t->c->drv;
    int r = pause ? d->ops->pause(d, t->id, err, sizeof(err))
                  : d->ops->unpause(d, t->id, err, sizeof(err));
    enum kova_vm_state ok_vm = pause ? KOVA_VM_PAUSED : KOVA_VM_ACTIVE;
    enum kova_power_state ok_pw = pause ? KOVA_POWER_PAUSED : KOVA_POWER_RUNNING;
    if (r == 0) {
        finish(t, &(struct end){ok_vm, ok_pw, false, false, 0, NULL});
        return;
    }
    snprintf(msg, sizeof(msg), "%s failed: %s", pause ? "pause" : "resume",
             err[0] ? err : strerror(-r));
    if (r == -ESRCH) {
        /* its exit is recorded (SHUTOFF) here; the deferred exit then finds nothing left */
        fail(t, KOVA_VM_STOPPED, KOVA_POWER_SHUTDOWN, 500, msg, r);
        return;
    }
    enum kova_vm_state was_vm = pause ? KOVA_VM_ACTIVE : KOVA_VM_PAUSED;
    enum kova_power_state was_pw = pause ? KOVA_POWER_RUNNING : KOVA_POWER_PAUSED;
    finish(t, &(struct end){was_vm, was_pw, false, false, 500, msg});
}

static void task_run(void *p)
{
    struct task *t = p;
    struct kova_compute *c = t->c;
    struct kova_driver *d = c->drv;
    struct server_slot *s = slot_acquire(c, t->id);
    struct kova_db_server *w = malloc(sizeof(*w));
    if (!s || !w) {
        kova_log(0, "server %s: out of memory for its task", t->id);
        goto out;
    }
    sqlite3 *conn = kova_db_acquire(c->cfg.db);
    int r = kova_db_server_get(conn, t->id, w);
    kova_db_release(c->cfg.db, conn);
    if (r < 0)
        goto out;
    const struct kova_action *a = kova_action_of_op(t->op);
    enum kova_task_state task;
    if (kova_task_state_parse(w->has_task ? w->task_state : NULL, &task) < 0)
        goto out;
    /* The server must still be in this task's state (a delete may have taken over). */
    if (t->op == KOVA_OP_BUILD ? (task == KOVA_TASK_NONE || task == KOVA_TASK_DELETING)
                               : task != a->task)
        goto out;
    struct kova_instance_info info = {0};
    switch (t->op) {
    case KOVA_OP_BUILD:
        do_build(t, w);
        break;
    case KOVA_OP_STOP:
        d->ops->power_off(d, t->id, KOVA_POWER_OFF_CLEAN);
        finish(t, &(struct end){KOVA_VM_STOPPED, KOVA_POWER_SHUTDOWN, true, false, 0, NULL});
        break;
    case KOVA_OP_START:
        if (d->ops->info(d, t->id, &info) == 0 && info.running)
            finish(t, &(struct end){KOVA_VM_ACTIVE, KOVA_POWER_RUNNING, false, false, 0, NULL});
        else
            boot_again(t, w, true);
        break;
    case KOVA_OP_REBOOT_SOFT:
    case KOVA_OP_REBOOT_HARD:
        d->ops->power_off(
            d, t->id, t->op == KOVA_OP_REBOOT_SOFT ? KOVA_POWER_OFF_CLEAN : KOVA_POWER_OFF_KILL);
        clear_ref(t);
        boot_again(t, w, false);
        break;
    case KOVA_OP_PAUSE:
    case KOVA_OP_UNPAUSE:
        do_pause(t, t->op == KOVA_OP_PAUSE);
        break;
    case KOVA_OP_REBUILD:
        do_rebuild(t, w);
        break;
    case KOVA_OP_DELETE:
        do_delete(t);
        break;
    case KOVA_OP__COUNT:
    case KOVA_OP_NONE:
        break;
    }
out:
    free(w);
    if (s)
        slot_release(c, s);
    free(t);
}

int kova_compute_submit(struct kova_compute *c, const char *id, enum kova_op op)
{
    if ((unsigned)op >= KOVA_OP__COUNT || !kova_is_uuid(id))
        return -EINVAL;
    struct task *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->c = c;
    t->op = op;
    snprintf(t->id, sizeof(t->id), "%s", id);
    if (!c->cfg.submit || c->cfg.submit(c->cfg.submit_opaque, task_run, t) < 0)
        task_run(t); /* no workers (or stopping): run it here */
    return 0;
}

int kova_compute_accept(sqlite3 *conn, const char *id, const struct kova_action *a,
                        struct kova_conflict *why)
{
    if (!a || a->op == KOVA_OP_NONE)
        return -EINVAL;
    struct kova_db_server *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    int r = kova_db_server_get(conn, id, w);
    if (r < 0)
        goto out;
    enum kova_vm_state vm;
    enum kova_task_state task;
    kova_state_read(w->vm_state, w->has_task ? w->task_state : NULL, &vm, &task);
    if (!kova_action_allowed(a, vm, task)) {
        if (why)
            *why = (struct kova_conflict){vm, task};
        r = -EBUSY;
        goto out;
    }
    r = kova_db_server_set_task(conn, id, kova_task_state_name(a->task));
    r = r < 0 ? r : r == 0 ? -ENOENT : 0;
out:
    free(w);
    return r;
}

/* ------------------------------------------------------------------ start-up reconciliation */

struct found_list {
    struct kova_found_copy {
        char uuid[KOVA_DB_ID_MAX];
        bool files, unowned_vmm;
    } * v;
    size_t n, cap;
    bool oom;
};

static void collect_found(void *opaque, const struct kova_found *f)
{
    struct found_list *l = opaque;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        void *nv = realloc(l->v, nc * sizeof(*l->v));
        if (!nv) {
            l->oom = true;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    struct kova_found_copy *x = &l->v[l->n++];
    snprintf(x->uuid, sizeof(x->uuid), "%s", f->uuid);
    x->files = f->files;
    x->unowned_vmm = f->unowned_vmm;
}

/* The end state of one row after a restart; the row's VMM was adopted when alive. */
static int reconcile_row(struct kova_compute *c, const struct kova_db_server *x, bool alive,
                         bool paused)
{
    if (x->has_task && (!strcmp(x->task_state, "deleting") || !strcmp(x->vm_state, "building")))
        return 0; /* requeued by kova_compute_resume(): the task itself handles a live VMM */
    enum kova_vm_state vm;
    if (kova_vm_state_parse(x->vm_state, &vm) < 0)
        vm = KOVA_VM_ERROR;
    enum kova_power_state power;
    const char *fault = NULL;
    if (alive) {
        power = paused ? KOVA_POWER_PAUSED : KOVA_POWER_RUNNING;
        if (vm != KOVA_VM_ERROR || x->has_task)
            vm = paused ? KOVA_VM_PAUSED : KOVA_VM_ACTIVE;
    } else {
        power = KOVA_POWER_SHUTDOWN;
        if (vm == KOVA_VM_ACTIVE || vm == KOVA_VM_PAUSED || vm == KOVA_VM_SUSPENDED)
            vm = KOVA_VM_STOPPED;
        if (x->has_task && !strcmp(x->task_state, "rebuilding")) {
            vm = KOVA_VM_ERROR;
            fault = "the rebuild was interrupted by an agent restart; rebuild it again";
        }
    }
    sqlite3 *conn = kova_db_acquire(c->cfg.db);
    int r = kova_db_server_reconcile(conn, x->id, kova_vm_state_name(vm), (int)power, alive, fault);
    kova_db_release(c->cfg.db, conn);
    if (r >= 0 && (x->has_task || (x->vmm_pid && !alive)))
        kova_log(1, "server %s: after restart: %s%s", x->id, kova_vm_state_name(vm),
                 x->has_task ? " (its interrupted task ended)" : "");
    return r < 0 ? r : 0;
}

int kova_compute_start(struct kova_compute *c, struct kova_driver *driver)
{
    c->drv = driver;
    struct kova_db_server *rows = NULL;
    size_t n = 0;
    sqlite3 *conn = kova_db_acquire(c->cfg.db);
    int r = kova_db_server_list(conn, &rows, &n);
    kova_db_release(c->cfg.db, conn);
    for (size_t k = 0; k < n && r == 0; k++) {
        const struct kova_db_server *x = &rows[k];
        if (!kova_is_uuid(x->id))
            continue;
        struct kova_instance_info info = {0};
        struct kova_vmm_ref ref = {x->vmm_pid, x->vmm_start};
        bool alive = ref.pid > 0 && driver->ops->adopt(driver, x->id, &ref, &info) == 1;
        if (alive)
            kova_log(1, "server %s: adopted its running kova-vmm %d", x->id, (int)ref.pid);
        r = reconcile_row(c, x, alive, alive && info.paused);
    }
    free(rows);
    if (r < 0)
        return r;
    /* what the driver holds that no row names goes; VMMs nobody adopted are killed */
    struct found_list fl = {0};
    r = driver->ops->list(driver, collect_found, &fl);
    conn = kova_db_acquire(c->cfg.db);
    for (size_t k = 0; r == 0 && k < fl.n; k++) {
        struct kova_found_copy *f = &fl.v[k];
        int ex = kova_db_server_exists(conn, f->uuid);
        char err[256] = "";
        if (ex == 0) {
            if (driver->ops->destroy(driver, f->uuid, err, sizeof(err)) == 0)
                kova_log(1, "removed instance %s%s: no server has it", f->uuid,
                         f->unowned_vmm ? " (and killed its VMM)" : "");
            else
                kova_log(0, "cannot remove stray instance %s: %s", f->uuid, err);
        } else if (ex == 1 && f->unowned_vmm) {
            kova_log(1, "a kova-vmm of instance %s has no server that owns it: killing it",
                     f->uuid);
            driver->ops->power_off(driver, f->uuid, KOVA_POWER_OFF_KILL);
        }
    }
    kova_db_release(c->cfg.db, conn);
    free(fl.v);
    return r < 0 ? r : fl.oom ? -ENOMEM : 0;
}

int kova_compute_resume(struct kova_compute *c)
{
    char(*ids)[KOVA_DB_ID_MAX] = NULL;
    bool *del = NULL;
    size_t n = 0;
    sqlite3 *conn = kova_db_acquire(c->cfg.db);
    int r = kova_db_server_unfinished(conn, &ids, &del, &n);
    kova_db_release(c->cfg.db, conn);
    if (r < 0)
        return r;
    for (size_t k = 0; k < n; k++)
        kova_compute_submit(c, ids[k], del[k] ? KOVA_OP_DELETE : KOVA_OP_BUILD);
    free(ids);
    free(del);
    return (int)n;
}

/* ------------------------------------------------------------------ the rest */

int kova_compute_new(const struct kova_compute_config *cfg, struct kova_compute **out)
{
    struct kova_compute *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->released, NULL);
    *out = c;
    return 0;
}

int kova_compute_console_output(struct kova_compute *c, const char *id, int64_t length, char **out,
                                size_t *outlen, char *err, size_t errlen)
{
    char path[KOVA_LAYOUT_PATH_MAX] = "";
    if (c->drv && c->drv->ops->console_path)
        c->drv->ops->console_path(c->drv, id, path, sizeof(path));
    if (!path[0]) {
        snprintf(err, errlen, "the server has no console log");
        return -ENOENT;
    }
    return kova_console_read(path, length == KOVA_COMPUTE_CONSOLE_ALL ? KOVA_CONSOLE_ALL : length,
                             out, outlen, err, errlen);
}

void kova_compute_free(struct kova_compute *c)
{
    if (!c)
        return;
    while (c->slots) {
        struct server_slot *s = c->slots;
        c->slots = s->next;
        free(s);
    }
    pthread_cond_destroy(&c->released);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
