/* SPDX-License-Identifier: Apache-2.0 */
/* Consistency check: rebuild every cluster's refcount from the metadata and compare. */
#include "disk_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ck {
    struct kova_disk *d;
    struct kova_qcow2_check *res;
    void (*report)(const char *, void *);
    void *ctx;
    uint64_t fsize;
    uint64_t nclusters; /* clusters in the file */
    uint32_t *refs;     /* computed references, saturating */
    /* Distinct L2 tables met while walking the L1 tables, each walked once at the end with its
     * multiplicity (a hostile image cannot make the check re-read one table endlessly). */
    struct l2ref {
        uint64_t off; /* 0: empty slot */
        uint64_t count;
        int active;
    } * l2s;
    size_t l2cap, l2used;
};

static void problem(struct ck *k, int corruption, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct ck *k, int corruption, const char *fmt, ...)
{
    if (corruption)
        k->res->corruptions++;
    else
        k->res->leaks++;
    if (k->report) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        k->report(msg, k->ctx);
    }
}

/* Counts `times` references to every cluster touched by [off, off+len). */
static void ref_n(struct ck *k, uint64_t off, uint64_t len, uint64_t times, const char *what)
{
    if (len == 0)
        return;
    uint64_t cs = k->d->cs;
    uint64_t c0 = off / cs, c1 = (off + len - 1) / cs;
    if (off + len < off || c1 >= k->nclusters) {
        problem(k, 1, "ERROR %s at 0x%llx (+%llu) is outside the image file", what,
                (unsigned long long)off, (unsigned long long)len);
        return;
    }
    for (uint64_t c = c0; c <= c1; c++) {
        uint64_t v = (uint64_t)k->refs[c] + times;
        k->refs[c] = v >= UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
}

static void ref(struct ck *k, uint64_t off, uint64_t len, const char *what)
{
    ref_n(k, off, len, 1, what);
}

static size_t l2_slot(uint64_t off, size_t cap)
{
    return (size_t)(((off >> 9) * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static int l2_note(struct ck *k, uint64_t off, int active)
{
    if (k->l2used * 2 >= k->l2cap) {
        size_t ncap = k->l2cap ? k->l2cap * 2 : 1024;
        struct l2ref *n = calloc(ncap, sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (size_t i = 0; i < k->l2cap; i++) {
            if (!k->l2s[i].off)
                continue;
            size_t j = l2_slot(k->l2s[i].off, ncap);
            while (n[j].off)
                j = (j + 1) & (ncap - 1);
            n[j] = k->l2s[i];
        }
        free(k->l2s);
        k->l2s = n;
        k->l2cap = ncap;
    }
    size_t j = l2_slot(off, k->l2cap);
    while (k->l2s[j].off && k->l2s[j].off != off)
        j = (j + 1) & (k->l2cap - 1);
    if (!k->l2s[j].off) {
        k->l2s[j].off = off;
        k->l2used++;
    }
    k->l2s[j].count++;
    k->l2s[j].active |= active;
    return 0;
}

static int in_file(struct ck *k, uint64_t off, uint64_t len)
{
    return off + len >= off && off + len <= k->fsize;
}

static int walk_l2(struct ck *k, uint64_t l2off, int active, uint64_t times, uint8_t *buf)
{
    struct kova_disk *d = k->d;
    int rc = kd_pread_full(d->fd, buf, d->cs, l2off);
    if (rc < 0)
        return rc;
    uint64_t n = d->cs / 8;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t raw = be64_get(buf + i * 8);
        if (!raw)
            continue;
        struct qcow2_l2e e = qcow2_decode_l2(raw, d->cb);
        switch (e.type) {
        case QCOW2_CL_INVALID:
            problem(k, 1, "ERROR L2 entry 0x%016llx (table 0x%llx index %llu) is invalid",
                    (unsigned long long)raw, (unsigned long long)l2off, (unsigned long long)i);
            continue;
        case QCOW2_CL_COMPRESSED:
            ref_n(k, e.cstart, e.csectors * 512, times, "compressed cluster");
            continue;
        case QCOW2_CL_NORMAL:
        case QCOW2_CL_ZERO_ALLOC:
            if (raw & QCOW2_L2_RESERVED)
                problem(k, 1, "ERROR L2 entry 0x%016llx has reserved bits set",
                        (unsigned long long)raw);
            ref_n(k, e.offset, d->cs, times, "data cluster");
            if (active) {
                uint64_t rc1 = 0;
                if (kd_refcount_get(d, e.offset / d->cs, &rc1) < 0)
                    rc1 = 0;
                if ((rc1 == 1) != (e.copied != 0))
                    problem(k, 1,
                            "ERROR OFLAG_COPIED data cluster: l2_entry=%llx "
                            "refcount=%llu",
                            (unsigned long long)raw, (unsigned long long)rc1);
            }
            continue;
        default:
            continue;
        }
    }
    return 0;
}

static int walk_l1(struct ck *k, uint64_t l1off, uint64_t l1n, int active)
{
    struct kova_disk *d = k->d;
    if (l1n == 0)
        return 0;
    if ((l1off & (d->cs - 1)) || !in_file(k, l1off, l1n * 8)) {
        problem(k, 1, "ERROR L1 table at 0x%llx (%llu entries) is invalid",
                (unsigned long long)l1off, (unsigned long long)l1n);
        return 0;
    }
    ref(k, l1off, l1n * 8, "L1 table");
    uint8_t *l1 = malloc(l1n * 8);
    int rc = !l1 ? -ENOMEM : kd_pread_full(d->fd, l1, l1n * 8, l1off);
    for (uint64_t i = 0; rc == 0 && i < l1n; i++) {
        uint64_t e = be64_get(l1 + i * 8);
        uint64_t off = e & QCOW2_OFFSET_MASK;
        if (!off)
            continue;
        if ((e & QCOW2_L1_RESERVED) || (off & (d->cs - 1)) || !in_file(k, off, d->cs)) {
            problem(k, 1, "ERROR L1 entry %llu (0x%016llx) is invalid", (unsigned long long)i,
                    (unsigned long long)e);
            continue;
        }
        ref(k, off, d->cs, "L2 table");
        if (active) {
            uint64_t r = 0;
            if (kd_refcount_get(d, off / d->cs, &r) < 0)
                r = 0;
            if ((r == 1) != ((e & QCOW2_OFLAG_COPIED) != 0))
                problem(k, 1, "ERROR OFLAG_COPIED L2 cluster: l1_entry=%llx refcount=%llu",
                        (unsigned long long)e, (unsigned long long)r);
        }
        rc = l2_note(k, off, active);
    }
    free(l1);
    return rc;
}

static int walk_all_l2(struct ck *k)
{
    uint8_t *buf = malloc(k->d->cs);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < k->l2cap; i++)
        if (k->l2s[i].off)
            rc = walk_l2(k, k->l2s[i].off, k->l2s[i].active, k->l2s[i].count, buf);
    free(buf);
    return rc;
}

static int walk_snapshots(struct ck *k)
{
    struct kova_disk *d = k->d;
    uint64_t off = d->h.snapshots_offset;
    uint64_t pos = off;
    for (uint32_t i = 0; i < d->h.nb_snapshots; i++) {
        uint8_t fixed[40];
        if (!in_file(k, pos, 40)) {
            problem(k, 1, "ERROR snapshot table extends beyond the end of the file");
            return 0;
        }
        int rc = kd_pread_full(d->fd, fixed, 40, pos);
        if (rc < 0)
            return rc;
        uint64_t len = 40ull + be32_get(fixed + 36) + be16_get(fixed + 12) + be16_get(fixed + 14);
        len = (len + 7) & ~7ull;
        struct qcow2_snapshot sn;
        sn.l1_table_offset = be64_get(fixed);
        sn.l1_size = be32_get(fixed + 8);
        if (sn.l1_size > QCOW2_MAX_L1_BYTES / 8) {
            problem(k, 1, "ERROR snapshot %u has an oversized L1 table", i);
        } else if ((rc = walk_l1(k, sn.l1_table_offset, sn.l1_size, 0)) < 0) {
            return rc;
        }
        pos += len;
    }
    if (d->h.nb_snapshots)
        ref(k, off, pos - off, "snapshot table");
    return 0;
}

static int walk_bitmaps(struct ck *k)
{
    struct kova_disk *d = k->d;
    uint64_t doff = d->h.bitmap_directory_offset, dsize = d->h.bitmap_directory_size;
    if (!d->h.has_bitmaps_ext || !(d->h.autoclear & 1) || !dsize)
        return 0;
    if (!in_file(k, doff, dsize) || dsize > (64u << 20)) {
        problem(k, 1, "ERROR bitmap directory is invalid");
        return 0;
    }
    ref(k, doff, dsize, "bitmap directory");
    uint8_t *dir = malloc(dsize);
    if (!dir)
        return -ENOMEM;
    int rc = kd_pread_full(d->fd, dir, dsize, doff);
    for (uint64_t p = 0; rc == 0 && p + 24 <= dsize;) {
        uint64_t toff = be64_get(dir + p);
        uint32_t tsize = be32_get(dir + p + 8);
        uint16_t nlen = be16_get(dir + p + 18);
        uint32_t xlen = be32_get(dir + p + 20);
        if (!in_file(k, toff, (uint64_t)tsize * 8)) {
            problem(k, 1, "ERROR bitmap table is invalid");
            break;
        }
        ref(k, toff, (uint64_t)tsize * 8, "bitmap table");
        uint8_t *t = malloc((size_t)tsize * 8 + 1);
        if (!t) {
            rc = -ENOMEM;
            break;
        }
        rc = kd_pread_full(d->fd, t, (size_t)tsize * 8, toff);
        for (uint32_t j = 0; rc == 0 && j < tsize; j++) {
            uint64_t o = be64_get(t + j * 8) & QCOW2_OFFSET_MASK;
            if (o > 1)
                ref(k, o, d->cs, "bitmap data");
        }
        free(t);
        p += (24ull + nlen + xlen + 7) & ~7ull;
    }
    free(dir);
    return rc;
}

int kova_qcow2_check(struct kova_disk *d, struct kova_qcow2_check *res,
                     void (*report)(const char *msg, void *ctx), void *ctx)
{
    if (d->fmt != KOVA_DISK_QCOW2)
        return -EINVAL;
    memset(res, 0, sizeof(*res));
    if (!d->ro) {
        int frc = kova_disk_flush(d);
        if (frc < 0)
            return frc;
    }
    pthread_mutex_lock(&d->lock);
    struct ck k = {.d = d, .res = res, .report = report, .ctx = ctx};
    struct stat st;
    int rc = 0;
    if (fstat(d->fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    k.fsize = (uint64_t)st.st_size;
    k.nclusters = (k.fsize + d->cs - 1) / d->cs;
    if (k.nclusters > (1ull << 30)) {
        rc = -EFBIG;
        goto out;
    }
    k.refs = calloc(k.nclusters ? k.nclusters : 1, sizeof(uint32_t));
    if (!k.refs) {
        rc = -ENOMEM;
        goto out;
    }
    res->total_clusters = (d->size + d->cs - 1) / d->cs;

    ref(&k, 0, d->cs, "header");
    if ((rc = walk_l1(&k, d->h.l1_table_offset, d->h.l1_size, 1)) < 0)
        goto out;
    ref(&k, d->h.refcount_table_offset, (uint64_t)d->h.refcount_table_clusters * d->cs,
        "refcount table");
    for (uint64_t i = 0; i < d->rt_entries; i++) {
        uint64_t e = d->rt[i], off = e & QCOW2_OFFSET_MASK;
        if (!e)
            continue;
        if ((e & QCOW2_RT_RESERVED) || !off || (off & (d->cs - 1)) || off / d->cs >= k.nclusters) {
            problem(&k, 1, "ERROR refcount block %llu is invalid or outside the image",
                    (unsigned long long)i);
            continue;
        }
        ref(&k, off, d->cs, "refcount block");
    }
    if ((rc = walk_snapshots(&k)) < 0)
        goto out;
    if ((rc = walk_bitmaps(&k)) < 0)
        goto out;
    if ((rc = walk_all_l2(&k)) < 0)
        goto out;

    for (uint64_t c = 0; c < k.nclusters; c++) {
        uint64_t stored = 0;
        uint64_t ri = c / d->epb;
        uint64_t boff = ri < d->rt_entries ? d->rt[ri] & QCOW2_OFFSET_MASK : 0;
        if (boff && !(boff & (d->cs - 1)) && boff / d->cs < k.nclusters)
            kd_refcount_get(d, c, &stored);
        uint64_t want = k.refs[c];
        if (want)
            res->allocated_clusters++;
        if (stored == want)
            continue;
        if (stored > want)
            problem(&k, 0, "Leaked cluster %llu refcount=%llu reference=%llu",
                    (unsigned long long)c, (unsigned long long)stored, (unsigned long long)want);
        else
            problem(&k, 1, "ERROR cluster %llu refcount=%llu reference=%llu", (unsigned long long)c,
                    (unsigned long long)stored, (unsigned long long)want);
    }
out:
    free(k.refs);
    free(k.l2s);
    pthread_mutex_unlock(&d->lock);
    return rc;
}
