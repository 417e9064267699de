/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The instance lifecycle: one kova-vmm process per running instance.
 *
 *  - Tasks (build, stop, start, reboot, pause, unpause, rebuild, delete) run on the agent's
 *    worker threads, serialised per instance (struct inst.busy). The API has already moved the
 *    server into the task's task_state in the same transaction that checked its state, so a
 *    second action meanwhile gets 409; a task ends by clearing task_state only when it is still
 *    its own (delete may have taken the server over).
 *  - A VMM is forked+exec'd in its own session (an agent restart, even SIGKILL, leaves it
 *    running), recorded in SQLite by PID + process start time (/proc/<pid>/stat field 22), and
 *    watched by one monitor thread through a pidfd (works for adopted non-children too; children
 *    are reaped there). An exit nobody asked for (guest poweroff, kill -9 = power failure) makes
 *    the server SHUTOFF (power_state 4) at once.
 *  - At start-up (before the API listens) the rows are reconciled with what runs: live VMMs are
 *    adopted, dead ones make their servers SHUTOFF, interrupted tasks get an end state, kova-vmm
 *    processes of this state dir that no row owns are killed, and dirs without a row removed.
 */

#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* One instance known to the supervisor: while a task holds it or a VMM runs for it. */
struct inst {
    char id[KOVA_UUID_STRLEN + 1];
    struct inst *next;
    unsigned refs;
    bool busy;            /* a task holds it */
    bool running;         /* a VMM is watched */
    bool exit_unrecorded; /* the VMM exited while a task held the instance */
    pid_t pid, exited_pid;
    int pidfd;
    unsigned long long start;
    int wstatus; /* of the last exit; -1 unknown (an adopted VMM is not our child) */
};

struct kova_sup {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* exits and releases */
    struct inst *list;
    int evfd;
    pthread_t thread;
    bool thread_up, stopping;
};

struct row {
    char vm[32], task[40], image[64], kernel[64], ramdisk[64];
    bool has_task;
    long long vcpus, ram, disk;
    pid_t pid;
    unsigned long long start;
    char cmdline[2048];
};

static int pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int fd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static void mono_deadline(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool past(const struct timespec *d)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > d->tv_sec || (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

/* /proc/<pid>/stat field 22 (starttime); 0 when the process does not exist. */
static unsigned long long proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return 0;
    p++;
    /* fields 3.. follow: field 22 is the 20th after the ')' */
    for (int f = 3; f < 22; f++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return 0;
    }
    return strtoull(p + 1, NULL, 10);
}

/* ------------------------------------------------------------------ instance table */

static struct inst *inst_find(struct kova_sup *s, const char *id)
{
    for (struct inst *i = s->list; i; i = i->next)
        if (!strcmp(i->id, id))
            return i;
    return NULL;
}

/* Under s->lock. */
static struct inst *inst_get(struct kova_sup *s, const char *id)
{
    struct inst *i = inst_find(s, id);
    if (i)
        return i;
    i = calloc(1, sizeof(*i));
    if (!i)
        return NULL;
    snprintf(i->id, sizeof(i->id), "%s", id);
    i->pidfd = -1;
    i->wstatus = -1;
    i->next = s->list;
    s->list = i;
    return i;
}

/* Under s->lock: frees the entry when nothing needs it any more. */
static void inst_put(struct kova_sup *s, struct inst *i)
{
    if (i->refs || i->busy || i->running)
        return;
    for (struct inst **pp = &s->list; *pp; pp = &(*pp)->next) {
        if (*pp == i) {
            *pp = i->next;
            break;
        }
    }
    free(i);
}

static struct inst *inst_acquire(struct kova_sup *s, const char *id)
{
    pthread_mutex_lock(&s->lock);
    struct inst *i = inst_get(s, id);
    if (i) {
        i->refs++;
        while (i->busy)
            pthread_cond_wait(&s->cond, &s->lock);
        i->busy = true;
        i->refs--;
    }
    pthread_mutex_unlock(&s->lock);
    return i;
}

static void record_exit(struct kova_api *api, const char *id, pid_t pid, int ws);

static void inst_release(struct kova_api *api, struct inst *i)
{
    struct kova_sup *s = api->sup;
    char id[KOVA_UUID_STRLEN + 1];
    pthread_mutex_lock(&s->lock);
    bool rec = i->exit_unrecorded;
    pid_t pid = i->exited_pid;
    int ws = i->wstatus;
    i->exit_unrecorded = false;
    i->busy = false;
    snprintf(id, sizeof(id), "%s", i->id);
    pthread_cond_broadcast(&s->cond);
    inst_put(s, i);
    pthread_mutex_unlock(&s->lock);
    if (rec)
        record_exit(api, id, pid, ws);
}

static void monitor_wake(struct kova_sup *s)
{
    uint64_t one = 1;
    if (write(s->evfd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow in practice; nothing to do */
    }
}

/* Starts watching a VMM (pidfd is taken over). */
static void inst_watch(struct kova_sup *s, struct inst *i, pid_t pid, int pidfd,
                       unsigned long long start)
{
    pthread_mutex_lock(&s->lock);
    i->pid = pid;
    i->pidfd = pidfd;
    i->start = start;
    i->running = true;
    i->wstatus = -1;
    pthread_mutex_unlock(&s->lock);
    monitor_wake(s);
}

/* Waits until the instance's VMM is gone or the deadline passes; true when gone. */
static bool wait_exit(struct kova_sup *s, struct inst *i, long ms)
{
    struct timespec d;
    mono_deadline(&d, ms);
    pthread_mutex_lock(&s->lock);
    while (i->running && !past(&d))
        pthread_cond_timedwait(&s->cond, &s->lock, &d);
    bool gone = !i->running;
    pthread_mutex_unlock(&s->lock);
    return gone;
}

static bool inst_running(struct kova_sup *s, struct inst *i, int *wstatus)
{
    pthread_mutex_lock(&s->lock);
    bool r = i->running;
    if (wstatus)
        *wstatus = i->wstatus;
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void inst_kill(struct kova_sup *s, struct inst *i)
{
    pthread_mutex_lock(&s->lock);
    if (i->running && i->pidfd >= 0)
        pidfd_kill(i->pidfd, SIGKILL);
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------------ database helpers */

static void now_iso(char out[32])
{
    kova_time_iso(out, true);
}

static void last_log_line(struct kova_api *api, const char *id, char *out, size_t outlen);

/* A VMM exited on its own (guest poweroff, crash, kill): SHUTOFF. `ws`: its wait status, -1 when
 * not known (an adopted VMM is not our child). */
static void record_exit(struct kova_api *api, const char *id, pid_t pid, int ws)
{
    char now[32];
    now_iso(now);
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(
        db, "UPDATE servers SET vm_state = CASE WHEN vm_state IN ('active','paused','suspended') "
            "THEN 'stopped' ELSE vm_state END, power_state = 4, vmm_pid = NULL, vmm_start = NULL, "
            "updated_at = ?3 WHERE id = ?1 AND vmm_pid = ?2");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, pid);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) > 0) {
            /* the wall-clock time with microseconds: tests compare it with the kill's */
            char at[32], how[48] = "", last[512];
            kova_time_iso(at, false);
            if (ws >= 0 && WIFEXITED(ws))
                snprintf(how, sizeof(how), "status %d", WEXITSTATUS(ws));
            else if (ws >= 0 && WIFSIGNALED(ws))
                snprintf(how, sizeof(how), "signal %d", WTERMSIG(ws));
            last_log_line(api, id, last, sizeof(last));
            kova_log(1, "server %s: kova-vmm %d exited: SHUTOFF recorded at %sZ (%s%s%s)", id,
                     (int)pid, at, how[0] ? how : "not our child", last[0] ? "; its log: " : "",
                     last);
        }
    }
    kova_db_done(st);
    kova_db_release(api->db, db);
}

