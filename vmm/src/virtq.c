/* SPDX-License-Identifier: Apache-2.0 */
#include "virtq.h"
#include "log.h"

#include <errno.h>
#include <string.h>

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

static uint16_t ld16(const volatile uint8_t *p)
{
    uint16_t v;
    memcpy(&v, (const void *)p, 2);
    return v;
}
static uint32_t ld32(const volatile uint8_t *p)
{
    uint32_t v;
    memcpy(&v, (const void *)p, 4);
    return v;
}
static uint64_t ld64(const volatile uint8_t *p)
{
    uint64_t v;
    memcpy(&v, (const void *)p, 8);
    return v;
}

static void st16(volatile uint8_t *p, uint16_t v)
{
    memcpy((void *)p, &v, 2);
}

void virtq_reset(struct virtq *vq, uint16_t max_size)
{
    memset(vq, 0, sizeof(*vq));
    vq->max_size = max_size;
    vq->size = max_size;
    vq->msix_vector = VQ_NO_VECTOR;
}

int virtq_enable(struct virtq *vq, const struct guest_mem *mem)
{
    uint16_t n = vq->size;
    if (n == 0 || n > vq->max_size || (n & (n - 1)))
        return -EINVAL;
    if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
        return -EINVAL;
    vq->desc = gm_ptr(mem, vq->desc_gpa, 16ULL * n);
    vq->avail = gm_ptr(mem, vq->avail_gpa, 6 + 2ULL * n);
    vq->used = gm_ptr(mem, vq->used_gpa, 6 + 8ULL * n);
    if (!vq->desc || !vq->avail || !vq->used)
        return -EINVAL;
    vq->last_avail = 0;
    vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_valid = false;
    vq->broken = false;
    vq->enabled = true;
    return 0;
}

static int broken(struct virtq *vq, const char *why)
{
    if (!vq->broken)
        log_warn("virtio: guest broke a queue: %s", why);
    vq->broken = true;
    return -EINVAL;
}

