/* SPDX-License-Identifier: Apache-2.0 */
/* qcow2 header / table entry parsing (pure functions). */
#include "kova/common.h"
#include "qcow2_format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *known_incompat_name(unsigned bit)
{
    switch (bit) {
    case 0:
        return "dirty bit";
    case 1:
        return "corrupt bit";
    case 2:
        return "external data file";
    case 3:
        return "compression type";
    case 4:
        return "extended L2 entries";
    }
    return NULL;
}

/* Finds the feature name table entry of an incompatible bit (if the image has one). */
static void feature_name(const uint8_t *tab, size_t tablen, unsigned bit, char *out, size_t outlen)
{
    snprintf(out, outlen, "unknown incompatible feature bit %u", bit);
    for (size_t i = 0; tab && i + 48 <= tablen; i += 48) {
        if (tab[i] == 0 && tab[i + 1] == bit) {
            char name[47];
            memcpy(name, tab + i + 2, 46);
            name[46] = 0;
            for (char *p = name; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                    *p = '?';
            snprintf(out, outlen, "unknown incompatible feature bit %u (\"%s\")", bit, name);
            return;
        }
    }
}

int qcow2_parse_header(const uint8_t *buf, size_t len, struct qcow2_header *h, char *err,
                       size_t errlen)
{
    memset(h, 0, sizeof(*h));
    if (len < QCOW2_V2_HEADER_LEN)
        return kova_err(err, errlen, -EINVAL, "file too small for a qcow2 header");
    if (be32_get(buf) != QCOW2_MAGIC)
        return kova_err(err, errlen, -EINVAL, "not a qcow2 image (bad magic)");
    h->version = be32_get(buf + 4);
    if (h->version != 2 && h->version != 3)
        return kova_err(err, errlen, -ENOTSUP, "qcow2 version %u is not supported", h->version);
    h->backing_file_offset = be64_get(buf + 8);
    h->backing_file_size = be32_get(buf + 16);
    h->cluster_bits = be32_get(buf + 20);
    h->size = be64_get(buf + 24);
    h->crypt_method = be32_get(buf + 32);
    h->l1_size = be32_get(buf + 36);
    h->l1_table_offset = be64_get(buf + 40);
    h->refcount_table_offset = be64_get(buf + 48);
    h->refcount_table_clusters = be32_get(buf + 56);
    h->nb_snapshots = be32_get(buf + 60);
    h->snapshots_offset = be64_get(buf + 64);

    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return kova_err(err, errlen, -EINVAL, "invalid cluster_bits %u (must be 9..21)",
                        h->cluster_bits);
    const uint64_t cs = 1ull << h->cluster_bits;

    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    } else {
        if (len < QCOW2_V3_HEADER_LEN)
            return kova_err(err, errlen, -EINVAL, "file too small for a qcow2 v3 header");
        h->incompatible = be64_get(buf + 72);
        h->compatible = be64_get(buf + 80);
        h->autoclear = be64_get(buf + 88);
        h->refcount_order = be32_get(buf + 96);
        h->header_length = be32_get(buf + 100);
        if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length > cs ||
            h->header_length > len)
            return kova_err(err, errlen, -EINVAL, "invalid header_length %u", h->header_length);
        if (h->header_length > 104)
            h->compression_type = buf[104];
    }
    if (h->refcount_order > 6)
        return kova_err(err, errlen, -EINVAL, "invalid refcount_order %u (must be 0..6)",
                        h->refcount_order);
    if (h->crypt_method != 0)
        return kova_err(err, errlen, -ENOTSUP,
                        "encrypted qcow2 images (crypt_method %u) are not supported",
                        h->crypt_method);

    /* Header extensions: between the header and the backing file name (or cluster end). */
    const uint8_t *feat_tab = NULL;
    size_t feat_len = 0;
    size_t ext_end = (size_t)(len < cs ? len : cs);
    if (h->backing_file_offset && h->backing_file_offset > h->header_length &&
        h->backing_file_offset < ext_end)
        ext_end = (size_t)h->backing_file_offset;
    size_t pos = h->header_length;
    int have_data_file_ext = 0;
    while (pos + 8 <= ext_end) {
        uint32_t type = be32_get(buf + pos);
        uint32_t elen = be32_get(buf + pos + 4);
        pos += 8;
        if (type == QCOW2_EXT_END)
            break;
        if (elen > ext_end - pos)
            return kova_err(err, errlen, -EINVAL,
                            "header extension 0x%08x is larger than the header cluster", type);
        const uint8_t *e = buf + pos;
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            if (elen >= sizeof(h->backing_format))
                return kova_err(err, errlen, -EINVAL, "backing format name too long");
            memcpy(h->backing_format, e, elen);
            h->backing_format[elen] = 0;
            if (strlen(h->backing_format) != elen)
                return kova_err(err, errlen, -EINVAL, "bad backing format name");
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            feat_tab = e;
            feat_len = elen;
            break;
        case QCOW2_EXT_BITMAPS:
            if (elen < 24)
                return kova_err(err, errlen, -EINVAL, "bitmaps extension too short");
            h->has_bitmaps_ext = 1;
            h->nb_bitmaps = be32_get(e);
            h->bitmap_directory_size = be64_get(e + 8);
            h->bitmap_directory_offset = be64_get(e + 16);
            break;
        case QCOW2_EXT_DATA_FILE:
            have_data_file_ext = 1;
            break;
        default:
            break; /* unknown extensions are ignored (spec) */
        }
        pos += ((size_t)elen + 7) & ~(size_t)7;
    }

    uint64_t unknown = h->incompatible & ~QCOW2_INCOMPAT_KNOWN;
    if (unknown) {
        unsigned bit = (unsigned)__builtin_ctzll(unknown);
        char name[128];
        feature_name(feat_tab, feat_len, bit, name, sizeof(name));
        return kova_err(err, errlen, -ENOTSUP, "unsupported qcow2 feature: %s", name);
    }
    if ((h->incompatible & QCOW2_INCOMPAT_DATA_FILE) || have_data_file_ext)
        return kova_err(err, errlen, -ENOTSUP,
                        "unsupported qcow2 feature: %s (external data files are not supported)",
                        known_incompat_name(2));
    if (h->incompatible & QCOW2_INCOMPAT_EXTL2)
        return kova_err(err, errlen, -ENOTSUP, "unsupported qcow2 feature: %s",
                        known_incompat_name(4));
    if (h->compression_type > 1)
        return kova_err(err, errlen, -ENOTSUP, "unknown compression type %u", h->compression_type);
    if (h->compression_type != 0 && !(h->incompatible & QCOW2_INCOMPAT_COMPRESSION))
        return kova_err(err, errlen, -EINVAL,
                        "compression type %u without the compression type feature bit",
                        h->compression_type);

    /* Sizes and tables. */
    if (h->size > (1ull << 62))
        return kova_err(err, errlen, -EINVAL, "virtual size %llu is too large",
                        (unsigned long long)h->size);
    const uint32_t l2_bits = h->cluster_bits - 3;
    const uint64_t per_l1 = 1ull << (h->cluster_bits + l2_bits);
    uint64_t need_l1 = (h->size + per_l1 - 1) / per_l1;
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return kova_err(err, errlen, -EINVAL, "L1 table too large (%u entries)", h->l1_size);
    if (h->l1_size < need_l1)
        return kova_err(err, errlen, -EINVAL, "L1 table (%u entries) too small for %llu bytes",
                        h->l1_size, (unsigned long long)h->size);
    if (h->l1_size && (h->l1_table_offset == 0 || (h->l1_table_offset & (cs - 1)) ||
                       h->l1_table_offset > QCOW2_OFFSET_MASK))
        return kova_err(err, errlen, -EINVAL, "invalid L1 table offset 0x%llx",
                        (unsigned long long)h->l1_table_offset);
    if (h->refcount_table_offset == 0 || (h->refcount_table_offset & (cs - 1)) ||
        h->refcount_table_offset > QCOW2_OFFSET_MASK)
        return kova_err(err, errlen, -EINVAL, "invalid refcount table offset 0x%llx",
                        (unsigned long long)h->refcount_table_offset);
    if (h->refcount_table_clusters == 0 ||
        (uint64_t)h->refcount_table_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
        return kova_err(err, errlen, -EINVAL, "invalid refcount table size (%u clusters)",
                        h->refcount_table_clusters);
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return kova_err(err, errlen, -EINVAL, "too many snapshots (%u)", h->nb_snapshots);
    if (h->nb_snapshots && (h->snapshots_offset == 0 || (h->snapshots_offset & (cs - 1)) ||
                            h->snapshots_offset > QCOW2_OFFSET_MASK))
        return kova_err(err, errlen, -EINVAL, "invalid snapshot table offset 0x%llx",
                        (unsigned long long)h->snapshots_offset);

    if (h->backing_file_offset) {
        if (h->backing_file_size == 0 || h->backing_file_size >= sizeof(h->backing_file) ||
            h->backing_file_offset > cs || h->backing_file_offset + h->backing_file_size > cs ||
            h->backing_file_offset + h->backing_file_size > len)
            return kova_err(err, errlen, -EINVAL, "invalid backing file name location");
        memcpy(h->backing_file, buf + h->backing_file_offset, h->backing_file_size);
        h->backing_file[h->backing_file_size] = 0;
        if (strlen(h->backing_file) != h->backing_file_size)
            return kova_err(err, errlen, -EINVAL, "backing file name contains a NUL byte");
    }
    return 0;
}

