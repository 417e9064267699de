/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueues (virtio 1.x, section 2.7). This file is the one place where the guest's rings
 * and descriptor chains are read: ring addresses are checked when the queue is enabled, every
 * descriptor index, flag, buffer address and length when a chain is popped. A bad chain is an
 * error for the device (it then needs a reset), never a crash.
 */
#ifndef KOVA_VMM_VIRTQ_H
#define KOVA_VMM_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem.h"

#define VQ_MAX_CHAIN 260 /* descriptors in one chain we accept (an indirect table's too) */
#define VQ_NO_VECTOR 0xffff

/* Ring feature bits (virtio 1.x 6). */
#define VIRTIO_RING_F_INDIRECT_DESC (1ULL << 28)
#define VIRTIO_RING_F_EVENT_IDX     (1ULL << 29)

struct virtq {
    /* As programmed by the driver through the common configuration. */
    uint16_t size, max_size;
    uint16_t msix_vector;
    bool enabled;
    /* Negotiated ring features, set before virtq_enable. */
    bool indirect;  /* VIRTIO_RING_F_INDIRECT_DESC: a chain may be one indirect table */
    bool event_idx; /* VIRTIO_RING_F_EVENT_IDX: used_event / avail_event suppression */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    /* Set by virtq_enable. */
    volatile uint8_t *desc, *avail, *used;
    uint16_t last_avail;
    uint16_t used_idx;
    uint16_t signalled_used; /* used_idx when the last interrupt decision was made */
    bool signalled_valid;
    bool broken;
};

struct vq_buf {
    uint8_t *ptr;
    uint32_t len;
    bool writable;
};

struct vq_chain {
    uint16_t head;
    unsigned n;
    uint64_t readable, writable; /* total bytes of each kind */
    struct vq_buf buf[VQ_MAX_CHAIN];
};

/* Validates size and ring addresses and starts using the queue. 0 or -EINVAL. */
int virtq_enable(struct virtq *vq, const struct guest_mem *mem);
void virtq_reset(struct virtq *vq, uint16_t max_size);
/* 1: a chain was taken; 0: none available; -EINVAL: the guest broke the queue (vq->broken).
 * With EVENT_IDX, finding the ring empty asks the driver (avail_event) to notify on its next
 * buffer, then looks once more, so a caller that sleeps after 0 misses no notification. */
int virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct vq_chain *c);
/* The chain's readable (writable false) or writable bytes [skip, skip + len) as iovecs (at most
 * VQ_MAX_CHAIN, empty pieces left out): their count, or -EINVAL when the chain has fewer such
 * bytes (nothing is filled then). The only place that walks a popped chain's buffers. */
int vq_chain_iov(const struct vq_chain *c, bool writable, uint64_t skip, uint64_t len,
                 struct iovec *iov);
/* Copies those bytes out of the chain into dst, or len bytes of src into the chain's writable
 * bytes from offset skip: 0 or -EINVAL (as vq_chain_iov; nothing copied then). */
int vq_chain_copy_from(const struct vq_chain *c, bool writable, uint64_t skip, void *dst,
                       size_t len);
int vq_chain_copy_to(const struct vq_chain *c, uint64_t skip, const void *src, size_t len);
/* Returns chain head with len bytes written to the used ring. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);
/* Whether the driver wants an interrupt for the buffers used since the last call
 * (VIRTQ_AVAIL_F_NO_INTERRUPT clear, or with EVENT_IDX: used_event crossed). */
bool virtq_should_notify(struct virtq *vq);

#endif
