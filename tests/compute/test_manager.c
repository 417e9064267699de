/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compute manager over the fake driver (no HTTP, no processes but the test's own):
 *   states   every action in every state: accepted or conflict, and the resulting
 *            vm/task/power state (the expectations are Nova's rules, written out here, not
 *            read from kova/states.h)
 *   failures a failure of the driver at each step of each task: the end state Nova gives
 *   exits    an instance that stops by itself, also while a task holds it
 *   restart  the agent SIGKILLed before and after each driver step of each task, then a new
 *            manager over the same database and the same "running" instances: no task left
 *            hanging, states that agree with what runs, no orphan, builds and deletes finished
 */
#include "kova/compute.h"
#include "kova/db.h"
#include "kova/driver.h"
#include "kova/states.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static const char *const SID = "11111111-2222-4333-8444-555555555555";
static const char *const IMAGE = "aaaaaaaa-0000-4000-8000-000000000001";
static const char *const KERNEL = "aaaaaaaa-0000-4000-8000-000000000002";

static char dbpath[256];
static struct kova_fake_state *fake; /* shared with forked "agents" */

/* One agent: a database handle, a manager and a fake driver over the shared instances. */
struct agent {
    struct kova_db *db;
    struct kova_compute *c;
    struct kova_driver *d;
};

static void agent_up(struct agent *a)
{
    if (kova_db_open(dbpath, 4, &a->db) < 0)
        abort();
    struct kova_compute_config cc = {.db = a->db}; /* no workers: tasks run inline */
    if (kova_compute_new(&cc, &a->c) < 0 ||
        kova_fake_driver_new(fake, kova_compute_instance_exited, a->c, &a->d) < 0)
        abort();
    int r = kova_compute_start(a->c, a->d);
    CHECK(r == 0, "kova_compute_start: %d", r);
}

static void agent_down(struct agent *a)
{
    a->d->ops->free(a->d);
    kova_compute_free(a->c);
    kova_db_close(a->db);
}

static void sql(struct agent *a, const char *q)
{
    sqlite3 *c = kova_db_acquire(a->db);
    if (kova_db_exec(c, q) < 0)
        abort();
    kova_db_release(a->db, c);
}

/* A fresh database with the images and one server in (vm, task, power), and the fake instance
 * running (paused) or not as that state means. */
static void setup(const char *vm, const char *task, int power)
{
    unlink(dbpath);
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", dbpath);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", dbpath);
    unlink(wal);
    memset(fake, 0, sizeof(*fake));
    fake->next_pid = 100;
    struct agent a;
    if (kova_db_open(dbpath, 2, &a.db) < 0)
        abort();
    char q[2048];
    snprintf(q, sizeof(q),
             "INSERT INTO images (id, status, visibility, disk_format, properties, created_at, "
             "updated_at) VALUES ('%s', 'active', 'public', 'qcow2', '{\"kernel_id\": \"%s\"}', "
             "'t', 't'), ('%s', 'active', 'public', 'raw', '{}', 't', 't');",
             IMAGE, KERNEL, KERNEL);
    sql(&a, q);
    bool running = !strcmp(vm, "active") || !strcmp(vm, "paused") || !strcmp(vm, "suspended") ||
                   !strcmp(vm, "rescued");
    bool built = strcmp(vm, "building") != 0;
    char taskq[64];
    snprintf(taskq, sizeof(taskq), task ? "'%s'" : "%sNULL", task ? task : "");
    snprintf(q, sizeof(q),
             "INSERT INTO servers (id, name, project_id, user_id, image_ref, flavor_id, vcpus, "
             "ram, disk, vm_state, task_state, power_state, created_at, updated_at, vmm_pid, "
             "vmm_start, kernel_id, os_cmdline) VALUES ('%s', 's', 'p', 'u', '%s', '1', 1, 512, "
             "1, '%s', %s, %d, 't', 't', %s, %s, %s, 'console=ttyS0');",
             SID, IMAGE, vm, taskq, power, running ? "100" : "NULL", running ? "1100" : "NULL",
             built ? "'aaaaaaaa-0000-4000-8000-000000000002'" : "NULL");
    sql(&a, q);
    kova_db_close(a.db);
    if (built) {
        struct kova_fake_instance *i = &fake->inst[0];
        snprintf(i->uuid, sizeof(i->uuid), "%s", SID);
        i->files = true;
        i->running = running;
        i->paused = !strcmp(vm, "paused");
        if (running)
            i->ref = (struct kova_vmm_ref){100, 1100};
    }
}

