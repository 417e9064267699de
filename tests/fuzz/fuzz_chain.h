/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every virtio fuzz target checks of a chain virtq_pop() handed out (virtq.h's promise):
 * each buffer is guest RAM of one region, the head and length are in range, no readable buffer
 * follows a writable one, and the byte counts add up. fuzz_chain_broken() returns NULL when all
 * hold, else what broke (the target aborts with it).
 */
#ifndef KOVA_FUZZ_CHAIN_H
#define KOVA_FUZZ_CHAIN_H

#include "mem.h"
#include "virtq.h"

#include <stdint.h>

static inline const char *fuzz_buf_broken(const struct guest_mem *gm, const struct vq_buf *b)
{
    if (b->ptr < gm->host || b->ptr > gm->host + gm->size)
        return "buffer outside guest memory";
    uint64_t off = (uint64_t)(b->ptr - gm->host);
    uint64_t end = off < gm->low_size ? gm->low_size : gm->size;
    if (b->len > end - off)
        return "buffer crosses the end of its RAM region";
    return NULL;
}

static inline const char *fuzz_chain_broken(const struct virtq *vq, const struct guest_mem *gm,
                                            const struct vq_chain *c)
{
    if (c->head >= vq->size || c->n == 0 || c->n > VQ_MAX_CHAIN)
        return "chain head or length";
    uint64_t rd = 0, wr = 0;
    for (unsigned i = 0; i < c->n; i++) {
        const char *why = fuzz_buf_broken(gm, &c->buf[i]);
        if (why)
            return why;
        if (c->buf[i].writable)
            wr += c->buf[i].len;
        else if (i && c->buf[i - 1].writable)
            return "readable buffer after a writable one";
        else
            rd += c->buf[i].len;
    }
    if (rd != c->readable || wr != c->writable)
        return "chain byte counts";
    return NULL;
}

#endif