static int load_row(struct kova_api *api, const char *id, struct row *w)
{
    memset(w, 0, sizeof(*w));
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, "SELECT vm_state, task_state, image_ref, vcpus, ram, "
                                           "disk, vmm_pid, vmm_start, kernel_id, ramdisk_id, "
                                           "os_cmdline FROM servers WHERE id = ?");
    int r = -EIO;
    if (!st)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        r = rc == SQLITE_DONE ? -ENOENT : -EIO;
        goto out;
    }
#define CP(dst, c)                                                                                 \
    snprintf(dst, sizeof(dst), "%s",                                                               \
             sqlite3_column_text(st, c) ? (const char *)sqlite3_column_text(st, c) : "")
    CP(w->vm, 0);
    CP(w->task, 1);
    w->has_task = sqlite3_column_type(st, 1) != SQLITE_NULL;
    CP(w->image, 2);
    w->vcpus = sqlite3_column_int64(st, 3);
    w->ram = sqlite3_column_int64(st, 4);
    w->disk = sqlite3_column_int64(st, 5);
    w->pid = (pid_t)sqlite3_column_int64(st, 6);
    w->start = (unsigned long long)sqlite3_column_int64(st, 7);
    CP(w->kernel, 8);
    CP(w->ramdisk, 9);
    CP(w->cmdline, 10);
#undef CP
    r = 0;
out:
    kova_db_done(st);
    kova_db_release(api->db, db);
    return r;
}

static int exec_sql(struct kova_api *api, const char *sql, const char *id, const char *a,
                    long long b)
{
    char now[32];
    now_iso(now);
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, sql);
    int r = -EIO;
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (a)
            sqlite3_bind_text(st, 2, a, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, b);
        sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
        r = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(db) : -EIO;
    }
    kova_db_done(st);
    kova_db_release(api->db, db);
    return r;
}

static void set_vmm(struct kova_api *api, const char *id, pid_t pid, unsigned long long start)
{
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st =
        kova_db_prepare(db, "UPDATE servers SET vmm_pid = ?2, vmm_start = ?3 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (pid > 0) {
            sqlite3_bind_int64(st, 2, pid);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)start);
        }
        if (sqlite3_step(st) != SQLITE_DONE)
            kova_log(0, "server %s: cannot record its VMM pid", id);
    }
    kova_db_done(st);
    kova_db_release(api->db, db);
}

/* Ends a task: vm_state/power_state set, task_state cleared (only while it is still `task`:
 * a delete may have taken over), the VMM columns cleared when none runs, launched_at set when
 * `launched`, a fault recorded when `fault` is not NULL, and the open instance action closed. */
static void finish(struct kova_api *api, const char *id, const char *task, const char *vm,
                   int power, bool vmm_gone, bool launched, int fault_code, const char *fault)
{
    char now[32], nowus[32];
    now_iso(now);
    kova_time_iso(nowus, false);
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = NULL;
    if (kova_db_begin(db) < 0)
        goto out;
    st = kova_db_prepare(
        db, "UPDATE servers SET vm_state = ?3, power_state = ?4, task_state = NULL, "
            "updated_at = ?5, vmm_pid = CASE WHEN ?6 THEN NULL ELSE vmm_pid END, vmm_start = "
            "CASE WHEN ?6 THEN NULL ELSE vmm_start END, launched_at = CASE WHEN ?7 THEN ?5 ELSE "
            "launched_at END, fault_code = CASE WHEN ?8 IS NULL THEN fault_code ELSE ?9 END, "
            "fault_message = coalesce(?8, fault_message), fault_details = coalesce(?8, "
            "fault_details), fault_created = CASE WHEN ?8 IS NULL THEN fault_created ELSE ?5 END "
            "WHERE id = ?1 AND task_state IS ?2");
    if (!st)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, task, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, vm, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, power);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, vmm_gone);
    sqlite3_bind_int(st, 7, launched);
    if (fault)
        sqlite3_bind_text(st, 8, fault, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 9, fault_code);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    bool changed = sqlite3_changes(db) > 0;
    kova_db_done(st);
    st = NULL;
    if (!changed) {
        /* delete took over: only the VMM columns matter */
        if (vmm_gone) {
            st = kova_db_prepare(db, "UPDATE servers SET vmm_pid = NULL, vmm_start = NULL "
                                     "WHERE id = ?1");
            if (!st)
                goto out;
            sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
            sqlite3_step(st);
            kova_db_done(st);
            st = NULL;
        }
        kova_db_commit(db);
        goto out;
    }
    st = kova_db_prepare(db, "UPDATE instance_action_events SET finish_time = ?2, result = ?3, "
                             "traceback = ?4 WHERE finish_time IS NULL AND action_id IN (SELECT "
                             "a.id FROM instance_actions a JOIN servers s ON s.seq = "
                             "a.server_seq WHERE s.id = ?1)");
    if (!st)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, nowus, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, fault ? "Error" : "Success", -1, SQLITE_STATIC);
    if (fault)
        sqlite3_bind_text(st, 4, fault, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    kova_db_done(st);
    st = kova_db_prepare(db, "UPDATE instance_actions SET finish_time = ?2, message = ?3 WHERE "
                             "finish_time IS NULL AND server_seq = (SELECT seq FROM servers "
                             "WHERE id = ?1)");
    if (!st)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, nowus, -1, SQLITE_TRANSIENT);
    if (fault)
        sqlite3_bind_text(st, 3, "Error", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    kova_db_done(st);
    st = NULL;
    if (kova_db_commit(db) == 0) {
        if (fault)
            kova_log(0, "server %s: %s failed: %s", id, task ? task : "task", fault);
        else
            kova_log(1, "server %s: %s done: %s", id, task ? task : "task", vm);
    }
out:
    kova_db_done(st);
    kova_db_rollback(db);
    kova_db_release(api->db, db);
}

