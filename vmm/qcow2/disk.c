/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kova_disk: the public handle API over the format ops tables (raw.c, qcow2_*.c).
 *
 * Opening picks the ops table for the requested format (never guessed), opens or duplicates the
 * descriptor, checks the backing chain for loops, takes the flock of a writable handle and hands
 * over to ops->open. Every request is checked here once: range inside [0, size), writes refused
 * on a read-only or broken handle, iovec entries and total valid. Then it goes to d->ops;
 * preadv/pwritev are called without the lock (the format takes it as it needs), flush, discard
 * and write-zeroes with it held.
 */
#include "kova/common.h"
#include "disk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const struct kova_disk_ops *const formats[] = {&kd_raw_ops, &kd_qcow2_ops};
#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

int kd_error(struct kova_disk *d, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

static const struct kova_disk_ops *format_ops(enum kova_disk_format fmt)
{
    for (size_t i = 0; i < NFORMATS; i++)
        if (formats[i]->fmt == fmt)
            return formats[i];
    return NULL;
}

enum kova_disk_format kova_disk_format_parse(const char *name)
{
    for (size_t i = 0; name && i < NFORMATS; i++)
        if (strcmp(name, formats[i]->name) == 0)
            return formats[i]->fmt;
    return 0;
}

const char *kova_disk_format_name(enum kova_disk_format fmt)
{
    const struct kova_disk_ops *ops = format_ops(fmt);
    return ops ? ops->name : "?";
}

/* ---------------------------------------------------------------- open / close */

/* The new handle's descriptor: a duplicate of `fd`, or `path` opened. */
static int open_fd(struct kova_disk *d, int fd, const char *path, char *err, size_t errlen)
{
    if (fd >= 0) {
        d->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (d->fd < 0)
            return kova_err(err, errlen, -errno, "dup: %s", strerror(errno));
    } else {
        d->fd = open(path, (d->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (d->fd < 0)
            return kova_err(err, errlen, -errno, "cannot open '%s': %s", path, strerror(errno));
    }
    return 0;
}

/* Adds the open file to the chain; -ELOOP when it is already in it. */
static int chain_add(struct kova_disk *d, struct kd_chain *ch, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return kova_err(err, errlen, -errno, "%s: %s", d->path, strerror(errno));
    for (int i = 0; i < ch->n; i++)
        if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino)
            return kova_err(err, errlen, -ELOOP, "%s: backing chain loops", d->path);
    if (ch->n <= KOVA_DISK_MAX_CHAIN) {
        ch->dev[ch->n] = st.st_dev;
        ch->ino[ch->n] = st.st_ino;
        ch->n++;
    }
    return 0;
}

int kd_open_chain(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                  unsigned flags, struct kd_chain *ch, char *err, size_t errlen)
{
    *out = NULL;
    const struct kova_disk_ops *ops = format_ops(fmt);
    if (!ops)
        return kova_err(err, errlen, -EINVAL, "unknown disk format");
    struct kova_disk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    int rc;
    d->fd = -1;
    d->ops = ops;
    d->fmt = fmt;
    d->ro = (flags & KOVA_DISK_RDONLY) != 0;
    snprintf(d->path, sizeof(d->path), "%s", path ? path : "(fd)");
    d->nopath = path == NULL;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->alloc_cond, NULL);
    if ((rc = open_fd(d, fd, path, err, errlen)) < 0 || (rc = chain_add(d, ch, err, errlen)) < 0)
        goto fail;
    if (!d->ro && flock(d->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = kova_err(err, errlen, errno == EWOULDBLOCK ? -EBUSY : -errno,
                      "%s: image is in use by another process", d->path);
        goto fail;
    }
    if ((rc = ops->open(d, flags, ch, err, errlen)) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    kova_disk_close(d);
    return rc;
}

int kova_disk_open(struct kova_disk **out, const char *path, enum kova_disk_format fmt,
                   unsigned flags, char *err, size_t errlen)
{
    struct kd_chain ch = {.n = 0};
    if (!path)
        return kova_err(err, errlen, -EINVAL, "no path");
    return kd_open_chain(out, -1, path, fmt, flags, &ch, err, errlen);
}

int kova_disk_open_fd(struct kova_disk **out, int fd, const char *path, enum kova_disk_format fmt,
                      unsigned flags, char *err, size_t errlen)
{
    struct kd_chain ch = {.n = 0};
    if (fd < 0)
        return kova_err(err, errlen, -EBADF, "bad file descriptor");
    return kd_open_chain(out, fd, path, fmt, flags, &ch, err, errlen);
}

void kova_disk_close(struct kova_disk *d)
{
    if (!d)
        return;
    if (d->fd >= 0 && !d->ro) {
        d->ops->flush(d);
        kd_sync(d);
    }
    d->ops->close(d);
    if (d->fd >= 0)
        close(d->fd);
    pthread_cond_destroy(&d->alloc_cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* ---------------------------------------------------------------- properties */

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
    return d->ops->granularity(d);
}

const char *kova_disk_last_error(struct kova_disk *d)
{
    return d->errmsg;
}

/* ---------------------------------------------------------------- I/O dispatch */

static int range_ok(const struct kova_disk *d, uint64_t off, uint64_t len)
{
    return off <= d->size && len <= d->size - off;
}

/* May the handle be written? -EROFS, -EIO (broken) or 0. */
static int writable(const struct kova_disk *d)
{
    if (d->ro)
        return -EROFS;
    return d->broken ? -EIO : 0;
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

/* One read or write of the bytes described by iov (total bytes, range already checked). */
static int disk_rw(struct kova_disk *d, const struct iovec *iov, int iovcnt, uint64_t total,
                   uint64_t off, int write)
{
    struct iovec stack[16];
    struct iovec *s = stack;
    if (iovcnt > (int)(sizeof(stack) / sizeof(stack[0])) &&
        !(s = malloc((size_t)iovcnt * sizeof(*s))))
        return -ENOMEM;
    struct kd_iovc c = {iov, iovcnt, 0, 0, s};
    int rc = write ? d->ops->pwritev(d, &c, (size_t)total, off)
                   : d->ops->preadv(d, &c, (size_t)total, off);
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
    int rc = writable(d);
    if (rc < 0)
        return rc;
    if (!range_ok(d, off, len) || (!buf && len))
        return -EINVAL;
    struct iovec v = {(void *)(uintptr_t)buf, len};
    return disk_rw(d, &v, 1, len, off, 1);
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
    int rc = writable(d);
    if (rc < 0)
        return rc;
    if (iov_total(iov, iovcnt, &total) < 0 || !range_ok(d, off, total))
        return -EINVAL;
    return disk_rw(d, iov, iovcnt, total, off, 1);
}

int kova_disk_flush(struct kova_disk *d)
{
    if (d->ro)
        return 0;
    pthread_mutex_lock(&d->lock);
    int rc = d->ops->flush(d);
    if (rc == 0) {
        d->unsynced = 1; /* always reach the disk: in-place writes may be pending */
        rc = kd_sync(d);
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Discard (zeroes 0) or write-zeroes (1) of a checked range, under the lock. */
static int disk_unmap(struct kova_disk *d, uint64_t off, uint64_t len, int zeroes)
{
    int rc = writable(d);
    if (rc < 0)
        return rc;
    if (!range_ok(d, off, len))
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    rc = d->ops->unmap(d, off, len, zeroes);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int kova_disk_discard(struct kova_disk *d, uint64_t off, uint64_t len)
{
    return disk_unmap(d, off, len, 0);
}

int kova_disk_write_zeroes(struct kova_disk *d, uint64_t off, uint64_t len)
{
    return disk_unmap(d, off, len, 1);
}
