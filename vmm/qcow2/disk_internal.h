/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova_disk internals shared by the disk library's files.
 *
 * A handle is format-neutral state plus one ops table per format (raw.c: kd_raw_ops,
 * qcow2_open.c: kd_qcow2_ops). disk.c checks each request once (range, read-only, broken,
 * iovec) and dispatches to d->ops. The qcow2 part of the handle belongs to the qcow2_*.c files
 * (declared in qcow2_internal.h); check.c reads it too.
 *
 * Locking: `lock` guards all mutable handle state (metadata, caches, errmsg, unsynced, broken).
 * Functions below say whether they need it.
 */
#ifndef KOVA_DISK_INTERNAL_H
#define KOVA_DISK_INTERNAL_H

#include "kova/qcow2.h"
#include "qcow2_format.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

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
    const char *what; /* "L2 table", "refcount block": for messages */
    /* Makes dirty slot `slot` clean before it is reused (lock held); 0 or -errno. */
    int (*writeback)(struct kova_disk *d, struct tcache *c, int slot);
};

struct pending_free {
    uint64_t start, len; /* bytes; every cluster touched loses one reference */
};

#define KD_MAX_ALLOCATING 16

/* The backing chain opened so far (loop and depth checks). */
struct kd_chain {
    dev_t dev[KOVA_DISK_MAX_CHAIN + 1];
    ino_t ino[KOVA_DISK_MAX_CHAIN + 1];
    int n;
};

/* A position in a caller's I/O vector. */
struct kd_iovc {
    const struct iovec *iov;
    int cnt, i;
    size_t at;       /* bytes of iov[i] already consumed */
    struct iovec *s; /* scratch for slices: cnt entries */
};

/*
 * One disk format. Every member is set. Requests reaching an op are already checked by disk.c:
 * inside [0, size), writes only on a writable handle that is not broken. d->lock is held unless
 * said otherwise. All return 0 or -errno (with d->errmsg set where there is more to say).
 */
struct kova_disk_ops {
    enum kova_disk_format fmt;
    const char *name; /* as kova_disk_format_parse() accepts it */
    /* Sets up the format on a new handle (fd open, flock taken, fmt/ro/path set) including
     * d->size; `ch` is the chain opened so far. Lock not held; message in err on failure, after
     * which the handle is closed (ops->flush and ops->close must cope with a part-way open). */
    int (*open)(struct kova_disk *d, unsigned flags, struct kd_chain *ch, char *err, size_t errlen);
    /* Frees the format's state (a writable handle was flushed and synced before). No other
     * call runs: lock not held. */
    void (*close)(struct kova_disk *d);
    /* Reads/writes `len` bytes (the vector's total) at `off` from/to the vector at `c`. Called
     * WITHOUT the lock: the format takes it as it needs. */
    int (*preadv)(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off);
    int (*pwritev)(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off);
    /* Writes dirty metadata in crash-safe order (disk.c syncs the file afterwards). Lock held,
     * or no other call runs (close). */
    int (*flush)(struct kova_disk *d);
    /* kova_disk_discard() (zeroes 0) / kova_disk_write_zeroes() (zeroes 1) semantics. */
    int (*unmap)(struct kova_disk *d, uint64_t off, uint64_t len, int zeroes);
    /* kova_disk_granularity(); no lock needed. */
    uint32_t (*granularity)(const struct kova_disk *d);
};

extern const struct kova_disk_ops kd_raw_ops;   /* raw.c */
extern const struct kova_disk_ops kd_qcow2_ops; /* qcow2_open.c */

#define QC_DCACHE_BYTES (1u << 20) /* decompressed clusters kept per image, at most */
#define QC_DCACHE_SLOTS 16         /* and at most this many */

/* One decompressed cluster (struct kova_disk's dslots). */
struct qc_dslot {
    uint8_t *data;
    uint64_t key;  /* host offset of the compressed data */
    uint64_t used; /* dclock at the last hit: the least recently used slot is reused */
    int valid;
};

struct kova_disk {
    pthread_mutex_t lock;
    const struct kova_disk_ops *ops;
    enum kova_disk_format fmt; /* == ops->fmt */
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
    uint8_t *clbuf; /* one cluster, for copy-on-write */
    uint8_t *wbuf;  /* one cluster: a partial write's bytes gathered */
    uint8_t *cbuf;  /* compressed input, 2 clusters + 512 */
    /* The last compressed clusters read, decompressed (qcow2_io.c decompress): up to
     * QC_DCACHE_BYTES in all, at least one; a slot's buffer is allocated at its first use.
     * Invalidated wholesale when clusters are freed (their host offsets may be reused). */
    struct qc_dslot *dslots;
    unsigned ndslots;
    uint64_t dclock;
    void *zstd_dctx;
    struct kova_disk *backing;
};

/* --- disk.c ----------------------------------------------------------------------------- */

/* Records a message in d->errmsg (lock held); returns rc. */
int kd_error(struct kova_disk *d, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Opens one image of a chain (fd >= 0: duplicated, else `path` is opened); backing files
 * recurse through here. 0 with *out set, or -errno with a message in err. */
int kd_open_chain(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                  unsigned flags, struct kd_chain *ch, char *err, size_t errlen);

/* --- disk_io.c -------------------------------------------------------------------------- */

/* Whole-buffer pread/pwrite retrying on EINTR and short transfers; 0 or -errno. Reading past
 * the end of the file yields zeros; a write making no progress is -EIO. No lock involved. */
int kd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int kd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* The same over `cnt` vector entries, which are consumed (modified) as bytes move. */
int kd_rwv_full(int fd, struct iovec *iov, int cnt, uint64_t off, int write);
/* The next `len` bytes of the vector (which exist) as a slice in c->s; returns its entry
 * count. */
int kd_iovc_slice(struct kd_iovc *c, size_t len);
/* Moves the next `len` bytes: to_iov 1: buf -> vector (buf NULL: zeros); 0: vector -> buf. */
void kd_iovc_copy(struct kd_iovc *c, uint8_t *buf, size_t len, int to_iov);
/* Writes to the handle's file (lock held): marks it unsynced; message on failure. */
int kd_write(struct kova_disk *d, const void *buf, size_t len, uint64_t off);
/* fdatasync when a write was issued since the last one (lock held). */
int kd_sync(struct kova_disk *d);

/* --- qcow2_refcount.c ------------------------------------------------------------------- */

/* Stored refcount of a cluster (0 where no refcount block covers it). Lock held. */
int kd_refcount_get(struct kova_disk *d, uint64_t cluster, uint64_t *val);

#endif
