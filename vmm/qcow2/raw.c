/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The raw format's ops: the file is the disk, byte for byte; its size is the file's size at open.
 * Data reads and writes run without the handle's lock (only the error message and the sync hint
 * need it); discard punches holes where the file system can (advisory), write-zeroes falls back
 * from FALLOC_FL_ZERO_RANGE to punching to writing zeros. There is no metadata to flush.
 */
#include "kova/common.h"
#include "disk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int raw_open(struct kova_disk *d, unsigned flags, struct kd_chain *ch, char *err,
                    size_t errlen)
{
    off_t end = lseek(d->fd, 0, SEEK_END);
    if (end < 0)
        return kova_err(err, errlen, -errno, "%s: %s", d->path, strerror(errno));
    d->size = (uint64_t)end;
    return 0;
}

static void raw_close(struct kova_disk *d)
{
}

static int raw_rw(struct kova_disk *d, struct kd_iovc *c, uint64_t off, int write)
{
    memcpy(c->s, c->iov, (size_t)c->cnt * sizeof(*c->s));
    int rc = kd_rwv_full(d->fd, c->s, c->cnt, off, write);
    if (rc < 0 || write) {
        pthread_mutex_lock(&d->lock);
        if (rc < 0)
            kd_error(d, rc, "%s at %llu: %s", write ? "write" : "read", (unsigned long long)off,
                     strerror(-rc));
        else
            d->unsynced = 1;
        pthread_mutex_unlock(&d->lock);
    }
    return rc;
}

static int raw_preadv(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    return raw_rw(d, c, off, 0);
}

static int raw_pwritev(struct kova_disk *d, struct kd_iovc *c, size_t len, uint64_t off)
{
    return raw_rw(d, c, off, 1);
}

static int raw_flush(struct kova_disk *d)
{
    return 0;
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
        int rc = kd_write(d, zeros, n, off);
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

static int raw_unmap(struct kova_disk *d, uint64_t off, uint64_t len, int zeroes)
{
    return raw_zero(d, off, len, !zeroes);
}

static uint32_t raw_granularity(const struct kova_disk *d)
{
    return 4096;
}

const struct kova_disk_ops kd_raw_ops = {
    .fmt = KOVA_DISK_RAW,
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
    .preadv = raw_preadv,
    .pwritev = raw_pwritev,
    .flush = raw_flush,
    .unmap = raw_unmap,
    .granularity = raw_granularity,
};