struct row {
    bool exists;
    char vm[32], task[40], fault[512];
    int power;
    bool has_task, has_fault;
};

static struct row get_row(struct agent *a)
{
    struct row w = {0};
    sqlite3 *c = kova_db_acquire(a->db);
    sqlite3_stmt *st = kova_db_prepare(c, "SELECT vm_state, task_state, power_state, "
                                          "fault_message FROM servers WHERE id = ?");
    sqlite3_bind_text(st, 1, SID, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        w.exists = true;
        snprintf(w.vm, sizeof(w.vm), "%s", (const char *)sqlite3_column_text(st, 0));
        w.has_task = sqlite3_column_type(st, 1) != SQLITE_NULL;
        if (w.has_task)
            snprintf(w.task, sizeof(w.task), "%s", (const char *)sqlite3_column_text(st, 1));
        w.power = sqlite3_column_int(st, 2);
        w.has_fault = sqlite3_column_type(st, 3) != SQLITE_NULL;
        if (w.has_fault)
            snprintf(w.fault, sizeof(w.fault), "%s", (const char *)sqlite3_column_text(st, 3));
    }
    kova_db_done(st);
    kova_db_release(a->db, c);
    return w;
}

static struct kova_fake_instance *inst(void)
{
    for (int k = 0; k < KOVA_FAKE_MAX; k++)
        if (!strcmp(fake->inst[k].uuid, SID))
            return &fake->inst[k];
    return NULL;
}

/* Accepts the action in a transaction as the API does, commits, submits (runs inline).
 * Returns kova_compute_accept's result. */
static int act(struct agent *a, const char *action)
{
    const struct kova_action *ac = kova_action_find(action);
    if (!ac)
        abort();
    sqlite3 *c = kova_db_acquire(a->db);
    kova_db_begin(c);
    struct kova_conflict why;
    int r = kova_compute_accept(c, SID, ac, &why);
    if (r == 0)
        kova_db_commit(c);
    else
        kova_db_rollback(c);
    kova_db_release(a->db, c);
    if (r == 0)
        kova_compute_submit(a->c, SID, ac->op);
    return r;
}

/* ------------------------------------------------------------------ Nova's rules, written out */

static const char *const actions[] = {"os-start", "os-stop", "reboot-soft", "reboot-hard",
                                      "pause",    "unpause", "rebuild",     "delete"};

struct vmcase {
    const char *vm;
    int power;
};
static const struct vmcase vms[] = {
    {"active", 1},  {"paused", 3},  {"stopped", 4},     {"error", 4},   {"suspended", 7},
    {"rescued", 1}, {"resized", 1}, {"soft-delete", 4}, {"shelved", 4},
};

/* Where each action is allowed (nova/compute/api.py check_instance_state), idle servers. */
static bool nova_allows(const char *action, const char *vm)
{
    static const struct {
        const char *action, *vms;
    } allow[] = {
        {"os-start", "|stopped|"},
        {"os-stop", "|active|error|"},
        {"reboot-soft", "|active|"},
        {"reboot-hard", "|active|stopped|paused|suspended|error|"},
        {"pause", "|active|"},
        {"unpause", "|paused|"},
        {"rebuild", "|active|stopped|error|"},
        {"delete", "*"},
    };
    char pat[40];
    snprintf(pat, sizeof(pat), "|%s|", vm);
    for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
        if (!strcmp(allow[i].action, action))
            return allow[i].vms[0] == '*' || strstr(allow[i].vms, pat);
    return false;
}

