/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-pci modern transport (virtio 1.x, section 4.1) with MSI-X: carries any virtio device
 * (virtio.h) as a PCI function. One memory BAR (BAR 0) holds the common configuration, ISR,
 * device configuration, notification area and the MSI-X table and PBA; bus.c has checked that
 * an access lies inside the BAR, this file checks it against each structure before it reads or
 * writes anything. Queue notifies become KVM ioeventfds (devices with kick_fds) once the driver
 * is ready, MSI-X vectors KVM irqfds, where the irq_sink has them.
 * Locking: d->lock guards everything below it and is the device's lock (virtio.h).
 */
#ifndef KOVA_VMM_VIRTIO_PCI_H
#define KOVA_VMM_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "irq.h"
#include "mem.h"
#include "pci.h"
#include "virtio.h"
#include "virtq.h"

struct blk_backend;
struct net_backend;

struct virtio_pci_dev {
    struct pci_dev pci;
    struct virtio_dev vdev; /* the device's view of this instance */
    pthread_mutex_t lock;   /* everything below */
    const struct virtio_dev_ops *ops;
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
     * (updated when the guest's table entry differs at delivery time). An ext route's eventfd
     * is also written outside the VMM (virtio_transport.queue_irqfd: vhost): it is routed, to
     * the table's current message, exactly while the vector can be delivered (gsi >= 0), and
     * unrouted (gsi -1) while it is masked; its counter is then the vector's pending bit. */
    struct msix_route {
        int fd, gsi;
        uint64_t addr;
        uint32_t data;
        bool ext;
    } route[VIRTIO_MAX_QUEUES + 1];
    bool irqfd_failed;         /* a route could not be set up: KVM_SIGNAL_MSI from then on */
    uint64_t irqfd_interrupts; /* of `interrupts`, those raised through an irqfd */
};

/* Sets d up in place for a device of ops whose state is opaque (ops->start is not called).
 * -EINVAL for more than VIRTIO_MAX_QUEUES queues or a config space over 4 KiB; -errno. */
int virtio_pci_init(struct virtio_pci_dev *d, const struct virtio_dev_ops *ops, void *opaque,
                    const struct guest_mem *mem, const struct irq_sink *irq);
/* Removes the ioeventfds and irqfd routes and closes the eventfds. */
void virtio_pci_destroy(struct virtio_pci_dev *d);
/* Signals "used buffers" on queue q (device lock held). */
void virtio_pci_notify_queue(struct virtio_pci_dev *d, unsigned q);

/* An instance of device type t (its state made by t->create for cfg and index), set up and
 * started (ops->start). Not yet in a PCI slot (pci_host_add). 0 or -errno, *why may be set. */
int virtio_pci_create(struct virtio_pci_dev **out, const struct virtio_type *t,
                      const struct dev_config *cfg, unsigned index, const struct guest_mem *mem,
                      const struct irq_sink *irq, const char **why);
/* Stops (ops->stop) and frees the instance, then its state (t->destroy). NULL: nothing. */
void virtio_pci_free(struct virtio_pci_dev *d, const struct virtio_type *t);

/* The device table's rows for virtio devices on PCI (device.h), type: a struct virtio_type. */
unsigned virtio_pci_kind_count(const struct device_kind *k, const struct dev_config *cfg);
int virtio_pci_kind_create(const struct device_kind *k, const struct dev_env *env,
                           const struct dev_config *cfg, unsigned index, void **dev,
                           const char **why);
void virtio_pci_kind_destroy(const struct device_kind *k, void *dev);
#define VIRTIO_PCI_KIND(name_, type_)                                                              \
    {                                                                                              \
        .name = name_, .why = "cannot create " name_, .count = virtio_pci_kind_count,              \
        .create = virtio_pci_kind_create, .destroy = virtio_pci_kind_destroy, .type = type_,       \
    }

/* BAR 0 layout. */
#define VPCI_COMMON_OFF 0x0000
#define VPCI_ISR_OFF    0x1000
#define VPCI_DEVICE_OFF 0x2000
#define VPCI_NOTIFY_OFF 0x3000
#define VPCI_NOTIFY_MUL 4
#define VPCI_MSIX_OFF   0x4000
#define VPCI_PBA_OFF    0x5000
#define VPCI_BAR_SIZE   0x8000

/* One device on this transport outside a VM, for the unit tests (defined with the device
 * table, table.c). The backend is copied; its disk handle must outlive the device. */
int virtio_rng_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq);
void virtio_rng_free(struct virtio_pci_dev *d);
int virtio_blk_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq, const struct blk_backend *be);
/* Stops the workers (after the requests in flight complete) and frees the device; the disk is
 * left open. */
void virtio_blk_free(struct virtio_pci_dev *d);
/* A NIC on be (its fd and stats must outlive the device): the worker runs until _free. */
int virtio_net_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq, const struct net_backend *be);
void virtio_net_free(struct virtio_pci_dev *d);

#endif
