/* SPDX-License-Identifier: Apache-2.0 */
/* kova-vmm's process: arguments, input files, the control socket and the VM's life cycle. */
#include "kova/vmm.h"
#include "kova/vmm_control.h"
#include "boot.h"
#include "cli.h"
#include "firmware.h"
#include "kvm.h"
#include "sandbox.h"
#include "log.h"
#include "virtio_blk.h"
#include "virtio_net.h"
#include "vm.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* Maps a whole regular file read-only. The mapping is file-backed: once the guest has its copy,
 * release_file() drops the pages from this process (a reboot faults them back in), so kernel and
 * initrd do not count as VMM memory. 0 or -errno. */
static int map_file(const char *path, uint8_t **data, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        goto out;
    }
    if (st.st_size == 0 || st.st_size > (off_t)1 << 34) {
        r = st.st_size == 0 ? -ENODATA : -EFBIG;
        goto out;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        r = -errno;
        goto out;
    }
    *data = p;
    *size = (size_t)st.st_size;
out:
    close(fd);
    return r;
}

static void release_file(uint8_t *data, size_t size)
{
    if (data)
        madvise(data, size, MADV_DONTNEED);
}

static void unmap_file(uint8_t *data, size_t size)
{
    if (data)
        munmap(data, size);
}

struct vmm {
    const struct kova_vmm_config *cfg;
    const struct net_backends *nets;
    struct vm *vm;
    uint64_t process_t0;
    unsigned boots;
    uint64_t last_boot_ms; /* boot timer of the previous boot, or 0 */
};

static json_t *ok(void)
{
    return json_pack("{s:b}", "ok", 1);
}

static json_t *fail(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *boot_time(struct vm *vm)
{
    uint64_t ns = atomic_load(&vm->boot_timer_ns);
    return ns ? json_real((double)ns / 1e6) : json_null();
}

static json_t *handle(void *opaque, const char *cmd, json_t *req)
{
    struct vmm *m = opaque;
    struct vm *vm = m->vm;
    if (strcmp(cmd, KOVA_VMM_CMD_STATUS) == 0) {
        json_t *r = ok();
        json_object_set_new(
            r, "state",
            json_string(vm_paused(vm) ? KOVA_VMM_STATE_PAUSED : KOVA_VMM_STATE_RUNNING));
        json_object_set_new(r, "vcpus", json_integer(vm->ncpus));
        json_object_set_new(r, "memory_mib", json_integer((json_int_t)m->cfg->memory_mib));
        json_object_set_new(r, "uptime_s", json_real((double)(vm_now_ns() - vm->start_ns) / 1e9));
        json_object_set_new(r, "vmm_uptime_s",
                            json_real((double)(vm_now_ns() - m->process_t0) / 1e9));
        json_object_set_new(r, "boots", json_integer(m->boots));
        json_object_set_new(r, "boot_time_ms", boot_time(vm));
        json_object_set_new(r, "pid", json_integer(getpid()));
        json_object_set_new(r, "sandboxed", json_boolean(sandbox_active()));
        json_object_set_new(r, "protocol", json_integer(KOVA_VMM_PROTOCOL));
        json_object_set_new(r, "unhandled_pio",
                            json_integer((json_int_t)(atomic_load(&vm->pio.unknown_reads) +
                                                      atomic_load(&vm->pio.unknown_writes))));
        json_object_set_new(r, "unhandled_mmio",
                            json_integer((json_int_t)(atomic_load(&vm->mmio.unknown_reads) +
                                                      atomic_load(&vm->mmio.unknown_writes))));
        json_t *nics = json_array();
        for (unsigned i = 0; m->nets && i < m->nets->n; i++) {
            const struct net_backend *be = &m->nets->be[i];
            const struct net_stats *st2 = be->stats;
            json_array_append_new(
                nics,
                json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "tap", be->ifname,
                          "vhost", be->vhost, "rx_frames", (json_int_t)atomic_load(&st2->rx_frames),
                          "rx_bytes", (json_int_t)atomic_load(&st2->rx_bytes), "tx_frames",
                          (json_int_t)atomic_load(&st2->tx_frames), "tx_bytes",
                          (json_int_t)atomic_load(&st2->tx_bytes), "bad_chains",
                          (json_int_t)atomic_load(&st2->bad_chains), "rx_dropped",
                          (json_int_t)atomic_load(&st2->rx_dropped), "tx_errors",
                          (json_int_t)atomic_load(&st2->tx_errors), "broken_queues",
                          (json_int_t)atomic_load(&st2->broken)));
        }
        json_object_set_new(r, "nics", nics);
        return r;
    }
    if (strcmp(cmd, KOVA_VMM_CMD_BOOT_TIME) == 0) {
        json_t *r = ok();
        json_object_set_new(r, "boot_time_ms", boot_time(vm));
        json_object_set_new(r, "since", json_string(m->boots ? "reset" : "vmm-start"));
        return r;
    }
    if (strcmp(cmd, KOVA_VMM_CMD_PAUSE) == 0) {
        vm_pause(vm);
        log_info("paused");
        return ok();
    }
    if (strcmp(cmd, KOVA_VMM_CMD_RESUME) == 0 || strcmp(cmd, "cont") == 0) {
        vm_resume(vm);
        log_info("resumed");
        return ok();
    }
    if (strcmp(cmd, KOVA_VMM_CMD_POWERDOWN) == 0) {
        if (vm_paused(vm))
            return fail("the VM is paused");
        int r = vm_power_button(vm);
        log_info("power button pressed");
        return r < 0 ? fail("cannot raise the power button interrupt") : ok();
    }
    if (strcmp(cmd, KOVA_VMM_CMD_RESET) == 0) {
        vm_stop(vm, VM_RESET, NULL);
        return ok();
    }
    if (strcmp(cmd, KOVA_VMM_CMD_SANDBOX_TEST) == 0) {
        int r = sandbox_violate(); /* sandboxed: SIGSYS, no return */
        log_warn("sandbox-test: the forbidden call returned %d: not sandboxed", r);
        return fail("not sandboxed: the forbidden system call was let through");
    }
    if (strcmp(cmd, KOVA_VMM_CMD_QUIT) == 0) {
        vm_stop(vm, VM_QUIT, NULL);
        return ok();
    }
    return fail("unknown command");
}

