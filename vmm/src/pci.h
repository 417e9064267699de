/* SPDX-License-Identifier: Apache-2.0 */
/* PCI host bridge on bus 0: configuration mechanism #1 (ports 0xcf8/0xcfc) and the MMIO window
 * where device BARs live. Function 0 of each slot only; BARs are 32-bit memory BARs. */
#ifndef KOVA_VMM_PCI_H
#define KOVA_VMM_PCI_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"

#define PCI_SLOTS 32
#define PCI_BARS  6

/* Type-0 configuration header fields used by the devices */
#define PCI_COMMAND    0x04
#define PCI_CMD_MEMORY 0x02
#define PCI_BAR0       0x10

struct pci_dev;

struct pci_dev {
    uint8_t cfg[256];
    uint8_t wmask[256]; /* bits the guest may change */
    uint32_t bar_size[PCI_BARS];
    const struct bus_ops *bar_ops[PCI_BARS];
    void *bar_opaque[PCI_BARS];
    /* Called (with the host lock held) after the guest wrote config bytes [off, off + size). */
    void (*cfg_written)(struct pci_dev *dev, uint32_t off, uint32_t size);
    const char *name;
};

struct pci_host {
    pthread_mutex_t lock; /* config spaces and the conf1 address register */
    uint32_t conf_addr;
    struct pci_dev bridge;
    struct pci_dev *slots[PCI_SLOTS];
    uint64_t next_bar; /* next free address in the MMIO window */
    /* The platform's reset line: a byte write with RST_CPU (bit 2) to the reset control register
     * at 0xCF9 (inside the conf1 ports, decoded for byte accesses only, as on PIIX3 and ICH9)
     * calls reset(reset_opaque); SeaBIOS reboots through it. NULL: the register is ignored. */
    void (*reset)(void *opaque);
    void *reset_opaque;
};

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio, void (*reset)(void *),
                  void *reset_opaque);
void pci_host_destroy(struct pci_host *h);
/* Sets up the common header of dev (vendor, device, class ...). */
void pci_dev_init(struct pci_dev *dev, uint16_t vendor, uint16_t device, uint32_t class_code,
                  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id);
/* Declares memory BAR n (size: a power of two >= 4 KiB) served by ops. */
void pci_dev_set_bar(struct pci_dev *dev, unsigned n, uint32_t size, const struct bus_ops *ops,
                     void *opaque);
/* Plugs dev into the next free slot and assigns its BARs. 0, -ENOSPC. */
int pci_host_add(struct pci_host *h, struct pci_dev *dev);

/* Config space access as the guest does it (for tests too): bus 0, function 0 only. */
uint32_t pci_cfg_read(struct pci_host *h, unsigned slot, uint32_t off, uint32_t size);
void pci_cfg_write(struct pci_host *h, unsigned slot, uint32_t off, uint32_t size, uint32_t v);

extern const struct bus_ops pci_conf1_ops; /* PIO_PCI_CONF, 8 bytes */
extern const struct bus_ops pci_mmio_ops;  /* MMIO_PCI_START .. MMIO_PCI_END */

#endif
