/* SPDX-License-Identifier: Apache-2.0 */
/* qcow2 on-disk format: pure parsing and encoding (no I/O), unit-tested and fuzzed directly. */
#ifndef KOVA_QCOW2_FORMAT_H
#define KOVA_QCOW2_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define QCOW2_MAGIC              0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS   9
#define QCOW2_MAX_CLUSTER_BITS   21
#define QCOW2_MAX_L1_BYTES       (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS      65536u
#define QCOW2_V2_HEADER_LEN      72u
#define QCOW2_V3_HEADER_LEN      104u

#define QCOW2_INCOMPAT_DIRTY        (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT      (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE    (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION  (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2        (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN        0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define QCOW2_EXT_END            0u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857u
#define QCOW2_EXT_BITMAPS        0x23852875u
#define QCOW2_EXT_CRYPTO         0x0537be77u
#define QCOW2_EXT_DATA_FILE      0x44415441u

#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)
#define QCOW2_OFFSET_MASK      0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED      0x7f000000000001ffull
#define QCOW2_L2_RESERVED      0x3f000000000001feull
#define QCOW2_RT_RESERVED      0xff000000000001ffull

static inline uint16_t be16_get(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)((uint16_t)b[0] << 8 | b[1]);
}
static inline uint32_t be32_get(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t be64_get(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)be32_get(b) << 32 | be32_get(b + 4);
}
static inline void be16_put(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}
static inline void be32_put(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}
static inline void be64_put(void *p, uint64_t v)
{
    be32_put(p, (uint32_t)(v >> 32));
    be32_put((uint8_t *)p + 4, (uint32_t)v);
}

/* A validated header (all offsets/sizes checked against the format's limits). */
struct qcow2_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible, compatible, autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
    /* from the header extensions and the backing file name */
    char backing_file[1024];
    char backing_format[32];
    int has_bitmaps_ext;
    uint64_t bitmap_directory_offset, bitmap_directory_size;
    uint32_t nb_bitmaps;
};

/* Parses and validates the first cluster of an image (`len` bytes available at `buf`, normally
 * min(file size, cluster size), at least 72). Returns 0, or -EINVAL (malformed), -ENOTSUP
 * (a feature kova refuses) with a message in err. */
int qcow2_parse_header(const uint8_t *buf, size_t len, struct qcow2_header *h, char *err,
                       size_t errlen);

/* Encodes the fixed v3 header (112 bytes incl. compression type + padding) into buf. */
void qcow2_encode_header(uint8_t *buf, const struct qcow2_header *h);

enum qcow2_ctype {
    QCOW2_CL_UNALLOCATED,
    QCOW2_CL_ZERO_PLAIN,
    QCOW2_CL_ZERO_ALLOC,
    QCOW2_CL_NORMAL,
    QCOW2_CL_COMPRESSED,
    QCOW2_CL_INVALID,
};

struct qcow2_l2e {
    enum qcow2_ctype type;
    uint64_t offset;   /* host offset: cluster-aligned, or compressed data byte offset */
    uint64_t csize;    /* compressed: bytes from offset to the end of its last sector */
    uint64_t cstart;   /* compressed: offset & ~511 (refcount accounting start) */
    uint64_t csectors; /* compressed: 512-byte sectors counted for refcounts */
    int copied;
};

/* Decodes one L2 entry of an image with the given cluster_bits. Unaligned offsets of normal
 * clusters give QCOW2_CL_INVALID. */
struct qcow2_l2e qcow2_decode_l2(uint64_t entry, uint32_t cluster_bits);

/* Refcount block entry access for refcount_order 0..6 (width 1..64 bits). */
uint64_t qcow2_refcount_get(const uint8_t *block, uint32_t order, uint64_t index);
void qcow2_refcount_set(uint8_t *block, uint32_t order, uint64_t index, uint64_t value);

/* One snapshot table entry; returns its encoded length, or -EINVAL if it does not fit. */
struct qcow2_snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    uint16_t id_len, name_len;
    uint32_t extra_len;
};
long qcow2_parse_snapshot(const uint8_t *buf, size_t len, struct qcow2_snapshot *sn);

#endif
