/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KVM driver (kova/driver.h): one kova-vmm process per running instance, in an
 * instances-layout/ dir.
 *
 *  - A VMM is forked+exec'd in its own session (an agent restart, even SIGKILL, leaves it
 *    running) and identified by PID + process start time (/proc/<pid>/stat field 22), watched by
 *    one monitor thread through a pidfd (works for adopted non-children too; children are reaped
 *    there). Every exit is reported through on_exit.
 *  - The control socket (kova/vmm_control.h) is how it is asked to pause, resume, power down or
 *    quit, and how a new or adopted VMM shows that it is alive.
 *  - VMMs whose control socket lies in this state dir's instances dir but that the driver does
 *    not watch (a previous agent's, not adopted) are found by a /proc scan.
 */
#include "kova/common.h"
#include "kova/driver.h"
#include "kova/db.h"
#include "kova/layout.h"
#include "kova/metadata.h"
#include "kova/network.h"
#include "kova/vmm_control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* A VMM the driver watches, or the last one of an instance, after its exit (alive false: its
 * wait status kept for the fault message, until the instance's next VMM or its destroy). */
struct vmm_proc {
    char id[KOVA_UUID_STRLEN + 1];
    struct vmm_proc *next;
    pid_t pid;
    int pidfd;
    unsigned long long start;
    bool alive;
    int wstatus; /* -1: not known (an adopted VMM is not our child) */
};

struct kvm_driver {
    struct kova_driver base;
    struct kova_kvm_driver_config cfg;
    char *state_dir, *images_dir, *vmm_path;
    bool vmm_ids; /* kova-vmm changes to vmm_uid/vmm_gid (the agent runs as root) */
    uid_t vmm_uid;
    gid_t vmm_gid;
    /* per-instance uids (vmm_uid_range): first..last, 0 when off; picked under uid_lock */
    uid_t uid_first, uid_last;
    pthread_mutex_t uid_lock;
    struct kova_layout layout;
    pthread_mutex_t lock;
    pthread_cond_t exited;
    struct vmm_proc *procs;
    /* instances list() found a VMM of that nobody watches: power_off/destroy kill those (by a
     * /proc scan, so only for them, not on every stop) */
    char (*strays)[KOVA_UUID_STRLEN + 1];
    size_t nstrays;
    int evfd;
    pthread_t thread;
    bool thread_up, stopping;
};

#define KD(d) ((struct kvm_driver *)(d))

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

static int instance_file_path(struct kvm_driver *k, const char *id, enum kova_instance_file f,
                              char *out)
{
    return kova_layout_instance_path(&k->layout, id, f, out, KOVA_LAYOUT_PATH_MAX);
}

/* ------------------------------------------------------------------ watched VMMs */

/* Under k->lock: the instance's live VMM, or NULL. */
static struct vmm_proc *proc_find(struct kvm_driver *k, const char *id)
{
    for (struct vmm_proc *p = k->procs; p; p = p->next)
        if (p->alive && !strcmp(p->id, id))
            return p;
    return NULL;
}

/* Under k->lock: forgets the exited VMMs of the instance. */
static void proc_forget(struct kvm_driver *k, const char *id)
{
    for (struct vmm_proc **pp = &k->procs; *pp;) {
        struct vmm_proc *p = *pp;
        if (!p->alive && !strcmp(p->id, id)) {
            *pp = p->next;
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

/* The wait status of the instance's last VMM that exited (-1 when not known). */
static int last_status(struct kvm_driver *k, const char *id)
{
    int ws = -1;
    pthread_mutex_lock(&k->lock);
    for (struct vmm_proc *p = k->procs; p; p = p->next)
        if (!p->alive && !strcmp(p->id, id))
            ws = p->wstatus;
    pthread_mutex_unlock(&k->lock);
    return ws;
}

static void monitor_wake(struct kvm_driver *k)
{
    uint64_t one = 1;
    if (write(k->evfd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow in practice; nothing to do */
    }
}

/* Starts watching a VMM (pidfd is taken over). */
static int watch(struct kvm_driver *k, const char *id, pid_t pid, int pidfd,
                 unsigned long long start)
{
    struct vmm_proc *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->pid = pid;
    p->pidfd = pidfd;
    p->start = start;
    p->alive = true;
    p->wstatus = -1;
    pthread_mutex_lock(&k->lock);
    proc_forget(k, id);
    p->next = k->procs;
    k->procs = p;
    pthread_mutex_unlock(&k->lock);
    monitor_wake(k);
    return 0;
}

static bool running(struct kvm_driver *k, const char *id)
{
    pthread_mutex_lock(&k->lock);
    bool r = proc_find(k, id) != NULL;
    pthread_mutex_unlock(&k->lock);
    return r;
}

/* Waits until the instance's VMM is gone or the deadline passes; true when gone. */
static bool wait_exit(struct kvm_driver *k, const char *id, long ms)
{
    struct timespec d;
    mono_deadline(&d, ms);
    pthread_mutex_lock(&k->lock);
    while (proc_find(k, id) && !past(&d))
        pthread_cond_timedwait(&k->exited, &k->lock, &d);
    bool gone = !proc_find(k, id);
    pthread_mutex_unlock(&k->lock);
    return gone;
}

static void kill_watched(struct kvm_driver *k, const char *id)
{
    pthread_mutex_lock(&k->lock);
    struct vmm_proc *p = proc_find(k, id);
    if (p)
        pidfd_kill(p->pidfd, SIGKILL);
    pthread_mutex_unlock(&k->lock);
}

static void *monitor_main(void *arg)
{
    struct kvm_driver *k = arg;
    struct pollfd *pfds = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&k->lock);
        if (k->stopping) {
            pthread_mutex_unlock(&k->lock);
            break;
        }
        size_t n = 1;
        for (struct vmm_proc *p = k->procs; p; p = p->next)
            n += p->alive;
        if (n > cap) {
            struct pollfd *np = realloc(pfds, n * 2 * sizeof(*np));
            if (!np) {
                pthread_mutex_unlock(&k->lock);
                sleep(1);
                continue;
            }
            pfds = np;
            cap = n * 2;
        }
        n = 0;
        pfds[n++] = (struct pollfd){.fd = k->evfd, .events = POLLIN};
        for (struct vmm_proc *p = k->procs; p; p = p->next)
            if (p->alive)
                pfds[n++] = (struct pollfd){.fd = p->pidfd, .events = POLLIN};
        pthread_mutex_unlock(&k->lock);

        if (poll(pfds, n, -1) < 0)
            continue;
        if (pfds[0].revents) {
            uint64_t v;
            if (read(k->evfd, &v, sizeof(v)) < 0) {
                /* EAGAIN: woken already */
            }
        }
        struct {
            char id[KOVA_UUID_STRLEN + 1];
            struct kova_vmm_ref ref;
            int ws;
        } ex[64];
        size_t nex = 0;
        pthread_mutex_lock(&k->lock);
        for (size_t j = 1; j < n && nex < sizeof(ex) / sizeof(ex[0]); j++) {
            if (!pfds[j].revents)
                continue;
            struct vmm_proc *p = k->procs;
            while (p && !(p->alive && p->pidfd == pfds[j].fd))
                p = p->next;
            if (!p)
                continue;
            int ws = -1;
            if (waitpid(p->pid, &ws, WNOHANG) <= 0)
                ws = -1; /* adopted: not our child */
            close(p->pidfd);
            p->pidfd = -1;
            p->alive = false;
            p->wstatus = ws;
            snprintf(ex[nex].id, sizeof(ex[nex].id), "%s", p->id);
            ex[nex].ref = (struct kova_vmm_ref){p->pid, p->start};
            ex[nex++].ws = ws;
        }
        pthread_cond_broadcast(&k->exited);
        pthread_mutex_unlock(&k->lock);
        for (size_t j = 0; j < nex; j++) {
            char how[48] = "";
            int ws = ex[j].ws;
            if (ws >= 0 && WIFEXITED(ws))
                snprintf(how, sizeof(how), "status %d", WEXITSTATUS(ws));
            else if (ws >= 0 && WIFSIGNALED(ws))
                snprintf(how, sizeof(how), "signal %d", WTERMSIG(ws));
            if (k->base.on_exit)
                k->base.on_exit(k->base.exit_opaque, ex[j].id, &ex[j].ref, how);
        }
    }
    free(pfds);
    return NULL;
}

/* ------------------------------------------------------------------ log and console */

/* The last non-empty line of the instance's vmm.log. */
static void last_words(struct kova_driver *d, const char *id, char *out, size_t outlen)
{
    char dir[KOVA_LAYOUT_PATH_MAX], path[KOVA_LAYOUT_PATH_MAX + 16];
    out[0] = 0;
    if (instance_file_path(KD(d), id, KOVA_INSTANCE_DIR, dir) < 0)
        return;
    snprintf(path, sizeof(path), "%s/vmm.log", dir);
    kova_file_last_line(path, out, outlen);
}

static void console_path(struct kova_driver *d, const char *id, char *out, size_t len)
{
    if (kova_layout_instance_path(&KD(d)->layout, id, KOVA_INSTANCE_CONSOLE_LOG, out, len) < 0)
        out[0] = 0;
}

static void describe_exit(struct kvm_driver *k, const char *id, char *out, size_t len)
{
    char last[512], how[64];
    last_words(&k->base, id, last, sizeof(last));
    int ws = last_status(k, id);
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

/* ------------------------------------------------------------------ disks */

static int cache_image(struct kvm_driver *k, const char *image_id, char *err, size_t errlen)
{
    char src[4400];
    snprintf(src, sizeof(src), "%s/%s", k->images_dir, image_id);
    return kova_layout_cache_image(&k->layout, image_id, src, NULL, 0, err, errlen);
}

static int prepare(struct kova_driver *d, const struct kova_boot_spec *spec, int *fault_code,
                   char *err, size_t errlen)
{
    struct kvm_driver *k = KD(d);
    int r;
    if ((spec->kernel_id && (r = cache_image(k, spec->kernel_id, err, errlen)) < 0) ||
        (spec->ramdisk_id && (r = cache_image(k, spec->ramdisk_id, err, errlen)) < 0) ||
        (r = cache_image(k, spec->image_id, err, errlen)) < 0)
        return r;
    struct kova_instance_spec is = {
        .uuid = spec->uuid,
        .image_id = spec->image_id,
        .base_format = spec->image_format == KOVA_BOOT_DISK_QCOW2 ? KOVA_DISK_QCOW2 : KOVA_DISK_RAW,
        .root_bytes = (uint64_t)spec->root_gib << 30,
    };
    r = kova_layout_create_instance(&k->layout, &is, NULL, err, errlen);
    if (r == -EEXIST) {
        /* left by an earlier attempt of this same build or rebuild (agent restarted) */
        kova_layout_remove_instance(&k->layout, spec->uuid, NULL, 0);
        r = kova_layout_create_instance(&k->layout, &is, NULL, err, errlen);
    }
    if (r == KOVA_LAYOUT_EFLAVOR_DISK_SMALLER)
        *fault_code = 400;
    if (r < 0 || !spec->config_files)
        return r;
    char cd[KOVA_LAYOUT_PATH_MAX], why[256] = "";
    if ((r = kova_layout_instance_path(&k->layout, spec->uuid, KOVA_INSTANCE_CONFIG_DRIVE, cd,
                                       sizeof(cd))) < 0 ||
        (r = kova_md_write_config_drive(cd, spec->config_files, spec->nconfig_files, why,
                                        sizeof(why))) < 0) {
        snprintf(err, errlen, "cannot build the config drive: %s", why[0] ? why : strerror(-r));
        kova_layout_remove_instance(&k->layout, spec->uuid, NULL, 0);
    }
    return r;
}

/* ------------------------------------------------------------------ spawning */

/* The user kova-vmm runs its guests as (kova_kvm_driver_config.vmm_user). */
static int resolve_vmm_user(struct kvm_driver *k, const char *user)
{
    k->vmm_ids = false;
    if (geteuid() != 0)
        return 0; /* an unprivileged agent: its VMMs run as it does */
    if (!user || !user[0])
        user = "nobody";
    char *end;
    unsigned long u = strtoul(user, &end, 10), g = u;
    if (user[0] >= '0' && user[0] <= '9' && (*end == 0 || *end == ':')) {
        if (*end == ':' && !(end[1] >= '0' && end[1] <= '9'))
            return -EINVAL;
        if (*end == ':')
            g = strtoul(end + 1, &end, 10);
        if (*end || u == 0 || u > 0xfffffffeUL || g > 0xfffffffeUL) {
            kova_log(0, "vmm_user %s: not a name or a non-root UID[:GID]", user);
            return -EINVAL;
        }
        k->vmm_uid = (uid_t)u;
        k->vmm_gid = (gid_t)g;
    } else {
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res) {
            kova_log(0, "vmm_user %s: no such user", user);
            return -ENOENT;
        }
        if (pw.pw_uid == 0) {
            kova_log(0, "vmm_user %s is root: the VMMs must run unprivileged", user);
            return -EINVAL;
        }
        k->vmm_uid = pw.pw_uid;
        k->vmm_gid = pw.pw_gid;
    }
    k->vmm_ids = true;
    kova_log(1, "kova-vmm runs its guests as uid %u gid %u", (unsigned)k->vmm_uid,
             (unsigned)k->vmm_gid);
    return 0;
}

/* [kova] vmm_uid_range "FIRST-LAST" (kova_kvm_driver_config.vmm_uid_range). */
static int parse_uid_range(struct kvm_driver *k, const char *range)
{
    k->uid_first = k->uid_last = 0;
    if (!range || !range[0])
        return 0;
    char *end;
    errno = 0;
    unsigned long a = strtoul(range, &end, 10), b = 0;
    bool ok = range[0] >= '0' && range[0] <= '9' && *end == '-' && end[1] >= '0' && end[1] <= '9';
    if (ok) {
        b = strtoul(end + 1, &end, 10);
        ok = !*end && !errno && a >= 1 && a <= b && b < 0xfffffffeUL && b - a < 65536;
    }
    if (!ok) {
        kova_log(0, "vmm_uid_range %s: not FIRST-LAST (uids 1..4294967293, at most 65536)", range);
        return -EINVAL;
    }
    if (!k->vmm_ids) {
        kova_log(0, "vmm_uid_range is set but the agent is not root: its VMMs run as it does");
        return 0;
    }
    k->uid_first = (uid_t)a;
    k->uid_last = (uid_t)b;
    kova_log(1, "each kova-vmm runs as a uid of its own from %lu-%lu, gid %u", a, b,
             (unsigned)k->vmm_gid);
    return 0;
}

/* The uid the instance dir `dir` (in `inst_dir`) runs its VMM as, under vmm_uid_range: its
 * owner's when that is in the range, else the lowest one no other instance dir is owned by (the
 * dir is then given to it: the choice is recorded there, atomically). */
static int instance_uid(struct kvm_driver *k, const char *dir, uid_t *uid, char *err, size_t errlen)
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    struct stat st;
    int r = 0;
    if (stat(dir, &st) < 0) {
        r = -errno;
        snprintf(err, errlen, "the instance dir: %s", strerror(-r));
        return r;
    }
    if (st.st_uid >= k->uid_first && st.st_uid <= k->uid_last) {
        *uid = st.st_uid;
        return 0;
    }
    if ((r = kova_layout_instances_dir(&k->layout, inst_dir, sizeof(inst_dir))) < 0) {
        snprintf(err, errlen, "the instances dir: %s", strerror(-r));
        return r;
    }
    size_t n = (size_t)(k->uid_last - k->uid_first) + 1;
    unsigned char *used = calloc(n, 1);
    if (!used)
        return -ENOMEM;
    pthread_mutex_lock(&k->uid_lock);
    DIR *dp = opendir(inst_dir);
    if (!dp) {
        r = -errno;
        snprintf(err, errlen, "cannot list %s: %s", inst_dir, strerror(-r));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(dp))) {
        struct stat ds;
        if (de->d_name[0] != '.' && fstatat(dirfd(dp), de->d_name, &ds, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(ds.st_mode) && ds.st_uid >= k->uid_first && ds.st_uid <= k->uid_last)
            used[ds.st_uid - k->uid_first] = 1;
    }
    closedir(dp);
    size_t i = 0;
    while (i < n && used[i])
        i++;
    if (i == n) {
        r = -ENOSPC;
        snprintf(err, errlen, "every uid of vmm_uid_range (%u-%u) has an instance",
                 (unsigned)k->uid_first, (unsigned)k->uid_last);
        goto out;
    }
    *uid = k->uid_first + (uid_t)i;
    if (chown(dir, *uid, k->vmm_gid) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot give the instance dir to uid %u: %s", (unsigned)*uid,
                 strerror(-r));
    }
out:
    pthread_mutex_unlock(&k->uid_lock);
    free(used);
    return r;
}

/* Forks and execs kova-vmm for the instance (own session, stdin /dev/null, stdout+stderr to
 * <dir>/vmm.log, no other descriptor) and starts watching it. */
static int start_vmm(struct kvm_driver *k, const struct kova_boot_spec *s, struct kova_vmm_ref *ref,
                     char *err, size_t errlen)
{
    char kernel[KOVA_LAYOUT_PATH_MAX], initrd[KOVA_LAYOUT_PATH_MAX], disk[KOVA_LAYOUT_PATH_MAX];
    char clog[KOVA_LAYOUT_PATH_MAX], sock[KOVA_LAYOUT_PATH_MAX], dir[KOVA_LAYOUT_PATH_MAX];
    char logp[KOVA_LAYOUT_PATH_MAX + 16], diskarg[KOVA_LAYOUT_PATH_MAX + 32], cpus[24], mem[24];
    char cd[KOVA_LAYOUT_PATH_MAX], cdarg[KOVA_LAYOUT_PATH_MAX + 48];
    char user[32];
    int r;
    if ((s->kernel_id &&
         (r = kova_layout_base_path(&k->layout, s->kernel_id, kernel, sizeof(kernel))) < 0) ||
        (s->ramdisk_id &&
         (r = kova_layout_base_path(&k->layout, s->ramdisk_id, initrd, sizeof(initrd))) < 0) ||
        (r = instance_file_path(k, s->uuid, KOVA_INSTANCE_DIR, dir)) < 0 ||
        (r = instance_file_path(k, s->uuid, KOVA_INSTANCE_DISK, disk)) < 0 ||
        (r = instance_file_path(k, s->uuid, KOVA_INSTANCE_CONSOLE_LOG, clog)) < 0 ||
        (r = instance_file_path(k, s->uuid, KOVA_INSTANCE_VMM_SOCK, sock)) < 0) {
        snprintf(err, errlen, "cannot build the instance's paths: %s", strerror(-r));
        return r;
    }
    struct stat sb;
    if (stat(disk, &sb) < 0) {
        r = -errno;
        snprintf(err, errlen, "the instance's disk is missing: %s", strerror(-r));
        return r;
    }
    /* the sandboxed VMM's own dir: its console log rotates there, its socket goes away */
    uid_t uid = k->vmm_uid;
    if (k->vmm_ids && k->uid_first && (r = instance_uid(k, dir, &uid, err, errlen)) < 0)
        return r;
    /* 0700: another instance's VMM (a uid of its own, the same group) sees nothing of it */
    if (k->vmm_ids && (chown(dir, uid, k->vmm_gid) < 0 || chmod(dir, 0700) < 0)) {
        r = -errno;
        snprintf(err, errlen, "cannot give the instance dir to the VMM's user: %s", strerror(-r));
        return r;
    }
    snprintf(user, sizeof(user), "%u:%u", (unsigned)uid, (unsigned)k->vmm_gid);
    snprintf(logp, sizeof(logp), "%s/vmm.log", dir);
    snprintf(diskarg, sizeof(diskarg), "path=%s,format=qcow2", disk);
    snprintf(cpus, sizeof(cpus), "%u", s->vcpus);
    snprintf(mem, sizeof(mem), "%llu", s->ram_mib);
    const char *argv[28 + 2 * KOVA_DB_PORTS_MAX];
    char netarg[KOVA_DB_PORTS_MAX][64];
    int tapfd[KOVA_DB_PORTS_MAX];
    unsigned ntaps = 0;
    int a = 0;
    argv[a++] = k->vmm_path;
    if (s->kernel_id) { /* direct boot; without it kova-vmm boots the disk through firmware */
        argv[a++] = "--kernel";
        argv[a++] = kernel;
        if (s->ramdisk_id) {
            argv[a++] = "--initrd";
            argv[a++] = initrd;
        }
        argv[a++] = "--cmdline";
        argv[a++] = s->cmdline;
    }
    argv[a++] = "--uuid"; /* SMBIOS: the guest sees its instance's UUID, as under Nova */
    argv[a++] = s->uuid;
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
    if (s->config_drive) { /* vdb, as Nova's libvirt driver attaches disk.config */
        if ((r = kova_layout_instance_path(&k->layout, s->uuid, KOVA_INSTANCE_CONFIG_DRIVE, cd,
                                           sizeof(cd))) < 0)
            return r;
        if (access(cd, R_OK) < 0) {
            r = -errno;
            snprintf(err, errlen, "the server's config drive %s: %s", cd, strerror(-r));
            return r;
        }
        snprintf(cdarg, sizeof(cdarg), "path=%s,format=raw,readonly=on", cd);
        argv[a++] = "--disk";
        argv[a++] = cdarg;
    }
    if (k->vmm_ids) {
        argv[a++] = "--sandbox-user";
        argv[a++] = user;
    }
    if (s->nnics > KOVA_DB_PORTS_MAX) {
        snprintf(err, errlen, "%u NICs: kova-vmm takes %d", s->nnics, KOVA_DB_PORTS_MAX);
        return -E2BIG;
    }
    /* The NICs: non-persistent taps on their bridges, inherited as fds 3, 4 ...: they go away
     * with the VMM, whichever way it ends (no orphan tap). */
    int logfd = -1, nullfd = -1;
    for (; ntaps < s->nnics; ntaps++) {
        const struct kova_boot_nic *nic = &s->nics[ntaps];
        char why[256] = "";
        r = kova_net_tap_open(nic->tap, nic->bridge, nic->mtu, why, sizeof(why));
        if (r < 0) {
            snprintf(err, errlen, "cannot create tap %s on bridge %s: %s", nic->tap, nic->bridge,
                     why[0] ? why : strerror(-r));
            goto fail_fds;
        }
        tapfd[ntaps] = r;
        snprintf(netarg[ntaps], sizeof(netarg[ntaps]), "fd=%u,mac=%s", 3 + ntaps, nic->mac);
        argv[a++] = "--net";
        argv[a++] = netarg[ntaps];
    }
    argv[a] = NULL;

    unlink(sock); /* a stale socket of a VMM that died */
    logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
        /* the taps to 3, 4 ...: first above that range, so that no dup2 hits one not yet
         * moved */
        for (unsigned i = 0; i < ntaps; i++)
            if ((tapfd[i] = fcntl(tapfd[i], F_DUPFD, 3 + ntaps)) < 0)
                _exit(127);
        for (unsigned i = 0; i < ntaps; i++)
            if (dup2(tapfd[i], (int)(3 + i)) < 0)
                _exit(127);
        syscall(SYS_close_range, 3U + ntaps, ~0U, 0U);
        execv(argv[0], (char *const *)argv);
        static const char msg[] = "kova-agent: cannot execute kova-vmm\n";
        if (write(2, msg, sizeof(msg) - 1) < 0) {
            /* nothing left to report to */
        }
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    for (unsigned i = 0; i < ntaps; i++)
        close(tapfd[i]); /* the VMM holds them now */
    int pfd = pidfd_open(pid);
    if (pfd < 0) {
        r = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "pidfd_open: %s", strerror(-r));
        return r;
    }
    fcntl(pfd, F_SETFD, FD_CLOEXEC);
    *ref = (struct kova_vmm_ref){pid, proc_start_time(pid)};
    if ((r = watch(k, s->uuid, pid, pfd, ref->start)) < 0) {
        pidfd_kill(pfd, SIGKILL);
        waitpid(pid, NULL, 0);
        close(pfd);
        snprintf(err, errlen, "out of memory");
        return r;
    }
    kova_log(1, "server %s: kova-vmm started, pid %d", s->uuid, (int)pid);
    return 0;
fail_fds:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    for (unsigned i = 0; i < ntaps; i++)
        close(tapfd[i]);
    return r;
}

