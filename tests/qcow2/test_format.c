/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pure qcow2 parsing code (header validation, L2 entries, refcounts). */
#include "qcow2_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/kova_test.h"

#define CS 65536
static uint8_t buf[CS];
static char err[256];

static void base_header(struct qcow2_header *h)
{
    memset(h, 0, sizeof(*h));
    h->version = 3;
    h->cluster_bits = 16;
    h->size = 1ull << 30;
    h->l1_size = 2;
    h->l1_table_offset = 3 * CS;
    h->refcount_table_offset = CS;
    h->refcount_table_clusters = 1;
    h->refcount_order = 4;
    h->header_length = 112;
}

static int parse_with(void (*mutate)(struct qcow2_header *, uint8_t *), struct qcow2_header *out)
{
    struct qcow2_header h;
    base_header(&h);
    memset(buf, 0, sizeof(buf));
    qcow2_encode_header(buf, &h);
    if (mutate)
        mutate(&h, buf);
    err[0] = 0;
    return qcow2_parse_header(buf, sizeof(buf), out, err, sizeof(err));
}

static void m_magic(struct qcow2_header *h, uint8_t *b)
{
    b[0] = 'X';
}
static void m_version(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 4, 4);
}
static void m_cb_small(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 20, 8);
}
static void m_cb_big(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 20, 22);
}
static void m_crypt(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 32, 2);
}
static void m_l1_small(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 36, 1);
}
static void m_l1_unaligned(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 40, 3 * CS + 8);
}
static void m_l1_huge(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 36, 0x7fffffff);
}
static void m_rt_zero(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 48, 0);
}
static void m_rt_clusters(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 56, 1000);
}
static void m_refcount_order(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 96, 7);
}
static void m_hlen_small(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 100, 100);
}
static void m_hlen_big(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 100, CS + 8);
}
static void m_extl2(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 72, 1ull << 4);
}
static void m_datafile(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 72, 1ull << 2);
}
static void m_unknown(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 72, 1ull << 9);
    /* feature name table naming bit 9 */
    be32_put(b + 112, QCOW2_EXT_FEATURE_TABLE);
    be32_put(b + 116, 48);
    b[120] = 0;
    b[121] = 9;
    memcpy(b + 122, "frobnicate", 10);
}
static void m_unknown_noname(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 72, 1ull << 40);
}
static void m_zstd_nobit(struct qcow2_header *h, uint8_t *b)
{
    b[104] = 1;
}
static void m_zstd(struct qcow2_header *h, uint8_t *b)
{
    b[104] = 1;
    be64_put(b + 72, 1ull << 3);
}
static void m_ctype2(struct qcow2_header *h, uint8_t *b)
{
    b[104] = 2;
    be64_put(b + 72, 1ull << 3);
}
static void m_backing(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 112, QCOW2_EXT_BACKING_FORMAT);
    be32_put(b + 116, 5);
    memcpy(b + 120, "qcow2", 5);
    be64_put(b + 8, 136);
    be32_put(b + 16, 8);
    memcpy(b + 136, "base.img", 8);
}
static void m_backing_out(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 8, CS - 4);
    be32_put(b + 16, 8);
}
static void m_backing_long(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 8, 512);
    be32_put(b + 16, 2000);
}
static void m_ext_overflow(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 112, 0x12345678);
    be32_put(b + 116, 0xfffffff0u);
}
static void m_size_huge(struct qcow2_header *h, uint8_t *b)
{
    be64_put(b + 24, ~0ull);
}
static void m_snap_unaligned(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 60, 1);
    be64_put(b + 64, 12345);
}
static void m_v2(struct qcow2_header *h, uint8_t *b)
{
    be32_put(b + 4, 2);
    memset(b + 72, 0xee, 40); /* ignored in v2 */
    memset(b + 72, 0, 8);     /* but the extension area starts at 72: end marker */
}