/* The state after the action succeeded. */
static void nova_result(const char *action, const char *vm_before, const char **vm, int *power)
{
    if (!strcmp(action, "os-stop")) {
        *vm = "stopped";
        *power = 4;
    } else if (!strcmp(action, "pause")) {
        *vm = "paused";
        *power = 3;
    } else if (!strcmp(action, "rebuild") && !strcmp(vm_before, "stopped")) {
        *vm = "stopped";
        *power = 4;
    } else {
        *vm = "active";
        *power = 1;
    }
}

static void test_states(void)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        for (size_t v = 0; v < sizeof(vms) / sizeof(vms[0]); v++) {
            for (int busy = 0; busy < 2; busy++) {
                const char *act_name = actions[i], *vm = vms[v].vm;
                setup(vm, NULL, vms[v].power);
                struct agent a;
                agent_up(&a);
                /* the restart reconciled the row with the instance: put the case's state back,
                 * busy meaning a stop in progress (which a delete takes over) */
                char q[512];
                snprintf(q, sizeof(q),
                         "UPDATE servers SET vm_state = '%s', power_state = %d, task_state = %s",
                         vm, vms[v].power, busy ? "'powering-off'" : "NULL");
                sql(&a, q);
                bool want = nova_allows(act_name, vm) && (!busy || !strcmp(act_name, "delete"));
                int r = act(&a, act_name);
                CHECK(want ? r == 0 : r == -EBUSY, "%s in %s%s: accept gave %d, want %s", act_name,
                      vm, busy ? " (busy)" : "", r, want ? "0" : "-EBUSY");
                struct row w = get_row(&a);
                struct kova_fake_instance *fi = inst();
                if (!want) {
                    CHECK(w.exists && !strcmp(w.vm, vm) && w.has_task == (bool)busy &&
                              w.power == vms[v].power,
                          "%s refused in %s: the row changed (%s/%s/%d)", act_name, vm, w.vm,
                          w.task, w.power);
                } else if (!strcmp(act_name, "delete")) {
                    CHECK(!w.exists, "delete in %s: the row is still there", vm);
                    CHECK(!fi, "delete in %s: the instance is still there", vm);
                } else {
                    const char *evm;
                    int epw;
                    nova_result(act_name, vm, &evm, &epw);
                    CHECK(w.exists && !strcmp(w.vm, evm) && !w.has_task && w.power == epw,
                          "%s in %s: %s/%s/%d, want %s/-/%d", act_name, vm, w.vm,
                          w.has_task ? w.task : "-", w.power, evm, epw);
                    bool should_run = epw == 1 || epw == 3;
                    CHECK(fi && fi->running == should_run && fi->paused == (epw == 3),
                          "%s in %s: the instance %s", act_name, vm,
                          fi ? (fi->running ? "runs" : "does not run") : "is gone");
                    CHECK(!w.has_fault, "%s in %s: fault %s", act_name, vm, w.fault);
                }
                agent_down(&a);
            }
        }
    }
    /* the table answers for actions kova does not implement, and nothing for unknown ones */
    CHECK(kova_action_find("suspend") && kova_action_find("suspend")->op == KOVA_OP_NONE,
          "suspend is known, not implemented");
    CHECK(!kova_action_find("os-nonsense"), "an unknown action has no row");
}

static void test_build(void)
{
    setup("building", "scheduling", 0);
    struct agent a;
    agent_up(&a);
    kova_compute_submit(a.c, SID, KOVA_OP_BUILD);
    struct row w = get_row(&a);
    CHECK(!strcmp(w.vm, "active") && !w.has_task && w.power == 1, "build: %s/%s/%d", w.vm, w.task,
          w.power);
    CHECK(inst() && inst()->running, "build: the instance runs");
    /* a second build of a built server does nothing */
    kova_compute_submit(a.c, SID, KOVA_OP_BUILD);
    CHECK(fake->calls[KOVA_FAKE_SPAWN] == 1, "a stale build spawned again");
    agent_down(&a);
}

/* An image without kernel_id boots its disk through firmware; one that asks for UEFI is refused
 * with a fault naming the property, before anything is prepared. */
