/* SPDX-License-Identifier: Apache-2.0 */
#include "virtio_blk.h"
#include "log.h"
#include "sandbox.h"

#include "kova/qcow2.h"
#include "kova/vmm.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Feature bits (virtio 1.x 5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX      (1ULL << 2)
#define VIRTIO_BLK_F_RO           (1ULL << 5)
#define VIRTIO_BLK_F_BLK_SIZE     (1ULL << 6)
#define VIRTIO_BLK_F_FLUSH        (1ULL << 9)
#define VIRTIO_BLK_F_DISCARD      (1ULL << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ULL << 14)

#define BLK_HDR_LEN    16 /* type, reserved, sector */
#define BLK_DZ_SEG_LEN 16 /* sector, num_sectors, flags */
#define BLK_DZ_F_UNMAP 1u
#define BLK_CONFIG_LEN 0x3c

_Static_assert(BLK_SPEC_SERIAL_MAX == VIRTIO_BLK_ID_BYTES, "--disk serial= is the GET_ID string");

/* ---- the disks ---- */

int blk_disks_open(struct blk_disks *out, const struct blk_spec *specs, unsigned n)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return 0;
    if (n > BLK_MAX_DISKS) {
        log_err("at most %d disks", BLK_MAX_DISKS);
        return -E2BIG;
    }
    out->specs = calloc(n, sizeof(*out->specs));
    out->be = calloc(n, sizeof(*out->be));
    if (!out->specs || !out->be) {
        blk_disks_close(out);
        log_err("out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        struct blk_spec *s = &out->specs[i];
        *s = specs[i];
        char err[512];
        int r = kova_disk_open(&out->be[i].disk, s->path, (enum kova_disk_format)s->format,
                               s->readonly ? KOVA_DISK_RDONLY : 0, err, sizeof(err));
        if (r < 0) {
            log_err("disk %u (%s): %s", i, s->path, err);
            blk_disks_close(out);
            return r;
        }
        out->be[i].readonly = s->readonly;
        out->be[i].serial = s->serial;
        out->n = i + 1;
        log_info("disk vd%c: %s (%s%s, %llu bytes)", 'a' + i, s->path,
                 kova_disk_format_name((enum kova_disk_format)s->format),
                 s->readonly ? ", read-only" : "",
                 (unsigned long long)kova_disk_size(out->be[i].disk));
    }
    return 0;
}

void blk_disks_close(struct blk_disks *d)
{
    for (unsigned i = 0; i < d->n; i++) {
        if (!d->be[i].readonly) {
            int r = kova_disk_flush(d->be[i].disk);
            if (r < 0)
                log_err("disk %s: flush failed: %s", d->specs[i].path, strerror(-r));
        }
        kova_disk_close(d->be[i].disk);
    }
    free(d->specs);
    free(d->be);
    memset(d, 0, sizeof(*d));
}

/* ---- requests ---- */

/* Index of the first writable buffer (readable ones come first: virtq_pop checks that). */
static unsigned first_writable(const struct vq_chain *c)
{
    unsigned i = 0;
    while (i < c->n && !c->buf[i].writable)
        i++;
    return i;
}

/* The status byte: the last writable byte of the chain. NULL when there is none. */
static uint8_t *status_byte(const struct vq_chain *c)
{
    unsigned w = first_writable(c);
    for (unsigned i = c->n; i-- > w;) {
        if (c->buf[i].len)
            return c->buf[i].ptr + c->buf[i].len - 1;
    }
    return NULL;
}

static bool range_ok(uint64_t capacity, uint64_t sector, uint64_t nsect)
{
    return sector <= capacity && nsect <= capacity - sector;
}

