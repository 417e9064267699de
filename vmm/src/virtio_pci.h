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
    /* The driver notified queue q (device lock held). */
    void (*notify)(struct virtio_pci_dev *d, unsigned q);
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
    /* MSI-X */
    unsigned msix_n;
    uint32_t msix_table[VIRTIO_MAX_QUEUES + 1][4];
    uint64_t msix_pending;
    uint64_t interrupts; /* delivered, for tests and status */
};

int virtio_pci_init(struct virtio_pci_dev *d, const struct virtio_dev_ops *ops, void *opaque,
                    const struct guest_mem *mem, const struct irq_sink *irq);
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
