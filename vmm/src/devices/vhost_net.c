/* SPDX-License-Identifier: Apache-2.0 */
#include "vhost_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VHOST_MEM_REGIONS 2

/* <linux/vhost.h> redefines virtq.h's VIRTIO_RING_F_* as bit numbers: not used below. */
#undef VIRTIO_RING_F_INDIRECT_DESC
#undef VIRTIO_RING_F_EVENT_IDX

_Static_assert(VHOST_NET_QUEUES == 2, "vhost-net: one RX and one TX ring");

int vhost_net_open(uint64_t *features, const char **why)
{
    int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        *why = "cannot open /dev/vhost-net";
        return -errno;
    }
    int r = 0;
    if (ioctl(fd, VHOST_SET_OWNER) < 0) {
        r = -errno;
        *why = "VHOST_SET_OWNER failed";
        goto fail;
    }
    uint64_t f = 0;
    if (ioctl(fd, VHOST_GET_FEATURES, &f) < 0) {
        r = -errno;
        *why = "VHOST_GET_FEATURES failed";
        goto fail;
    }
    if (!(f & (1ULL << 32))) {
        r = -ENOTSUP;
        *why = "this vhost-net lacks VIRTIO_F_VERSION_1";
        goto fail;
    }
    *features = f;
    return fd;
fail:
    close(fd);
    return r;
}

uint64_t vhost_net_features(uint64_t acked, uint64_t vhost_features)
{
    return acked & vhost_features & VHOST_NET_RING_FEATURES;
}

int vhost_ring_from_vq(const struct virtq *vq, const struct guest_mem *mem, struct vhost_ring *r)
{
    if (!vq->enabled || vq->broken)
        return -EINVAL;
    uint16_t n = vq->size;
    if (n == 0 || (n & (n - 1)) || (vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
        return -EINVAL;
    /* the sizes of virtio 1.x 2.7: with EVENT_IDX's used_event / avail_event words */
    const uint8_t *desc = gm_ptr(mem, vq->desc_gpa, 16ULL * n);
    const uint8_t *avail = gm_ptr(mem, vq->avail_gpa, 6 + 2ULL * n);
    const uint8_t *used = gm_ptr(mem, vq->used_gpa, 6 + 8ULL * n);
    if (!desc || !avail || !used)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    r->num = n;
    r->base = vq->last_avail;
    r->desc = (uint64_t)(uintptr_t)desc;
    r->avail = (uint64_t)(uintptr_t)avail;
    r->used = (uint64_t)(uintptr_t)used;
    r->kick = r->call = -1;
    return 0;
}

unsigned long vhost_mem_size(void)
{
    return sizeof(struct vhost_memory) + VHOST_MEM_REGIONS * sizeof(struct vhost_memory_region);
}

unsigned vhost_mem_fill(void *buf, const struct guest_mem *mem)
{
    struct vhost_memory *m = buf;
    memset(m, 0, vhost_mem_size());
    unsigned n = 0;
    if (mem->low_size)
        m->regions[n++] = (struct vhost_memory_region){
            .guest_phys_addr = 0,
            .memory_size = mem->low_size,
            .userspace_addr = (uint64_t)(uintptr_t)mem->host,
        };
    if (mem->high_size)
        m->regions[n++] = (struct vhost_memory_region){
            .guest_phys_addr = GM_HIGH_START,
            .memory_size = mem->high_size,
            .userspace_addr = (uint64_t)(uintptr_t)(mem->host + mem->low_size),
        };
    m->nregions = n;
    return n;
}

static int set_file(int fd, unsigned long req, unsigned index, int efd)
{
    struct vhost_vring_file f = {.index = index, .fd = efd};
    return ioctl(fd, req, &f) < 0 ? -errno : 0;
}

static int ring_setup(int fd, unsigned q, const struct vhost_ring *r, const char **why)
{
    struct vhost_vring_state st = {.index = q, .num = r->num};
    if (ioctl(fd, VHOST_SET_VRING_NUM, &st) < 0) {
        *why = "VHOST_SET_VRING_NUM failed";
        return -errno;
    }
    st.num = r->base;
    if (ioctl(fd, VHOST_SET_VRING_BASE, &st) < 0) {
        *why = "VHOST_SET_VRING_BASE failed";
        return -errno;
    }
    struct vhost_vring_addr a = {
        .index = q,
        .desc_user_addr = r->desc,
        .avail_user_addr = r->avail,
        .used_user_addr = r->used,
    };
    if (ioctl(fd, VHOST_SET_VRING_ADDR, &a) < 0) {
        *why = "VHOST_SET_VRING_ADDR failed";
        return -errno;
    }
    int e = set_file(fd, VHOST_SET_VRING_KICK, q, r->kick);
    if (e < 0) {
        *why = "VHOST_SET_VRING_KICK failed";
        return e;
    }
    if ((e = set_file(fd, VHOST_SET_VRING_CALL, q, r->call)) < 0) {
        *why = "VHOST_SET_VRING_CALL failed";
        return e;
    }
    return 0;
}

int vhost_net_start(int fd, uint64_t features, const struct guest_mem *mem,
                    const struct vhost_ring ring[VHOST_NET_QUEUES], int backend, const char **why)
{
    int r = 0;
    if (ioctl(fd, VHOST_SET_FEATURES, &features) < 0) {
        *why = "VHOST_SET_FEATURES failed";
        return -errno;
    }
    union {
        struct vhost_memory m;
        uint8_t bytes[sizeof(struct vhost_memory) +
                      VHOST_MEM_REGIONS * sizeof(struct vhost_memory_region)];
    } tbl;
    vhost_mem_fill(&tbl, mem);
    if (ioctl(fd, VHOST_SET_MEM_TABLE, &tbl.m) < 0) {
        *why = "VHOST_SET_MEM_TABLE failed";
        return -errno;
    }
    for (unsigned q = 0; q < VHOST_NET_QUEUES; q++)
        if ((r = ring_setup(fd, q, &ring[q], why)) < 0)
            goto undo;
    for (unsigned q = 0; q < VHOST_NET_QUEUES; q++) {
        if ((r = set_file(fd, VHOST_NET_SET_BACKEND, q, backend)) < 0) {
            *why = "VHOST_NET_SET_BACKEND failed";
            goto undo;
        }
    }
    return 0;
undo:
    vhost_net_stop(fd, NULL);
    return r;
}

int vhost_net_stop(int fd, uint16_t base[VHOST_NET_QUEUES])
{
    int r = 0, e;
    for (unsigned q = 0; q < VHOST_NET_QUEUES; q++) {
        if ((e = set_file(fd, VHOST_NET_SET_BACKEND, q, -1)) < 0 && !r)
            r = e;
        struct vhost_vring_state st = {.index = q};
        if (ioctl(fd, VHOST_GET_VRING_BASE, &st) < 0 && !r)
            r = -errno;
        if (base)
            base[q] = (uint16_t)st.num;
        if ((e = set_file(fd, VHOST_SET_VRING_KICK, q, VHOST_FILE_UNBIND)) < 0 && !r)
            r = e;
        if ((e = set_file(fd, VHOST_SET_VRING_CALL, q, VHOST_FILE_UNBIND)) < 0 && !r)
            r = e;
    }
    return r;
}