static uint8_t do_rw(const struct blk_backend *be, const struct vq_chain *c, uint32_t type,
                     uint64_t sector, uint64_t *data_len)
{
    uint64_t cap = kova_disk_size(be->disk) / BLK_SECTOR;
    bool in = type == VIRTIO_BLK_T_IN;
    /* IN: header only readable, data + status writable; OUT: header + data, status only. */
    uint64_t len = in ? c->writable - 1 : c->readable - BLK_HDR_LEN;
    if (in ? c->readable != BLK_HDR_LEN : c->writable != 1)
        return VIRTIO_BLK_S_IOERR;
    if (len % BLK_SECTOR || !range_ok(cap, sector, len / BLK_SECTOR))
        return VIRTIO_BLK_S_IOERR;
    if (!in && be->readonly)
        return VIRTIO_BLK_S_IOERR;
    if (len == 0)
        return VIRTIO_BLK_S_OK;
    struct iovec iov[VQ_MAX_CHAIN];
    int n = vq_chain_iov(c, in, in ? 0 : BLK_HDR_LEN, len, iov);
    if (n < 0)
        return VIRTIO_BLK_S_IOERR;
    uint64_t off = sector * BLK_SECTOR;
    int r;
    if (n == 1) /* the plain calls let requests to allocated clusters run in parallel */
        r = in ? kova_disk_pread(be->disk, iov[0].iov_base, iov[0].iov_len, off)
               : kova_disk_pwrite(be->disk, iov[0].iov_base, iov[0].iov_len, off);
    else
        r = in ? kova_disk_preadv(be->disk, iov, n, off) : kova_disk_pwritev(be->disk, iov, n, off);
    if (r < 0) {
        log_warn("virtio-blk: %s of %llu bytes at sector %llu failed: %s (%s)",
                 in ? "read" : "write", (unsigned long long)len, (unsigned long long)sector,
                 strerror(-r), kova_disk_last_error(be->disk));
        return VIRTIO_BLK_S_IOERR;
    }
    if (in)
        *data_len = len;
    return VIRTIO_BLK_S_OK;
}

static uint8_t do_discard_zeroes(const struct blk_backend *be, const struct vq_chain *c,
                                 uint32_t type)
{
    uint64_t cap = kova_disk_size(be->disk) / BLK_SECTOR;
    uint64_t payload = c->readable - BLK_HDR_LEN;
    if (c->writable != 1 || payload == 0 || payload % BLK_DZ_SEG_LEN ||
        payload / BLK_DZ_SEG_LEN > BLK_MAX_DZ_SEG)
        return VIRTIO_BLK_S_IOERR;
    if (be->readonly)
        return VIRTIO_BLK_S_IOERR;
    unsigned nseg = (unsigned)(payload / BLK_DZ_SEG_LEN);
    uint8_t segs[BLK_MAX_DZ_SEG][BLK_DZ_SEG_LEN];
    vq_chain_copy_from(c, false, BLK_HDR_LEN, segs, payload);
    for (unsigned i = 0; i < nseg; i++) {
        uint64_t sector = kova_le_get(segs[i], 8);
        uint32_t nsect = (uint32_t)kova_le_get(segs[i] + 8, 4);
        uint32_t flags = (uint32_t)kova_le_get(segs[i] + 12, 4);
        if (flags & ~BLK_DZ_F_UNMAP)
            return VIRTIO_BLK_S_UNSUPP;
        if (type == VIRTIO_BLK_T_DISCARD && flags)
            return VIRTIO_BLK_S_UNSUPP;
        if (nsect > BLK_MAX_DZ_SECT || !range_ok(cap, sector, nsect))
            return VIRTIO_BLK_S_IOERR;
    }
    for (unsigned i = 0; i < nseg; i++) {
        uint64_t off = kova_le_get(segs[i], 8) * BLK_SECTOR;
        uint64_t len = kova_le_get(segs[i] + 8, 4) * BLK_SECTOR;
        if (!len)
            continue;
        int r = type == VIRTIO_BLK_T_DISCARD ? kova_disk_discard(be->disk, off, len)
                                             : kova_disk_write_zeroes(be->disk, off, len);
        if (r < 0) {
            log_warn("virtio-blk: %s at byte %llu failed: %s (%s)",
                     type == VIRTIO_BLK_T_DISCARD ? "discard" : "write-zeroes",
                     (unsigned long long)off, strerror(-r), kova_disk_last_error(be->disk));
            return VIRTIO_BLK_S_IOERR;
        }
    }
    return VIRTIO_BLK_S_OK;
}

