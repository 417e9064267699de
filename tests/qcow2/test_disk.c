/* SPDX-License-Identifier: Apache-2.0 */
/* Library tests without qemu-img: create/open/read/write/check round trips, raw backend,
 * backing chains (loops, depth, missing format), refusal cases, concurrent use. */
#include "kova/qcow2.h"
#include "qcow2_format.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/kova_test.h"

static char dir[256];
static char err[512];

static const char *p(const char *name)
{
    return kt_path(dir, name);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((i * 31 + seed * 7 + (i >> 9)) ^ seed);
}

static int check_clean(struct kova_disk *d)
{
    struct kova_qcow2_check r;
    int rc = kova_qcow2_check(d, &r, NULL, NULL);
    if (rc < 0 || r.corruptions || r.leaks) {
        fprintf(stderr, "check: rc=%d corruptions=%llu leaks=%llu\n", rc,
                (unsigned long long)r.corruptions, (unsigned long long)r.leaks);
        return 0;
    }
    return 1;
}

static void test_roundtrip(unsigned cb, uint64_t size)
{
    struct kova_qcow2_create_opts o = {.size = size, .cluster_bits = cb};
    CHECK(kova_qcow2_create(p("rt.qcow2"), &o, err, sizeof(err)) == 0);
    struct kova_disk *d;
    CHECK(kova_disk_open(&d, p("rt.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == 0);
    if (!d)
        return;
    CHECK(kova_disk_size(d) == size);
    CHECK(kova_disk_granularity(d) == 1u << cb);
    CHECK(kova_disk_format(d) == KOVA_DISK_QCOW2 && !kova_disk_readonly(d));
    uint8_t *ref = calloc(1, size), *got = malloc(size), *tmp = malloc(size);
    unsigned seed = 1;
    if (cb == 9) { /* fill the whole disk: the file outgrows the first refcount table */
        for (uint64_t off = 0; off < size; off += 65536) {
            fill(tmp, 65536, seed++);
            CHECK(kova_disk_pwrite(d, tmp, 65536, off) == 0);
            memcpy(ref + off, tmp, 65536);
        }
    }
    for (int i = 0; i < 200; i++) {
        uint64_t len = 1 + (uint64_t)rand() % 70000, off;
        if (len > size)
            len = size;
        off = (uint64_t)rand() % (size - len + 1);
        int op = rand() % 10;
        if (op == 0) {
            CHECK(kova_disk_write_zeroes(d, off, len) == 0);
            memset(ref + off, 0, len);
        } else if (op == 1) {
            CHECK(kova_disk_flush(d) == 0);
        } else {
            fill(tmp, len, seed++);
            CHECK(kova_disk_pwrite(d, tmp, len, off) == 0);
            memcpy(ref + off, tmp, len);
        }
    }
    CHECK(kova_disk_pread(d, got, size, 0) == 0);
    CHECK(memcmp(got, ref, size) == 0);
    /* Discard whole disk: reads zeros afterwards (no backing file). */
    CHECK(kova_disk_flush(d) == 0);
    CHECK(check_clean(d));
    /* Out of range and argument errors. */
    CHECK(kova_disk_pread(d, got, 2, size - 1) == -EINVAL);
    CHECK(kova_disk_pwrite(d, got, 1, size) == -EINVAL);
    CHECK(kova_disk_pwrite(d, got, 0, size) == 0);
    CHECK(kova_disk_pread(d, got, 1, UINT64_MAX) == -EINVAL);
    kova_disk_close(d);

    /* A second read-write open while one is held fails; read-only works. */
    CHECK(kova_disk_open(&d, p("rt.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY, err, sizeof(err)) ==
          0);
    CHECK(kova_disk_pread(d, got, size, 0) == 0);
    CHECK(memcmp(got, ref, size) == 0);
    CHECK(kova_disk_pwrite(d, got, 1, 0) == -EROFS);
    CHECK(check_clean(d));
    kova_disk_close(d);

    CHECK(kova_disk_open(&d, p("rt.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == 0);
    CHECK(kova_disk_discard(d, 0, size) == 0);
    CHECK(kova_disk_pread(d, got, size, 0) == 0);
    memset(ref, 0, size);
    CHECK(memcmp(got, ref, size) == 0);
    CHECK(check_clean(d));
    struct kova_disk *d2 = NULL;
    CHECK(kova_disk_open(&d2, p("rt.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == -EBUSY);
    kova_disk_close(d);
    free(ref);
    free(got);
    free(tmp);
}

static void write_raw(const char *path, const uint8_t *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, b, n) == (ssize_t)n);
    close(fd);
}

static void test_raw_and_backing(void)
{
    const size_t n = 3 << 20;
    uint8_t *base = malloc(n), *got = malloc(n);
    fill(base, n, 99);
    write_raw(p("base.raw"), base, n);

    struct kova_disk *d;
    CHECK(kova_disk_open(&d, p("base.raw"), KOVA_DISK_RAW, 0, err, sizeof(err)) == 0);
    CHECK(kova_disk_size(d) == n);
    CHECK(kova_disk_pread(d, got, n, 0) == 0 && memcmp(got, base, n) == 0);
    kova_disk_close(d);

    /* Overlay (relative backing name), 1 MiB larger than its backing file. */
    struct kova_qcow2_create_opts o = {
        .size = n + (1 << 20), .backing_file = "base.raw", .backing_format = KOVA_DISK_RAW};
    CHECK(kova_qcow2_create(p("ovl.qcow2"), &o, err, sizeof(err)) == 0);
    o.backing_format = 0;
    CHECK(kova_qcow2_create(p("bad.qcow2"), &o, err, sizeof(err)) == -EINVAL);
    o.backing_format = KOVA_DISK_RAW;
    o.backing_file = "missing.raw";
    CHECK(kova_qcow2_create(p("bad.qcow2"), &o, err, sizeof(err)) == -ENOENT);

    CHECK(kova_disk_open(&d, p("ovl.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == 0);
    uint8_t *big = calloc(1, n + (1 << 20));
    CHECK(kova_disk_pread(d, big, n + (1 << 20), 0) == 0);
    CHECK(memcmp(big, base, n) == 0);
    uint8_t z[4096] = {0};
    CHECK(memcmp(big + n, z, sizeof(z)) == 0);
    uint8_t w[1000];
    fill(w, sizeof(w), 5);
    CHECK(kova_disk_pwrite(d, w, sizeof(w), 70001) == 0); /* partial cluster: COW */
    memcpy(base + 70001, w, sizeof(w));
    CHECK(kova_disk_write_zeroes(d, 1 << 20, 1 << 16) == 0); /* whole cluster: zero flag */
    memset(base + (1 << 20), 0, 1 << 16);
    CHECK(kova_disk_discard(d, 2 << 20, 1 << 16) == 0); /* must not expose... anything */
    CHECK(kova_disk_pread(d, got, n, 0) == 0);
    CHECK(memcmp(got, base, (2 << 20)) == 0);
    CHECK(memcmp(got + (2 << 20) + (1 << 16), base + (2 << 20) + (1 << 16),
                 n - (2 << 20) - (1 << 16)) == 0);
    CHECK(check_clean(d));
    kova_disk_close(d);

    /* The backing file is untouched. */
    struct kova_disk *b;
    CHECK(kova_disk_open(&b, p("base.raw"), KOVA_DISK_RAW, KOVA_DISK_RDONLY, err, sizeof(err)) ==
          0);
    fill(base, n, 99);
    CHECK(kova_disk_pread(b, got, n, 0) == 0 && memcmp(got, base, n) == 0);
    kova_disk_close(b);
    free(big);
    free(base);
    free(got);
}

/* Adds a backing file name + format to an image made without one. */
static void set_backing(const char *img, const char *name, const char *fmt)
{
    int fd = open(img, O_RDWR);
    uint8_t hdr[1024];
    CHECK(fd >= 0 && pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
    be32_put(hdr + 112, QCOW2_EXT_BACKING_FORMAT);
    be32_put(hdr + 116, (uint32_t)strlen(fmt));
    memset(hdr + 120, 0, 16);
    memcpy(hdr + 120, fmt, strlen(fmt));
    memset(hdr + 136, 0, 8);
    if (name) {
        be64_put(hdr + 8, 512);
        be32_put(hdr + 16, (uint32_t)strlen(name));
        memcpy(hdr + 512, name, strlen(name));
    } else {
        be64_put(hdr + 8, 0);
    }
    CHECK(pwrite(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
    close(fd);
}

static void test_chains(void)
{
    struct kova_qcow2_create_opts o = {.size = 1 << 20};
    struct kova_disk *d;
    CHECK(kova_qcow2_create(p("a.qcow2"), &o, err, sizeof(err)) == 0);
    CHECK(kova_qcow2_create(p("b.qcow2"), &o, err, sizeof(err)) == 0);
    set_backing(p("a.qcow2"), "b.qcow2", "qcow2");
    set_backing(p("b.qcow2"), "a.qcow2", "qcow2");
    CHECK(kova_disk_open(&d, p("a.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == -ELOOP);
    CHECK(strstr(err, "loop") != NULL);
    /* NO_BACKING opens it (info/check). */
    CHECK(kova_disk_open(&d, p("a.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY | KOVA_DISK_NO_BACKING,
                         err, sizeof(err)) == 0);
    kova_disk_close(d);

    /* A chain of 20 images is refused with a depth error. */
    char name[64], prev[64];
    CHECK(kova_qcow2_create(p("c0.qcow2"), &o, err, sizeof(err)) == 0);
    for (int i = 1; i < 20; i++) {
        snprintf(name, sizeof(name), "c%d.qcow2", i);
        snprintf(prev, sizeof(prev), "c%d.qcow2", i - 1);
        CHECK(kova_qcow2_create(p(name), &o, err, sizeof(err)) == 0);
        set_backing(p(name), prev, "qcow2");
    }
    CHECK(kova_disk_open(&d, p("c19.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY, err, sizeof(err)) ==
          -ELOOP);
    CHECK(kova_disk_open(&d, p("c10.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY, err, sizeof(err)) ==
          0);
    kova_disk_close(d);

    /* Backing file without a recorded format: refused, not probed. */
    set_backing(p("a.qcow2"), "b.qcow2", "");
    CHECK(kova_disk_open(&d, p("a.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY, err, sizeof(err)) ==
          -ENOTSUP);
    CHECK(strstr(err, "no recorded format") != NULL);
    set_backing(p("a.qcow2"), "b.qcow2", "vmdk");
    CHECK(kova_disk_open(&d, p("a.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY, err, sizeof(err)) ==
          -ENOTSUP);
}

static void test_refusals(void)
{
    struct kova_disk *d;
    uint8_t junk[4096];
    fill(junk, sizeof(junk), 3);
    write_raw(p("junk"), junk, sizeof(junk));
    CHECK(kova_disk_open(&d, p("junk"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "magic") != NULL);
    CHECK(kova_disk_open(&d, p("nonexistent"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == -ENOENT);

    struct kova_qcow2_create_opts o = {.size = 1 << 20};
    CHECK(kova_qcow2_create(p("dirty.qcow2"), &o, err, sizeof(err)) == 0);
    int fd = open(p("dirty.qcow2"), O_RDWR);
    uint8_t v[8];
    be64_put(v, QCOW2_INCOMPAT_DIRTY);
    CHECK(pwrite(fd, v, 8, 72) == 8);
    close(fd);
    CHECK(kova_disk_open(&d, p("dirty.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == -ENOTSUP);
    CHECK(strstr(err, "dirty") != NULL);
    CHECK(kova_disk_open(&d, p("dirty.qcow2"), KOVA_DISK_QCOW2, KOVA_DISK_RDONLY, err,
                         sizeof(err)) == 0);
    kova_disk_close(d);

    o.exclusive = 1;
    CHECK(kova_qcow2_create(p("dirty.qcow2"), &o, err, sizeof(err)) == -EEXIST);
}

static void test_iov(enum kova_disk_format fmt, const char *path)
{
    struct kova_disk *d;
    CHECK(kova_disk_open(&d, path, fmt, 0, err, sizeof(err)) == 0);
    if (!d)
        return;
    uint8_t a[777], b[70000], c[3], r1[50000], r2[777 + 70000 + 3 - 50000];
    fill(a, sizeof(a), 11);
    fill(b, sizeof(b), 12);
    fill(c, sizeof(c), 13);
    struct iovec w[4] = {{a, sizeof(a)}, {NULL, 0}, {b, sizeof(b)}, {c, sizeof(c)}};
    uint64_t off = 65536 - 100;
    CHECK(kova_disk_pwritev(d, w, 4, off) == 0);
    struct iovec r[2] = {{r1, sizeof(r1)}, {r2, sizeof(r2)}};
    CHECK(kova_disk_preadv(d, r, 2, off) == 0);
    uint8_t *all = malloc(sizeof(a) + sizeof(b) + sizeof(c));
    memcpy(all, a, sizeof(a));
    memcpy(all + sizeof(a), b, sizeof(b));
    memcpy(all + sizeof(a) + sizeof(b), c, sizeof(c));
    CHECK(memcmp(r1, all, sizeof(r1)) == 0);
    CHECK(memcmp(r2, all + sizeof(r1), sizeof(r2)) == 0);
    CHECK(kova_disk_preadv(d, r, 2, kova_disk_size(d) - 100) == -EINVAL);
    CHECK(kova_disk_pwritev(d, w, -1, 0) == -EINVAL);
    struct iovec bad = {NULL, 5};
    CHECK(kova_disk_pwritev(d, &bad, 1, 0) == -EINVAL);
    free(all);
    kova_disk_close(d);
}

struct thr {
    struct kova_disk *d;
    int id;
    int ok;
    const uint8_t *base;
};

/* Threads 0-3: writes + read-back in their own MiB; 4: zeroes, discards and flushes in its MiB;
 * 5-6: read MiB 6-7 (backing-file data, read with the lock dropped) and compare. */
static void *worker(void *arg)
{
    struct thr *t = arg;
    uint8_t w[5000], r[5000];
    t->ok = 1;
    for (int i = 0; i < 300; i++) {
        uint64_t off = (uint64_t)t->id * (1 << 20) + (uint64_t)(i * 3331) % ((1 << 20) - 5000);
        if (t->id < 4) {
            fill(w, sizeof(w), (unsigned)(t->id * 1000 + i));
            if (kova_disk_pwrite(t->d, w, sizeof(w), off) < 0 ||
                kova_disk_pread(t->d, r, sizeof(r), off) < 0 || memcmp(w, r, sizeof(w)))
                t->ok = 0;
            if (i % 50 == 0 && kova_disk_flush(t->d) < 0)
                t->ok = 0;
        } else if (t->id == 4) {
            fill(w, sizeof(w), (unsigned)i);
            if (kova_disk_pwrite(t->d, w, sizeof(w), off) < 0 ||
                kova_disk_write_zeroes(t->d, off & ~4095ull, 8192) < 0 ||
                kova_disk_discard(t->d, (off + 4096) & ~4095ull, 4096) < 0 ||
                kova_disk_pread(t->d, r, 4096, off & ~4095ull) < 0)
                t->ok = 0;
            for (int k = 0; k < 4096; k++)
                if (r[k])
                    t->ok = 0;
            if (i % 10 == 0 && kova_disk_flush(t->d) < 0)
                t->ok = 0;
        } else {
            uint64_t roff = (6u << 20) + (uint64_t)(i * 7919 + t->id * 333) % ((2 << 20) - 5000);
            if (kova_disk_pread(t->d, r, sizeof(r), roff) < 0 ||
                memcmp(r, t->base + roff, sizeof(r)))
                t->ok = 0;
        }
    }
    return NULL;
}

static void test_threads(void)
{
    const size_t n = 8 << 20;
    uint8_t *base = malloc(n);
    fill(base, n, 77);
    write_raw(p("tbase.raw"), base, n);
    struct kova_qcow2_create_opts o = {.size = n,
                                       .cluster_bits = 12,
                                       .backing_file = "tbase.raw",
                                       .backing_format = KOVA_DISK_RAW};
    CHECK(kova_qcow2_create(p("thr.qcow2"), &o, err, sizeof(err)) == 0);
    struct kova_disk *d;
    CHECK(kova_disk_open(&d, p("thr.qcow2"), KOVA_DISK_QCOW2, 0, err, sizeof(err)) == 0);
    pthread_t th[7];
    struct thr t[7];
    for (int i = 0; i < 7; i++) {
        t[i] = (struct thr){.d = d, .id = i, .base = base};
        pthread_create(&th[i], NULL, worker, &t[i]);
    }
    for (int i = 0; i < 7; i++) {
        pthread_join(th[i], NULL);
        CHECK(t[i].ok);
    }
    CHECK(check_clean(d));
    kova_disk_close(d);
    free(base);
}

int main(void)
{
    kt_mkdtemp(dir, sizeof(dir), "kova-qcow2-test");
    srand(42);
    test_roundtrip(16, 5 << 20);
    test_roundtrip(12, 3 << 20);
    test_roundtrip(9, 12 << 20); /* 512-byte clusters: refcount table growth */
    test_raw_and_backing();
    test_iov(KOVA_DISK_QCOW2, p("ovl.qcow2"));
    test_iov(KOVA_DISK_RAW, p("base.raw"));
    test_chains();
    test_refusals();
    test_threads();
    kt_rm_tree(dir);
    return kt_finish("qcow2 disk tests");
}
