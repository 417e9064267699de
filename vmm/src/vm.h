/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One KVM virtual machine: its memory, vCPU threads and devices, and what stopped it. vm.c
 * assembles the VM (kvm.h: the KVM fds and memory slots; irqchip.h: interrupt controllers and
 * routes; cpu.h: each vCPU's CPUID and registers; devices/device.h: the device table) and runs
 * the vCPUs' exit loop, dispatching port I/O and MMIO to the buses (bus.h: the one place where
 * a guest access is checked against the device ranges).
 *
 * Threads: vm_create/vm_destroy on the caller's thread; one thread per vCPU between vm_start and
 * vm_destroy; vm_stop/pause/resume/power_button from any thread. The state below `lock` is
 * under it. A guest reset is a vm_destroy and a new vm_create (same process).
 * Errors: 0 or -errno; vm_create also sets *why to a static message. Whatever vm_create made
 * before a failure is released by vm_destroy, which the caller always calls.
 */
#ifndef KOVA_VMM_VM_H
#define KOVA_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "acpi.h"
#include "boot.h"
#include "bus.h"
#include "cpu.h"
#include "device.h"
#include "irq.h"
#include "irqchip.h"
#include "mem.h"
#include "pci.h"
#include "smbios.h"

#define VM_MAX_DEVICES 64 /* device instances (device.h) in one VM */

enum vm_state {
    VM_RUNNING,
    VM_POWEROFF, /* the guest powered off (ACPI S5) */
    VM_RESET,    /* the guest asked for a reset (ACPI reset register, i8042) */
    VM_QUIT,     /* the control socket or a signal stopped it */
    VM_SHUTDOWN, /* triple fault */
    VM_ERROR,    /* KVM or emulation failure */
};

struct vm_params {
    /* /dev/kvm, opened and checked by kvm_open (its VCPU mmap size in run_size); the caller's,
     * kept open across guest resets (the sandboxed process cannot open it again). */
    int kvm_fd;
    size_t run_size;
    unsigned cpus;
    uint64_t mem_bytes;
    const uint8_t *kernel;
    size_t kernel_size;
    const uint8_t *initrd;
    size_t initrd_size;
    const char *cmdline;
    /* Firmware boot (kernel NULL): the BIOS image (firmware.h: its size and placement), mapped
     * below 4 GiB. */
    const uint8_t *firmware;
    size_t firmware_size;
    const char *uuid;          /* SMBIOS type 1; NULL: none */
    uint64_t t0_ns;            /* CLOCK_MONOTONIC origin for the boot timer */
    struct dev_config devices; /* console, disks */
};

struct vcpu {
    struct vm *vm;
    unsigned id;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
};

struct vm {
    int kvm_fd, vm_fd;
    struct guest_mem mem;
    unsigned ncpus;
    struct vcpu *vcpus;
    struct cpu_model cpu;
    size_t run_size;
    struct bus pio, mmio;
    struct irqchip irqchip;
    struct irq_sink irq; /* irqchip's */
    struct power_sink power;
    struct pci_host pci;
    /* The device table's instances, in creation order. */
    struct vm_device {
        const struct device_kind *kind;
        void *dev;
    } devices[VM_MAX_DEVICES];
    unsigned ndevices;
    struct boot_result boot;
    uint8_t *rom; /* firmware boot: the BIOS image's read-only copy (rom_size bytes), or NULL */
    size_t rom_size;
    struct fw_file fw_files[8];
    unsigned nfw_files;
    uint8_t fw_e820[2 * 20];
    uint8_t fw_sercon[2];
    uint8_t fw_smbios_anchor[SMBIOS_ANCHOR_LEN];
    uint8_t *fw_smbios_tables; /* malloc'd */
    size_t fw_smbios_len;
    struct acpi_fw fw_acpi;

    pthread_mutex_t lock;
    pthread_cond_t cond;        /* vCPUs wait here while paused */
    pthread_cond_t parked_cond; /* vm_pause waits here for the vCPUs to park */
    enum vm_state state;
    char error[160];
    bool paused;
    unsigned parked;  /* vCPU threads waiting while paused */
    unsigned running; /* vCPU threads not yet exited */
    int done_fd;      /* eventfd: becomes readable once state leaves VM_RUNNING */
    uint64_t t0_ns;
    uint64_t start_ns;
    uint64_t stop_ns;                   /* when the state left VM_RUNNING */
    atomic_uint_fast64_t boot_timer_ns; /* 0 until the guest writes the boot timer */
};

uint64_t vm_now_ns(void);

/* Creates the VM and loads the guest. 0 or -errno; *why describes the failure. */
int vm_create(struct vm *vm, const struct vm_params *p, const char **why);
int vm_start(struct vm *vm);
/* Ends the VM with the given state (the first reason wins) and wakes everyone. */
void vm_stop(struct vm *vm, enum vm_state state, const char *error);
/* Stops all vCPUs in the guest and returns once they are parked; resume lets them go on. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_paused(struct vm *vm);
/* Pulses the ACPI power button. */
int vm_power_button(struct vm *vm);
/* Joins the vCPU threads (after vm_stop or a guest-requested stop) and frees everything. */
void vm_destroy(struct vm *vm);

#endif