uint32_t blk_request(const struct blk_backend *be, const struct vq_chain *c)
{
    uint8_t *status = status_byte(c);
    if (!status)
        return 0; /* nowhere to report anything */
    uint8_t st = VIRTIO_BLK_S_IOERR;
    uint64_t data_len = 0; /* bytes of data written for the driver */
    uint8_t hdr[BLK_HDR_LEN];
    if (c->readable < BLK_HDR_LEN)
        goto out;
    vq_chain_copy_from(c, false, 0, hdr, sizeof(hdr));
    uint32_t type = (uint32_t)kova_le_get(hdr, 4);
    uint64_t sector = kova_le_get(hdr + 8, 8);
    switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        st = do_rw(be, c, type, sector, &data_len);
        break;
    case VIRTIO_BLK_T_FLUSH:
        if (c->readable != BLK_HDR_LEN || c->writable != 1)
            break;
        if (!be->readonly) {
            int r = kova_disk_flush(be->disk);
            if (r < 0) {
                log_warn("virtio-blk: flush failed: %s", strerror(-r));
                break;
            }
        }
        st = VIRTIO_BLK_S_OK;
        break;
    case VIRTIO_BLK_T_GET_ID: {
        if (c->readable != BLK_HDR_LEN)
            break;
        uint8_t id[VIRTIO_BLK_ID_BYTES] = {0};
        if (be->serial)
            memcpy(id, be->serial, strnlen(be->serial, VIRTIO_BLK_ID_BYTES));
        data_len = c->writable - 1;
        if (data_len > VIRTIO_BLK_ID_BYTES)
            data_len = VIRTIO_BLK_ID_BYTES;
        vq_chain_copy_to(c, 0, id, data_len);
        st = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        st = do_discard_zeroes(be, c, type);
        break;
    default:
        st = VIRTIO_BLK_S_UNSUPP;
        break;
    }
out:
    *status = st;
    return (uint32_t)(data_len + 1);
}

/* ---- the device ---- */

struct blk {
    struct virtio_dev *dev; /* the transport's view, from start() on */
    struct blk_backend be;
    char serial[VIRTIO_BLK_ID_BYTES + 1];
    uint64_t features;
    uint8_t config[BLK_CONFIG_LEN];
    /* Under the device lock: */
    pthread_cond_t wake; /* the polling worker took a request, or stopping */
    pthread_cond_t idle; /* inflight dropped to 0 */
    unsigned inflight;
    unsigned gen; /* bumped by a device reset: completions of older requests are dropped */
    bool polling; /* a worker waits on the queue's kick eventfd */
    bool stopping;
    unsigned nthreads;
    pthread_t threads[BLK_WORKERS];
    struct worker {
        struct blk *b;
        struct vq_chain *chain;
    } workers[BLK_WORKERS];
    struct vq_chain *chains; /* one per worker */
};

/* Waits (without the device lock) until the queue's kick eventfd is signalled, then clears it. */
static void wait_kick(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: another reader cleared it; the ring is looked at either way */
    }
}

/* Workers take requests off the ring and complete them. One idle worker at a time waits on the
 * kick eventfd (written by KVM's ioeventfd, or by the transport's exit path); when it takes a
 * request it wakes another idle worker to take its place, so a request never waits for a thread
 * hop and several run at once. The ring is always looked at again before waiting (with
 * EVENT_IDX, virtq_pop re-arms avail_event first), so no notification is lost. */
static void *blk_worker(void *arg)
{
    struct worker *w = arg;
    struct blk *b = w->b;
    struct virtio_dev *d = b->dev;
    struct vq_chain *c = w->chain;
    const char *why = NULL;
    if (sandbox_thread(SANDBOX_IO, &why) < 0) {
        log_err("virtio-blk worker: %s", why);
        _exit(KOVA_VMM_EXIT_ERROR); /* never serve a guest unsandboxed */
    }
    pthread_mutex_lock(d->lock);
    while (!b->stopping) {
        struct virtq *vq = &d->vq[0];
        int r = 0;
        if (vq->enabled && virtio_driver_ok(d))
            r = virtq_pop(vq, d->mem, c);
        if (r < 0) {
            virtio_needs_reset(d);
            r = 0;
        }
        if (r == 0) {
            if (b->polling) {
                pthread_cond_wait(&b->wake, d->lock);
                continue;
            }
            b->polling = true;
            pthread_mutex_unlock(d->lock);
            wait_kick(d->kick_fd[0]);
            pthread_mutex_lock(d->lock);
            b->polling = false;
            continue;
        }
        /* More may be waiting, and someone must watch the eventfd: wake an idle worker. */
        pthread_cond_signal(&b->wake);
        unsigned gen = b->gen;
        b->inflight++;
        pthread_mutex_unlock(d->lock);
        uint32_t len = blk_request(&b->be, c);
        pthread_mutex_lock(d->lock);
        b->inflight--;
        if (gen == b->gen && vq->enabled) {
            virtq_push(vq, c->head, len);
            virtio_notify_queue(d, 0);
        }
        if (b->inflight == 0)
            pthread_cond_broadcast(&b->idle);
    }
    pthread_mutex_unlock(d->lock);
    return NULL;
}

static void blk_reset(struct virtio_dev *d)
{
    struct blk *b = d->opaque;
    /* The queues are already reset; requests in flight must not touch guest memory after the
     * driver sees the reset complete, so wait for them (their completions are dropped). */
    b->gen++;
    while (b->inflight)
        pthread_cond_wait(&b->idle, d->lock);
}