/* ------------------------------------------------------------------ control socket */

/* Sends {"cmd": cmd} to the VMM's control socket and reads the reply line. 0 when it answers
 * ok (its "state" copied to state_out when given), -EPROTO for an error reply, -errno. */
static int ctl_cmd(const char *sock, const char *cmd, int timeout_ms, char *state_out,
                   size_t state_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int r;
    char buf[4096];
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        goto out;
    }
    int n = snprintf(buf, sizeof(buf), "{\"cmd\":\"%s\"}\n", cmd);
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
        r = -EIO;
        goto out;
    }
    for (;;) {
        ssize_t k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            r = k < 0 ? -errno : -ECONNRESET;
            goto out;
        }
        len += (size_t)k;
        if (memchr(buf, '\n', len))
            break;
        if (len >= sizeof(buf) - 1) {
            r = -EPROTO;
            goto out;
        }
    }
    json_t *j = json_loadb(buf, (size_t)((char *)memchr(buf, '\n', len) - buf), 0, NULL);
    json_t *ok = j ? json_object_get(j, "ok") : NULL;
    r = json_is_true(ok) ? 0 : -EPROTO;
    if (r == 0 && state_out) {
        const char *s = json_string_value(json_object_get(j, "state"));
        snprintf(state_out, state_len, "%s", s ? s : "");
    }
    json_decref(j);
out:
    close(fd);
    return r;
}

/* ------------------------------------------------------------------ spawning */

static int ipath(struct kova_api *api, const char *id, enum kova_instance_file f, char *out)
{
    return kova_layout_instance_path(&api->layout, id, f, out, KOVA_LAYOUT_PATH_MAX);
}

/* The last non-empty line of the instance's vmm.log, for a fault message. */
static void last_log_line(struct kova_api *api, const char *id, char *out, size_t outlen)
{
    char dir[KOVA_LAYOUT_PATH_MAX], path[KOVA_LAYOUT_PATH_MAX + 16], buf[2048];
    out[0] = 0;
    if (ipath(api, id, KOVA_INSTANCE_DIR, dir) < 0)
        return;
    snprintf(path, sizeof(path), "%s/vmm.log", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    struct stat sb;
    ssize_t n = 0;
    if (fstat(fd, &sb) == 0) {
        off_t off = sb.st_size > (off_t)sizeof(buf) - 1 ? sb.st_size - (off_t)sizeof(buf) + 1 : 0;
        n = pread(fd, buf, sizeof(buf) - 1, off);
    }
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    char *l = strrchr(buf, '\n');
    l = l ? l + 1 : buf;
    size_t o = 0;
    for (; *l && o + 1 < outlen; l++)
        out[o++] = ((unsigned char)*l < 0x20) ? ' ' : *l;
    out[o] = 0;
}

static void describe_exit(struct kova_api *api, const char *id, int ws, char *out, size_t len)
{
    char last[512];
    last_log_line(api, id, last, sizeof(last));
    char how[64];
    if (ws < 0)
        snprintf(how, sizeof(how), "exited");
    else if (WIFEXITED(ws))
        snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(ws));
    else if (WIFSIGNALED(ws))
        snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(ws));
    else
        snprintf(how, sizeof(how), "stopped");
    snprintf(out, len, "kova-vmm %s before the instance ran%s%s", how, last[0] ? ": " : "", last);
}

/* Forks and execs kova-vmm for the instance (own session, stdin /dev/null, stdout+stderr to
 * <dir>/vmm.log, no other descriptor), records its PID + start time in the row and starts
 * watching it. */
static int spawn_vmm(struct kova_api *api, struct inst *i, const struct row *w, char *err,
                     size_t errlen)
{
    char kernel[KOVA_LAYOUT_PATH_MAX], initrd[KOVA_LAYOUT_PATH_MAX], disk[KOVA_LAYOUT_PATH_MAX];
    char clog[KOVA_LAYOUT_PATH_MAX], sock[KOVA_LAYOUT_PATH_MAX], dir[KOVA_LAYOUT_PATH_MAX];
    char logp[KOVA_LAYOUT_PATH_MAX + 16], diskarg[KOVA_LAYOUT_PATH_MAX + 32], cpus[24], mem[24];
    int r;
    if (!w->kernel[0]) {
        snprintf(err, errlen, "the server has no kernel recorded (image without kernel_id)");
        return -EINVAL;
    }
    if ((r = kova_layout_base_path(&api->layout, w->kernel, kernel, sizeof(kernel))) < 0 ||
        (w->ramdisk[0] &&
         (r = kova_layout_base_path(&api->layout, w->ramdisk, initrd, sizeof(initrd))) < 0) ||
        (r = ipath(api, i->id, KOVA_INSTANCE_DIR, dir)) < 0 ||
        (r = ipath(api, i->id, KOVA_INSTANCE_DISK, disk)) < 0 ||
        (r = ipath(api, i->id, KOVA_INSTANCE_CONSOLE_LOG, clog)) < 0 ||
        (r = ipath(api, i->id, KOVA_INSTANCE_VMM_SOCK, sock)) < 0) {
        snprintf(err, errlen, "cannot build the instance's paths: %s", strerror(-r));
        return r;
    }
    struct stat sb;
    if (stat(disk, &sb) < 0) {
        r = -errno;
        snprintf(err, errlen, "the instance's disk is missing: %s", strerror(-r));
        return r;
    }
    snprintf(logp, sizeof(logp), "%s/vmm.log", dir);
    snprintf(diskarg, sizeof(diskarg), "path=%s,format=qcow2", disk);
    snprintf(cpus, sizeof(cpus), "%lld", w->vcpus);
    snprintf(mem, sizeof(mem), "%lld", w->ram);
    const char *argv[24];
    int a = 0;
    argv[a++] = api->cfg.vmm_path;
    argv[a++] = "--kernel";
    argv[a++] = kernel;
    if (w->ramdisk[0]) {
        argv[a++] = "--initrd";
        argv[a++] = initrd;
    }
    argv[a++] = "--cmdline";
    argv[a++] = w->cmdline[0] ? w->cmdline : "console=ttyS0";
    argv[a++] = "--cpus";
    argv[a++] = cpus;
    argv[a++] = "--memory";
    argv[a++] = mem;
    argv[a++] = "--console-log";
    argv[a++] = clog;
    argv[a++] = "--control-socket";
    argv[a++] = sock;
    argv[a++] = "--disk";
    argv[a++] = diskarg;
    argv[a] = NULL;

    unlink(sock); /* a stale socket of a VMM that died */
    int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot open %s: %s", logfd < 0 ? logp : "/dev/null", strerror(-r));
        goto fail_fds;
    }
    pid_t pid = fork();
    if (pid < 0) {
        r = -errno;
        snprintf(err, errlen, "fork: %s", strerror(-r));
        goto fail_fds;
    }
    if (pid == 0) {
        /* the child: async-signal-safe calls only */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setsid();
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        execv(argv[0], (char *const *)argv);
        static const char msg[] = "kova-agent: cannot execute kova-vmm\n";
        if (write(2, msg, sizeof(msg) - 1) < 0) {
            /* nothing left to report to */
        }
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    int pfd = pidfd_open(pid);
    if (pfd < 0) {
        r = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "pidfd_open: %s", strerror(-r));
        return r;
    }
    fcntl(pfd, F_SETFD, FD_CLOEXEC);
    unsigned long long start = proc_start_time(pid);
    set_vmm(api, i->id, pid, start);
    inst_watch(api->sup, i, pid, pfd, start);
    kova_log(1, "server %s: kova-vmm started, pid %d", i->id, (int)pid);
    return 0;
