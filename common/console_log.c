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

int kova_console_openat(struct kova_console_writer *w, int dirfd, const char *name, int fd,
                        uint64_t max_size, unsigned backups)
{
    memset(w, 0, sizeof(*w));
    w->fd = w->dirfd = -1;
    if (dirfd < 0 || !name || !name[0] || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, "..") || backups > 99)
        return -EINVAL;
    int rc = cpath(w->name, sizeof(w->name), "%s", name);
    if (rc < 0)
        return rc;
    int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    if (dfd < 0)
        return -errno;
    int own = fd < 0;
    if (own) {
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            rc = -errno;
            goto fail_dir;
        }
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail_fd;
    }
    w->fd = fd;
    w->dirfd = dfd;
    w->size = (uint64_t)st.st_size;
    w->max_size = max_size ? max_size : KOVA_CONSOLE_ROTATE_SIZE;
    w->backups = backups;
    return 0;

fail_fd:
    if (own)
        close(fd);
fail_dir:
    close(dfd);
    return rc;
}

int kova_console_open(struct kova_console_writer *w, const char *path, int fd, uint64_t max_size,
                      unsigned backups)
{
    char dir[KOVA_CONSOLE_PATH_MAX];
    memset(w, 0, sizeof(*w));
    w->fd = w->dirfd = -1;
    if (!path || !path[0] || backups > 99)
        return -EINVAL;
    const char *slash = strrchr(path, '/');
    int rc = slash ? cpath(dir, sizeof(dir), "%.*s", (int)(slash - path), path)
                   : cpath(dir, sizeof(dir), ".");
    if (rc < 0)
        return rc;
    if (slash && slash == path)
        snprintf(dir, sizeof(dir), "/");
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    rc = kova_console_openat(w, dfd, slash ? slash + 1 : path, fd, max_size, backups);
    close(dfd);
    return rc;
}

void kova_console_close(struct kova_console_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    w->fd = w->dirfd = -1;
}

int kova_console_rotate(struct kova_console_writer *w)
{
    char from[KOVA_CONSOLE_PATH_MAX + 8], to[KOVA_CONSOLE_PATH_MAX + 8];
    int rc;

    if (w->fd < 0 || w->dirfd < 0)
        return -EBADF;
    if (w->backups == 0) {
        if (unlinkat(w->dirfd, w->name, 0) < 0 && errno != ENOENT)
            return -errno;
    } else {
        /* The oldest backup is replaced by the rename onto it. */
        for (unsigned i = w->backups - 1; i > 0; i--) {
            if ((rc = cpath(from, sizeof(from), "%s.%u", w->name, i - 1)) < 0 ||
                (rc = cpath(to, sizeof(to), "%s.%u", w->name, i)) < 0)
                return rc;
            if (renameat(w->dirfd, from, w->dirfd, to) < 0 && errno != ENOENT)
                return -errno;
        }
        if ((rc = cpath(to, sizeof(to), "%s.0", w->name)) < 0)
            return rc;
        if (renameat(w->dirfd, w->name, w->dirfd, to) < 0 && errno != ENOENT)
            return -errno;
    }
    int fd = openat(w->dirfd, w->name,
                    O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
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
