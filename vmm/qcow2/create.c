/* SPDX-License-Identifier: Apache-2.0 */
/* Creating qcow2 v3 images: header | refcount table | refcount blocks | L1 table. */
#include "kova/common.h"
#include "disk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kova_qcow2_create(const char *path, const struct kova_qcow2_create_opts *o, char *err,
                      size_t errlen)
{
    unsigned cb = o->cluster_bits ? o->cluster_bits : 16;
    if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS)
        return kova_err(err, errlen, -EINVAL, "cluster size must be 512 B .. 2 MiB");
    uint64_t cs = 1ull << cb;
    uint64_t size = o->size;
    const char *bfmt = NULL;
    size_t blen = 0;

    if (o->backing_file) {
        bfmt = kova_disk_format_name(o->backing_format);
        if (o->backing_format != KOVA_DISK_RAW && o->backing_format != KOVA_DISK_QCOW2)
            return kova_err(err, errlen, -EINVAL, "a backing file needs its format (raw or qcow2)");
        blen = strlen(o->backing_file);
        if (blen == 0 || blen > 1023)
            return kova_err(err, errlen, -EINVAL, "backing file name length must be 1..1023");
        /* Check the backing file opens, resolved as the image will resolve it. */
        char bpath[8192];
        const char *slash = strrchr(path, '/');
        if (o->backing_file[0] != '/' && slash)
            snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - path), path, o->backing_file);
        else
            snprintf(bpath, sizeof(bpath), "%s", o->backing_file);
        struct kova_disk *b;
        char berr[256];
        int rc = kova_disk_open(&b, bpath, o->backing_format, KOVA_DISK_RDONLY, berr, sizeof(berr));
        if (rc < 0)
            return kova_err(err, errlen, rc, "backing file: %s", berr);
        if (size == 0)
            size = kova_disk_size(b);
        kova_disk_close(b);
    }
    size = (size + 511) & ~511ull;
    if (size > (1ull << 60))
        return kova_err(err, errlen, -EFBIG, "size too large");

    /* Header cluster contents. */
    size_t hlen = 112;
    size_t ext = bfmt ? 8 + ((strlen(bfmt) + 7) & ~7u) : 0;
    size_t boff = hlen + ext + 8;
    if (boff + blen > cs)
        return kova_err(err, errlen, -EINVAL, "backing file name does not fit the header cluster");

    uint64_t per_l1 = 1ull << (cb + cb - 3);
    uint64_t l1_entries = (size + per_l1 - 1) / per_l1;
    if (l1_entries * 8 > QCOW2_MAX_L1_BYTES)
        return kova_err(err, errlen, -EFBIG, "size too large for this cluster size");
    uint64_t L = (l1_entries * 8 + cs - 1) / cs;
    uint64_t epb = cs * 8 / 16;
    uint64_t T = 1, B = 1;
    for (;;) {
        uint64_t total = 1 + T + B + L;
        uint64_t B2 = (total + epb - 1) / epb;
        uint64_t T2 = (B2 * 8 + cs - 1) / cs;
        if (B2 == B && T2 == T)
            break;
        B = B2;
        T = T2;
    }
    if (T * cs > QCOW2_MAX_REFTABLE_BYTES)
        return kova_err(err, errlen, -EFBIG, "image too large");
    uint64_t total = 1 + T + B + L;
    uint8_t *img = calloc(total, cs);
    if (!img)
        return -ENOMEM;

    struct qcow2_header h;
    memset(&h, 0, sizeof(h));
    h.version = 3;
    h.cluster_bits = cb;
    h.size = size;
    h.l1_size = (uint32_t)l1_entries;
    h.l1_table_offset = l1_entries ? (1 + T + B) * cs : 0;
    h.refcount_table_offset = cs;
    h.refcount_table_clusters = (uint32_t)T;
    h.refcount_order = 4;
    h.header_length = (uint32_t)hlen;
    if (o->backing_file) {
        h.backing_file_offset = boff;
        h.backing_file_size = (uint32_t)blen;
    }
    qcow2_encode_header(img, &h);
    if (bfmt) {
        be32_put(img + hlen, QCOW2_EXT_BACKING_FORMAT);
        be32_put(img + hlen + 4, (uint32_t)strlen(bfmt));
        memcpy(img + hlen + 8, bfmt, strlen(bfmt));
        memcpy(img + boff, o->backing_file, blen);
    }
    for (uint64_t b = 0; b < B; b++)
        be64_put(img + cs + b * 8, (1 + T + b) * cs);
    for (uint64_t c = 0; c < total; c++)
        qcow2_refcount_set(img + (1 + T + c / epb) * cs, 4, c % epb, 1);

    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (o->exclusive ? O_EXCL : O_TRUNC), 0644);
    if (fd < 0) {
        int e = errno;
        free(img);
        return kova_err(err, errlen, -e, "cannot create '%s': %s", path, strerror(e));
    }
    int rc = ftruncate(fd, 0) < 0 ? -errno : 0;
    if (rc == 0)
        rc = kd_pwrite_full(fd, img, total * cs, 0);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    free(img);
    close(fd);
    if (rc < 0)
        return kova_err(err, errlen, rc, "writing '%s': %s", path, strerror(-rc));
    return 0;
}
