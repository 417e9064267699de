/* SPDX-License-Identifier: Apache-2.0 */
/* kova_layout: the base image cache, STATE/instances/_base/<sha1 hex of the image id>. */
#include "kova/layout.h"
#include "layout_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_range_rw(int in, int out, off_t off, off_t len, char *buf, size_t bufsz)
{
    while (len > 0) {
        size_t want = (size_t)len < bufsz ? (size_t)len : bufsz;
        ssize_t n = pread(in, buf, want, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the source shrank under us */
        ssize_t done = 0;
        while (done < n) {
            ssize_t w = pwrite(out, buf + done, (size_t)(n - done), off + done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            done += w;
        }
        off += n;
        len -= n;
    }
    return 0;
}

/* Copies the data regions of `in` (holes stay holes), then sets the size. */
static int copy_sparse(int in, int out, off_t size)
{
    size_t bufsz = 1u << 20;
    char *buf = malloc(bufsz);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    off_t pos = 0;
    while (pos < size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break; /* only a hole is left */
            if (errno != EINVAL && errno != EOPNOTSUPP) {
                rc = -errno;
                goto out;
            }
            data = pos; /* no SEEK_DATA here: copy everything */
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0 || hole > size)
            hole = size;
        rc = copy_range_rw(in, out, data, hole - data, buf, bufsz);
        if (rc < 0)
            goto out;
        pos = hole;
    }
    if (ftruncate(out, size) < 0)
        rc = -errno;
out:
    free(buf);
    return rc;
}

static int base_present(const char *base, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(base, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return kova_err(err, errlen, -EEXIST, "%s exists and is not a regular file", base);
        return 1;
    }
    if (errno != ENOENT)
        return kova_err(err, errlen, -errno, "stat %s: %s", base, strerror(errno));
    return 0;
}

int kova_layout_cache_image(const struct kova_layout *l, const char *image_id, const char *src_path,
                            char *base_out, size_t base_len, char *err, size_t errlen)
{
    char hex[41], dir[KOVA_LAYOUT_PATH_MAX], base_dir[KOVA_LAYOUT_PATH_MAX];
    char locks_dir[KOVA_LAYOUT_PATH_MAX], lock[KOVA_LAYOUT_PATH_MAX], base[KOVA_LAYOUT_PATH_MAX];
    char tmp[KOVA_LAYOUT_PATH_MAX + 16];
    int rc, lockfd = -1, in = -1, out = -1;

    if (base_out && base_len)
        base_out[0] = '\0';
    if (!src_path || !src_path[0])
        return kova_err(err, errlen, -EINVAL, "no source image file");
    rc = kova_layout_image_key(image_id, hex);
    if (rc < 0)
        return kova_err(err, errlen, rc, "invalid image id");
    if (kova_layout_instances_dir(l, dir, sizeof(dir)) < 0 ||
        kova_layout_base_dir(l, base_dir, sizeof(base_dir)) < 0 ||
        kova_layout_locks_dir(l, locks_dir, sizeof(locks_dir)) < 0 ||
        lpath(base, sizeof(base), "%s/%s", base_dir, hex) < 0 ||
        lpath(lock, sizeof(lock), "%s/kova-%s", locks_dir, hex) < 0 ||
        lpath(tmp, sizeof(tmp), "%s/.%s.part", base_dir, hex) < 0)
        return kova_err(err, errlen, -ENAMETOOLONG, "path too long");
    if (base_out && lpath(base_out, base_len, "%s", base) < 0)
        return kova_err(err, errlen, -ENAMETOOLONG, "base path does not fit the caller's buffer");

    /* A base only ever appears by link/rename, complete: present means done. */
    rc = base_present(base, err, errlen);
    if (rc != 0)
        return rc < 0 ? rc : 0;

    if ((rc = lmkdir(dir, 0755)) < 0 || (rc = lmkdir(base_dir, 0755)) < 0 ||
        (rc = lmkdir(locks_dir, 0755)) < 0)
        return kova_err(err, errlen, rc, "cannot create %s/{_base,locks}: %s", dir, strerror(-rc));

    lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (lockfd < 0)
        return kova_err(err, errlen, -errno, "open %s: %s", lock, strerror(errno));
    while (flock(lockfd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            rc = kova_err(err, errlen, -errno, "flock %s: %s", lock, strerror(errno));
            goto out_lock;
        }
    }

    /* Someone may have cached it while we waited. */
    rc = base_present(base, err, errlen);
    if (rc != 0) {
        rc = rc < 0 ? rc : 0;
        goto out_lock;
    }

    in = open(src_path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = kova_err(err, errlen, -errno, "open image %s: %s", src_path, strerror(errno));
        goto out_lock;
    }
    struct stat st;
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = kova_err(err, errlen, -EINVAL, "image %s is not a regular file", src_path);
        goto out_in;
    }

    /* Same file system: a hard link is instant and atomic. */
    if (link(src_path, base) == 0) {
        rc = lfsync_dir(base_dir);
        if (rc < 0) {
            unlink(base);
            kova_err(err, errlen, rc, "fsync %s: %s", base_dir, strerror(-rc));
        }
        goto out_in;
    }
    if (errno == EEXIST) { /* not by a kova_layout caller: leave it alone */
        rc = kova_err(err, errlen, -EEXIST, "%s appeared without the lock", base);
        goto out_in;
    }

    /* Otherwise (EXDEV, EPERM with protected hard links, EMLINK ...): copy. A stale .part from a
     * crashed copier is ours to replace: we hold the lock. */
    if (unlink(tmp) < 0 && errno != ENOENT) {
        rc = kova_err(err, errlen, -errno, "unlink %s: %s", tmp, strerror(errno));
        goto out_in;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (out < 0) {
        rc = kova_err(err, errlen, -errno, "create %s: %s", tmp, strerror(errno));
        goto out_in;
    }
    rc = copy_sparse(in, out, st.st_size);
    if (rc < 0) {
        kova_err(err, errlen, rc, "copy %s to %s: %s", src_path, tmp, strerror(-rc));
        goto out_tmp;
    }
    if (fsync(out) < 0) {
        rc = kova_err(err, errlen, -errno, "fsync %s: %s", tmp, strerror(errno));
        goto out_tmp;
    }
    if (close(out) < 0) {
        out = -1;
        rc = kova_err(err, errlen, -errno, "close %s: %s", tmp, strerror(errno));
        goto out_tmp;
    }
    out = -1;
    if (rename(tmp, base) < 0) {
        rc = kova_err(err, errlen, -errno, "rename %s: %s", tmp, strerror(errno));
        goto out_tmp;
    }
    rc = lfsync_dir(base_dir);
    if (rc < 0) {
        unlink(base);
        kova_err(err, errlen, rc, "fsync %s: %s", base_dir, strerror(-rc));
    }
    goto out_in;

out_tmp:
    if (out >= 0)
        close(out);
    unlink(tmp);
out_in:
    close(in);
out_lock:
    close(lockfd); /* drops the flock */
    return rc;
}
