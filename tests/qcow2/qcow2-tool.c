/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test driver for kova_qcow2 (used by the interop and crash test scripts):
 *   dump IMG FMT OUT                    read the whole disk in odd-sized pieces into a raw file
 *   randread IMG FMT REF SEED N         N reads of up to 192 KiB at random offsets (half of them
 *                                       near one of the last 32), each compared with REF
 *   randwrite IMG FMT REF SEED N [MAX]  N random writes/zeroes/discards/flushes, mirrored to REF
 *   crashwriter IMG FMT SEED ACK [MAX]  random writes in flushed groups until killed; after each
 *                                       completed flush, the number of ops covered goes to ACK
 *   verify IMG FMT SEED ACK BASE NEW [MAX]  after a kill: every acknowledged write is there, every
 *                                       other byte is the old one or from the unacknowledged group
 *   bench IMG FMT OP BS COUNT seq|rand   timed I/O through the library (see cmd_bench)
 */
#include "kova/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Crash-point injection for the crash test: with KOVA_TEST_CRASH_AT=N the process exits (like a
 * kill) just before its N-th pwrite, so every write boundary of the library can be a crash
 * point. This definition takes the place of libc's pwrite for the library linked in here. */
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static long count = -1, at;
    if (count < 0) {
        const char *e = getenv("KOVA_TEST_CRASH_AT");
        at = e ? atol(e) : 0;
        count = 0;
    }
    if (at > 0 && ++count >= at)
        _exit(70);
    return syscall(SYS_pwrite64, fd, buf, n, off);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "qcow2-tool: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
    exit(1);
}

static struct kova_disk *open_disk(const char *path, const char *fmt, unsigned flags)
{
    struct kova_disk *d;
    char err[512];
    enum kova_disk_format f = kova_disk_format_parse(fmt);
    if (!f) {
        fprintf(stderr, "qcow2-tool: bad format %s\n", fmt);
        exit(1);
    }
    int rc = kova_disk_open(&d, path, f, flags, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "qcow2-tool: open %s: %s\n", path, err);
        exit(1);
    }
    return d;
}

static int read_file(const char *path, uint8_t *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    memset(buf + got, 0, len - got);
    return 0;
}

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < len) {
        ssize_t r = write(fd, buf + done, len - done);
        if (r <= 0) {
            close(fd);
            return -EIO;
        }
        done += (size_t)r;
    }
    close(fd);
    return 0;
}

static uint8_t *read_disk(struct kova_disk *d, uint64_t seed)
{
    uint64_t size = kova_disk_size(d);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        die("malloc", ENOMEM);
    rng_state = seed | 1;
    for (uint64_t off = 0; off < size;) {
        uint64_t n = 1 + rnd() % 300000;
        if (n > size - off)
            n = size - off;
        int rc = kova_disk_pread(d, buf + off, n, off);
        if (rc < 0) {
            fprintf(stderr, "qcow2-tool: read at %llu: %s (%s)\n", (unsigned long long)off,
                    strerror(-rc), kova_disk_last_error(d));
            exit(1);
        }
        off += n;
    }
    return buf;
}

static int cmd_dump(char **a)
{
    struct kova_disk *d = open_disk(a[0], a[1], KOVA_DISK_RDONLY);
    uint8_t *buf = read_disk(d, 12345);
    int rc = write_file(a[2], buf, kova_disk_size(d));
    if (rc < 0)
        die("write output", rc);
    free(buf);
    kova_disk_close(d);
    return 0;
}

static int cmd_randread(char **a)
{
    struct kova_disk *d = open_disk(a[0], a[1], KOVA_DISK_RDONLY);
    uint64_t size = kova_disk_size(d);
    uint64_t seed = strtoull(a[3], NULL, 0), n = strtoull(a[4], NULL, 0);
    uint8_t *ref = malloc(size ? size : 1), *got = malloc(3 * 65536);
    if (!ref || !got)
        die("malloc", ENOMEM);
    read_file(a[2], ref, size);
    rng_state = mix(seed) | 1;
    uint64_t recent[32] = {0}, bad = 0;
    for (uint64_t i = 0; i < n && size; i++) {
        /* half the time near one of the last 32 offsets: hits on older cached clusters */
        uint64_t off = rnd() % 2 ? recent[rnd() % 32] + rnd() % 8192 : rnd() % size;
        if (off >= size)
            off = rnd() % size;
        uint64_t len = 1 + rnd() % (3 * 65536);
        if (len > size - off)
            len = size - off;
        recent[i % 32] = off;
        int rc = kova_disk_pread(d, got, len, off);
        if (rc < 0) {
            fprintf(stderr, "qcow2-tool: read at %llu: %s (%s)\n", (unsigned long long)off,
                    strerror(-rc), kova_disk_last_error(d));
            exit(1);
        }
        if (memcmp(got, ref + off, len) && bad++ < 5)
            fprintf(stderr, "qcow2-tool: read %llu at %llu differs\n", (unsigned long long)len,
                    (unsigned long long)off);
    }
    free(ref);
    free(got);
    kova_disk_close(d);
    return bad ? 1 : 0;
}

