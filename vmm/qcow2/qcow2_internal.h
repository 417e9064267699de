/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Functions shared by the qcow2 format's files:
 *   qcow2_open.c      open/validate, close, the ops table, kova_qcow2_get_info()
 *   qcow2_cache.c     the metadata table cache (L2 tables, refcount blocks), dirty ranges
 *   qcow2_refcount.c  refcounts, cluster allocation, table growth, pending frees, metadata flush
 *   qcow2_io.c        L1/L2 lookup and update, reads (compressed, backing), writes, unmap
 *
 * Unless said otherwise every function needs d->lock held (or runs where no other call can, as
 * in open and close) and returns 0 or -errno, with d->errmsg set for corrupt metadata and I/O
 * errors.
 *
 * Crash safety: see qcow2_refcount.c (the order in which qc_flush_meta() writes metadata).
 */
#ifndef KOVA_QCOW2_INTERNAL_H
#define KOVA_QCOW2_INTERNAL_H

#include "disk_internal.h"

/* --- qcow2_cache.c ---------------------------------------------------------------------- */

/* Sets up an empty cache of `n` tables of `cs` bytes; `writeback` makes a dirty slot clean
 * before it is reused. -ENOMEM (the cache may then be freed with qc_cache_free). No lock. */
int qc_cache_init(struct tcache *c, size_t n, size_t cs, const char *what,
                  int (*writeback)(struct kova_disk *d, struct tcache *c, int slot));
/* Frees the slots and their buffers (a zeroed cache is fine). No lock. */
void qc_cache_free(struct tcache *c);
/* Slot of the table at host offset `off`, or -1 when it is not cached; a hit becomes the most
 * recently used. */
int qc_cache_find(struct tcache *c, uint64_t off);
/* Slot of the table at host offset `off` in *slot, read from the file on a miss (evicting the
 * least recently used slot through c->writeback). */
int qc_cache_load(struct kova_disk *d, struct tcache *c, uint64_t off, int *slot);
/* A new all-zero table for host offset `off` (not read from the file), marked dirty. */
int qc_cache_new(struct kova_disk *d, struct tcache *c, uint64_t off, int *slot);
/* Re-keys cached `slot` to host offset `off` (its contents to be written there), marked dirty. */
void qc_cache_move(struct tcache *c, int slot, uint64_t off);
/* Writes dirty slot `slot` / every dirty slot to its host offset; they become clean. */
int qc_cache_write_slot(struct kova_disk *d, struct tcache *c, int slot);
int qc_cache_write_all(struct kova_disk *d, struct tcache *c);
/* Is any slot dirty? */
int qc_cache_any_dirty(const struct tcache *c);
/* Widens the dirty entry range [*lo, *hi) (empty when lo >= hi) to include entry i. */
void qc_dirty_mark(uint64_t *lo, uint64_t *hi, uint64_t i);

/* --- qcow2_refcount.c ------------------------------------------------------------------- */

/* Adds one reference (delta > 0) to or drops one (delta < 0) from `cluster`, creating its
 * refcount block or growing the table as needed (never placing new metadata at cluster
 * `exclude`). -EIO for an underflow, -ERANGE for an overflow. */
int qc_refcount_add(struct kova_disk *d, uint64_t cluster, int delta, uint64_t exclude);
/* Allocates one free cluster (refcount 0 -> 1); its host offset in *off. */
int qc_alloc_cluster(struct kova_disk *d, uint64_t *off);
/* Queues dropping one reference from every cluster of [start, start + len) once the tables no
 * longer naming them are durable (applied by qc_flush_meta). */
int qc_pending_add(struct kova_disk *d, uint64_t start, uint64_t len);
/* Queues dropping the references L2 entry `e` held (none for unallocated/zero entries). */
int qc_free_entry_clusters(struct kova_disk *d, const struct qcow2_l2e *e);
/* Writes all dirty metadata in crash-safe order, then applies pending frees (unless data I/O
 * runs with the lock dropped). -EIO on a broken handle; 0 on a read-only one. */
int qc_flush_meta(struct kova_disk *d);
/* qc_flush_meta() once many frees are pending and no unlocked data I/O runs; else 0. */
int qc_flush_if_pending(struct kova_disk *d);

/* --- qcow2_io.c (ops; preadv/pwritev take the lock themselves) ---------------------------- */

int qc_preadv(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off);
int qc_pwritev(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off);
/* Whole-cluster discard (zeroes 0) or zeroing (zeroes 1); lock held. 0 or -errno. */
int qc_unmap(struct kova_disk *d, uint64_t off, uint64_t len, int zeroes);

#endif