/* Waits for the VMM's control socket to answer status; -ECHILD when the VMM exited first (err
 * says how), -ETIMEDOUT. */
static int wait_ready(struct kvm_driver *k, const char *id, char *err, size_t errlen)
{
    char sock[KOVA_LAYOUT_PATH_MAX];
    int r = instance_file_path(k, id, KOVA_INSTANCE_VMM_SOCK, sock);
    if (r < 0)
        return r;
    struct timespec d;
    mono_deadline(&d, (long)k->cfg.boot_timeout * 1000);
    for (;;) {
        if (!running(k, id)) {
            describe_exit(k, id, err, errlen);
            return -ECHILD;
        }
        if (kova_vmm_control_call(sock, KOVA_VMM_CMD_STATUS, 2000, NULL, 0, NULL, 0) == 0)
            return 0;
        if (past(&d)) {
            snprintf(err, errlen, "kova-vmm did not answer on its control socket within %u s",
                     k->cfg.boot_timeout);
            return -ETIMEDOUT;
        }
        wait_exit(k, id, 10);
    }
}

static int spawn(struct kova_driver *d, const struct kova_boot_spec *spec,
                 void (*note_ref)(void *opaque, const struct kova_vmm_ref *ref), void *opaque,
                 char *err, size_t errlen)
{
    struct kvm_driver *k = KD(d);
    struct kova_vmm_ref ref;
    int r = start_vmm(k, spec, &ref, err, errlen);
    if (r < 0)
        return r;
    if (note_ref)
        note_ref(opaque, &ref);
    r = wait_ready(k, spec->uuid, err, errlen);
    if (r < 0) {
        kill_watched(k, spec->uuid);
        wait_exit(k, spec->uuid, 30000);
    }
    return r;
}

