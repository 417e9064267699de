/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova_disk: raw and qcow2 disk handles.
 *
 * qcow2 metadata ordering (crash safety): L2 tables and refcount blocks live in write-back
 * caches. kova_disk_flush() (and eviction of a dirty L2 table) writes, with an fdatasync between
 * each step: refcount blocks -> refcount table entries (for new blocks) -> L2 tables -> L1
 * entries; only then are references dropped (pending frees applied), so a cluster's refcount
 * reaches zero only once no durable L2/L1 entry points at it. Data is written to a cluster
 * before the L2 entry pointing at it, and synced before that entry is written. A crash at any
 * moment therefore leaks clusters at worst.
 */
#include "kova/common.h"
#include "disk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define L2_CACHE_MAX_BYTES (32u << 20)
#define RB_CACHE_MAX_BYTES (8u << 20)
#define PENDING_FLUSH_AT   4096
#define KD_IOV_MAX         1024 /* UIO_MAXIOV */

/* ---------------------------------------------------------------- small helpers */

int kd_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) { /* past the end of the file: zeros, as QEMU's block layer does */
            memset(p, 0, len);
            return 0;
        }
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

int kd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO;
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

/* Vectored I/O over a caller's array (modified: entries are consumed as bytes move). */
static int kd_rwv_full(int fd, struct iovec *iov, int cnt, uint64_t off, int write)
{
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        int k = cnt > KD_IOV_MAX ? KD_IOV_MAX : cnt;
        ssize_t r = write ? pwritev(fd, iov, k, (off_t)off) : preadv(fd, iov, k, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            if (write)
                return -EIO;
            for (int i = 0; i < cnt; i++) /* past the end of the file: zeros */
                memset(iov[i].iov_base, 0, iov[i].iov_len);
            return 0;
        }
        off += (uint64_t)r;
        size_t left = (size_t)r;
        while (left && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (left) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* A position in a caller's I/O vector. */
struct iovc {
    const struct iovec *iov;
    int cnt, i;
    size_t at;       /* bytes of iov[i] already consumed */
    struct iovec *s; /* scratch for slices: cnt entries */
};

/* The next len bytes (which exist) as a slice in c->s; returns its entry count. */
static int iovc_slice(struct iovc *c, size_t len)
{
    int k = 0;
    while (len) {
        const struct iovec *v = &c->iov[c->i];
        size_t m = v->iov_len - c->at;
        if (m > len)
            m = len;
        if (m) {
            c->s[k].iov_base = (uint8_t *)v->iov_base + c->at;
            c->s[k].iov_len = m;
            k++;
        }
        c->at += m;
        len -= m;
        if (c->at == v->iov_len) {
            c->i++;
            c->at = 0;
        }
    }
    return k;
}

/* Copies the next len bytes of the vector to (to_iov 0) or from (1) buf; buf NULL: zeros. */
static void iovc_copy(struct iovc *c, uint8_t *buf, size_t len, int to_iov)
{
    int k = iovc_slice(c, len);
    for (int j = 0; j < k; j++) {
        if (to_iov && buf)
            memcpy(c->s[j].iov_base, buf, c->s[j].iov_len);
        else if (to_iov)
            memset(c->s[j].iov_base, 0, c->s[j].iov_len);
        else
            memcpy(buf, c->s[j].iov_base, c->s[j].iov_len);
        if (buf)
            buf += c->s[j].iov_len;
    }
}

int kd_error(struct kova_disk *d, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

static int dsync(struct kova_disk *d)
{
    if (!d->unsynced)
        return 0;
    if (fdatasync(d->fd) < 0)
        return kd_error(d, -errno, "fdatasync: %s", strerror(errno));
    d->unsynced = 0;
    return 0;
}

static int dwrite(struct kova_disk *d, const void *buf, size_t len, uint64_t off)
{
    int rc = kd_pwrite_full(d->fd, buf, len, off);
    if (rc < 0)
        return kd_error(d, rc, "write at %llu: %s", (unsigned long long)off, strerror(-rc));
    d->unsynced = 1;
    return 0;
}

enum kova_disk_format kova_disk_format_parse(const char *name)
{
    if (name && strcmp(name, "raw") == 0)
        return KOVA_DISK_RAW;
    if (name && strcmp(name, "qcow2") == 0)
        return KOVA_DISK_QCOW2;
    return 0;
}

const char *kova_disk_format_name(enum kova_disk_format fmt)
{
    return fmt == KOVA_DISK_RAW ? "raw" : fmt == KOVA_DISK_QCOW2 ? "qcow2" : "?";
}

/* ---------------------------------------------------------------- table cache */

static int tcache_init(struct tcache *c, size_t n, size_t cs)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->cs = cs;
    c->nbuckets = 1;
    while (c->nbuckets < n * 2)
        c->nbuckets <<= 1;
    c->slots = calloc(n, sizeof(*c->slots));
    c->buckets = malloc(c->nbuckets * sizeof(int));
    if (!c->slots || !c->buckets)
        return -ENOMEM;
    for (size_t i = 0; i < c->nbuckets; i++)
        c->buckets[i] = -1;
    return 0;
}

static void tcache_free(struct tcache *c)
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

static int tcache_find(struct tcache *c, uint64_t key)
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

/* Least recently used (or unused) slot; its data buffer is allocated. */
static int tcache_victim(struct tcache *c)
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
    return best;
}

/* ---------------------------------------------------------------- refcounts */

static int flush_meta(struct kova_disk *d);
static int rt_grow(struct kova_disk *d, uint64_t need_index, uint64_t exclude);

static int rb_write_slot(struct kova_disk *d, int i)
{
    struct tslot *s = &d->rbc.slots[i];
    int rc = dwrite(d, s->data, d->cs, s->key);
    if (rc == 0)
        s->dirty = 0;
    return rc;
}

static int rb_write_all(struct kova_disk *d)
{
    for (size_t i = 0; i < d->rbc.n; i++)
        if (d->rbc.slots[i].used && d->rbc.slots[i].dirty) {
            int rc = rb_write_slot(d, (int)i);
            if (rc < 0)
                return rc;
        }
    return 0;
}

/* Cache slot of the refcount block at host offset `off` (loaded if needed). */
static int rb_load(struct kova_disk *d, uint64_t off, int *slot)
{
    int i = tcache_find(&d->rbc, off);
    if (i >= 0) {
        *slot = i;
        return 0;
    }
    i = tcache_victim(&d->rbc);
    if (i < 0)
        return i;
    if (d->rbc.slots[i].used && d->rbc.slots[i].dirty) {
        int rc = rb_write_slot(d, i); /* refcount blocks may be written at any time */
        if (rc < 0)
            return rc;
    }
    tcache_unlink(&d->rbc, i);
    int rc = kd_pread_full(d->fd, d->rbc.slots[i].data, d->cs, off);
    if (rc < 0)
        return kd_error(d, rc, "reading refcount block: %s", strerror(-rc));
    tcache_link(&d->rbc, i, off);
    *slot = i;
    return 0;
}

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
    rc = rb_load(d, boff, &slot);
    if (rc < 0)
        return rc;
    *val = qcow2_refcount_get(d->rbc.slots[slot].data, d->h.refcount_order, cluster % d->epb);
    return 0;
}

