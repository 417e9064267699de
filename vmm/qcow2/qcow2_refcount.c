/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 refcounts and allocation: refcount blocks (cached in d->rbc) and the refcount table
 * (d->rt, host order), cluster allocation, refcount table growth, pending frees, and the
 * metadata flush.
 *
 * Metadata ordering (crash safety): L2 tables and refcount blocks live in write-back caches.
 * qc_flush_meta() (also run to evict a dirty L2 table) writes, with an fdatasync between each
 * step: refcount blocks -> refcount table entries (for new blocks) -> L2 tables -> L1 entries;
 * only then are references dropped (pending frees applied), so a cluster's refcount reaches zero
 * only once no durable L2/L1 entry points at it. Data is written to a cluster before the L2
 * entry pointing at it, and synced before that entry is written. A crash at any moment
 * therefore leaks clusters at worst.
 *
 * Invariants: every cluster at or after d->end_cluster is free; clusters below d->free_hint
 * have nonzero refcounts; the header, L1 and refcount table are never handed out even where a
 * corrupt image says they are free. Lock held throughout.
 */
#include "kova/common.h"
#include "qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_FLUSH_AT 4096

static int rt_grow(struct kova_disk *d, uint64_t need_index, uint64_t exclude);

/* Host offset of the refcount block for refcount table index `ri`, 0 if none. */
static int rt_block(struct kova_disk *d, uint64_t ri, uint64_t *off)
{
    *off = 0;
    if (ri >= d->rt_entries)
        return 0;
    uint64_t e = d->rt[ri];
    uint64_t o = e & QCOW2_OFFSET_MASK;
    if (o & (d->cs - 1))
        return kd_error(d, -EIO, "corrupt image: refcount block offset 0x%llx unaligned",
                        (unsigned long long)o);
    *off = o;
    return 0;
}

int kd_refcount_get(struct kova_disk *d, uint64_t cluster, uint64_t *val)
{
    uint64_t boff;
    *val = 0;
    int rc = rt_block(d, cluster / d->epb, &boff);
    if (rc < 0 || boff == 0)
        return rc;
    int slot;
    rc = qc_cache_load(d, &d->rbc, boff, &slot);
    if (rc < 0)
        return rc;
    *val = qcow2_refcount_get(d->rbc.slots[slot].data, d->h.refcount_order, cluster % d->epb);
    return 0;
}

/* Is cluster `c` the header, or part of the L1 or refcount table? (A corrupt image may claim
 * such a cluster is free; overwriting it would destroy the image.) */
static int overlaps_fixed(const struct kova_disk *d, uint64_t c)
{
    uint64_t off = c * d->cs;
    uint64_t l1_end = d->h.l1_table_offset + (uint64_t)d->h.l1_size * 8;
    uint64_t rt_end = d->h.refcount_table_offset + (uint64_t)d->h.refcount_table_clusters * d->cs;
    if (c == 0)
        return 1;
    if (d->h.l1_size && off + d->cs > d->h.l1_table_offset && off < l1_end)
        return 1;
    return off + d->cs > d->h.refcount_table_offset && off < rt_end;
}

/* Creates the refcount block for table index `ri`, placed inside the range it covers
 * (self-describing) at a cluster other than `exclude`. All clusters of that range are free,
 * since no block counts them. */
static int rb_create(struct kova_disk *d, uint64_t ri, uint64_t exclude)
{
    uint64_t b = ri * d->epb;
    if (b == exclude)
        b++;
    if (overlaps_fixed(d, b))
        return kd_error(d, -EIO, "corrupt image: no refcount block covers image metadata");
    int i;
    int rc = qc_cache_new(d, &d->rbc, b * d->cs, &i);
    if (rc < 0)
        return rc;
    qcow2_refcount_set(d->rbc.slots[i].data, d->h.refcount_order, b % d->epb, 1);
    d->rt[ri] = b * d->cs;
    qc_dirty_mark(&d->rt_dirty_lo, &d->rt_dirty_hi, ri);
    if (b + 1 > d->end_cluster)
        d->end_cluster = b + 1;
    return 0;
}