/* ------------------------------------------------------------------ stray VMMs */

/* kova-vmm processes whose control socket lies in this state dir's instances dir: calls fn for
 * each with its pid and instance id. */
static void scan_vmms(struct kvm_driver *k,
                      void (*fn)(struct kvm_driver *, pid_t, const char *, void *), void *arg)
{
    char inst_dir[KOVA_LAYOUT_PATH_MAX];
    if (kova_layout_instances_dir(&k->layout, inst_dir, sizeof(inst_dir)) < 0)
        return;
    size_t dl = strlen(inst_dir);
    DIR *dp = opendir("/proc");
    if (!dp)
        return;
    struct dirent *de;
    char path[64], buf[8192];
    while ((de = readdir(dp))) {
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
                if (kova_is_uuid_lower(id))
                    fn(k, (pid_t)pid, id, arg);
            }
            break;
        }
    }
    closedir(dp);
}

static bool watched_pid(struct kvm_driver *k, const char *id, pid_t pid)
{
    pthread_mutex_lock(&k->lock);
    struct vmm_proc *p = proc_find(k, id);
    bool w = p && p->pid == pid;
    pthread_mutex_unlock(&k->lock);
    return w;
}

/* Kills an unwatched VMM of instance `arg` (NULL: of any instance). */
static void kill_unwatched(struct kvm_driver *k, pid_t pid, const char *id, void *arg)
{
    if ((arg && strcmp(arg, id)) || watched_pid(k, id, pid))
        return;
    int fd = pidfd_open(pid);
    if (fd < 0)
        return;
    kova_log(1, "killing kova-vmm %d of instance %s: nothing watches it", (int)pid, id);
    pidfd_kill(fd, SIGKILL);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    poll(&pf, 1, 10000);
    waitpid(pid, NULL, WNOHANG);
    close(fd);
}

