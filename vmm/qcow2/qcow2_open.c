/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 open and close, the qcow2 ops table, and kova_qcow2_get_info().
 *
 * Open validates before anything is trusted: the header (qcow2_parse_header), then that the L1
 * and refcount tables lie inside the file and clear of the header; a writable open refuses
 * dirty (lazy refcounts) and corrupt-marked images and clears autoclear bits it does not
 * maintain. Backing files are opened read-only through kd_open_chain(), which bounds the chain
 * and detects loops. After a successful open the L1 and refcount tables are in memory in host
 * order and the caches and cluster buffers are allocated; close frees whatever a part-way open
 * left.
 */
#include "kova/common.h"
#include "qcow2_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#define L2_CACHE_MAX_BYTES (32u << 20)
#define RB_CACHE_MAX_BYTES (8u << 20)

/* Reads and parses the header; sets the geometry derived from it. */
static int read_header(struct kova_disk *d, uint64_t fsize, char *err, size_t errlen)
{
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
    d->cs = 1ull << d->cb;
    d->l2_bits = d->cb - 3;
    d->size = h->size;
    d->epb = (d->cs * 8) >> h->refcount_order;
    d->refmax = h->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << h->refcount_order)) - 1;
    return 0;
}

/* Checks where the L1 and refcount tables lie and loads them (host order). */
static int load_tables(struct kova_disk *d, uint64_t fsize, char *err, size_t errlen)
{
    struct qcow2_header *h = &d->h;
    uint64_t cs = d->cs;
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
    int rc = kd_pread_full(d->fd, raw, l1_bytes, h->l1_table_offset);
    for (uint64_t i = 0; rc == 0 && i < h->l1_size; i++)
        d->l1[i] = be64_get(raw + i * 8);
    if (rc == 0)
        rc = kd_pread_full(d->fd, raw, rt_bytes, h->refcount_table_offset);
    for (uint64_t i = 0; rc == 0 && i < d->rt_entries; i++)
        d->rt[i] = be64_get(raw + i * 8);
    free(raw);
    if (rc < 0)
        return kova_err(err, errlen, rc, "%s: reading tables: %s", d->path, strerror(-rc));
    return 0;
}

/* A dirty L2 table may be written only after the data and refcounts it depends on: evicting
 * one flushes all metadata in order (which leaves every L2 table clean). */
static int l2_writeback(struct kova_disk *d, struct tcache *c, int slot)
{
    return qc_flush_meta(d);
}

/* Caches and cluster buffers. The L2 cache covers the whole disk when it fits in 32 MiB. */
static int alloc_caches(struct kova_disk *d, uint64_t fsize)
{
    uint64_t cs = d->cs;
    uint64_t per_l2 = 1ull << (d->cb + d->l2_bits);
    uint64_t n_l2 = (d->h.size + per_l2 - 1) / per_l2;
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
    if (qc_cache_init(&d->l2c, (size_t)n_l2, (size_t)cs, "L2 table", l2_writeback) < 0 ||
        qc_cache_init(&d->rbc, (size_t)n_rb, (size_t)cs, "refcount block", qc_cache_write_slot) < 0)
        return -ENOMEM;
    d->clbuf = malloc(cs);
    d->wbuf = malloc(cs);
    d->cbuf = malloc(2 * cs + 512);
    uint64_t nslots = QC_DCACHE_BYTES / cs;
    d->ndslots = nslots < 1 ? 1 : nslots > QC_DCACHE_SLOTS ? QC_DCACHE_SLOTS : (unsigned)nslots;
    d->dslots = calloc(d->ndslots, sizeof(*d->dslots));
    if (!d->clbuf || !d->wbuf || !d->cbuf || !d->dslots)
        return -ENOMEM;
    d->end_cluster = (fsize + cs - 1) / cs;
    d->free_hint = 1;
    return 0;
}

/* Opens the backing file named in the header (read-only; a relative name is resolved against
 * the image's directory). */
static int open_backing(struct kova_disk *d, struct kd_chain *ch, char *err, size_t errlen)
{
    struct qcow2_header *h = &d->h;
    if (d->nopath)
        return kova_err(err, errlen, -EINVAL,
                        "image has a backing file but no path was given to find it");
    enum kova_disk_format bf = kova_disk_format_parse(h->backing_format);
    if (!h->backing_format[0])
        return kova_err(err, errlen, -ENOTSUP,
                        "%s: backing file '%s' has no recorded format (kova does "
                        "not probe; record it with qemu-img rebase -u -F FMT)",
                        d->path, h->backing_file);
    if (!bf)
        return kova_err(err, errlen, -ENOTSUP, "%s: backing format '%s' is not supported", d->path,
                        h->backing_format);
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
    return kd_open_chain(&d->backing, -1, bpath, bf, KOVA_DISK_RDONLY, ch, err, errlen);
}

static int qc_open(struct kova_disk *d, unsigned flags, struct kd_chain *ch, char *err,
                   size_t errlen)
{
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return kova_err(err, errlen, -errno, "%s: %s", d->path, strerror(errno));
    uint64_t fsize = (uint64_t)st.st_size;
    int rc = read_header(d, fsize, err, errlen);
    if (rc < 0)
        return rc;
    struct qcow2_header *h = &d->h;
    if (!d->ro && (h->incompatible & QCOW2_INCOMPAT_DIRTY))
        return kova_err(err, errlen, -ENOTSUP,
                        "%s: image has the dirty bit set (lazy refcounts); repair it with "
                        "'qemu-img check -r all' before opening it read-write",
                        d->path);
    if (!d->ro && (h->incompatible & QCOW2_INCOMPAT_CORRUPT))
        return kova_err(err, errlen, -EIO,
                        "%s: image is marked corrupt; it can only be opened read-only", d->path);
    if ((rc = load_tables(d, fsize, err, errlen)) < 0 || (rc = alloc_caches(d, fsize)) < 0)
        return rc;

    if (!d->ro && h->version >= 3 && h->autoclear) {
        /* Bitmaps and other autoclear data are not maintained: invalidate them. */
        uint8_t z[8] = {0};
        if ((rc = kd_write(d, z, 8, 88)) < 0 || (rc = kd_sync(d)) < 0)
            return kova_err(err, errlen, rc, "%s: %s", d->path, d->errmsg);
        h->autoclear = 0;
    }
    if (h->backing_file[0] && !(flags & KOVA_DISK_NO_BACKING))
        return open_backing(d, ch, err, errlen);
    return 0;
}

static void qc_close(struct kova_disk *d)
{
    if (d->backing)
        kova_disk_close(d->backing);
    qc_cache_free(&d->l2c);
    qc_cache_free(&d->rbc);
    free(d->l1);
    free(d->rt);
    free(d->pending);
    free(d->clbuf);
    free(d->wbuf);
    free(d->cbuf);
    for (unsigned i = 0; d->dslots && i < d->ndslots; i++)
        free(d->dslots[i].data);
    free(d->dslots);
    if (d->zstd_dctx)
        ZSTD_freeDCtx(d->zstd_dctx);
}

static uint32_t qc_granularity(const struct kova_disk *d)
{
    return (uint32_t)d->cs;
}

const struct kova_disk_ops kd_qcow2_ops = {
    .fmt = KOVA_DISK_QCOW2,
    .name = "qcow2",
    .open = qc_open,
    .close = qc_close,
    .preadv = qc_preadv,
    .pwritev = qc_pwritev,
    .flush = qc_flush_meta,
    .unmap = qc_unmap,
    .granularity = qc_granularity,
};

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