static void rt_mark(struct kova_disk *d, uint64_t ri)
{
    if (d->rt_dirty_lo >= d->rt_dirty_hi) {
        d->rt_dirty_lo = ri;
        d->rt_dirty_hi = ri + 1;
    } else {
        if (ri < d->rt_dirty_lo)
            d->rt_dirty_lo = ri;
        if (ri + 1 > d->rt_dirty_hi)
            d->rt_dirty_hi = ri + 1;
    }
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
    int i = tcache_victim(&d->rbc);
    if (i < 0)
        return i;
    if (d->rbc.slots[i].used && d->rbc.slots[i].dirty) {
        int rc = rb_write_slot(d, i);
        if (rc < 0)
            return rc;
    }
    tcache_unlink(&d->rbc, i);
    memset(d->rbc.slots[i].data, 0, d->cs);
    qcow2_refcount_set(d->rbc.slots[i].data, d->h.refcount_order, b % d->epb, 1);
    tcache_link(&d->rbc, i, b * d->cs);
    d->rbc.slots[i].dirty = 1;
    d->rt[ri] = b * d->cs;
    rt_mark(d, ri);
    if (b + 1 > d->end_cluster)
        d->end_cluster = b + 1;
    return 0;
}

static int refcount_add(struct kova_disk *d, uint64_t cluster, int delta, uint64_t exclude)
{
    uint64_t ri = cluster / d->epb, boff;
    int rc;
    if (ri >= d->rt_entries) {
        if (delta < 0)
            return kd_error(d, -EIO, "corrupt image: freeing cluster %llu without refcount",
                            (unsigned long long)cluster);
        rc = rt_grow(d, ri, exclude);
        if (rc < 0)
            return rc;
    }
    rc = rt_block(d, ri, &boff);
    if (rc < 0)
        return rc;
    if (boff == 0) {
        if (delta < 0)
            return kd_error(d, -EIO, "corrupt image: freeing cluster %llu without refcount",
                            (unsigned long long)cluster);
        rc = rb_create(d, ri, exclude);
        if (rc < 0)
            return rc;
        boff = d->rt[ri];
    }
    int slot;
    rc = rb_load(d, boff, &slot);
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

/* Allocates one cluster (refcount 0 -> 1); returns its host offset in *off. */
static int alloc_cluster(struct kova_disk *d, uint64_t *off)
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
    int rc = refcount_add(d, c, +1, c);
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
        int i = tcache_victim(&d->rbc);
        if (i < 0) {
            rc = i;
            goto fail;
        }
        if (d->rbc.slots[i].used && d->rbc.slots[i].dirty) {
            rc = rb_write_slot(d, i);
            if (rc < 0)
                goto fail;
        }
        tcache_unlink(&d->rbc, i);
        memset(d->rbc.slots[i].data, 0, d->cs);
        tcache_link(&d->rbc, i, (E + k) * d->cs);
        d->rbc.slots[i].dirty = 1;
        nrt[ri] = (E + k) * d->cs;
        k++;
    }
    d->rt = nrt;
    d->rt_entries = new_entries;
    d->end_cluster = E + B + T;
    for (uint64_t c = E; c < E + B + T; c++) {
        rc = refcount_add(d, c, +1, exclude);
        if (rc < 0)
            goto fail_switched;
    }
    rc = rb_write_all(d);
    if (rc == 0)
        rc = dsync(d);
    for (uint64_t i = 0; i < new_entries; i++)
        be64_put(enc + i * 8, nrt[i]);
    if (rc == 0)
        rc = dwrite(d, enc, T * d->cs, (E + B) * d->cs);
    if (rc == 0)
        rc = dsync(d);
    uint8_t hdr[12];
    be64_put(hdr, (E + B) * d->cs);
    be32_put(hdr + 8, (uint32_t)T);
    if (rc == 0)
        rc = dwrite(d, hdr, sizeof(hdr), 48);
    if (rc == 0)
        rc = dsync(d);
    if (rc < 0)
        goto fail_switched;
    free(ort);
    free(enc);
    d->h.refcount_table_offset = (E + B) * d->cs;
    d->h.refcount_table_clusters = (uint32_t)T;
    d->rt_dirty_lo = d->rt_dirty_hi = 0;
    for (uint64_t c = 0; c < old_T; c++) {
        rc = refcount_add(d, old_off / d->cs + c, -1, UINT64_MAX);
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

static int pending_add(struct kova_disk *d, uint64_t start, uint64_t len)
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

/* Queues dropping the references an L2 entry held (applied after the L2 change is durable). */
static int free_entry_clusters(struct kova_disk *d, const struct qcow2_l2e *e)
{
    if (e->type == QCOW2_CL_NORMAL || e->type == QCOW2_CL_ZERO_ALLOC)
        return pending_add(d, e->offset, d->cs);
    if (e->type == QCOW2_CL_COMPRESSED)
        return pending_add(d, e->cstart, e->csectors * 512);
    return 0;
}

/* ---------------------------------------------------------------- L1 / L2 */

static void l1_mark(struct kova_disk *d, uint64_t i)
{
    if (d->l1_dirty_lo >= d->l1_dirty_hi) {
        d->l1_dirty_lo = i;
        d->l1_dirty_hi = i + 1;
    } else {
        if (i < d->l1_dirty_lo)
            d->l1_dirty_lo = i;
        if (i + 1 > d->l1_dirty_hi)
            d->l1_dirty_hi = i + 1;
    }
}

static int l2_any_dirty(struct kova_disk *d)
{
    for (size_t i = 0; i < d->l2c.n; i++)
        if (d->l2c.slots[i].used && d->l2c.slots[i].dirty)
            return 1;
    return 0;
}

static int rb_any_dirty(struct kova_disk *d)
{
    for (size_t i = 0; i < d->rbc.n; i++)
        if (d->rbc.slots[i].used && d->rbc.slots[i].dirty)
            return 1;
    return 0;
}

/* Writes all dirty metadata in crash-safe order, then applies pending frees. */
static int flush_meta(struct kova_disk *d)
{
    int rc;
    if (d->fmt != KOVA_DISK_QCOW2 || d->ro)
        return 0;
    if (d->broken)
        return kd_error(d, -EIO, "earlier metadata update failed; image left as it was");
    int rt_dirty = d->rt_dirty_lo < d->rt_dirty_hi;
    int l1_dirty = d->l1_dirty_lo < d->l1_dirty_hi;
    int l2_dirty = l2_any_dirty(d);
    if (!rt_dirty && !l1_dirty && !l2_dirty && !d->npending && !rb_any_dirty(d))
        return 0;
    /* 1. refcount blocks (increments only: decrements are applied in step 5) */
    if ((rc = rb_write_all(d)) < 0)
        return rc;
    /* 2. refcount table entries pointing at new blocks */
    if (rt_dirty) {
        if ((rc = dsync(d)) < 0)
            return rc;
        uint64_t lo = d->rt_dirty_lo, hi = d->rt_dirty_hi;
        uint8_t *enc = malloc((hi - lo) * 8);
        if (!enc)
            return -ENOMEM;
        for (uint64_t i = lo; i < hi; i++)
            be64_put(enc + (i - lo) * 8, d->rt[i]);
        rc = dwrite(d, enc, (hi - lo) * 8, d->h.refcount_table_offset + lo * 8);
        free(enc);
        if (rc < 0)
            return rc;
        d->rt_dirty_lo = d->rt_dirty_hi = 0;
    }
    /* 3. L2 tables (data and refcounts durable first) */
    if (l2_dirty) {
        if ((rc = dsync(d)) < 0)
            return rc;
        for (size_t i = 0; i < d->l2c.n; i++) {
            struct tslot *s = &d->l2c.slots[i];
            if (s->used && s->dirty) {
                if ((rc = dwrite(d, s->data, d->cs, s->key)) < 0)
                    return rc;
                s->dirty = 0;
            }
        }
    }
    /* 4. L1 entries (new L2 tables durable first) */
    if (l1_dirty) {
        if ((rc = dsync(d)) < 0)
            return rc;
        uint64_t lo = d->l1_dirty_lo, hi = d->l1_dirty_hi;
        uint8_t *enc = malloc((hi - lo) * 8);
        if (!enc)
            return -ENOMEM;
        for (uint64_t i = lo; i < hi; i++)
            be64_put(enc + (i - lo) * 8, d->l1[i]);
        rc = dwrite(d, enc, (hi - lo) * 8, d->h.l1_table_offset + lo * 8);
        free(enc);
        if (rc < 0)
            return rc;
        d->l1_dirty_lo = d->l1_dirty_hi = 0;
    }
    /* 5. drop references no durable table holds any more (not while data I/O runs unlocked:
     * a freed cluster could be reused under it) */
    if (d->npending && !d->inflight) {
        if ((rc = dsync(d)) < 0)
            return rc;
        size_t n = d->npending;
        d->npending = 0;
        for (size_t i = 0; i < n; i++) {
            struct pending_free *p = &d->pending[i];
            uint64_t c0 = p->start / d->cs, c1 = (p->start + p->len - 1) / d->cs;
            for (uint64_t c = c0; c <= c1; c++) {
                rc = refcount_add(d, c, -1, UINT64_MAX);
                if (rc < 0)
                    return rc;
            }
        }
        d->dcache_valid = 0;
        if ((rc = rb_write_all(d)) < 0)
            return rc;
    }
    return 0;
}

/* Cache slot of the L2 table at host offset `off`. */
static int l2_load(struct kova_disk *d, uint64_t off, int *slot)
{
    int i = tcache_find(&d->l2c, off);
    if (i >= 0) {
        *slot = i;
        return 0;
    }
    i = tcache_victim(&d->l2c);
    if (i < 0)
        return i;
    if (d->l2c.slots[i].used && d->l2c.slots[i].dirty) {
        int rc = flush_meta(d);
        if (rc < 0)
            return rc;
    }
    tcache_unlink(&d->l2c, i);
    int rc = kd_pread_full(d->fd, d->l2c.slots[i].data, d->cs, off);
    if (rc < 0)
        return kd_error(d, rc, "reading L2 table: %s", strerror(-rc));
    tcache_link(&d->l2c, i, off);
    *slot = i;
    return 0;
}

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
    int rc = l2_load(d, off, &slot);
    if (rc < 0)
        return rc;
    lk->raw = be64_get(d->l2c.slots[slot].data + l2i * 8);
    lk->e = qcow2_decode_l2(lk->raw, d->cb);
    if (lk->e.type == QCOW2_CL_INVALID)
        return kd_error(d, -EIO, "corrupt image: bad L2 entry 0x%016llx",
                        (unsigned long long)lk->raw);
    return 0;
}

