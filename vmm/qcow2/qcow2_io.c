/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 data paths: L1/L2 lookup and update, reads (allocated, compressed, zero, backing),
 * writes (in place, new clusters, copy-on-write) and unmap (discard / write-zeroes).
 *
 * Invariants: the lock is held except around data reads and writes marked in d->inflight
 * (no cluster is freed while one runs: pending frees wait) and, for writes to new clusters,
 * in d->allocating (overlapping writers wait on alloc_cond). A cluster is written in place only
 * when both its L2 entry and the L1 entry naming its table carry the COPIED flag (refcount 1);
 * anything shared is copied first. An L2 entry is set only after its data is written.
 */
#include "kova/common.h"
#include "qcow2_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define BATCH_MAX 64

/* ---------------------------------------------------------------- L1 / L2 */

struct lookup {
    uint64_t raw;
    struct qcow2_l2e e;
    int l1_copied;
};

static int lookup(struct kova_disk *d, uint64_t voff, struct lookup *lk)
{
    uint64_t l1i = voff >> (d->cb + d->l2_bits);
    uint64_t l2i = (voff >> d->cb) & ((1ull << d->l2_bits) - 1);
    memset(lk, 0, sizeof(*lk));
    lk->e.type = QCOW2_CL_UNALLOCATED;
    if (l1i >= d->h.l1_size)
        return 0;
    uint64_t l1e = d->l1[l1i];
    uint64_t off = l1e & QCOW2_OFFSET_MASK;
    if (!off)
        return 0;
    if (off & (d->cs - 1))
        return kd_error(d, -EIO, "corrupt image: L2 table offset 0x%llx unaligned",
                        (unsigned long long)off);
    lk->l1_copied = (l1e & QCOW2_OFLAG_COPIED) != 0;
    int slot;
    int rc = qc_cache_load(d, &d->l2c, off, &slot);
    if (rc < 0)
        return rc;
    lk->raw = be64_get(d->l2c.slots[slot].data + l2i * 8);
    lk->e = qcow2_decode_l2(lk->raw, d->cb);
    if (lk->e.type == QCOW2_CL_INVALID)
        return kd_error(d, -EIO, "corrupt image: bad L2 entry 0x%016llx",
                        (unsigned long long)lk->raw);
    return 0;
}

/* Allocated data that is written in place as it stands (unshared). */
static int inplace_data(const struct lookup *lk)
{
    return lk->e.type == QCOW2_CL_NORMAL && lk->e.copied && lk->l1_copied;
}

/* Allocated (data or preallocated zeros) and unshared: needs no new host cluster. */
static int unshared_alloc(const struct lookup *lk)
{
    return (lk->e.type == QCOW2_CL_NORMAL || lk->e.type == QCOW2_CL_ZERO_ALLOC) && lk->e.copied &&
           lk->l1_copied;
}

/* L2 table of `l1i` ready for modification (allocated, or copied when shared). */
static int l2_writable(struct kova_disk *d, uint64_t l1i, int *slot)
{
    uint64_t l1e = d->l1[l1i];
    uint64_t off = l1e & QCOW2_OFFSET_MASK, noff;
    int rc;
    if (off && (l1e & QCOW2_OFLAG_COPIED))
        return qc_cache_load(d, &d->l2c, off, slot);
    if (!off) {
        if ((rc = qc_alloc_cluster(d, &noff)) < 0 ||
            (rc = qc_cache_new(d, &d->l2c, noff, slot)) < 0)
            return rc;
    } else {
        /* Shared with a snapshot: copy it; the copy references the same clusters, whose
         * refcounts already count this image's reference. */
        int i;
        if ((rc = qc_cache_load(d, &d->l2c, off, &i)) < 0)
            return rc;
        if ((rc = qc_alloc_cluster(d, &noff)) < 0)
            return rc;
        i = qc_cache_find(&d->l2c, off);
        if (i < 0 && (rc = qc_cache_load(d, &d->l2c, off, &i)) < 0)
            return rc;
        qc_cache_move(&d->l2c, i, noff);
        if ((rc = qc_pending_add(d, off, d->cs)) < 0)
            return rc;
        *slot = i;
    }
    d->l1[l1i] = noff | QCOW2_OFLAG_COPIED;
    qc_dirty_mark(&d->l1_dirty_lo, &d->l1_dirty_hi, l1i);
    return 0;
}

