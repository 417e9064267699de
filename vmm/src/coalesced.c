/* SPDX-License-Identifier: Apache-2.0 */
#include "coalesced.h"

#include <string.h>

void coalesced_init(struct coalesced *c, struct bus *pio, struct bus *mmio)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->pio = pio;
    c->mmio = mmio;
}

void coalesced_attach(struct coalesced *c, void *ring, size_t page_size)
{
    if (ring && page_size > sizeof(*c->ring) + sizeof(c->ring->coalesced_mmio[0])) {
        c->ring = ring;
        c->max = (unsigned)((page_size - sizeof(*c->ring)) / sizeof(c->ring->coalesced_mmio[0]));
    }
}

void coalesced_destroy(struct coalesced *c)
{
    pthread_mutex_destroy(&c->lock);
    c->ring = NULL;
}

bool coalesced_pending(const struct coalesced *c)
{
    if (!c->ring)
        return false;
    return __atomic_load_n(&c->ring->first, __ATOMIC_RELAXED) !=
           __atomic_load_n(&c->ring->last, __ATOMIC_RELAXED);
}

unsigned coalesced_drain(struct coalesced *c)
{
    if (!coalesced_pending(c))
        return 0;
    unsigned n = 0;
    pthread_mutex_lock(&c->lock);
    struct kvm_coalesced_mmio_ring *r = c->ring;
    for (;;) {
        uint32_t first = __atomic_load_n(&r->first, __ATOMIC_RELAXED);
        uint32_t last = __atomic_load_n(&r->last, __ATOMIC_ACQUIRE); /* entry before index */
        if (first == last)
            break;
        if (first >= c->max || last >= c->max) {
            atomic_fetch_add(&c->bad, 1);
            __atomic_store_n(&r->first, last < c->max ? last : 0, __ATOMIC_RELEASE);
            break;
        }
        struct kvm_coalesced_mmio e = r->coalesced_mmio[first]; /* one copy, then checked */
        uint32_t len = e.len <= sizeof(e.data) ? e.len : 0;     /* 0: bus_write refuses it */
        bus_write(e.pio ? c->pio : c->mmio, e.phys_addr, e.data, len);
        __atomic_store_n(&r->first, (first + 1) % c->max, __ATOMIC_RELEASE);
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    atomic_fetch_add(&c->drained, n);
    return n;
}
