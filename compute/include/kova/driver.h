/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova driver: what the compute manager asks of a hypervisor (Nova's nova/virt/driver.py).
 * An ops table; the KVM driver (kova-vmm processes in instances-layout/ dirs) and an in-process
 * fake driver for the manager's unit tests implement it.
 *
 * Contract:
 *  - Every op names an instance by its canonical UUID. Ops on one instance are never called
 *    concurrently (the manager serialises them); ops on different instances may be.
 *  - A running instance is identified across agent restarts by a struct kova_vmm_ref the
 *    manager stores (for the KVM driver: PID + process start time). spawn fills it in before it
 *    waits for the guest, through note_ref, so that a crash of the agent during the wait leaves
 *    a ref the next agent can adopt.
 *  - Every stop of an instance's VMM (guest power-off, VMM crash, kill -9, and also the stops
 *    the driver made itself) is reported once through the on_exit callback given at creation,
 *    from a driver thread, with the ref it ran under; the manager tells its own stops apart (a
 *    task holds the server, the ref no longer matches) and may call into the driver from it.
 *  - Errors are 0 / -errno. Ops that can fail for a reason a user should read write one line to
 *    err (err may be NULL); spawn sets *fault_code to 400 for a request error (flavor disk
 *    smaller than the image), leaving it otherwise.
 *  - After a failed spawn nothing runs; after destroy nothing of the instance is left.
 */
#ifndef KOVA_DRIVER_H
#define KOVA_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KOVA_DRIVER_ERR_MAX 1024

struct kova_md_file;

struct kova_vmm_ref {
    pid_t pid;                /* 0: none */
    unsigned long long start; /* the process start time (/proc/PID/stat field 22) */
};

enum kova_disk_kind { KOVA_BOOT_DISK_RAW, KOVA_BOOT_DISK_QCOW2 };

/* One NIC: a tap the driver creates on the network's bridge (kova/network.h), the guest's MAC. */
struct kova_boot_nic {
    const char *tap;    /* "tap" + 11 characters of the port id */
    const char *mac;    /* "fa:16:3e:xx:xx:xx" */
    const char *bridge; /* the network's bridge */
    unsigned mtu;
};

/* What to boot: the server's flavor and image, resolved by the manager. */
struct kova_boot_spec {
    const char *uuid;
    const char *image_id; /* the root disk's image */
    enum kova_disk_kind image_format;
    const char *kernel_id;  /* direct kernel boot; NULL: the disk boots through firmware */
    const char *ramdisk_id; /* NULL: none */
    const char *cmdline;    /* with kernel_id */
    unsigned vcpus;
    unsigned long long ram_mib;
    unsigned long long root_gib;      /* the flavor's root disk */
    const struct kova_boot_nic *nics; /* spawn: eth0, eth1 ... in order */
    unsigned nnics;
    /* The config drive (kova/metadata.h): prepare writes these files into the instance's
     * disk.config (a vfat "config-2"); spawn attaches it read-only as the second disk when
     * config_drive is set. */
    const struct kova_md_file *config_files;
    size_t nconfig_files;
    bool config_drive;
};

enum kova_power_off_mode {
    KOVA_POWER_OFF_CLEAN, /* ACPI power button, then destroy after the shutdown timeout */
    KOVA_POWER_OFF_QUIT,  /* ask the VMM to quit now, then destroy */
    KOVA_POWER_OFF_KILL,  /* destroy at once */
};

struct kova_instance_info {
    bool running;
    bool paused;
};

/* What list() finds on the host for an instance. */
struct kova_found {
    const char *uuid;
    bool files;       /* the driver holds files for it (an instance dir) */
    bool unowned_vmm; /* a VMM runs for it that the driver does not watch (not adopted) */
};

struct kova_driver;