static int l2_set(struct kova_disk *d, uint64_t voff, uint64_t entry)
{
    uint64_t l1i = voff >> (d->cb + d->l2_bits);
    uint64_t l2i = (voff >> d->cb) & ((1ull << d->l2_bits) - 1);
    int slot;
    int rc = l2_writable(d, l1i, &slot);
    if (rc < 0)
        return rc;
    be64_put(d->l2c.slots[slot].data + l2i * 8, entry);
    d->l2c.slots[slot].dirty = 1;
    return 0;
}

/* ---------------------------------------------------------------- read */

/* The slot holding e's cluster decompressed: a hit, or the least recently used slot refilled.
 * On success *out points at the cluster's d->cs bytes (valid until the next call, under the
 * lock). */
static int decompress(struct kova_disk *d, const struct qcow2_l2e *e, uint8_t **out)
{
    struct qc_dslot *slot = &d->dslots[0];
    for (unsigned i = 0; i < d->ndslots; i++) {
        struct qc_dslot *s = &d->dslots[i];
        if (s->valid && s->key == e->offset) {
            s->used = ++d->dclock;
            *out = s->data;
            return 0;
        }
        if (!s->valid ? slot->valid : (slot->valid && s->used < slot->used))
            slot = s; /* an empty slot first, else the least recently used */
    }
    size_t clen = (size_t)e->csize;
    if (clen > 2 * d->cs + 512)
        return kd_error(d, -EIO, "corrupt image: compressed cluster too large");
    if (!slot->data && !(slot->data = malloc(d->cs)))
        return kd_error(d, -ENOMEM, "out of memory for a decompressed cluster");
    int rc = kd_pread_full(d->fd, d->cbuf, clen, e->offset);
    if (rc < 0)
        return kd_error(d, rc, "reading compressed cluster: %s", strerror(-rc));
    slot->valid = 0;
    if (d->h.compression_type == 0) {
        z_stream zs;
        memset(&zs, 0, sizeof(zs));
        if (inflateInit2(&zs, -12) != Z_OK)
            return kd_error(d, -ENOMEM, "zlib init failed");
        zs.next_in = d->cbuf;
        zs.avail_in = (uInt)clen;
        zs.next_out = slot->data;
        zs.avail_out = (uInt)d->cs;
        int zr = inflate(&zs, Z_FINISH);
        int ok = (zr == Z_STREAM_END || zr == Z_BUF_ERROR || zr == Z_OK) && zs.avail_out == 0;
        inflateEnd(&zs);
        if (!ok)
            return kd_error(d, -EIO, "corrupt image: bad deflate data at 0x%llx",
                            (unsigned long long)e->offset);
    } else {
        if (!d->zstd_dctx && !(d->zstd_dctx = ZSTD_createDCtx()))
            return -ENOMEM;
        ZSTD_DCtx *z = d->zstd_dctx;
        ZSTD_DCtx_reset(z, ZSTD_reset_session_only);
        ZSTD_inBuffer in = {d->cbuf, clen, 0};
        ZSTD_outBuffer zo = {slot->data, d->cs, 0};
        for (;;) {
            size_t r = ZSTD_decompressStream(z, &zo, &in);
            if (ZSTD_isError(r))
                return kd_error(d, -EIO, "corrupt image: bad zstd data at 0x%llx",
                                (unsigned long long)e->offset);
            if (zo.pos == zo.size)
                break;
            if (r == 0 || in.pos == in.size)
                return kd_error(d, -EIO, "corrupt image: short zstd data at 0x%llx",
                                (unsigned long long)e->offset);
        }
    }
    slot->key = e->offset;
    slot->used = ++d->dclock;
    slot->valid = 1;
    *out = slot->data;
    return 0;
}