/* ------------------------------------------------------------------ power */

static int power_off(struct kova_driver *d, const char *id, enum kova_power_off_mode mode)
{
    struct kvm_driver *k = KD(d);
    if (!running(k, id)) {
        bool stray = false;
        pthread_mutex_lock(&k->lock);
        for (size_t i = 0; i < k->nstrays && !stray; i++) {
            if (!strcmp(k->strays[i], id)) {
                memmove(k->strays[i], k->strays[k->nstrays - 1], sizeof(k->strays[i]));
                k->nstrays--;
                stray = true;
            }
        }
        pthread_mutex_unlock(&k->lock);
        if (stray && mode == KOVA_POWER_OFF_KILL)
            scan_vmms(k, kill_unwatched, (void *)id);
        return 0;
    }
    char sock[KOVA_LAYOUT_PATH_MAX];
    if (instance_file_path(k, id, KOVA_INSTANCE_VMM_SOCK, sock) < 0)
        mode = KOVA_POWER_OFF_KILL;
    if (mode == KOVA_POWER_OFF_CLEAN && k->cfg.shutdown_timeout > 0) {
        char state[32] = "";
        if (kova_vmm_control_call(sock, KOVA_VMM_CMD_STATUS, 2000, state, sizeof(state), NULL, 0) ==
                0 &&
            !strcmp(state, KOVA_VMM_STATE_PAUSED))
            kova_vmm_control_call(sock, KOVA_VMM_CMD_RESUME, 2000, NULL, 0, NULL, 0);
        if (kova_vmm_control_call(sock, KOVA_VMM_CMD_POWERDOWN, 2000, NULL, 0, NULL, 0) == 0 &&
            wait_exit(k, id, (long)k->cfg.shutdown_timeout * 1000))
            return 0;
        kova_log(1, "server %s: no clean shutdown within %u s: destroying it", id,
                 k->cfg.shutdown_timeout);
    } else if (mode == KOVA_POWER_OFF_QUIT) {
        if (kova_vmm_control_call(sock, KOVA_VMM_CMD_QUIT, 2000, NULL, 0, NULL, 0) == 0 &&
            wait_exit(k, id, 5000))
            return 0;
    }
    kill_watched(k, id);
    return wait_exit(k, id, 30000) ? 0 : -ETIMEDOUT;
}