fail_fds:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return r;
}

/* Waits for the VMM's control socket to answer status; -ECHILD when the VMM exited first (err
 * says how), -ETIMEDOUT. */
static int wait_ready(struct kova_api *api, struct inst *i, char *err, size_t errlen)
{
    char sock[KOVA_LAYOUT_PATH_MAX];
    int r = ipath(api, i->id, KOVA_INSTANCE_VMM_SOCK, sock);
    if (r < 0)
        return r;
    struct timespec d;
    mono_deadline(&d, (long)api->cfg.boot_timeout * 1000);
    for (;;) {
        int ws;
        if (!inst_running(api->sup, i, &ws)) {
            describe_exit(api, i->id, ws, err, errlen);
            return -ECHILD;
        }
        if (ctl_cmd(sock, "status", 2000, NULL, 0) == 0)
            return 0;
        if (past(&d)) {
            snprintf(err, errlen, "kova-vmm did not answer on its control socket within %u s",
                     api->cfg.boot_timeout);
            return -ETIMEDOUT;
        }
        wait_exit(api->sup, i, 10);
    }
}

/* Starts the VMM and waits for it; on failure nothing is left running. */
static int boot(struct kova_api *api, struct inst *i, const struct row *w, char *err, size_t errlen)
{
    int r = spawn_vmm(api, i, w, err, errlen);
    if (r < 0)
        return r;
    r = wait_ready(api, i, err, errlen);
    if (r < 0) {
        inst_kill(api->sup, i);
        wait_exit(api->sup, i, 30000);
    }
    return r;
}

enum stop_mode { STOP_CLEAN, STOP_QUIT, STOP_KILL };

/* Stops the VMM: STOP_CLEAN presses the power button and waits up to shutdown_timeout,
 * STOP_QUIT asks it to quit now (5 s), then SIGKILL. true when none runs any more. */
static bool stop_vmm(struct kova_api *api, struct inst *i, enum stop_mode mode)
{
    struct kova_sup *s = api->sup;
    if (!inst_running(s, i, NULL))
        return true;
    char sock[KOVA_LAYOUT_PATH_MAX];
    if (ipath(api, i->id, KOVA_INSTANCE_VMM_SOCK, sock) < 0)
        mode = STOP_KILL;
    if (mode == STOP_CLEAN && api->cfg.shutdown_timeout > 0) {
        char state[32] = "";
        if (ctl_cmd(sock, "status", 2000, state, sizeof(state)) == 0 && !strcmp(state, "paused"))
            ctl_cmd(sock, "resume", 2000, NULL, 0);
        if (ctl_cmd(sock, "powerdown", 2000, NULL, 0) == 0 &&
            wait_exit(s, i, (long)api->cfg.shutdown_timeout * 1000))
            return true;
        kova_log(1, "server %s: no clean shutdown within %u s: destroying it", i->id,
                 api->cfg.shutdown_timeout);
    } else if (mode == STOP_QUIT) {
        if (ctl_cmd(sock, "quit", 2000, NULL, 0) == 0 && wait_exit(s, i, 5000))
            return true;
    }
    inst_kill(s, i);
    return wait_exit(s, i, 30000);
}

/* ------------------------------------------------------------------ images */

static void image_file(struct kova_api *api, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", api->images_dir, id);
}

/* Looks up an active image: its disk format and properties. */
static int image_info(struct kova_api *api, const char *id, char *fmt, size_t fmtlen,
                      json_t **props, char *err, size_t errlen)
{
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, "SELECT status, disk_format, properties FROM images "
                                           "WHERE id = ?");
    int r = -EIO;
    if (!st) {
        snprintf(err, errlen, "database error");
        goto out;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "Image %.64s could not be found.", id);
        r = -ENOENT;
        goto out;
    }
    const char *status = (const char *)sqlite3_column_text(st, 0);
    if (!status || strcmp(status, "active")) {
        snprintf(err, errlen, "Image %.64s is not active.", id);
        r = -EINVAL;
        goto out;
    }
    const char *f = (const char *)sqlite3_column_text(st, 1);
    snprintf(fmt, fmtlen, "%s", f ? f : "");
    if (props) {
        const char *p = (const char *)sqlite3_column_text(st, 2);
        *props = json_loads(p ? p : "{}", 0, NULL);
        if (!json_is_object(*props)) {
            json_decref(*props);
            *props = json_object();
        }
    }
    r = 0;
out:
    kova_db_done(st);
    kova_db_release(api->db, db);
    return r;
}

static int cache(struct kova_api *api, const char *id, char *err, size_t errlen)
{
    char src[4400];
    image_file(api, id, src, sizeof(src));
    return kova_layout_cache_image(&api->layout, id, src, NULL, 0, err, errlen);
}

