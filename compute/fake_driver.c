/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fake driver (kova/driver.h): instances are rows of a caller-owned table, nothing runs.
 * It exists for the manager's unit tests: it counts calls, fails a chosen step, and kills the
 * calling process at a chosen step to stand in for an agent that dies in the middle of a task.
 */
#include "kova/driver.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fake_driver {
    struct kova_driver base;
    struct kova_fake_state *st;
};

#define FD(d) ((struct fake_driver *)(d))

static struct kova_fake_instance *find(struct kova_fake_state *st, const char *id, bool create)
{
    struct kova_fake_instance *free_slot = NULL;
    for (int i = 0; i < KOVA_FAKE_MAX; i++) {
        if (st->inst[i].uuid[0] && !strcmp(st->inst[i].uuid, id))
            return &st->inst[i];
        if (!st->inst[i].uuid[0] && !free_slot)
            free_slot = &st->inst[i];
    }
    if (!create || !free_slot)
        return NULL;
    *free_slot = (struct kova_fake_instance){0};
    snprintf(free_slot->uuid, sizeof(free_slot->uuid), "%s", id);
    return free_slot;
}

/* Counts the call; dies before the step when told; returns the injected error or 0. */
static int step_begin(struct kova_fake_state *st, enum kova_fake_step s, char *err, size_t errlen)
{
    unsigned n = ++st->calls[s];
    if (st->crash_at && st->crash_step == s && n == st->crash_at && !st->crash_after)
        raise(SIGKILL);
    if (st->fail_mask & (1u << s)) {
        if (err && errlen)
            snprintf(err, errlen, "fake driver: step %d fails", (int)s);
        return st->fail_errno ? -abs(st->fail_errno) : -EIO;
    }
    return 0;
}

static void step_end(struct kova_fake_state *st, enum kova_fake_step s)
{
    if (st->crash_at && st->crash_step == s && st->calls[s] == st->crash_at && st->crash_after)
        raise(SIGKILL);
}

static int prepare(struct kova_driver *d, const struct kova_boot_spec *spec, int *fault_code,
                   char *err, size_t errlen)
{
    struct kova_fake_state *st = FD(d)->st;
    int r = step_begin(st, KOVA_FAKE_PREPARE, err, errlen);
    if (r < 0)
        return r;
    struct kova_fake_instance *i = find(st, spec->uuid, true);
    if (!i)
        return -ENOSPC;
    i->files = true;
    step_end(st, KOVA_FAKE_PREPARE);
    return 0;
}

static int spawn(struct kova_driver *d, const struct kova_boot_spec *spec,
                 void (*note_ref)(void *opaque, const struct kova_vmm_ref *ref), void *opaque,
                 char *err, size_t errlen)
{
    struct kova_fake_state *st = FD(d)->st;
    int r = step_begin(st, KOVA_FAKE_SPAWN, err, errlen);
    if (r < 0)
        return r;
    struct kova_fake_instance *i = find(st, spec->uuid, false);
    if (!i || !i->files) {
        snprintf(err, errlen, "fake driver: the instance's disk is missing");
        return -ENOENT;
    }
    i->running = true;
    i->paused = false;
    i->watched = true;
    i->firmware = spec->kernel_id == NULL;
    i->ref.pid = ++st->next_pid;
    i->ref.start = 1000u + (unsigned)i->ref.pid;
    /* "after" a spawn is the worst moment: the instance runs, its ref is not yet recorded */
    step_end(st, KOVA_FAKE_SPAWN);
    if (note_ref)
        note_ref(opaque, &i->ref);
    return 0;
}

static int power_off(struct kova_driver *d, const char *id, enum kova_power_off_mode mode)
{
    struct kova_fake_state *st = FD(d)->st;
    int r = step_begin(st, KOVA_FAKE_POWER_OFF, NULL, 0);
    struct kova_fake_instance *i = find(st, id, false);
    /* a failing power-off still destroys (as the KVM driver kills after a failed shutdown) */
    (void)r;
    if (i && i->running) {
        struct kova_vmm_ref ref = i->ref;
        bool watched = i->watched;
        i->running = i->paused = i->watched = false;
        i->ref = (struct kova_vmm_ref){0};
        if (watched && d->on_exit)
            d->on_exit(d->exit_opaque, id, &ref,
                       mode == KOVA_POWER_OFF_KILL ? "signal 9" : "status 0");
    }
    step_end(st, KOVA_FAKE_POWER_OFF);
    return 0;
}