int qc_refcount_add(struct kova_disk *d, uint64_t cluster, int delta, uint64_t exclude)
{
    uint64_t ri = cluster / d->epb, boff;
    int rc = rt_block(d, ri, &boff); /* no block (0) where the table is too short */
    if (rc < 0)
        return rc;
    if (boff == 0 && delta < 0)
        return kd_error(d, -EIO, "corrupt image: freeing cluster %llu without refcount",
                        (unsigned long long)cluster);
    if (ri >= d->rt_entries &&
        ((rc = rt_grow(d, ri, exclude)) < 0 || (rc = rt_block(d, ri, &boff)) < 0))
        return rc;
    if (boff == 0) {
        rc = rb_create(d, ri, exclude);
        if (rc < 0)
            return rc;
        boff = d->rt[ri];
    }
    int slot;
    rc = qc_cache_load(d, &d->rbc, boff, &slot);
    if (rc < 0)
        return rc;
    uint8_t *blk = d->rbc.slots[slot].data;
    uint64_t v = qcow2_refcount_get(blk, d->h.refcount_order, cluster % d->epb);
    if (delta < 0 && v == 0)
        return kd_error(d, -EIO, "corrupt image: refcount of cluster %llu would underflow",
                        (unsigned long long)cluster);
    if (delta > 0 && v >= d->refmax)
        return kd_error(d, -ERANGE, "refcount of cluster %llu would overflow",
                        (unsigned long long)cluster);
    v = delta > 0 ? v + 1 : v - 1;
    qcow2_refcount_set(blk, d->h.refcount_order, cluster % d->epb, v);
    d->rbc.slots[slot].dirty = 1;
    if (v == 0 && cluster < d->free_hint)
        d->free_hint = cluster;
    return 0;
}

int qc_alloc_cluster(struct kova_disk *d, uint64_t *off)
{
    uint64_t c = d->free_hint;
    if (c == 0)
        c = 1;
    for (;; c++) {
        if (c >= d->end_cluster)
            break;
        if (c > (QCOW2_OFFSET_MASK >> d->cb))
            return kd_error(d, -ENOSPC, "image file offset limit reached");
        uint64_t ri = c / d->epb, boff;
        int rc = rt_block(d, ri, &boff);
        if (rc < 0)
            return rc;
        if (boff == 0)
            break;
        uint64_t v;
        rc = kd_refcount_get(d, c, &v);
        if (rc < 0)
            return rc;
        if (v == 0)
            break;
    }
    if (overlaps_fixed(d, c))
        return kd_error(d, -EIO, "corrupt image: metadata cluster %llu has refcount 0",
                        (unsigned long long)c);
    int rc = qc_refcount_add(d, c, +1, c);
    if (rc < 0)
        return rc;
    d->free_hint = c + 1;
    if (c + 1 > d->end_cluster)
        d->end_cluster = c + 1;
    *off = c * d->cs;
    return 0;
}

/*
 * Grows the refcount table so that index `need_index` exists. New layout at the end of the file:
 * [E, E+B) new refcount blocks for ranges that have none, [E+B, E+B+T) the new table; all of
 * them counted by blocks that exist or are among the new ones. Blocks and table are written and
 * synced before the header switches to the new table; the old table is freed afterwards.
 */