/* Caches the image (and its kernel and ramdisk) into _base, records what it boots in the row,
 * and creates the instance dir with its overlay. */
static int prepare_instance(struct kova_api *api, struct inst *i, struct row *w, int *fault_code,
                            char *err, size_t errlen)
{
    char fmt[32];
    json_t *props = NULL;
    int r = image_info(api, w->image, fmt, sizeof(fmt), &props, err, errlen);
    if (r < 0)
        return r;
    enum kova_disk_format bf;
    if (!strcmp(fmt, "qcow2"))
        bf = KOVA_DISK_QCOW2;
    else if (!strcmp(fmt, "raw") || !strcmp(fmt, "ami") || !fmt[0])
        bf = KOVA_DISK_RAW;
    else {
        snprintf(err, errlen, "Image %s has disk_format %s: kova boots raw and qcow2 images.",
                 w->image, fmt);
        r = -EINVAL;
        goto out;
    }
    const char *kid = json_string_value(json_object_get(props, "kernel_id"));
    const char *rid = json_string_value(json_object_get(props, "ramdisk_id"));
    const char *cmd = json_string_value(json_object_get(props, "os_command_line"));
    if (!kid || !kova_is_uuid(kid)) {
        snprintf(err, errlen,
                 "Image %s has no kernel_id property: kova boots a kernel image directly "
                 "(set kernel_id, and ramdisk_id and os_command_line as needed).",
                 w->image);
        r = -EINVAL;
        goto out;
    }
    if (rid && !kova_is_uuid(rid)) {
        snprintf(err, errlen, "Image %s has an invalid ramdisk_id.", w->image);
        r = -EINVAL;
        goto out;
    }
    char f2[32];
    if ((r = image_info(api, kid, f2, sizeof(f2), NULL, err, errlen)) < 0 ||
        (rid && (r = image_info(api, rid, f2, sizeof(f2), NULL, err, errlen)) < 0))
        goto out;
    if ((r = cache(api, kid, err, errlen)) < 0 || (rid && (r = cache(api, rid, err, errlen)) < 0) ||
        (r = cache(api, w->image, err, errlen)) < 0)
        goto out;
    snprintf(w->kernel, sizeof(w->kernel), "%s", kid);
    snprintf(w->ramdisk, sizeof(w->ramdisk), "%s", rid ? rid : "");
    snprintf(w->cmdline, sizeof(w->cmdline), "%s", cmd ? cmd : "console=ttyS0");
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, "UPDATE servers SET kernel_id = ?2, ramdisk_id = ?3, "
                                           "os_cmdline = ?4 WHERE id = ?1");
    if (st) {
        sqlite3_bind_text(st, 1, i->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, w->kernel, -1, SQLITE_TRANSIENT);
        if (rid)
            sqlite3_bind_text(st, 3, w->ramdisk, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, w->cmdline, -1, SQLITE_TRANSIENT);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    }
    kova_db_done(st);
    kova_db_release(api->db, db);
    if (!st || r < 0) {
        snprintf(err, errlen, "database error");
        r = -EIO;
        goto out;
    }
    struct kova_instance_spec spec = {
        .uuid = i->id,
        .image_id = w->image,
        .base_format = bf,
        .root_bytes = (uint64_t)w->disk << 30,
    };
    r = kova_layout_create_instance(&api->layout, &spec, NULL, err, errlen);
    if (r == -EEXIST) {
        /* left by an earlier attempt of this same build or rebuild (agent restarted) */
        kova_layout_remove_instance(&api->layout, i->id, NULL, 0);
        r = kova_layout_create_instance(&api->layout, &spec, NULL, err, errlen);
    }
    if (r == KOVA_LAYOUT_EFLAVOR_DISK_SMALLER)
        *fault_code = 400;
out:
    json_decref(props);
    return r;
}

/* ------------------------------------------------------------------ tasks */

struct task {
    struct kova_api *api;
    enum kova_op op;
    char id[KOVA_UUID_STRLEN + 1];
};

static const char *op_task_state(enum kova_op op)
{
    switch (op) {
    case OP_BUILD:
        return "spawning";
    case OP_STOP:
        return "powering-off";
    case OP_START:
        return "powering-on";
    case OP_REBOOT_SOFT:
        return "rebooting";
    case OP_REBOOT_HARD:
        return "rebooting_hard";
    case OP_PAUSE:
        return "pausing";
    case OP_UNPAUSE:
        return "unpausing";
    case OP_REBUILD:
        return "rebuilding";
    case OP_DELETE:
        return "deleting";
    }
    return "";
}

static void do_build(struct kova_api *api, struct inst *i, struct row *w)
{
    char err[1024] = "";
    int code = 500;
    if (strcmp(w->vm, "building") != 0)
        return;
    /* the API records 'scheduling'; the build owns the server from here */
    if (exec_sql(api,
                 "UPDATE servers SET task_state = 'spawning', updated_at = ?4 WHERE id = ?1 AND "
                 "vm_state = 'building' AND task_state IS NOT 'deleting' AND ?3 = ?3",
                 i->id, NULL, 0) <= 0)
        return;
    /* a VMM left by an interrupted earlier attempt (adopted at start-up) goes first */
    stop_vmm(api, i, STOP_KILL);
    int r = prepare_instance(api, i, w, &code, err, sizeof(err));
    if (r == 0)
        r = boot(api, i, w, err, sizeof(err));
    if (r < 0) {
        stop_vmm(api, i, STOP_KILL);
        finish(api, i->id, "spawning", "error", 0, true, false, code, err[0] ? err : strerror(-r));
        return;
    }
    finish(api, i->id, "spawning", "active", 1, false, true, 0, NULL);
}

/* Boots the instance again (start, reboot). A failed start leaves it stopped, as Nova does (the
 * action's event records the error; the server is not put in ERROR); a failed reboot makes it
 * ERROR. Either way boot() has left nothing running. */
static void do_boot_after(struct kova_api *api, struct inst *i, struct row *w, const char *task,
                          bool fail_stopped)
{
    char err[1024] = "";
    int r = boot(api, i, w, err, sizeof(err));
    if (r < 0)
        finish(api, i->id, task, fail_stopped ? "stopped" : "error", 4, true, false, 500,
               err[0] ? err : strerror(-r));
    else
        finish(api, i->id, task, "active", 1, false, false, 0, NULL);
}