static int set_paused(struct kova_driver *d, const char *id, bool paused, enum kova_fake_step s,
                      char *err, size_t errlen)
{
    struct kova_fake_state *st = FD(d)->st;
    struct kova_fake_instance *i = find(st, id, false);
    if (!i || !i->running || !i->watched) {
        snprintf(err, errlen, "fake VMM is not running");
        ++st->calls[s];
        return -ESRCH;
    }
    int r = step_begin(st, s, err, errlen);
    if (r < 0)
        return r;
    i->paused = paused;
    step_end(st, s);
    return 0;
}

static int pause_vm(struct kova_driver *d, const char *id, char *err, size_t errlen)
{
    return set_paused(d, id, true, KOVA_FAKE_PAUSE, err, errlen);
}

static int unpause_vm(struct kova_driver *d, const char *id, char *err, size_t errlen)
{
    return set_paused(d, id, false, KOVA_FAKE_UNPAUSE, err, errlen);
}

static int info(struct kova_driver *d, const char *id, struct kova_instance_info *out)
{
    struct kova_fake_instance *i = find(FD(d)->st, id, false);
    *out = (struct kova_instance_info){0};
    if (i && i->running && i->watched) {
        out->running = true;
        out->paused = i->paused;
    }
    return 0;
}

static int adopt(struct kova_driver *d, const char *id, const struct kova_vmm_ref *ref,
                 struct kova_instance_info *out)
{
    struct kova_fake_instance *i = find(FD(d)->st, id, false);
    *out = (struct kova_instance_info){0};
    if (!i || !i->running || i->ref.pid != ref->pid || i->ref.start != ref->start)
        return 0;
    i->watched = true;
    out->running = true;
    out->paused = i->paused;
    return 1;
}

static int list(struct kova_driver *d, void (*fn)(void *opaque, const struct kova_found *f),
                void *opaque)
{
    struct kova_fake_state *st = FD(d)->st;
    for (int k = 0; k < KOVA_FAKE_MAX; k++) {
        struct kova_fake_instance *i = &st->inst[k];
        if (!i->uuid[0] || (!i->files && !i->running))
            continue;
        struct kova_found f = {i->uuid, i->files, i->running && !i->watched};
        fn(opaque, &f);
    }
    return 0;
}

static int destroy(struct kova_driver *d, const char *id, char *err, size_t errlen)
{
    struct kova_fake_state *st = FD(d)->st;
    int r = step_begin(st, KOVA_FAKE_DESTROY, err, errlen);
    if (r < 0)
        return r;
    struct kova_fake_instance *i = find(st, id, false);
    if (!i)
        return -ENOENT;
    if (i->running) {
        struct kova_vmm_ref ref = i->ref;
        bool watched = i->watched;
        i->running = false;
        if (watched && d->on_exit)
            d->on_exit(d->exit_opaque, id, &ref, "signal 9");
    }
    *i = (struct kova_fake_instance){0};
    step_end(st, KOVA_FAKE_DESTROY);
    return 0;
}

static void console_path(struct kova_driver *d, const char *id, char *out, size_t len)
{
    snprintf(out, len, "/nonexistent/fake/%s/console.log", id);
}

static void last_words(struct kova_driver *d, const char *id, char *out, size_t len)
{
    snprintf(out, len, "fake VMM of %s", id);
}

static void driver_free(struct kova_driver *d)
{
    free(d);
}

static const struct kova_driver_ops fake_ops = {
    .name = "fake",
    .prepare = prepare,
    .spawn = spawn,
    .power_off = power_off,
    .pause = pause_vm,
    .unpause = unpause_vm,
    .info = info,
    .adopt = adopt,
    .list = list,
    .destroy = destroy,
    .console_path = console_path,
    .last_words = last_words,
    .free = driver_free,
};

int kova_fake_driver_new(struct kova_fake_state *st, kova_exit_fn on_exit, void *opaque,
                         struct kova_driver **out)
{
    struct fake_driver *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->base = (struct kova_driver){&fake_ops, on_exit, opaque};
    f->st = st;
    /* a new "agent" watches nothing until it adopts */
    for (int k = 0; k < KOVA_FAKE_MAX; k++)
        st->inst[k].watched = false;
    *out = &f->base;
    return 0;
}

int kova_fake_driver_exit(struct kova_driver *d, const char *uuid)
{
    struct kova_fake_instance *i = find(FD(d)->st, uuid, false);
    if (!i || !i->running || !i->watched)
        return -ESRCH;
    struct kova_vmm_ref ref = i->ref;
    i->running = i->paused = i->watched = false;
    i->ref = (struct kova_vmm_ref){0};
    if (d->on_exit)
        d->on_exit(d->exit_opaque, uuid, &ref, "status 0");
    return 0;
}