static void test_build_firmware(void)
{
    char q[512];
    setup("building", "scheduling", 0);
    struct agent a;
    agent_up(&a);
    snprintf(q, sizeof(q), "UPDATE servers SET image_ref = '%s' WHERE id = '%s';", KERNEL, SID);
    sql(&a, q);
    kova_compute_submit(a.c, SID, KOVA_OP_BUILD);
    struct row w = get_row(&a);
    CHECK(!strcmp(w.vm, "active") && w.power == 1, "firmware build: %s/%d %s", w.vm, w.power,
          w.fault);
    CHECK(inst() && inst()->running && inst()->firmware, "firmware build: spawned without kernel");
    agent_down(&a);

    setup("building", "scheduling", 0);
    agent_up(&a);
    snprintf(q, sizeof(q),
             "UPDATE servers SET image_ref = '%s' WHERE id = '%s'; UPDATE images SET properties "
             "= '{\"hw_firmware_type\": \"uefi\"}' WHERE id = '%s';",
             KERNEL, SID, KERNEL);
    sql(&a, q);
    kova_compute_submit(a.c, SID, KOVA_OP_BUILD);
    w = get_row(&a);
    CHECK(!strcmp(w.vm, "error") && w.has_fault && strstr(w.fault, "hw_firmware_type=uefi"),
          "uefi build: %s %s", w.vm, w.fault);
    CHECK(fake->calls[KOVA_FAKE_PREPARE] == 0 && fake->calls[KOVA_FAKE_SPAWN] == 0,
          "uefi build: nothing prepared or spawned");
    agent_down(&a);
}

static void test_builds(void)
{
    test_build();
    test_build_firmware();
}

/* ------------------------------------------------------------------ driver failures */

struct failcase {
    const char *action, *vm, *task;
    int power;
    enum kova_fake_step step;
    const char *want_vm;
    int want_power;
    bool want_fault;
};

static const struct failcase failcases[] = {
    {"create", "building", "scheduling", 0, KOVA_FAKE_PREPARE, "error", 0, true},
    {"create", "building", "scheduling", 0, KOVA_FAKE_SPAWN, "error", 0, true},
    {"os-start", "stopped", NULL, 4, KOVA_FAKE_SPAWN, "stopped", 4, true},
    {"reboot-soft", "active", NULL, 1, KOVA_FAKE_SPAWN, "error", 4, true},
    {"reboot-hard", "stopped", NULL, 4, KOVA_FAKE_SPAWN, "error", 4, true},
    {"pause", "active", NULL, 1, KOVA_FAKE_PAUSE, "active", 1, true},
    {"unpause", "paused", NULL, 3, KOVA_FAKE_UNPAUSE, "paused", 3, true},
    {"rebuild", "active", NULL, 1, KOVA_FAKE_DESTROY, "error", 4, true},
    {"rebuild", "active", NULL, 1, KOVA_FAKE_PREPARE, "error", 4, true},
    {"rebuild", "active", NULL, 1, KOVA_FAKE_SPAWN, "error", 4, true},
    {"rebuild", "stopped", NULL, 4, KOVA_FAKE_PREPARE, "error", 4, true},
    /* a failing clean shutdown still ends stopped (the driver destroys) */
    {"os-stop", "active", NULL, 1, KOVA_FAKE_POWER_OFF, "stopped", 4, false},
};