static int rt_grow(struct kova_disk *d, uint64_t need_index, uint64_t exclude)
{
    uint64_t E = d->end_cluster;
    if (exclude + 1 > E)
        E = exclude + 1;
    uint64_t per_cl = d->cs / 8;
    uint64_t T = d->h.refcount_table_clusters, B = 0;
    for (int iter = 0;; iter++) {
        if (iter > 64)
            return kd_error(d, -EIO, "refcount table growth does not converge");
        uint64_t first = E / d->epb, last = (E + B + T - 1) / d->epb;
        uint64_t need = need_index + 1;
        if (last + 1 > need)
            need = last + 1;
        uint64_t T2 = (need + per_cl - 1) / per_cl;
        if (T2 < d->h.refcount_table_clusters * 2)
            T2 = d->h.refcount_table_clusters * 2;
        if (T2 * d->cs > QCOW2_MAX_REFTABLE_BYTES) {
            T2 = (need + per_cl - 1) / per_cl;
            if (T2 * d->cs > QCOW2_MAX_REFTABLE_BYTES)
                return kd_error(d, -EFBIG, "refcount table would exceed 8 MiB");
        }
        uint64_t M = 0;
        for (uint64_t ri = first; ri <= last; ri++)
            if (ri >= d->rt_entries || (d->rt[ri] & QCOW2_OFFSET_MASK) == 0)
                M++;
        if (T2 == T && M == B)
            break;
        T = T2 > T ? T2 : T;
        B = M > B ? M : B;
    }
    uint64_t new_entries = T * per_cl;
    uint64_t *nrt = calloc(new_entries, 8);
    uint8_t *enc = calloc(T, d->cs);
    if (!nrt || !enc) {
        free(nrt);
        free(enc);
        return -ENOMEM;
    }
    memcpy(nrt, d->rt, d->rt_entries * 8);
    uint64_t *ort = d->rt;
    uint64_t old_off = d->h.refcount_table_offset, old_T = d->h.refcount_table_clusters;
    int rc = 0;

    /* New blocks, in ascending range order. */
    uint64_t k = 0, first = E / d->epb, last = (E + B + T - 1) / d->epb;
    for (uint64_t ri = first; ri <= last; ri++) {
        if (ri < d->rt_entries && (d->rt[ri] & QCOW2_OFFSET_MASK))
            continue;
        int i;
        if ((rc = qc_cache_new(d, &d->rbc, (E + k) * d->cs, &i)) < 0)
            goto fail;
        nrt[ri] = (E + k) * d->cs;
        k++;
    }
    d->rt = nrt;
    d->rt_entries = new_entries;
    d->end_cluster = E + B + T;
    for (uint64_t c = E; c < E + B + T; c++) {
        rc = qc_refcount_add(d, c, +1, exclude);
        if (rc < 0)
            goto fail_switched;
    }
    rc = qc_cache_write_all(d, &d->rbc);
    if (rc == 0)
        rc = kd_sync(d);
    for (uint64_t i = 0; i < new_entries; i++)
        be64_put(enc + i * 8, nrt[i]);
    if (rc == 0)
        rc = kd_write(d, enc, T * d->cs, (E + B) * d->cs);
    if (rc == 0)
        rc = kd_sync(d);
    uint8_t hdr[12];
    be64_put(hdr, (E + B) * d->cs);
    be32_put(hdr + 8, (uint32_t)T);
    if (rc == 0)
        rc = kd_write(d, hdr, sizeof(hdr), 48);
    if (rc == 0)
        rc = kd_sync(d);
    if (rc < 0)
        goto fail_switched;
    free(ort);
    free(enc);
    d->h.refcount_table_offset = (E + B) * d->cs;
    d->h.refcount_table_clusters = (uint32_t)T;
    d->rt_dirty_lo = d->rt_dirty_hi = 0;
    for (uint64_t c = 0; c < old_T; c++) {
        rc = qc_refcount_add(d, old_off / d->cs + c, -1, UINT64_MAX);
        if (rc < 0)
            return rc;
    }
    return 0;
fail_switched:
    /* The header may still name the old table while memory holds the new one: stop writing
     * through this handle (what is on disk leaks at worst). */
    d->broken = 1;
    free(ort);
    free(enc);
    return rc;
fail:
    free(nrt);
    free(enc);
    return rc;
}

int qc_pending_add(struct kova_disk *d, uint64_t start, uint64_t len)
{
    if (d->npending == d->cappending) {
        size_t n = d->cappending ? d->cappending * 2 : 64;
        struct pending_free *p = realloc(d->pending, n * sizeof(*p));
        if (!p)
            return -ENOMEM;
        d->pending = p;
        d->cappending = n;
    }
    d->pending[d->npending].start = start;
    d->pending[d->npending].len = len;
    d->npending++;
    return 0;
}