/* L2 table of `l1i` ready for modification (allocated, or copied when shared). */
static int l2_writable(struct kova_disk *d, uint64_t l1i, int *slot)
{
    uint64_t l1e = d->l1[l1i];
    uint64_t off = l1e & QCOW2_OFFSET_MASK, noff;
    int rc;
    if (off && (l1e & QCOW2_OFLAG_COPIED))
        return l2_load(d, off, slot);
    if (!off) {
        if ((rc = alloc_cluster(d, &noff)) < 0)
            return rc;
        int i = tcache_victim(&d->l2c);
        if (i < 0)
            return i;
        if (d->l2c.slots[i].used && d->l2c.slots[i].dirty && (rc = flush_meta(d)) < 0)
            return rc;
        tcache_unlink(&d->l2c, i);
        memset(d->l2c.slots[i].data, 0, d->cs);
        tcache_link(&d->l2c, i, noff);
        d->l2c.slots[i].dirty = 1;
        *slot = i;
    } else {
        /* Shared with a snapshot: copy it; the copy references the same clusters, whose
         * refcounts already count this image's reference. */
        int i;
        if ((rc = l2_load(d, off, &i)) < 0)
            return rc;
        if ((rc = alloc_cluster(d, &noff)) < 0)
            return rc;
        i = tcache_find(&d->l2c, off);
        if (i < 0 && (rc = l2_load(d, off, &i)) < 0)
            return rc;
        tcache_unlink(&d->l2c, i);
        tcache_link(&d->l2c, i, noff);
        d->l2c.slots[i].dirty = 1;
        if ((rc = pending_add(d, off, d->cs)) < 0)
            return rc;
        *slot = i;
    }
    d->l1[l1i] = noff | QCOW2_OFLAG_COPIED;
    l1_mark(d, l1i);
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

static int decompress(struct kova_disk *d, const struct qcow2_l2e *e)
{
    if (d->dcache_valid && d->dcache_key == e->offset)
        return 0;
    size_t clen = (size_t)e->csize;
    if (clen > 2 * d->cs + 512)
        return kd_error(d, -EIO, "corrupt image: compressed cluster too large");
    int rc = kd_pread_full(d->fd, d->cbuf, clen, e->offset);
    if (rc < 0)
        return kd_error(d, rc, "reading compressed cluster: %s", strerror(-rc));
    d->dcache_valid = 0;
    if (d->h.compression_type == 0) {
        z_stream zs;
        memset(&zs, 0, sizeof(zs));
        if (inflateInit2(&zs, -12) != Z_OK)
            return kd_error(d, -ENOMEM, "zlib init failed");
        zs.next_in = d->cbuf;
        zs.avail_in = (uInt)clen;
        zs.next_out = d->dcache;
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
        ZSTD_outBuffer out = {d->dcache, d->cs, 0};
        for (;;) {
            size_t r = ZSTD_decompressStream(z, &out, &in);
            if (ZSTD_isError(r))
                return kd_error(d, -EIO, "corrupt image: bad zstd data at 0x%llx",
                                (unsigned long long)e->offset);
            if (out.pos == out.size)
                break;
            if (r == 0 || in.pos == in.size)
                return kd_error(d, -EIO, "corrupt image: short zstd data at 0x%llx",
                                (unsigned long long)e->offset);
        }
    }
    d->dcache_key = e->offset;
    d->dcache_valid = 1;
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
    case QCOW2_CL_COMPRESSED:
        if ((rc = decompress(d, e)) < 0)
            return rc;
        memcpy(buf, d->dcache + in, n);
        return 0;
    default:
        return kd_error(d, -EIO, "corrupt image: invalid cluster");
    }
}