struct kova_driver_ops {
    const char *name;
    /* Prepares the instance's disks (image caches, its dir with the root overlay, the config
     * drive when spec has its files); an existing dir of an earlier attempt is replaced. */
    int (*prepare)(struct kova_driver *d, const struct kova_boot_spec *spec, int *fault_code,
                   char *err, size_t errlen);
    /* Starts the instance from its prepared disks and waits until its VMM answers. */
    int (*spawn)(struct kova_driver *d, const struct kova_boot_spec *spec,
                 void (*note_ref)(void *opaque, const struct kova_vmm_ref *ref), void *opaque,
                 char *err, size_t errlen);
    /* Stops it; 0 when nothing of it runs any more (also when nothing ran). */
    int (*power_off)(struct kova_driver *d, const char *uuid, enum kova_power_off_mode mode);
    int (*pause)(struct kova_driver *d, const char *uuid, char *err, size_t errlen);
    int (*unpause)(struct kova_driver *d, const char *uuid, char *err, size_t errlen);
    /* Whether it runs (as the driver sees it now). */
    int (*info)(struct kova_driver *d, const char *uuid, struct kova_instance_info *out);
    /* Takes over a VMM a previous agent started: 1 when ref names a live VMM of this instance
     * (then it is watched and *out filled), 0 when not. */
    int (*adopt)(struct kova_driver *d, const char *uuid, const struct kova_vmm_ref *ref,
                 struct kova_instance_info *out);
    /* Calls fn for each instance the driver finds on the host (dirs, VMMs). */
    int (*list)(struct kova_driver *d, void (*fn)(void *opaque, const struct kova_found *f),
                void *opaque);
    /* Power off (kill) and remove everything of the instance. -ENOENT when there was nothing. */
    int (*destroy)(struct kova_driver *d, const char *uuid, char *err, size_t errlen);
    /* The instance's console log path ("" when it has none). */
    void (*console_path)(struct kova_driver *d, const char *uuid, char *out, size_t len);
    /* The last line the VMM logged, for a fault message ("" when none). */
    void (*last_words)(struct kova_driver *d, const char *uuid, char *out, size_t len);
    void (*free)(struct kova_driver *d);
};

/* Called from a driver thread when an instance stopped by itself; `how` says how ("signal 9",
 * "status 0", "not our child"). */
typedef void (*kova_exit_fn)(void *opaque, const char *uuid, const struct kova_vmm_ref *ref,
                             const char *how);

struct kova_driver {
    const struct kova_driver_ops *ops;
    kova_exit_fn on_exit;
    void *exit_opaque;
};

/* ---- the KVM driver: kova-vmm processes ---- */
struct kova_kvm_driver_config {
    const char *state_dir;     /* instances live in <state_dir>/instances */
    const char *images_dir;    /* uploaded image files, <images_dir>/<image id> */
    const char *vmm_path;      /* the kova-vmm executable */
    unsigned shutdown_timeout; /* seconds a clean shutdown may take before destroy */
    unsigned boot_timeout;     /* seconds for a new VMM's control socket to answer */
    /* The user each kova-vmm runs its guest as (kova-vmm --sandbox-user): a name or UID[:GID].
     * NULL or "": "nobody" when the agent runs as root, else the agent's own user. Each
     * instance dir is given to that user (its console log rotates there). */
    const char *vmm_user;
    /* "FIRST-LAST" (uids, 1 ≤ FIRST ≤ LAST, at most 65536 of them): each instance's VMM runs as
     * a uid of its own from this range (as Firecracker's jailer --uid), in vmm_user's group, so
     * that no two VMMs share a user. The uid an instance has is its dir's owner (kept across
     * stops, restarts and agent restarts; free again when the dir is deleted); the lowest free
     * one is given at a VMM start. NULL or "": off (every VMM is vmm_user). Root agents only. */
    const char *vmm_uid_range;
};
/* Sweeps half-built instance dirs and starts the exit monitor. */
int kova_kvm_driver_new(const struct kova_kvm_driver_config *cfg, kova_exit_fn on_exit,
                        void *opaque, struct kova_driver **out);

/* ---- the fake driver: instances are rows of a table the caller owns ----
 * The table may live in shared memory, so that a test can kill the process running a manager
 * and start another one over the same "running" instances, as a real agent restart sees. */
#define KOVA_FAKE_MAX 16
enum kova_fake_step {
    KOVA_FAKE_PREPARE,
    KOVA_FAKE_SPAWN,
    KOVA_FAKE_POWER_OFF,
    KOVA_FAKE_PAUSE,
    KOVA_FAKE_UNPAUSE,
    KOVA_FAKE_DESTROY,
    KOVA_FAKE__STEPS
};
struct kova_fake_instance {
    char uuid[40];
    bool files, running, paused, watched;
    bool firmware; /* the last spawn had no kernel: the disk boots through firmware */
    struct kova_vmm_ref ref;
};
struct kova_fake_state {
    struct kova_fake_instance inst[KOVA_FAKE_MAX];
    pid_t next_pid;
    unsigned calls[KOVA_FAKE__STEPS];
    /* fault injection: step fails with fail_errno when fail_mask has its bit */
    uint32_t fail_mask;
    int fail_errno;
    /* the calling process is SIGKILLed at the crash_at'th call (counting from 1) of crash_step,
     * after the step's effect when crash_after (for a spawn: before its ref is noted), else
     * before it; 0: never */
    enum kova_fake_step crash_step;
    unsigned crash_at;
    bool crash_after;
};
int kova_fake_driver_new(struct kova_fake_state *st, kova_exit_fn on_exit, void *opaque,
                         struct kova_driver **out);
/* The instance stops by itself (guest power-off): reported through on_exit. */
int kova_fake_driver_exit(struct kova_driver *d, const char *uuid);

#endif
