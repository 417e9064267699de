/* SPDX-License-Identifier: Apache-2.0 */
/* kova_layout: small file-system helpers. */
#include "kova/common.h"
#include "layout_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lpath(char *out, size_t outlen, const char *fmt, ...)
{
    if (!out || outlen == 0)
        return -ENAMETOOLONG;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= outlen) {
        out[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

int lmkdir(const char *path, unsigned mode)
{
    if (mkdir(path, (mode_t)mode) == 0)
        return 0;
    int e = errno;
    if (e != EEXIST)
        return -e;
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int lfsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int lwrite_atomic(const char *dir, const char *path, const void *buf, size_t len, unsigned mode)
{
    char tmp[4096];
    int rc = lpath(tmp, sizeof(tmp), "%s.tmp", path);
    if (rc < 0)
        return rc;
    if (unlink(tmp) < 0 && errno != ENOENT)
        return -errno;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
    if (fd < 0)
        return -errno;
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto fail_fd;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto fail_fd;
    }
    if (close(fd) < 0) {
        rc = -errno;
        goto fail_tmp;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto fail_tmp;
    }
    return lfsync_dir(dir);

fail_fd:
    close(fd);
fail_tmp:
    unlink(tmp);
    return rc;
}
