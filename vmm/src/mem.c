/* SPDX-License-Identifier: Apache-2.0 */
#include "mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

void gm_layout(struct guest_mem *gm, uint64_t size)
{
    memset(gm, 0, sizeof(*gm));
    gm->size = size;
    gm->low_size = size < GM_GAP_START ? size : GM_GAP_START;
    gm->high_size = size - gm->low_size;
}

int gm_alloc(struct guest_mem *gm, uint64_t size)
{
    gm_layout(gm, size);
    if (size == 0 || size > (UINT64_C(1) << 46))
        return -EINVAL;
    /* 2 MiB aligned, so that guest and host huge pages line up (guest address 0 and 4 GiB are
     * 2 MiB aligned too); transparent huge pages cut the number of first-touch faults, which
     * dominate a fresh guest's boot, by up to 512. */
    size_t align = GM_HUGE_PAGE, len = (size_t)size + align;
    uint8_t *p =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    uint8_t *start = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    size_t tail = (size_t)((p + len) - (start + size));
    if (tail)
        munmap(start + size, tail);
    madvise(start, (size_t)size, MADV_HUGEPAGE); /* advice only: fine if THP is off */
    gm->host = start;
    return 0;
}

void gm_free(struct guest_mem *gm)
{
    if (gm->host)
        munmap(gm->host, (size_t)gm->size);
    gm->host = NULL;
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
    if (!gm->host || len > gm->size)
        return NULL;
    if (gpa < gm->low_size) {
        if (len > gm->low_size - gpa)
            return NULL;
        return gm->host + gpa;
    }
    if (gpa >= GM_HIGH_START && gpa - GM_HIGH_START < gm->high_size) {
        uint64_t off = gpa - GM_HIGH_START;
        if (len > gm->high_size - off)
            return NULL;
        return gm->host + gm->low_size + off;
    }
    return NULL;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
    void *p = gm_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(dst, p, (size_t)len);
    return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
    void *p = gm_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(p, src, (size_t)len);
    return 0;
}
