/* SPDX-License-Identifier: Apache-2.0 */
/* kova_disk internals shared by disk.c, check.c and create.c. */
#ifndef KOVA_DISK_INTERNAL_H
#define KOVA_DISK_INTERNAL_H

#include "kova/qcow2.h"
#include "qcow2_format.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

/* A cache of cluster-sized metadata tables (L2 tables, refcount blocks) keyed by host offset. */
struct tslot {
    uint64_t key;
    uint64_t lru;
    int used, dirty, next;
    uint8_t *data; /* allocated on first use */
};
struct tcache {
    struct tslot *slots;
    size_t n;
    int *buckets;
    size_t nbuckets;
    uint64_t tick;
    size_t cs;
};

struct pending_free {
    uint64_t start, len; /* bytes; every cluster touched loses one reference */
};

#define KD_MAX_ALLOCATING 16

struct kova_disk {
    pthread_mutex_t lock;
    enum kova_disk_format fmt;
    int fd;
    int ro;
    int nopath; /* opened from a descriptor without a name */
    uint64_t size;
    char path[4096];
    char errmsg[256];
    int unsynced;      /* a write was issued since the last fdatasync */
    int broken;        /* a metadata update failed half-way: no more writes */
    unsigned inflight; /* data reads/writes running with `lock` dropped */
    /* Virtual byte ranges whose new clusters are being written with `lock` dropped (their L2
     * entries are set afterwards): writes, discards and zeroing that overlap one wait on
     * alloc_cond. */
    struct kd_range {
        uint64_t off, len;
    } allocating[KD_MAX_ALLOCATING];
    unsigned nallocating;
    pthread_cond_t alloc_cond;

    /* qcow2 */
    struct qcow2_header h;
    uint32_t cb;      /* cluster bits */
    uint64_t cs;      /* cluster size */
    uint32_t l2_bits; /* log2(entries per L2 table) */
    uint64_t *l1;     /* host-order copy of the active L1 table (entries as on disk) */
    uint64_t l1_dirty_lo, l1_dirty_hi; /* dirty entry range [lo, hi) */
    uint64_t *rt;                      /* host-order refcount table */
    uint64_t rt_entries;
    uint64_t rt_dirty_lo, rt_dirty_hi;
    uint64_t epb; /* refcount entries per block */
    uint64_t refmax;
    struct tcache l2c, rbc;
    uint64_t free_hint;   /* first cluster index that may be free */
    uint64_t end_cluster; /* clusters below this may be in use; at/after it all free */
    struct pending_free *pending;
    size_t npending, cappending;
    uint8_t *clbuf;  /* one cluster, for copy-on-write */
    uint8_t *wbuf;   /* one cluster: a partial write's bytes gathered */
    uint8_t *cbuf;   /* compressed input, 2 clusters + 512 */
    uint8_t *dcache; /* last decompressed cluster */
    uint64_t dcache_key;
    int dcache_valid;
    void *zstd_dctx;
    struct kova_disk *backing;
};

int kd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int kd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int kd_error(struct kova_disk *d, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Stored refcount of a cluster (0 where no refcount block covers it). */
int kd_refcount_get(struct kova_disk *d, uint64_t cluster, uint64_t *val);

#endif