/* The directory of path into dir ("." for a bare name). */
static void dir_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

/* The sandbox (sandbox.h), once everything is open and before any thread: 0, or the exit
 * status to end with. */
static int enter_sandbox(const struct kova_vmm_config *cfg)
{
    if (cfg->no_sandbox) {
        log_warn("--no-sandbox: the guest runs unconfined (debugging only)");
        return 0;
    }
    struct sandbox_config sc = {0};
    const char *user = cfg->sandbox_user;
    if (!user && geteuid() == 0)
        user = "nobody";
    if (user) {
        int r = sandbox_parse_user(user, &sc.uid, &sc.gid);
        if (r < 0) {
            log_err("--sandbox-user %s: %s", user,
                    r == -ENOENT ? "no such user" : "not a name or UID[:GID]");
            return KOVA_VMM_EXIT_USAGE;
        }
        if (sc.uid == 0 || sc.gid == 0) {
            log_err("--sandbox-user %s: the guest must not run as root (--no-sandbox debugs)",
                    user);
            return KOVA_VMM_EXIT_USAGE;
        }
        sc.set_ids = sc.uid != geteuid() || sc.gid != getegid();
    }
    char dirs[2][PATH_MAX];
    if (cfg->console_log) {
        dir_of(cfg->console_log, dirs[sc.nrw], sizeof(dirs[0]));
        sc.rw_dirs[sc.nrw] = dirs[sc.nrw];
        sc.nrw++;
    }
    if (cfg->control_socket) {
        dir_of(cfg->control_socket, dirs[sc.nrw], sizeof(dirs[0]));
        sc.rw_dirs[sc.nrw] = dirs[sc.nrw];
        sc.nrw++;
    }
    bool landlock = false;
    const char *why = NULL;
    int r = sandbox_process(&sc, &landlock, &why);
    if (r == 0)
        r = sandbox_thread(SANDBOX_CONTROL, &why);
    if (r < 0) {
        log_err("sandbox: %s: %s", why ? why : "failed", strerror(-r));
        return KOVA_VMM_EXIT_ERROR;
    }
    log_info("sandbox: uid %u gid %u, no_new_privs, seccomp per thread, Landlock %s",
             (unsigned)getuid(), (unsigned)getgid(),
             landlock ? "(files: the instance dir only)" : "not in this kernel");
    return 0;
}

static void kick_handler(int sig)
{
    (void)sig; /* only interrupts KVM_RUN */
}