static uint64_t blk_features(struct virtio_dev *d)
{
    struct blk *b = d->opaque;
    return b->features;
}

static void blk_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t size)
{
    struct blk *b = d->opaque;
    if (off + size <= sizeof(b->config))
        memcpy(data, b->config + off, size);
}

static void blk_build_config(struct blk *b)
{
    uint8_t *cfg = b->config;
    uint64_t cap = kova_disk_size(b->be.disk) / BLK_SECTOR;
    uint32_t gran = kova_disk_granularity(b->be.disk);
    if (gran < BLK_SECTOR)
        gran = BLK_SECTOR;
    memset(cfg, 0, BLK_CONFIG_LEN);
    kova_le_put(cfg + 0x00, 8, cap);
    kova_le_put(cfg + 0x0c, 4, BLK_SEG_MAX);
    kova_le_put(cfg + 0x14, 4, BLK_SECTOR); /* blk_size */
    kova_le_put(cfg + 0x22, 2, 1);          /* num_queues */
    kova_le_put(cfg + 0x24, 4, BLK_MAX_DZ_SECT);
    kova_le_put(cfg + 0x28, 4, BLK_MAX_DZ_SEG);
    kova_le_put(cfg + 0x2c, 4, gran / BLK_SECTOR);
    kova_le_put(cfg + 0x30, 4, BLK_MAX_DZ_SECT);
    kova_le_put(cfg + 0x34, 4, BLK_MAX_DZ_SEG);
    cfg[0x38] = 0; /* write_zeroes_may_unmap */
}

static void blk_stop(struct virtio_dev *d)
{
    struct blk *b = d->opaque;
    pthread_mutex_lock(d->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->wake);
    uint64_t one = 1;
    if (write(d->kick_fd[0], &one, sizeof(one)) < 0) {
        /* only on counter overflow: readable either way */
    }
    pthread_mutex_unlock(d->lock);
    for (unsigned i = 0; i < b->nthreads; i++)
        pthread_join(b->threads[i], NULL);
    b->nthreads = 0;
}

static int blk_start(struct virtio_dev *d)
{
    struct blk *b = d->opaque;
    b->dev = d;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int r = 0;
    for (unsigned i = 0; i < BLK_WORKERS; i++) {
        b->workers[i] = (struct worker){b, &b->chains[i]};
        r = -pthread_create(&b->threads[i], &attr, blk_worker, &b->workers[i]);
        if (r < 0)
            break;
        b->nthreads++;
    }
    pthread_attr_destroy(&attr);
    if (r < 0)
        blk_stop(d);
    return r;
}

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = 2,
    .num_queues = 1,
    .queue_size = BLK_QUEUE_SIZE,
    .config_len = BLK_CONFIG_LEN,
    .kick_fds = true,
    .features = blk_features,
    .config_read = blk_config_read,
    .reset = blk_reset,
    .start = blk_start,
    .stop = blk_stop,
};

static unsigned blk_count(const struct dev_config *cfg)
{
    return cfg->ndisks;
}

/* The device's state for disk index of the configuration; the backend is copied (the disk
 * handle must outlive the device). */
static int blk_create(const struct dev_config *cfg, unsigned index, void **state, const char **why)
{
    if (index >= BLK_MAX_DISKS || index >= cfg->ndisks) {
        *why = "too many disks";
        return -E2BIG;
    }
    const struct blk_backend *be = &cfg->disks[index];
    struct blk *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->chains = calloc(BLK_WORKERS, sizeof(*b->chains));
    if (!b->chains) {
        free(b);
        return -ENOMEM;
    }
    b->be = *be;
    if (be->serial)
        snprintf(b->serial, sizeof(b->serial), "%s", be->serial);
    b->be.serial = b->serial;
    pthread_cond_init(&b->wake, NULL);
    pthread_cond_init(&b->idle, NULL);
    blk_build_config(b);
    b->features =
        VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH |
        VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX |
        (be->readonly ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES);
    *state = b;
    return 0;
}

static void blk_destroy(void *state)
{
    struct blk *b = state;
    pthread_cond_destroy(&b->wake);
    pthread_cond_destroy(&b->idle);
    free(b->chains);
    free(b);
}

const struct virtio_type virtio_blk_type = {
    .ops = &blk_ops,
    .count = blk_count,
    .create = blk_create,
    .destroy = blk_destroy,
};
