/* SPDX-License-Identifier: Apache-2.0 */
/* kova_layout: os-getConsoleOutput (the reader of the logs kova/common.h's writer rotates). */
#include "kova/layout.h"
#include "layout_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads the last `want` bytes of `path` into the front of buf (buf holds at least want).
 * Returns the byte count, 0 for an empty file, -ENOENT when it is missing, -errno else. */
static ssize_t read_tail(const char *path, char *buf, size_t want)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    ssize_t rc;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    size_t size = (size_t)st.st_size;
    size_t n = size < want ? size : want;
    off_t off = (off_t)(size - n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break; /* truncated meanwhile (rotation): take what there is */
        got += (size_t)r;
    }
    rc = (ssize_t)got;
out:
    close(fd);
    return rc;
}

int kova_console_read(const char *log_path, int64_t length, char **out, size_t *outlen, char *err,
                      size_t errlen)
{
    char path[KOVA_LAYOUT_PATH_MAX + 8];
    const size_t cap = KOVA_CONSOLE_READ_MAX;
    char *data = NULL, *tmp = NULL, *res = NULL;
    size_t have = 0; /* bytes at the end of data[cap] */
    int rc = 0;

    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!log_path || lpath(path, sizeof(path), "%s", log_path) < 0)
        return kova_err(err, errlen, -EINVAL, "bad console log path");
    data = malloc(cap);
    tmp = malloc(cap);
    if (!data || !tmp) {
        rc = kova_err(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    /* Newest file first; each older one is prepended until the cap is reached. */
    for (unsigned i = 0; have < cap && i <= 1000; i++) {
        if (i > 0 && lpath(path, sizeof(path), "%s.%u", log_path, i - 1) < 0)
            break;
        ssize_t n = read_tail(path, tmp, cap - have);
        if (n == -ENOENT)
            break;
        if (n < 0) {
            rc = kova_err(err, errlen, (int)n, "read %s: %s", path, strerror((int)-n));
            goto out;
        }
        memcpy(data + cap - have - (size_t)n, tmp, (size_t)n);
        have += (size_t)n;
    }
    const char *s = data + cap - have;
    size_t slen = have;

    /* Nova's _tail_log: pieces = log.split("\n"); "\n".join(pieces[-length:]). */
    if (length == 0) {
        slen = 0;
    } else if (length != KOVA_CONSOLE_ALL) {
        size_t pieces = 1;
        for (size_t i = 0; i < slen; i++)
            pieces += s[i] == '\n';
        uint64_t skip; /* pieces dropped from the front */
        if (length > 0)
            skip = (uint64_t)length >= pieces ? 0 : pieces - (uint64_t)length;
        else
            skip = (uint64_t)(-(length + 1)) + 1 >= pieces ? pieces : (uint64_t)(-(length + 1)) + 1;
        if (skip == pieces) {
            slen = 0;
        } else {
            size_t i = 0;
            for (uint64_t k = 0; k < skip; i++)
                k += s[i] == '\n';
            s += i;
            slen -= i;
        }
    }

    /* Non-ASCII bytes become U+FFFD (3 bytes); control bytes other than \t \n vanish. */
    res = malloc(slen * 3 + 1);
    if (!res) {
        rc = kova_err(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    size_t o = 0;
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            res[o++] = (char)0xef;
            res[o++] = (char)0xbf;
            res[o++] = (char)0xbd;
        } else if (c >= 0x20 || c == '\t' || c == '\n') {
            res[o++] = (char)c;
        }
    }
    res[o] = '\0';
    *out = res;
    res = NULL;
    if (outlen)
        *outlen = o;
out:
    free(res);
    free(tmp);
    free(data);
    return rc;
}
