/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File I/O helpers shared by both formats: whole-buffer and vectored pread/pwrite (retrying on
 * EINTR and short transfers; reads past the end of the file yield zeros, as QEMU's block layer
 * does), the cursor over a caller's iovec (kd_iovc), and the handle-level write/sync that keep
 * d->unsynced and d->errmsg (lock held).
 */
#include "disk_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define KD_IOV_MAX 1024 /* UIO_MAXIOV */

int kd_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    struct iovec v = {buf, len};
    return kd_rwv_full(fd, &v, 1, off, 0);
}

int kd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    struct iovec v = {(void *)(uintptr_t)buf, len};
    return kd_rwv_full(fd, &v, 1, off, 1);
}

int kd_rwv_full(int fd, struct iovec *iov, int cnt, uint64_t off, int write)
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

int kd_iovc_slice(struct kd_iovc *c, size_t len)
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

void kd_iovc_copy(struct kd_iovc *c, uint8_t *buf, size_t len, int to_iov)
{
    int k = kd_iovc_slice(c, len);
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

int kd_sync(struct kova_disk *d)
{
    if (!d->unsynced)
        return 0;
    if (fdatasync(d->fd) < 0)
        return kd_error(d, -errno, "fdatasync: %s", strerror(errno));
    d->unsynced = 0;
    return 0;
}

int kd_write(struct kova_disk *d, const void *buf, size_t len, uint64_t off)
{
    int rc = kd_pwrite_full(d->fd, buf, len, off);
    if (rc < 0)
        return kd_error(d, rc, "write at %llu: %s", (unsigned long long)off, strerror(-rc));
    d->unsynced = 1;
    return 0;
}