static void test_failures(void)
{
    for (size_t i = 0; i < sizeof(failcases) / sizeof(failcases[0]); i++) {
        const struct failcase *f = &failcases[i];
        setup(f->vm, f->task, f->power);
        fake->fail_mask = 1u << f->step;
        fake->fail_errno = EIO;
        struct agent a;
        agent_up(&a);
        if (!strcmp(f->action, "create"))
            kova_compute_submit(a.c, SID, KOVA_OP_BUILD);
        else
            CHECK(act(&a, f->action) == 0, "%s in %s refused", f->action, f->vm);
        struct row w = get_row(&a);
        CHECK(!strcmp(w.vm, f->want_vm) && !w.has_task && w.power == f->want_power,
              "%s in %s, step %d failing: %s/%s/%d, want %s/-/%d", f->action, f->vm, f->step, w.vm,
              w.has_task ? w.task : "-", w.power, f->want_vm, f->want_power);
        CHECK(w.has_fault == f->want_fault &&
                  (!f->want_fault || strstr(w.fault, "fake driver: step")),
              "%s, step %d failing: fault '%s'", f->action, f->step, w.fault);
        struct kova_fake_instance *fi = inst();
        bool should_run = f->want_power == 1 || f->want_power == 3;
        CHECK(should_run == (fi && fi->running), "%s, step %d failing: the instance %s", f->action,
              f->step, fi && fi->running ? "runs" : "does not run");
        agent_down(&a);
    }
    /* delete: a failing removal still deletes the row (and is logged) */
    setup("active", NULL, 1);
    fake->fail_mask = 1u << KOVA_FAKE_DESTROY;
    struct agent a;
    agent_up(&a);
    CHECK(act(&a, "delete") == 0, "delete refused");
    CHECK(!get_row(&a).exists, "delete with a failing destroy kept the row");
    agent_down(&a);
    /* pause/unpause of an instance that vanished: stopped, with a fault */
    setup("active", NULL, 1);
    agent_up(&a);
    fake->inst[0].running = false; /* gone, and nobody noticed */
    CHECK(act(&a, "pause") == 0, "pause refused");
    struct row w = get_row(&a);
    CHECK(!strcmp(w.vm, "stopped") && w.power == 4 && strstr(w.fault, "pause failed"),
          "pause of a vanished instance: %s/%d '%s'", w.vm, w.power, w.fault);
    agent_down(&a);
}

/* ------------------------------------------------------------------ exits */

static void test_exits(void)
{
    setup("active", NULL, 1);
    struct agent a;
    agent_up(&a);
    CHECK(kova_fake_driver_exit(a.d, SID) == 0, "the adopted instance can exit");
    struct row w = get_row(&a);
    CHECK(!strcmp(w.vm, "stopped") && w.power == 4 && !w.has_task, "exit: %s/%d", w.vm, w.power);
    /* an exit of a paused instance */
    CHECK(act(&a, "os-start") == 0 && act(&a, "pause") == 0, "start, pause");
    kova_fake_driver_exit(a.d, SID);
    w = get_row(&a);
    CHECK(!strcmp(w.vm, "stopped") && w.power == 4, "exit while paused: %s/%d", w.vm, w.power);
    agent_down(&a);
    /* an exit nobody adopted (stale ref: another process has the pid) is no exit of ours */
    setup("active", NULL, 1);
    fake->inst[0].ref.start = 999;
    agent_up(&a);
    w = get_row(&a);
    CHECK(!strcmp(w.vm, "stopped") && w.power == 4, "stale ref after restart: %s/%d", w.vm,
          w.power);
    CHECK(inst() && !inst()->running, "the unowned instance was killed");
    agent_down(&a);
}

/* ------------------------------------------------------------------ agent restarts */

struct restartcase {
    const char *action, *vm, *task;
    int power;
};
static const struct restartcase restarts[] = {
    {"create", "building", "scheduling", 0}, {"os-stop", "active", NULL, 1},
    {"os-start", "stopped", NULL, 4},        {"reboot-soft", "active", NULL, 1},
    {"reboot-hard", "active", NULL, 1},      {"pause", "active", NULL, 1},
    {"unpause", "paused", NULL, 3},          {"rebuild", "active", NULL, 1},
    {"rebuild", "stopped", NULL, 4},         {"delete", "active", NULL, 1},
};

/* The states and the instances agree, nothing hangs, nothing is orphaned. */
static void check_consistent(struct agent *a, const char *what)
{
    struct row w = get_row(a);
    struct kova_fake_instance *fi = inst();
    for (int k = 0; k < KOVA_FAKE_MAX; k++) {
        struct kova_fake_instance *x = &fake->inst[k];
        if (x->uuid[0])
            CHECK(!x->running || x->watched, "%s: an unwatched instance runs", what);
    }
    if (!w.exists) {
        CHECK(!fi || (!fi->files && !fi->running), "%s: the instance outlived its row", what);
        return;
    }
    CHECK(!w.has_task, "%s: task_state %s left", what, w.task);
    bool runs = fi && fi->running;
    if (runs)
        CHECK((w.power == 1 || w.power == 3) &&
                  (!strcmp(w.vm, "active") || !strcmp(w.vm, "paused") || !strcmp(w.vm, "error")),
              "%s: running, but %s/%d", what, w.vm, w.power);
    else
        CHECK((w.power == 4 || w.power == 0) &&
                  (!strcmp(w.vm, "stopped") || !strcmp(w.vm, "error")),
              "%s: not running, but %s/%d", what, w.vm, w.power);
    if (runs)
        CHECK(fi->paused == (w.power == 3), "%s: paused %d but power %d", what, fi->paused,
              w.power);
}