static int read_backing(struct kova_disk *d, uint8_t *buf, size_t n, uint64_t voff)
{
    if (!d->backing || voff >= d->backing->size) {
        memset(buf, 0, n);
        return 0;
    }
    size_t m = n;
    if (voff + m > d->backing->size)
        m = (size_t)(d->backing->size - voff);
    int rc = kova_disk_pread(d->backing, buf, m, voff);
    if (rc < 0)
        return kd_error(d, rc, "backing file: %s", kova_disk_last_error(d->backing));
    memset(buf + m, 0, n - m);
    return 0;
}

/* Reads n bytes at voff, all inside the cluster described by e. */
static int read_part(struct kova_disk *d, const struct qcow2_l2e *e, uint8_t *buf, size_t n,
                     uint64_t voff)
{
    uint64_t in = voff & (d->cs - 1);
    int rc;
    switch (e->type) {
    case QCOW2_CL_UNALLOCATED:
        return read_backing(d, buf, n, voff);
    case QCOW2_CL_ZERO_PLAIN:
    case QCOW2_CL_ZERO_ALLOC:
        memset(buf, 0, n);
        return 0;
    case QCOW2_CL_NORMAL:
        rc = kd_pread_full(d->fd, buf, n, e->offset + in);
        if (rc < 0)
            return kd_error(d, rc, "read: %s", strerror(-rc));
        return 0;
    case QCOW2_CL_COMPRESSED: {
        uint8_t *cl;
        if ((rc = decompress(d, e, &cl)) < 0)
            return rc;
        memcpy(buf, cl + in, n);
        return 0;
    }
    default:
        return kd_error(d, -EIO, "corrupt image: invalid cluster");
    }
}

/* Can the cluster after a run of `prev` (run_len bytes from `in` inside its first cluster) be
 * read together with it? */
static int same_run(const struct lookup *first, uint64_t run_len, uint64_t in,
                    const struct lookup *nx)
{
    const struct qcow2_l2e *prev = &first->e, *next = &nx->e;
    switch (prev->type) {
    case QCOW2_CL_NORMAL:
        return next->type == QCOW2_CL_NORMAL && next->offset == prev->offset + in + run_len;
    case QCOW2_CL_UNALLOCATED:
        return next->type == QCOW2_CL_UNALLOCATED;
    case QCOW2_CL_ZERO_PLAIN:
    case QCOW2_CL_ZERO_ALLOC:
        return next->type == QCOW2_CL_ZERO_PLAIN || next->type == QCOW2_CL_ZERO_ALLOC;
    default:
        return 0;
    }
}

/* Can the cluster after an in-place run be written in place with it? */
static int same_inplace_run(const struct lookup *first, uint64_t run_len, uint64_t in,
                            const struct lookup *nx)
{
    return inplace_data(nx) && nx->e.offset == first->e.offset + in + run_len;
}

/* Does a read run go on past this cluster? (A compressed one is read alone.) */
static int read_run_starts(const struct lookup *lk)
{
    return lk->e.type != QCOW2_CL_COMPRESSED;
}

/* Bytes from `off` up to `len` that lie in the cluster at `off`. */
static size_t chunk_len(const struct kova_disk *d, uint64_t off, uint64_t len)
{
    uint64_t n = d->cs - (off & (d->cs - 1));
    return (size_t)(n > len ? len : n);
}

/* Looks up the cluster at `off` into *lk and sets *n to the bytes from `off` (up to `len`) of the
 * run starting there: the rest of that cluster and, where starts(lk), each following cluster
 * for which `same` holds. */
static int lookup_run(struct kova_disk *d, uint64_t off, size_t len, struct lookup *lk, size_t *n,
                      int (*starts)(const struct lookup *lk),
                      int (*same)(const struct lookup *first, uint64_t run_len, uint64_t in,
                                  const struct lookup *nx))
{
    uint64_t in = off & (d->cs - 1);
    *n = chunk_len(d, off, len);
    int rc = lookup(d, off, lk);
    if (rc < 0 || !starts(lk))
        return rc;
    struct lookup nx;
    while (*n < len) {
        if ((rc = lookup(d, off + *n, &nx)) < 0)
            return rc;
        if (!same(lk, *n, in, &nx))
            break;
        *n += (size_t)(len - *n < d->cs ? len - *n : d->cs);
    }
    return 0;
}