static void do_rebuild(struct kova_api *api, struct inst *i, struct row *w)
{
    char err[1024] = "";
    int code = 500;
    bool was_stopped = !strcmp(w->vm, "stopped");
    stop_vmm(api, i, STOP_CLEAN);
    set_vmm(api, i->id, 0, 0);
    int r = kova_layout_remove_instance(&api->layout, i->id, err, sizeof(err));
    if (r < 0 && r != -ENOENT)
        goto fail;
    if ((r = prepare_instance(api, i, w, &code, err, sizeof(err))) < 0)
        goto fail;
    if (was_stopped) {
        finish(api, i->id, "rebuilding", "stopped", 4, true, false, 0, NULL);
        return;
    }
    if ((r = boot(api, i, w, err, sizeof(err))) < 0)
        goto fail;
    finish(api, i->id, "rebuilding", "active", 1, false, true, 0, NULL);
    return;
fail:
    finish(api, i->id, "rebuilding", "error", 4, true, false, code, err[0] ? err : strerror(-r));
}

static void do_delete(struct kova_api *api, struct inst *i)
{
    char err[512];
    stop_vmm(api, i, STOP_QUIT);
    int r = kova_layout_remove_instance(&api->layout, i->id, err, sizeof(err));
    if (r < 0 && r != -ENOENT)
        kova_log(0, "server %s: cannot remove its dir: %s", i->id, err);
    if (exec_sql(api, "DELETE FROM servers WHERE id = ?1 AND ?3 = ?3", i->id, NULL, 0) < 0)
        kova_log(0, "server %s: cannot delete its row", i->id);
    else
        kova_log(1, "server %s: deleted", i->id);
}

/* pause/unpause through the control socket. On failure the action's event records the error:
 * a VMM that is gone (it vanished, or died meanwhile) leaves the server stopped with nothing
 * running; a VMM that refused keeps its state. */
static void do_ctl(struct kova_api *api, struct inst *i, const char *cmd, const char *task,
                   const char *ok_vm, int ok_power, const char *was_vm, int was_power)
{
    char sock[KOVA_LAYOUT_PATH_MAX], err[256];
    int r = -ESRCH;
    if (inst_running(api->sup, i, NULL) &&
        (r = ipath(api, i->id, KOVA_INSTANCE_VMM_SOCK, sock)) == 0)
        r = ctl_cmd(sock, cmd, 5000, NULL, 0);
    if (r == 0) {
        finish(api, i->id, task, ok_vm, ok_power, false, false, 0, NULL);
        return;
    }
    /* A VMM that dropped the connection may be on its way out: give its exit a moment. */
    if (r != -EPROTO && inst_running(api->sup, i, NULL))
        wait_exit(api->sup, i, 1000);
    if (!inst_running(api->sup, i, NULL)) {
        snprintf(err, sizeof(err), "%s failed: kova-vmm is not running", cmd);
        /* its exit is recorded (SHUTOFF) here; record_exit at release then finds nothing left */
        finish(api, i->id, task, "stopped", 4, true, false, 500, err);
        return;
    }
    snprintf(err, sizeof(err), "%s failed: %s", cmd,
             r == -EPROTO ? "kova-vmm refused it" : strerror(-r));
    finish(api, i->id, task, was_vm, was_power, false, false, 500, err);
}

static void task_run(void *p)
{
    struct task *t = p;
    struct kova_api *api = t->api;
    struct inst *i = inst_acquire(api->sup, t->id);
    struct row w;
    if (!i) {
        kova_log(0, "server %s: out of memory for its task", t->id);
        free(t);
        return;
    }
    if (load_row(api, t->id, &w) < 0)
        goto out;
    const char *task = op_task_state(t->op);
    /* The server must still be in this task's state (a delete may have taken over). */
    if (t->op != OP_BUILD && (!w.has_task || strcmp(w.task, task)))
        goto out;
    if (t->op == OP_BUILD && (!w.has_task || !strcmp(w.task, "deleting")))
        goto out;
    switch (t->op) {
    case OP_BUILD:
        do_build(api, i, &w);
        break;
    case OP_STOP:
        stop_vmm(api, i, STOP_CLEAN);
        finish(api, i->id, task, "stopped", 4, true, false, 0, NULL);
        break;
    case OP_START:
        if (inst_running(api->sup, i, NULL))
            finish(api, i->id, task, "active", 1, false, false, 0, NULL);
        else
            do_boot_after(api, i, &w, task, true);
        break;
    case OP_REBOOT_SOFT:
    case OP_REBOOT_HARD:
        stop_vmm(api, i, t->op == OP_REBOOT_SOFT ? STOP_CLEAN : STOP_KILL);
        set_vmm(api, i->id, 0, 0);
        do_boot_after(api, i, &w, task, false);
        break;
    case OP_PAUSE:
        do_ctl(api, i, "pause", task, "paused", 3, "active", 1);
        break;
    case OP_UNPAUSE:
        do_ctl(api, i, "resume", task, "active", 1, "paused", 3);
        break;
    case OP_REBUILD:
        do_rebuild(api, i, &w);
        break;
    case OP_DELETE:
        do_delete(api, i);
        break;
    }
out:
    inst_release(api, i);
    free(t);
}

int lifecycle_submit(struct kova_api *api, const char *id, enum kova_op op)
{
    struct task *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->api = api;
    t->op = op;
    snprintf(t->id, sizeof(t->id), "%s", id);
    if (!api->cfg.submit || api->cfg.submit(api->cfg.submit_opaque, task_run, t) < 0)
        task_run(t); /* no workers (or stopping): run it here */
    return 0;
}

/* ------------------------------------------------------------------ the monitor thread */

