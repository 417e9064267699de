/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-rng (entropy device, type 4): one queue; each chain's writable buffers are filled from
 * the host's getrandom(). */
#include "virtio.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#define RNG_MAX_PER_CHAIN 65536

static void rng_notify(struct virtio_dev *d, unsigned q)
{
    struct vq_chain *c = d->opaque; /* scratch chain, used under the device lock */
    struct virtq *vq = &d->vq[q];
    int r, any = 0;
    while ((r = virtq_pop(vq, d->mem, c)) == 1) {
        uint32_t done = 0;
        for (unsigned i = 0; i < c->n && done < RNG_MAX_PER_CHAIN; i++) {
            if (!c->buf[i].writable)
                continue;
            uint32_t want = c->buf[i].len;
            if (want > RNG_MAX_PER_CHAIN - done)
                want = RNG_MAX_PER_CHAIN - done;
            uint32_t got = 0;
            while (got < want) {
                ssize_t n = getrandom(c->buf[i].ptr + got, want - got, 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                got += (uint32_t)n;
            }
            done += got;
            if (got < want)
                break;
        }
        virtq_push(vq, c->head, done);
        any = 1;
    }
    if (r < 0)
        virtio_needs_reset(d);
    if (any)
        virtio_notify_queue(d, q);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = 4,
    .num_queues = 1,
    .queue_size = 256,
    .config_len = 0,
    .notify = rng_notify,
};

static int rng_create(const struct dev_config *cfg, unsigned index, void **state, const char **why)
{
    struct vq_chain *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *state = c;
    return 0;
}

static void rng_destroy(void *state)
{
    free(state);
}

const struct virtio_type virtio_rng_type = {
    .ops = &rng_ops,
    .create = rng_create,
    .destroy = rng_destroy,
};
