/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM's devices as a table of kinds (table.c). A kind says how many instances a VM's
 * configuration wants and how to create and destroy one; vm.c walks vm_device_kinds[] in order
 * when it builds a VM (PCI functions take slots in that order) and destroys the instances in
 * the reverse order, after its vCPUs have stopped. A new device is one kind, usually in one new
 * file, and one row of the table; a new virtio device is a struct virtio_type (virtio.h) and a
 * VIRTIO_PCI_KIND row.
 *
 * Ownership: struct dev_env belongs to the VM and outlives every device; struct dev_config
 * belongs to vm_create's caller and outlives the VM (a device copies what it keeps of it). A
 * device owns what its create() stored in *dev until destroy() gets it back. Devices register
 * their bus ranges and PCI functions in create(); the buses do not change once the vCPUs run.
 * A guest reset rebuilds the VM, so devices have no reset of their own beyond what the guest
 * drives (a virtio device's reset is in its virtio ops).
 * Errors: create() returns 0 or -errno; *why holds the kind's `why` when create() is called and
 * may be pointed at a more specific static message.
 */
#ifndef KOVA_VMM_DEVICE_H
#define KOVA_VMM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "bus.h"
#include "irq.h"
#include "mem.h"
#include "pci.h"

/* What the guest asked the machine to do; set by a device, acted on by the VM. */
enum power_event { POWER_NONE, POWER_OFF, POWER_RESET };

struct power_sink {
    void *opaque;
    void (*event)(void *opaque, enum power_event ev);
    void (*boot_timer)(void *opaque); /* the guest wrote the boot timer magic */
};

struct blk_backend;
struct net_backend;

/* What a device may use, owned by the VM. */
struct dev_env {
    const struct guest_mem *mem;
    const struct irq_sink *irq;
    struct power_sink *power;
    struct bus *pio, *mmio;
    struct pci_host *pci;
};

/* A file the firmware reads through fw_cfg (fw_cfg.h). */
struct fw_file {
    const char *name;
    const void *data;
    size_t len;
};

/* What the VM is configured with, owned by vm_create's caller. */
struct dev_config {
    int console_fd;                  /* COM1 appends to it; -1: none */
    const char *console_name;        /* console_fd's name in console_dir_fd; NULL: not given */
    int console_dir_fd;              /* the log's directory (rotation), when console_name is set */
    int stdout_fd;                   /* COM1 copies to it too; -1: none */
    const struct blk_backend *disks; /* virtio-blk disks, in PCI slot order (vda, vdb, ...) */
    unsigned ndisks;
    const struct net_backend *nets; /* virtio-net NICs, in PCI slot order (eth0, eth1, ...) */
    unsigned nnets;
    bool firmware;                  /* the VM boots through firmware: fw_cfg holds fw_files */
    unsigned ncpus;                 /* vCPUs (fw_cfg's CPU count) */
    const struct fw_file *fw_files; /* etc/e820, SMBIOS, ACPI, bootorder ... */
    unsigned nfw_files;
};

struct device_kind {
    const char *name;
    const char *why; /* the failure message when create() gives none */
    /* Instances this configuration wants; NULL: one. */
    unsigned (*count)(const struct device_kind *k, const struct dev_config *cfg);
    /* Creates instance index (0 .. count - 1) and registers it with env's buses. */
    int (*create)(const struct device_kind *k, const struct dev_env *env,
                  const struct dev_config *cfg, unsigned index, void **dev, const char **why);
    void (*destroy)(const struct device_kind *k, void *dev);
    const void *type; /* for kinds shared by several devices: the virtio device type */
};

/* Every VM's devices, in creation order; NULL-terminated. */
extern const struct device_kind *const vm_device_kinds[];

#endif
