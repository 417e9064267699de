/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova-vmm: one KVM virtual machine per process, booting a Linux bzImage (64-bit boot protocol)
 * with an initrd, or (no kernel) its first disk through a BIOS image (SeaBIOS: fw_cfg with the
 * RAM map, SMBIOS and its serial console; the guest's own boot loader does the rest). Devices: 8250
 * UART (console log), i8042, CMOS RTC, ACPI (HW-reduced: power button, poweroff, reset), PCI host
 * bridge with virtio-pci (modern, MSI-X) virtio-rng and virtio-blk disks (raw or qcow2, --disk).
 * Controlled through a unix socket speaking JSON lines (see README "kova-vmm").
 * Errors: 0 or -errno; kova_vmm_run returns the process exit status below.
 */
#ifndef KOVA_VMM_H
#define KOVA_VMM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of kova-vmm. */
enum kova_vmm_exit {
    KOVA_VMM_EXIT_OK = 0,           /* the guest powered off, or "quit" / SIGTERM */
    KOVA_VMM_EXIT_USAGE = 1,        /* bad arguments, unusable kernel/initrd/memory size */
    KOVA_VMM_EXIT_ERROR = 2,        /* KVM or internal failure */
    KOVA_VMM_EXIT_TRIPLE_FAULT = 3, /* the guest triple-faulted */
};

#define KOVA_VMM_MAX_DISKS 16                                    /* --disk options */
#define KOVA_VMM_MAX_NETS  8                                     /* --net options */
#define KOVA_VMM_FIRMWARE  "/usr/share/seabios/bios-microvm.bin" /* Debian's seabios */

struct kova_vmm_config {
    const char *kernel;         /* bzImage; NULL: boot the disks through firmware */
    const char *initrd;         /* optional, with kernel only */
    const char *cmdline;        /* with kernel only; default "console=ttyS0" */
    const char *firmware;       /* without kernel: the BIOS image, default KOVA_VMM_FIRMWARE */
    const char *uuid;           /* the machine's UUID (SMBIOS), optional */
    unsigned cpus;              /* 1..KOVA_VMM_MAX_CPUS, default 1 */
    uint64_t memory_mib;        /* default 256 */
    const char *console_log;    /* appended; optional */
    bool console_stdout;        /* also copy the console to stdout */
    const char *control_socket; /* optional */
    const char *log_level;      /* error|warn|info|debug, default info */
    const char *sandbox_user;   /* NULL: "nobody" when root, else no change (vmm/src/sandbox.h) */
    bool no_sandbox;            /* --no-sandbox: debugging only */
    /* --disk specs in order (vda, vdb, ...): "path=FILE,format=raw|qcow2[,readonly=on]
     * [,serial=S]", checked by kova_vmm_parse_args, opened by kova_vmm_run. */
    const char *disks[KOVA_VMM_MAX_DISKS];
    unsigned ndisks;
    /* --net specs in order (eth0, eth1, ...): "tap=NAME|fd=N,mac=MAC[,vhost=on|off|auto]",
     * checked by kova_vmm_parse_args, the taps opened by kova_vmm_run. */
    const char *nets[KOVA_VMM_MAX_NETS];
    unsigned nnets;
};

#define KOVA_VMM_MAX_CPUS       64
#define KOVA_VMM_MIN_MEMORY_MIB 32

/* Parses the command line. 0: run; 1: --help was printed (exit 0); -EINVAL: message printed. */
int kova_vmm_parse_args(int argc, char **argv, struct kova_vmm_config *cfg);
void kova_vmm_usage(FILE *out);
/* Runs the VM until it powers off or is stopped; returns an enum kova_vmm_exit value. */
int kova_vmm_run(const struct kova_vmm_config *cfg);

#endif