static void *monitor_main(void *p)
{
    struct kova_api *api = p;
    struct kova_sup *s = api->sup;
    struct pollfd *pfds = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (s->stopping) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        size_t n = 1;
        for (struct inst *i = s->list; i; i = i->next)
            n += i->running && i->pidfd >= 0;
        if (n > cap) {
            struct pollfd *np = realloc(pfds, n * 2 * sizeof(*np));
            if (!np) {
                pthread_mutex_unlock(&s->lock);
                sleep(1);
                continue;
            }
            pfds = np;
            cap = n * 2;
        }
        n = 0;
        pfds[n++] = (struct pollfd){.fd = s->evfd, .events = POLLIN};
        for (struct inst *i = s->list; i; i = i->next)
            if (i->running && i->pidfd >= 0)
                pfds[n++] = (struct pollfd){.fd = i->pidfd, .events = POLLIN};
        pthread_mutex_unlock(&s->lock);

        if (poll(pfds, n, -1) < 0)
            continue;
        if (pfds[0].revents) {
            uint64_t v;
            if (read(s->evfd, &v, sizeof(v)) < 0) {
                /* EAGAIN: woken already */
            }
        }
        struct {
            char id[KOVA_UUID_STRLEN + 1];
            pid_t pid;
            int ws;
        } rec[64];
        size_t nrec = 0;
        pthread_mutex_lock(&s->lock);
        for (size_t k = 1; k < n; k++) {
            if (!pfds[k].revents)
                continue;
            struct inst *i = s->list;
            while (i && !(i->running && i->pidfd == pfds[k].fd))
                i = i->next;
            if (!i)
                continue;
            int ws = -1;
            if (waitpid(i->pid, &ws, WNOHANG) <= 0)
                ws = -1; /* adopted: not our child */
            close(i->pidfd);
            i->pidfd = -1;
            i->running = false;
            i->wstatus = ws;
            i->exited_pid = i->pid;
            if (i->busy) {
                i->exit_unrecorded = true;
            } else if (nrec < sizeof(rec) / sizeof(rec[0])) {
                snprintf(rec[nrec].id, sizeof(rec[nrec].id), "%s", i->id);
                rec[nrec].ws = ws;
                rec[nrec++].pid = i->pid;
            }
            inst_put(s, i);
        }
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        for (size_t k = 0; k < nrec; k++)
            record_exit(api, rec[k].id, rec[k].pid, rec[k].ws);
    }
    free(pfds);
    return NULL;
}

/* ------------------------------------------------------------------ start-up reconciliation */

/* kova-vmm processes whose control socket lies in this state dir's instances dir: calls fn for
 * each with the instance id. */
static void scan_vmms(struct kova_api *api, void (*fn)(struct kova_api *, pid_t, const char *))
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    if (kova_layout_instances_dir(&api->layout, inst_dir, sizeof(inst_dir)) < 0)
        return;
    size_t dl = strlen(inst_dir);
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    char path[64], buf[8192];
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid())
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        const char *a0 = strrchr(buf, '/');
        a0 = a0 ? a0 + 1 : buf;
        if (strcmp(a0, "kova-vmm") != 0)
            continue;
        for (char *q = buf; q < buf + n; q += strlen(q) + 1) {
            if (strcmp(q, "--control-socket") != 0)
                continue;
            char *v = q + strlen(q) + 1;
            if (v >= buf + n)
                break;
            if (strncmp(v, inst_dir, dl) == 0 && v[dl] == '/' &&
                strlen(v + dl + 1) == KOVA_UUID_STRLEN + strlen("/vmm.sock") &&
                !strcmp(v + dl + 1 + KOVA_UUID_STRLEN, "/vmm.sock")) {
                char id[KOVA_UUID_STRLEN + 1];
                memcpy(id, v + dl + 1, KOVA_UUID_STRLEN);
                id[KOVA_UUID_STRLEN] = 0;
                if (kova_uuid_valid(id))
                    fn(api, (pid_t)pid, id);
            }
            break;
        }
    }
    closedir(d);
}

static void kill_orphan(struct kova_api *api, pid_t pid, const char *id)
{
    pthread_mutex_lock(&api->sup->lock);
    struct inst *i = inst_find(api->sup, id);
    bool adopted = i && i->running && i->pid == pid;
    pthread_mutex_unlock(&api->sup->lock);
    if (adopted)
        return;
    int fd = pidfd_open(pid);
    if (fd < 0)
        return;
    kova_log(1, "kova-vmm %d of instance %s has no server that owns it: killing it", (int)pid, id);
    pidfd_kill(fd, SIGKILL);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    poll(&pf, 1, 10000);
    waitpid(pid, NULL, WNOHANG);
    close(fd);
}

/* Reconciles one row that names a VMM. Returns 1 when it was adopted. */
static int adopt(struct kova_api *api, const char *id, pid_t pid, unsigned long long start,
                 char *state, size_t statelen)
{
    char sock[KOVA_LAYOUT_PATH_MAX];
    if (pid <= 0 || !start || proc_start_time(pid) != start)
        return 0;
    if (ipath(api, id, KOVA_INSTANCE_VMM_SOCK, sock) < 0 ||
        ctl_cmd(sock, "status", 3000, state, statelen) < 0)
        return 0; /* PID matches but it does not answer: not ours, or hung (killed as orphan) */
    int fd = pidfd_open(pid);
    if (fd < 0)
        return 0;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (proc_start_time(pid) != start) { /* exited and reused between the checks */
        close(fd);
        return 0;
    }
    pthread_mutex_lock(&api->sup->lock);
    struct inst *i = inst_get(api->sup, id);
    pthread_mutex_unlock(&api->sup->lock);
    if (!i) {
        close(fd);
        return 0;
    }
    inst_watch(api->sup, i, pid, fd, start);
    kova_log(1, "server %s: adopted its running kova-vmm %d", id, (int)pid);
    return 1;
}

