/* SPDX-License-Identifier: Apache-2.0 */
#include "virtio_pci.h"
#include "log.h"
#include "platform.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PCI_CAP_VNDR 0x09
#define PCI_CAP_MSIX 0x11
#define CAP_MSIX     0x40
#define CAP_COMMON   0x50
#define CAP_NOTIFY   0x60
#define CAP_ISR      0x74
#define CAP_DEVICE   0x84

#define STATUS_DRIVER_OK   0x04
#define STATUS_FEATURES_OK 0x08
#define STATUS_NEEDS_RESET 0x40

#define MSIX_ENABLE  0x8000
#define MSIX_MASKALL 0x4000

static void vndr_cap(uint8_t *cfg, uint8_t at, uint8_t next, uint8_t len, uint8_t type,
                     uint32_t off, uint32_t length)
{
    cfg[at] = PCI_CAP_VNDR;
    cfg[at + 1] = next;
    cfg[at + 2] = len;
    cfg[at + 3] = type;
    cfg[at + 4] = 0; /* BAR 0 */
    kova_le_put(cfg + at + 8, 4, off);
    kova_le_put(cfg + at + 12, 4, length);
}

/* MSI-X control word lives in PCI config space, guarded by the PCI host lock; the device reads
 * it without that lock (a single 16-bit load), which is all delivery needs. */
static uint16_t msix_control(const struct virtio_pci_dev *d)
{
    return (uint16_t)kova_le_get((const uint8_t *)d->pci.cfg + CAP_MSIX + 2, 2);
}

/* Raises vector vec through its irqfd, first routing it to (addr, data) when its route holds
 * another message. False when that is not possible (the caller uses KVM_SIGNAL_MSI). */