static int cmd_randwrite(char **a, int n_args)
{
    struct kova_disk *d = open_disk(a[0], a[1], 0);
    uint64_t size = kova_disk_size(d);
    uint64_t seed = strtoull(a[3], NULL, 0), n = strtoull(a[4], NULL, 0);
    uint64_t maxlen = n_args > 5 ? strtoull(a[5], NULL, 0) : 200000;
    uint8_t *ref = malloc(size), *tmp = malloc(size);
    if (!ref || !tmp)
        die("malloc", ENOMEM);
    read_file(a[2], ref, size);
    rng_state = mix(seed) | 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t op = rnd() % 20;
        uint64_t len = 1 + rnd() % maxlen;
        if (len > size)
            len = size;
        uint64_t off = rnd() % (size - len + 1);
        if (rnd() % 4 == 0) { /* aligned requests too */
            off &= ~4095ull;
            len = (len + 4095) & ~4095ull;
            if (off + len > size)
                len = size - off;
        }
        int rc = 0;
        if (op == 0) {
            rc = kova_disk_flush(d);
        } else if (op == 1) {
            rc = kova_disk_write_zeroes(d, off, len);
            memset(ref + off, 0, len);
        } else if (op == 2) {
            rc = kova_disk_discard(d, off, len);
            if (rc == 0)
                rc = kova_disk_pread(d, tmp, len, off);
            for (uint64_t j = 0; rc == 0 && j < len; j++) {
                if (tmp[j] != ref[off + j] && tmp[j] != 0) {
                    fprintf(stderr, "discard changed byte %llu to %u\n",
                            (unsigned long long)(off + j), tmp[j]);
                    return 1;
                }
            }
            memcpy(ref + off, tmp, len);
        } else {
            for (uint64_t j = 0; j < len; j++)
                tmp[j] = (uint8_t)mix(seed ^ (i << 32) ^ (j >> 3)) ^ (uint8_t)j;
            rc = kova_disk_pwrite(d, tmp, len, off);
            memcpy(ref + off, tmp, len);
        }
        if (rc < 0) {
            fprintf(stderr, "op %llu (%llu) failed: %s (%s)\n", (unsigned long long)i,
                    (unsigned long long)op, strerror(-rc), kova_disk_last_error(d));
            return 1;
        }
        if (i % 37 == 0) {
            rc = kova_disk_pread(d, tmp, len, off);
            if (rc < 0 || memcmp(tmp, ref + off, len)) {
                fprintf(stderr, "read-back mismatch after op %llu\n", (unsigned long long)i);
                return 1;
            }
        }
    }
    kova_disk_close(d);
    int rc = write_file(a[2], ref, size);
    if (rc < 0)
        die("write reference", rc);
    d = open_disk(a[0], a[1], KOVA_DISK_RDONLY);
    uint8_t *got = read_disk(d, seed);
    if (memcmp(got, ref, size)) {
        fprintf(stderr, "final contents differ from the reference\n");
        return 1;
    }
    kova_disk_close(d);
    free(got);
    free(ref);
    free(tmp);
    return 0;
}

/* The deterministic op sequence of the crash test. */
struct cop {
    uint64_t off, len;
    int zero;
    int flush_after;
};
static uint64_t crash_maxlen = 131072;
static struct cop crash_op(uint64_t seed, uint64_t i, uint64_t size)
{
    struct cop c;
    uint64_t h = mix(seed * 1000003 + i);
    c.len = 1 + mix(h) % crash_maxlen;
    if (c.len > size)
        c.len = size;
    c.off = mix(h + 1) % (size - c.len + 1);
    if (mix(h + 2) % 3 == 0) {
        uint64_t al = crash_maxlen < 65536 ? 4096 : 65536;
        c.off &= ~(al - 1);
        c.len = (c.len + al - 1) & ~(al - 1);
        if (c.off + c.len > size)
            c.len = size - c.off;
    }
    c.zero = mix(h + 3) % 10 == 0;
    c.flush_after = mix(h + 4) % 8 == 0;
    return c;
}
static uint8_t crash_byte(uint64_t seed, uint64_t i, uint64_t pos)
{
    return (uint8_t)(mix(seed ^ (i << 24) ^ (pos >> 6)) >> ((pos & 7) * 8)) ^ (uint8_t)(pos >> 3);
}

