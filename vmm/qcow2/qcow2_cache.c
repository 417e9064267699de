/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The qcow2 metadata table cache: a fixed number of cluster-sized slots (L2 tables or refcount
 * blocks) keyed by host offset, hashed into buckets and evicted least recently used first.
 *
 * Invariants: a used slot is linked in exactly the bucket of its key, and no two used slots
 * share a key; a dirty slot is never reused before c->writeback has made it clean (refcount
 * blocks may be written at any time; a dirty L2 table only after the data and refcounts it
 * depends on, so the L2 cache's writeback is a full metadata flush). Lock held throughout,
 * except for init/free.
 */
#include "qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int qc_cache_init(struct tcache *c, size_t n, size_t cs, const char *what,
                  int (*writeback)(struct kova_disk *d, struct tcache *c, int slot))
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->cs = cs;
    c->what = what;
    c->writeback = writeback;
    c->nbuckets = 1;
    while (c->nbuckets < n * 2)
        c->nbuckets <<= 1;
    c->slots = calloc(n, sizeof(*c->slots));
    c->buckets = malloc(c->nbuckets * sizeof(int));
    if (!c->slots || !c->buckets) {
        c->n = 0; /* no slots to look at when a part-way open is flushed and closed */
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->nbuckets; i++)
        c->buckets[i] = -1;
    return 0;
}

void qc_cache_free(struct tcache *c)
{
    for (size_t i = 0; c->slots && i < c->n; i++)
        free(c->slots[i].data);
    free(c->slots);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

static size_t tcache_hash(const struct tcache *c, uint64_t key)
{
    key = (key >> 9) * 0x9e3779b97f4a7c15ull;
    return (size_t)(key >> 32) & (c->nbuckets - 1);
}

int qc_cache_find(struct tcache *c, uint64_t key)
{
    for (int i = c->buckets[tcache_hash(c, key)]; i >= 0; i = c->slots[i].next)
        if (c->slots[i].key == key) {
            c->slots[i].lru = ++c->tick;
            return i;
        }
    return -1;
}

static void tcache_unlink(struct tcache *c, int idx)
{
    struct tslot *s = &c->slots[idx];
    if (!s->used)
        return;
    int *pp = &c->buckets[tcache_hash(c, s->key)];
    while (*pp >= 0 && *pp != idx)
        pp = &c->slots[*pp].next;
    if (*pp == idx)
        *pp = s->next;
    s->used = 0;
    s->dirty = 0;
}

static void tcache_link(struct tcache *c, int idx, uint64_t key)
{
    struct tslot *s = &c->slots[idx];
    size_t b = tcache_hash(c, key);
    s->key = key;
    s->used = 1;
    s->dirty = 0;
    s->lru = ++c->tick;
    s->next = c->buckets[b];
    c->buckets[b] = idx;
}

/* Least recently used (or unused) slot, clean and unlinked, its data buffer allocated; returns
 * its index or -errno. */
static int tcache_victim(struct kova_disk *d, struct tcache *c)
{
    int best = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->slots[i].used) {
            best = (int)i;
            break;
        }
        if (c->slots[i].lru < c->slots[best].lru)
            best = (int)i;
    }
    if (!c->slots[best].data) {
        c->slots[best].data = malloc(c->cs);
        if (!c->slots[best].data)
            return -ENOMEM;
    }
    if (c->slots[best].used && c->slots[best].dirty) {
        int rc = c->writeback(d, c, best);
        if (rc < 0)
            return rc;
    }
    tcache_unlink(c, best);
    return best;
}

int qc_cache_load(struct kova_disk *d, struct tcache *c, uint64_t off, int *slot)
{
    int i = qc_cache_find(c, off);
    if (i >= 0) {
        *slot = i;
        return 0;
    }
    i = tcache_victim(d, c);
    if (i < 0)
        return i;
    int rc = kd_pread_full(d->fd, c->slots[i].data, c->cs, off);
    if (rc < 0)
        return kd_error(d, rc, "reading %s: %s", c->what, strerror(-rc));
    tcache_link(c, i, off);
    *slot = i;
    return 0;
}

int qc_cache_new(struct kova_disk *d, struct tcache *c, uint64_t off, int *slot)
{
    int i = tcache_victim(d, c);
    if (i < 0)
        return i;
    memset(c->slots[i].data, 0, c->cs);
    tcache_link(c, i, off);
    c->slots[i].dirty = 1;
    *slot = i;
    return 0;
}

void qc_cache_move(struct tcache *c, int slot, uint64_t off)
{
    tcache_unlink(c, slot);
    tcache_link(c, slot, off);
    c->slots[slot].dirty = 1;
}

int qc_cache_write_slot(struct kova_disk *d, struct tcache *c, int slot)
{
    struct tslot *s = &c->slots[slot];
    int rc = kd_write(d, s->data, c->cs, s->key);
    if (rc == 0)
        s->dirty = 0;
    return rc;
}

int qc_cache_write_all(struct kova_disk *d, struct tcache *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].used && c->slots[i].dirty) {
            int rc = qc_cache_write_slot(d, c, (int)i);
            if (rc < 0)
                return rc;
        }
    return 0;
}

int qc_cache_any_dirty(const struct tcache *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].used && c->slots[i].dirty)
            return 1;
    return 0;
}

void qc_dirty_mark(uint64_t *lo, uint64_t *hi, uint64_t i)
{
    if (*lo >= *hi) {
        *lo = i;
        *hi = i + 1;
    } else {
        if (i < *lo)
            *lo = i;
        if (i + 1 > *hi)
            *hi = i + 1;
    }
}