static void test_restarts(void)
{
    unsigned killed = 0;
    for (size_t i = 0; i < sizeof(restarts) / sizeof(restarts[0]); i++) {
        const struct restartcase *rc = &restarts[i];
        for (int step = 0; step < KOVA_FAKE__STEPS; step++) {
            for (int after = 0; after < 2; after++) {
                for (unsigned nth = 1; nth <= 2; nth++) {
                    setup(rc->vm, rc->task, rc->power);
                    fake->crash_step = (enum kova_fake_step)step;
                    fake->crash_at = nth;
                    fake->crash_after = after;
                    pid_t pid = fork();
                    if (pid == 0) {
                        struct agent a;
                        agent_up(&a);
                        if (!strcmp(rc->action, "create"))
                            kova_compute_submit(a.c, SID, KOVA_OP_BUILD);
                        else
                            act(&a, rc->action);
                        agent_down(&a);
                        _exit(0);
                    }
                    int ws;
                    waitpid(pid, &ws, 0);
                    bool died = WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL;
                    CHECK(died || (WIFEXITED(ws) && WEXITSTATUS(ws) == 0),
                          "the agent process ended oddly: %d", ws);
                    if (!died)
                        continue; /* the task never made that call */
                    killed++;
                    fake->crash_at = 0;
                    char what[160];
                    snprintf(what, sizeof(what), "%s in %s, killed %s call %u of step %d",
                             rc->action, rc->vm, after ? "after" : "before", nth, step);
                    struct agent a;
                    agent_up(&a);
                    kova_compute_resume(a.c);
                    check_consistent(&a, what);
                    struct row w = get_row(&a);
                    if (!strcmp(rc->action, "create"))
                        CHECK(!strcmp(w.vm, "active") && w.power == 1,
                              "%s: the build did not finish: %s/%d", what, w.vm, w.power);
                    if (!strcmp(rc->action, "delete"))
                        CHECK(!w.exists, "%s: the delete did not finish", what);
                    if (!strcmp(rc->action, "rebuild") && w.exists && !strcmp(w.vm, "error"))
                        CHECK(strstr(w.fault, "rebuild was interrupted"),
                              "%s: error without the rebuild's fault: '%s'", what, w.fault);
                    /* and the server can be used again */
                    if (w.exists && !strcmp(w.vm, "stopped"))
                        CHECK(act(&a, "os-start") == 0 && !strcmp(get_row(&a).vm, "active"),
                              "%s: cannot start it afterwards", what);
                    agent_down(&a);
                }
            }
        }
    }
    CHECK(killed >= 40, "only %u agent deaths were exercised", killed);
    printf("restart: %u agent deaths in the middle of a task\n", killed);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : "all";
    char dir[] = "/tmp/kova-compute-test-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    snprintf(dbpath, sizeof(dbpath), "%s/state.db", dir);
    fake = mmap(NULL, sizeof(*fake), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (fake == MAP_FAILED)
        return 2;
    static const struct {
        const char *name;
        void (*fn)(void);
    } groups[] = {
        {"states", test_states}, {"build", test_builds},     {"failures", test_failures},
        {"exits", test_exits},   {"restart", test_restarts},
    };
    bool ran = false;
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (strcmp(only, "all") && strcmp(only, groups[i].name))
            continue;
        ran = true;
        groups[i].fn();
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    if (!ran) {
        fprintf(stderr, "unknown group %s\n", only);
        return 2;
    }
    printf("compute %s: %d checks, %d failed\n", only, checks, failures);
    return failures ? 1 : 0;
}
