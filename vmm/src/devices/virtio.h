/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A virtio device, independent of the transport that carries it (virtio 1.x, section 2). A device
 * type (virtio_rng.c, virtio_blk.c) implements struct virtio_dev_ops and knows nothing of PCI; a
 * transport (virtio_pci.c) implements the driver-facing registers (features, status, queue
 * set-up, interrupts) and hands the device a struct virtio_dev: its view of the instance.
 *
 * Locking: the transport owns one lock per instance (dev->lock). It holds it around every ops
 * call except start and stop (and the reset while the instance is set up, before anyone else
 * can see it); the device takes it itself on its own threads before it touches the queues or
 * calls the virtio_* helpers below, which need it held.
 * Guest input: the queues' rings and chains are only ever read through virtq.c (the one place
 * that checks them); the transport checks register offsets before calling config_read/write
 * (off + size <= config_len).
 * Ownership: the device's state (virtio_type.create) belongs to the device type and outlives the
 * transport instance built on it; the view and the queues belong to the transport.
 * Errors: 0 or -errno.
 */
#ifndef KOVA_VMM_VIRTIO_H
#define KOVA_VMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "mem.h"
#include "virtq.h"

#define VIRTIO_MAX_QUEUES  8
#define VIRTIO_F_VERSION_1 (1ULL << 32)

struct virtio_dev;

/* What a device type implements. */
struct virtio_dev_ops {
    const char *name;
    uint16_t device_id; /* virtio device type, e.g. 4 = entropy */
    unsigned num_queues;
    uint16_t queue_size;
    uint32_t config_len;
    /* Notifications of queue q arrive on d->kick_fd[q] (eventfds the device's threads wait on)
     * instead of notify(): written by KVM (an ioeventfd on the queue's notify address, where
     * the transport can) or by the transport's exit handler. */
    bool kick_fds;
    /* Offered feature bits (NULL: none); the transport adds VIRTIO_F_VERSION_1. */
    uint64_t (*features)(struct virtio_dev *d);
    /* Device-specific configuration space, off + size <= config_len (may be NULL). */
    void (*config_read)(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size);
    void (*config_write)(struct virtio_dev *d, uint32_t off, const uint8_t *data, uint32_t size);
    /* The driver notified queue q (not called with kick_fds). */
    void (*notify)(struct virtio_dev *d, unsigned q);
    /* The driver reset the device; the queues are already reset. */
    void (*reset)(struct virtio_dev *d);
    /* Optional, without the lock: the transport instance is ready (queues, kick eventfds),
     * the device may start its threads; 0 or -errno (the instance is then not created). stop
     * ends them before the transport goes. */
    int (*start)(struct virtio_dev *d);
    void (*stop)(struct virtio_dev *d);
};

/* What the transport provides (called with the lock held). */
struct virtio_transport {
    bool (*driver_ok)(struct virtio_dev *d);                /* DRIVER_OK is set */
    void (*needs_reset)(struct virtio_dev *d);              /* sets DEVICE_NEEDS_RESET */
    void (*notify_queue)(struct virtio_dev *d, unsigned q); /* used buffers on q */
    uint64_t (*driver_features)(struct virtio_dev *d);      /* what the driver acked */
    /* For a device whose used buffers are signalled by someone outside the VMM (vhost-net's
     * call eventfds); both may be NULL.
     * queue_irqfd: an eventfd that, when written, raises queue q's MSI-X vector in the kernel
     * (an irqfd), following the guest's table: re-routed when it rewrites the entry's address
     * or data, unrouted while the vector or the function is masked (a write then leaves the
     * vector pending: the PBA shows it, unmasking delivers it). -1 where that is not possible
     * (no vector, no irqfd routes): the device then raises the interrupt itself (raise_queue).
     * Valid until irqfds_release, which the device calls once nothing writes them any more. */
    int (*queue_irqfd)(struct virtio_dev *d, unsigned q);
    void (*irqfds_release)(struct virtio_dev *d);
    /* The interrupt for used buffers on q now: the suppression decision (EVENT_IDX, NO_INTERRUPT)
     * was made by whoever filled the used ring. */
    void (*raise_queue)(struct virtio_dev *d, unsigned q);
};

/* The device's view of one instance, filled in by the transport. */
struct virtio_dev {
    const struct virtio_dev_ops *ops;
    void *opaque; /* the device's state */
    const struct guest_mem *mem;
    pthread_mutex_t *lock;
    struct virtq *vq;   /* ops->num_queues queues, under *lock */
    const int *kick_fd; /* with ops->kick_fds, one eventfd per queue */
    const struct virtio_transport *transport;
};

static inline bool virtio_driver_ok(struct virtio_dev *d)
{
    return d->transport->driver_ok(d);
}
/* The guest broke a queue: the device asks the driver for a reset. */
static inline void virtio_needs_reset(struct virtio_dev *d)
{
    d->transport->needs_reset(d);
}
/* Signals "used buffers" on queue q (an interrupt if the driver wants one). */
static inline void virtio_notify_queue(struct virtio_dev *d, unsigned q)
{
    d->transport->notify_queue(d, q);
}

/* The feature bits the driver acked (meaningful once DRIVER_OK is set). */
static inline uint64_t virtio_driver_features(struct virtio_dev *d)
{
    return d->transport->driver_features(d);
}

/* A device type as the device table makes instances of it (VIRTIO_PCI_KIND, virtio_pci.h). */
struct virtio_type {
    const struct virtio_dev_ops *ops;
    /* Instances the configuration wants (NULL: one). */
    unsigned (*count)(const struct dev_config *cfg);
    /* The state of instance index, before its transport exists (NULL: none). 0 or -errno;
     * *why may be pointed at a static message. */
    int (*create)(const struct dev_config *cfg, unsigned index, void **state, const char **why);
    /* Frees it, after the transport instance is gone. */
    void (*destroy)(void *state);
};

/* The device types, one file each. */
extern const struct virtio_type virtio_rng_type; /* virtio_rng.c: entropy, one instance */
extern const struct virtio_type virtio_blk_type; /* virtio_blk.c: one per configured disk */

#endif