static bool msix_irqfd(struct virtio_pci_dev *d, unsigned vec, uint64_t addr, uint32_t data)
{
    const struct irq_sink *s = d->irq;
    if (!s->msi_route_add || !s->msi_route_set || d->irqfd_failed)
        return false;
    struct msix_route *r = &d->route[vec];
    const char *why = "eventfd";
    if (r->gsi < 0) {
        if (r->fd < 0 && (r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            goto fail;
        why = "route";
        int gsi = s->msi_route_add(s->opaque, r->fd, addr, data);
        if (gsi < 0)
            goto fail;
        r->gsi = gsi;
        r->addr = addr;
        r->data = data;
    } else if (r->addr != addr || r->data != data) {
        why = "route update";
        if (s->msi_route_set(s->opaque, r->gsi, addr, data) < 0)
            goto fail;
        r->addr = addr;
        r->data = data;
    }
    why = "eventfd write";
    uint64_t one = 1;
    if (write(r->fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        goto fail;
    d->irqfd_interrupts++;
    return true;
fail:
    log_warn("%s: MSI-X vector %u: irqfd %s failed; KVM_SIGNAL_MSI from now on", d->ops->name, vec,
             why);
    d->irqfd_failed = true;
    return false;
}

static void msix_fire(struct virtio_pci_dev *d, unsigned vec)
{
    if (vec >= d->msix_n)
        return;
    uint16_t ctl = msix_control(d);
    if (!(ctl & MSIX_ENABLE))
        return;
    if ((ctl & MSIX_MASKALL) || (d->msix_table[vec][3] & 1)) {
        d->msix_pending |= 1ULL << vec;
        return;
    }
    uint64_t addr = d->msix_table[vec][0] | (uint64_t)d->msix_table[vec][1] << 32;
    if (!msix_irqfd(d, vec, addr, d->msix_table[vec][2]))
        d->irq->msi(d->irq->opaque, addr, d->msix_table[vec][2]);
    d->interrupts++;
}

static bool vec_deliverable(const struct virtio_pci_dev *d, unsigned v)
{
    uint16_t ctl = msix_control(d);
    return (ctl & MSIX_ENABLE) && !(ctl & MSIX_MASKALL) && !(d->msix_table[v][3] & 1);
}

/* An unrouted ext route's eventfd counter into the PBA (someone wrote it while masked). */
static void ext_take_pending(struct virtio_pci_dev *d, unsigned v)
{
    uint64_t n = 0;
    if (read(d->route[v].fd, &n, sizeof(n)) == (ssize_t)sizeof(n) && n)
        d->msix_pending |= 1ULL << v;
}

/* Makes ext route v follow the guest's table and masks (see struct msix_route). A route that
 * cannot be set up leaves the device without interrupts: it needs a reset (and the transport
 * uses KVM_SIGNAL_MSI from then on, so the device then raises its interrupts itself). */
static void route_sync(struct virtio_pci_dev *d, unsigned v)
{
    struct msix_route *r = &d->route[v];
    const struct irq_sink *s = d->irq;
    if (!r->ext || d->irqfd_failed)
        return;
    if (!vec_deliverable(d, v)) {
        if (r->gsi >= 0)
            s->msi_route_del(s->opaque, r->gsi, r->fd);
        r->gsi = -1;
        return;
    }
    uint64_t addr = d->msix_table[v][0] | (uint64_t)d->msix_table[v][1] << 32;
    uint32_t data = d->msix_table[v][2];
    if (r->gsi < 0) {
        ext_take_pending(d, v); /* written while unrouted: delivered by msix_deliver_pending */
        int gsi = s->msi_route_add(s->opaque, r->fd, addr, data);
        if (gsi < 0)
            goto fail;
        r->gsi = gsi;
    } else if (r->addr != addr || r->data != data) {
        if (s->msi_route_set(s->opaque, r->gsi, addr, data) < 0)
            goto fail;
    }
    r->addr = addr;
    r->data = data;
    return;
fail:
    log_err("%s: MSI-X vector %u: cannot route its irqfd; the device needs a reset", d->ops->name,
            v);
    d->irqfd_failed = true;
    d->status |= STATUS_NEEDS_RESET;
}

static void routes_sync(struct virtio_pci_dev *d)
{
    for (unsigned v = 0; v < d->msix_n; v++)
        route_sync(d, v);
}

static void msix_deliver_pending(struct virtio_pci_dev *d)
{
    for (unsigned v = 0; v < d->msix_n; v++) {
        if ((d->msix_pending & (1ULL << v)) && !(d->msix_table[v][3] & 1) &&
            !(msix_control(d) & MSIX_MASKALL) && (msix_control(d) & MSIX_ENABLE)) {
            d->msix_pending &= ~(1ULL << v);
            msix_fire(d, v);
        }
    }
}

void virtio_pci_notify_queue(struct virtio_pci_dev *d, unsigned q)
{
    if (q >= d->ops->num_queues || !virtq_should_notify(&d->vq[q]))
        return;
    d->isr |= 1;
    if (msix_control(d) & MSIX_ENABLE)
        msix_fire(d, d->vq[q].msix_vector);
}

/* BAR 0's address while memory decoding is on and it lies in the PCI window; else 0. The
 * config space is read without the PCI host lock: single loads, as msix_control does. */
static uint64_t bar0_base(const struct virtio_pci_dev *d)
{
    if (!(d->pci.cfg[PCI_COMMAND] & PCI_CMD_MEMORY))
        return 0;
    uint64_t b = kova_le_get(d->pci.cfg + PCI_BAR0, 4) & ~0xfULL;
    if (b < MMIO_PCI_START || b > MMIO_PCI_END - VPCI_BAR_SIZE)
        return 0;
    return b;
}

static uint64_t notify_addr(uint64_t base, unsigned q)
{
    return base + VPCI_NOTIFY_OFF + (uint64_t)VPCI_NOTIFY_MUL * q;
}

static void ioev_unregister(struct virtio_pci_dev *d)
{
    if (!d->ioev_base)
        return;
    for (unsigned q = 0; q < d->ops->num_queues; q++)
        d->irq->ioeventfd(d->irq->opaque, notify_addr(d->ioev_base, q), 2, d->kick_fd[q], false);
    d->ioev_base = 0;
}

/* Puts the ioeventfds where BAR 0 is now (none while the driver is not ready or decoding is
 * off). The driver notifies with 16-bit writes; other sizes still exit to bar_write. */
static void ioev_update(struct virtio_pci_dev *d)
{
    if (!d->ops->kick_fds || !d->irq->ioeventfd || d->ioev_failed)
        return;
    uint64_t base = (d->status & STATUS_DRIVER_OK) ? bar0_base(d) : 0;
    if (base == d->ioev_base)
        return;
    ioev_unregister(d);
    if (!base)
        return;
    for (unsigned q = 0; q < d->ops->num_queues; q++) {
        int r = d->irq->ioeventfd(d->irq->opaque, notify_addr(base, q), 2, d->kick_fd[q], true);
        if (r < 0) {
            log_warn("%s: KVM_IOEVENTFD failed (%s); queue notifications exit to the VMM",
                     d->ops->name, strerror(-r));
            while (q--)
                d->irq->ioeventfd(d->irq->opaque, notify_addr(base, q), 2, d->kick_fd[q], false);
            d->ioev_failed = true;
            return;
        }
    }
    d->ioev_base = base;
}

static void device_reset(struct virtio_pci_dev *d)
{
    d->dfselect = d->gfselect = 0;
    d->driver_features = 0;
    d->msix_config = VQ_NO_VECTOR;
    d->status = 0;
    ioev_unregister(d);
    d->queue_select = 0;
    d->isr = 0;
    for (unsigned q = 0; q < d->ops->num_queues; q++)
        virtq_reset(&d->vq[q], d->ops->queue_size);
    if (d->ops->reset)
        d->ops->reset(&d->vdev);
}

static uint64_t offered(struct virtio_pci_dev *d)
{
    return (d->ops->features ? d->ops->features(&d->vdev) : 0) | VIRTIO_F_VERSION_1;
}

/* The common configuration structure (virtio 1.x 4.1.4.3), as one 0x38-byte image. */
#define CC_LEN 0x38

static void common_image(struct virtio_pci_dev *d, uint8_t *img)
{
    memset(img, 0, CC_LEN);
    struct virtq *vq = d->queue_select < d->ops->num_queues ? &d->vq[d->queue_select] : NULL;
    kova_le_put(img + 0x00, 4, d->dfselect);
    kova_le_put(img + 0x04, 4, d->dfselect < 2 ? (uint32_t)(offered(d) >> (32 * d->dfselect)) : 0);
    kova_le_put(img + 0x08, 4, d->gfselect);
    kova_le_put(img + 0x0c, 4,
                d->gfselect < 2 ? (uint32_t)(d->driver_features >> (32 * d->gfselect)) : 0);
    kova_le_put(img + 0x10, 2, d->msix_config);
    kova_le_put(img + 0x12, 2, d->ops->num_queues);
    img[0x14] = d->status;
    img[0x15] = d->config_generation;
    kova_le_put(img + 0x16, 2, d->queue_select);
    if (vq) {
        kova_le_put(img + 0x18, 2, vq->size);
        kova_le_put(img + 0x1a, 2, vq->msix_vector);
        kova_le_put(img + 0x1c, 2, vq->enabled);
        kova_le_put(img + 0x1e, 2, d->queue_select); /* queue_notify_off */
        kova_le_put(img + 0x20, 8, vq->desc_gpa);
        kova_le_put(img + 0x28, 8, vq->avail_gpa);
        kova_le_put(img + 0x30, 8, vq->used_gpa);
    }
}

static void set_u64_part(uint64_t *field, uint32_t rel, uint32_t size, uint64_t v)
{
    if (size == 8 && rel == 0)
        *field = v;
    else if (size == 4 && rel == 0)
        *field = (*field & 0xffffffff00000000ULL) | (uint32_t)v;
    else if (size == 4 && rel == 4)
        *field = (*field & 0xffffffffULL) | (v << 32);
}

static void common_write(struct virtio_pci_dev *d, uint32_t off, uint32_t size, uint64_t v)
{
    struct virtq *vq = d->queue_select < d->ops->num_queues ? &d->vq[d->queue_select] : NULL;
    bool live = vq && !vq->enabled; /* queue fields are writable only before enabling */
    switch (off) {
    case 0x00:
        d->dfselect = (uint32_t)v;
        return;
    case 0x08:
        d->gfselect = (uint32_t)v;
        return;
    case 0x0c:
        if (d->gfselect < 2 && !(d->status & STATUS_FEATURES_OK)) {
            uint64_t mask = 0xffffffffULL << (32 * d->gfselect);
            d->driver_features =
                (d->driver_features & ~mask) | (((uint64_t)(uint32_t)v << (32 * d->gfselect)));
        }
        return;
    case 0x10:
        d->msix_config = (uint16_t)v;
        return;
    case 0x14: {
        uint8_t st = (uint8_t)v;
        if (st == 0) {
            device_reset(d);
            return;
        }
        if ((st & STATUS_FEATURES_OK) && !(d->status & STATUS_FEATURES_OK)) {
            uint64_t f = d->driver_features;
            if ((f & ~offered(d)) || !(f & VIRTIO_F_VERSION_1))
                st &= (uint8_t)~STATUS_FEATURES_OK; /* the driver sees the refusal */
        }
        d->status = (uint8_t)(st | (d->status & STATUS_NEEDS_RESET));
        ioev_update(d);
        return;
    }
    case 0x16:
        d->queue_select = (uint16_t)v;
        return;
    case 0x18:
        if (live)
            vq->size = (uint16_t)v;
        return;
    case 0x1a:
        if (vq)
            vq->msix_vector = (uint16_t)v < d->msix_n ? (uint16_t)v : VQ_NO_VECTOR;
        return;
    case 0x1c:
        if (live && v == 1) {
            vq->indirect = (d->driver_features & VIRTIO_RING_F_INDIRECT_DESC) != 0;
            vq->event_idx = (d->driver_features & VIRTIO_RING_F_EVENT_IDX) != 0;
            if (virtq_enable(vq, d->mem) < 0) {
                log_warn("%s: queue %u: invalid size or ring address", d->ops->name,
                         d->queue_select);
                d->status |= STATUS_NEEDS_RESET;
            }
        }
        return;
    }
    if (!live)
        return;
    if (off >= 0x20 && off < 0x28)
        set_u64_part(&vq->desc_gpa, off - 0x20, size, v);
    else if (off >= 0x28 && off < 0x30)
        set_u64_part(&vq->avail_gpa, off - 0x28, size, v);
    else if (off >= 0x30 && off < 0x38)
        set_u64_part(&vq->used_gpa, off - 0x30, size, v);
}

static void bar_read(void *opaque, uint64_t off, uint8_t *data, uint32_t size)
{
    struct virtio_pci_dev *d = opaque;
    memset(data, 0, size);
    pthread_mutex_lock(&d->lock);
    if (off + size <= VPCI_COMMON_OFF + CC_LEN) {
        uint8_t img[CC_LEN];
        common_image(d, img);
        memcpy(data, img + off, size);
    } else if (off == VPCI_ISR_OFF) {
        data[0] = d->isr;
        d->isr = 0; /* read to clear */
    } else if (off >= VPCI_DEVICE_OFF && off + size <= VPCI_DEVICE_OFF + d->ops->config_len) {
        if (d->ops->config_read)
            d->ops->config_read(&d->vdev, (uint32_t)(off - VPCI_DEVICE_OFF), data, size);
    } else if (off >= VPCI_MSIX_OFF && off + size <= VPCI_MSIX_OFF + 16ULL * d->msix_n &&
               (size == 4 || size == 8) && (off & 3) == 0) {
        uint64_t rel = off - VPCI_MSIX_OFF;
        uint32_t *e = d->msix_table[rel / 16];
        unsigned w = (unsigned)(rel % 16) / 4;
        kova_le_put(data, 4, e[w]);
        if (size == 8 && w < 3)
            kova_le_put(data + 4, 4, e[w + 1]);
    } else if (off >= VPCI_PBA_OFF && off + size <= VPCI_PBA_OFF + 8) {
        for (unsigned v = 0; v < d->msix_n; v++)
            if (d->route[v].ext && d->route[v].gsi < 0)
                ext_take_pending(d, v);
        uint8_t pba[8];
        kova_le_put(pba, 8, d->msix_pending);
        memcpy(data, pba + (off - VPCI_PBA_OFF), size);
    }
    pthread_mutex_unlock(&d->lock);
}

static void bar_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t size)
{
    struct virtio_pci_dev *d = opaque;
    uint64_t v = kova_le_get(data, size);
    pthread_mutex_lock(&d->lock);
    if (off + size <= VPCI_COMMON_OFF + CC_LEN) {
        common_write(d, (uint32_t)off, size, v);
    } else if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_NOTIFY_MUL * 64ULL) {
        unsigned q = (unsigned)(off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MUL;
        if (q < d->ops->num_queues && d->vq[q].enabled && (d->status & STATUS_DRIVER_OK)) {
            if (d->ops->kick_fds) {
                uint64_t one = 1;
                if (write(d->kick_fd[q], &one, sizeof(one)) < 0) {
                    /* only on counter overflow: the fd is readable either way */
                }
            } else if (d->ops->notify) {
                d->ops->notify(&d->vdev, q);
            }
        }
    } else if (off >= VPCI_DEVICE_OFF && off + size <= VPCI_DEVICE_OFF + d->ops->config_len) {
        if (d->ops->config_write)
            d->ops->config_write(&d->vdev, (uint32_t)(off - VPCI_DEVICE_OFF), data, size);
    } else if (off >= VPCI_MSIX_OFF && off + size <= VPCI_MSIX_OFF + 16ULL * d->msix_n &&
               (size == 4 || size == 8) && (off & 3) == 0) {
        uint64_t rel = off - VPCI_MSIX_OFF;
        uint32_t *e = d->msix_table[rel / 16];
        unsigned w = (unsigned)(rel % 16) / 4;
        e[w] = (uint32_t)v;
        if (size == 8 && w < 3)
            e[w + 1] = (uint32_t)(v >> 32);
        route_sync(d, (unsigned)(rel / 16));
        msix_deliver_pending(d);
    }
    pthread_mutex_unlock(&d->lock);
}

static const struct bus_ops virtio_bar_ops = {bar_read, bar_write};

/* ---- what the device sees of the transport (virtio.h) ---- */

static struct virtio_pci_dev *of_vdev(struct virtio_dev *v)
{
    return (struct virtio_pci_dev *)((char *)v - offsetof(struct virtio_pci_dev, vdev));
}

static bool vt_driver_ok(struct virtio_dev *v)
{
    return (of_vdev(v)->status & STATUS_DRIVER_OK) != 0;
}

static void vt_needs_reset(struct virtio_dev *v)
{
    of_vdev(v)->status |= STATUS_NEEDS_RESET;
}

static void vt_notify_queue(struct virtio_dev *v, unsigned q)
{
    virtio_pci_notify_queue(of_vdev(v), q);
}

static uint64_t vt_driver_features(struct virtio_dev *v)
{
    return of_vdev(v)->driver_features;
}

static int vt_queue_irqfd(struct virtio_dev *v, unsigned q)
{
    struct virtio_pci_dev *d = of_vdev(v);
    const struct irq_sink *s = d->irq;
    if (q >= d->ops->num_queues || !s->msi_route_add || !s->msi_route_set || !s->msi_route_del ||
        d->irqfd_failed)
        return -1;
    unsigned vec = d->vq[q].msix_vector;
    if (vec >= d->msix_n)
        return -1;
    struct msix_route *r = &d->route[vec];
    if (r->fd < 0 && (r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return -1;
    if (!r->ext && r->gsi >= 0 && !vec_deliverable(d, vec)) {
        /* routed by an earlier delivery, masked since: unrouted now */
        s->msi_route_del(s->opaque, r->gsi, r->fd);
        r->gsi = -1;
    }
    r->ext = true;
    route_sync(d, vec);
    if (d->irqfd_failed) {
        r->ext = false;
        return -1;
    }
    return r->fd;
}

static void vt_irqfds_release(struct virtio_dev *v)
{
    struct virtio_pci_dev *d = of_vdev(v);
    for (unsigned vec = 0; vec < d->msix_n; vec++) {
        struct msix_route *r = &d->route[vec];
        if (r->ext && r->gsi < 0)
            ext_take_pending(d, vec);
        r->ext = false;
    }
}

static void vt_raise_queue(struct virtio_dev *v, unsigned q)
{
    struct virtio_pci_dev *d = of_vdev(v);
    if (q >= d->ops->num_queues)
        return;
    d->isr |= 1;
    if (msix_control(d) & MSIX_ENABLE)
        msix_fire(d, d->vq[q].msix_vector);
}

static const struct virtio_transport pci_transport = {
    .driver_ok = vt_driver_ok,
    .needs_reset = vt_needs_reset,
    .notify_queue = vt_notify_queue,
    .driver_features = vt_driver_features,
    .queue_irqfd = vt_queue_irqfd,
    .irqfds_release = vt_irqfds_release,
    .raise_queue = vt_raise_queue,
};

/* Called with the PCI host lock held after a config space write. */
static void cfg_written(struct pci_dev *p, uint32_t off, uint32_t size)
{
    struct virtio_pci_dev *d =
        (struct virtio_pci_dev *)((char *)p - offsetof(struct virtio_pci_dev, pci));
    if (off <= CAP_MSIX + 3 && off + size > CAP_MSIX + 2) {
        pthread_mutex_lock(&d->lock);
        routes_sync(d);
        msix_deliver_pending(d);
        pthread_mutex_unlock(&d->lock);
    }
    /* The command register or BAR 0 changed: the notify addresses may have moved. */
    if ((off <= PCI_COMMAND && off + size > PCI_COMMAND) ||
        (off <= PCI_BAR0 + 3 && off + size > PCI_BAR0)) {
        pthread_mutex_lock(&d->lock);
        ioev_update(d);
        pthread_mutex_unlock(&d->lock);
    }
}

int virtio_pci_init(struct virtio_pci_dev *d, const struct virtio_dev_ops *ops, void *opaque,
                    const struct guest_mem *mem, const struct irq_sink *irq)
{
    if (ops->num_queues == 0 || ops->num_queues > VIRTIO_MAX_QUEUES || ops->config_len > 0x1000)
        return -EINVAL;
    memset(d, 0, sizeof(*d));
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        d->kick_fd[q] = -1;
    for (unsigned v = 0; v < VIRTIO_MAX_QUEUES + 1; v++)
        d->route[v] = (struct msix_route){.fd = -1, .gsi = -1};
    for (unsigned q = 0; ops->kick_fds && q < ops->num_queues; q++) {
        d->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->kick_fd[q] < 0) {
            int r = -errno;
            while (q--)
                close(d->kick_fd[q]);
            return r;
        }
    }
    pthread_mutex_init(&d->lock, NULL);
    d->ops = ops;
    d->mem = mem;
    d->irq = irq;
    d->vdev = (struct virtio_dev){
        .ops = ops,
        .opaque = opaque,
        .mem = mem,
        .lock = &d->lock,
        .vq = d->vq,
        .kick_fd = d->kick_fd,
        .transport = &pci_transport,
    };
    d->msix_n = ops->num_queues + 1;
    for (unsigned v = 0; v < d->msix_n; v++)
        d->msix_table[v][3] = 1; /* masked */
    device_reset(d);

    struct pci_dev *p = &d->pci;
    /* Modern-only device: PCI device id 0x1040 + type; class "other". */
    pci_dev_init(p, 0x1af4, (uint16_t)(0x1040 + ops->device_id), 0xff0000, 1, 0x1af4,
                 ops->device_id);
    p->name = ops->name;
    p->cfg_written = cfg_written;
    p->cfg[0x06] = 0x10; /* status: capability list */
    p->cfg[0x34] = CAP_MSIX;
    p->cfg[0x3d] = 0; /* no INTx pin: MSI-X only */
    /* MSI-X capability. */
    p->cfg[CAP_MSIX] = PCI_CAP_MSIX;
    p->cfg[CAP_MSIX + 1] = CAP_COMMON;
    kova_le_put(p->cfg + CAP_MSIX + 2, 2, d->msix_n - 1);
    kova_le_put(p->cfg + CAP_MSIX + 4, 4, VPCI_MSIX_OFF); /* BIR 0 */
    kova_le_put(p->cfg + CAP_MSIX + 8, 4, VPCI_PBA_OFF);
    p->wmask[CAP_MSIX + 3] = (MSIX_ENABLE | MSIX_MASKALL) >> 8;
    /* virtio capabilities. */
    vndr_cap(p->cfg, CAP_COMMON, CAP_NOTIFY, 16, 1, VPCI_COMMON_OFF, CC_LEN);
    vndr_cap(p->cfg, CAP_NOTIFY, CAP_ISR, 20, 2, VPCI_NOTIFY_OFF,
             VPCI_NOTIFY_MUL * ops->num_queues);
    kova_le_put(p->cfg + CAP_NOTIFY + 16, 4, VPCI_NOTIFY_MUL);
    vndr_cap(p->cfg, CAP_ISR, ops->config_len ? CAP_DEVICE : 0, 16, 3, VPCI_ISR_OFF, 1);
    if (ops->config_len)
        vndr_cap(p->cfg, CAP_DEVICE, 0, 16, 4, VPCI_DEVICE_OFF, ops->config_len);
    pci_dev_set_bar(p, 0, VPCI_BAR_SIZE, &virtio_bar_ops, d);
    return 0;
}

void virtio_pci_destroy(struct virtio_pci_dev *d)
{
    ioev_unregister(d);
    for (unsigned v = 0; v < VIRTIO_MAX_QUEUES + 1; v++) {
        struct msix_route *r = &d->route[v];
        if (r->gsi >= 0 && d->irq->msi_route_del)
            d->irq->msi_route_del(d->irq->opaque, r->gsi, r->fd);
        if (r->fd >= 0)
            close(r->fd);
        *r = (struct msix_route){.fd = -1, .gsi = -1};
    }
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (d->kick_fd[q] >= 0)
            close(d->kick_fd[q]);
        d->kick_fd[q] = -1;
    }
    pthread_mutex_destroy(&d->lock);
}

/* ---- instances of device types, and the device table's rows ---- */

int virtio_pci_create(struct virtio_pci_dev **out, const struct virtio_type *t,
                      const struct dev_config *cfg, unsigned index, const struct guest_mem *mem,
                      const struct irq_sink *irq, const char **why)
{
    void *state = NULL;
    int r = t->create ? t->create(cfg, index, &state, why) : 0;
    if (r < 0)
        return r;
    struct virtio_pci_dev *d = calloc(1, sizeof(*d));
    if (!d) {
        r = -ENOMEM;
        goto free_state;
    }
    r = virtio_pci_init(d, t->ops, state, mem, irq);
    if (r < 0)
        goto free_dev;
    if (t->ops->start && (r = t->ops->start(&d->vdev)) < 0)
        goto destroy;
    *out = d;
    return 0;
destroy:
    virtio_pci_destroy(d);
free_dev:
    free(d);
free_state:
    if (t->destroy)
        t->destroy(state);
    return r;
}

void virtio_pci_free(struct virtio_pci_dev *d, const struct virtio_type *t)
{
    if (!d)
        return;
    void *state = d->vdev.opaque;
    if (d->ops->stop)
        d->ops->stop(&d->vdev);
    virtio_pci_destroy(d);
    free(d);
    if (t->destroy)
        t->destroy(state);
}

unsigned virtio_pci_kind_count(const struct device_kind *k, const struct dev_config *cfg)
{
    const struct virtio_type *t = k->type;
    return t->count ? t->count(cfg) : 1;
}

int virtio_pci_kind_create(const struct device_kind *k, const struct dev_env *env,
                           const struct dev_config *cfg, unsigned index, void **dev,
                           const char **why)
{
    struct virtio_pci_dev *d;
    int r = virtio_pci_create(&d, k->type, cfg, index, env->mem, env->irq, why);
    if (r < 0)
        return r;
    r = pci_host_add(env->pci, &d->pci);
    if (r < 0) {
        *why = "no free PCI slot";
        virtio_pci_free(d, k->type);
        return r;
    }
    *dev = d;
    return 0;
}

void virtio_pci_kind_destroy(const struct device_kind *k, void *dev)
{
    virtio_pci_free(dev, k->type);
}