/* Can the cluster after a run of `prev` be read together with it? */
static int same_run(const struct kova_disk *d, const struct qcow2_l2e *prev, uint64_t run_len,
                    uint64_t in, const struct qcow2_l2e *next)
{
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

/* Reads len bytes at off into the vector at c. Data reads run with the lock dropped; clusters
 * are not freed meanwhile (pending frees wait until no such I/O is in flight). */
static int qcow2_preadv(struct kova_disk *d, struct iovc *c, size_t len, uint64_t off)
{
    while (len) {
        uint64_t in = off & (d->cs - 1);
        size_t n = (size_t)(d->cs - in);
        if (n > len)
            n = len;
        struct lookup lk, nx;
        int rc = lookup(d, off, &lk);
        if (rc < 0)
            return rc;
        /* Contiguous host clusters, runs of unallocated or zero clusters: one request. */
        while (n < len && lk.e.type != QCOW2_CL_COMPRESSED) {
            if ((rc = lookup(d, off + n, &nx)) < 0)
                return rc;
            if (!same_run(d, &lk.e, n, in, &nx.e))
                break;
            n += (size_t)(len - n < d->cs ? len - n : d->cs);
        }
        if (lk.e.type == QCOW2_CL_NORMAL ||
            (lk.e.type == QCOW2_CL_UNALLOCATED && d->backing && off < d->backing->size)) {
            size_t m = n;
            if (lk.e.type == QCOW2_CL_UNALLOCATED && off + m > d->backing->size)
                m = (size_t)(d->backing->size - off);
            int k = iovc_slice(c, m);
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
            iovc_copy(c, NULL, n - m, 1);
        } else if (lk.e.type == QCOW2_CL_COMPRESSED) {
            if ((rc = decompress(d, &lk.e)) < 0)
                return rc;
            iovc_copy(c, d->dcache + in, n, 1);
        } else if (lk.e.type == QCOW2_CL_UNALLOCATED || lk.e.type == QCOW2_CL_ZERO_PLAIN ||
                   lk.e.type == QCOW2_CL_ZERO_ALLOC) {
            iovc_copy(c, NULL, n, 1);
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
    if (lk.e.type == QCOW2_CL_NORMAL && lk.e.copied && lk.l1_copied) {
        if (src)
            return dwrite(d, src, n, lk.e.offset + in);
        memset(d->clbuf, 0, n);
        return dwrite(d, d->clbuf, n, lk.e.offset + in);
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
    if (!reuse && (rc = alloc_cluster(d, &host)) < 0)
        return rc;
    if ((rc = dwrite(d, data, (size_t)d->cs, host)) < 0)
        return rc;
    if ((rc = l2_set(d, cvoff, host | QCOW2_OFLAG_COPIED)) < 0)
        return rc;
    if (!reuse && (rc = free_entry_clusters(d, &lk.e)) < 0)
        return rc;
    if (d->npending > PENDING_FLUSH_AT && !d->inflight)
        return flush_meta(d);
    return 0;
}

#define BATCH_MAX 64

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
static long write_new_run(struct kova_disk *d, struct iovc *c, size_t len, uint64_t off)
{
    struct qcow2_l2e olds[BATCH_MAX];
    uint64_t host0 = 0, h;
    size_t cnt = 0;
    int rc;
    while (cnt < BATCH_MAX && len - cnt * d->cs >= d->cs) {
        struct lookup lk;
        if ((rc = lookup(d, off + cnt * d->cs, &lk)) < 0)
            return rc;
        if ((lk.e.type == QCOW2_CL_NORMAL || lk.e.type == QCOW2_CL_ZERO_ALLOC) && lk.e.copied &&
            lk.l1_copied)
            break; /* written in place */
        if ((rc = alloc_cluster(d, &h)) < 0)
            return rc;
        if (cnt && h != host0 + cnt * d->cs) {
            /* not contiguous: give it back (nothing refers to it yet) and stop here */
            if ((rc = refcount_add(d, h / d->cs, -1, UINT64_MAX)) < 0)
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
    struct iovc save = *c;
    int k = iovc_slice(c, cnt * d->cs);
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
        if ((rc = free_entry_clusters(d, &olds[i])) < 0)
            return rc;
    }
    if (d->npending > PENDING_FLUSH_AT && !d->inflight && (rc = flush_meta(d)) < 0)
        return rc;
    return (long)(cnt * d->cs);
}

/* Bytes at off (up to len) that can be written in place as one request: allocated, unshared,
 * host-contiguous clusters. 0 when the first cluster is not such a one. */
static int inplace_run(struct kova_disk *d, size_t len, uint64_t off, uint64_t *host, size_t *run)
{
    uint64_t in = off & (d->cs - 1);
    size_t n = (size_t)(d->cs - in);
    if (n > len)
        n = len;
    struct lookup lk, nx;
    *run = 0;
    int rc = lookup(d, off, &lk);
    if (rc < 0)
        return rc;
    if (!(lk.e.type == QCOW2_CL_NORMAL && lk.e.copied && lk.l1_copied))
        return 0;
    while (n < len) {
        if ((rc = lookup(d, off + n, &nx)) < 0)
            return rc;
        if (!(nx.e.type == QCOW2_CL_NORMAL && nx.e.copied && nx.l1_copied &&
              nx.e.offset == lk.e.offset + in + n))
            break;
        n += (size_t)(len - n < d->cs ? len - n : d->cs);
    }
    *host = lk.e.offset + in;
    *run = n;
    return 0;
}

/* Writes len bytes from the vector at c (NULL: zeros) at off. */
static int qcow2_pwritev(struct kova_disk *d, struct iovc *c, size_t len, uint64_t off)
{
    while (len) {
        wait_allocating(d, off, len);
        uint64_t in = off & (d->cs - 1);
        size_t n = (size_t)(d->cs - in);
        if (n > len)
            n = len;
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
                /* In place, with the lock dropped (see qcow2_preadv). A flush always ends with
                 * fdatasync, so `unsynced` is only a hint here. */
                int k = iovc_slice(c, run);
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
            iovc_copy(c, d->wbuf, n, 0);
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

static int qcow2_pwrite(struct kova_disk *d, const uint8_t *buf, size_t len, uint64_t off)
{
    if (!buf)
        return qcow2_pwritev(d, NULL, len, off);
    struct iovec v = {(void *)(uintptr_t)buf, len}, s;
    struct iovc c = {&v, 1, 0, 0, &s};
    return qcow2_pwritev(d, &c, len, off);
}

/* Whole-cluster discard (zeroes=0) or zeroing (zeroes=1); partial clusters: zeroing writes
 * zeros, discard leaves them. */
static int qcow2_unmap(struct kova_disk *d, uint64_t off, uint64_t len, int zeroes)
{
    int v3 = d->h.version >= 3;
    int has_backing = d->h.backing_file[0] != 0;
    while (len) {
        wait_allocating(d, off, len);
        uint64_t in = off & (d->cs - 1);
        uint64_t n = d->cs - in;
        if (n > len)
            n = len;
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
                    rc = qcow2_pwrite(d, NULL, (size_t)n, off);
            }
        } else {
            struct lookup lk;
            rc = lookup(d, off, &lk);
            uint64_t ne = (has_backing || (zeroes && v3)) ? QCOW2_OFLAG_ZERO : 0;
            if (rc == 0 && !(lk.e.type == QCOW2_CL_ZERO_PLAIN ||
                             (lk.e.type == QCOW2_CL_UNALLOCATED && ne == 0))) {
                rc = l2_set(d, off, ne);
                if (rc == 0)
                    rc = free_entry_clusters(d, &lk.e);
                if (rc == 0 && d->npending > PENDING_FLUSH_AT && !d->inflight)
                    rc = flush_meta(d);
            }
        }
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

/* ---------------------------------------------------------------- open / close */

struct chain {
    dev_t dev[KOVA_DISK_MAX_CHAIN + 1];
    ino_t ino[KOVA_DISK_MAX_CHAIN + 1];
    int n;
};

static int open_any(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                    unsigned flags, struct chain *ch, char *err, size_t errlen);

static int qcow2_open(struct kova_disk *d, unsigned flags, struct chain *ch, char *err,
                      size_t errlen)
{
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return kova_err(err, errlen, -errno, "%s: %s", d->path, strerror(errno));
    uint64_t fsize = (uint64_t)st.st_size;
    uint8_t small[512];
    int rc = kd_pread_full(d->fd, small, sizeof(small), 0);
    if (rc < 0)
        return kova_err(err, errlen, rc, "%s: %s", d->path, strerror(-rc));
    if (fsize < QCOW2_V2_HEADER_LEN)
        return kova_err(err, errlen, -EINVAL, "%s: file too small for a qcow2 header", d->path);
    uint32_t cb = be32_get(small + 20);
    if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS)
        cb = QCOW2_MIN_CLUSTER_BITS; /* the parser names the error */
    uint64_t cs = 1ull << cb;
    uint8_t *hbuf = malloc(cs);
    if (!hbuf)
        return -ENOMEM;
    rc = kd_pread_full(d->fd, hbuf, cs, 0);
    char perr[200] = "";
    if (rc == 0)
        rc = qcow2_parse_header(hbuf, cs, &d->h, perr, sizeof(perr));
    free(hbuf);
    if (rc < 0)
        return kova_err(err, errlen, rc, "%s: %s", d->path, perr[0] ? perr : strerror(-rc));

    struct qcow2_header *h = &d->h;
    d->cb = h->cluster_bits;
    d->cs = cs = 1ull << d->cb;
    d->l2_bits = d->cb - 3;
    d->size = h->size;
    d->epb = (cs * 8) >> h->refcount_order;
    d->refmax = h->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << h->refcount_order)) - 1;

    if (!d->ro && (h->incompatible & QCOW2_INCOMPAT_DIRTY))
        return kova_err(err, errlen, -ENOTSUP,
                        "%s: image has the dirty bit set (lazy refcounts); repair it with "
                        "'qemu-img check -r all' before opening it read-write",
                        d->path);
    if (!d->ro && (h->incompatible & QCOW2_INCOMPAT_CORRUPT))
        return kova_err(err, errlen, -EIO,
                        "%s: image is marked corrupt; it can only be opened read-only", d->path);

    uint64_t l1_bytes = (uint64_t)h->l1_size * 8;
    if (h->l1_size && h->l1_table_offset + l1_bytes > fsize)
        return kova_err(err, errlen, -EINVAL, "%s: L1 table extends beyond end of file", d->path);
    uint64_t rt_bytes = (uint64_t)h->refcount_table_clusters * cs;
    if (h->refcount_table_offset + rt_bytes > fsize + cs)
        return kova_err(err, errlen, -EINVAL, "%s: refcount table extends beyond end of file",
                        d->path);
    if (h->l1_size && h->l1_table_offset < cs)
        return kova_err(err, errlen, -EINVAL, "%s: L1 table overlaps the header", d->path);
    if (h->refcount_table_offset < cs)
        return kova_err(err, errlen, -EINVAL, "%s: refcount table overlaps the header", d->path);

    uint8_t *raw = malloc(l1_bytes > rt_bytes ? l1_bytes : rt_bytes);
    d->l1 = calloc(h->l1_size ? h->l1_size : 1, 8);
    d->rt_entries = rt_bytes / 8;
    d->rt = calloc(d->rt_entries, 8);
    if (!raw || !d->l1 || !d->rt) {
        free(raw);
        return -ENOMEM;
    }
    rc = kd_pread_full(d->fd, raw, l1_bytes, h->l1_table_offset);
    for (uint64_t i = 0; rc == 0 && i < h->l1_size; i++)
        d->l1[i] = be64_get(raw + i * 8);
    if (rc == 0)
        rc = kd_pread_full(d->fd, raw, rt_bytes, h->refcount_table_offset);
    for (uint64_t i = 0; rc == 0 && i < d->rt_entries; i++)
        d->rt[i] = be64_get(raw + i * 8);
    free(raw);
    if (rc < 0)
        return kova_err(err, errlen, rc, "%s: reading tables: %s", d->path, strerror(-rc));

    /* Caches: the L2 cache covers the whole disk when it fits in 32 MiB. */
    uint64_t per_l2 = 1ull << (d->cb + d->l2_bits);
    uint64_t n_l2 = (h->size + per_l2 - 1) / per_l2;
    uint64_t max_l2 = L2_CACHE_MAX_BYTES / cs;
    if (n_l2 > max_l2)
        n_l2 = max_l2;
    if (n_l2 < 4)
        n_l2 = 4;
    uint64_t n_rb = (fsize / cs) / d->epb + 4;
    uint64_t max_rb = RB_CACHE_MAX_BYTES / cs;
    if (n_rb > max_rb)
        n_rb = max_rb;
    if (n_rb < 4)
        n_rb = 4;
    if (tcache_init(&d->l2c, (size_t)n_l2, (size_t)cs) < 0 ||
        tcache_init(&d->rbc, (size_t)n_rb, (size_t)cs) < 0)
        return -ENOMEM;
    d->clbuf = malloc(cs);
    d->wbuf = malloc(cs);
    d->cbuf = malloc(2 * cs + 512);
    d->dcache = malloc(cs);
    if (!d->clbuf || !d->wbuf || !d->cbuf || !d->dcache)
        return -ENOMEM;
    d->end_cluster = (fsize + cs - 1) / cs;
    d->free_hint = 1;

    if (!d->ro && h->version >= 3 && h->autoclear) {
        /* Bitmaps and other autoclear data are not maintained: invalidate them. */
        uint8_t z[8] = {0};
        if ((rc = dwrite(d, z, 8, 88)) < 0 || (rc = dsync(d)) < 0)
            return kova_err(err, errlen, rc, "%s: %s", d->path, d->errmsg);
        h->autoclear = 0;
    }

    if (h->backing_file[0] && !(flags & KOVA_DISK_NO_BACKING) && !d->nopath) {
        enum kova_disk_format bf = kova_disk_format_parse(h->backing_format);
        if (!h->backing_format[0])
            return kova_err(err, errlen, -ENOTSUP,
                            "%s: backing file '%s' has no recorded format (kova does "
                            "not probe; record it with qemu-img rebase -u -F FMT)",
                            d->path, h->backing_file);
        if (!bf)
            return kova_err(err, errlen, -ENOTSUP, "%s: backing format '%s' is not supported",
                            d->path, h->backing_format);
        char bpath[8192];
        if (h->backing_file[0] == '/') {
            snprintf(bpath, sizeof(bpath), "%s", h->backing_file);
        } else {
            const char *slash = strrchr(d->path, '/');
            if (slash)
                snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - d->path), d->path,
                         h->backing_file);
            else
                snprintf(bpath, sizeof(bpath), "%s", h->backing_file);
        }
        if (ch->n > KOVA_DISK_MAX_CHAIN)
            return kova_err(err, errlen, -ELOOP, "%s: backing chain longer than %d images", d->path,
                            KOVA_DISK_MAX_CHAIN);
        rc = open_any(&d->backing, -1, bpath, bf, KOVA_DISK_RDONLY, ch, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int open_any(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                    unsigned flags, struct chain *ch, char *err, size_t errlen)
{
    *out = NULL;
    if (fmt != KOVA_DISK_RAW && fmt != KOVA_DISK_QCOW2)
        return kova_err(err, errlen, -EINVAL, "unknown disk format");
    struct kova_disk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    int rc;
    d->fd = -1;
    d->fmt = fmt;
    d->ro = (flags & KOVA_DISK_RDONLY) != 0;
    snprintf(d->path, sizeof(d->path), "%s", path ? path : "(fd)");
    d->nopath = path == NULL;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->alloc_cond, NULL);
    if (fd >= 0) {
        d->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (d->fd < 0) {
            rc = kova_err(err, errlen, -errno, "dup: %s", strerror(errno));
            goto fail;
        }
    } else {
        d->fd = open(path, (d->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (d->fd < 0) {
            rc = kova_err(err, errlen, -errno, "cannot open '%s': %s", path, strerror(errno));
            goto fail;
        }
    }
    struct stat st;
    if (fstat(d->fd, &st) < 0) {
        rc = kova_err(err, errlen, -errno, "%s: %s", d->path, strerror(errno));
        goto fail;
    }
    for (int i = 0; i < ch->n; i++)
        if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino) {
            rc = kova_err(err, errlen, -ELOOP, "%s: backing chain loops", d->path);
            goto fail;
        }
    if (ch->n <= KOVA_DISK_MAX_CHAIN) {
        ch->dev[ch->n] = st.st_dev;
        ch->ino[ch->n] = st.st_ino;
        ch->n++;
    }
    if (!d->ro && flock(d->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = kova_err(err, errlen, errno == EWOULDBLOCK ? -EBUSY : -errno,
                      "%s: image is in use by another process", d->path);
        goto fail;
    }
    if (fmt == KOVA_DISK_RAW) {
        off_t end = lseek(d->fd, 0, SEEK_END);
        if (end < 0) {
            rc = kova_err(err, errlen, -errno, "%s: %s", d->path, strerror(errno));
            goto fail;
        }
        d->size = (uint64_t)end;
    } else {
        if ((rc = qcow2_open(d, flags, ch, err, errlen)) < 0)
            goto fail;
        if (d->h.backing_file[0] && !path && !(flags & KOVA_DISK_NO_BACKING)) {
            rc = kova_err(err, errlen, -EINVAL,
                          "image has a backing file but no path was given to find it");
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    kova_disk_close(d);
    return rc;
}

int kova_disk_open(struct kova_disk **out, const char *path, enum kova_disk_format fmt,
                   unsigned flags, char *err, size_t errlen)
{
    struct chain ch = {.n = 0};
    if (!path)
        return kova_err(err, errlen, -EINVAL, "no path");
    return open_any(out, -1, path, fmt, flags, &ch, err, errlen);
}

int kova_disk_open_fd(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                      unsigned flags, char *err, size_t errlen)
{
    struct chain ch = {.n = 0};
    if (fd < 0)
        return kova_err(err, errlen, -EBADF, "bad file descriptor");
    return open_any(out, fd, path, fmt, flags, &ch, err, errlen);
}

void kova_disk_close(struct kova_disk *d)
{
    if (!d)
        return;
    if (d->fd >= 0 && !d->ro) {
        flush_meta(d);
        dsync(d);
    }
    if (d->backing)
        kova_disk_close(d->backing);
    tcache_free(&d->l2c);
    tcache_free(&d->rbc);
    free(d->l1);
    free(d->rt);
    free(d->pending);
    free(d->clbuf);
    free(d->wbuf);
    free(d->cbuf);
    free(d->dcache);
    if (d->zstd_dctx)
        ZSTD_freeDCtx(d->zstd_dctx);
    if (d->fd >= 0)
        close(d->fd);
    pthread_cond_destroy(&d->alloc_cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* ---------------------------------------------------------------- public I/O */

uint64_t kova_disk_size(const struct kova_disk *d)
{
    return d->size;
}

enum kova_disk_format kova_disk_format(const struct kova_disk *d)
{
    return d->fmt;
}

int kova_disk_readonly(const struct kova_disk *d)
{
    return d->ro;
}

uint32_t kova_disk_granularity(const struct kova_disk *d)
{
    return d->fmt == KOVA_DISK_QCOW2 ? (uint32_t)d->cs : 4096;
}

const char *kova_disk_last_error(struct kova_disk *d)
{
    return d->errmsg;
}

static int range_ok(const struct kova_disk *d, uint64_t off, uint64_t len)
{
    return off <= d->size && len <= d->size - off;
}

/* One read or write of the bytes described by iov (total bytes, range already checked). */
static int disk_rw(struct kova_disk *d, const struct iovec *iov, int iovcnt, uint64_t total,
                   uint64_t off, int write)
{
    struct iovec stack[16];
    struct iovec *s = stack;
    if (iovcnt > (int)(sizeof(stack) / sizeof(stack[0])) &&
        !(s = malloc((size_t)iovcnt * sizeof(*s))))
        return -ENOMEM;
    int rc;
    if (d->fmt == KOVA_DISK_RAW) {
        /* No lock for the data: only the error message and the sync hint need it. */
        memcpy(s, iov, (size_t)iovcnt * sizeof(*s));
        rc = kd_rwv_full(d->fd, s, iovcnt, off, write);
        if (rc < 0 || write) {
            pthread_mutex_lock(&d->lock);
            if (rc < 0)
                kd_error(d, rc, "%s at %llu: %s", write ? "write" : "read", (unsigned long long)off,
                         strerror(-rc));
            else
                d->unsynced = 1;
            pthread_mutex_unlock(&d->lock);
        }
    } else {
        struct iovc c = {iov, iovcnt, 0, 0, s};
        pthread_mutex_lock(&d->lock);
        rc = write ? qcow2_pwritev(d, &c, (size_t)total, off)
                   : qcow2_preadv(d, &c, (size_t)total, off);
        pthread_mutex_unlock(&d->lock);
    }
    if (s != stack)
        free(s);
    return rc;
}

int kova_disk_pread(struct kova_disk *d, void *buf, size_t len, uint64_t off)
{
    if (!range_ok(d, off, len))
        return -EINVAL;
    struct iovec v = {buf, len};
    return disk_rw(d, &v, 1, len, off, 0);
}

int kova_disk_pwrite(struct kova_disk *d, const void *buf, size_t len, uint64_t off)
{
    if (d->ro)
        return -EROFS;
    if (d->broken)
        return -EIO;
    if (!range_ok(d, off, len))
        return -EINVAL;
    if (!buf && len)
        return -EINVAL;
    struct iovec v = {(void *)(uintptr_t)buf, len};
    return disk_rw(d, &v, 1, len, off, 1);
}

static int iov_total(const struct iovec *iov, int iovcnt, uint64_t *total)
{
    *total = 0;
    if (iovcnt < 0 || (iovcnt > 0 && !iov))
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > UINT64_MAX - *total)
            return -EINVAL;
        *total += iov[i].iov_len;
    }
    return 0;
}

int kova_disk_preadv(struct kova_disk *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
    uint64_t total;
    if (iov_total(iov, iovcnt, &total) < 0 || !range_ok(d, off, total))
        return -EINVAL;
    return disk_rw(d, iov, iovcnt, total, off, 0);
}

int kova_disk_pwritev(struct kova_disk *d, const struct iovec *iov, int iovcnt, uint64_t off)
{
    uint64_t total;
    if (d->ro)
        return -EROFS;
    if (d->broken)
        return -EIO;
    if (iov_total(iov, iovcnt, &total) < 0 || !range_ok(d, off, total))
        return -EINVAL;
    return disk_rw(d, iov, iovcnt, total, off, 1);
}

int kova_disk_flush(struct kova_disk *d)
{
    if (d->ro)
        return 0;
    pthread_mutex_lock(&d->lock);
    int rc = flush_meta(d);
    if (rc == 0) {
        d->unsynced = 1; /* always reach the disk: in-place writes may be pending */
        rc = dsync(d);
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int raw_zero(struct kova_disk *d, uint64_t off, uint64_t len, int punch)
{
    int mode = punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE;
    if (fallocate(d->fd, mode, (off_t)off, (off_t)len) == 0) {
        d->unsynced = 1;
        return 0;
    }
    if (punch)
        return 0; /* discard is advisory */
    if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0) {
        d->unsynced = 1;
        return 0;
    }
    static const uint8_t zeros[65536];
    while (len) {
        size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;
        int rc = dwrite(d, zeros, n, off);
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

int kova_disk_discard(struct kova_disk *d, uint64_t off, uint64_t len)
{
    if (d->ro)
        return -EROFS;
    if (d->broken)
        return -EIO;
    if (!range_ok(d, off, len))
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    int rc = d->fmt == KOVA_DISK_RAW ? raw_zero(d, off, len, 1) : qcow2_unmap(d, off, len, 0);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int kova_disk_write_zeroes(struct kova_disk *d, uint64_t off, uint64_t len)
{
    if (d->ro)
        return -EROFS;
    if (d->broken)
        return -EIO;
    if (!range_ok(d, off, len))
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    int rc = d->fmt == KOVA_DISK_RAW ? raw_zero(d, off, len, 0) : qcow2_unmap(d, off, len, 1);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int kova_qcow2_get_info(struct kova_disk *d, struct kova_qcow2_info *info)
{
    if (d->fmt != KOVA_DISK_QCOW2)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    info->version = d->h.version;
    info->cluster_bits = d->h.cluster_bits;
    info->refcount_bits = 1u << d->h.refcount_order;
    info->size = d->h.size;
    info->incompatible = d->h.incompatible;
    info->compatible = d->h.compatible;
    info->autoclear = d->h.autoclear;
    info->compression_type = d->h.compression_type;
    info->nb_snapshots = d->h.nb_snapshots;
    snprintf(info->backing_file, sizeof(info->backing_file), "%s", d->h.backing_file);
    snprintf(info->backing_format, sizeof(info->backing_format), "%s", d->h.backing_format);
    struct stat st;
    if (fstat(d->fd, &st) == 0)
        info->file_size = (uint64_t)st.st_blocks * 512;
    return 0;
}