void qcow2_encode_header(uint8_t *buf, const struct qcow2_header *h)
{
    memset(buf, 0, 112);
    be32_put(buf, QCOW2_MAGIC);
    be32_put(buf + 4, h->version);
    be64_put(buf + 8, h->backing_file_offset);
    be32_put(buf + 16, h->backing_file_size);
    be32_put(buf + 20, h->cluster_bits);
    be64_put(buf + 24, h->size);
    be32_put(buf + 32, h->crypt_method);
    be32_put(buf + 36, h->l1_size);
    be64_put(buf + 40, h->l1_table_offset);
    be64_put(buf + 48, h->refcount_table_offset);
    be32_put(buf + 56, h->refcount_table_clusters);
    be32_put(buf + 60, h->nb_snapshots);
    be64_put(buf + 64, h->snapshots_offset);
    be64_put(buf + 72, h->incompatible);
    be64_put(buf + 80, h->compatible);
    be64_put(buf + 88, h->autoclear);
    be32_put(buf + 96, h->refcount_order);
    be32_put(buf + 100, h->header_length);
    buf[104] = h->compression_type;
}

struct qcow2_l2e qcow2_decode_l2(uint64_t entry, uint32_t cluster_bits)
{
    struct qcow2_l2e r = {0};
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        uint32_t x = 62 - (cluster_bits - 8);
        uint64_t nsec = ((entry >> x) & ((1ull << (cluster_bits - 8)) - 1)) + 1;
        r.type = QCOW2_CL_COMPRESSED;
        r.offset = entry & ((1ull << x) - 1);
        r.cstart = r.offset & ~511ull;
        r.csectors = nsec;
        r.csize = nsec * 512 - (r.offset & 511);
        if (entry & QCOW2_OFLAG_COPIED)
            r.type = QCOW2_CL_INVALID;
        return r;
    }
    r.offset = entry & QCOW2_OFFSET_MASK;
    r.copied = (entry & QCOW2_OFLAG_COPIED) != 0;
    if (r.offset & ((1ull << cluster_bits) - 1)) {
        r.type = QCOW2_CL_INVALID;
        return r;
    }
    if (entry & QCOW2_OFLAG_ZERO)
        r.type = r.offset ? QCOW2_CL_ZERO_ALLOC : QCOW2_CL_ZERO_PLAIN;
    else
        r.type = r.offset ? QCOW2_CL_NORMAL : QCOW2_CL_UNALLOCATED;
    return r;
}