/* Reads len bytes at off into the vector at c. Data reads run with the lock dropped; clusters
 * are not freed meanwhile (pending frees wait until no such I/O is in flight). */
static int read_vec(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    while (len) {
        uint64_t in = off & (d->cs - 1);
        size_t n;
        struct lookup lk;
        /* Contiguous host clusters, runs of unallocated or zero clusters: one request. */
        int rc = lookup_run(d, off, len, &lk, &n, read_run_starts, same_run);
        if (rc < 0)
            return rc;
        if (lk.e.type == QCOW2_CL_NORMAL ||
            (lk.e.type == QCOW2_CL_UNALLOCATED && d->backing && off < d->backing->size)) {
            size_t m = n;
            if (lk.e.type == QCOW2_CL_UNALLOCATED && off + m > d->backing->size)
                m = (size_t)(d->backing->size - off);
            int k = kd_iovc_slice(c, m);
            d->inflight++;
            pthread_mutex_unlock(&d->lock);
            if (lk.e.type == QCOW2_CL_NORMAL)
                rc = kd_rwv_full(d->fd, c->s, k, lk.e.offset + in, 0);
            else
                rc = kova_disk_preadv(d->backing, c->s, k, off);
            pthread_mutex_lock(&d->lock);
            d->inflight--;
            if (rc < 0 && lk.e.type == QCOW2_CL_NORMAL)
                return kd_error(d, rc, "read: %s", strerror(-rc));
            if (rc < 0)
                return kd_error(d, rc, "backing file: %s", kova_disk_last_error(d->backing));
            kd_iovc_copy(c, NULL, n - m, 1);
        } else if (lk.e.type == QCOW2_CL_COMPRESSED) {
            uint8_t *cl;
            if ((rc = decompress(d, &lk.e, &cl)) < 0)
                return rc;
            kd_iovc_copy(c, cl + in, n, 1);
        } else if (lk.e.type == QCOW2_CL_UNALLOCATED || lk.e.type == QCOW2_CL_ZERO_PLAIN ||
                   lk.e.type == QCOW2_CL_ZERO_ALLOC) {
            kd_iovc_copy(c, NULL, n, 1);
        } else {
            return kd_error(d, -EIO, "corrupt image: invalid cluster");
        }
        off += n;
        len -= n;
    }
    return 0;
}

/* ---------------------------------------------------------------- write */

/* Writes n bytes (src NULL: zeros) at voff inside one cluster that is not written in place:
 * the cluster's new contents go to a new host cluster (or a preallocated zero cluster). */
static int write_chunk(struct kova_disk *d, const uint8_t *src, size_t n, uint64_t voff)
{
    uint64_t in = voff & (d->cs - 1);
    uint64_t cvoff = voff - in;
    struct lookup lk;
    int rc = lookup(d, voff, &lk);
    if (rc < 0)
        return rc;
    if (inplace_data(&lk)) {
        if (src)
            return kd_write(d, src, n, lk.e.offset + in);
        memset(d->clbuf, 0, n);
        return kd_write(d, d->clbuf, n, lk.e.offset + in);
    }
    /* New contents of the whole cluster: the old contents around the new bytes. */
    if (in && (rc = read_part(d, &lk.e, d->clbuf, (size_t)in, cvoff)) < 0)
        return rc;
    if (in + n < d->cs &&
        (rc = read_part(d, &lk.e, d->clbuf + in + n, (size_t)(d->cs - in - n), voff + n)) < 0)
        return rc;
    const uint8_t *data = d->clbuf;
    if (src && n == d->cs)
        data = src; /* whole cluster: straight from the caller's buffer */
    else if (src)
        memcpy(d->clbuf + in, src, n);
    else
        memset(d->clbuf + in, 0, n);
    int reuse = lk.e.type == QCOW2_CL_ZERO_ALLOC && lk.e.copied && lk.l1_copied;
    uint64_t host = lk.e.offset;
    if (!reuse && (rc = qc_alloc_cluster(d, &host)) < 0)
        return rc;
    if ((rc = kd_write(d, data, (size_t)d->cs, host)) < 0)
        return rc;
    if ((rc = l2_set(d, cvoff, host | QCOW2_OFLAG_COPIED)) < 0)
        return rc;
    if (!reuse && (rc = qc_free_entry_clusters(d, &lk.e)) < 0)
        return rc;
    return qc_flush_if_pending(d);
}