static int control(struct kvm_driver *k, const char *id, const char *cmd, char *err, size_t errlen)
{
    char sock[KOVA_LAYOUT_PATH_MAX], why[256] = "";
    int r = -ESRCH;
    if (running(k, id) && (r = instance_file_path(k, id, KOVA_INSTANCE_VMM_SOCK, sock)) == 0)
        r = kova_vmm_control_call(sock, cmd, 5000, NULL, 0, why, sizeof(why));
    if (r == 0)
        return 0;
    /* A VMM that dropped the connection may be on its way out: give its exit a moment. */
    if (r != -EPROTO && running(k, id))
        wait_exit(k, id, 1000);
    if (!running(k, id)) {
        snprintf(err, errlen, "kova-vmm is not running");
        return -ESRCH;
    }
    if (r == -EPROTO)
        snprintf(err, errlen, "kova-vmm refused it%s%s", why[0] ? ": " : "", why);
    else
        snprintf(err, errlen, "%s", strerror(-r));
    return r;
}

static int pause_vm(struct kova_driver *d, const char *id, char *err, size_t errlen)
{
    return control(KD(d), id, KOVA_VMM_CMD_PAUSE, err, errlen);
}

static int unpause_vm(struct kova_driver *d, const char *id, char *err, size_t errlen)
{
    return control(KD(d), id, KOVA_VMM_CMD_RESUME, err, errlen);
}