static int cmd_crashwriter(char **a, int n_args)
{
    if (n_args > 4)
        crash_maxlen = strtoull(a[4], NULL, 0);
    if (crash_maxlen < 1 || crash_maxlen > 131072)
        crash_maxlen = 131072;
    struct kova_disk *d = open_disk(a[0], a[1], 0);
    uint64_t seed = strtoull(a[2], NULL, 0), size = kova_disk_size(d);
    int ack = open(a[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (ack < 0)
        die("ack file", errno);
    uint8_t *buf = malloc(131072);
    for (uint64_t i = 0;; i++) {
        struct cop c = crash_op(seed, i, size);
        int rc;
        if (c.zero) {
            rc = kova_disk_write_zeroes(d, c.off, c.len);
        } else {
            for (uint64_t j = 0; j < c.len; j++)
                buf[j] = crash_byte(seed, i, c.off + j);
            rc = kova_disk_pwrite(d, buf, c.len, c.off);
        }
        if (rc < 0) {
            fprintf(stderr, "crashwriter op %llu: %s (%s)\n", (unsigned long long)i, strerror(-rc),
                    kova_disk_last_error(d));
            return 1;
        }
        if (c.flush_after) {
            if ((rc = kova_disk_flush(d)) < 0)
                die("flush", rc);
            uint64_t done = i + 1;
            if (pwrite(ack, &done, sizeof(done), 0) != sizeof(done))
                die("ack", errno);
        }
    }
}

static int cmd_verify(char **a, int n_args)
{
    if (n_args > 6)
        crash_maxlen = strtoull(a[6], NULL, 0);
    if (crash_maxlen < 1 || crash_maxlen > 131072)
        crash_maxlen = 131072;
    struct kova_disk *d = open_disk(a[0], a[1], KOVA_DISK_RDONLY);
    uint64_t seed = strtoull(a[2], NULL, 0), size = kova_disk_size(d);
    uint64_t acked = 0;
    int fd = open(a[3], O_RDONLY);
    if (fd >= 0) {
        if (pread(fd, &acked, sizeof(acked), 0) != sizeof(acked))
            acked = 0;
        close(fd);
    }
    uint8_t *exp = malloc(size);
    if (!exp)
        die("malloc", ENOMEM);
    read_file(a[4], exp, size);
    for (uint64_t i = 0; i < acked; i++) {
        struct cop c = crash_op(seed, i, size);
        for (uint64_t j = 0; j < c.len; j++)
            exp[c.off + j] = c.zero ? 0 : crash_byte(seed, i, c.off + j);
    }
    /* The group after the last acknowledged flush may have partly reached the disk. */
    uint64_t end = acked;
    while (!crash_op(seed, end, size).flush_after)
        end++;
    end++;
    uint8_t *got = read_disk(d, seed);
    uint64_t bad = 0;
    for (uint64_t p = 0; p < size; p++) {
        if (got[p] == exp[p])
            continue;
        int ok = 0;
        for (uint64_t i = acked; i < end && !ok; i++) {
            struct cop c = crash_op(seed, i, size);
            if (p >= c.off && p < c.off + c.len)
                ok = got[p] == (c.zero ? 0 : crash_byte(seed, i, p));
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "verify: byte %llu is %u, expected %u (acked %llu ops)\n",
                    (unsigned long long)p, got[p], exp[p], (unsigned long long)acked);
    }
    kova_disk_close(d);
    if (bad) {
        fprintf(stderr, "verify: %llu bytes wrong\n", (unsigned long long)bad);
        return 1;
    }
    int rc = write_file(a[5], got, size);
    if (rc < 0)
        die("write new base", rc);
    printf("verified: %llu acknowledged ops\n", (unsigned long long)acked);
    free(exp);
    free(got);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* bench IMG FMT read|write BLOCK COUNT seq|rand: COUNT requests of BLOCK bytes at queue depth
 * 1 (sequential from offset 0, or uniformly random block-aligned), a flush after writes; prints
 * the elapsed seconds. */
static int cmd_bench(char **a)
{
    struct kova_disk *d = open_disk(a[0], a[1], 0);
    int wr = !strcmp(a[2], "write");
    uint64_t bs = strtoull(a[3], NULL, 0), count = strtoull(a[4], NULL, 0);
    int rnd_off = !strcmp(a[5], "rand");
    uint64_t blocks = bs ? kova_disk_size(d) / bs : 0;
    if (!bs || !blocks || (!rnd_off && count > blocks)) {
        fprintf(stderr, "qcow2-tool: bad bench size\n");
        return 1;
    }
    uint8_t *buf = malloc(bs);
    memset(buf, 0xa5, bs);
    rng_state = 88172645463325252ull;
    double t = now();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off = (rnd_off ? rnd() % blocks : i) * bs;
        int rc = wr ? kova_disk_pwrite(d, buf, bs, off) : kova_disk_pread(d, buf, bs, off);
        if (rc < 0)
            die("bench I/O", rc);
    }
    if (wr && kova_disk_flush(d) < 0)
        die("flush", EIO);
    printf("%.6f\n", now() - t);
    kova_disk_close(d);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "dump"))
        return cmd_dump(argv + 2);
    if (argc >= 7 && !strcmp(argv[1], "randread"))
        return cmd_randread(argv + 2);
    if (argc >= 7 && !strcmp(argv[1], "randwrite"))
        return cmd_randwrite(argv + 2, argc - 2);
    if (argc >= 6 && !strcmp(argv[1], "crashwriter"))
        return cmd_crashwriter(argv + 2, argc - 2);
    if (argc >= 8 && !strcmp(argv[1], "verify"))
        return cmd_verify(argv + 2, argc - 2);
    if (argc >= 8 && !strcmp(argv[1], "bench"))
        return cmd_bench(argv + 2);
    fprintf(stderr, "usage: see the comment at the top of qcow2-tool.c\n");
    return 2;
}
