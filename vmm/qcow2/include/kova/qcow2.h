/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova_qcow2: disk images for kova-vmm, kova-img and the agent.
 *
 * A disk handle is opened with an explicit format (raw or qcow2; the format is never guessed, and
 * a qcow2 file that fails validation is an error, never a raw disk). I/O is at byte offsets with
 * any alignment and length inside [0, size). Inside the library each format is one ops table
 * (raw.c, qcow2_*.c) behind the format-neutral calls below (disk.c).
 *
 * Errors: 0 on success or a negative errno. Functions taking `err`/`errlen` also write a one-line
 * human-readable message there on failure (may be NULL).
 *
 * Thread safety: every call on one handle may be made from any thread concurrently; each handle
 * holds one mutex that serialises metadata work (lookups, allocation, copy-on-write, flush); reads
 * of allocated or backing-file data and in-place writes run with it dropped, so requests to
 * allocated clusters proceed in parallel (a backing file has its own handle and mutex).
 * Different handles are independent. kova_disk_close() must not race with other calls on the
 * same handle.
 *
 * Durability: kova_disk_pwrite() data and metadata are durable after a successful
 * kova_disk_flush() (which ends with fdatasync). qcow2 metadata is written in an order that
 * makes a crash at any moment leak clusters at worst, never corrupt the image.
 */
#ifndef KOVA_QCOW2_H
#define KOVA_QCOW2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum kova_disk_format {
    KOVA_DISK_RAW = 1,
    KOVA_DISK_QCOW2 = 2,
};

/* Open flags. */
#define KOVA_DISK_RDONLY 0x1u
/* Do not open the backing file: unallocated clusters read as zeros (info, check, fuzzing). */
#define KOVA_DISK_NO_BACKING 0x2u

/* Most backing files one chain may have (the top image not counted). */
#define KOVA_DISK_MAX_CHAIN 16

struct kova_disk;

/* Parses "raw" / "qcow2"; returns 0 when unknown. */
enum kova_disk_format kova_disk_format_parse(const char *name);
const char *kova_disk_format_name(enum kova_disk_format fmt);

/* Opens `path`. A read-write open takes an exclusive flock(2) on the file (-EBUSY when another
 * kova process holds it). Backing files are opened read-only, relative names resolved against
 * the image's directory. */
int kova_disk_open(struct kova_disk **out, const char *path, enum kova_disk_format fmt,
                   unsigned flags, char *err, size_t errlen);
/* Same, on an already open descriptor (duplicated; the caller keeps its own). `path` is used for
 * messages and to resolve a relative backing file name (may be NULL: no backing allowed). */
int kova_disk_open_fd(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                      unsigned flags, char *err, size_t errlen);
void kova_disk_close(struct kova_disk *d);

uint64_t kova_disk_size(const struct kova_disk *d);
enum kova_disk_format kova_disk_format(const struct kova_disk *d);
int kova_disk_readonly(const struct kova_disk *d);
/* Alignment at which discard/write-zeroes release space (qcow2: the cluster size; raw: 4096);
 * a virtio-blk device can advertise it as its discard granularity. */
uint32_t kova_disk_granularity(const struct kova_disk *d);

/* Reads/writes exactly `len` bytes at `off`; -EINVAL when [off, off+len) leaves the disk, -EROFS
 * for a write to a read-only handle, -EIO for corrupt metadata found on the way. */
int kova_disk_pread(struct kova_disk *d, void *buf, size_t len, uint64_t off);
int kova_disk_pwrite(struct kova_disk *d, const void *buf, size_t len, uint64_t off);
/* Scatter/gather forms (e.g. for virtio descriptor chains): the buffers are filled/consumed in
 * order from `off`; same errors; the whole request runs under the handle's lock. */
int kova_disk_preadv(struct kova_disk *d, const struct iovec *iov, int iovcnt, uint64_t off);
int kova_disk_pwritev(struct kova_disk *d, const struct iovec *iov, int iovcnt, uint64_t off);
int kova_disk_flush(struct kova_disk *d);
/* Advisory: whole clusters (qcow2) or the byte range (raw) are released where that is cheap and
 * safe; afterwards the range reads as zeros or as before. */
int kova_disk_discard(struct kova_disk *d, uint64_t off, uint64_t len);
/* The range reads as zeros afterwards (qcow2 v3: zero flag on whole clusters). */
int kova_disk_write_zeroes(struct kova_disk *d, uint64_t off, uint64_t len);

/* The last error message recorded on this handle (e.g. which metadata was corrupt), or "". */
const char *kova_disk_last_error(struct kova_disk *d);

/* --- qcow2 creation ------------------------------------------------------------------------- */

struct kova_qcow2_create_opts {
    uint64_t size;            /* virtual size in bytes; 0 with a backing file: its size */
    const char *backing_file; /* NULL: none; stored as given (relative to the image) */
    enum kova_disk_format backing_format; /* required with backing_file */
    unsigned cluster_bits;                /* 0: 16 (64 KiB); 9..21 */
    int exclusive;                        /* nonzero: fail with -EEXIST instead of truncating */
};

/* Creates a qcow2 v3 image (refcount_bits 16, zlib, no lazy refcounts). The backing file, if
 * any, is opened to check it and, with size 0, to take its size. */
int kova_qcow2_create(const char *path, const struct kova_qcow2_create_opts *opts, char *err,
                      size_t errlen);

/* --- inspection --------------------------------------------------------------------------- */

struct kova_qcow2_info {
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t refcount_bits;
    uint64_t size;
    uint64_t incompatible, compatible, autoclear;
    int compression_type; /* 0 zlib, 1 zstd */
    uint32_t nb_snapshots;
    char backing_file[1024];
    char backing_format[32];
    uint64_t file_size; /* bytes allocated on the host file system */
};

int kova_qcow2_get_info(struct kova_disk *d, struct kova_qcow2_info *info);

/* Rebuilds every cluster's reference count from the metadata (active L1/L2, snapshots, refcount
 * structures) and compares it with the stored refcounts. */
struct kova_qcow2_check {
    uint64_t corruptions;
    uint64_t leaks;
    uint64_t allocated_clusters;
    uint64_t total_clusters; /* virtual clusters */
};
/* `report(msg, ctx)` is called once per problem found (may be NULL). Returns 0 when the check
 * ran (look at the counts), or -errno when it could not. */
int kova_qcow2_check(struct kova_disk *d, struct kova_qcow2_check *res,
                     void (*report)(const char *msg, void *ctx), void *ctx);

#endif