static int info(struct kova_driver *d, const char *id, struct kova_instance_info *out)
{
    struct kvm_driver *k = KD(d);
    *out = (struct kova_instance_info){0};
    out->running = running(k, id);
    char sock[KOVA_LAYOUT_PATH_MAX], state[32] = "";
    if (out->running && instance_file_path(k, id, KOVA_INSTANCE_VMM_SOCK, sock) == 0 &&
        kova_vmm_control_call(sock, KOVA_VMM_CMD_STATUS, 2000, state, sizeof(state), NULL, 0) == 0)
        out->paused = !strcmp(state, KOVA_VMM_STATE_PAUSED);
    return 0;
}

static int adopt(struct kova_driver *d, const char *id, const struct kova_vmm_ref *ref,
                 struct kova_instance_info *out)
{
    struct kvm_driver *k = KD(d);
    char sock[KOVA_LAYOUT_PATH_MAX], state[32] = "";
    *out = (struct kova_instance_info){0};
    if (ref->pid <= 0 || !ref->start || proc_start_time(ref->pid) != ref->start)
        return 0;
    if (instance_file_path(k, id, KOVA_INSTANCE_VMM_SOCK, sock) < 0 ||
        kova_vmm_control_call(sock, KOVA_VMM_CMD_STATUS, 3000, state, sizeof(state), NULL, 0) < 0)
        return 0; /* PID matches but it does not answer: not ours, or hung (killed as unowned) */
    int fd = pidfd_open(ref->pid);
    if (fd < 0)
        return 0;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (proc_start_time(ref->pid) != ref->start || /* exited and reused between the checks */
        watch(k, id, ref->pid, fd, ref->start) < 0) {
        close(fd);
        return 0;
    }
    out->running = true;
    out->paused = !strcmp(state, KOVA_VMM_STATE_PAUSED);
    return 1;
}