int qc_free_entry_clusters(struct kova_disk *d, const struct qcow2_l2e *e)
{
    if (e->type == QCOW2_CL_NORMAL || e->type == QCOW2_CL_ZERO_ALLOC)
        return qc_pending_add(d, e->offset, d->cs);
    if (e->type == QCOW2_CL_COMPRESSED)
        return qc_pending_add(d, e->cstart, e->csectors * 512);
    return 0;
}

/* Writes the dirty entries [*lo, *hi) of an in-memory table (L1 or refcount table) to its copy
 * at host offset `table_off`, after syncing what they point at; the range becomes empty. */
static int table_write_dirty(struct kova_disk *d, const uint64_t *t, uint64_t *lo, uint64_t *hi,
                             uint64_t table_off)
{
    int rc;
    if ((rc = kd_sync(d)) < 0)
        return rc;
    uint8_t *enc = malloc((*hi - *lo) * 8);
    if (!enc)
        return -ENOMEM;
    for (uint64_t i = *lo; i < *hi; i++)
        be64_put(enc + (i - *lo) * 8, t[i]);
    rc = kd_write(d, enc, (*hi - *lo) * 8, table_off + *lo * 8);
    free(enc);
    if (rc < 0)
        return rc;
    *lo = *hi = 0;
    return 0;
}

/* Step 5 of qc_flush_meta(): drops the references no durable table holds any more. */
static int apply_pending(struct kova_disk *d)
{
    int rc;
    if ((rc = kd_sync(d)) < 0)
        return rc;
    size_t n = d->npending;
    d->npending = 0;
    for (size_t i = 0; i < n; i++) {
        struct pending_free *p = &d->pending[i];
        uint64_t c0 = p->start / d->cs, c1 = (p->start + p->len - 1) / d->cs;
        for (uint64_t c = c0; c <= c1; c++) {
            rc = qc_refcount_add(d, c, -1, UINT64_MAX);
            if (rc < 0)
                return rc;
        }
    }
    for (unsigned i = 0; i < d->ndslots; i++)
        d->dslots[i].valid = 0; /* a freed compressed cluster's offset may hold new data */
    return qc_cache_write_all(d, &d->rbc);
}

int qc_flush_meta(struct kova_disk *d)
{
    int rc;
    if (d->ro)
        return 0;
    if (d->broken)
        return kd_error(d, -EIO, "earlier metadata update failed; image left as it was");
    int rt_dirty = d->rt_dirty_lo < d->rt_dirty_hi;
    int l1_dirty = d->l1_dirty_lo < d->l1_dirty_hi;
    int l2_dirty = qc_cache_any_dirty(&d->l2c);
    if (!rt_dirty && !l1_dirty && !l2_dirty && !d->npending && !qc_cache_any_dirty(&d->rbc))
        return 0;
    /* 1. refcount blocks (increments only: decrements are applied in step 5) */
    if ((rc = qc_cache_write_all(d, &d->rbc)) < 0)
        return rc;
    /* 2. refcount table entries pointing at new blocks */
    if (rt_dirty && (rc = table_write_dirty(d, d->rt, &d->rt_dirty_lo, &d->rt_dirty_hi,
                                            d->h.refcount_table_offset)) < 0)
        return rc;
    /* 3. L2 tables (data and refcounts durable first) */
    if (l2_dirty && ((rc = kd_sync(d)) < 0 || (rc = qc_cache_write_all(d, &d->l2c)) < 0))
        return rc;
    /* 4. L1 entries (new L2 tables durable first) */
    if (l1_dirty && (rc = table_write_dirty(d, d->l1, &d->l1_dirty_lo, &d->l1_dirty_hi,
                                            d->h.l1_table_offset)) < 0)
        return rc;
    /* 5. drop references no durable table holds any more (not while data I/O runs unlocked:
     * a freed cluster could be reused under it) */
    if (d->npending && !d->inflight)
        return apply_pending(d);
    return 0;
}

int qc_flush_if_pending(struct kova_disk *d)
{
    if (d->npending > PENDING_FLUSH_AT && !d->inflight)
        return qc_flush_meta(d);
    return 0;
}
