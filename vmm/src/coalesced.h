/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM's coalesced I/O ring (KVM_REGISTER_COALESCED_MMIO, with KVM_CAP_COALESCED_PIO for ports):
 * a guest write to a registered zone does not exit to the VMM; KVM appends it to a ring in the
 * page at KVM_COALESCED_MMIO_PAGE_OFFSET of every vCPU's kvm_run mapping and re-enters the guest
 * (a full ring makes the write exit as usual). Only for registers whose writes need no answer
 * before the guest's next access to the device: kova uses it for the UART's transmit register.
 *
 * Invariant: the writes reach the buses in the order the guest made them, each exactly once,
 * and before the VMM handles any exit of any vCPU (the run loop drains first), so a device
 * never sees a later access before an earlier coalesced write. A write whose answer is an
 * interrupt (the UART's THRE) waits for the next exit or for the VM's tick (coalesced_pending).
 * The ring is shared with the kernel and its entries hold what the guest chose to write, so the
 * indices and each entry are checked here, in one place: an index outside the ring skips what
 * lies between (counted in `bad`); an entry's address and size go through bus_write's checks.
 * coalesced_drain may be called from any thread; drains are serialised by `lock`.
 */
#ifndef KOVA_VMM_COALESCED_H
#define KOVA_VMM_COALESCED_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "bus.h"

struct coalesced {
    struct kvm_coalesced_mmio_ring *ring; /* NULL: no ring (drain and pending do nothing) */
    unsigned max;                         /* entries in the ring */
    struct bus *pio, *mmio;               /* not owned */
    pthread_mutex_t lock;
    atomic_ulong drained, bad;
};

/* With no ring yet (drain and pending do nothing). Cannot fail; destroy is then always safe. */
void coalesced_init(struct coalesced *c, struct bus *pio, struct bus *mmio);
/* ring: the ring page (page_size bytes), before any vCPU runs. */
void coalesced_attach(struct coalesced *c, void *ring, size_t page_size);
void coalesced_destroy(struct coalesced *c);
/* Hands every entry in the ring to its bus, oldest first, and frees it. Returns the number of
 * entries handed on. */
unsigned coalesced_drain(struct coalesced *c);
/* Whether entries wait in the ring (a lock-free look, for the VM's tick). */
bool coalesced_pending(const struct coalesced *c);

#endif