int kova_vmm_run(const struct kova_vmm_config *cfg)
{
    struct vmm m = {.cfg = cfg, .process_t0 = vm_now_ns()};
    int rc = KOVA_VMM_EXIT_ERROR;
    uint8_t *kernel = NULL, *initrd = NULL, *firmware = NULL;
    size_t kernel_size = 0, initrd_size = 0, firmware_size = 0;
    int console_fd = -1, console_dir = -1, sig_fd = -1, kvm_fd = -1;
    const char *console_name = NULL;
    uint64_t stop_at = 0;
    struct blk_spec *specs = NULL; /* the --disk options, parsed */
    struct blk_disks disks = {0};
    struct net_spec *nspecs = NULL; /* the --net options, parsed */
    struct net_backends nets = {0};
    struct kova_ctl_server ctl;
    kova_ctl_init(&ctl);
    struct vm *vm = calloc(1, sizeof(*vm));
    int level = KOVA_LOG_INFO;
    if (cfg->log_level)
        kova_log_level_parse(cfg->log_level, &level);
    kova_log_setup("kova-vmm", level);
    if (!vm) {
        log_err("out of memory");
        return KOVA_VMM_EXIT_ERROR;
    }

    /* Signals: SIGUSR1 kicks vCPUs out of KVM_RUN; SIGINT/SIGTERM/SIGHUP mean quit. */
    sigset_t set;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN returns EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigdelset(&set, SIGUSR1);
    sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0) {
        log_err("signalfd: %s", strerror(errno));
        goto out;
    }

    /* Inputs, checked before KVM is touched: the kernel, or the firmware. */
    const char *why = NULL;
    int r;
    if (cfg->kernel) {
        r = map_file(cfg->kernel, &kernel, &kernel_size);
        if (r < 0) {
            log_err("cannot read kernel %s: %s", cfg->kernel, strerror(-r));
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
        struct bzimage k;
        if (bzimage_parse(kernel, kernel_size, &k, &why) < 0) {
            log_err("kernel %s: %s", cfg->kernel, why);
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    } else {
        r = map_file(cfg->firmware, &firmware, &firmware_size);
        if (r < 0) {
            log_err("cannot read firmware %s: %s", cfg->firmware, strerror(-r));
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
        if (!firmware_size_ok(firmware_size)) {
            log_err("firmware %s: size %zu is not a multiple of 64 KiB from 64 KiB to %u MiB",
                    cfg->firmware, firmware_size, FIRMWARE_MAX >> 20);
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    }
    if (cfg->initrd && (r = map_file(cfg->initrd, &initrd, &initrd_size)) < 0) {
        log_err("cannot read initrd %s: %s", cfg->initrd, strerror(-r));
        rc = KOVA_VMM_EXIT_USAGE;
        goto out;
    }
    struct sysinfo si;
    uint64_t mem = cfg->memory_mib << 20;
    if (sysinfo(&si) == 0) {
        uint64_t host = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
        if (mem > host) {
            log_err("--memory %llu MiB is more than this host has (%llu MiB RAM + swap)",
                    (unsigned long long)cfg->memory_mib, (unsigned long long)(host >> 20));
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    }
    if (cfg->console_log) {
        console_fd = open(cfg->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (console_fd < 0) {
            log_err("cannot open console log %s: %s", cfg->console_log, strerror(errno));
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
        /* its directory, kept: the sandboxed VMM rotates the log there without the path */
        char cdir[PATH_MAX];
        dir_of(cfg->console_log, cdir, sizeof(cdir));
        const char *slash = strrchr(cfg->console_log, '/');
        console_name = slash ? slash + 1 : cfg->console_log;
        console_dir = open(cdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (console_dir < 0)
            console_name = NULL; /* rotation by path */
    }
    if (cfg->control_socket && (r = kova_ctl_listen(&ctl, cfg->control_socket)) < 0) {
        log_err("cannot listen on %s: %s", cfg->control_socket, strerror(-r));
        rc = KOVA_VMM_EXIT_USAGE;
        goto out;
    }

    /* Disks: opened once, kept open across guest resets, flushed and closed at exit. */
    if (cfg->ndisks) {
        specs = calloc(cfg->ndisks, sizeof(*specs));
        if (!specs) {
            log_err("out of memory");
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    }
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        char err[512];
        if (blk_spec_parse(cfg->disks[i], &specs[i], err, sizeof(err)) < 0) {
            log_err("disk %u (%s): %s", i, specs[i].path[0] ? specs[i].path : cfg->disks[i], err);
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    }
    if (blk_disks_open(&disks, specs, cfg->ndisks) < 0) {
        rc = KOVA_VMM_EXIT_USAGE;
        goto out;
    }

    /* NICs: the taps opened (or inherited fds checked) before the sandbox, kept across resets. */
    if (cfg->nnets) {
        nspecs = calloc(cfg->nnets, sizeof(*nspecs));
        if (!nspecs) {
            log_err("out of memory");
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    }
    for (unsigned i = 0; i < cfg->nnets; i++) {
        char err[256];
        if (net_spec_parse(cfg->nets[i], &nspecs[i], err, sizeof(err)) < 0) {
            log_err("net %u: %s", i, err);
            rc = KOVA_VMM_EXIT_USAGE;
            goto out;
        }
    }
    if (net_backends_open(&nets, nspecs, cfg->nnets) < 0) {
        rc = KOVA_VMM_EXIT_USAGE;
        goto out;
    }
    m.nets = &nets;

    size_t run_size;
    if ((r = kvm_open(&kvm_fd, cfg->cpus, &run_size, &why)) < 0) {
        log_err("%s: %s", why, strerror(-r));
        rc = (r == -EINVAL) ? KOVA_VMM_EXIT_USAGE : KOVA_VMM_EXIT_ERROR;
        goto out;
    }
    if ((r = enter_sandbox(cfg)) != 0) {
        rc = r;
        goto out;
    }
    struct vm_params p = {
        .kvm_fd = kvm_fd,
        .run_size = run_size,
        .cpus = cfg->cpus,
        .mem_bytes = mem,
        .kernel = kernel,
        .kernel_size = kernel_size,
        .initrd = initrd,
        .initrd_size = initrd_size,
        .cmdline = cfg->cmdline,
        .firmware = firmware,
        .firmware_size = firmware_size,
        .uuid = cfg->uuid,
        .t0_ns = m.process_t0,
        .devices =
            {
                .console_fd = console_fd,
                .console_name = console_name,
                .console_dir_fd = console_dir,
                .stdout_fd = cfg->console_stdout ? STDOUT_FILENO : -1,
                .disks = disks.be,
                .ndisks = disks.n,
                .nets = nets.be,
                .nnets = nets.n,
            },
    };
    for (;;) {
        r = vm_create(vm, &p, &why);
        if (r < 0) {
            log_err("%s: %s", why ? why : "cannot create the VM", strerror(-r));
            rc = (r == -ENOMEM || r == -E2BIG || r == -ENOEXEC) ? KOVA_VMM_EXIT_USAGE
                                                                : KOVA_VMM_EXIT_ERROR;
            vm_destroy(vm);
            goto out;
        }
        m.vm = vm;
        release_file(kernel, kernel_size);
        release_file(initrd, initrd_size);
        release_file(firmware, firmware_size);
        if (m.boots == 0)
            log_info("started: %u vCPUs, %llu MiB, %s %s", cfg->cpus,
                     (unsigned long long)cfg->memory_mib, cfg->kernel ? "kernel" : "firmware",
                     cfg->kernel ? cfg->kernel : cfg->firmware);
        vm_start(vm);
        for (;;) {
            struct pollfd pfds[2 + 1 + KOVA_CTL_MAX_CLIENTS];
            pfds[0] = (struct pollfd){.fd = vm->done_fd, .events = POLLIN};
            pfds[1] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
            size_t n = 2 + kova_ctl_pollfds(&ctl, pfds + 2, 1 + KOVA_CTL_MAX_CLIENTS);
            if (poll(pfds, n, -1) < 0) {
                if (errno == EINTR)
                    continue;
                vm_stop(vm, VM_ERROR, "poll failed");
                break;
            }
            if (pfds[1].revents) {
                struct signalfd_siginfo si2;
                if (read(sig_fd, &si2, sizeof(si2)) == sizeof(si2)) {
                    log_info("signal %u: stopping", si2.ssi_signo);
                    vm_stop(vm, VM_QUIT, NULL);
                }
            }
            if (pfds[0].revents)
                break;
            kova_ctl_process(&ctl, pfds + 2, n - 2, handle, &m);
        }
        enum vm_state st = vm->state;
        uint64_t stop_ns = vm->stop_ns;
        char err[sizeof(vm->error)];
        memcpy(err, vm->error, sizeof(err));
        vm_destroy(vm);
        if (st == VM_RESET) {
            m.boots++;
            p.t0_ns = vm_now_ns();
            log_info("guest reset: restarting (boot %u)", m.boots + 1);
            continue;
        }
        switch (st) {
        case VM_POWEROFF:
            log_info("guest powered off");
            rc = KOVA_VMM_EXIT_OK;
            break;
        case VM_QUIT:
            log_info("stopped on request");
            rc = KOVA_VMM_EXIT_OK;
            break;
        case VM_SHUTDOWN:
            log_err("guest triple fault: stopped");
            rc = KOVA_VMM_EXIT_TRIPLE_FAULT;
            break;
        default:
            log_err("stopped on error: %s", err[0] ? err : "unknown");
            rc = KOVA_VMM_EXIT_ERROR;
            break;
        }
        stop_at = stop_ns;
        break;
    }
out:
    kova_ctl_close(&ctl);
    if (kvm_fd >= 0)
        close(kvm_fd);
    if (console_fd >= 0)
        close(console_fd);
    if (console_dir >= 0)
        close(console_dir);
    if (sig_fd >= 0)
        close(sig_fd);
    unmap_file(kernel, kernel_size);
    unmap_file(initrd, initrd_size);
    unmap_file(firmware, firmware_size);
    free(vm);
    blk_disks_close(&disks);
    free(specs);
    net_backends_close(&nets);
    free(nspecs);
    if (stop_at)
        log_info("exiting with status %d, %.1f ms after the stop request", rc,
                 (double)(vm_now_ns() - stop_at) / 1e6);
    return rc;
}