/* ------------------------------------------------------------------ list, destroy */

struct listing {
    struct kova_found *v;
    char (*ids)[KOVA_UUID_STRLEN + 1];
    size_t n, cap;
    bool oom;
};

static struct kova_found *listing_get(struct listing *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->ids[i], id))
            return &l->v[i];
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        void *nv = realloc(l->v, nc * sizeof(*l->v));
        if (nv)
            l->v = nv;
        void *ni = nv ? realloc(l->ids, nc * sizeof(*l->ids)) : NULL;
        if (!ni) {
            l->oom = true;
            return NULL;
        }
        l->ids = ni;
        l->cap = nc;
    }
    snprintf(l->ids[l->n], sizeof(l->ids[l->n]), "%s", id);
    l->v[l->n] = (struct kova_found){0};
    return &l->v[l->n++];
}

static void note_unwatched(struct kvm_driver *k, pid_t pid, const char *id, void *arg)
{
    struct kova_found *f;
    if (!watched_pid(k, id, pid) && (f = listing_get(arg, id)))
        f->unowned_vmm = true;
}

static int list(struct kova_driver *d, void (*fn)(void *opaque, const struct kova_found *f),
                void *opaque)
{
    struct kvm_driver *k = KD(d);
    struct listing l = {0};
    char(*ids)[KOVA_UUID_STRLEN + 1] = NULL;
    size_t n = 0;
    char err[256];
    int r = kova_layout_list_instances(&k->layout, &ids, &n, err, sizeof(err));
    if (r < 0) {
        kova_log(0, "cannot list instance dirs: %s", err);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        struct kova_found *f = listing_get(&l, ids[i]);
        if (f)
            f->files = true;
    }
    free(ids);
    scan_vmms(k, note_unwatched, &l);
    pthread_mutex_lock(&k->lock);
    free(k->strays);
    k->strays = malloc((l.n ? l.n : 1) * sizeof(*k->strays));
    k->nstrays = 0;
    for (size_t i = 0; k->strays && i < l.n; i++)
        if (l.v[i].unowned_vmm)
            memcpy(k->strays[k->nstrays++], l.ids[i], sizeof(k->strays[0]));
    pthread_mutex_unlock(&k->lock);
    for (size_t i = 0; i < l.n; i++) {
        l.v[i].uuid = l.ids[i];
        fn(opaque, &l.v[i]);
    }
    free(l.v);
    free(l.ids);
    return l.oom ? -ENOMEM : 0;
}

