/* SPDX-License-Identifier: Apache-2.0 */
/* kova-vmm's sandbox (sandbox.h): ids, no_new_privs, Landlock, per-thread seccomp filters. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/landlock.h>
#include <linux/vhost.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int sandbox_parse_user(const char *spec, uid_t *uid, gid_t *gid)
{
    if (!spec || !spec[0])
        return -EINVAL;
    if (spec[0] >= '0' && spec[0] <= '9') {
        char *end;
        unsigned long u = strtoul(spec, &end, 10), g = u;
        if (*end == ':') {
            const char *gs = end + 1;
            if (!(*gs >= '0' && *gs <= '9'))
                return -EINVAL;
            g = strtoul(gs, &end, 10);
        }
        if (*end || u > 0xfffffffeUL || g > 0xfffffffeUL)
            return -EINVAL;
        *uid = (uid_t)u;
        *gid = (gid_t)g;
        return 0;
    }
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(spec, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return -ENOENT;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* ---- Landlock (raw system calls: glibc has no wrappers) ---- */

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3: newer than Debian 12's headers */
#endif

/* The file-system rights of each Landlock ABI this code knows (1..3); later ABIs add rights it
 * does not hand out, so they are simply not handled. */
static uint64_t landlock_rights(int abi)
{
    uint64_t r =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
        LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
        LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
        LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2)
        r |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        r |= LANDLOCK_ACCESS_FS_TRUNCATE;
    return r;
}

static int add_fd(int ruleset, int fd, uint64_t access)
{
    struct landlock_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
    return syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0 ? -errno
                                                                                            : 0;
}

/* The directories Landlock lets through, opened (O_PATH) while the process may still reach them:
 * after the change of user a path above them may be closed to it. */
struct ll_dirs {
    int fd[SANDBOX_MAX_DIRS + 1];
    unsigned n;
};

static void ll_close(struct ll_dirs *d)
{
    for (unsigned i = 0; i < d->n; i++)
        close(d->fd[i]);
    d->n = 0;
}

static int ll_open(struct ll_dirs *d, const struct sandbox_config *c, const char **why)
{
    d->n = 0;
    for (unsigned i = 0; i < c->nrw && i < SANDBOX_MAX_DIRS; i++) {
        int fd = open(c->rw_dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            *why = "cannot open the instance dir";
            ll_close(d);
            return -errno;
        }
        d->fd[d->n++] = fd;
    }
    return 0;
}

static int landlock_enter(const struct ll_dirs *d, bool *on, const char **why)
{
    *on = false;
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1)
        return 0; /* not in this kernel, or off: ids and seccomp still hold */
    uint64_t rights = landlock_rights((int)abi);
    struct landlock_ruleset_attr attr = {.handled_access_fs = rights};
    int rs = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (rs < 0) {
        *why = "landlock_create_ruleset failed";
        return -errno;
    }
    int r = 0;
    for (unsigned i = 0; i < d->n && r == 0; i++) {
        r = add_fd(rs, d->fd[i], rights & ~(uint64_t)LANDLOCK_ACCESS_FS_EXECUTE);
        if (r < 0)
            *why = "cannot add a Landlock rule for the instance dir";
    }
#if defined(__SANITIZE_ADDRESS__)
    /* the sanitizer build: LeakSanitizer reads /proc/self at exit */
    int proc = r == 0 ? open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (r == 0 &&
        (proc < 0 ||
         (r = add_fd(rs, proc, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)) < 0)) {
        r = r < 0 ? r : -errno;
        *why = "cannot add a Landlock rule for /proc";
    }
    if (proc >= 0)
        close(proc);
#endif
    if (r == 0 && syscall(__NR_landlock_restrict_self, rs, 0) < 0) {
        r = -errno;
        *why = "landlock_restrict_self failed";
    }
    close(rs);
    *on = r == 0;
    return r;
}

/* Set once by sandbox_process, on the main thread before any other thread exists; read by the
 * threads it creates afterwards (thread creation orders the write before their reads). */
static bool active;

bool sandbox_active(void)
{
    return active;
}

int sandbox_process(const struct sandbox_config *c, bool *landlock, const char **why)
{
    *landlock = false;
    struct ll_dirs dirs;
    int r = ll_open(&dirs, c, why);
    if (r < 0)
        return r;
    if (c->set_ids) {
        if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
            setresuid(c->uid, c->uid, c->uid) < 0) {
            r = -errno;
            *why = "cannot change to the sandbox user";
            goto out;
        }
        if (c->uid != 0 && setuid(0) == 0) {
            r = -EPERM;
            *why = "the sandbox user could become root again";
            goto out;
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        r = -errno;
        *why = "cannot set no_new_privs";
        goto out;
    }
    if ((r = landlock_enter(&dirs, landlock, why)) == 0)
        active = true;
out:
    ll_close(&dirs);
    return r;
}