static int reconcile_rows(struct kova_api *api)
{
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, "SELECT id, vm_state, task_state, vmm_pid, vmm_start "
                                           "FROM servers");
    struct rr {
        char id[KOVA_UUID_STRLEN + 1], vm[32], task[40];
        bool has_task;
        pid_t pid;
        unsigned long long start;
    } *rows = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            struct rr *nr = realloc(rows, (cap ? cap * 2 : 64) * sizeof(*nr));
            if (!nr) {
                r = -ENOMEM;
                break;
            }
            rows = nr;
            cap = cap ? cap * 2 : 64;
        }
        struct rr *x = &rows[n++];
        memset(x, 0, sizeof(*x));
        snprintf(x->id, sizeof(x->id), "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(x->vm, sizeof(x->vm), "%s", (const char *)sqlite3_column_text(st, 1));
        x->has_task = sqlite3_column_type(st, 2) != SQLITE_NULL;
        if (x->has_task)
            snprintf(x->task, sizeof(x->task), "%s", (const char *)sqlite3_column_text(st, 2));
        x->pid = (pid_t)sqlite3_column_int64(st, 3);
        x->start = (unsigned long long)sqlite3_column_int64(st, 4);
    }
    if (!st)
        r = -EIO;
    kova_db_done(st);
    kova_db_release(api->db, db);
    for (size_t k = 0; k < n && r == 0; k++) {
        struct rr *x = &rows[k];
        if (!kova_uuid_valid(x->id))
            continue;
        char state[32] = "";
        bool alive = adopt(api, x->id, x->pid, x->start, state, sizeof(state)) == 1;
        bool paused = alive && !strcmp(state, "paused");
        if (x->has_task && (!strcmp(x->task, "deleting") || !strcmp(x->vm, "building")))
            continue; /* requeued by lifecycle_resume(): the task itself handles a live VMM */
        const char *vm = x->vm;
        int power;
        char *fault = NULL;
        if (alive) {
            if (!strcmp(vm, "error") && !x->has_task)
                power = paused ? 3 : 1;
            else {
                vm = paused ? "paused" : "active";
                power = paused ? 3 : 1;
            }
        } else {
            power = 4;
            if (!strcmp(vm, "active") || !strcmp(vm, "paused") || !strcmp(vm, "suspended"))
                vm = "stopped";
            if (x->has_task && !strcmp(x->task, "rebuilding")) {
                vm = "error";
                fault = "the rebuild was interrupted by an agent restart; rebuild it again";
            }
        }
        sqlite3 *c = kova_db_acquire(api->db);
        sqlite3_stmt *u = kova_db_prepare(
            c, "UPDATE servers SET vm_state = ?2, power_state = ?3, task_state = NULL, vmm_pid = "
               "CASE WHEN ?4 THEN vmm_pid ELSE NULL END, vmm_start = CASE WHEN ?4 THEN vmm_start "
               "ELSE NULL END, fault_code = CASE WHEN ?5 IS NULL THEN fault_code ELSE 500 END, "
               "fault_message = coalesce(?5, fault_message), fault_details = coalesce(?5, "
               "fault_details), fault_created = CASE WHEN ?5 IS NULL THEN fault_created ELSE "
               "strftime('%Y-%m-%dT%H:%M:%SZ','now') END WHERE id = ?1");
        if (u) {
            sqlite3_bind_text(u, 1, x->id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(u, 2, vm, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(u, 3, power);
            sqlite3_bind_int(u, 4, alive);
            if (fault)
                sqlite3_bind_text(u, 5, fault, -1, SQLITE_STATIC);
            if (sqlite3_step(u) != SQLITE_DONE)
                r = -EIO;
        } else {
            r = -EIO;
        }
        kova_db_done(u);
        kova_db_release(api->db, c);
        if (x->has_task || (x->pid && !alive))
            kova_log(1, "server %s: after restart: %s%s", x->id, vm,
                     x->has_task ? " (its interrupted task ended)" : "");
    }
    free(rows);
    return r;
}

/* Instance dirs that no row names are removed. */
static void remove_stray_dirs(struct kova_api *api)
{
    char(*ids)[KOVA_UUID_STRLEN + 1] = NULL;
    size_t n = 0;
    char err[256];
    if (kova_layout_list_instances(&api->layout, &ids, &n, err, sizeof(err)) < 0) {
        kova_log(0, "cannot list instance dirs: %s", err);
        return;
    }
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, "SELECT 1 FROM servers WHERE id = ?");
    for (size_t k = 0; st && k < n; k++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, ids[k], -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            continue;
        if (kova_layout_remove_instance(&api->layout, ids[k], err, sizeof(err)) == 0)
            kova_log(1, "removed instance dir %s: no server has it", ids[k]);
        else
            kova_log(0, "cannot remove stray instance dir %s: %s", ids[k], err);
    }
    kova_db_done(st);
    kova_db_release(api->db, db);
    free(ids);
}

int lifecycle_start(struct kova_api *api)
{
    char err[256];
    int r;
    char abs[PATH_MAX];
    if (!realpath(api->state_dir, abs)) {
        r = -errno;
        kova_log(0, "state dir %s: %s", api->state_dir, strerror(-r));
        return r;
    }
    if ((r = kova_layout_init(&api->layout, abs, err, sizeof(err))) < 0) {
        kova_log(0, "%s", err);
        return r;
    }
    struct kova_sup *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    api->sup = s;
    if (s->evfd < 0)
        return -errno;
    unsigned swept = 0;
    if ((r = kova_layout_sweep_partial(&api->layout, &swept, err, sizeof(err))) < 0)
        kova_log(0, "sweeping half-built instance dirs: %s", err);
    else if (swept)
        kova_log(1, "removed %u half-built instance dir(s) of a previous run", swept);
    if ((r = pthread_create(&s->thread, NULL, monitor_main, api)) != 0)
        return -r;
    s->thread_up = true;
    if ((r = reconcile_rows(api)) < 0)
        return r;
    scan_vmms(api, kill_orphan);
    remove_stray_dirs(api);
    return 0;
}

int lifecycle_resume(struct kova_api *api)
{
    sqlite3 *db = kova_db_acquire(api->db);
    sqlite3_stmt *st = kova_db_prepare(db, "SELECT id, task_state = 'deleting' FROM servers "
                                           "WHERE task_state = 'deleting' OR vm_state = "
                                           "'building'");
    struct {
        char id[KOVA_UUID_STRLEN + 1];
        bool del;
    } *v = NULL;
    size_t n = 0, cap = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            void *nv = realloc(v, (cap ? cap * 2 : 32) * sizeof(*v));
            if (!nv)
                break;
            v = nv;
            cap = cap ? cap * 2 : 32;
        }
        snprintf(v[n].id, sizeof(v[n].id), "%s", (const char *)sqlite3_column_text(st, 0));
        v[n++].del = sqlite3_column_int(st, 1);
    }
    kova_db_done(st);
    /* a build interrupted after it took the server over starts again from scheduling */
    kova_db_exec(db, "UPDATE servers SET task_state = 'scheduling' WHERE vm_state = 'building' "
                     "AND task_state IS NOT 'deleting'");
    kova_db_release(api->db, db);
    for (size_t k = 0; k < n; k++)
        lifecycle_submit(api, v[k].id, v[k].del ? OP_DELETE : OP_BUILD);
    free(v);
    return (int)n;
}

void lifecycle_stop(struct kova_api *api)
{
    struct kova_sup *s = api ? api->sup : NULL;
    if (!s)
        return;
    if (s->thread_up) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_mutex_unlock(&s->lock);
        monitor_wake(s);
        pthread_join(s->thread, NULL);
    }
    /* the VMMs keep running: the next agent adopts them */
    while (s->list) {
        struct inst *i = s->list;
        s->list = i->next;
        if (i->pidfd >= 0)
            close(i->pidfd);
        free(i);
    }
    if (s->evfd >= 0)
        close(s->evfd);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    api->sup = NULL;
}

void lifecycle_console_path(struct kova_api *api, const char *id, char *out, size_t len)
{
    if (kova_layout_instance_path(&api->layout, id, KOVA_INSTANCE_CONSOLE_LOG, out, len) < 0)
        out[0] = 0;
}
