/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost-net: the kernel moves a virtio-net device's frames between its rings and the tap
 * (/dev/vhost-net), the VMM only sets it up. Used by virtio_net.c when --net vhost=on|auto found
 * it usable at start.
 *
 * Life of one handle: vhost_net_open (main thread, before the sandbox: open, VHOST_SET_OWNER,
 * VHOST_GET_FEATURES) once per process and NIC; then, on the NIC's worker thread, for every
 * DRIVER_OK of the guest's driver: vhost_net_start (features, memory table, both rings, kick and
 * call eventfds, the tap as backend), and at its reset vhost_net_stop (backend -1, ring bases
 * read back, eventfds unbound). The worker's seccomp list (sandbox.c, SANDBOX_NET) allows the
 * ioctls of _start and _stop and no others.
 *
 * Guest input: ring addresses come from the guest. vhost_ring_from_vq checks that a queue's
 * three rings lie wholly inside guest RAM (gm_ptr, as virtq_enable does) before their host
 * addresses go to the kernel; the kernel checks them again against the memory table, and every
 * descriptor it follows.
 * Errors: 0 or -errno, with a static reason in *why.
 */
#ifndef KOVA_VMM_VHOST_NET_H
#define KOVA_VMM_VHOST_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"
#include "virtq.h"

/* The device features the kernel's vhost-net implements itself: MRG_RXBUF (15), INDIRECT_DESC
 * (28), EVENT_IDX (29), VERSION_1 (32), as literals: <linux/vhost.h> redefines the VIRTIO_*_F_*
 * names as bit numbers. The offloads (CSUM, TSO) are the tap's, through the vnet header both
 * sides share. */
#define VHOST_NET_RING_FEATURES ((1ULL << 15) | (1ULL << 28) | (1ULL << 29) | (1ULL << 32))

#define VHOST_NET_QUEUES 2 /* receive 0, transmit 1 */

/* One ring as handed to the kernel. */
struct vhost_ring {
    uint16_t num, base;         /* size, next available index */
    uint64_t desc, avail, used; /* host (user) addresses */
    int kick, call;             /* eventfds */
};

/* Opens /dev/vhost-net and makes this process its owner. *features: what it implements; it must
 * have VERSION_1 (the transport is modern only). Returns the fd or -errno. */
int vhost_net_open(uint64_t *features, const char **why);

/* The features to set: what the driver acked that the kernel implements (ring features). */
uint64_t vhost_net_features(uint64_t acked, uint64_t vhost_features);

/* The ring of an enabled queue, its rings checked to lie inside guest RAM: 0, or -EINVAL (not
 * enabled, broken, or a ring outside RAM). kick and call are left to the caller. */
int vhost_ring_from_vq(const struct virtq *vq, const struct guest_mem *mem, struct vhost_ring *r);

/* Guest RAM as VHOST_SET_MEM_TABLE takes it: fills the regions (at most 2: below and above the
 * MMIO gap) of buf (vhost_mem_size() bytes) and returns how many. */
unsigned vhost_mem_fill(void *buf, const struct guest_mem *mem);
unsigned long vhost_mem_size(void);

/* Starts the kernel on both rings with backend (the tap) and features. On failure nothing is
 * left running (every backend -1). */
int vhost_net_start(int fd, uint64_t features, const struct guest_mem *mem,
                    const struct vhost_ring ring[VHOST_NET_QUEUES], int backend, const char **why);
/* Stops both rings (backend -1) and unbinds their eventfds; base[q]: the next available index
 * the kernel had reached (may be NULL). 0 or the first error (every step is tried). */
int vhost_net_stop(int fd, uint16_t base[VHOST_NET_QUEUES]);

#endif
