/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-pci modern transport (virtio 1.x, section 4.1) with MSI-X. One memory BAR (BAR 0) holds
 * the common configuration, ISR, device configuration, notification area and the MSI-X table and
 * PBA. A device type (rng now; blk and net later) supplies a struct virtio_dev_ops.
 */
#ifndef KOVA_VMM_VIRTIO_PCI_H
#define KOVA_VMM_VIRTIO_PCI_H

#include <pthread.h>
#include <stdint.h>

#include "irq.h"
#include "mem.h"
#include "pci.h"
#include "virtq.h"

#define VIRTIO_MAX_QUEUES  8
#define VIRTIO_F_VERSION_1 (1ULL << 32)

struct virtio_pci_dev;

struct virtio_dev_ops {
    const char *name;
    uint16_t device_id; /* virtio device type, e.g. 4 = entropy */
    uint64_t features;  /* offered; VIRTIO_F_VERSION_1 is added */
    unsigned num_queues;
    uint16_t queue_size;
    uint32_t config_len;
    /* Device-specific configuration space (may be NULL when config_len is 0). */
    void (*config_read)(struct virtio_pci_dev *d, uint32_t off, uint8_t *data, uint32_t size);
    void (*config_write)(struct virtio_pci_dev *d, uint32_t off, const uint8_t *data,
                         uint32_t size);
    /* The driver notified queue q (device lock held). Not called with kick_fds. */
    void (*notify)(struct virtio_pci_dev *d, unsigned q);
    /* Notifications arrive on d->kick_fd[q] (eventfds the device's threads wait on) instead of
     * notify(): written by KVM (ioeventfd on the queue's notify address, registered at
     * DRIVER_OK) or, without ioeventfd, by the MMIO exit handler. */
    bool kick_fds;
    /* The driver reset the device (device lock held). */
    void (*reset)(struct virtio_pci_dev *d);
};

struct virtio_pci_dev {
    struct pci_dev pci;
    pthread_mutex_t lock; /* everything below */
    const struct virtio_dev_ops *ops;
    void *opaque;
    const struct guest_mem *mem;
    const struct irq_sink *irq;
    uint32_t dfselect, gfselect;
    uint64_t driver_features;
    uint16_t msix_config;
    uint8_t status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint8_t isr;
    struct virtq vq[VIRTIO_MAX_QUEUES];
    int kick_fd[VIRTIO_MAX_QUEUES]; /* ops->kick_fds: eventfds, else -1 */
    uint64_t ioev_base;             /* BAR 0 address the ioeventfds are registered at; 0: none */
    bool ioev_failed;               /* KVM refused one: MMIO exits from then on */
    /* MSI-X */
    unsigned msix_n;
    uint32_t msix_table[VIRTIO_MAX_QUEUES + 1][4];
    uint64_t msix_pending;
    uint64_t interrupts; /* delivered, for tests and status */
    /* Per vector, delivery through KVM_IRQFD: eventfd, GSI and the message its route holds
     * (updated when the guest's table entry differs at delivery time). */
    struct msix_route {
        int fd, gsi;
        uint64_t addr;
        uint32_t data;
    } route[VIRTIO_MAX_QUEUES + 1];
    bool irqfd_failed;         /* a route could not be set up: KVM_SIGNAL_MSI from then on */
    uint64_t irqfd_interrupts; /* of `interrupts`, those raised through an irqfd */
};

int virtio_pci_init(struct virtio_pci_dev *d, const struct virtio_dev_ops *ops, void *opaque,
                    const struct guest_mem *mem, const struct irq_sink *irq);
/* Removes the ioeventfds and irqfd routes and closes the eventfds. */
void virtio_pci_destroy(struct virtio_pci_dev *d);
/* Signals "used buffers" on queue q (device lock held). */
void virtio_pci_notify_queue(struct virtio_pci_dev *d, unsigned q);

/* BAR 0 layout. */
#define VPCI_COMMON_OFF 0x0000
#define VPCI_ISR_OFF    0x1000
#define VPCI_DEVICE_OFF 0x2000
#define VPCI_NOTIFY_OFF 0x3000
#define VPCI_NOTIFY_MUL 4
#define VPCI_MSIX_OFF   0x4000
#define VPCI_PBA_OFF    0x5000
#define VPCI_BAR_SIZE   0x8000

/* Device types. */
int virtio_rng_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq);
void virtio_rng_free(struct virtio_pci_dev *d);

#endif