static int destroy(struct kova_driver *d, const char *id, char *err, size_t errlen)
{
    struct kvm_driver *k = KD(d);
    power_off(d, id, KOVA_POWER_OFF_KILL);
    pthread_mutex_lock(&k->lock);
    proc_forget(k, id);
    pthread_mutex_unlock(&k->lock);
    return kova_layout_remove_instance(&k->layout, id, err, errlen);
}

static void driver_free(struct kova_driver *d)
{
    struct kvm_driver *k = KD(d);
    if (!k)
        return;
    if (k->thread_up) {
        pthread_mutex_lock(&k->lock);
        k->stopping = true;
        pthread_mutex_unlock(&k->lock);
        monitor_wake(k);
        pthread_join(k->thread, NULL);
    }
    /* the VMMs keep running: the next agent adopts them */
    while (k->procs) {
        struct vmm_proc *p = k->procs;
        k->procs = p->next;
        if (p->pidfd >= 0)
            close(p->pidfd);
        free(p);
    }
    if (k->evfd >= 0)
        close(k->evfd);
    pthread_cond_destroy(&k->exited);
    pthread_mutex_destroy(&k->lock);
    pthread_mutex_destroy(&k->uid_lock);
    free(k->strays);
    free(k->state_dir);
    free(k->images_dir);
    free(k->vmm_path);
    free(k);
}

static const struct kova_driver_ops kvm_ops = {
    .name = "kvm",
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

int kova_kvm_driver_new(const struct kova_kvm_driver_config *cfg, kova_exit_fn on_exit,
                        void *opaque, struct kova_driver **out)
{
    char err[256], abs[PATH_MAX];
    int r;
    if (!realpath(cfg->state_dir, abs)) {
        r = -errno;
        kova_log(0, "state dir %s: %s", cfg->state_dir, strerror(-r));
        return r;
    }
    struct kvm_driver *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->base = (struct kova_driver){&kvm_ops, on_exit, opaque};
    k->cfg = *cfg;
    k->evfd = -1;
    pthread_mutex_init(&k->lock, NULL);
    pthread_mutex_init(&k->uid_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->exited, &ca);
    pthread_condattr_destroy(&ca);
    k->state_dir = strdup(abs);
    k->images_dir = strdup(cfg->images_dir);
    k->vmm_path = strdup(cfg->vmm_path);
    if (!k->state_dir || !k->images_dir || !k->vmm_path) {
        r = -ENOMEM;
        goto fail;
    }
    k->cfg.state_dir = k->state_dir;
    k->cfg.images_dir = k->images_dir;
    k->cfg.vmm_path = k->vmm_path;
    k->cfg.vmm_user = k->cfg.vmm_uid_range = NULL; /* not kept */
    if ((r = resolve_vmm_user(k, cfg->vmm_user)) < 0 ||
        (r = parse_uid_range(k, cfg->vmm_uid_range)) < 0)
        goto fail;
    if ((r = kova_layout_init(&k->layout, abs, err, sizeof(err))) < 0) {
        kova_log(0, "%s", err);
        goto fail;
    }
    char inst[KOVA_LAYOUT_PATH_MAX];
    if ((r = kova_layout_instances_dir(&k->layout, inst, sizeof(inst))) < 0)
        goto fail;
    if (mkdir(inst, 0750) < 0 && errno != EEXIST) {
        r = -errno;
        kova_log(0, "cannot create %s: %s", inst, strerror(-r));
        goto fail;
    }
    /* the VMMs' group may pass through to their own dirs, nothing more */
    if (k->vmm_ids && (chown(inst, (uid_t)-1, k->vmm_gid) < 0 || chmod(inst, 0750) < 0)) {
        r = -errno;
        kova_log(0, "cannot give %s to the VMMs' group: %s", inst, strerror(-r));
        goto fail;
    }
    if ((k->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        r = -errno;
        goto fail;
    }
    unsigned swept = 0;
    if (kova_layout_sweep_partial(&k->layout, &swept, err, sizeof(err)) < 0)
        kova_log(0, "sweeping half-built instance dirs: %s", err);
    else if (swept)
        kova_log(1, "removed %u half-built instance dir(s) of a previous run", swept);
    if ((r = pthread_create(&k->thread, NULL, monitor_main, k)) != 0) {
        r = -r;
        goto fail;
    }
    k->thread_up = true;
    *out = &k->base;
    return 0;
fail:
    driver_free(&k->base);
    return r;
}
