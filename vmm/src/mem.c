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
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    gm->host = p;
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