static void test_header(void)
{
    struct qcow2_header h;
    CHECK(parse_with(NULL, &h) == 0);
    CHECK(h.version == 3 && h.cluster_bits == 16 && h.l1_size == 2 && h.refcount_order == 4);
    CHECK(h.size == 1ull << 30 && h.l1_table_offset == 3 * CS && h.compression_type == 0);

    CHECK(parse_with(m_magic, &h) == -EINVAL);
    CHECK(parse_with(m_version, &h) == -ENOTSUP && strstr(err, "version 4"));
    CHECK(parse_with(m_cb_small, &h) == -EINVAL && strstr(err, "cluster_bits"));
    CHECK(parse_with(m_cb_big, &h) == -EINVAL);
    CHECK(parse_with(m_crypt, &h) == -ENOTSUP && strstr(err, "encrypt"));
    CHECK(parse_with(m_l1_small, &h) == -EINVAL && strstr(err, "L1"));
    CHECK(parse_with(m_l1_unaligned, &h) == -EINVAL);
    CHECK(parse_with(m_l1_huge, &h) == -EINVAL);
    CHECK(parse_with(m_rt_zero, &h) == -EINVAL);
    CHECK(parse_with(m_rt_clusters, &h) == -EINVAL);
    CHECK(parse_with(m_refcount_order, &h) == -EINVAL);
    CHECK(parse_with(m_hlen_small, &h) == -EINVAL);
    CHECK(parse_with(m_hlen_big, &h) == -EINVAL);
    CHECK(parse_with(m_extl2, &h) == -ENOTSUP && strstr(err, "extended L2"));
    CHECK(parse_with(m_datafile, &h) == -ENOTSUP && strstr(err, "external data file"));
    CHECK(parse_with(m_unknown, &h) == -ENOTSUP && strstr(err, "frobnicate") &&
          strstr(err, "bit 9"));
    CHECK(parse_with(m_unknown_noname, &h) == -ENOTSUP && strstr(err, "bit 40"));
    CHECK(parse_with(m_zstd_nobit, &h) == -EINVAL);
    CHECK(parse_with(m_zstd, &h) == 0 && h.compression_type == 1);
    CHECK(parse_with(m_ctype2, &h) == -ENOTSUP);
    CHECK(parse_with(m_backing, &h) == 0 && !strcmp(h.backing_file, "base.img") &&
          !strcmp(h.backing_format, "qcow2"));
    CHECK(parse_with(m_backing_out, &h) == -EINVAL);
    CHECK(parse_with(m_backing_long, &h) == -EINVAL);
    CHECK(parse_with(m_ext_overflow, &h) == -EINVAL);
    CHECK(parse_with(m_size_huge, &h) == -EINVAL);
    CHECK(parse_with(m_snap_unaligned, &h) == -EINVAL);
    CHECK(parse_with(m_v2, &h) == 0 && h.version == 2 && h.refcount_order == 4 &&
          h.incompatible == 0 && h.header_length == 72);

    /* Short buffers. */
    memset(buf, 0, sizeof(buf));
    struct qcow2_header b;
    base_header(&b);
    qcow2_encode_header(buf, &b);
    CHECK(qcow2_parse_header(buf, 71, &h, err, sizeof(err)) == -EINVAL);
    CHECK(qcow2_parse_header(buf, 100, &h, err, sizeof(err)) == -EINVAL);
    CHECK(qcow2_parse_header(buf, 112, &h, err, sizeof(err)) == 0);
}