uint64_t qcow2_refcount_get(const uint8_t *block, uint32_t order, uint64_t index)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        unsigned w = 1u << order, per = 8 / w;
        unsigned sh = (unsigned)(index % per) * w;
        return (block[index / per] >> sh) & ((1u << w) - 1);
    }
    case 3:
        return block[index];
    case 4:
        return be16_get(block + index * 2);
    case 5:
        return be32_get(block + index * 4);
    default:
        return be64_get(block + index * 8);
    }
}

void qcow2_refcount_set(uint8_t *block, uint32_t order, uint64_t index, uint64_t value)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        unsigned w = 1u << order, per = 8 / w;
        unsigned sh = (unsigned)(index % per) * w;
        uint8_t mask = (uint8_t)(((1u << w) - 1) << sh);
        block[index / per] = (uint8_t)((block[index / per] & ~mask) | ((value << sh) & mask));
        break;
    }
    case 3:
        block[index] = (uint8_t)value;
        break;
    case 4:
        be16_put(block + index * 2, (uint16_t)value);
        break;
    case 5:
        be32_put(block + index * 4, (uint32_t)value);
        break;
    default:
        be64_put(block + index * 8, value);
        break;
    }
}

long qcow2_parse_snapshot(const uint8_t *buf, size_t len, struct qcow2_snapshot *sn)
{
    if (len < 40)
        return -EINVAL;
    sn->l1_table_offset = be64_get(buf);
    sn->l1_size = be32_get(buf + 8);
    sn->id_len = be16_get(buf + 12);
    sn->name_len = be16_get(buf + 14);
    sn->extra_len = be32_get(buf + 36);
    uint64_t total = 40ull + sn->extra_len + sn->id_len + sn->name_len;
    total = (total + 7) & ~7ull;
    if (total > len)
        return -EINVAL;
    return (long)total;
}