/* ---- seccomp ---- */

/* Calls every thread kind makes: memory, locks, signals, time, its own exit. */
static const char *const base_calls[] = {
    "read",
    "write",
    "readv",
    "writev",
    "close",
    "futex",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "mremap",
    "brk",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "exit",
    "exit_group",
    "getpid",
    "gettid",
    "tgkill",
    "rseq",
    "set_robust_list",
    "getrandom",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "sched_yield",
    "restart_syscall",
    "sched_getaffinity",
    "newfstatat",
    "fstat",
    "lseek",
    "poll",
    "ppoll",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    NULL,
};

/* vCPU threads: besides KVM_RUN, the devices they emulate — virtio queue setup (eventfds,
 * irqfd / ioeventfd routes), the serial port's console log (written, and rotated: a new file
 * in the instance dir, which Landlock confines), fw_cfg and PCI from memory. */
static const char *const vcpu_calls[] = {
    "eventfd2", "ioctl", "openat", "rename",    "renameat", "renameat2", "unlink",
    "unlinkat", "fcntl", "fsync",  "fdatasync", "readlink", NULL,
};

/* I/O workers: the disk image's reads, writes, flushes, discards and growth, and the queue's
 * interrupt (an MSI route set up on first use: eventfd + KVM_IRQFD / KVM_SET_GSI_ROUTING). */
static const char *const io_calls[] = {
    "pread64",   "pwrite64", "preadv",    "pwritev",   "preadv2",  "pwritev2",
    "fdatasync", "fsync",    "fallocate", "ftruncate", "eventfd2", NULL,
};

/* virtio-net workers: the tap's frames (read, writev: base calls), poll, and the queue's
 * interrupt route, set up on first use like an I/O worker's. */
static const char *const net_calls[] = {
    "eventfd2",
    NULL,
};

/* The main thread: the control socket's clients, signals, VM (re)creation after a guest reset,
 * thread creation (clone with CLONE_THREAD only), and what its threads need (they inherit this
 * list). */
static const char *const control_calls[] = {
    "accept4",  "recvfrom",  "sendto",    "recvmsg",  "sendmsg",      "shutdown",  "eventfd2",
    "ioctl",    "openat",    "rename",    "renameat", "renameat2",    "unlink",    "unlinkat",
    "fcntl",    "fsync",     "fdatasync", "readlink", "rt_sigaction", "seccomp",   "pread64",
    "pwrite64", "preadv",    "pwritev",   "preadv2",  "pwritev2",     "fallocate", "ftruncate",
    "sysinfo",  "prlimit64", "getrusage", NULL,
};

#if defined(__SANITIZE_ADDRESS__)
/* The sanitizer build only: LeakSanitizer stops the world at exit (a tracer made with clone,
 * ptrace, /proc/self/task) and reports through the symbolizer. */
static const char *const sanitizer_calls[] = {
    "ptrace",
    "wait4",
    "waitid",
    "process_vm_readv",
    "getdents64",
    "prctl",
    "getppid",
    "kill",
    "clone",
    "openat",
    "readlink",
    "sched_getaffinity",
    "getrlimit",
    "prlimit64",
    "pipe2",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "vfork",
    "uname",
    "open",
    "stat",
    "lstat",
    "access",
    "getdents",
    "rt_sigaction",
    "rt_sigtimedwait",
    "sched_setaffinity",
    "setpgid",
    "getpgid",
    NULL,
};
#endif

/* The KVM ioctls a vCPU thread issues (on its vCPU fd, or the VM fd for interrupt routes). */
static const unsigned long vcpu_ioctls[] = {
    KVM_RUN,
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_GET_MP_STATE,
    KVM_GET_VCPU_EVENTS,
    KVM_GET_LAPIC,
    KVM_SET_LAPIC,
    KVM_IRQFD,
    KVM_IOEVENTFD,
    KVM_IRQ_LINE,
    KVM_SIGNAL_MSI,
    KVM_SET_GSI_ROUTING,
    KVM_SET_USER_MEMORY_REGION,
};

/* An I/O worker's: the interrupts it raises when it completes a request. */
static const unsigned long io_ioctls[] = {
    KVM_IRQFD,
    KVM_SET_GSI_ROUTING,
    KVM_SIGNAL_MSI,
    KVM_IRQ_LINE,
};