static void test_l2(void)
{
    struct qcow2_l2e e;
    e = qcow2_decode_l2(0, 16);
    CHECK(e.type == QCOW2_CL_UNALLOCATED);
    e = qcow2_decode_l2(0x50000ull | QCOW2_OFLAG_COPIED, 16);
    CHECK(e.type == QCOW2_CL_NORMAL && e.offset == 0x50000 && e.copied);
    e = qcow2_decode_l2(0x50000ull, 16);
    CHECK(e.type == QCOW2_CL_NORMAL && !e.copied);
    e = qcow2_decode_l2(QCOW2_OFLAG_ZERO, 16);
    CHECK(e.type == QCOW2_CL_ZERO_PLAIN);
    e = qcow2_decode_l2(0x70000ull | QCOW2_OFLAG_ZERO, 16);
    CHECK(e.type == QCOW2_CL_ZERO_ALLOC && e.offset == 0x70000);
    e = qcow2_decode_l2(0x50200ull, 16); /* not cluster aligned */
    CHECK(e.type == QCOW2_CL_INVALID);
    e = qcow2_decode_l2(0x50200ull, 9); /* aligned for 512-byte clusters */
    CHECK(e.type == QCOW2_CL_NORMAL);
    for (unsigned cb = 9; cb <= 21; cb++) {
        unsigned x = 62 - (cb - 8);
        uint64_t off = 0x123457ull, sec = (1ull << (cb - 8)) - 1;
        uint64_t ent = QCOW2_OFLAG_COMPRESSED | (sec << x) | off;
        e = qcow2_decode_l2(ent, cb);
        CHECK(e.type == QCOW2_CL_COMPRESSED && e.offset == off);
        CHECK(e.csectors == sec + 1 && e.cstart == (off & ~511ull));
        CHECK(e.csize == (sec + 1) * 512 - (off & 511));
        e = qcow2_decode_l2(ent | QCOW2_OFLAG_COPIED, cb);
        CHECK(e.type == QCOW2_CL_INVALID);
    }
}

static void test_refcounts(void)
{
    uint8_t blk[4096];
    for (uint32_t order = 0; order <= 6; order++) {
        uint64_t bits = 1u << order, n = sizeof(blk) * 8 / bits;
        uint64_t max = order == 6 ? ~0ull : (1ull << bits) - 1;
        memset(blk, 0, sizeof(blk));
        for (uint64_t i = 0; i < n; i++)
            qcow2_refcount_set(blk, order, i, (i * 2654435761u) & max);
        int ok = 1;
        for (uint64_t i = 0; i < n; i++)
            ok &= qcow2_refcount_get(blk, order, i) == ((i * 2654435761u) & max);
        CHECK(ok);
        qcow2_refcount_set(blk, order, 5, max);
        CHECK(qcow2_refcount_get(blk, order, 5) == max);
        CHECK(qcow2_refcount_get(blk, order, 4) == ((4ull * 2654435761u) & max));
        CHECK(qcow2_refcount_get(blk, order, 6) == ((6ull * 2654435761u) & max));
    }
    /* Layout: 1-bit refcounts are LSB first within a byte; 16-bit are big-endian. */
    memset(blk, 0, sizeof(blk));
    qcow2_refcount_set(blk, 0, 1, 1);
    CHECK(blk[0] == 2);
    qcow2_refcount_set(blk, 4, 1, 0x0102);
    CHECK(blk[2] == 1 && blk[3] == 2);
}

static void test_snapshot(void)
{
    uint8_t s[64] = {0};
    struct qcow2_snapshot sn;
    be64_put(s, 0x30000);
    be32_put(s + 8, 16);
    be16_put(s + 12, 1);
    be16_put(s + 14, 2);
    be32_put(s + 36, 16);
    CHECK(qcow2_parse_snapshot(s, sizeof(s), &sn) == 64 && sn.l1_size == 16 &&
          sn.l1_table_offset == 0x30000);
    CHECK(qcow2_parse_snapshot(s, 60, &sn) == -EINVAL);
    CHECK(qcow2_parse_snapshot(s, 39, &sn) == -EINVAL);
    be32_put(s + 36, 0xffffffffu);
    CHECK(qcow2_parse_snapshot(s, sizeof(s), &sn) == -EINVAL);
}

int main(void)
{
    test_header();
    test_l2();
    test_refcounts();
    test_snapshot();
    return kt_finish("qcow2 format tests");
}
