/* SPDX-License-Identifier: Apache-2.0 */
/* One KVM virtual machine: memory, vCPU threads, devices, and what stopped it. */
#ifndef KOVA_VMM_VM_H
#define KOVA_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot.h"
#include "bus.h"
#include "irq.h"
#include "legacy.h"
#include "mem.h"
#include "pci.h"
#include "serial.h"
#include "virtio_blk.h"
#include "virtio_pci.h"

enum vm_state {
    VM_RUNNING,
    VM_POWEROFF, /* the guest powered off (ACPI S5) */
    VM_RESET,    /* the guest asked for a reset (ACPI reset register, i8042) */
    VM_QUIT,     /* the control socket or a signal stopped it */
    VM_SHUTDOWN, /* triple fault */
    VM_ERROR,    /* KVM or emulation failure */
};

struct vm_params {
    unsigned cpus;
    uint64_t mem_bytes;
    const uint8_t *kernel;
    size_t kernel_size;
    const uint8_t *initrd;
    size_t initrd_size;
    const char *cmdline;
    int console_fd;                  /* -1: none */
    int stdout_fd;                   /* -1: none */
    uint64_t t0_ns;                  /* CLOCK_MONOTONIC origin for the boot timer */
    const struct blk_backend *disks; /* virtio-blk disks, in PCI slot order (vda, vdb, ...) */
    unsigned ndisks;
};

/* MSI routes for irqfds: GSIs VM_MSI_GSI_BASE .. + VM_MSI_ROUTES - 1 (below: the IRQ chip's). */
#define VM_MSI_GSI_BASE 24
#define VM_MSI_ROUTES   256

struct vm_msi_route {
    bool used;
    uint64_t addr;
    uint32_t data;
};

/* Fills rt with the whole GSI routing table: KVM's default IRQ chip routes (GSIs 0-15 to the
 * IOAPIC pin of the same number and to the PIC, 16-23 to the IOAPIC) and one MSI route per used
 * entry of msi (GSI VM_MSI_GSI_BASE + index). rt has room for 40 + n entries. */
void vm_gsi_routing_fill(struct kvm_irq_routing *rt, const struct vm_msi_route *msi, unsigned n);

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
    struct kvm_cpuid2 *cpuid;
    size_t run_size;
    struct bus pio, mmio;
    struct irq_sink irq;
    struct power_sink power;
    struct serial serial;
    struct i8042 i8042;
    struct cmos cmos;
    struct acpi_pm acpi_pm;
    struct pci_host pci;
    struct virtio_pci_dev *rng;
    struct virtio_pci_dev *blk[BLK_MAX_DISKS];
    unsigned nblk;
    struct boot_result boot;

    /* irqfd MSI routes (vm->irq.msi_route_*), under routes_lock. */
    pthread_mutex_t routes_lock;
    struct vm_msi_route msi_routes[VM_MSI_ROUTES];

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