/* A virtio-net worker's: the interrupts, the tap's offloads (set when the driver is ready), and
 * with vhost-net the kernel's set-up at DRIVER_OK and its stop at a reset (vhost_net.h; the
 * device was opened, owned and asked for its features before the sandbox). */
static const unsigned long net_ioctls[] = {
    KVM_IRQFD,
    KVM_SET_GSI_ROUTING,
    KVM_SIGNAL_MSI,
    KVM_IRQ_LINE,
    TUNSETOFFLOAD,
    VHOST_SET_FEATURES,
    VHOST_SET_MEM_TABLE,
    VHOST_SET_VRING_NUM,
    VHOST_SET_VRING_BASE,
    VHOST_GET_VRING_BASE,
    VHOST_SET_VRING_ADDR,
    VHOST_SET_VRING_KICK,
    VHOST_SET_VRING_CALL,
    VHOST_NET_SET_BACKEND,
};

/* The main thread's: those and the VM's creation. */
static const unsigned long control_ioctls[] = {
    KVM_GET_API_VERSION,       KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
    KVM_GET_SUPPORTED_CPUID,   KVM_CREATE_VM,       KVM_SET_TSS_ADDR,
    KVM_SET_IDENTITY_MAP_ADDR, KVM_CREATE_IRQCHIP,  KVM_CREATE_PIT2,
    KVM_CREATE_VCPU,           KVM_SET_CPUID2,      KVM_SET_FPU,
};

static int allow_names(scmp_filter_ctx ctx, const char *const *names, const char *skip)
{
    for (; *names; names++) {
        if (skip && !strcmp(*names, skip))
            continue;
        int nr = seccomp_syscall_resolve_name(*names);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a call on this architecture (e.g. rename on newer ones) */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* the request is an unsigned int in the kernel: compare the low 32 bits */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, v[i] & 0xffffffffUL));
        if (r < 0)
            return r;
    }
    return 0;
}

int sandbox_thread(enum sandbox_kind kind, const char **why)
{
    if (!active)
        return 0;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx) {
        *why = "seccomp_init failed";
        return -ENOMEM;
    }
    /* no_new_privs is already set (sandbox_process): libseccomp need not call prctl */
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (r == 0)
        r = allow_names(ctx, base_calls, NULL);
    /* glibc's pthread_create tries clone3 first, whose flags a filter cannot see: ENOSYS makes
     * it use clone, whose flags it can */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    switch (kind) {
    case SANDBOX_CONTROL:
        if (r == 0)
            r = allow_names(ctx, control_calls, "ioctl");
        if (r == 0) /* threads only: never a new process */
            r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
        if (r == 0)
            r = allow_ioctls(ctx, control_ioctls,
                             sizeof(control_ioctls) / sizeof(control_ioctls[0]));
        if (r == 0)
            r = allow_ioctls(ctx, vcpu_ioctls, sizeof(vcpu_ioctls) / sizeof(vcpu_ioctls[0]));
        if (r == 0) /* the filters stack: the net workers' must pass this one too */
            r = allow_ioctls(ctx, net_ioctls, sizeof(net_ioctls) / sizeof(net_ioctls[0]));
        break;
    case SANDBOX_VCPU:
        if (r == 0)
            r = allow_names(ctx, vcpu_calls, "ioctl");
        if (r == 0)
            r = allow_ioctls(ctx, vcpu_ioctls, sizeof(vcpu_ioctls) / sizeof(vcpu_ioctls[0]));
        break;
    case SANDBOX_IO:
        if (r == 0)
            r = allow_names(ctx, io_calls, NULL);
        if (r == 0)
            r = allow_ioctls(ctx, io_ioctls, sizeof(io_ioctls) / sizeof(io_ioctls[0]));
        break;
    case SANDBOX_NET:
        if (r == 0)
            r = allow_names(ctx, net_calls, NULL);
        if (r == 0)
            r = allow_ioctls(ctx, net_ioctls, sizeof(net_ioctls) / sizeof(net_ioctls[0]));
        break;
    }
#if defined(__SANITIZE_ADDRESS__)
    if (r == 0)
        r = allow_names(ctx, sanitizer_calls, NULL);
#endif
    if (r == 0)
        r = seccomp_load(ctx);
    if (r < 0)
        *why = "cannot load the seccomp filter";
    seccomp_release(ctx);
    return r;
}

int sandbox_violate(void)
{
    /* an IP socket: no thread kind may make one, in any build */
    long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    close((int)fd);
    return -EPERM;
}
