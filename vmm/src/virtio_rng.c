/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-rng (entropy device, type 4): one queue; each chain's writable buffers are filled from
 * the host's getrandom(). */
#include "virtio_pci.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#define RNG_MAX_PER_CHAIN 65536

static void rng_notify(struct virtio_pci_dev *d, unsigned q)
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
        d->status |= 0x40; /* DEVICE_NEEDS_RESET */
    if (any)
        virtio_pci_notify_queue(d, q);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = 4,
    .features = 0,
    .num_queues = 1,
    .queue_size = 256,
    .config_len = 0,
    .notify = rng_notify,
};

int virtio_rng_create(struct virtio_pci_dev **out, const struct guest_mem *mem,
                      const struct irq_sink *irq)
{
    struct virtio_pci_dev *d = calloc(1, sizeof(*d));
    struct vq_chain *c = calloc(1, sizeof(*c));
    if (!d || !c) {
        free(d);
        free(c);
        return -ENOMEM;
    }
    int r = virtio_pci_init(d, &rng_ops, c, mem, irq);
    if (r < 0) {
        free(d);
        free(c);
        return r;
    }
    *out = d;
    return 0;
}

void virtio_rng_free(struct virtio_pci_dev *d)
{
    if (!d)
        return;
    free(d->opaque);
    virtio_pci_destroy(d);
    free(d);
}