/* Waits (lock held, dropped while waiting) until no unlocked allocating write overlaps
 * [off, off + len). */
static void wait_allocating(struct kova_disk *d, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < d->nallocating;) {
        const struct kd_range *a = &d->allocating[i];
        if (a->off < off + len && off < a->off + a->len) {
            pthread_cond_wait(&d->alloc_cond, &d->lock);
            i = 0;
        } else {
            i++;
        }
    }
}

/* Whole clusters at `off` that need new host clusters get contiguous ones, written with one
 * request, then linked into their L2 tables. Returns the bytes done (0: not applicable here). */
static long write_new_run(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    struct qcow2_l2e olds[BATCH_MAX];
    uint64_t host0 = 0, h;
    size_t cnt = 0;
    int rc;
    while (cnt < BATCH_MAX && len - cnt * d->cs >= d->cs) {
        struct lookup lk;
        if ((rc = lookup(d, off + cnt * d->cs, &lk)) < 0)
            return rc;
        if (unshared_alloc(&lk))
            break; /* written in place */
        if ((rc = qc_alloc_cluster(d, &h)) < 0)
            return rc;
        if (cnt && h != host0 + cnt * d->cs) {
            /* not contiguous: give it back (nothing refers to it yet) and stop here */
            if ((rc = qc_refcount_add(d, h / d->cs, -1, UINT64_MAX)) < 0)
                return rc;
            break;
        }
        if (!cnt)
            host0 = h;
        olds[cnt++] = lk.e;
    }
    if (!cnt)
        return 0;
    /* The data goes to clusters nothing refers to yet, so it is written with the lock dropped
     * (unless too many such writes run); overlapping writers wait (wait_allocating). */
    struct kd_iovc save = *c;
    int k = kd_iovc_slice(c, cnt * d->cs);
    int unlocked = d->nallocating < KD_MAX_ALLOCATING;
    if (unlocked)
        d->allocating[d->nallocating++] = (struct kd_range){off, cnt * d->cs};
    d->inflight++;
    if (unlocked)
        pthread_mutex_unlock(&d->lock);
    rc = kd_rwv_full(d->fd, c->s, k, host0, 1);
    if (unlocked)
        pthread_mutex_lock(&d->lock);
    d->inflight--;
    if (unlocked) {
        for (unsigned i = 0; i < d->nallocating; i++) {
            if (d->allocating[i].off == off) {
                d->allocating[i] = d->allocating[--d->nallocating];
                break;
            }
        }
        pthread_cond_broadcast(&d->alloc_cond);
    }
    if (rc < 0) {
        *c = save;
        return kd_error(d, rc, "write at %llu: %s", (unsigned long long)host0, strerror(-rc));
    }
    d->unsynced = 1;
    for (size_t i = 0; i < cnt; i++) {
        if ((rc = l2_set(d, off + i * d->cs, (host0 + i * d->cs) | QCOW2_OFLAG_COPIED)) < 0)
            return rc;
        if ((rc = qc_free_entry_clusters(d, &olds[i])) < 0)
            return rc;
    }
    if ((rc = qc_flush_if_pending(d)) < 0)
        return rc;
    return (long)(cnt * d->cs);
}

/* Bytes at off (up to len) that can be written in place as one request: allocated, unshared,
 * host-contiguous clusters. 0 when the first cluster is not such a one. */
