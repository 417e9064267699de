/* SPDX-License-Identifier: Apache-2.0 */
#include "kova/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The process's one logging setting. */
static const char *_Atomic log_prog = "kova";
static atomic_int log_level = 1;

void kova_log_setup(const char *prog, int level)
{
    if (prog)
        atomic_store(&log_prog, prog);
    atomic_store(&log_level, level);
}

int kova_log_get_level(void)
{
    return atomic_load(&log_level);
}

int kova_log_level_parse(const char *name, int *level)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {{"error", KOVA_LOG_ERROR},
                 {"warning", KOVA_LOG_WARNING},
                 {"warn", KOVA_LOG_WARNING},
                 {"info", KOVA_LOG_INFO},
                 {"debug", KOVA_LOG_DEBUG}};
    for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

void kova_log(int level, const char *fmt, ...)
{
    if (level > atomic_load(&log_level))
        return;
    static const char *const names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int i = level < KOVA_LOG_ERROR   ? KOVA_LOG_ERROR
            : level > KOVA_LOG_DEBUG ? KOVA_LOG_DEBUG
                                     : level;
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000,
            atomic_load(&log_prog), names[i - KOVA_LOG_ERROR], msg);
}

int kova_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int kova_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void kova_time_iso(char out[32], bool z)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    if (z)
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else {
        char b[24];
        strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out, 32, "%s.%06ld", b, (long)tv.tv_usec);
    }
}

int kova_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* n digits at *p (advanced past them) into *v; false unless there are exactly n. */
static bool digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return true;
}

int kova_parse_time(const char *s, time_t *out)
{
    int Y, M, D, h = 0, m = 0, sec = 0, zh = 0, zm = 0, sign = 0;
    const char *p = s;
    if (!p || !digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' ||
        !digits(&p, 2, &D))
        return -EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &m))
            return -EINVAL;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return -EINVAL;
            if (*p == '.' || *p == ',') {
                p++;
                if (!isdigit((unsigned char)*p))
                    return -EINVAL;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p++ == '+' ? 1 : -1;
            if (!digits(&p, 2, &zh))
                return -EINVAL;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)*p) && !digits(&p, 2, &zm))
                return -EINVAL;
        }
    }
    if (*p || Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 ||
        zh > 23 || zm > 59)
        return -EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (D > mdays[M - 1] || (M == 2 && D == 29 && !leap))
        return -EINVAL;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    t -= (time_t)sign * (zh * 3600 + zm * 60);
    if (t < 0)
        return -EINVAL;
    *out = t;
    return 0;
}

void kova_uuid(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* no randomness at all: ids would collide */
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static bool uuid_check(const char *s, bool allow_upper)
{
    if (!s)
        return false;
    for (int i = 0; i < KOVA_UUID_STRLEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (allow_upper && c >= 'A' && c <= 'F'))) {
            return false; /* also stops at a NUL before 36 */
        }
    }
    return s[KOVA_UUID_STRLEN] == '\0';
}

bool kova_is_uuid(const char *s)
{
    return uuid_check(s, true);
}

bool kova_is_uuid_lower(const char *s)
{
    return uuid_check(s, false);
}

void kova_file_last_line(const char *path, char *out, size_t outlen)
{
    if (!outlen)
        return;
    out[0] = '\0';
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = size > 0 ? pread(fd, buf, sizeof(buf) - 1, from) : 0;
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    const char *l = strrchr(buf, '\n');
    l = l ? l + 1 : buf;
    size_t o = 0;
    for (; *l && o + 1 < outlen; l++)
        out[o++] = (unsigned char)*l < 0x20 ? ' ' : *l;
    out[o] = '\0';
}
