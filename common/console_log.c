/* SPDX-License-Identifier: Apache-2.0 */
/* The rotating console.log writer (kova/common.h). */
#include "kova/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* snprintf into out; -ENAMETOOLONG when it does not fit. */
__attribute__((format(printf, 3, 4))) static int cpath(char *out, size_t outlen, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* How far back from the cut a rotation looks for a newline to end the old file on. */
#define NEWLINE_WINDOW 80

int kova_console_open(struct kova_console_writer *w, const char *path, int fd, uint64_t max_size,
                      unsigned backups)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    if (!path || !path[0] || backups > 99)
        return -EINVAL;
    int rc = cpath(w->path, sizeof(w->path), "%s", path);
    if (rc < 0)
        return rc;
    if (fd < 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    w->fd = fd;
    w->size = (uint64_t)st.st_size;
    w->max_size = max_size ? max_size : KOVA_CONSOLE_ROTATE_SIZE;
    w->backups = backups;
    return 0;
}

void kova_console_close(struct kova_console_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

int kova_console_rotate(struct kova_console_writer *w)
{
    char from[KOVA_CONSOLE_PATH_MAX + 8], to[KOVA_CONSOLE_PATH_MAX + 8];
    int rc;

    if (w->fd < 0)
        return -EBADF;
    if (w->backups == 0) {
        if (unlink(w->path) < 0 && errno != ENOENT)
            return -errno;
    } else {
        /* The oldest backup is replaced by the rename onto it. */
        for (unsigned i = w->backups - 1; i > 0; i--) {
            if ((rc = cpath(from, sizeof(from), "%s.%u", w->path, i - 1)) < 0 ||
                (rc = cpath(to, sizeof(to), "%s.%u", w->path, i)) < 0)
                return rc;
            if (rename(from, to) < 0 && errno != ENOENT)
                return -errno;
        }
        if ((rc = cpath(to, sizeof(to), "%s.0", w->path)) < 0)
            return rc;
        if (rename(w->path, to) < 0 && errno != ENOENT)
            return -errno;
    }
    int fd = open(w->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    close(w->fd);
    w->fd = fd;
    w->size = 0;
    return 0;
}

int kova_console_write(struct kova_console_writer *w, const void *buf, size_t len)
{
    const char *p = buf;
    if (w->fd < 0)
        return -EBADF;
    while (len > 0) {
        size_t room = w->size < w->max_size ? (size_t)(w->max_size - w->size) : 0;
        size_t chunk = len;
        int full = 0;
        if (len >= room) {
            chunk = room;
            full = 1;
            /* End the old file on a line boundary when one is close to the cut. */
            for (size_t i = chunk; i > 0 && chunk - i < NEWLINE_WINDOW; i--) {
                if (p[i - 1] == '\n') {
                    chunk = i;
                    break;
                }
            }
        }
        if (chunk > 0) {
            int rc = kova_write_all(w->fd, p, chunk);
            if (rc < 0)
                return rc;
            w->size += chunk;
            p += chunk;
            len -= chunk;
        }
        if (full) {
            int rc = kova_console_rotate(w);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