static int inplace_run(struct kova_disk *d, size_t len, uint64_t off, uint64_t *host, size_t *run)
{
    struct lookup lk;
    size_t n;
    *run = 0;
    int rc = lookup_run(d, off, len, &lk, &n, inplace_data, same_inplace_run);
    if (rc < 0 || !inplace_data(&lk))
        return rc;
    *host = lk.e.offset + (off & (d->cs - 1));
    *run = n;
    return 0;
}

/* Writes len bytes from the vector at c (NULL: zeros) at off. */
static int write_vec(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    while (len) {
        wait_allocating(d, off, len);
        uint64_t in = off & (d->cs - 1);
        size_t n = chunk_len(d, off, len);
        int rc;
        if (c) {
            if (in == 0 && len >= d->cs) {
                long done = write_new_run(d, c, len, off);
                if (done < 0)
                    return (int)done;
                if (done > 0) {
                    off += (uint64_t)done;
                    len -= (size_t)done;
                    continue;
                }
            }
            uint64_t host;
            size_t run;
            if ((rc = inplace_run(d, len, off, &host, &run)) < 0)
                return rc;
            if (run) {
                /* In place, with the lock dropped (see read_vec). A flush always ends with
                 * fdatasync, so `unsynced` is only a hint here. */
                int k = kd_iovc_slice(c, run);
                d->inflight++;
                pthread_mutex_unlock(&d->lock);
                rc = kd_rwv_full(d->fd, c->s, k, host, 1);
                pthread_mutex_lock(&d->lock);
                d->inflight--;
                if (rc < 0)
                    return kd_error(d, rc, "write: %s", strerror(-rc));
                d->unsynced = 1;
                off += run;
                len -= run;
                continue;
            }
            /* A partial or copied cluster: its bytes gathered into one buffer. */
            kd_iovc_copy(c, d->wbuf, n, 0);
            rc = write_chunk(d, d->wbuf, n, off);
        } else {
            rc = write_chunk(d, NULL, n, off);
        }
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

/* ---------------------------------------------------------------- unmap */

/* Whole-cluster discard (zeroes=0) or zeroing (zeroes=1); partial clusters: zeroing writes
 * zeros, discard leaves them. */
int qc_unmap(struct kova_disk *d, uint64_t off, uint64_t len, int zeroes)
{
    int v3 = d->h.version >= 3;
    int has_backing = d->h.backing_file[0] != 0;
    while (len) {
        wait_allocating(d, off, len);
        uint64_t in = off & (d->cs - 1);
        uint64_t n = chunk_len(d, off, len);
        int rc = 0;
        int whole = in == 0 && (n == d->cs || off + n == d->size);
        if (!whole || (!v3 && has_backing)) {
            struct lookup lk;
            if (zeroes && (rc = lookup(d, off, &lk)) == 0) {
                /* Nothing to do where the cluster already reads as zeros. */
                int reads_zero = lk.e.type == QCOW2_CL_ZERO_PLAIN ||
                                 lk.e.type == QCOW2_CL_ZERO_ALLOC ||
                                 (lk.e.type == QCOW2_CL_UNALLOCATED &&
                                  (!d->backing || off - in >= d->backing->size));
                if (!reads_zero)
                    rc = write_vec(d, NULL, (size_t)n, off);
            }
        } else {
            struct lookup lk;
            rc = lookup(d, off, &lk);
            uint64_t ne = (has_backing || (zeroes && v3)) ? QCOW2_OFLAG_ZERO : 0;
            if (rc == 0 && !(lk.e.type == QCOW2_CL_ZERO_PLAIN ||
                             (lk.e.type == QCOW2_CL_UNALLOCATED && ne == 0))) {
                rc = l2_set(d, off, ne);
                if (rc == 0)
                    rc = qc_free_entry_clusters(d, &lk.e);
                if (rc == 0)
                    rc = qc_flush_if_pending(d);
            }
        }
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

/* ---------------------------------------------------------------- ops */

int qc_preadv(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    pthread_mutex_lock(&d->lock);
    int rc = read_vec(d, c, len, off);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int qc_pwritev(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    pthread_mutex_lock(&d->lock);
    int rc = write_vec(d, c, len, off);
    pthread_mutex_unlock(&d->lock);
    return rc;
}