int virtq_pop(struct virtq *vq, const struct guest_mem *mem, struct vq_chain *c)
{
    if (!vq->enabled || vq->broken)
        return vq->broken ? -EINVAL : 0;
    uint16_t avail_idx = ld16(vq->avail + 2);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (avail_idx == vq->last_avail && vq->event_idx) {
        /* avail_event: notify me when the next buffer is made available; then look again. */
        st16(vq->used + 4 + 8 * (size_t)vq->size, vq->last_avail);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        avail_idx = ld16(vq->avail + 2);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    }
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
    if (pending == 0)
        return 0;
    if (pending > vq->size)
        return broken(vq, "avail index ran ahead by more than the queue size");
    uint16_t head = ld16(vq->avail + 4 + 2 * (vq->last_avail % vq->size));
    if (head >= vq->size)
        return broken(vq, "head descriptor index out of range");
    c->head = head;
    c->n = 0;
    c->readable = c->writable = 0;
    const volatile uint8_t *table = vq->desc; /* the ring's descriptors or an indirect table */
    uint32_t entries = vq->size;
    bool indirect = false;
    uint16_t i = head;
    for (;;) {
        if (c->n >= entries || c->n >= VQ_MAX_CHAIN)
            return broken(vq, "descriptor chain too long or looping");
        const volatile uint8_t *d = table + 16 * (size_t)i;
        uint64_t addr = ld64(d);
        uint32_t len = ld32(d + 8);
        uint16_t flags = ld16(d + 12);
        uint16_t next = ld16(d + 14);
        if (flags & VIRTQ_DESC_F_INDIRECT) {
            if (!vq->indirect)
                return broken(vq, "indirect descriptor (not negotiated)");
            if (indirect)
                return broken(vq, "indirect descriptor inside an indirect table");
            if (c->n || (flags & VIRTQ_DESC_F_NEXT))
                return broken(vq, "indirect descriptor not alone in its chain");
            if (len == 0 || len % 16 || len / 16 > VQ_MAX_CHAIN)
                return broken(vq, "indirect table of a bad length");
            table = gm_ptr(mem, addr, len);
            if (!table)
                return broken(vq, "indirect table outside guest memory");
            entries = len / 16;
            indirect = true;
            i = 0;
            continue;
        }
        bool w = flags & VIRTQ_DESC_F_WRITE;
        /* by flag, not by bytes: a zero-length writable one counts too (virtio 1.x 2.7.4.2) */
        if (!w && c->n && c->buf[c->n - 1].writable)
            return broken(vq, "readable descriptor after a writable one");
        uint8_t *p = gm_ptr(mem, addr, len);
        if (!p)
            return broken(vq, "buffer outside guest memory");
        c->buf[c->n++] = (struct vq_buf){p, len, w};
        if (w)
            c->writable += len;
        else
            c->readable += len;
        if (!(flags & VIRTQ_DESC_F_NEXT))
            break;
        if (next >= entries)
            return broken(vq, "next descriptor index out of range");
        i = next;
    }
    vq->last_avail++;
    return 1;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
    volatile uint8_t *e = vq->used + 4 + 8 * (size_t)(vq->used_idx % vq->size);
    uint32_t id = head;
    memcpy((void *)e, &id, 4);
    memcpy((void *)(e + 4), &len, 4);
    vq->used_idx++;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    uint16_t idx = vq->used_idx;
    memcpy((void *)(vq->used + 2), &idx, 2);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_should_notify(struct virtq *vq)
{
    if (!vq->event_idx)
        return !(ld16(vq->avail) & 1);
    uint16_t old = vq->signalled_used, now = vq->used_idx;
    bool valid = vq->signalled_valid;
    vq->signalled_used = now;
    vq->signalled_valid = true;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* used idx published before used_event is read */
    uint16_t used_event = ld16(vq->avail + 4 + 2 * (size_t)vq->size);
    return !valid || (uint16_t)(now - used_event - 1) < (uint16_t)(now - old);
}

int vq_chain_iov(const struct vq_chain *c, bool writable, uint64_t skip, uint64_t len,
                 struct iovec *iov)
{
    uint64_t have = writable ? c->writable : c->readable;
    if (skip > have || len > have - skip)
        return -EINVAL;
    int k = 0;
    for (unsigned i = 0; i < c->n && len; i++) {
        const struct vq_buf *b = &c->buf[i];
        if (b->writable != writable)
            continue;
        if (skip >= b->len) {
            skip -= b->len;
            continue;
        }
        uint64_t m = b->len - skip;
        if (m > len)
            m = len;
        iov[k].iov_base = b->ptr + skip;
        iov[k].iov_len = (size_t)m;
        k++;
        len -= m;
        skip = 0;
    }
    return k;
}

/* Copies between the chain and out (out != NULL: from the chain) or in (into the chain). */
static int chain_copy(const struct vq_chain *c, bool writable, uint64_t skip, uint8_t *out,
                      const uint8_t *in, size_t len)
{
    struct iovec iov[VQ_MAX_CHAIN];
    int n = vq_chain_iov(c, writable, skip, len, iov);
    for (int i = 0; i < n; i++) {
        if (out) {
            memcpy(out, iov[i].iov_base, iov[i].iov_len);
            out += iov[i].iov_len;
        } else {
            memcpy(iov[i].iov_base, in, iov[i].iov_len);
            in += iov[i].iov_len;
        }
    }
    return n < 0 ? n : 0;
}

int vq_chain_copy_from(const struct vq_chain *c, bool writable, uint64_t skip, void *dst,
                       size_t len)
{
    return chain_copy(c, writable, skip, dst, NULL, len);
}

int vq_chain_copy_to(const struct vq_chain *c, uint64_t skip, const void *src, size_t len)
{
    return chain_copy(c, true, skip, NULL, src, len);
}
